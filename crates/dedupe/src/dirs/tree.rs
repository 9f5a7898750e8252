//! The directories a walk saw, put in tree order, with per-directory
//! totals and the content of every file.
//!
//! Directories are numbered in pre-order (roots in the order given, then
//! children by name), so a directory's subtree is the index range
//! `i..end`, and with files sorted by directory, the files beneath it are
//! one slice too: every "what is under D" question is a range check.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{FileRec, Listing, Seen};
use crate::entry::{DirPath, FileId};
use crate::pipeline::FindReport;

/// A directory's path bytes as a lookup key: trailing slashes dropped, so
/// a root spelled `t/` and its child's parent part `t` meet.
pub(crate) fn key(path: &Path) -> &[u8] {
    let b = path.as_os_str().as_bytes();
    let mut end = b.len();
    while end > 1 && b[end - 1] == b'/' {
        end -= 1;
    }
    &b[..end]
}

/// The part of a key naming its parent (`None` at the top).
fn parent_key(k: &[u8]) -> Option<&[u8]> {
    let cut = k.iter().rposition(|&c| c == b'/')?;
    let mut p = &k[..cut];
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    Some(if p.is_empty() { b"/" } else { p })
}

/// Why a directory cannot be compared (its own reason; its ancestors
/// inherit the exclusion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    Unlisted,
    Filtered,
    Unreadable,
    Special,
}

/// One directory of the tree.
#[derive(Clone, Debug)]
pub struct TreeDir {
    /// The directory as the walk reached it.
    pub dir: Arc<DirPath>,
    /// Its parent, if the walk listed it.
    pub parent: Option<u32>,
    /// The end of its subtree: directories `i..end` are it and beneath it.
    pub end: u32,
    /// Regular files beneath it, recursively, empty ones included.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes beneath it held by redundant copies: per duplicate group,
    /// every file but the first, at the path the group lists.
    pub redundant: u64,
    /// Redundant copies beneath it (as for `redundant`).
    pub redundant_files: u64,
    pub(crate) reason: Option<Reason>,
    /// It or something beneath it was not wholly seen.
    pub(crate) excluded: bool,
    /// Non-empty files beneath it, and their bytes.
    pub(crate) content_files: u64,
    pub(crate) content_bytes: u64,
    /// Sum of the contents' digests (a multiset digest: adding, unlike
    /// XOR, keeps `{a,a,b}` and `{a,b,b}` apart).
    pub(crate) digest: u128,
    /// Some content beneath it exists at no other path.
    pub(crate) unique: bool,
}

/// The directories seen and their files, in tree order.
pub struct DirTree {
    pub(crate) dirs: Vec<TreeDir>,
    /// Every regular file seen, sorted by directory.
    pub(crate) files: Vec<FileRec>,
    pub(crate) names: Option<Vec<Box<[u8]>>>,
    /// `files[file_start[i]..file_start[i + 1]]` are directory `i`'s own.
    pub(crate) file_start: Vec<u32>,
    /// Per file, its content: files with equal bytes share one number.
    pub(crate) content: Vec<u32>,
    /// Per content, how many paths have it.
    pub(crate) paths_of: Vec<u32>,
    /// Directory by path (see [`key`]).
    index: FxHashMap<Box<[u8]>, u32>,
}

