//! Finding identical directories and subsets in a [`DirTree`].
//!
//! Identical: directories are bucketed by (multiset digest, file count,
//! bytes), then each bucket is split by the exact sorted list of contents
//! (with relative paths under `same_layout`), so a digest collision can
//! only cost time. Subsets: for each candidate, the paths of its rarest
//! content lead to the directories that could hold it; climbing from each,
//! the first directory holding every content (with multiplicity) is the
//! smallest superset on that branch.

use std::path::PathBuf;

use rustc_hash::{FxHashMap, FxHashSet};

use super::tree::{DirTree, Reason};
use super::{DirsOptions, DirsReport, IdenticalDirs, NotCompared, SubsetDir};
use crate::entry::FileId;

/// A directory's contents, sorted: `(relative path or empty, content)`.
type Contents = Vec<(Vec<u8>, u32)>;

pub(super) fn compare(tree: &DirTree, options: &DirsOptions) -> DirsReport {
    let mut report = DirsReport::default();
    let s = &mut report.summary;
    s.not_compared = not_compared(tree);
    let candidates: Vec<u32> = (0..tree.dirs.len() as u32)
        .filter(|&i| {
            let d = &tree.dirs[i as usize];
            !d.excluded && !d.unique && d.content_files > 0
        })
        .collect();
    s.candidates = candidates.len() as u64;

    let (sets, set_of) = identical_sets(tree, &candidates, options);
    let shown: Vec<&Vec<u32>> = sets
        .iter()
        .filter(|set| !implied_by_parents(tree, set, &set_of))
        .collect();
    // Copies beyond the first of each group shown: a copy inside another
    // group's such copy is freed with it, so not counted again.
    let mut freed: FxHashMap<u32, usize> = FxHashMap::default();
    for (k, set) in shown.iter().enumerate() {
        for &d in &set[1..] {
            freed.insert(d, k);
        }
    }
    let mut identical: Vec<IdenticalDirs> = shown
        .iter()
        .enumerate()
        .map(|(k, set)| {
            let first = &tree.dirs[set[0] as usize];
            IdenticalDirs {
                id: 0,
                bytes: first.content_bytes,
                files: first.content_files,
                reclaimable: reclaimable(tree, set, |d| freed_elsewhere(tree, d, k, &freed)),
                dirs: set.iter().map(|&d| path(tree, d)).collect(),
            }
        })
        .collect();
    identical.sort_by(|a, b| {
        (b.reclaimable, b.bytes)
            .cmp(&(a.reclaimable, a.bytes))
            .then_with(|| a.dirs.cmp(&b.dirs))
    });
    for (k, g) in identical.iter_mut().enumerate() {
        g.id = k as u64 + 1;
    }

    let (subsets, skipped) = subsets(tree, &candidates, options);
    let s = &mut report.summary;
    s.subsets_skipped = skipped;
    s.identical_groups = identical.len() as u64;
    s.identical_dirs = identical.iter().map(|g| g.dirs.len() as u64).sum();
    s.reclaimable_bytes = identical.iter().map(|g| g.reclaimable).sum();
    s.subsets = subsets.len() as u64;
    report.identical = identical;
    report.subsets = subsets;
    report
}

fn path(tree: &DirTree, d: u32) -> PathBuf {
    tree.dirs[d as usize].dir.path().to_path_buf()
}

fn not_compared(tree: &DirTree) -> NotCompared {
    let mut n = NotCompared::default();
    for d in &tree.dirs {
        match d.reason {
            Some(Reason::Unlisted) => n.unlisted += 1,
            Some(Reason::Filtered) => n.filtered += 1,
            Some(Reason::Unreadable) => n.unreadable += 1,
            Some(Reason::Special) => n.special += 1,
            None => {}
        }
    }
    n
}

/// The sorted contents of directory `a` (with relative paths when
/// layouts count); empty files are not content.
fn contents(tree: &DirTree, a: u32, layout: bool) -> Contents {
    let mut v: Contents = tree
        .files_under(a)
        .filter(|&f| tree.files[f].size > 0)
        .map(|f| {
            let rel = if layout {
                tree.relative(f, a)
            } else {
                Vec::new()
            };
            (rel, tree.content[f])
        })
        .collect();
    v.sort_unstable();
    v
}

