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

use super::keys::{
    FileStamp, KeyRequest, KeySource, ReadFacts, StageKey, SMALL_HIT_RATIO, SMALL_TRIAL,
};
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
    /// The readers computed these keys (and this is how each read went):
    /// sent a batch at a time, as a message per read woke this thread a
    /// million times on a million small files.
    Computed(Vec<(Asked, StageKey, ReadFacts)>),
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
                for (a, key, read) in done {
                    keys.computed_read(&a.request(), &key, &read);
                }
            }
        }
    }
    keys.finish();
}

/// What to do with a file the source could be asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Put it to the source.
    Ask,
    /// Keep it for a later batch.
    Hold,
    /// Read it.
    Read,
}

/// The coordinator's end of the link.
pub(crate) struct KeyLink {
    tx: Sender<KeyMsg>,
    /// [`KeySource::answers_above`].
    above: u64,
    /// [`KeySource::small_up_to`].
    small: u64,
    /// Small files asked about and answered, how many of them were
    /// found, and how many are out.
    small_asked: u32,
    small_found: u32,
    small_out: u32,
    /// Small files are no longer asked about: too few were answered.
    small_off: bool,
    /// Files asked about and not answered yet.
    out: usize,
}

impl KeyLink {
    pub(crate) fn new(tx: Sender<KeyMsg>, above: u64, small: u64) -> KeyLink {
        KeyLink {
            tx,
            above,
            small,
            small_asked: 0,
            small_found: 0,
            small_out: 0,
            small_off: false,
            out: 0,
        }
    }

    fn is_small(&self, size: u64) -> bool {
        size > self.above && size <= self.small
    }

    /// Whether to ask the source about a file of `size` bytes.
    pub(crate) fn asks(&self, size: u64) -> bool {
        size > self.above && !(self.small_off && size <= self.small)
    }

    /// Whether to put a file of `size` bytes to the source now. Small
    /// files beyond the trial wait while its questions are out, so a
    /// batch does not put thousands of them before the verdict.
    pub(crate) fn admit(&mut self, size: u64) -> Admit {
        if !self.asks(size) {
            Admit::Read
        } else if !self.is_small(size) || self.small_asked >= SMALL_TRIAL {
            Admit::Ask
        } else if self.small_asked + self.small_out < SMALL_TRIAL {
            self.small_out += 1;
            Admit::Ask
        } else {
            Admit::Hold
        }
    }

    /// Whether to tell the source the key of a file of `size` bytes whose
    /// read came `from_disk` (see [`ReadFacts::from_disk`]).
    pub(crate) fn tells(&self, size: u64, from_disk: Option<bool>) -> bool {
        size > self.above && (size > self.small || from_disk == Some(true))
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

    /// Notes that answers came back, and whether asking about small files
    /// still pays (see [`KeySource::small_up_to`]).
    pub(crate) fn answered(&mut self, answers: &[Answer]) {
        self.out = self.out.saturating_sub(answers.len());
        for a in answers {
            if self.is_small(a.size) {
                self.small_out = self.small_out.saturating_sub(1);
                self.small_asked = self.small_asked.saturating_add(1);
                self.small_found += u32::from(a.key.is_some());
            }
        }
        if self.small_asked >= SMALL_TRIAL
            && self.small_found.saturating_mul(SMALL_HIT_RATIO) < self.small_asked
        {
            self.small_off = true;
        }
    }

    /// Passes on keys the readers computed.
    pub(crate) fn computed(&self, done: Vec<(Asked, StageKey, ReadFacts)>) {
        let _ = self.tx.send(KeyMsg::Computed(done));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::{full, StageSpec};
    use crate::HashAlgo;

    const FULL: &StageSpec = full(HashAlgo::Blake3);

    fn answers(size: u64, found: usize, missed: usize) -> Vec<Answer> {
        let key = Some(StageKey::Full(HashAlgo::Blake3.hasher().finish()));
        (0..found + missed)
            .map(|i| Answer {
                cand: 0,
                size,
                spec: FULL,
                key: if i < found { key } else { None },
            })
            .collect()
    }

    fn link(above: u64, small: u64) -> KeyLink {
        KeyLink::new(crossbeam_channel::unbounded().0, above, small)
    }

    #[test]
    fn small_files_are_asked_about_while_enough_are_answered() {
        let mut k = link(10, 4096);
        assert!(!k.asks(10) && k.asks(11) && k.asks(4096) && k.asks(4097));
        // Up to the trial, misses alone do not stop it.
        k.answered(&answers(100, 0, SMALL_TRIAL as usize - 1));
        assert!(k.asks(100));
        // Answers to large files do not count either way.
        k.answered(&answers(5000, 0, 10_000));
        assert!(k.asks(100));
        k.answered(&answers(100, 0, 1));
        assert!(!k.asks(100) && !k.asks(4096), "no answers in the trial");
        assert!(k.asks(4097) && !k.asks(10), "others as before");
    }

    #[test]
    fn one_answer_in_the_ratio_keeps_small_files_asked() {
        let per = SMALL_HIT_RATIO as usize;
        let mut k = link(0, 4096);
        for _ in 0..4 * SMALL_TRIAL {
            k.answered(&answers(1, 1, per - 1));
        }
        assert!(k.asks(1), "one in {per} found");
        // Then only misses: it stops once fewer than one in the ratio is.
        let found = 4 * SMALL_TRIAL as usize;
        let asked = found * per;
        k.answered(&answers(1, 0, 1));
        assert!(!k.asks(1), "{found} found of {} asked", asked + 1);
    }

    #[test]
    fn small_files_past_the_trial_wait_for_its_verdict() {
        let trial = SMALL_TRIAL as usize;
        let mut k = link(0, 4096);
        let admitted: Vec<Admit> = (0..trial + 3).map(|_| k.admit(10)).collect();
        assert!(admitted[..trial].iter().all(|a| *a == Admit::Ask));
        assert_eq!(admitted[trial..], [Admit::Hold; 3]);
        assert_eq!(k.admit(5000), Admit::Ask, "large files never wait");
        // Half the trial answered, all found: the other half is still
        // out, so still no verdict and no room.
        k.answered(&answers(10, trial / 2, 0));
        assert_eq!(k.admit(10), Admit::Hold);
        k.answered(&answers(10, trial / 2, 0));
        // The verdict: asking pays, so no more waiting.
        assert!((0..5000).all(|_| k.admit(10) == Admit::Ask));
        // And when it does not, small files are read.
        let mut k = link(0, 4096);
        for _ in 0..trial {
            assert_eq!(k.admit(10), Admit::Ask);
        }
        k.answered(&answers(10, 0, trial));
        assert_eq!(k.admit(10), Admit::Read);
        assert_eq!(k.admit(5000), Admit::Ask);
    }

    #[test]
    fn small_files_are_told_of_only_when_read_from_the_device() {
        let k = link(10, 4096);
        assert!(!k.tells(10, Some(true)), "not taken at all");
        for size in [11, 4096] {
            assert!(k.tells(size, Some(true)));
            assert!(!k.tells(size, Some(false)));
            assert!(!k.tells(size, None));
        }
        assert!(k.tells(4097, None) && k.tells(4097, Some(false)));
        // With no small files, every file above the floor is told of.
        let k = link(0, 0);
        assert!(k.tells(1, None) && !k.tells(0, Some(true)));
    }
}
