//! One interface for every report format, and a thread to run it on.
//!
//! A [`ReportWriter`] receives the run's events as they happen (formats
//! that write at the end ignore them) and the final report. The finder
//! calls its event callback on the coordinator thread, so writing there
//! would make a slow output (a pipe to a slow reader, a network file
//! system, an HTML renderer) hold up the hashing. [`Spawned`] runs a
//! writer on a thread of its own behind a bounded channel: the coordinator
//! only copies an event into the channel, and blocks only if the writer is
//! a whole channel behind (so memory stays bounded).

use std::io::{self, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::{json, text, Terminator};
use crate::entry::EntryError;
use crate::group::DuplicateGroup;
use crate::pipeline::{FindReport, GroupOrder};

/// The report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// For people: totals, then groups with sizes (see [`text::text`]).
    Text,
    /// fdupes' format: paths, a blank line between groups.
    Fdupes,
    /// `group,size,hash,path`.
    Csv,
    /// One JSON document at the end.
    Json,
    /// JSON Lines as things happen, a summary line at the end.
    Jsonl,
}

/// A report format writing to an output.
pub trait ReportWriter: Send {
    /// Whether it writes events as they happen ([`ReportWriter::group`],
    /// [`ReportWriter::error`]); if not, they are not sent to it.
    fn incremental(&self) -> bool {
        false
    }

    /// A group was confirmed or grew (same id, full membership).
    fn group(&mut self, group: &DuplicateGroup) -> io::Result<()> {
        let _ = group;
        Ok(())
    }

    /// A file could not be read or changed during the run.
    fn error(&mut self, error: &EntryError) -> io::Result<()> {
        let _ = error;
        Ok(())
    }

    /// The run is over: write the final report and flush.
    fn finish(&mut self, report: &FindReport) -> io::Result<()>;
}

/// How a final report is laid out.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Layout {
    /// Path terminator of the path formats (text, fdupes).
    pub term: Terminator,
    /// Group order of the formats written at the end (JSON Lines writes
    /// groups as they are confirmed).
    pub order: GroupOrder,
}

impl Layout {
    /// A layout with `term` and `order`.
    pub fn new(term: Terminator, order: GroupOrder) -> Layout {
        Layout { term, order }
    }
}

/// The writer for `format` on `out`.
pub fn writer(format: Format, out: Box<dyn Write + Send>, layout: Layout) -> Box<dyn ReportWriter> {
    match format {
        Format::Jsonl => Box::new(Jsonl(out)),
        other => Box::new(AtEnd {
            format: other,
            out,
            layout,
        }),
    }
}

/// Formats written once the run is over.
struct AtEnd {
    format: Format,
    out: Box<dyn Write + Send>,
    layout: Layout,
}

impl ReportWriter for AtEnd {
    fn finish(&mut self, r: &FindReport) -> io::Result<()> {
        let w = &mut *self.out;
        let Layout { term, order } = self.layout;
        match self.format {
            Format::Text => text::text(w, r, term, order),
            Format::Fdupes => text::fdupes(w, r.groups_by(order), term),
            Format::Csv => text::csv(w, r.groups_by(order)),
            Format::Json => json::document(w, r, order),
            Format::Jsonl => unreachable!("JSON Lines has a writer of its own"),
        }?;
        w.flush()
    }
}

/// JSON Lines: every event as it happens, each line flushed so a reader
/// of the pipe sees it at once.
struct Jsonl(Box<dyn Write + Send>);

impl ReportWriter for Jsonl {
    fn incremental(&self) -> bool {
        true
    }

    fn group(&mut self, g: &DuplicateGroup) -> io::Result<()> {
        json::group_line(&mut *self.0, g)
    }

    fn error(&mut self, e: &EntryError) -> io::Result<()> {
        json::error_line(&mut *self.0, e)
    }

    fn finish(&mut self, r: &FindReport) -> io::Result<()> {
        json::summary_line(&mut *self.0, &r.summary)?;
        self.0.flush()
    }
}

/// What the writer thread hands back: the writer, and how its events went.
type Stopped = (Box<dyn ReportWriter>, io::Result<()>);

enum Msg {
    Group(DuplicateGroup),
    Error(EntryError),
}

/// A writer running on its own thread (see the module docs). Events sent
/// after the writer failed are dropped; the failure is returned by
/// [`Spawned::finish`] and [`Spawned::failed`] says when to stop early.
pub struct Spawned {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<Stopped>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A writer that takes no events waits here for the final report.
    idle: Option<Box<dyn ReportWriter>>,
}

