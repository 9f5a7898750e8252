//! What each stage computes, defined once, as data.
//!
//! A stage's key is a function of the file's bytes fixed by a
//! [`StageSpec`]: which bytes (both ends, samples at given offsets, all of
//! them) and which hash. Each spec has a stable id. Keys made under one
//! spec are only ever compared with keys made under the same spec: the
//! trie compares keys of one stage only, and a cache or a manifest from
//! another host stores keys under the spec id, so changing a length, an
//! offset formula or an algorithm means a new id, never a silent mix.
//!
//! Both the trie (which stage comes next) and the readers (what to read)
//! use these definitions; neither owns them.

use crate::hash::HashAlgo;

/// Files up to this size are hashed whole in a single read: a quick check
/// would read most of them anyway.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Files above this size get the statistical stage before the full hash.
pub(crate) const SAMPLED_FILE: u64 = 4 * 1024 * 1024;
/// Files at least this large are "large" for scheduling: a job of their
/// own, and a limit on how many are read at once on a spinning disk.
pub(crate) const LARGE_FILE: u64 = 1 << 20;

/// A stage of the pipeline after the size bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Both ends of the file.
    Quick,
    /// Blocks spread evenly through the file.
    Statistical,
    /// The whole content, with the chosen algorithm.
    Full,
}

impl Stage {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Quick => "quick",
            Stage::Statistical => "statistical",
            Stage::Full => "full",
        }
    }
}

/// Which bytes a stage reads, and how they are hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRead {
    /// The first and last `len` bytes (read once where they overlap),
    /// hashed together with xxh3-128.
    Edges {
        /// Bytes at each end.
        len: u64,
    },
    /// `count` blocks of `len` bytes, block `i` starting at
    /// `(size - len) * i / (count - 1)` (so the first starts at byte 0 and
    /// the last ends at the last byte), hashed together with xxh3-128.
    Samples {
        /// Number of blocks (at least 2).
        count: u64,
        /// Bytes per block.
        len: u64,
    },
    /// Every byte, hashed with the algorithm given.
    Whole(HashAlgo),
}

/// One stage's key, as data (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpec {
    /// Stable id, stored with keys by anything that keeps them.
    pub id: &'static str,
    /// The stage it defines.
    pub stage: Stage,
    /// What it reads and how it hashes it.
    pub read: KeyRead,
    /// Files of this size or smaller skip the stage.
    pub skip_up_to: u64,
}

/// The quick check: 4 KiB at each end. Files up to 64 KiB skip it:
/// their full hash is one read anyway.
pub const QUICK: StageSpec = StageSpec {
    id: "quick.edges-4096.xxh3-128.v1",
    stage: Stage::Quick,
    read: KeyRead::Edges { len: 4096 },
    skip_up_to: SMALL_FILE,
};

/// The statistical check: 16 blocks of 4 KiB, for files over 4 MiB, so
/// files that differ only in the middle split without
/// being read whole.
pub const STATISTICAL: StageSpec = StageSpec {
    id: "statistical.samples-16x4096.xxh3-128.v1",
    stage: Stage::Statistical,
    read: KeyRead::Samples {
        count: 16,
        len: 4096,
    },
    skip_up_to: SAMPLED_FILE,
};

const FULL_XXH3: StageSpec = full_spec("full.xxh3-128.v1", HashAlgo::Xxh3);
const FULL_BLAKE3: StageSpec = full_spec("full.blake3-256.v1", HashAlgo::Blake3);
const FULL_SHA256: StageSpec = full_spec("full.sha256.v1", HashAlgo::Sha256);

const fn full_spec(id: &'static str, algo: HashAlgo) -> StageSpec {
    StageSpec {
        id,
        stage: Stage::Full,
        read: KeyRead::Whole(algo),
        // Empty files need no reading: they are all equal.
        skip_up_to: 0,
    }
}

/// The full-content stage with `algo`.
pub const fn full(algo: HashAlgo) -> &'static StageSpec {
    match algo {
        HashAlgo::Xxh3 => &FULL_XXH3,
        HashAlgo::Blake3 => &FULL_BLAKE3,
        HashAlgo::Sha256 => &FULL_SHA256,
    }
}