/// Groups of directories with equal contents, each in tree order, none
/// holding another of its group; and the group of every directory with
/// those contents, the ones left out for being inside another included
/// (`backup/2024` holding only `d1` stands for `backup/2024/d1`, and
/// their children's matches are its).
fn identical_sets(
    tree: &DirTree,
    candidates: &[u32],
    options: &DirsOptions,
) -> (Vec<Vec<u32>>, FxHashMap<u32, usize>) {
    let mut buckets: FxHashMap<(u128, u64, u64), Vec<u32>> = FxHashMap::default();
    for &i in candidates {
        let d = &tree.dirs[i as usize];
        buckets
            .entry((d.digest, d.content_files, d.content_bytes))
            .or_default()
            .push(i);
    }
    let mut buckets: Vec<Vec<u32>> = buckets.into_values().filter(|b| b.len() > 1).collect();
    buckets.sort_unstable_by_key(|b| b[0]);
    let mut sets = Vec::new();
    let mut set_of = FxHashMap::default();
    for bucket in buckets {
        let mut keyed: Vec<(Contents, u32)> = bucket
            .iter()
            .map(|&d| (contents(tree, d, options.same_layout), d))
            .collect();
        keyed.sort();
        for run in keyed.chunk_by(|a, b| a.0 == b.0) {
            // In tree order; a directory holding another of the run (its
            // only content is that subdirectory) stands for both.
            let mut set: Vec<u32> = Vec::new();
            for &(_, d) in run {
                if !set.iter().any(|&k| tree.within(d, k)) {
                    set.push(d);
                }
            }
            if set.len() > 1 {
                for &(_, d) in run {
                    set_of.insert(d, sets.len());
                }
                sets.push(set);
            }
        }
    }
    (sets, set_of)
}

/// A group is implied when its members sit in distinct parents that are
/// all copies of each other (one group): listing the parents says it.
fn implied_by_parents(tree: &DirTree, set: &[u32], set_of: &FxHashMap<u32, usize>) -> bool {
    let mut parents = FxHashSet::default();
    let mut group = None;
    for &d in set {
        let Some(p) = tree.dirs[d as usize].parent else {
            return false;
        };
        let Some(&g) = set_of.get(&p) else {
            return false;
        };
        if !parents.insert(p) || group.is_some_and(|k| k != g) {
            return false;
        }
        group = Some(g);
    }
    true
}

/// Whether directory `d` lies inside a copy that another group (not `k`)
/// already counts as freed.
fn freed_elsewhere(tree: &DirTree, d: u32, k: usize, freed: &FxHashMap<u32, usize>) -> bool {
    let mut up = tree.dirs[d as usize].parent;
    while let Some(p) = up {
        if freed.get(&p).is_some_and(|&g| g != k) {
            return true;
        }
        up = tree.dirs[p as usize].parent;
    }
    false
}

/// Bytes freed by deleting every member but the first (except those
/// `counted` elsewhere): an inode is freed
/// when none of its links is in the first and all of them (its link
/// count) are in the others. Hard-linked twins and copies linked from
/// outside the run free nothing.
fn reclaimable(tree: &DirTree, set: &[u32], counted: impl Fn(u32) -> bool) -> u64 {
    let kept: FxHashSet<FileId> = tree.files_under(set[0]).map(|f| tree.files[f].id).collect();
    // Per inode in the other copies: (size, links, links seen there).
    let mut gone: FxHashMap<FileId, (u64, u32, u32)> = FxHashMap::default();
    for &d in set[1..].iter().filter(|&&d| !counted(d)) {
        for f in tree.files_under(d) {
            let r = &tree.files[f];
            if r.size > 0 && !kept.contains(&r.id) {
                gone.entry(r.id).or_insert((r.size, r.nlink, 0)).2 += 1;
            }
        }
    }
    gone.values()
        .filter(|(_, links, seen)| seen >= links)
        .map(|(size, ..)| size)
        .sum()
}

/// Files with each content, by content number.
fn by_content(tree: &DirTree) -> (Vec<u32>, Vec<u32>) {
    let n = tree.paths_of.len();
    let mut start = vec![0u32; n + 1];
    for (c, &k) in tree.paths_of.iter().enumerate() {
        start[c + 1] = start[c] + k;
    }
    let mut fill = start.clone();
    let mut files = vec![0u32; tree.content.len()];
    for (f, &c) in tree.content.iter().enumerate() {
        files[fill[c as usize] as usize] = f as u32;
        fill[c as usize] += 1;
    }
    (start, files)
}

