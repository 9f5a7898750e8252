//! Regression tests for the findings of the adversarial review of the
//! actions: each was a way to lose a file, change one outside the plan, or
//! fail to undo.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::act::{blob, dedupe, snapshot, undo};
use crate::hardening::{as_root, Mount};
use crate::util::{bin, code, run, stderr, Tree};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A file seen through an overlay and through its lower directory is one
/// file on two devices: removing "the other copy" would remove it.
#[test]
fn an_overlay_and_its_lower_directory_are_never_two_copies() {
    if !as_root("overlay aliasing") {
        return;
    }
    let t = Tree::new();
    t.file("lower/x", blob(1, 10_000));
    for d in ["upper", "work", "merged"] {
        t.dir(d);
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.path("lower").display(),
        t.path("upper").display(),
        t.path("work").display()
    );
    let _m = Mount::new(
        &["-t", "overlay", "overlay", "-o", &opts],
        &t.path("merged"),
    );
    let state = tempfile::tempdir().unwrap();
    for verb in [&["remove"][..], &["link", "--symbolic"]] {
        let mut c = dedupe(state.path());
        c.args(verb).arg(t.path("merged")).arg(t.path("lower"));
        let o = run(c);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(out(&o).contains("overlay or FUSE"), "{verb:?}: {}", out(&o));
        assert_eq!(fs::read(t.path("lower/x")).unwrap(), blob(1, 10_000));
        assert!(fs::symlink_metadata(t.path("lower/x")).unwrap().is_file());
    }
}

/// `--reference` and `--protect` hold however the paths are spelled.
#[test]
fn references_and_protections_hold_under_any_spelling() {
    let t = Tree::new();
    t.file("t/ref/x", blob(2, 5_000));
    t.file("t/b/x", blob(2, 5_000));
    t.file("t/ref/y", blob(3, 5_000));
    t.file("t/b/y", blob(3, 5_000));
    std::os::unix::fs::symlink(t.path("t"), t.path("s")).unwrap();
    let state = tempfile::tempdir().unwrap();
    // Make the reference copy the one the chain would drop.
    let old = filetime(&t.path("t/b/x"));
    set_mtime(&t.path("t/b/x"), old - 100_000);
    set_mtime(&t.path("t/b/y"), old - 100_000);
    let mut c = dedupe(state.path());
    c.current_dir(t.root())
        .args(["remove", "./s", "--reference"])
        .arg(t.path("t/ref"))
        .args(["--protect", "**/b/y"]);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(t.path("t/ref/x").exists(), "{}", out(&o));
    assert!(!t.path("t/b/x").exists(), "{}", out(&o));
    assert!(
        t.path("t/ref/y").exists() && t.path("t/b/y").exists(),
        "{}",
        out(&o)
    );
}

fn filetime(p: &Path) -> i64 {
    fs::metadata(p).unwrap().mtime()
}

fn set_mtime(p: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap());
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// `--journal` in an existing directory leaves that directory's mode alone,
/// and undo works from any working directory.
#[test]
fn journals_touch_nothing_else_and_undo_works_from_anywhere() {
    let t = Tree::new();
    t.file("t/a", blob(4, 5_000));
    t.file("t/b", blob(4, 5_000));
    let before = snapshot(&t.path("t"));
    let jdir = t.dir("j");
    fs::set_permissions(&jdir, fs::Permissions::from_mode(0o755)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.current_dir(t.root())
        .args(["link", "t", "--journal"])
        .arg(jdir.join("run.jsonl"));
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::metadata(&jdir).unwrap().mode() & 0o777, 0o755);
    assert_eq!(
        fs::metadata(t.path("t/a")).unwrap().ino(),
        fs::metadata(t.path("t/b")).unwrap().ino()
    );
    let mut c = bin();
    c.current_dir(t.dir("elsewhere"))
        .arg("undo")
        .arg(jdir.join("run.jsonl"));
    let u = run(c);
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert_eq!(snapshot(&t.path("t")), before);
}

