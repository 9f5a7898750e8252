//! Statistics and progress, fed by what the trie reports ([`Placement`])
//! and what the readers did ([`Done`]). Nothing else counts.
//!
//! Progress: candidates are files that share their size with another.
//! One is "settled" when no read is queued or running for it (it waits
//! alone at a later stage, is settled, grouped, or left), so settled =
//! candidates - working - abandoned, where the scheduler knows what is
//! working and abandoned files were dropped unread by a cancel (so a
//! cancelled run's bar stops short of the end, as it should). That
//! dips when a waiting file goes back to work, and a progress bar only
//! moves forward, so the high-water mark is reported; it ends at exactly
//! the candidates added.

use std::time::Duration;

use super::msg::Done;
use super::stage::Step;
use super::trie::Placement;
use super::StageStats;
use crate::entry::ErrorKind;
use crate::progress::ProgressTracker;

#[derive(Default)]
pub(crate) struct Stats {
    /// Per step (see [`Step::index`]): files examined, bytes read, time.
    files: [u64; 5],
    bytes_read: [u64; 5],
    busy_ns: [u64; 5],
    /// Per step: keys taken from the key source instead of read.
    answered: [u64; 5],
    /// Per step: files that shared their key there.
    passed: [u64; 5],
    pub(crate) errors: [u64; ErrorKind::ALL.len()],
    pub(crate) collapsed: u64,
    /// Candidates so far, and their bytes.
    candidates: (u64, u64),
    /// Candidates dropped unread (a cancelled run).
    abandoned: (u64, u64),
    /// What the progress tracker has been told.
    told_added: (u64, u64),
    told_settled: (u64, u64),
    pub(crate) first_group: Option<Duration>,
}

impl Stats {
    /// Per step: files that shared their key there.
    #[cfg(test)]
    pub(crate) fn passed(&self) -> [u64; 5] {
        self.passed
    }

    pub(crate) fn placed(&mut self, p: &Placement) {
        if let Some((step, n, size)) = p.passed() {
            self.passed[step.index()] += n;
            if step == Step::Size {
                self.candidates.0 += n;
                self.candidates.1 = self.candidates.1.saturating_add(n.saturating_mul(size));
            }
        }
        if *p == Placement::Collapsed {
            self.collapsed += 1;
        }
    }

    pub(crate) fn read(&mut self, d: &Done) {
        let i = d.step.index();
        self.files[i] += 1;
        self.bytes_read[i] += d.bytes_read;
        self.busy_ns[i] += d.nanos;
    }

    /// The key source answered for a file at `step`.
    pub(crate) fn answered(&mut self, step: Step) {
        self.files[step.index()] += 1;
        self.answered[step.index()] += 1;
    }

    pub(crate) fn error(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }

    /// A candidate of `size` bytes was dropped without being read.
    pub(crate) fn abandoned(&mut self, size: u64) {
        self.abandoned.0 += 1;
        self.abandoned.1 = self.abandoned.1.saturating_add(size);
    }

    /// Tells `tracker` what changed since last time, given what is
    /// queued or being read now.
    pub(crate) fn report(&mut self, working: (u64, u64), tracker: &dyn ProgressTracker) {
        let (files, bytes) = self.candidates;
        if (files, bytes) != self.told_added {
            tracker.candidates_added(files - self.told_added.0, bytes - self.told_added.1);
            self.told_added = (files, bytes);
        }
        let settled = (
            files.saturating_sub(working.0 + self.abandoned.0),
            bytes.saturating_sub(working.1.saturating_add(self.abandoned.1)),
        );
        let more = (
            settled.0.saturating_sub(self.told_settled.0),
            settled.1.saturating_sub(self.told_settled.1),
        );
        if more != (0, 0) {
            tracker.candidates_settled(more.0, more.1);
            self.told_settled = (self.told_settled.0 + more.0, self.told_settled.1 + more.1);
        }
    }

    /// Per-step statistics; the size step examined `files` files.
    pub(crate) fn stages(&self, files: u64) -> Vec<StageStats> {
        Step::ALL
            .iter()
            .map(|&step| {
                let i = step.index();
                StageStats {
                    name: step.name(),
                    files: if step == Step::Size {
                        files
                    } else {
                        self.files[i]
                    },
                    bytes_read: self.bytes_read[i],
                    // A byte comparison is not a stage that files pass.
                    candidates_after: if step == Step::Verify {
                        0
                    } else {
                        self.passed[i]
                    },
                    busy_ms: self.busy_ns[i] / 1_000_000,
                    keys_known: self.answered[i],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::Stage;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<((u64, u64), (u64, u64))>);

    impl ProgressTracker for Seen {
        fn candidates_added(&self, files: u64, bytes: u64) {
            let mut s = self.0.lock().unwrap();
            s.0 .0 += files;
            s.0 .1 += bytes;
        }
        fn candidates_settled(&self, files: u64, bytes: u64) {
            let mut s = self.0.lock().unwrap();
            s.1 .0 += files;
            s.1 .1 += bytes;
        }
    }

    #[test]
    fn progress_counts_candidates_and_never_goes_back() {
        let mut st = Stats::default();
        let seen = Seen::default();
        let size = Step::Size;
        st.placed(&Placement::Advance {
            cand: 1,
            woke: Some(0),
            step: size,
            size: 100,
        });
        st.placed(&Placement::Waiting);
        st.report((2, 200), &seen);
        assert_eq!(*seen.0.lock().unwrap(), ((2, 200), (0, 0)));
        // One waits alone after its quick check: at rest.
        st.report((1, 100), &seen);
        assert_eq!(seen.0.lock().unwrap().1, (1, 100));
        // A twin wakes it: the dip is not reported.
        st.placed(&Placement::Advance {
            cand: 2,
            woke: Some(0),
            step: Step::Stage(Stage::Quick),
            size: 100,
        });
        st.report((3, 300), &seen);
        assert_eq!(seen.0.lock().unwrap().1, (1, 100));
        st.report((0, 0), &seen);
        assert_eq!(*seen.0.lock().unwrap(), ((2, 200), (2, 200)));
        assert_eq!(st.passed, [2, 2, 0, 0, 0]);
    }

    #[test]
    fn groups_count_their_files_as_passed() {
        let mut st = Stats::default();
        let full = Step::Stage(Stage::Full);
        st.placed(&Placement::Grouped {
            step: full,
            size: 5,
        });
        st.placed(&Placement::Joined {
            step: full,
            size: 5,
        });
        st.placed(&Placement::Collapsed);
        st.placed(&Placement::Grouped {
            step: Step::Size,
            size: 0,
        });
        assert_eq!(st.passed, [2, 0, 0, 3, 0]);
        assert_eq!(st.collapsed, 1);
        assert_eq!(st.candidates, (2, 0));
        let stages = st.stages(10);
        assert_eq!(stages[0].files, 10);
        assert_eq!(stages[3].candidates_after, 3);
    }
}
