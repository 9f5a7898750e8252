//! `dedupe scan` as a user runs it.

use std::collections::BTreeSet;

use dedupe::report::decode_json_path;

use crate::util::{bin, chmod, code, reference_files, run, split0, stderr, unprivileged, Tree};

fn trap_tree() -> Tree {
    let t = Tree::new();
    t.file("plain.jpg", "a");
    t.file("with space/a b.mkv", "b");
    t.file(b"nl\ndir/x\ny", "c");
    t.file(b"bad\xff/\xfe.bin", "d");
    t.file("empty", "");
    t.hardlink("plain.jpg", "hard.jpg");
    t.fifo("a-fifo");
    t.symlink(t.root(), "loop");
    t
}

#[test]
fn print0_lists_exactly_the_regular_files() {
    let t = trap_tree();
    let mut cmd = bin();
    cmd.arg("scan").arg("-0").arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got: BTreeSet<Vec<u8>> = split0(&out.stdout).into_iter().collect();
    assert_eq!(got.len(), split0(&out.stdout).len(), "no path twice");
    assert_eq!(got, reference_files(t.root()));
    assert!(
        got.iter().any(|p| p.ends_with(b"empty")),
        "empty files are listed"
    );
}

#[test]
fn jsonl_is_lossless_and_carries_metadata() {
    let t = trap_tree();
    let mut cmd = bin();
    cmd.args(["scan", "--format", "jsonl"]).arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut got = BTreeSet::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let path = decode_json_path(&v["path"]).unwrap();
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(crate::util::p(&path)).unwrap();
        assert_eq!(v["size"], md.len());
        assert_eq!(v["inode"], md.ino());
        assert_eq!(v["dev"], md.dev());
        assert_eq!(v["nlink"], md.nlink());
        assert_eq!(v["mtime"], md.mtime());
        got.insert(path);
    }
    assert_eq!(got, reference_files(t.root()));
}

#[test]
fn missing_root_and_bad_flags_exit_2_with_a_message() {
    let t = Tree::new();
    let mut cmd = bin();
    cmd.arg("scan").arg(t.path("does-not-exist"));
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("does-not-exist"), "{}", stderr(&out));
    assert!(stderr(&out).contains("No such file"), "{}", stderr(&out));

    let mut cmd = bin();
    cmd.args(["scan", "--exclude", "a[", "."]);
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("invalid glob"), "{}", stderr(&out));

    let mut cmd = bin();
    cmd.args(["scan", "--min-size", "lots", "."]);
    assert_eq!(code(&run(cmd)), 2);

    let mut cmd = bin();
    cmd.args(["scan", "--scan-workers", "1025", "."]);
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("thread count"), "{}", stderr(&out));
}

#[test]
fn a_fifo_root_is_skipped_not_opened() {
    let t = Tree::new();
    let fifo = t.fifo("pipe");
    let mut cmd = bin();
    cmd.arg("scan").arg(&fifo);
    let out = run(cmd); // the watchdog fails the test if it hangs
    assert_eq!(code(&out), 1);
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("not_regular"), "{}", stderr(&out));
}

#[test]
fn unreadable_directories_are_counted_and_exit_1() {
    let t = Tree::new();
    t.file("open/a.jpg", "a");
    let locked = t.file("locked/b.jpg", "b");
    chmod(locked.parent().unwrap(), 0o000);
    let mut cmd = bin();
    cmd.args(["scan", "--stats", "--verbose"]).arg(t.root());
    let Some(cmd) = unprivileged(cmd) else {
        panic!("cannot drop privileges to test an unreadable directory (no setpriv)");
    };
    let out = run(cmd);
    chmod(locked.parent().unwrap(), 0o755);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let listed = split0(
        &out.stdout
            .iter()
            .map(|&b| if b == b'\n' { 0 } else { b })
            .collect::<Vec<_>>(),
    );
    assert_eq!(listed.len(), 1);
    assert!(listed[0].ends_with(b"open/a.jpg"));
    let err = stderr(&out);
    assert!(
        err.contains("locked") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(err.contains("permission_denied 1"), "{err}");
}

#[test]
fn stats_and_filters_from_the_command_line() {
    let t = Tree::new();
    t.file("a.mkv", vec![1; 2048]);
    t.file("b.txt", vec![1; 2048]);
    t.file("c.jpg", vec![1; 10]);
    t.file("d/e.flac", vec![1; 4096]);
    let mut cmd = bin();
    cmd.args([
        "scan",
        "--media",
        "--min-size",
        "1K",
        "--stats",
        "--parallel-scan",
    ])
    .arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let mut names: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit('/').next().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["a.mkv", "e.flac"]);
    let err = stderr(&out);
    assert!(
        err.contains("scanned 2 files (6.0 KiB) in 2 directories"),
        "{err}"
    );
    assert!(err.contains("errors: none"), "{err}");
}

#[test]
fn closed_stdout_is_not_a_crash() {
    let t = Tree::new();
    for i in 0..3000 {
        t.file(format!("d{}/f{i}", i % 10), "x");
    }
    let mut cmd = bin();
    cmd.arg("scan").arg(t.root());
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // like `dedupe scan | head -0`
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.code() == Some(0), "{status:?} {err}");
}

#[test]
fn paths_longer_than_path_max_are_listed() {
    let t = Tree::new();
    let deep = t.deep_file(b"deep");
    let mut cmd = bin();
    cmd.args(["scan", "-0"]).arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        split0(&out.stdout),
        vec![deep.as_os_str().as_encoded_bytes().to_vec()]
    );
}

#[test]
fn one_file_system_stays_on_the_root_file_system() {
    if !crate::hardening::as_root("--one-file-system with a tmpfs") {
        return;
    }
    let t = Tree::new();
    t.file("here/a", "a");
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = crate::hardening::Mount::new(&["-t", "tmpfs", "tmpfs"], &mnt);
    std::fs::write(mnt.join("b"), "b").unwrap();

    let listed = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.arg("scan").args(extra).arg(t.root());
        crate::util::scanned_names(cmd)
    };
    assert_eq!(listed(&[]), ["a", "b"]);
    assert_eq!(listed(&["--one-file-system"]), ["a"]);
}
