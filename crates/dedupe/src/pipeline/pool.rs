//! Reader threads: one pool per device lane, grown and shrunk to the
//! number that lane's controller chooses. A pool's threads take jobs from
//! the lane's own channel, so one device's readers never wait behind
//! another device's reads; every result goes to the coordinator on one
//! shared channel.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::msg::{Done, Task};
use super::read::Reader;
use crate::progress::ProgressTracker;

/// What a reader thread is given.
enum Work {
    /// Read these, opening up to `ahead` files in advance.
    Job {
        lane: usize,
        large: bool,
        tasks: Vec<Task>,
        ahead: usize,
    },
    /// The lane has one reader too many: the thread that takes this ends.
    Retire,
}

/// The results of one job.
pub(crate) struct Finished {
    pub(crate) lane: usize,
    pub(crate) large: bool,
    pub(crate) results: Vec<Done>,
}

struct Lane {
    // Unbounded, yet never long: the scheduler keeps at most 2 x readers
    // jobs out per lane, and a retire message per reader dropped.
    tx: Sender<Work>,
    rx: Receiver<Work>,
    alive: usize,
}

pub(crate) struct Pools {
    lanes: Vec<Lane>,
    done: Sender<Finished>,
    cancel: Arc<AtomicBool>,
    progress: Arc<dyn ProgressTracker>,
    threads: Vec<JoinHandle<()>>,
    spawned: usize,
    /// [`Reader::probing`] for the readers started from now on.
    probe_up_to: u64,
}

impl Pools {
    /// Pools whose results go to `done`.
    pub(crate) fn new(
        done: Sender<Finished>,
        cancel: Arc<AtomicBool>,
        progress: Arc<dyn ProgressTracker>,
    ) -> Pools {
        Pools {
            lanes: Vec::new(),
            done,
            cancel,
            progress,
            threads: Vec::new(),
            spawned: 0,
            probe_up_to: 0,
        }
    }

    /// Readers started from now on note whether whole reads of files of
    /// `bytes` or fewer came from the device ([`Reader::probing`]).
    pub(crate) fn probe_up_to(&mut self, bytes: u64) {
        self.probe_up_to = bytes;
    }

    /// Makes lane `lane` have `want` readers: spawns the missing ones, or
    /// asks the extra ones to end once they are idle. An error only when
    /// the lane would be left with no reader at all; short of that, a
    /// thread that cannot be started means the lane runs with fewer.
    pub(crate) fn resize(&mut self, lane: usize, want: usize) -> std::io::Result<()> {
        while self.lanes.len() <= lane {
            let (tx, rx) = unbounded();
            self.lanes.push(Lane { tx, rx, alive: 0 });
        }
        while self.lanes[lane].alive > want {
            let l = &mut self.lanes[lane];
            if l.tx.send(Work::Retire).is_err() {
                break;
            }
            l.alive -= 1;
        }
        while self.lanes[lane].alive < want {
            if let Err(e) = self.spawn(lane) {
                if self.lanes[lane].alive == 0 {
                    return Err(e);
                }
                break;
            }
            self.lanes[lane].alive += 1;
        }
        Ok(())
    }

    fn spawn(&mut self, lane: usize) -> std::io::Result<()> {
        let rx = self.lanes[lane].rx.clone();
        let done = self.done.clone();
        let reader = Reader::new(Arc::clone(&self.cancel)).probing(self.probe_up_to);
        let progress = Arc::clone(&self.progress);
        let t = std::thread::Builder::new()
            .name(format!("dedupe-read-{lane}-{}", self.spawned))
            .spawn(move || reader_loop(&rx, &done, reader, &*progress))?;
        self.spawned += 1;
        // Finished threads are reaped here, so a run whose controller
        // shrinks and grows many times does not keep their handles.
        self.threads.retain(|t| !t.is_finished());
        self.threads.push(t);
        Ok(())
    }

    /// Sends a job to lane `lane`'s readers; false when they are gone.
    pub(crate) fn send(&self, lane: usize, large: bool, tasks: Vec<Task>, ahead: usize) -> bool {
        self.lanes[lane]
            .tx
            .send(Work::Job {
                lane,
                large,
                tasks,
                ahead,
            })
            .is_ok()
    }

    /// Closes every lane and waits for the readers to end.
    pub(crate) fn join(self) {
        let Pools { lanes, threads, .. } = self;
        drop(lanes);
        for t in threads {
            let _ = t.join();
        }
    }
}

fn reader_loop(
    jobs: &Receiver<Work>,
    done: &Sender<Finished>,
    mut reader: Reader,
    progress: &dyn ProgressTracker,
) {
    for work in jobs {
        let Work::Job {
            lane,
            large,
            tasks,
            ahead,
        } = work
        else {
            break;
        };
        let results = reader.run_job(tasks, ahead);
        let bytes: u64 = results.iter().map(|d| d.bytes_read).sum();
        progress.bytes_hashed(bytes);
        let finished = Finished {
            lane,
            large,
            results,
        };
        if done.send(finished).is_err() {
            break;
        }
    }
}
