//! `dedupe scan`: every matching regular file, printed as soon as it is
//! found.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use dedupe::report::{human_bytes, plural, JsonPath};
use dedupe::{FileEntry, StreamingWalker, WalkEvent};
use serde::Serialize;

use crate::args::{ScanArgs, ScanFormat};
use crate::ui::{self, exit, Ui};
use crate::Interrupt;

#[derive(Serialize)]
struct Record<'a> {
    path: JsonPath<'a>,
    size: u64,
    dev: u64,
    inode: u64,
    nlink: u64,
    mtime: i64,
    mtime_nsec: u32,
}

fn write_entry(
    out: &mut impl Write,
    e: &FileEntry,
    args: &ScanArgs,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.clear();
    e.write_path(buf);
    match args.format {
        ScanFormat::Paths => {
            buf.push(if args.print0 { 0 } else { b'\n' });
            out.write_all(buf)
        }
        ScanFormat::Jsonl => {
            let (mtime, mtime_nsec) = e.mtime_parts();
            let rec = Record {
                path: JsonPath(buf),
                size: e.size,
                dev: e.id.dev,
                inode: e.id.ino,
                nlink: e.nlink,
                mtime,
                mtime_nsec,
            };
            serde_json::to_writer(&mut *out, &rec)?;
            out.write_all(b"\n")
        }
    }
}

pub fn run(args: ScanArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    let ui = Ui::new(args.walk.progress, false, args.walk.verbose);
    let walker = StreamingWalker::new(
        Arc::new(args.walk.to_config(0)),
        ui.tracker(),
        Some(args.walk.to_streaming()),
    );
    let mut walk = match walker.walk(&args.paths) {
        Ok(w) => w,
        Err(e) => {
            ui.finish();
            ui::warn(ui::walk_error(&e));
            return Ok(exit::USAGE);
        }
    };
    let stopper = walk.stopper();
    interrupt.arm(move || stopper.stop());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut buf = Vec::with_capacity(256);
    // Set when stdout fails: `Some(true)` for a reader that went away.
    let mut closed: Option<bool> = None;
    for event in walk.by_ref() {
        match event {
            WalkEvent::Batch(batch) => {
                let written = batch
                    .iter()
                    .try_for_each(|e| write_entry(&mut out, e, &args, &mut buf))
                    .and_then(|()| out.flush());
                if let Err(e) = written {
                    let pipe = e.kind() == io::ErrorKind::BrokenPipe;
                    if !pipe {
                        ui.finish();
                        ui::warn(format_args!("dedupe: cannot write output: {e}"));
                    }
                    closed = Some(pipe);
                    break;
                }
            }
            WalkEvent::Error(e) => ui.entry_error(&e),
            _ => {}
        }
    }
    let stats = walk.stats();
    drop(walk);
    ui.finish();
    match closed {
        // The reader went away (`dedupe scan | head`): not our failure.
        Some(true) => return Ok(exit::OK),
        Some(false) => return Ok(exit::OUTPUT),
        None => {}
    }
    if interrupt.fired() {
        return Ok(exit::INTERRUPTED);
    }
    if args.walk.stats {
        let secs = stats.elapsed.as_secs_f64().max(1e-9);
        ui::warn(format_args!(
            "scanned {} ({}) in {} in {:.3} s: {:.0} files/s",
            plural(stats.files, "file", "files"),
            human_bytes(stats.bytes),
            plural(stats.dirs, "directory", "directories"),
            secs,
            stats.files as f64 / secs
        ));
        ui::warn(format_args!(
            "errors: {}",
            ui::errors_by_kind(&stats.errors)
        ));
        if let Some(peak) = dedupe_testkit::rss::peak() {
            ui::warn(format_args!("peak memory: {}", human_bytes(peak)));
        }
    }
    ui::error_note(&ui, args.walk.verbose, &stats.errors);
    Ok(if ui::serious_errors(&stats.errors) > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
