//! `dedupe dirs` against a brute-force reference on generated trees with
//! the traps the issue lists: exact and renamed copies, copies differing
//! in one byte (first, middle, last, in every size regime), subsets and
//! supersets, nested copies, `{a,a,b}` against `{a,b,b}`, empty
//! directories and directories of empty files, hard-linked copies, and
//! directories holding a symlink, a FIFO or a filtered-out file.

// Paths in messages are shown with `{:?}`: the generated names include
// bytes that `display()` would hide.
#![allow(clippy::unnecessary_debug_formatting)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dedupe::report::decode_json_path;
use serde_json::Value;

use crate::util::{bin, run, Tree};

/// A content: its length and a hash of its bytes (the test's own; the
/// contents are few and small, so a 64-bit hash plus the length is exact
/// in practice and independent of the tool's hashes).
type Content = (u64, u64);

fn content_of(bytes: &[u8]) -> Content {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    (bytes.len() as u64, h.finish())
}

/// What the reference knows of one directory.
#[derive(Default, Clone)]
struct RefDir {
    /// Non-empty regular files beneath it, as a multiset.
    contents: BTreeMap<Content, u32>,
    /// Distinct inodes beneath it (non-empty files): size, link count,
    /// and how many of its paths are beneath it.
    inodes: BTreeMap<(u64, u64), (u64, u64, u64)>,
    /// Holds (beneath it) a symlink, a FIFO or a filtered-out file.
    tainted: bool,
    parent: Option<PathBuf>,
}

impl RefDir {
    fn files(&self) -> u32 {
        self.contents.values().sum()
    }
}

/// Every directory below `root` (itself included), by a plain recursive
/// walk that follows nothing. Files named `*.skip` are the filtered ones.
fn reference(root: &Path) -> BTreeMap<PathBuf, RefDir> {
    fn rec(dir: &Path, parent: Option<&Path>, out: &mut BTreeMap<PathBuf, RefDir>) -> RefDir {
        let mut me = RefDir {
            parent: parent.map(Path::to_path_buf),
            ..RefDir::default()
        };
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let md = fs::symlink_metadata(&path).unwrap();
            if md.is_dir() {
                let sub = rec(&path, Some(dir), out);
                for (c, n) in &sub.contents {
                    *me.contents.entry(*c).or_default() += n;
                }
                for (ino, (size, nlink, paths)) in sub.inodes {
                    me.inodes.entry(ino).or_insert((size, nlink, 0)).2 += paths;
                }
                me.tainted |= sub.tainted;
            } else if md.is_file() {
                if path.as_os_str().as_bytes().ends_with(b".skip") {
                    me.tainted = true;
                } else if md.len() > 0 {
                    *me.contents
                        .entry(content_of(&fs::read(&path).unwrap()))
                        .or_default() += 1;
                    me.inodes
                        .entry((md.dev(), md.ino()))
                        .or_insert((md.len(), md.nlink(), 0))
                        .2 += 1;
                }
            } else {
                me.tainted = true;
            }
        }
        out.insert(dir.to_path_buf(), me.clone());
        me
    }
    let mut out = BTreeMap::new();
    rec(root, None, &mut out);
    out
}

fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn bytes(d: &RefDir) -> u64 {
    d.contents.iter().map(|(c, n)| c.0 * u64::from(*n)).sum()
}

/// `a`'s multiset is inside `b`'s.
fn inside(a: &RefDir, b: &RefDir) -> bool {
    a.contents
        .iter()
        .all(|(c, n)| b.contents.get(c).is_some_and(|m| m >= n))
}

/// The run's report, parsed.
struct Found {
    groups: Vec<(Vec<PathBuf>, u64, u64, u64)>,
    subsets: BTreeSet<(PathBuf, PathBuf)>,
}

