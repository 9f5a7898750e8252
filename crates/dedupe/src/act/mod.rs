//! Acting on duplicates: remove, trash, hard or symbolic link, move or
//! clone (share extents with) every copy but one, without ever losing a content; and recovering or undoing such
//! a run from its journal.
//!
//! The flow: [`plan`] (pure: which copy stays, what happens to the rest)
//! → [`execute`] (re-check, compare bytes, journal, change atomically) →
//! [`undo`]. See each module for its rules.

mod change;
mod check;
mod exec;
mod fsops;
pub mod journal;
mod plan;
mod trash;
mod undo;

use std::path::PathBuf;

pub use exec::{execute, ActReport, CrashPoint, ExecOptions, Outcome, Skip};
pub use journal::{Journal, JournalLog, Op, OpKind, OpState, StatRec};
pub use plan::{glob, move_dest, plan, GroupPlan, Held, KeepRule, Plan, PlanOptions, Step};
pub use undo::{recover, reversible as undo_reversible, undo, UndoReport};

/// What to do with each copy that is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Unlink it (irreversible).
    Remove,
    /// Replace it by a link to the kept copy: a hard link, or a symbolic
    /// one (absolute, or relative to the link's directory).
    Link {
        /// A symbolic link instead of a hard link.
        symbolic: bool,
        /// A relative symbolic link.
        relative: bool,
    },
    /// Move it under `to`, keeping its path below its root.
    Move {
        /// The destination directory.
        to: PathBuf,
    },
    /// Move it to the freedesktop.org trash of its own file system.
    Trash,
    /// Make it share the kept copy's extents (`FIDEDUPERANGE`, on
    /// btrfs, XFS and other reflink file systems): both stay separate
    /// files with their own metadata, and the kernel compares the bytes
    /// as it shares them.
    Clone,
}

impl Action {
    /// The name used on the command line and in the journal.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Remove => "remove",
            Action::Link {
                symbolic: false, ..
            } => "link",
            Action::Link { symbolic: true, .. } => "symlink",
            Action::Move { .. } => "move",
            Action::Trash => "trash",
            Action::Clone => "clone",
        }
    }
}

/// Raises the process's soft limit on open descriptors to its hard limit
/// (as Go programs do at start since 1.19). [`execute`] checks and
/// journals a batch of steps per sync, holding four descriptors a step,
/// and sizes its batches by this limit: the usual soft limit of 1024
/// gives batches of 128. Left to the caller: it changes the process.
pub fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (l.current, l.maximum) {
        if cur < max {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                },
            );
        }
    }
}

/// Where journals go by default: `$XDG_STATE_HOME/dedupe/journal`, else
/// `~/.local/state/dedupe/journal`.
pub fn default_journal_dir() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("dedupe").join("journal"))
}