impl Spawned {
    /// Starts `writer` on a thread if it writes as things happen; the
    /// final report is then written on the caller's thread by
    /// [`Spawned::finish`] either way.
    pub fn start(writer: Box<dyn ReportWriter>, capacity: usize) -> io::Result<Spawned> {
        if writer.incremental() {
            Spawned::new(writer, capacity)
        } else {
            Ok(Spawned {
                tx: None,
                thread: None,
                failed: std::sync::Arc::default(),
                idle: Some(writer),
            })
        }
    }

    /// Starts `writer` on a thread, fed by a channel of `capacity` events.
    pub fn new(writer: Box<dyn ReportWriter>, capacity: usize) -> io::Result<Spawned> {
        let (tx, rx) = bounded::<Msg>(capacity.max(1));
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("dedupe-report".into())
            .spawn(move || {
                let mut writer = writer;
                let mut result = Ok(());
                for msg in rx {
                    let r = match &msg {
                        Msg::Group(g) => writer.group(g),
                        Msg::Error(e) => writer.error(e),
                    };
                    if let Err(e) = r {
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                        result = Err(e);
                        break;
                    }
                }
                (writer, result)
            })?;
        Ok(Spawned {
            tx: Some(tx),
            thread: Some(thread),
            failed,
            idle: None,
        })
    }

    /// Queues a group for the writer.
    pub fn group(&self, g: &DuplicateGroup) {
        self.send(Msg::Group(g.clone()));
    }

    /// Queues an error for the writer.
    pub fn error(&self, e: &EntryError) {
        self.send(Msg::Error(e.clone()));
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            // Fails only once the writer has stopped on an error.
            let _ = tx.send(msg);
        }
    }

    /// Whether the writer has failed (the output is gone or full).
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the queued events to be written, then writes the final
    /// report. The first error of either is returned.
    pub fn finish(mut self, report: &FindReport) -> io::Result<()> {
        self.tx = None;
        let mut writer = match (self.idle.take(), self.thread.take()) {
            (Some(w), _) => w,
            (None, Some(t)) => {
                let (w, result) = t
                    .join()
                    .map_err(|_| io::Error::other("the report thread panicked"))?;
                result?;
                w
            }
            (None, None) => unreachable!("a writer is idle or on its thread"),
        };
        writer.finish(report)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records group ids; fails on id `fail_at`.
    struct Log {
        seen: Arc<Mutex<Vec<u64>>>,
        fail_at: u64,
    }

    impl ReportWriter for Log {
        fn incremental(&self) -> bool {
            true
        }
        fn group(&mut self, g: &DuplicateGroup) -> io::Result<()> {
            if g.id == self.fail_at {
                return Err(io::Error::other("disk full"));
            }
            self.seen.lock().unwrap().push(g.id);
            Ok(())
        }
        fn finish(&mut self, _: &FindReport) -> io::Result<()> {
            self.seen.lock().unwrap().push(0);
            Ok(())
        }
    }

    fn group(id: u64) -> DuplicateGroup {
        DuplicateGroup {
            id,
            size: 1,
            hash: crate::hash::HashAlgo::Blake3.hasher().finish(),
            algo: crate::hash::HashAlgo::Blake3,
            files: Vec::new(),
        }
    }

    fn empty_report() -> FindReport {
        let dir = tempfile::tempdir().unwrap();
        crate::pipeline::Finder::builder(std::sync::Arc::default())
            .build()
            .run(&[dir.path()], |_| {})
            .unwrap()
    }

    #[test]
    fn events_are_written_in_order_then_the_report() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Log {
            seen: Arc::clone(&seen),
            fail_at: u64::MAX,
        };
        let s = Spawned::start(Box::new(log), 2).unwrap();
        for id in 1..=50 {
            s.group(&group(id));
        }
        s.finish(&empty_report()).unwrap();
        let want: Vec<u64> = (1..=50).chain([0]).collect();
        assert_eq!(*seen.lock().unwrap(), want);
    }

    #[test]
    fn a_failed_writer_says_so_and_the_error_comes_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Log {
            seen: Arc::clone(&seen),
            fail_at: 3,
        };
        let s = Spawned::start(Box::new(log), 1).unwrap();
        for id in 1..=10 {
            s.group(&group(id)); // never blocks for good once it failed
        }
        let err = s.finish(&empty_report()).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(*seen.lock().unwrap(), [1, 2], "nothing after the failure");
    }
}
