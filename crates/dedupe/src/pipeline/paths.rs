//! Compact path storage for the pipeline: a file is its shared directory
//! plus a name in an append-only arena, and paths are compared in report
//! order (root order, then bytes) without being built.

use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::entry::DirPath;

/// A name stored in the [`Names`] arena: chunk (32 bits), offset (20 bits),
/// length (12 bits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameRef(u64);

impl NameRef {
    /// The handle as stored outside memory (a settled file's record).
    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn from_bits(bits: u64) -> NameRef {
        NameRef(bits)
    }

    /// Chunk, offset and length.
    fn parts(self) -> (usize, usize, usize) {
        (
            (self.0 >> 32) as usize,
            ((self.0 >> 12) & 0xF_FFFF) as usize,
            (self.0 & 0xFFF) as usize,
        )
    }
}

/// Append-only storage for file names, in fixed chunks so it never copies
/// itself while growing (a doubling `Vec` would briefly need twice the
/// memory). Written here because interning millions of short byte strings
/// with 8-byte handles is not what general arena crates optimise for.
#[derive(Default)]
pub(crate) struct Names {
    chunks: Vec<Vec<u8>>,
}

const CHUNK: usize = 1 << 20;
/// Longest name the 12-bit length holds; Linux names are at most 255 bytes.
const MAX_NAME: usize = (1 << 12) - 1;

impl Names {
    pub(crate) fn push(&mut self, name: &[u8]) -> NameRef {
        debug_assert!(name.len() <= MAX_NAME, "a name longer than NAME_MAX");
        let name = &name[..name.len().min(MAX_NAME)];
        match self.chunks.last() {
            Some(c) if c.len() + name.len() <= CHUNK => {}
            _ => self.chunks.push(Vec::with_capacity(CHUNK)),
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let off = chunk.len();
        chunk.extend_from_slice(name);
        NameRef(((idx as u64) << 32) | ((off as u64) << 12) | name.len() as u64)
    }

    /// Whether `r` lies inside the arena (a handle read back from disk is
    /// checked before use).
    pub(crate) fn holds(&self, r: NameRef) -> bool {
        let (idx, off, len) = r.parts();
        self.chunks.get(idx).is_some_and(|c| off + len <= c.len())
    }

    pub(crate) fn get(&self, r: NameRef) -> &[u8] {
        let (idx, off, len) = r.parts();
        &self.chunks[idx][off..off + len]
    }

    /// The full path of `p`.
    pub(crate) fn path(&self, p: &PathRef) -> PathBuf {
        p.dir.join(self.get(p.name))
    }

    /// Report order: the root given first wins, then the path's bytes. It
    /// decides which of several paths of one inode is shown, and the order
    /// of a group's files, so reports do not depend on thread timing.
    pub(crate) fn cmp(&self, a: &PathRef, b: &PathRef) -> Ordering {
        self.cmp_parts(&a.dir, self.get(a.name), b)
    }

    /// [`Names::cmp`] for a path not stored yet (`dir` and `name`), so a
    /// path that loses the comparison never costs arena space.
    pub(crate) fn cmp_parts(&self, dir: &DirPath, name: &[u8], b: &PathRef) -> Ordering {
        dir.root_index()
            .cmp(&b.dir.root_index())
            .then_with(|| bytes(dir, name).cmp(bytes(&b.dir, self.get(b.name))))
    }
}

/// The bytes of the path `dir`/`name`, without building it.
fn bytes<'a>(dir: &'a DirPath, name: &'a [u8]) -> impl Iterator<Item = u8> + 'a {
    let dir = dir.path().as_os_str().as_bytes();
    let sep: &[u8] = if !dir.is_empty() && !dir.ends_with(b"/") {
        b"/"
    } else {
        b""
    };
    dir.iter().chain(sep).chain(name).copied()
}

/// A path in compact form.
#[derive(Clone, Debug)]
pub(crate) struct PathRef {
    pub(crate) dir: Arc<DirPath>,
    pub(crate) name: NameRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_paths_order_by_root_then_bytes() {
        let mut names = Names::default();
        let a = names.push(b"first");
        let b = names.push(b"\xffsecond");
        assert_eq!(names.get(a), b"first");
        assert_eq!(names.get(b), b"\xffsecond");
        let r0 = DirPath::with_root("z", 1, 0, None);
        let r1 = DirPath::with_root("a", 1, 1, None);
        let sub = DirPath::with_root("z/b", 2, 0, None);
        let p = |dir: &Arc<DirPath>, name: NameRef| PathRef {
            dir: Arc::clone(dir),
            name,
        };
        // Root order first: z/first (root 0) before a/first (root 1).
        assert_eq!(names.cmp(&p(&r0, a), &p(&r1, a)), Ordering::Less);
        // Then bytes of the whole path: "z/b/first" < "z/first".
        assert_eq!(names.cmp(&p(&sub, a), &p(&r0, a)), Ordering::Less);
        assert_eq!(names.cmp(&p(&r0, a), &p(&r0, b)), Ordering::Less);
        assert_eq!(names.cmp(&p(&r0, a), &p(&r0, a)), Ordering::Equal);
        assert_eq!(
            names.path(&p(&sub, b)),
            PathBuf::from(std::ffi::OsStr::from_bytes(b"z/b/\xffsecond"))
        );
    }
}