fn dirs_json(root: &Path, extra: &[&str]) -> (Found, Value) {
    let mut cmd = bin();
    cmd.arg("dirs")
        .arg(root)
        .args(["--format", "json", "--exclude", "*.skip"]);
    cmd.args(extra);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let path =
        |p: &Value| PathBuf::from(std::ffi::OsStr::from_bytes(&decode_json_path(p).unwrap()));
    let groups = v["identical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let dirs = g["dirs"].as_array().unwrap().iter().map(path).collect();
            let n = |k: &str| g[k].as_u64().unwrap();
            (dirs, n("bytes"), n("files"), n("reclaimable"))
        })
        .collect();
    let subsets = v["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (path(&s["dir"]), path(&s["within"])))
        .collect();
    (Found { groups, subsets }, v)
}

/// The ancestors of `d`, nearest first.
fn up(r: &BTreeMap<PathBuf, RefDir>, d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut p = r[d].parent.as_deref();
    while let Some(x) = p {
        v.push(x.to_path_buf());
        p = r[x].parent.as_deref();
    }
    v
}

/// Checks a report against the reference: everything reported is true,
/// and every true relation is reported or implied by one that is.
// One function: soundness, maximality and completeness read best beside
// the one reference they share.
#[allow(clippy::too_many_lines)]
fn check(root: &Path) -> (usize, usize) {
    let r = reference(root);
    let (found, _) = dirs_json(root, &[]);
    let ok = |d: &RefDir| !d.tainted && !d.contents.is_empty();
    let same = |a: &Path, b: &Path| {
        let (x, y) = (&r[a], &r[b]);
        ok(x) && ok(y) && !nested(a, b) && x.contents == y.contents
    };
    let sub = |a: &Path, b: &Path| {
        let (x, y) = (&r[a], &r[b]);
        ok(x) && !nested(a, b) && y.files() > x.files() && inside(x, y)
    };
    // Sound.
    let mut group_of: HashMap<PathBuf, usize> = HashMap::new();
    for (k, (dirs, b, n, reclaim)) in found.groups.iter().enumerate() {
        assert!(dirs.len() >= 2);
        for d in dirs {
            assert!(
                same(&dirs[0], d) || d == &dirs[0],
                "{dirs:?} are not identical"
            );
            assert_eq!((bytes(&r[d]), u64::from(r[d].files())), (*b, *n), "{d:?}");
            group_of.insert(d.clone(), k);
        }
        // Reclaimable: inodes not in the first copy whose every link is
        // in the others (counted by a walk of each copy).
        // A copy inside another group's freed copy is not counted again.
        let kept = &r[&dirs[0]].inodes;
        let mut links: BTreeMap<(u64, u64), (u64, u64, u64)> = BTreeMap::new();
        let elsewhere = |d: &Path| {
            found
                .groups
                .iter()
                .enumerate()
                .any(|(j, g)| j != k && g.0[1..].iter().any(|o| o != d && d.starts_with(o)))
        };
        for d in dirs[1..].iter().filter(|d| !elsewhere(d)) {
            for (ino, (size, nlink, paths)) in &r[d].inodes {
                if !kept.contains_key(ino) {
                    links.entry(*ino).or_insert((*size, *nlink, 0)).2 += paths;
                }
            }
        }
        let want: u64 = links
            .values()
            .filter(|(_, n, seen)| seen >= n)
            .map(|v| v.0)
            .sum();
        assert_eq!(*reclaim, want, "{dirs:?}");
    }
    for (a, b) in &found.subsets {
        assert!(sub(a, b), "{a:?} is not a subset of {b:?}");
    }
    // Maximal: no group whose members sit in distinct parents of one
    // reported group; no subset whose ancestor is reported within the
    // same directory or an ancestor of it.
    // A directory's group: its own, or that of an ancestor with the same
    // contents standing for it (`backup/2024` holding only `d1`).
    let group_with_stand_in = |d: &Path| -> Option<usize> {
        std::iter::once(d.to_path_buf())
            .chain(up(&r, d))
            .take_while(|a| r[a].contents == r[d].contents)
            .find_map(|a| group_of.get(&a).copied())
    };
    for (dirs, ..) in &found.groups {
        let parents: Vec<Option<usize>> = dirs
            .iter()
            .map(|d| r[d].parent.as_ref().and_then(|p| group_with_stand_in(p)))
            .collect();
        let distinct: BTreeSet<&Option<PathBuf>> = dirs.iter().map(|d| &r[d].parent).collect();
        let implied = parents[0].is_some()
            && parents.iter().all(|p| *p == parents[0])
            && distinct.len() == dirs.len();
        assert!(!implied, "{dirs:?} is implied by their parents' group");
    }
    for (a, b) in &found.subsets {
        for (c, d) in &found.subsets {
            let implied = a != c && a.starts_with(c) && b.starts_with(d)
                || a == c && b != d && b.starts_with(d);
            assert!(!implied, "({a:?}, {b:?}) is implied by ({c:?}, {d:?})");
        }
    }
    // Complete, up to what a reported relation implies.
    let covered_same = |a: &Path, b: &Path| -> bool {
        // Walk up both while the parents are copies too; some level must
        // be one reported group, or one side's ancestor standing for it.
        let (mut a, mut b) = (a.to_path_buf(), b.to_path_buf());
        loop {
            if group_of
                .get(&a)
                .is_some_and(|g| group_of.get(&b) == Some(g))
            {
                return true;
            }
            let stand_in = |x: &Path, y: &Path| {
                up(&r, x).iter().any(|anc| {
                    r[anc].contents == r[x].contents
                        && group_of
                            .get(anc)
                            .is_some_and(|g| group_of.get(y) == Some(g))
                })
            };
            if stand_in(&a, &b) || stand_in(&b, &a) {
                return true;
            }
            match (r[&a].parent.clone(), r[&b].parent.clone()) {
                (Some(pa), Some(pb)) if pa != pb && same(&pa, &pb) => (a, b) = (pa, pb),
                _ => return false,
            }
        }
    };
    let dirs: Vec<&PathBuf> = r.keys().collect();
    for a in &dirs {
        for b in &dirs {
            if a < b && same(a, b) {
                assert!(covered_same(a, b), "{a:?} = {b:?} not reported");
            }
        }
    }
    for a in &dirs {
        for b in &dirs {
            if !sub(a, b) {
                continue;
            }
            let by_smaller = r.keys().any(|c| {
                c != *b
                    && c.starts_with(b)
                    && (found.subsets.contains(&((*a).clone(), c.clone())) || (same(a, c)))
            });
            let by_ancestor = up(&r, a).iter().any(|pa| {
                std::iter::once((*b).clone())
                    .chain(up(&r, b))
                    .any(|qb| sub(pa, &qb))
            });
            assert!(
                found.subsets.contains(&((*a).clone(), (*b).clone())) || by_smaller || by_ancestor,
                "{a:?} within {b:?} not reported"
            );
        }
    }
    (found.groups.len(), found.subsets.len())
}

