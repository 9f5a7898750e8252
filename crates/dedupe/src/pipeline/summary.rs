//! What a run reports when it ends: statistics and the groups, kept
//! compact until they are read.

use super::groups::{GroupOrder, GroupStore};
use crate::entry::ErrorKind;
use crate::group::DuplicateGroup;
use crate::hash::HashAlgo;

/// Counts for one stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageStats {
    /// `size`, `quick`, `statistical`, `full` or `verify`.
    pub name: &'static str,
    /// Files this stage examined.
    pub files: u64,
    /// Bytes it read.
    pub bytes_read: u64,
    /// Files still candidates after it (they share their key with another).
    pub candidates_after: u64,
    /// Reader time spent in it, summed over threads, in milliseconds.
    pub busy_ms: u64,
    /// Keys a key source knew, so these files were not read for it.
    pub keys_known: u64,
}

/// The final statistics, errors by kind included.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Regular files that passed the filters.
    pub files_scanned: u64,
    /// Their total size.
    pub bytes_scanned: u64,
    /// Directories listed.
    pub dirs_scanned: u64,
    /// Extra paths to an inode already seen (hard links), not read again.
    pub hard_links_collapsed: u64,
    /// Per stage: size, quick, statistical, full, verify.
    pub stages: Vec<StageStats>,
    /// Duplicate groups.
    pub groups: u64,
    /// Files beyond the first in each group.
    pub redundant_files: u64,
    /// Bytes beyond the first copy in each group.
    pub redundant_bytes: u64,
    /// Errors by kind (`snake_case` names), walk and pipeline together.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
    /// The full hash used.
    pub hash: HashAlgo,
    /// Whether groups were verified byte by byte.
    pub verified: bool,
    /// Streaming or traditional mode.
    pub streaming: bool,
    /// Readers each device started with: one per CPU, or `--threads`.
    pub readers: usize,
    /// Per device, the readers its controller chose (`adapt`).
    pub io: Vec<super::IoChoice>,
    /// Scanners the walk started with.
    pub scanners: usize,
    /// Scanners it added because directories were slow to list.
    pub scanners_added: usize,
    /// Wall time of the walk, in milliseconds.
    pub scan_ms: u64,
    /// Wall time of the whole run, in milliseconds.
    pub elapsed_ms: u64,
    /// From start to the first group reported, in milliseconds.
    pub first_group_ms: Option<u64>,
    /// The run was cancelled; results are partial.
    pub interrupted: bool,
}

/// What a run found. The groups are kept compact and turned into
/// [`DuplicateGroup`]s one at a time as they are read, so writing a report
/// of millions of duplicates does not hold all their paths at once.
pub struct FindReport {
    pub(super) groups: GroupStore,
    /// Statistics.
    pub summary: Summary,
}

impl Summary {
    /// Errors of `kind`, walk and pipeline together.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// Errors per kind, indexed like [`ErrorKind::ALL`].
    pub fn error_counts(&self) -> [u64; ErrorKind::ALL.len()] {
        ErrorKind::ALL.map(|k| self.errors_of(k))
    }
}

impl FindReport {
    /// The groups in report order: largest files first, then by first path.
    pub fn groups(&self) -> impl Iterator<Item = DuplicateGroup> + '_ {
        self.groups.iter()
    }

    /// The groups in `order` (ties in report order).
    pub fn groups_by(&self, order: GroupOrder) -> impl Iterator<Item = DuplicateGroup> + '_ {
        self.groups.iter_by(order)
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// All groups, largest files first, as one vector.
    pub fn into_groups(self) -> Vec<DuplicateGroup> {
        self.groups.iter().collect()
    }
}

impl std::fmt::Debug for FindReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindReport")
            .field("groups", &self.groups.len())
            .field("summary", &self.summary)
            .finish()
    }
}
