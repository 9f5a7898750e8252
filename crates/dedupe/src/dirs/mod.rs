//! Duplicate directories: directories whose files have the same contents
//! (identical), or whose contents are all found in another directory
//! (subsets).
//!
//! A directory's content is the multiset of the contents of the non-empty
//! regular files beneath it, recursively; names and layout are ignored
//! unless [`DirsOptions::same_layout`]. It is built from a normal
//! [`Finder`](crate::Finder) run that also observes the walk
//! ([`FinderBuilder::observe_walk`](crate::FinderBuilder::observe_walk)):
//! the walk says what each directory holds, the duplicate groups say which
//! files have equal bytes. No file is read for this beyond what the finder
//! reads: a file in no group has a content nobody else has, and that alone
//! rules its ancestors out.
//!
//! ```
//! use std::sync::Arc;
//! use dedupe::dirs::{Collector, DirsOptions};
//! use dedupe::{Config, Finder};
//!
//! # let t = tempfile::tempdir().unwrap();
//! # for d in ["a", "b"] {
//! #     std::fs::create_dir(t.path().join(d)).unwrap();
//! #     std::fs::write(t.path().join(d).join("x"), b"same bytes").unwrap();
//! # }
//! let finder = Finder::builder(Arc::new(Config { min_file_size: 0, ..Config::default() }))
//!     .observe_walk(true)
//!     .build();
//! let mut dirs = Collector::new(&DirsOptions::default());
//! let report = finder.run(&[t.path()], |ev| dirs.observe(&ev)).unwrap();
//! let found = dirs.finish(&report, &DirsOptions::default());
//! assert_eq!(found.identical.len(), 1);
//! assert_eq!(found.identical[0].dirs.len(), 2);
//! ```
//!
//! Memory: a few dozen bytes per file and per directory seen, beside what
//! the finder itself holds.

mod matching;
pub mod output;
mod tree;

use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::entry::{DirPath, FileId};
use crate::pipeline::{FindEvent, FindReport};
use crate::walk::DirDone;

pub use tree::{DirTree, TreeDir};

/// How directories are compared.
#[derive(Clone, Debug)]
pub struct DirsOptions {
    /// Also require the same relative paths (names and layout), not just
    /// the same contents.
    pub same_layout: bool,
    /// A content found in more paths than this (empty-ish boilerplate,
    /// licence files) is not used to look for supersets; a directory whose
    /// every content is that common is not checked as a subset (counted in
    /// [`DirsSummary::subsets_skipped`]).
    pub common_limit: usize,
}

impl Default for DirsOptions {
    fn default() -> Self {
        DirsOptions {
            same_layout: false,
            common_limit: 1000,
        }
    }
}

/// Directories with equal content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdenticalDirs {
    /// 1-based, in report order.
    pub id: u64,
    /// Bytes of content in each copy.
    pub bytes: u64,
    /// Non-empty files in each copy.
    pub files: u64,
    /// Bytes freed by deleting every copy but the first: inodes whose
    /// every link is in those copies (a hard-linked twin, or one linked
    /// from outside, frees nothing).
    pub reclaimable: u64,
    /// The copies, in report order (root order, then path).
    pub dirs: Vec<PathBuf>,
}

/// A directory all of whose contents are also in another, larger one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetDir {
    /// The smaller directory.
    pub dir: PathBuf,
    /// The directory holding every content of `dir` and more.
    pub within: PathBuf,
    /// Bytes of content in `dir`.
    pub bytes: u64,
    /// Non-empty files in `dir`.
    pub files: u64,
}

/// Why directories were left out of the comparison (each counted once, at
/// the directory itself; their ancestors are left out too).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NotCompared {
    /// Not listed, or not wholly: unreadable, on another file system with
    /// `--one-file-system`, reached twice, or the run was stopped.
    pub unlisted: u64,
    /// Holding entries the filters left out (names, sizes, hidden, depth).
    pub filtered: u64,
    /// Holding entries that could not be examined.
    pub unreadable: u64,
    /// Holding symlinks (not followed), FIFOs, sockets or devices: deleting
    /// the directory would delete them, and they have no content to compare.
    pub special: u64,
}

/// Totals of a `dirs` run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirsSummary {
    /// Directories listed.
    pub dirs_scanned: u64,
    /// Regular files found.
    pub files_scanned: u64,
    /// Their bytes.
    pub bytes_scanned: u64,
    /// Directories with content that could match another.
    pub candidates: u64,
    /// Groups of identical directories reported.
    pub identical_groups: u64,
    /// Directories in those groups.
    pub identical_dirs: u64,
    /// Subset pairs reported.
    pub subsets: u64,
    /// Bytes the identical groups would free.
    pub reclaimable_bytes: u64,
    /// Directories left out, by reason.
    pub not_compared: NotCompared,
    /// Directories not checked as subsets: every content in them is common
    /// (see [`DirsOptions::common_limit`]).
    pub subsets_skipped: u64,
    /// Whether groups were compared with names and layout.
    pub same_layout: bool,
    /// The run was cancelled; nothing was compared.
    pub interrupted: bool,
    /// Wall time of the finder run, in milliseconds.
    pub elapsed_ms: u64,
}