/// Two files that differ only in an extended attribute (a capability, an
/// ACL, a label) are not hard-linked: the link would change one of them.
#[test]
fn extended_attributes_block_a_hard_link() {
    let t = Tree::new();
    let a = t.file("t/a", blob(5, 5_000));
    t.file("t/b", blob(5, 5_000));
    let f = fs::File::open(&a).unwrap();
    if rustix::fs::fsetxattr(
        &f,
        "user.dedupe-test",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_err()
    {
        eprintln!("SKIPPED extended_attributes_block_a_hard_link: no user xattrs here");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let o = crate::act::act(state.path(), &["link"], &t.path("t"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        out(&o).contains("owner, group or mode differ"),
        "{}",
        out(&o)
    );
    assert_ne!(
        fs::metadata(t.path("t/a")).unwrap().ino(),
        fs::metadata(t.path("t/b")).unwrap().ino()
    );
}

/// A dry run recovers nothing and writes nothing; a journal cut inside its
/// last line (a crash mid-write) still recovers and undoes.
#[test]
fn dry_runs_write_nothing_and_a_cut_journal_still_undoes() {
    let t = Tree::new();
    for i in 0..3 {
        t.file(format!("t/a/{i}"), blob(i, 5_000));
        t.file(format!("t/b/{i}"), blob(i, 5_000));
    }
    let before = snapshot(&t.path("t"));
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.args(["link"])
        .arg(t.path("t"))
        .env("DEDUPE_CRASH_AT", "3:temp");
    let o = run(c);
    assert!(o.status.code().is_none(), "{}", stderr(&o));
    let dir = state.path().join("dedupe/journal");
    let journal = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let text = fs::read(&journal).unwrap();
    let o = crate::act::act(state.path(), &["link", "-n"], &t.path("t"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        fs::read(&journal).unwrap(),
        text,
        "a dry run wrote to a journal"
    );
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "a dry run made a journal"
    );
    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert!(snapshot(&t.path("t")) == before, "undo after a crash");
    // A journal cut inside its last record (a crash while the outcomes
    // were written, after the changes) still recovers and undoes.
    let journal = state.path().join("cut.jsonl");
    let o = crate::act::act(
        state.path(),
        &["link", "--journal", journal.to_str().unwrap()],
        &t.path("t"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = fs::read(&journal).unwrap();
    fs::write(&journal, &text[..text.len() - 7]).unwrap();
    let mut c = bin();
    c.arg("undo").arg(&journal);
    let u = run(c);
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert!(snapshot(&t.path("t")) == before, "undo from a cut journal");
}

/// `move --to` inside a searched path is refused (the next run would move
/// the moved files again).
#[test]
fn move_into_the_searched_tree_is_refused() {
    let t = Tree::new();
    t.file("t/a", blob(6, 5_000));
    t.file("t/b", blob(6, 5_000));
    let before = snapshot(&t.path("t"));
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.arg("move")
        .arg("--to")
        .arg(t.path("t/dups"))
        .arg(t.path("t"));
    let o = run(c);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("inside"), "{}", stderr(&o));
    assert_eq!(snapshot(&t.path("t")), before);
}

/// Second review: a step whose directory is gone cannot stop recovery of
/// the others, and undo never depends on a hash a report claimed.
#[test]
fn undo_survives_a_vanished_directory_and_a_wrong_report_hash() {
    let t = Tree::new();
    t.file("t/x/a", blob(7, 5_000));
    t.file("t/x/b", blob(7, 5_000));
    t.file("t/y/c", blob(7, 5_000));
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.args(["link"])
        .arg(t.path("t"))
        .env("DEDUPE_CRASH_AT", "2:intent");
    let o = run(c);
    assert!(o.status.code().is_none(), "{}", stderr(&o));
    // Step 1 (t/x/b) was made; step 2's directory goes away.
    fs::remove_dir_all(t.path("t/y")).unwrap();
    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert_ne!(
        fs::metadata(t.path("t/x/a")).unwrap().ino(),
        fs::metadata(t.path("t/x/b")).unwrap().ino(),
        "the step that was made is undone"
    );

    // A report whose hash is wrong: the bytes decide, and the journal
    // holds the hash of the bytes compared.
    let t = Tree::new();
    t.file("t/a", blob(8, 5_000));
    t.file("t/b", blob(8, 5_000));
    let before = snapshot(&t.path("t"));
    let mut c = dedupe(state.path());
    c.args(["find", "--format", "json"]).arg(t.path("t"));
    let report = run(c);
    let mut doc: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    doc["groups"][0]["hash"] = serde_json::json!("00".repeat(32));
    let path = t.path("r.json");
    fs::write(&path, doc.to_string()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = dedupe(state.path());
    c.args(["link", "--from"]).arg(&path);
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let u = undo(state.path());
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert_eq!(snapshot(&t.path("t")), before);
}

/// An undo killed after its copy was renamed into place (before it could
/// record that): the next undo finds the step undone, not failed.
#[test]
fn an_undo_killed_after_its_rename_is_recorded_as_undone() {
    let t = Tree::new();
    t.file("t/a", blob(9, 5_000));
    t.file("t/b", blob(9, 5_000));
    let state = tempfile::tempdir().unwrap();
    let journal = state.path().join("j.jsonl");
    let o = crate::act::act(
        state.path(),
        &["link", "--journal", journal.to_str().unwrap()],
        &t.path("t"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // What a killed undo leaves: its intent journaled, its copy renamed
    // over the link.
    let text = fs::read_to_string(&journal).unwrap();
    let victim = if text.contains(&format!("\"victim\":\"{}\"", t.path("t/b").display())) {
        t.path("t/b")
    } else {
        t.path("t/a")
    };
    let mut f = fs::OpenOptions::new().append(true).open(&journal).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"{\"type\":\"undo_intent\",\"op\":1,\"tmp\":\".dedupe-gone.tmp\"}\n",
    )
    .unwrap();
    let copy = t.path("copy");
    fs::write(&copy, blob(9, 5_000)).unwrap();
    fs::rename(&copy, &victim).unwrap();
    let mut c = bin();
    c.arg("undo").arg(&journal);
    let u = run(c);
    assert_eq!(code(&u), 0, "{}{}", stderr(&u), out(&u));
    assert!(!out(&u).contains("not undone"), "{}", out(&u));
    assert!(fs::read_to_string(&journal).unwrap().contains("\"undone\""));
}