/// The stages of a run, in order, and which of them a file goes through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ladder {
    specs: [&'static StageSpec; 3],
}

impl Ladder {
    pub(crate) fn new(algo: HashAlgo) -> Ladder {
        Ladder {
            specs: [&QUICK, &STATISTICAL, full(algo)],
        }
    }

    /// Stages a file of `size` bytes goes through once it shares its size
    /// with another file, in order (none for an empty file).
    pub(crate) fn steps(&self, size: u64) -> usize {
        self.specs.iter().filter(|s| size > s.skip_up_to).count()
    }

    /// The `n`th stage (from 0) of a file of `size` bytes.
    pub(crate) fn step(&self, size: u64, n: usize) -> &'static StageSpec {
        self.specs
            .iter()
            .filter(|s| size > s.skip_up_to)
            .nth(n)
            .expect("a file has as many stages as `steps` says")
    }

    /// The last stage (the full hash).
    pub(crate) fn full(&self) -> &'static StageSpec {
        self.specs[2]
    }
}

/// What a piece of work did, for statistics: the size bucket (no reads),
/// a stage, or a byte comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Size,
    Stage(Stage),
    Verify,
}

impl Step {
    /// Every step, in the order statistics list them.
    pub(crate) const ALL: [Step; 5] = [
        Step::Size,
        Step::Stage(Stage::Quick),
        Step::Stage(Stage::Statistical),
        Step::Stage(Stage::Full),
        Step::Verify,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Step::Size => 0,
            Step::Stage(Stage::Quick) => 1,
            Step::Stage(Stage::Statistical) => 2,
            Step::Stage(Stage::Full) => 3,
            Step::Verify => 4,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Size => "size",
            Step::Stage(s) => s.name(),
            Step::Verify => "verify",
        }
    }
}

/// Where statistical block `i` of `count` blocks of `len` bytes starts in
/// a file of `size` bytes. Computed in 128 bits: `span * i` overflows 64
/// bits for files over about 1 EiB.
pub(crate) fn sample_offset(size: u64, len: u64, count: u64, i: u64) -> u64 {
    let span = u128::from(size.saturating_sub(len));
    u64::try_from(span * u128::from(i) / u128::from(count.max(2) - 1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_follows_the_size_rules() {
        let l = Ladder::new(HashAlgo::Blake3);
        let stages = |size| {
            (0..l.steps(size))
                .map(|n| l.step(size, n).stage)
                .collect::<Vec<_>>()
        };
        use Stage::*;
        // The thresholds the README documents: up to 64 KiB one full read,
        // the statistical stage only above 4 MiB.
        assert_eq!(stages(0), []);
        assert_eq!(stages(1), [Full]);
        assert_eq!(stages(64 << 10), [Full]);
        assert_eq!(stages((64 << 10) + 1), [Quick, Full]);
        assert_eq!(stages(4 << 20), [Quick, Full]);
        assert_eq!(stages((4 << 20) + 1), [Quick, Statistical, Full]);
        assert_eq!(l.full().read, KeyRead::Whole(HashAlgo::Blake3));
    }

    #[test]
    fn every_spec_has_its_own_id() {
        let mut ids = vec![QUICK.id, STATISTICAL.id];
        ids.extend([HashAlgo::Xxh3, HashAlgo::Blake3, HashAlgo::Sha256].map(|a| full(a).id));
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn samples_span_the_file_without_overflow() {
        assert_eq!(sample_offset(1 << 30, 4096, 16, 0), 0);
        assert_eq!(sample_offset(1 << 30, 4096, 16, 15), (1 << 30) - 4096);
        let big = u64::MAX;
        assert_eq!(sample_offset(big, 4096, 16, 15), big - 4096);
        assert!(sample_offset(big, 4096, 16, 7) < sample_offset(big, 4096, 16, 8));
    }

    #[test]
    fn steps_are_indexed_in_order() {
        for (i, s) in Step::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }
}