impl DirTree {
    pub(crate) fn build(
        seen: Vec<Seen>,
        files: Vec<FileRec>,
        names: Option<Vec<Box<[u8]>>>,
        index: FxHashMap<Box<[u8]>, u32>,
        report: &FindReport,
    ) -> DirTree {
        let n = seen.len();
        let (order, parent, children) = tree_order(&seen, &index);
        let mut new_of = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        let mut seen: Vec<Option<Seen>> = seen.into_iter().map(Some).collect();
        let mut dirs: Vec<TreeDir> = order
            .iter()
            .map(|&old| {
                let s = seen[old as usize].take().expect("each directory once");
                let p = parent[old as usize];
                let kids = children[old as usize].len() as u64;
                TreeDir {
                    dir: s.dir,
                    parent: (p != u32::MAX).then(|| new_of[p as usize]),
                    end: 0,
                    files: 0,
                    bytes: 0,
                    redundant: 0,
                    redundant_files: 0,
                    reason: reason(s.listing, kids, s.links),
                    excluded: false,
                    content_files: 0,
                    content_bytes: 0,
                    digest: 0,
                    unique: false,
                }
            })
            .collect();

        // Files by directory (stable, so discovery order within one).
        let mut perm: Vec<u32> = (0..files.len() as u32).collect();
        perm.sort_by_key(|&f| new_of[files[f as usize].dir as usize]);
        let files: Vec<FileRec> = perm
            .iter()
            .map(|&f| {
                let mut r = files[f as usize];
                r.dir = new_of[r.dir as usize];
                r
            })
            .collect();
        let names = names.map(|mut v| {
            perm.iter()
                .map(|&f| std::mem::take(&mut v[f as usize]))
                .collect()
        });
        let mut file_start = vec![0u32; n + 1];
        for f in &files {
            file_start[f.dir as usize + 1] += 1;
        }
        for i in 0..n {
            file_start[i + 1] += file_start[i];
        }

        let (content, paths_of) = contents(&files, report);
        let index: FxHashMap<Box<[u8]>, u32> = index
            .into_iter()
            .map(|(k, old)| (k, new_of[old as usize]))
            .collect();
        let mut tree = DirTree {
            dirs: Vec::new(),
            files,
            names,
            file_start,
            content,
            paths_of,
            index,
        };
        // Redundant copies: per group, every file but the first, at the
        // path the group lists (one per inode).
        let mut redundant = vec![(0u64, 0u64); n];
        for g in report.groups() {
            for f in g.files.iter().skip(1) {
                if let Some(d) = tree.dir_of(&f.path) {
                    redundant[d as usize].0 += g.size;
                    redundant[d as usize].1 += 1;
                }
            }
        }
        tree.aggregate(&mut dirs, &redundant);
        tree.dirs = dirs;
        tree
    }

    /// The directory holding the file at `path`, if the walk listed it.
    pub fn dir_of(&self, path: &Path) -> Option<u32> {
        let k = parent_key(key(path))?;
        self.index.get(k).copied()
    }

    /// Sums every directory's files into it and its ancestors (children
    /// come after their parent in pre-order, so one backward pass).
    fn aggregate(&self, dirs: &mut [TreeDir], redundant: &[(u64, u64)]) {
        for i in (0..dirs.len()).rev() {
            let (lo, hi) = (self.file_start[i] as usize, self.file_start[i + 1] as usize);
            let d = &mut dirs[i];
            d.end = d.end.max(i as u32 + 1);
            d.excluded |= d.reason.is_some();
            d.redundant += redundant[i].0;
            d.redundant_files += redundant[i].1;
            for f in lo..hi {
                let r = &self.files[f];
                d.files += 1;
                d.bytes += r.size;
                if r.size > 0 {
                    let c = self.content[f];
                    d.content_files += 1;
                    d.content_bytes += r.size;
                    d.digest = d.digest.wrapping_add(content_digest(c));
                    d.unique |= self.paths_of[c as usize] < 2;
                }
            }
            if let Some(p) = d.parent {
                // A parent comes before its children in pre-order.
                let (head, tail) = dirs.split_at_mut(i);
                let (c, p) = (&tail[0], &mut head[p as usize]);
                p.end = p.end.max(c.end);
                p.files += c.files;
                p.bytes += c.bytes;
                p.redundant += c.redundant;
                p.redundant_files += c.redundant_files;
                p.excluded |= c.excluded;
                p.content_files += c.content_files;
                p.content_bytes += c.content_bytes;
                p.digest = p.digest.wrapping_add(c.digest);
                p.unique |= c.unique;
            }
        }
    }

    /// The directories, in tree order.
    pub fn dirs(&self) -> &[TreeDir] {
        &self.dirs
    }

    /// Files beneath directory `i`, recursively, as indices into the
    /// file arrays.
    pub(crate) fn files_under(&self, i: u32) -> std::ops::Range<usize> {
        let d = &self.dirs[i as usize];
        self.file_start[i as usize] as usize..self.file_start[d.end as usize] as usize
    }

