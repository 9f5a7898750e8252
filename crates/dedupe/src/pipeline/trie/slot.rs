//! How the trie packs what it stores: a slot (what sits under a key) in a
//! tagged `u32`, a key in four `u32`s, and the digest bits a settled file
//! keeps beyond its key. Memory is what bounds a 10^7-file run, so a map
//! entry is 20 bytes.

use crate::hash::{quick_key, Digest, Key};

/// What sits under one key, packed into a `u32` in the maps (see
/// [`Slot::pack`]): a 2-bit tag and a 30-bit index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// The only file so far; its next stage is not run until another comes.
    Waiting(u32),
    /// Two or more files: they all go on to the next stage.
    Node(u32),
    /// Last stage, one file: settled, in `singles`.
    Single(u32),
    /// Last stage, two or more files: a duplicate group.
    Group(u32),
}

/// Largest index a packed slot holds (about a billion).
pub(super) const SLOT_MAX: u32 = (1 << 30) - 1;

/// Files one run accepts: every index a run creates (candidates, trie
/// nodes, settled files, groups) stays below [`SLOT_MAX`] with room to
/// spare, so packing can never truncate.
pub(crate) const MAX_FILES: u64 = (SLOT_MAX / 4) as u64;

// Candidates, nodes, settled files and groups each stay below
// `MAX_FILES * 4`, the most a run can create from that many files.
const _: () = assert!(MAX_FILES * 4 <= SLOT_MAX as u64 + 1);

impl Slot {
    pub(super) fn pack(self) -> u32 {
        let (tag, i) = match self {
            Slot::Waiting(i) => (0, i),
            Slot::Node(i) => (1, i),
            Slot::Single(i) => (2, i),
            Slot::Group(i) => (3, i),
        };
        debug_assert!(i <= SLOT_MAX, "bounded by MAX_FILES");
        (tag << 30) | (i & SLOT_MAX)
    }

    pub(super) fn unpack(v: u32) -> Slot {
        let i = v & SLOT_MAX;
        match v >> 30 {
            0 => Slot::Waiting(i),
            1 => Slot::Node(i),
            2 => Slot::Single(i),
            _ => Slot::Group(i),
        }
    }
}

/// A key as stored: four `u32`s, so a map entry is 20 bytes, not 24.
pub(super) type PackedKey = [u32; 4];

pub(super) fn pack_key(k: Key) -> PackedKey {
    [
        k[0] as u32,
        (k[0] >> 32) as u32,
        k[1] as u32,
        (k[1] >> 32) as u32,
    ]
}

/// The key of a digest at the last level: its first 128 bits, or, for
/// probe `k > 0`, a hash of the whole digest and `k`.
pub(super) fn probe_key(d: &Digest, k: u32) -> Key {
    if k == 0 {
        d.key()
    } else {
        quick_key(&[d.as_bytes(), &k.to_le_bytes()])
    }
}

/// The digest bytes beyond the 128 bits a key holds (up to 16 more).
pub(super) fn tail(d: &Digest) -> [u8; 16] {
    let mut t = [0; 16];
    let b = d.as_bytes();
    if b.len() > 16 {
        let n = (b.len() - 16).min(16);
        t[..n].copy_from_slice(&b[16..16 + n]);
    }
    t
}