/// What `dirs` found.
#[derive(Clone, Debug, Default)]
pub struct DirsReport {
    /// Totals.
    pub summary: DirsSummary,
    /// Identical directories, most reclaimable first; only maximal ones
    /// (copies inside directories that are copies are not listed again).
    pub identical: Vec<IdenticalDirs>,
    /// Subsets, largest first; only the smallest directory holding each.
    pub subsets: Vec<SubsetDir>,
}

/// What the walk said of one directory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listing {
    complete: bool,
    excluded: u64,
    unreadable: u64,
    special: u64,
    subdirs: u64,
}

/// A regular file seen by the walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileRec {
    pub(crate) dir: u32,
    /// Links to the inode (saturated): deleting a copy frees its bytes only
    /// when every link goes with it.
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    pub(crate) id: FileId,
}

/// A directory seen by the walk, before the tree is put in order.
pub(crate) struct Seen {
    pub(crate) dir: Arc<DirPath>,
    pub(crate) listing: Option<Listing>,
    /// Holds a followed symlink (`-L`): a link is not a copy, and
    /// deleting its directory deletes it.
    pub(crate) links: bool,
}

/// Gathers what the walk reports, directory by directory; give it every
/// event of a finder run that observes the walk, then
/// [`Collector::finish`].
pub struct Collector {
    index: FxHashMap<Box<[u8]>, u32>,
    dirs: Vec<Seen>,
    files: Vec<FileRec>,
    /// File names, only kept when layouts are compared.
    names: Option<Vec<Box<[u8]>>>,
    /// The directory of the last file, as most files follow a sibling: its
    /// `Arc`'s address (the `Arc` is kept in `dirs`, so the address cannot
    /// be reused by another directory) and its index.
    last: Option<(usize, u32)>,
}

impl Collector {
    /// An empty collector.
    pub fn new(options: &DirsOptions) -> Collector {
        Collector {
            index: FxHashMap::default(),
            dirs: Vec::new(),
            files: Vec::new(),
            names: options.same_layout.then(Vec::new),
            last: None,
        }
    }

    /// Takes in one finder event (those other than files and directories
    /// are ignored).
    pub fn observe(&mut self, ev: &FindEvent<'_>) {
        match ev {
            FindEvent::Files(files) => {
                for f in *files {
                    let dir = self.intern(f.dir());
                    if f.kind == crate::entry::EntryKind::SymlinkToFile {
                        self.dirs[dir as usize].links = true;
                    }
                    self.files.push(FileRec {
                        dir,
                        nlink: u32::try_from(f.nlink).unwrap_or(u32::MAX),
                        size: f.size,
                        id: f.id,
                    });
                    if let Some(names) = &mut self.names {
                        use std::os::unix::ffi::OsStrExt;
                        names.push(f.name().as_bytes().into());
                    }
                }
            }
            FindEvent::Dirs(done) => {
                for d in *done {
                    self.done(d);
                }
            }
            _ => {}
        }
    }

    fn done(&mut self, d: &DirDone) {
        let i = self.intern(&d.dir) as usize;
        let l = Listing {
            complete: d.complete,
            excluded: d.excluded,
            unreadable: d.unreadable,
            special: d.special,
            subdirs: d.subdirs,
        };
        // A directory reached twice (a second root spelled the same) keeps
        // the listing that saw it whole.
        match &mut self.dirs[i].listing {
            Some(old) if old.complete && !l.complete => {}
            slot => *slot = Some(l),
        }
    }

    fn intern(&mut self, dir: &Arc<DirPath>) -> u32 {
        let ptr = Arc::as_ptr(dir) as usize;
        if let Some((p, i)) = self.last {
            if p == ptr {
                return i;
            }
        }
        let key = tree::key(dir.path());
        // Looked up before inserting: the key is allocated only for a
        // directory seen for the first time.
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.dirs.len() as u32;
                self.index.insert(key.into(), i);
                self.dirs.push(Seen {
                    dir: Arc::clone(dir),
                    listing: None,
                    links: false,
                });
                i
            }
        };
        self.last = Some((ptr, i));
        i
    }

    /// The directory tree with what each directory holds, for views of
    /// where the space goes.
    pub fn into_tree(self, report: &FindReport) -> DirTree {
        DirTree::build(self.dirs, self.files, self.names, self.index, report)
    }

    /// Compares the directories seen against the finder's groups.
    pub fn finish(self, report: &FindReport, options: &DirsOptions) -> DirsReport {
        self.finish_with_tree(report, options).0
    }

    /// [`Collector::finish`], also handing back the tree (for the space
    /// views of the same run).
    pub fn finish_with_tree(
        self,
        report: &FindReport,
        options: &DirsOptions,
    ) -> (DirsReport, DirTree) {
        let tree = self.into_tree(report);
        // A stopped run saw parts of directories: nothing is compared
        // (a half-seen parent could make a child look like a subset of
        // its own ancestor).
        let mut out = if report.summary.interrupted {
            DirsReport::default()
        } else {
            matching::compare(&tree, options)
        };
        let s = &report.summary;
        out.summary.dirs_scanned = s.dirs_scanned;
        out.summary.files_scanned = s.files_scanned;
        out.summary.bytes_scanned = s.bytes_scanned;
        out.summary.interrupted = s.interrupted;
        out.summary.elapsed_ms = s.elapsed_ms;
        out.summary.same_layout = options.same_layout;
        (out, tree)
    }
}
