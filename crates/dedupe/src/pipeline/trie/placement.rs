//! What the trie tells the coordinator about each file it was given.

use crate::pipeline::stage::Step;

/// What happened to a file the trie was given, for the coordinator to
/// route: reads to schedule, counts to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Alone under its key for now: nothing to do until a twin comes.
    Waiting,
    /// Another path to a file already placed: never read.
    Collapsed,
    /// Files that share their key at `step` and go on to their next
    /// stage: `cand`, and `woke` if it had been waiting alone.
    Advance {
        cand: u32,
        woke: Option<u32>,
        step: Step,
        size: u64,
    },
    /// Fully hashed and alone (or taking the place of a file that left).
    Settled,
    /// A group of two formed at `step`.
    Grouped { step: Step, size: u64 },
    /// The file joined a group at `step`.
    Joined { step: Step, size: u64 },
    /// `cand` has a digest that a formed group or a settled file has too:
    /// its bytes must be compared with that file's (`--verify`).
    Verify { cand: u32, size: u64 },
    /// The file left the pipeline (unreadable, changed, or abandoned).
    Left,
}

impl Placement {
    /// Files that passed `step` (shared their key there), if any.
    pub(crate) fn passed(&self) -> Option<(Step, u64, u64)> {
        match *self {
            Placement::Advance {
                woke, step, size, ..
            } => Some((step, 1 + u64::from(woke.is_some()), size)),
            Placement::Grouped { step, size } => Some((step, 2, size)),
            Placement::Joined { step, size } => Some((step, 1, size)),
            _ => None,
        }
    }

    /// Candidates to queue for a read, with their size.
    pub(crate) fn reads(&self) -> impl Iterator<Item = (u32, u64)> {
        let (a, b) = match *self {
            Placement::Advance {
                cand, woke, size, ..
            } => (Some((cand, size)), woke.map(|w| (w, size))),
            Placement::Verify { cand, size } => (Some((cand, size)), None),
            _ => (None, None),
        };
        b.into_iter().chain(a)
    }
}
