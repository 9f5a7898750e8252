//! Acting on duplicates: `remove`, `link`, `move` and `undo` on trap
//! trees, checked for what must always hold: every distinct content still
//! exists, nothing outside the plan changed, a dry run changes nothing,
//! a second `link` changes nothing, `undo` gives the tree back; and the
//! same after the process is stopped at chosen and at random moments.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::hardening::{as_root, Mount};
use crate::util::{bin, code, p, run, stderr, Tree};

/// What a path holds: a file's bytes, mode and mtime, or a link's target.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    File {
        bytes: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
    },
    Link(Vec<u8>),
    Dir,
}

/// Short: a failed comparison of two trees must not print every byte.
impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::File { bytes, mode, mtime } => write!(
                f,
                "File({} bytes, first {:?}, mode {mode:o}, mtime {mtime:?})",
                bytes.len(),
                &bytes[..bytes.len().min(4)]
            ),
            Node::Link(t) => write!(f, "Link({})", String::from_utf8_lossy(t)),
            Node::Dir => f.write_str("Dir"),
        }
    }
}

/// Every path below `root` (directories by existence only: their times
/// move with every entry made or removed).
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let m = fs::symlink_metadata(&path).unwrap();
            let node = if m.is_dir() {
                stack.push(path.clone());
                Node::Dir
            } else if m.file_type().is_symlink() {
                Node::Link(
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else {
                Node::File {
                    bytes: fs::read(&path).unwrap(),
                    mode: m.mode(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// The distinct contents of the regular files below `root`.
pub fn contents(root: &Path) -> BTreeSet<Vec<u8>> {
    snapshot(root)
        .into_values()
        .filter_map(|n| match n {
            Node::File { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

pub fn blob(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A tree with the traps the issue lists, under `t/`, and a hard link to
/// one of its files outside it, under `outside/`.
pub fn trap_tree() -> Tree {
    let t = Tree::new();
    let a = blob(1, 100_000);
    t.file("t/a/x", &a);
    t.file("t/b/x", &a);
    t.file(b"t/b/new\nline", &a);
    t.file(b"t/c/\xff\xfe-not-utf8", &a);
    let long = format!("t/b/{}", "n".repeat(250));
    t.file("t/a/long", blob(2, 5_000));
    t.file(&long, blob(2, 5_000));
    // Read-only copies: linking replaces the name, the directory is
    // writable.
    t.file("t/a/ro", blob(3, 7_000));
    t.file("t/b/ro", blob(3, 7_000));
    crate::util::chmod(&t.path("t/a/ro"), 0o444);
    crate::util::chmod(&t.path("t/b/ro"), 0o444);
    // Mode mismatch: never hard-linked without being asked.
    t.file("t/a/mode", blob(4, 6_000));
    t.file("t/b/mode", blob(4, 6_000));
    crate::util::chmod(&t.path("t/b/mode"), 0o600);
    // A hard-link set inside, and a copy.
    t.file("t/a/h1", blob(5, 9_000));
    t.hardlink("t/a/h1", "t/a/h2");
    t.file("t/b/h", blob(5, 9_000));
    // A copy whose inode also lives outside the roots.
    t.file("t/a/pinned", blob(6, 8_000));
    t.file("t/b/pinned", blob(6, 8_000));
    fs::create_dir_all(t.path("outside")).unwrap();
    t.hardlink("t/b/pinned", "outside/pinned");
    // A symlink to a kept file, and a unique file.
    t.symlink("a/x", "t/sl");
    t.file("t/a/unique", blob(7, 4_000));
    t
}

pub fn dedupe(state: &Path) -> Command {
    let mut c = bin();
    c.env("XDG_STATE_HOME", state);
    c
}

pub fn act(state: &Path, args: &[&str], root: &Path) -> std::process::Output {
    let mut c = dedupe(state);
    c.args(args).args(["--progress", "never"]).arg(root);
    run(c)
}

pub fn undo(state: &Path) -> std::process::Output {
    let mut c = bin();
    c.env("XDG_STATE_HOME", state).arg("undo");
    run(c)
}

#[test]
fn link_keeps_every_content_is_idempotent_and_undo_restores_the_tree() {
    let t = trap_tree();
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(t.root());

    let dry = act(state.path(), &["link", "-n"], &root);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert_eq!(snapshot(t.root()), before, "a dry run changed the tree");
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(plan.contains("planned link"), "{plan}");
    assert!(plan.contains(r"new\nline"), "escaped names: {plan}");

    let out = act(state.path(), &["link"], &root);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let after = snapshot(t.root());
    // Same paths, same bytes at each (links are files of the same bytes).
    let paths = |s: &BTreeMap<Vec<u8>, Node>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&after), paths(&before));
    assert_eq!(contents(t.root()), contents_of(&before));
    for (k, v) in &before {
        if let (Node::File { bytes: b1, .. }, Node::File { bytes: b2, .. }) = (v, &after[k]) {
            assert_eq!(b1, b2, "{}", String::from_utf8_lossy(k));
        }
    }
    let x = ino(&t.path("t/a/x"));
    for copy in [&b"t/b/x"[..], b"t/b/new\nline", b"t/c/\xff\xfe-not-utf8"] {
        assert_eq!(ino(&t.path(copy)), x, "{}", String::from_utf8_lossy(copy));
    }
    assert_eq!(ino(&t.path("t/b/ro")), ino(&t.path("t/a/ro")));
    assert_ne!(
        ino(&t.path("t/b/mode")),
        ino(&t.path("t/a/mode")),
        "mode differs"
    );
    assert_ne!(
        ino(&t.path("t/b/pinned")),
        ino(&t.path("t/a/pinned")),
        "links outside the roots"
    );
    assert_eq!(ino(&t.path("outside/pinned")), ino(&t.path("t/b/pinned")));
    // The hard-link set is one copy; the other copy joins it.
    assert_eq!(ino(&t.path("t/b/h")), ino(&t.path("t/a/h1")));
    assert_eq!(ino(&t.path("t/a/h2")), ino(&t.path("t/a/h1")));
    assert_eq!(after[&b"t/sl"[..]], Node::Link(b"a/x".to_vec()));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("owner, group or mode differ"), "{report}");
    assert!(report.contains("hard links"), "{report}");

    // Idempotent: nothing left to do.
    let inodes = |s: &BTreeMap<Vec<u8>, Node>| {
        s.keys()
            .map(|k| ino(&t.root().join(p(k))))
            .collect::<Vec<_>>()
    };
    let linked = inodes(&after);
    let again = act(state.path(), &["link"], &root);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 done"));
    assert_eq!(snapshot(t.root()), after);
    assert_eq!(inodes(&snapshot(t.root())), linked);

    let u = undo(state.path());
    assert_eq!(
        code(&u),
        0,
        "{}{}",
        stderr(&u),
        String::from_utf8_lossy(&u.stdout)
    );
    assert_eq!(
        snapshot(t.root()),
        before,
        "undo did not give the tree back"
    );
    assert_ne!(ino(&t.path("t/b/x")), x);
}

pub fn contents_of(s: &BTreeMap<Vec<u8>, Node>) -> BTreeSet<Vec<u8>> {
    s.values()
        .filter_map(|n| match n {
            Node::File { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn symbolic_links_point_at_the_kept_file_and_undo_makes_copies_again() {
    let t = trap_tree();
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(t.root());
    let out = act(state.path(), &["link", "--symbolic", "--relative"], &root);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let after = snapshot(t.root());
    assert_eq!(after[&b"t/b/x"[..]], Node::Link(b"../a/x".to_vec()));
    assert_eq!(fs::read(t.path("t/b/x")).unwrap(), blob(1, 100_000));
    // Mode differences do not matter to a symlink; the pinned inode does.
    assert!(matches!(after[&b"t/b/mode"[..]], Node::Link(_)));
    assert!(matches!(after[&b"t/b/pinned"[..]], Node::File { .. }));
    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}", String::from_utf8_lossy(&u.stdout));
    assert_eq!(snapshot(t.root()), before);
}

#[test]
fn remove_keeps_the_first_root_copy_and_says_it_cannot_be_undone() {
    let t = trap_tree();
    let state = tempfile::tempdir().unwrap();
    let before = contents(t.root());
    let mut c = dedupe(state.path());
    c.arg("remove")
        .arg(t.path("t/a"))
        .arg(t.path("t/b"))
        .arg(t.path("t/c"));
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be brought back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(contents(t.root()), before, "a content was lost");
    assert!(t.path("t/a/x").exists() && !t.path("t/b/x").exists());
    assert!(!t.path(b"t/c/\xff\xfe-not-utf8").exists());
    assert!(!t.path("t/b/mode").exists(), "remove ignores modes");
    assert!(t.path("t/b/pinned").exists(), "pinned by an outside link");
    // Nothing to undo by default; named, the journal lists the removals.
    let u = undo(state.path());
    assert_eq!(code(&u), 2, "{}", stderr(&u));
    let journal = fs::read_dir(state.path().join("dedupe/journal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut c = bin();
    c.env("XDG_STATE_HOME", state.path())
        .arg("undo")
        .arg(&journal);
    let u = run(c);
    assert!(String::from_utf8_lossy(&u.stdout).contains("irreversible"));
    assert_eq!(contents(t.root()), before);
}

#[test]
fn move_keeps_paths_below_the_root_and_undo_moves_back() {
    let t = trap_tree();
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let q = t.path("quarantine");
    let before = snapshot(&root);
    let mut c = dedupe(state.path());
    c.arg("move").arg("--to").arg(&q).arg(&root);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!t.path("t/b/x").exists());
    assert_eq!(fs::read(q.join("b/x")).unwrap(), blob(1, 100_000));
    assert!(q.join(p(b"c/\xff\xfe-not-utf8")).exists());
    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}", String::from_utf8_lossy(&u.stdout));
    assert_eq!(snapshot(&root), before);
}

#[test]
fn a_stale_report_changes_nothing_it_should_not() {
    let t = trap_tree();
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let report = t.path("report.json");
    let mut c = dedupe(state.path());
    c.args(["find", "--format", "json"]).arg(&root);
    let out = run(c);
    assert_eq!(code(&out), 0);
    fs::write(&report, &out.stdout).unwrap();
    // A victim rewritten with other bytes, its mtime put back (ctime moves).
    let victim = t.path("t/b/x");
    let mtime = fs::metadata(&victim).unwrap().modified().unwrap();
    fs::write(&victim, blob(9, 100_000)).unwrap();
    fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // The kept copy of another group deleted.
    fs::remove_file(t.path("t/a/long")).unwrap();
    let before = snapshot(t.root());
    let mut c = dedupe(state.path());
    c.args(["link", "--from"]).arg(&report);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("skipped link") && text.contains("changed or gone"),
        "{text}"
    );
    assert_eq!(
        fs::read(&victim).unwrap(),
        blob(9, 100_000),
        "rewritten file kept"
    );
    let long = t.path(format!("t/b/{}", "n".repeat(250)));
    assert_eq!(fs::read(long).unwrap(), blob(2, 5_000), "last copy kept");
    // Other groups were still acted on.
    assert_eq!(ino(&t.path("t/b/ro")), ino(&t.path("t/a/ro")));
    assert_ne!(snapshot(t.root()), before);
}

/// A report that names two different files as one group (a forged or
/// colliding hash, with their true identities) changes nothing: the bytes
/// are compared before any change.
#[test]
fn a_forged_report_cannot_make_different_files_one() {
    for verb in ["link", "remove"] {
        let t = Tree::new();
        let a = t.file("t/a", blob(1, 50_000));
        let mut other = blob(1, 50_000);
        other[49_999] ^= 1;
        let b = t.file("t/b", &other);
        // Equal copies beside it, compared in the same batch (side by
        // side on several threads): each outcome must be its own step's.
        let copies: Vec<PathBuf> = (0..6)
            .map(|i| t.file(format!("t/c{i}"), blob(1, 50_000)))
            .collect();
        let id = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            serde_json::json!({"dev": m.dev(), "ino": m.ino(),
                "mtime_ns": m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                "ctime_ns": m.ctime() * 1_000_000_000 + m.ctime_nsec()})
        };
        let files: Vec<&PathBuf> = [&a, &b].into_iter().chain(&copies).collect();
        let report = serde_json::json!({"groups": [{"id": 1, "size": 50_000,
            "hash": "00".repeat(32), "algo": "blake3",
            "files": files.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>(),
            "identity": files.iter().map(|p| id(p)).collect::<Vec<_>>()}]});
        let path = t.path("forged.json");
        fs::write(&path, report.to_string()).unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut c = dedupe(state.path());
        c.args([verb, "--from"]).arg(&path);
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("content differs").count(), 1, "{verb}: {text}");
        let line = text
            .lines()
            .find(|l| l.contains("content differs"))
            .unwrap();
        assert!(
            line.contains(&format!(" {} (keep", b.display())),
            "{verb}: {text}"
        );
        assert_eq!(fs::read(&b).unwrap(), other);
        assert_ne!(ino(&a), ino(&b));
        assert!(text.contains("6 done, 1 skipped"), "{verb}: {text}");
        if verb == "link" {
            assert!(copies.iter().all(|c| ino(c) == ino(&a)), "{text}");
        } else {
            assert!(copies.iter().all(|c| !c.exists()), "{text}");
        }
    }
}

/// A hard link or a move never crosses file systems, and never falls back
/// to a symlink or a copy.
#[test]
fn nothing_crosses_file_systems() {
    if !as_root("cross-device actions") {
        return;
    }
    let t = Tree::new();
    t.file("t/a/x", blob(1, 30_000));
    let mnt = t.dir("t/mnt");
    let _guard = Mount::new(&["-t", "tmpfs", "tmpfs"], &mnt);
    t.file("t/mnt/data/x", blob(1, 30_000));
    let data = t.path("t/mnt/data");
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(t.root());

    let mut c = dedupe(state.path());
    c.arg("link").arg(t.path("t/a")).arg(&data);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("another file system"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(snapshot(t.root()), before);

    // Keep the tmpfs copy; the other would have to move onto the tmpfs.
    let mut c = dedupe(state.path());
    c.arg("move")
        .arg("--to")
        .arg(mnt.join("q"))
        .arg(&data)
        .arg(t.path("t/a"));
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(t.path("t/a/x").exists());
    assert!(
        !mnt.join("q").exists(),
        "no directory made for a move that cannot happen"
    );
    assert_eq!(fs::read(t.path("t/a/x")).unwrap(), blob(1, 30_000));
}

/// With `--hard-links`, every path of a losing inode is a step, so the
/// whole set is relinked and its bytes freed; an inode with a link outside
/// the roots is still left; undo makes the set one inode again.
#[test]
fn hard_link_sets_are_relinked_whole_and_undo_rejoins_them() {
    let t = Tree::new();
    let content = blob(11, 50_000);
    t.file("t/a/keep", &content);
    t.file("t/b/h1", &content);
    t.hardlink("t/b/h1", "t/b/h2");
    t.dir("t/c");
    t.hardlink("t/b/h1", "t/c/h3");
    // Linked from outside the roots: relinking would free nothing.
    t.file("t/a/p", blob(12, 9_000));
    t.file("t/b/p", blob(12, 9_000));
    fs::create_dir_all(t.path("outside")).unwrap();
    t.hardlink("t/b/p", "outside/p");
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(&root);
    let keep = ["--keep", "path:**/a/*"];

    // Without -H the set is one file with links the plan does not cover.
    let out = act(state.path(), &["link", keep[0], keep[1]], &root);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("has 3 hard links"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(snapshot(&root), before);

    let out = act(state.path(), &["link", "-H", keep[0], keep[1]], &root);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 done, 1 skipped"), "{text}");
    assert!(text.contains("48.8 KiB freed"), "{text}");
    let k = ino(&t.path("t/a/keep"));
    for h in ["t/b/h1", "t/b/h2", "t/c/h3"] {
        assert_eq!(ino(&t.path(h)), k, "{h}");
    }
    assert_ne!(ino(&t.path("t/b/p")), ino(&t.path("t/a/p")));
    assert_eq!(contents(&root), contents_of(&before));

    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}", String::from_utf8_lossy(&u.stdout));
    assert_eq!(snapshot(&root), before);
    let h = ino(&t.path("t/b/h1"));
    assert_ne!(h, k);
    assert_eq!(ino(&t.path("t/b/h2")), h, "the set is one inode again");
    assert_eq!(ino(&t.path("t/c/h3")), h);
}
