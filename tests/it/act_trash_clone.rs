//! `trash` (the freedesktop.org trash, on each file's own file system) and
//! `clone` (shared extents on a real reflink file system: an XFS image,
//! loop-mounted).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::act::{blob, contents, contents_of, dedupe, snapshot, trap_tree, undo, Node};
use crate::hardening::{as_root, Mount};
use crate::util::{code, run, stderr, Tree};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The original path an info file names (`Path=`, %-decoded).
fn info_path(info: &Path) -> PathBuf {
    let text = fs::read(info).unwrap();
    let line = text
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Path="))
        .expect("a Path= line");
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'%' {
            let hex = std::str::from_utf8(&line[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// The trash at `trash`: (name in `files/`, original path from its info).
fn trashed(trash: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = fs::read_dir(trash.join("files"))
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e.unwrap().file_name();
            let mut info = name.clone();
            info.push(".trashinfo");
            let info = trash.join("info").join(info);
            assert!(info.exists(), "no info file for {name:?}");
            (PathBuf::from(name), info_path(&info))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn trash_moves_copies_to_the_home_trash_and_undo_brings_them_back() {
    let t = trap_tree();
    let root = t.path("t");
    let state = tempfile::tempdir().unwrap();
    let data = t.path("data");
    let before = snapshot(&root);
    let mut c = dedupe(state.path());
    c.env("XDG_DATA_HOME", &data).arg("trash").arg(&root);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let trash = data.join("Trash");
    let items = trashed(&trash);
    // Every trashed file is gone from its path, named by its info file,
    // and no content is lost.
    assert!(items.len() >= 5, "{items:?}\n{}", stdout(&out));
    for (name, original) in &items {
        assert!(!original.exists(), "{} still there", original.display());
        assert!(original.starts_with(fs::canonicalize(&root).unwrap()));
        let rel = original
            .strip_prefix(fs::canonicalize(&root).unwrap())
            .unwrap();
        let Node::File { bytes, .. } = &before[rel.as_os_str().as_bytes()] else {
            panic!("{} was not a file", rel.display());
        };
        assert_eq!(&fs::read(trash.join("files").join(name)).unwrap(), bytes);
    }
    let mut all = contents(&root);
    all.extend(contents(&trash.join("files")));
    assert_eq!(all, contents_of(&before));
    // Each step says where its file went.
    let text = stdout(&out);
    let files = format!(" -> {}/files/", trash.display());
    let went = text
        .lines()
        .filter(|l| l.starts_with("done trash ") && l.contains(&files))
        .count();
    assert_eq!(went, items.len(), "{text}");
    let names: Vec<&[u8]> = items
        .iter()
        .map(|(_, o)| o.as_os_str().as_bytes())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(b"new\nline")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(b"\xff\xfe-not-utf8")));
    // The inode linked from outside the roots is left (it frees nothing).
    assert!(t.path("t/b/pinned").exists() || t.path("t/a/pinned").exists());
    assert!(stdout(&out).contains(" 0 failed;"), "{}", stdout(&out));

    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}", stdout(&u));
    assert_eq!(snapshot(&root), before);
    assert!(trashed(&trash).is_empty());
    assert_eq!(fs::read_dir(trash.join("info")).unwrap().count(), 0);
}

/// A file on another file system than the home trash goes to that file
/// system's own trash can (`$topdir/.Trash/$uid` when it is a sticky
/// directory, else `$topdir/.Trash-$uid`), never copied across.
#[test]
fn trash_uses_each_file_systems_own_trash_can() {
    if !as_root("trash on a tmpfs mount") {
        return;
    }
    let uid = rustix::process::getuid().as_raw();
    for shared in [false, true] {
        let t = Tree::new();
        let mnt = t.dir("mnt");
        let _guard = Mount::new(&["-t", "tmpfs", "tmpfs"], &mnt);
        t.file("mnt/d/a/x", blob(1, 10_000));
        t.file("mnt/d/b/x", blob(1, 10_000));
        if shared {
            let dir = t.dir("mnt/.Trash");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        }
        let data = t.dir("home-data");
        let state = tempfile::tempdir().unwrap();
        let before = snapshot(&mnt.join("d"));
        let mut c = dedupe(state.path());
        c.env("XDG_DATA_HOME", &data)
            .arg("trash")
            .arg(mnt.join("d"));
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let can = if shared {
            mnt.join(format!(".Trash/{uid}"))
        } else {
            mnt.join(format!(".Trash-{uid}"))
        };
        let items = trashed(&can);
        assert_eq!(items.len(), 1, "{}", stdout(&out));
        assert_eq!(items[0].1, mnt.join("d/b/x"));
        assert!(
            !data.join("Trash/files").exists() || trashed(&data.join("Trash")).is_empty(),
            "copied to the home trash on another file system"
        );
        assert_eq!(fs::metadata(&can).unwrap().mode() & 0o777, 0o700);
        let u = undo(state.path());
        assert_eq!(code(&u), 0, "{}", stdout(&u));
        assert_eq!(snapshot(&mnt.join("d")), before);
    }
}

/// A loop-mounted XFS image with reflinks, or `None` (said loudly) when
/// `mkfs.xfs` is missing; CI sets `DEDUPE_REQUIRE_XFS` so it fails there.
struct Xfs {
    _mount: Mount,
    dir: tempfile::TempDir,
}

impl Xfs {
    fn new() -> Option<Xfs> {
        if !as_root("clone on a loop-mounted XFS image") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("xfs.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(320 << 20)
            .unwrap();
        let mkfs = Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image)
            .status();
        if !mkfs.is_ok_and(|s| s.success()) {
            assert!(
                std::env::var_os("DEDUPE_REQUIRE_XFS").is_none(),
                "DEDUPE_REQUIRE_XFS is set but mkfs.xfs (xfsprogs) failed or is missing"
            );
            eprintln!("SKIPPED: no mkfs.xfs (xfsprogs); clone was not tested on XFS");
            return None;
        }
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let image = image.to_str().unwrap().to_string();
        let mount = Mount::new(&["-o", "loop", &image], &mnt);
        Some(Xfs { _mount: mount, dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("mnt").join(rel)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        // A plain write: never a reflinked copy to begin with.
        fs::write(&p, bytes).unwrap();
        p
    }

    fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(self.path("")).unwrap();
        s.f_bavail * s.f_frsize
    }
}

/// Whether every extent of `path` is shared (`filefrag -v`).
fn shared(path: &Path) -> bool {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let extents: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter(|l| l.contains(':') && l.contains(".."))
        .collect();
    !extents.is_empty() && extents.iter().all(|l| l.contains("shared"))
}

fn owner(p: &Path) -> (u32, u32) {
    let m = fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn clone_shares_extents_keeps_each_files_metadata_and_undo_unshares() {
    let Some(x) = Xfs::new() else { return };
    // 20 MiB crosses the 16 MiB request size; odd sizes end mid-block.
    let big = blob(1, (20 << 20) + 4_097);
    let small = blob(2, 70_001);
    x.write("t/a/big", &big);
    x.write("t/b/big", &big);
    x.write("t/c/big-ro", &big);
    x.write("t/a/small", &small);
    let other_owner = x.write("t/b/small", &small);
    // Same size, last byte different: never touched.
    let mut near = small.clone();
    *near.last_mut().unwrap() ^= 1;
    x.write("t/b/near", &near);
    fs::set_permissions(x.path("t/c/big-ro"), fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::chown(&other_owner, Some(4321), Some(4321)).unwrap();
    fs::set_permissions(&other_owner, fs::Permissions::from_mode(0o600)).unwrap();
    let root = x.path("t");
    let before = snapshot(&root);
    let owners = owner(&other_owner);
    let inode = fs::metadata(x.path("t/b/big")).unwrap().ino();
    let free = x.free();
    let state = tempfile::tempdir().unwrap();

    let mut c = dedupe(state.path());
    c.arg("clone").arg(&root);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 done, 0 skipped"),
        "{}",
        stdout(&out)
    );
    // Same paths, bytes, modes and mtimes; the other owner's file is
    // still theirs (a hard link would have refused or changed it).
    assert_eq!(snapshot(&root), before);
    assert_eq!(owner(&other_owner), owners);
    for f in ["t/a/big", "t/b/big", "t/c/big-ro", "t/a/small", "t/b/small"] {
        assert!(shared(&x.path(f)), "{f} not shared");
    }
    assert!(!shared(&x.path("t/b/near")));
    let gained = x.free().saturating_sub(free);
    assert!(
        gained >= 2 * (20 << 20),
        "only {gained} bytes freed by sharing two 20 MiB copies"
    );

    // Again: nothing left to share, nothing read.
    let mut c = dedupe(state.path());
    c.arg("clone").arg(&root);
    let again = run(c);
    assert!(
        stdout(&again).contains("0 done, 3 skipped"),
        "{}",
        stdout(&again)
    );
    assert!(stdout(&again).contains("already shares every extent"));

    // Undo the first run: independent copies again, metadata as before.
    let journals = state.path().join("dedupe/journal");
    let mut runs: Vec<PathBuf> = fs::read_dir(&journals)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    let mut u = crate::util::bin();
    u.env("XDG_STATE_HOME", state.path())
        .arg("undo")
        .arg(&runs[0]);
    let u = run(u);
    assert_eq!(code(&u), 0, "{}", stdout(&u));
    assert_eq!(snapshot(&root), before);
    assert_eq!(owner(&other_owner), owners);
    for f in ["t/b/big", "t/c/big-ro", "t/b/small"] {
        assert!(!shared(&x.path(f)), "{f} still shared after undo");
    }
    // Unshared in place: the same inode (its links and attributes stay).
    assert_eq!(fs::metadata(x.path("t/b/big")).unwrap().ino(), inode);
}

/// A victim rewritten after the report (same size, mtime put back) is
/// left alone; so is one on another file system.
#[test]
fn clone_from_a_stale_report_touches_nothing_changed() {
    let Some(x) = Xfs::new() else { return };
    let content = blob(3, 300_000);
    x.write("t/a/f", &content);
    let victim = x.write("t/b/f", &content);
    let root = x.path("t");
    let state = tempfile::tempdir().unwrap();
    let report = state.path().join("report.jsonl");
    let mut c = crate::util::bin();
    c.args(["find", "--format", "jsonl"]).arg(&root);
    let found = run(c);
    assert_eq!(code(&found), 0, "{}", stderr(&found));
    fs::write(&report, &found.stdout).unwrap();
    let mtime = fs::metadata(&victim).unwrap().modified().unwrap();
    let mut changed = content.clone();
    changed[150_000] ^= 0xff;
    fs::write(&victim, &changed).unwrap();
    fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let mut c = dedupe(state.path());
    c.arg("clone").arg("--from").arg(&report);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 done, 1 skipped"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&victim).unwrap(), changed);
    assert!(!shared(&victim));
}

/// `move --allow-copy` to another file system: the copy is verified and
/// carries the file's mode and mtime before the original goes; stopped at
/// any point, nothing is lost and no half copy is left; undo copies back.
#[test]
fn move_across_file_systems_copies_only_when_allowed() {
    if !as_root("move --allow-copy onto a tmpfs mount") {
        return;
    }
    for crash in [None, Some("1:intent"), Some("1:temp"), Some("1:change")] {
        let t = Tree::new();
        let mnt = t.dir("mnt");
        let _guard = Mount::new(&["-t", "tmpfs", "tmpfs"], &mnt);
        t.file("t/a/x", blob(1, 300_000));
        let y = t.file("t/b/y", blob(1, 300_000));
        fs::set_permissions(&y, fs::Permissions::from_mode(0o640)).unwrap();
        let root = t.path("t");
        let before = snapshot(&root);
        let state = tempfile::tempdir().unwrap();
        let q = mnt.join("q");
        let mut c = dedupe(state.path());
        c.args(["move", "--allow-copy", "--to"]).arg(&q).arg(&root);
        if let Some(at) = crash {
            c.env("DEDUPE_CRASH_AT", at);
        }
        let out = run(c);
        let mut all = contents(&root);
        if q.exists() {
            all.extend(contents(&q));
        }
        assert!(all.is_superset(&contents_of(&before)), "{crash:?}: lost");
        match crash {
            None => {
                assert_eq!(code(&out), 0, "{}", stderr(&out));
                assert!(!y.exists());
                let moved = q.join("b/y");
                assert_eq!(fs::read(&moved).unwrap(), blob(1, 300_000));
                let (m, was) = (fs::metadata(&moved).unwrap(), &before[&b"b/y"[..]]);
                let Node::File { mode, mtime, .. } = was else {
                    panic!()
                };
                assert_eq!((m.mode(), (m.mtime(), m.mtime_nsec())), (*mode, *mtime));
            }
            Some(_) => assert!(out.status.code().is_none(), "{}", stderr(&out)),
        }
        let u = undo(state.path());
        assert_eq!(code(&u), 0, "{crash:?}: {}", stdout(&u));
        assert_eq!(snapshot(&root), before, "{crash:?}");
        let left: Vec<_> = walk_files(&mnt);
        assert!(left.is_empty(), "{crash:?}: left on the target: {left:?}");
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The trash's own files are never acted on or kept over a live copy,
/// however the trash is reached (review findings: a second `trash` over a
/// tree holding the trash moved trashed files again; a trash reached
/// through a symlink was kept as the only copy).
#[test]
fn files_in_a_trash_can_are_left_to_the_trash() {
    let t = Tree::new();
    t.file("t/a/x", "precious");
    t.file("t/b/x", "precious");
    let data = t.path("data");
    let state = tempfile::tempdir().unwrap();
    let trash_run = |paths: &[PathBuf]| {
        let mut c = dedupe(state.path());
        c.env("XDG_DATA_HOME", &data).arg("trash").args(paths);
        run(c)
    };
    let out = trash_run(&[t.path("t")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let items = trashed(&data.join("Trash"));
    assert_eq!(items.len(), 1);
    std::os::unix::fs::symlink(data.join("Trash/files"), t.path("link")).unwrap();
    for paths in [
        vec![t.path("t"), data.clone()],
        vec![t.path("link"), t.path("t")],
    ] {
        let out = trash_run(&paths);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(trashed(&data.join("Trash")), items, "{}", stdout(&out));
        assert_eq!(fs::read(t.path("t/a/x")).unwrap(), b"precious");
    }
}

/// `clone` stopped at each point of a step and by `SIGKILL` at random
/// moments: every path keeps its bytes, mode and mtime, and recovery
/// plus undo leave the tree as it was.
#[test]
fn clone_stopped_anywhere_keeps_every_content() {
    let Some(x) = Xfs::new() else { return };
    let mut rng = 0x51f1_5eed_u64;
    let mut kills = 0;
    let tree = |name: &str| {
        for g in 0..6u8 {
            let content = blob(g, (3 << 20) + usize::from(g));
            for side in ["a", "b", "c"] {
                x.write(&format!("{name}/{side}/{g}"), &content);
            }
        }
        x.path(name)
    };
    // How long an uncut run takes here, to spread the kills over it.
    let calibration = tree("calibrate");
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.arg("clone").arg(&calibration);
    let start = std::time::Instant::now();
    assert_eq!(code(&run(c)), 0);
    let window = (start.elapsed().as_micros() as u64).max(1);
    fs::remove_dir_all(&calibration).unwrap();
    for round in 0..12 {
        let root = tree(&format!("r{round}"));
        let before = snapshot(&root);
        let state = tempfile::tempdir().unwrap();
        let mut c = dedupe(state.path());
        c.arg("clone")
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        match round {
            0 => c.env("DEDUPE_CRASH_AT", "1:intent"),
            1 => c.env("DEDUPE_CRASH_AT", "5:change"),
            _ => &mut c,
        };
        let mut child = c.spawn().unwrap();
        if round >= 2 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            std::thread::sleep(std::time::Duration::from_micros(rng % window));
            let _ = child.kill();
        }
        if child.wait().unwrap().code().is_none() {
            kills += 1;
        }
        assert_eq!(snapshot(&root), before, "round {round}: a path changed");
        let u = undo(state.path());
        let nothing = String::from_utf8_lossy(&u.stderr).contains("no run to undo");
        assert!(code(&u) == 0 || nothing, "{}{}", stdout(&u), stderr(&u));
        assert_eq!(snapshot(&root), before, "round {round}: after undo");
        fs::remove_dir_all(&root).unwrap();
    }
    println!("{kills} of 12 clone runs stopped mid-run");
    assert!(kills >= 6, "only {kills} of 12 clone runs were stopped");
}