/// Deterministic pseudo-random numbers (xorshift), so a failing seed can
/// be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Contents in every size regime, each with variants differing in the
/// first, middle and last byte.
fn pool() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, &size) in [1usize, 100, 4097, 70_000, 1_100_000].iter().enumerate() {
        let base: Vec<u8> = (0..size).map(|i| (i * 31 + k * 7) as u8).collect();
        out.push(base.clone());
        if size > 1 {
            for at in [0, size / 2, size - 1] {
                let mut v = base.clone();
                v[at] ^= 0x55;
                out.push(v);
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path, rename: bool) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let mut name = e.file_name();
        if rename {
            name.push(".renamed");
        }
        let md = fs::symlink_metadata(e.path()).unwrap();
        if md.is_dir() {
            copy_tree(&e.path(), &to.join(&name), rename);
        } else if md.is_file() {
            fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

fn link_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            link_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::hard_link(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A random module: a few files from the pool (small ones mostly) and up
/// to two levels of subdirectories.
fn module(rng: &mut Rng, pool: &[Vec<u8>], dir: &Path, depth: u32) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..=rng.below(4) {
        // The 1.1 MB contents are the last four: rarely.
        let k = if rng.below(8) == 0 {
            rng.below(pool.len())
        } else {
            rng.below(pool.len() - 4)
        };
        fs::write(dir.join(format!("f{i}")), &pool[k]).unwrap();
    }
    if depth < 2 {
        for s in 0..rng.below(3) {
            module(rng, pool, &dir.join(format!("s{s}")), depth + 1);
        }
    }
}

fn generated(seed: u64) -> Tree {
    let t = Tree::new();
    let pool = pool();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let root = t.root().to_path_buf();
    for m in 0..4 {
        let src = root.join(format!("m{m}"));
        module(&mut rng, &pool, &src, 0);
        let c = root.join(format!("copies{m}"));
        match rng.below(10) {
            0 => copy_tree(&src, &c.join("exact"), false),
            1 => copy_tree(&src, &c.join("renamed"), true),
            2 => {
                // One byte off in one file: first, middle or last.
                copy_tree(&src, &c.join("off"), false);
                let f = c.join("off/f0");
                let mut b = fs::read(&f).unwrap();
                let at = [0, b.len() / 2, b.len() - 1][rng.below(3)];
                b[at] ^= 1;
                fs::write(&f, b).unwrap();
            }
            3 => {
                copy_tree(&src, &c.join("missing"), false);
                fs::remove_file(c.join("missing/f0")).unwrap();
            }
            4 => {
                copy_tree(&src, &c.join("extra"), false);
                fs::write(c.join("extra/more"), format!("extra {seed} {m}")).unwrap();
            }
            // A copy wrapped in directories holding nothing else.
            5 => copy_tree(&src, &c.join("deep/er/nest"), false),
            6 => link_tree(&src, &c.join("linked")),
            7 => {
                copy_tree(&src, &c.join("sym"), false);
                std::os::unix::fs::symlink("f0", c.join("sym/link")).unwrap();
            }
            8 => {
                copy_tree(&src, &c.join("fifo"), false);
                t.fifo(
                    c.join("fifo/pipe")
                        .strip_prefix(&root)
                        .unwrap()
                        .as_os_str()
                        .as_bytes(),
                );
            }
            _ => {
                copy_tree(&src, &c.join("skip"), false);
                fs::write(c.join("skip/x.skip"), b"filtered").unwrap();
            }
        }
    }
    // The XOR trap, empty things, and a copy of a copy's parent.
    // rmlint's XOR trap: {a,a,a,b} and {a,b,b,b} XOR to the same digest.
    for (i, c) in ["a", "a", "a", "b"].iter().enumerate() {
        t.file(format!("trap/aaab/{i}"), c);
    }
    for (i, c) in ["a", "b", "b", "b"].iter().enumerate() {
        t.file(format!("trap/abbb/{i}"), c);
    }
    t.dir("empty1");
    t.dir("empty2/inner");
    t.file("zero1/e", "");
    t.file("zero2/e", "");
    t
}

#[test]
fn generated_trees_match_the_brute_force_reference() {
    let (mut groups, mut subsets) = (0, 0);
    for seed in 1..=12 {
        let t = generated(seed);
        let (g, s) = check(t.root());
        groups += g;
        subsets += s;
    }
    // The trees must hold relations to check, or the check proves nothing.
    assert!(
        groups >= 12 && subsets >= 12,
        "{groups} groups, {subsets} subsets"
    );
}

#[test]
fn the_xor_trap_and_empty_things_are_not_copies() {
    let t = generated(99);
    let (found, _) = dirs_json(t.root(), &[]);
    for (dirs, ..) in &found.groups {
        for d in dirs {
            let rel = d.strip_prefix(t.root()).unwrap();
            for bad in ["trap", "empty1", "empty2", "zero1", "zero2"] {
                assert!(!rel.starts_with(bad), "{rel:?} reported in {dirs:?}");
            }
        }
    }
}

#[test]
fn hard_linked_copies_reclaim_nothing_and_tainted_copies_are_left_out() {
    let t = Tree::new();
    t.file("a/x", "one");
    t.file("a/sub/y", "two two");
    link_tree(&t.path("a"), &t.path("linked"));
    // A copy linked from outside the searched tree frees nothing either.
    let outside = Tree::new();
    outside.file("o/x", "one");
    outside.file("o/sub/y", "two two");
    link_tree(&outside.path("o"), &t.path("z-linked-out"));
    copy_tree(&t.path("a"), &t.path("copy"), false);
    copy_tree(&t.path("a"), &t.path("sym"), false);
    t.symlink("x", "sym/l");
    copy_tree(&t.path("a"), &t.path("skip"), false);
    t.file("skip/sub/z.skip", "filtered");
    let (found, v) = dirs_json(t.root(), &[]);
    let rel = |p: &PathBuf| p.strip_prefix(t.root()).unwrap().to_path_buf();
    let groups: Vec<(Vec<PathBuf>, u64)> = found
        .groups
        .iter()
        .map(|g| (g.0.iter().map(rel).collect(), g.3))
        .collect();
    assert_eq!(
        groups,
        [
            (
                vec![
                    "a".into(),
                    "copy".into(),
                    "linked".into(),
                    "z-linked-out".into()
                ],
                10
            ),
            // `sym/sub` holds no symlink itself: it is a copy, and as its
            // parent is not one, it is listed on its own; `copy/sub` goes
            // with `copy`, so only `sym/sub` frees bytes here.
            (
                vec![
                    "a/sub".into(),
                    "copy/sub".into(),
                    "linked/sub".into(),
                    "sym/sub".into(),
                    "z-linked-out/sub".into()
                ],
                7
            ),
        ],
        "the linked copy frees nothing, the tainted ones are not copies"
    );
    let nc = &v["summary"]["not_compared"];
    assert_eq!(
        (nc["special"].as_u64(), nc["filtered"].as_u64()),
        (Some(1), Some(1))
    );
    // The subsets: the symlinked and filtered copies hold `a` and more.
    assert!(
        found.subsets.is_empty()
            || found
                .subsets
                .iter()
                .all(|(d, _)| rel(d) != Path::new("sym"))
    );
}

#[test]
fn a_copy_inside_a_freed_copy_is_not_counted_twice_and_links_are_refused() {
    let t = Tree::new();
    t.file("A/s/f", "one\n");
    t.file("B/s/f", "one\n");
    t.file("A/g", "two\n");
    t.file("B/g", "two\n");
    t.file("C/f", "one\n");
    let (found, v) = dirs_json(t.root(), &[]);
    let reclaim: Vec<u64> = found.groups.iter().map(|g| g.3).collect();
    // [A, B] frees B (8 B); [A/s, B/s, C] frees C only, B/s goes with B.
    assert_eq!(reclaim, [8, 4]);
    assert_eq!(
        v["summary"]["reclaimable_bytes"], 12,
        "what `find` says too"
    );
    let mut cmd = bin();
    cmd.arg("dirs").arg("-L").arg(t.root());
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("follow-links"));
}

#[test]
fn same_layout_needs_the_same_names() {
    let t = Tree::new();
    t.file("a/x", "one");
    t.file("a/y", "two");
    copy_tree(&t.path("a"), &t.path("b"), true);
    copy_tree(&t.path("a"), &t.path("c"), false);
    let (loose, _) = dirs_json(t.root(), &[]);
    assert_eq!(loose.groups[0].0.len(), 3);
    let (strict, _) = dirs_json(t.root(), &["--same-layout"]);
    let rel: Vec<PathBuf> = strict.groups[0]
        .0
        .iter()
        .map(|p| p.strip_prefix(t.root()).unwrap().to_path_buf())
        .collect();
    assert_eq!(rel, [PathBuf::from("a"), PathBuf::from("c")]);
}

#[test]
fn reports_are_deterministic_and_paths_lossless() {
    let t = generated(7);
    t.file(b"odd\xff\nname/x".as_slice(), "z z z");
    t.file(b"odd2/x".as_slice(), "z z z");
    let (_, first) = dirs_json(t.root(), &[]);
    let (_, second) = dirs_json(t.root(), &[]);
    let strip = |mut v: Value| {
        v["summary"]["elapsed_ms"] = Value::Null;
        v
    };
    assert_eq!(strip(first.clone()), strip(second));
    let all: Vec<Vec<u8>> = first["identical"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["dirs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| decode_json_path(p).unwrap())
        })
        .collect();
    assert!(all.iter().any(|p| p.ends_with(b"odd\xff\nname")), "{all:?}");
}
