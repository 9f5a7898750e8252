//! The plan: which copy of each group is kept and what happens to every
//! other one. Pure: groups and rules in, steps out; the dry run prints
//! these very values and the executor runs them.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use super::Action;
use crate::group::{DuplicateGroup, GroupFile};
use crate::hash::{Digest, HashAlgo};

/// One criterion of the `--keep` chain; earlier ones win, and a byte-wise
/// path comparison breaks the last tie, so a plan never depends on the
/// order groups or files arrived in.
#[derive(Clone, Debug)]
pub enum KeepRule {
    /// The file under the earliest root given.
    RootOrder,
    /// The least recently modified.
    Oldest,
    /// The most recently modified.
    Newest,
    /// The shortest path (in bytes).
    ShortestPath,
    /// The longest path.
    LongestPath,
    /// The fewest directories deep.
    Shallowest,
    /// The most directories deep.
    Deepest,
    /// The inode with the most hard links (read when planning).
    MostLinks,
    /// Paths matching the glob first.
    Path(GlobMatcher),
}

impl KeepRule {
    /// Parses one rule as written on the command line.
    pub fn parse(s: &str) -> Result<KeepRule, String> {
        Ok(match s {
            "root-order" => KeepRule::RootOrder,
            "oldest" => KeepRule::Oldest,
            "newest" => KeepRule::Newest,
            "shortest-path" => KeepRule::ShortestPath,
            "longest-path" => KeepRule::LongestPath,
            "shallowest" => KeepRule::Shallowest,
            "deepest" => KeepRule::Deepest,
            "most-links" => KeepRule::MostLinks,
            _ => match s.strip_prefix("path:") {
                Some(pattern) => KeepRule::Path(glob(pattern)?),
                None => {
                    return Err(format!(
                        "unknown keep rule {s:?} (root-order, oldest, newest, shortest-path, \
                         longest-path, shallowest, deepest, most-links, path:GLOB)"
                    ))
                }
            },
        })
    }

    /// The default chain: `root-order,oldest,shortest-path`.
    pub fn default_chain() -> Vec<KeepRule> {
        vec![
            KeepRule::RootOrder,
            KeepRule::Oldest,
            KeepRule::ShortestPath,
        ]
    }
}

/// A `--protect` or `path:` glob, matched against whole paths.
pub fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad glob {pattern:?}: {e}"))
}

/// What the planner is told besides the groups.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// The `--keep` chain (empty: [`KeepRule::default_chain`]).
    pub keep: Vec<KeepRule>,
    /// The roots in the order given, for `root-order`, `--isolate` and the
    /// layout under `move --to`.
    pub roots: Vec<PathBuf>,
    /// Files under these are never changed and are kept first.
    pub references: Vec<PathBuf>,
    /// Files whose path matches are never changed.
    pub protect: Vec<GlobMatcher>,
    /// Only copies under different roots count as duplicates.
    pub isolate: bool,
}

/// One change: `victim` goes (or becomes a link to `keep`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The group's id in the report.
    pub group: u64,
    /// The copy that stays.
    pub keep: GroupFile,
    /// The copy acted on.
    pub victim: GroupFile,
    /// For `move`: where the victim goes.
    pub dest: Option<PathBuf>,
    /// The files' size.
    pub size: u64,
    /// Their content hash (from the report), for the journal and undo.
    pub hash: Digest,
    /// The algorithm of `hash`.
    pub algo: HashAlgo,
}

/// Why a file of a group is left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// It is the kept copy.
    Kept,
    /// Under a `--reference` directory.
    Reference,
    /// Matched by `--protect`.
    Protected,
    /// The same inode as the kept copy (a hard link): not a copy.
    SameFile,
    /// `--isolate`: under the same root as the kept copy.
    SameRoot,
    /// In a trash can already: the trash's own (its info file names it).
    InTrash,
}

/// A group's decision.
#[derive(Clone, Debug)]
pub struct GroupPlan {
    /// The group's id.
    pub group: u64,
    /// The files' size.
    pub size: u64,
    /// The kept copy.
    pub keep: GroupFile,
    /// Files left alone besides the kept one, and why.
    pub held: Vec<(GroupFile, Held)>,
    /// Indices into [`Plan::steps`] of this group's changes.
    pub steps: std::ops::Range<usize>,
}

/// Everything a run would do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The action.
    pub action: Action,
    /// Per group, in report order.
    pub groups: Vec<GroupPlan>,
    /// The changes, group by group.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Bytes the plan would give back (a link or removal frees a copy).
    pub fn bytes(&self) -> u64 {
        self.steps.iter().map(|s| s.size).sum()
    }
}

/// Which root `path` lies under (the first that contains it), or
/// `roots.len()` if none.
fn root_of(roots: &[PathBuf], path: &Path) -> usize {
    roots
        .iter()
        .position(|r| path.starts_with(r))
        .unwrap_or(roots.len())
}