/// The subset pairs to report, and how many candidates were skipped as
/// too common to look up.
fn subsets(tree: &DirTree, candidates: &[u32], options: &DirsOptions) -> (Vec<SubsetDir>, u64) {
    let (start, holders) = by_content(tree);
    let paths = |c: u32| &holders[start[c as usize] as usize..start[c as usize + 1] as usize];
    let layout = options.same_layout;
    // Every smallest superset found, reported or implied, to tell which
    // pairs the pairs of their ancestors already say.
    let mut pairs: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut out = Vec::new();
    let mut skipped = 0;
    for &a in candidates {
        let da = &tree.dirs[a as usize];
        let mine = contents(tree, a, layout);
        // With multiplicity: (relative path, content, count).
        let mut need: Vec<(&[u8], u32, u32)> = Vec::new();
        for (rel, c) in &mine {
            match need.last_mut() {
                Some(last) if !layout && last.1 == *c => last.2 += 1,
                _ => need.push((rel, *c, 1)),
            }
        }
        let rarest = need
            .iter()
            .map(|n| n.1)
            .min_by_key(|&c| tree.paths_of[c as usize])
            .expect("a candidate has content");
        if tree.paths_of[rarest as usize] as usize > options.common_limit {
            skipped += 1;
            continue;
        }
        need.sort_by_key(|n| tree.paths_of[n.1 as usize]);
        let holds = |b: u32| {
            need.iter().all(|&(rel, c, k)| {
                let mut found = 0;
                for &f in paths(c) {
                    let f = f as usize;
                    if tree.within(tree.files[f].dir, b) && (!layout || tree.relative(f, b) == rel)
                    {
                        found += 1;
                        if found >= k {
                            return true;
                        }
                    }
                }
                false
            })
        };
        let mut visited: FxHashSet<u32> = FxHashSet::default();
        let mut found: Vec<u32> = Vec::new();
        for &f in paths(rarest) {
            let mut b = tree.files[f as usize].dir;
            if tree.within(b, a) {
                continue;
            }
            loop {
                // Above here every directory also holds `a`.
                if tree.within(a, b) || !visited.insert(b) {
                    break;
                }
                let db = &tree.dirs[b as usize];
                if db.content_bytes >= da.content_bytes
                    && db.content_files >= da.content_files
                    && holds(b)
                {
                    // Equal counts: a copy, reported as identical; larger:
                    // the smallest superset on this branch.
                    if db.content_files > da.content_files {
                        found.push(b);
                    }
                    break;
                }
                match db.parent {
                    Some(p) => b = p,
                    None => break,
                }
            }
        }
        found.sort_unstable();
        let smallest: Vec<u32> = found
            .iter()
            .copied()
            .filter(|&b| !found.iter().any(|&o| o != b && tree.within(o, b)))
            .collect();
        for b in smallest {
            pairs.insert((a, b));
            if !implied_pair(tree, a, b, &pairs) {
                out.push(SubsetDir {
                    dir: path(tree, a),
                    within: path(tree, b),
                    bytes: da.content_bytes,
                    files: da.content_files,
                });
            }
        }
    }
    out.sort_by(|x, y| {
        y.bytes
            .cmp(&x.bytes)
            .then_with(|| x.dir.cmp(&y.dir))
            .then_with(|| x.within.cmp(&y.within))
    });
    (out, skipped)
}

/// Whether an ancestor of `a` lies within `b` or an ancestor of `b`: then
/// `a` does too, and that pair says so.
fn implied_pair(tree: &DirTree, a: u32, b: u32, pairs: &FxHashSet<(u32, u32)>) -> bool {
    let mut up = tree.dirs[a as usize].parent;
    while let Some(p) = up {
        let mut sup = Some(b);
        while let Some(q) = sup {
            if pairs.contains(&(p, q)) {
                return true;
            }
            sup = tree.dirs[q as usize].parent;
        }
        up = tree.dirs[p as usize].parent;
    }
    false
}
