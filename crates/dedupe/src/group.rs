//! Duplicate groups as reported: byte-identical files, with the hash that
//! proved it.

use std::path::PathBuf;

use crate::hash::{Digest, HashAlgo};

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
    /// The files, in the order they were confirmed.
    pub files: Vec<PathBuf>,
}

impl DuplicateGroup {
    /// Files beyond the first: what removing duplicates would delete.
    pub fn redundant_files(&self) -> u64 {
        self.files.len().saturating_sub(1) as u64
    }

    /// Bytes beyond the first copy: the space duplicates take.
    pub fn redundant_bytes(&self) -> u64 {
        self.size * self.redundant_files()
    }
}