/// The real path of `p` (symlinks resolved), or its absolute spelling if
/// it cannot be resolved.
fn real(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Whether `p` lies in a freedesktop.org trash can (`.../Trash/files/`,
/// `.../.Trash-UID/files/`, `.../.Trash/UID/files/`): such a copy is kept
/// only if no other is left, since emptying the trash would delete it.
fn in_trash(p: &Path) -> bool {
    let parts: Vec<&[u8]> = p.iter().map(OsStrExt::as_bytes).collect();
    parts
        .windows(2)
        .any(|w| w[1] == b"files" && (w[0] == b"Trash" || w[0].starts_with(b".Trash-")))
        || parts
            .windows(3)
            .any(|w| w[0] == b".Trash" && w[2] == b"files")
}

fn links(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).map_or(0, |m| m.nlink())
}

/// Orders two files by the chain: `Less` means `a` is the better one to
/// keep.
fn rank(rules: &[KeepRule], roots: &[PathBuf], a: &GroupFile, b: &GroupFile) -> Ordering {
    for r in rules {
        let o = match r {
            KeepRule::RootOrder => root_of(roots, a).cmp(&root_of(roots, b)),
            KeepRule::Oldest => a.stamp.mtime_ns.cmp(&b.stamp.mtime_ns),
            KeepRule::Newest => b.stamp.mtime_ns.cmp(&a.stamp.mtime_ns),
            KeepRule::ShortestPath => a.as_os_str().len().cmp(&b.as_os_str().len()),
            KeepRule::LongestPath => b.as_os_str().len().cmp(&a.as_os_str().len()),
            KeepRule::Shallowest => depth(a).cmp(&depth(b)),
            KeepRule::Deepest => depth(b).cmp(&depth(a)),
            KeepRule::MostLinks => links(b).cmp(&links(a)),
            KeepRule::Path(g) => g.is_match(&b.path).cmp(&g.is_match(&a.path)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes())
}

/// Where `move --to dir` puts `path`: its path below its root, under
/// `dir` (a path under no root keeps its whole path, without the leading
/// `/`).
pub fn move_dest(dir: &Path, roots: &[PathBuf], path: &Path) -> PathBuf {
    let rel = roots
        .iter()
        .find_map(|r| path.strip_prefix(r).ok())
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or(path);
    // Only plain names below `dir`: a `..` in a report's path must not
    // lead out of it.
    let mut out = dir.to_path_buf();
    for c in rel.components() {
        if let std::path::Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// Plans `action` over `groups`.
pub fn plan(groups: &[DuplicateGroup], action: &Action, opts: &PlanOptions) -> Plan {
    let default_chain = KeepRule::default_chain();
    let rules = if opts.keep.is_empty() {
        &default_chain
    } else {
        &opts.keep
    };
    // References and protections hold however a path is spelled: a file
    // is compared by its real path too (`./t/ref/x`, `t/ref/x` and a path
    // through a symlinked root are one place).
    let references: Vec<PathBuf> = opts.references.iter().map(|r| real(r)).collect();
    let mut parents: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut real_of = |f: &GroupFile| -> PathBuf {
        let parent = f.parent().unwrap_or(Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir = parents
            .entry(parent.to_path_buf())
            .or_insert_with(|| real(parent))
            .clone();
        f.file_name().map_or(dir.clone(), |n| dir.join(n))
    };
    // Whether a file is (under a reference, protected, in a trash can),
    // by its spelled and its real path (resolved once per directory). A
    // trash can is recognised however it is reached (`cd Trash; dedupe
    // trash files ...`, a symlink to it).
    let mut guard = |f: &GroupFile| -> (bool, bool, bool) {
        let r = real_of(f);
        (
            references.iter().any(|d| r.starts_with(d)),
            opts.protect
                .iter()
                .any(|g| g.is_match(&f.path) || g.is_match(&r)),
            in_trash(f) || in_trash(&r),
        )
    };
    let mut out = Plan {
        action: action.clone(),
        groups: Vec::new(),
        steps: Vec::new(),
    };
    for g in groups {
        if g.files.len() < 2 {
            continue;
        }
        let guards: HashMap<&Path, (bool, bool, bool)> = g
            .files
            .iter()
            .map(|f| (f.path.as_path(), guard(f)))
            .collect();
        let in_trash = |f: &GroupFile| guards[f.path.as_path()].2;
        let reference = |f: &GroupFile| guards[f.path.as_path()].0;
        let is_protected = |f: &GroupFile| guards[f.path.as_path()].1;
        // References first, copies in a trash can last, then the chain.
        let mut files: Vec<&GroupFile> = g.files.iter().collect();
        files.sort_by(|a, b| {
            reference(b)
                .cmp(&reference(a))
                .then_with(|| in_trash(a).cmp(&in_trash(b)))
                .then_with(|| rank(rules, &opts.roots, a, b))
        });
        let keep = files[0];
        let keep_root = root_of(&opts.roots, keep);
        let start = out.steps.len();
        let mut held = Vec::new();
        for &f in &files[1..] {
            let why = if f.stamp.id == keep.stamp.id {
                Some(Held::SameFile)
            } else if reference(f) {
                Some(Held::Reference)
            } else if in_trash(f) {
                Some(Held::InTrash)
            } else if is_protected(f) {
                Some(Held::Protected)
            } else if opts.isolate && root_of(&opts.roots, f) == keep_root {
                Some(Held::SameRoot)
            } else {
                None
            };
            match why {
                Some(h) => held.push((f.clone(), h)),
                None => out.steps.push(Step {
                    group: g.id,
                    keep: keep.clone(),
                    victim: f.clone(),
                    dest: match action {
                        Action::Move { to } => Some(move_dest(to, &opts.roots, f)),
                        _ => None,
                    },
                    size: g.size,
                    hash: g.hash,
                    algo: g.algo,
                }),
            }
        }
        out.groups.push(GroupPlan {
            group: g.id,
            size: g.size,
            keep: keep.clone(),
            held,
            steps: start..out.steps.len(),
        });
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
