//! The key source on a thread of its own. A lookup (a database query, a
//! `stat` to check the file is unchanged) took half of the coordinator's
//! time on a re-run over a cache, and while it ran nothing else moved:
//! the walk waited, the readers waited. Here the coordinator sends what
//! it would ask and goes on; answers come back as messages, like a
//! reader's results. One batch is out at a time, so while the source
//! answers one, the next gathers: batches grow when lookups are slow.
//!
//! Keys the readers computed go to the source the same way, in order, so
//! it sees exactly the calls it saw when it ran on the coordinator.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};

use super::keys::{FileStamp, KeyRequest, KeySource, StageKey};
use super::stage::StageSpec;

/// A file as the source is asked about it (owned: it crosses threads).
pub(crate) struct Asked {
    pub(crate) cand: u32,
    pub(crate) size: u64,
    pub(crate) path: PathBuf,
    pub(crate) stamp: FileStamp,
    pub(crate) spec: &'static StageSpec,
}

impl Asked {
    fn request(&self) -> KeyRequest<'_> {
        KeyRequest {
            path: &self.path,
            stamp: self.stamp,
            spec: self.spec,
        }
    }
}

pub(crate) enum KeyMsg {
    /// What is known of these files? Answered with one [`Answer`] each, in
    /// order.
    Lookup(Vec<Asked>),
    /// The readers computed these keys (and took this many nanoseconds
    /// each): sent a batch at a time, as a message per read woke this
    /// thread a million times on a million small files.
    Computed(Vec<(Asked, StageKey, u64)>),
}

/// A lookup's answer for one file.
pub(crate) struct Answer {
    pub(crate) cand: u32,
    pub(crate) size: u64,
    pub(crate) spec: &'static StageSpec,
    pub(crate) key: Option<StageKey>,
}

/// Serves `keys` until the coordinator drops its sender, then tells it
/// the run is over ([`KeySource::finish`]: a cache writes out what it
/// holds).
pub(crate) fn serve(
    keys: &mut dyn KeySource,
    asks: &Receiver<KeyMsg>,
    answers: &Sender<Vec<Answer>>,
) {
    for msg in asks {
        match msg {
            KeyMsg::Lookup(batch) => {
                let requests: Vec<KeyRequest<'_>> = batch.iter().map(Asked::request).collect();
                let mut found = vec![None; requests.len()];
                keys.lookup(&requests, &mut found);
                drop(requests);
                let out = batch
                    .into_iter()
                    .zip(found)
                    .map(|(a, key)| Answer {
                        cand: a.cand,
                        size: a.size,
                        spec: a.spec,
                        // An answer of the wrong kind is no answer: read
                        // instead.
                        key: key.filter(|k| k.fits(a.spec)),
                    })
                    .collect();
                if answers.send(out).is_err() {
                    break;
                }
            }
            KeyMsg::Computed(done) => {
                for (a, key, nanos) in done {
                    keys.computed_after(&a.request(), &key, nanos);
                }
            }
        }
    }
    keys.finish();
}

/// The coordinator's end of the link.
pub(crate) struct KeyLink {
    tx: Sender<KeyMsg>,
    /// [`KeySource::answers_above`].
    above: u64,
    /// Files asked about and not answered yet.
    out: usize,
}

impl KeyLink {
    pub(crate) fn new(tx: Sender<KeyMsg>, above: u64) -> KeyLink {
        KeyLink { tx, above, out: 0 }
    }

    /// Whether the source wants to hear of a file of `size` bytes.
    pub(crate) fn wants(&self, size: u64) -> bool {
        size > self.above
    }

    /// Files asked about and not answered yet.
    pub(crate) fn out(&self) -> usize {
        self.out
    }

    /// Sends a batch; gives it back if the source's thread is gone.
    pub(crate) fn ask(&mut self, batch: Vec<Asked>) -> Result<(), Vec<Asked>> {
        let n = batch.len();
        match self.tx.send(KeyMsg::Lookup(batch)) {
            Ok(()) => {
                self.out += n;
                Ok(())
            }
            Err(crossbeam_channel::SendError(KeyMsg::Lookup(batch))) => Err(batch),
            Err(_) => Err(Vec::new()),
        }
    }

    /// Notes that answers came back.
    pub(crate) fn answered(&mut self, n: usize) {
        self.out = self.out.saturating_sub(n);
    }

    /// Passes on keys the readers computed.
    pub(crate) fn computed(&self, done: Vec<(Asked, StageKey, u64)>) {
        let _ = self.tx.send(KeyMsg::Computed(done));
    }
}
