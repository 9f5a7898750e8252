//! The messages between the coordinator and the readers: what to read
//! ([`Task`]) and what came of it ([`Done`]). Both sides import them from
//! here; neither owns them.

use std::path::PathBuf;
use std::sync::Arc;

use super::keys::FileStamp;
use super::stage::{StageSpec, Step};
use crate::entry::{Base, EntryError};
use crate::hash::{Digest, Key};

/// A file to open: its path, how to open it, and what it must still be.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub path: PathBuf,
    /// Its root's handle: opened beneath it, refusing symlinks. `None`:
    /// opened by path, following symlinks (roots, `follow_links`).
    pub base: Option<Arc<Base>>,
    pub expect: FileStamp,
}

/// One unit of work.
pub(crate) enum TaskKind {
    /// Compute the key of a stage.
    Stage(&'static StageSpec),
    /// Compare the file byte by byte with another that has the same hash.
    Verify(Target),
}

pub(crate) struct Task {
    /// The candidate, as the trie knows it.
    pub cand: u32,
    pub file: Target,
    pub kind: TaskKind,
}

impl Task {
    pub(crate) fn step(&self) -> Step {
        match &self.kind {
            TaskKind::Stage(s) => Step::Stage(s.stage),
            TaskKind::Verify(_) => Step::Verify,
        }
    }
}

pub(crate) enum Outcome {
    /// The key of a stage before the last.
    Key(Key),
    /// The whole content's digest (the last stage).
    Full(Digest),
    /// Verified equal to the file it was compared with.
    Same,
    /// Same digest, different bytes: a hash collision.
    Differ,
    /// The file it was to be compared with changed or went away; that file
    /// leaves its group.
    OtherChanged(EntryError),
    /// This file changed or could not be read; it leaves the pipeline.
    Failed(EntryError),
    /// The run was cancelled while this read went on.
    Cancelled,
}

pub(crate) struct Done {
    pub cand: u32,
    pub outcome: Outcome,
    pub step: Step,
    pub bytes_read: u64,
    pub nanos: u64,
    /// Whether the bytes came from the device (probed for small files
    /// only: see [`ReadFacts::from_disk`](super::keys::ReadFacts)).
    pub from_disk: Option<bool>,
}
