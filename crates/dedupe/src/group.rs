//! Duplicate groups as reported: byte-identical files, with the hash that
//! proved it.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::hash::{Digest, HashAlgo};
use crate::pipeline::keys::FileStamp;

/// A file in a group: its path and what identified it when it was read
/// (device, inode, size, modification and status-change times), so that
/// anything acting on it later can check it is still that file. It derefs
/// to its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFile {
    /// The path (for an inode with several paths, the first in report
    /// order).
    pub path: PathBuf,
    /// What the file was when its content was read.
    pub stamp: FileStamp,
}

impl Deref for GroupFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for GroupFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// Files with identical content. Hard links to one inode count as one file
/// (one path is listed) unless the finder was told to treat them as
/// duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// Stable id: a group written again because it gained members keeps it.
    pub id: u64,
    /// Size of each file in bytes.
    pub size: u64,
    /// Full-content hash of the files.
    pub hash: Digest,
    /// The algorithm of `hash`.
    pub algo: HashAlgo,
    /// The files, in report order (root order, then path bytes).
    pub files: Vec<GroupFile>,
}

impl DuplicateGroup {
    /// The files' paths, in report order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// Files beyond the first: what removing duplicates would delete.
    pub fn redundant_files(&self) -> u64 {
        self.files.len().saturating_sub(1) as u64
    }

    /// Bytes beyond the first copy: the space duplicates take.
    pub fn redundant_bytes(&self) -> u64 {
        self.size * self.redundant_files()
    }
}