    /// Whether directory `d` is `a` or beneath it.
    pub(crate) fn within(&self, d: u32, a: u32) -> bool {
        a <= d && d < self.dirs[a as usize].end
    }

    /// File `f`'s path relative to directory `a` (which holds it).
    pub(crate) fn relative(&self, f: usize, a: u32) -> Vec<u8> {
        let names = self.names.as_ref().expect("names are kept for layouts");
        let base = key(self.dirs[a as usize].dir.path()).len();
        let own = key(self.dirs[self.files[f].dir as usize].dir.path());
        let mut out = own.get(base..).unwrap_or_default().to_vec();
        out.push(b'/');
        out.extend_from_slice(&names[f]);
        out
    }
}

/// Parents by path, children by name, and the pre-order of the
/// directories (roots in the order given); returns the order, each
/// directory's parent (`u32::MAX`: none) and its children.
fn tree_order(
    seen: &[Seen],
    index: &FxHashMap<Box<[u8]>, u32>,
) -> (Vec<u32>, Vec<u32>, Vec<Vec<u32>>) {
    let n = seen.len();
    // Parents by path, children by name.
    let mut parent = vec![u32::MAX; n];
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut tops = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let up = (s.dir.depth() > 0)
            .then(|| parent_key(key(s.dir.path())))
            .flatten()
            .and_then(|k| index.get(k).copied())
            .filter(|&p| p as usize != i);
        match up {
            Some(p) => {
                parent[i] = p;
                children[p as usize].push(i as u32);
            }
            None => tops.push(i as u32),
        }
    }
    let name = |i: &u32| key(seen[*i as usize].dir.path());
    tops.sort_by(|a, b| {
        let (da, db) = (&seen[*a as usize].dir, &seen[*b as usize].dir);
        (da.root_index(), name(a)).cmp(&(db.root_index(), name(b)))
    });
    for c in &mut children {
        c.sort_by(|a, b| name(a).cmp(name(b)));
    }
    // Pre-order numbering, iteratively (trees can be deep).
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<u32> = tops.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i as usize].iter().rev());
    }
    (order, parent, children)
}

/// A directory's own reason to be left out, from its listing and the
/// subdirectories that reported back.
fn reason(listing: Option<Listing>, children: u64, links: bool) -> Option<Reason> {
    let Some(l) = listing else {
        return Some(Reason::Unlisted);
    };
    if !l.complete || l.subdirs != children {
        Some(Reason::Unlisted)
    } else if l.unreadable > 0 {
        Some(Reason::Unreadable)
    } else if l.excluded > 0 {
        Some(Reason::Filtered)
    } else if l.special > 0 || links {
        Some(Reason::Special)
    } else {
        None
    }
}

/// A 128-bit digest of a content number, for the multiset sums (matches
/// are confirmed on the contents themselves, so this only has to spread).
pub(crate) fn content_digest(c: u32) -> u128 {
    xxhash_rust::xxh3::xxh3_128(&c.to_le_bytes())
}

/// Numbers the files' contents: files of one duplicate group share the
/// group's number, every other inode gets its own (all its paths share
/// it). Returns each file's content and each content's number of paths.
fn contents(files: &[FileRec], report: &FindReport) -> (Vec<u32>, Vec<u32>) {
    let mut of_inode: FxHashMap<FileId, u32> = FxHashMap::default();
    let mut next = 0u32;
    for g in report.groups() {
        for f in &g.files {
            of_inode.insert(f.stamp.id, next);
        }
        next += 1;
    }
    let content: Vec<u32> = files
        .iter()
        .map(|f| {
            *of_inode.entry(f.id).or_insert_with(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    let mut paths_of = vec![0u32; next as usize];
    for &c in &content {
        paths_of[c as usize] += 1;
    }
    (content, paths_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_parents() {
        assert_eq!(key(Path::new("t/")), b"t");
        assert_eq!(key(Path::new("/")), b"/");
        assert_eq!(key(Path::new("/a//")), b"/a");
        assert_eq!(parent_key(b"t/a"), Some(&b"t"[..]));
        assert_eq!(parent_key(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent_key(b"t//a"), Some(&b"t"[..]));
        assert_eq!(parent_key(b"a"), None);
    }
}
