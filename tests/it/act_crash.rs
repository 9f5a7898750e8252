//! Acting on duplicates, stopped part way: at chosen points of a step
//! (failpoints) and by `SIGKILL` at random moments. After each stop every
//! content must still exist, and recovery plus `undo` must give back the
//! exact tree (for `remove`, the paths it did not remove).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::act::{blob, contents, contents_of, dedupe, snapshot, undo, Node};
use crate::util::{run, stderr, Tree};

/// The tree for crash tests: `groups` groups of three copies.
fn crash_tree(groups: usize) -> Tree {
    let t = Tree::new();
    for g in 0..groups {
        let content = blob(g as u8, 20_000 + g);
        for side in ["a", "b", "c"] {
            t.file(format!("t/{side}/{g:03}"), &content);
        }
    }
    t.file("t/a/unique", blob(200, 3_000));
    t
}

/// After a stop: every content is there, recovery plus undo (for link and
/// move) gives the tree back, and no temporary name is left.
fn check_after_stop(t: &Tree, state: &Path, verb: &str, before: &BTreeMap<Vec<u8>, Node>) {
    let root = t.path("t");
    let all = |dir: &Path| {
        let mut s = contents(dir);
        // Moved files, or trashed ones (not their info files).
        let away = if verb == "trash" {
            "q/Trash/files"
        } else {
            "q"
        };
        if t.path(away).exists() {
            s.extend(contents(&t.path(away)));
        }
        s
    };
    assert_eq!(
        all(&root),
        contents_of(before),
        "{verb}: a content was lost"
    );
    let u = undo(state);
    let now = snapshot(&root);
    let leftovers: Vec<_> = now
        .keys()
        .filter(|k| k.windows(8).any(|w| w == b".dedupe-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{verb}: temporary names left: {leftovers:?}"
    );
    // Every trash info file left names a file that is in the trash.
    let info = t.path("q/Trash/info");
    for e in fs::read_dir(&info).into_iter().flatten().flatten() {
        let name = e.file_name();
        let name = name.as_encoded_bytes();
        let file = t
            .path("q/Trash/files")
            .join(crate::util::p(&name[..name.len() - 10]));
        assert!(
            file.exists(),
            "{verb}: an info file without its file: {e:?}"
        );
    }
    if verb == "remove" {
        assert_eq!(contents(&root), contents_of(before));
        for (k, v) in &now {
            assert_eq!(Some(v), before.get(k), "remove changed a kept path");
        }
    } else {
        assert_eq!(
            now,
            *before,
            "{verb}: undo did not restore the tree: {}",
            String::from_utf8_lossy(&u.stdout)
        );
    }
}

/// The command for `verb` on `t` (its trash, for `trash`, under `t/q`).
fn verb_cmd(verb: &str, t: &Tree, state: &Path) -> std::process::Command {
    let mut c = dedupe(state);
    c.args(verb_args(verb, t)).env("XDG_DATA_HOME", t.path("q"));
    c
}

fn verb_args(verb: &str, t: &Tree) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![verb.into()];
    if verb == "move" {
        v.push("--to".into());
        v.push(t.path("q").into());
    }
    v
}

#[test]
fn a_run_stopped_at_any_point_of_a_step_loses_nothing_and_undoes() {
    for verb in ["link", "move", "remove", "trash"] {
        for point in ["intent", "temp", "change"] {
            if point == "temp" && verb != "link" {
                continue;
            }
            for step in [1, 4] {
                let t = crash_tree(3);
                let state = tempfile::tempdir().unwrap();
                let before = snapshot(&t.path("t"));
                let mut c = verb_cmd(verb, &t, state.path());
                c.arg(t.path("t"))
                    .env("DEDUPE_CRASH_AT", format!("{step}:{point}"));
                let out = run(c);
                assert!(
                    out.status.code().is_none(),
                    "{verb} {step}:{point} did not stop: {}",
                    stderr(&out)
                );
                check_after_stop(&t, state.path(), verb, &before);
            }
        }
    }
}

/// A run with a journal of its own (`--journal FILE`) stopped part way is
/// settled by the next action run like any other run, and `undo` without
/// an argument finds it; a link to a journal others may write is not
/// followed.
#[test]
fn a_run_with_its_own_journal_is_settled_and_undone_like_any_other() {
    let has_temp = |t: &Tree| {
        snapshot(&t.path("t"))
            .keys()
            .any(|k| k.windows(8).any(|w| w == b".dedupe-"))
    };
    let t = crash_tree(3);
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(&t.path("t"));
    let journal = t.dir("j").join("run.jsonl");
    let mut c = verb_cmd("link", &t, state.path());
    c.arg(t.path("t"))
        .arg("--journal")
        .arg(&journal)
        .env("DEDUPE_CRASH_AT", "2:temp");
    let o = run(c);
    assert!(o.status.code().is_none(), "did not stop: {}", stderr(&o));
    assert!(has_temp(&t), "the stop left a temporary name");
    let other = Tree::new();
    other.file("x", blob(1, 100));
    // Made writable by others, the journal is not recovered through its link.
    let mode = |m: u32| {
        fs::set_permissions(&journal, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
    };
    mode(0o666);
    let o = crate::act::act(state.path(), &["link"], &other.path("x"));
    assert!(stderr(&o).contains("not recovering"), "{}", stderr(&o));
    assert!(has_temp(&t), "an untrusted journal was followed");
    mode(0o600);
    let o = crate::act::act(state.path(), &["link"], &other.path("x"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("settled"), "{}", stderr(&o));
    assert!(!has_temp(&t), "the next run did not settle the stopped one");
    let u = undo(state.path());
    assert_eq!(u.status.code(), Some(0), "{}", stderr(&u));
    assert_eq!(snapshot(&t.path("t")), before, "undo without an argument");
    // Deleted, its journal's link goes too.
    fs::remove_file(&journal).unwrap();
    let o = crate::act::act(state.path(), &["link"], &other.path("x"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        fs::read_dir(state.path().join("dedupe/journal"))
            .unwrap()
            .count(),
        0
    );
}

/// Whether a run journaled an intent (it began changing files).
fn has_intent(state: &Path) -> bool {
    fs::read_dir(state.join("dedupe/journal"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|j| fs::read_to_string(j.path()).is_ok_and(|t| t.contains("\"intent\"")))
}

/// `SIGKILL` at random moments: 34 kills for each of link, move and
/// remove, and 12 for trash, most of them while the run changes files.
#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut landed = 0;
    let mut mid_act = 0;
    // When the run has journaled its first intents (it is about to change
    // files): from then on a kill lands among changes.
    let changing = |state: &Path, child: &mut std::process::Child| {
        while !has_intent(state) {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    for (verb, kills) in [("link", 34), ("move", 34), ("remove", 34), ("trash", 12)] {
        // How long an uncut run changes files here, to spread the kills
        // over that.
        let t = crash_tree(100);
        let state = tempfile::tempdir().unwrap();
        let mut c = verb_cmd(verb, &t, state.path());
        c.arg(t.path("t")).stdout(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let start = Instant::now();
        changing(state.path(), &mut child);
        let search = start.elapsed();
        assert!(child.wait().unwrap().success());
        let acting = start.elapsed().saturating_sub(search).as_micros() as u64;
        for i in 0..kills {
            let t = crash_tree(100);
            let state = tempfile::tempdir().unwrap();
            let before = snapshot(&t.path("t"));
            let mut c = verb_cmd(verb, &t, state.path());
            c.arg(t.path("t"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut child = c.spawn().unwrap();
            // One kill in six anywhere (the search too), the rest once it
            // has begun changing files.
            let window = if i % 6 == 0 {
                (search.as_micros() as u64 + acting).max(1)
            } else {
                changing(state.path(), &mut child);
                (acting * 4 / 5).max(1)
            };
            std::thread::sleep(Duration::from_micros(next() % window));
            let _ = child.kill();
            let status = child.wait().unwrap();
            if status.code().is_none() {
                landed += 1;
                // Killed after it began changing files (a journal with an
                // intent exists), not during the search.
                mid_act += u32::from(has_intent(state.path()));
            }
            check_after_stop(&t, state.path(), verb, &before);
        }
    }
    // Most kills must land while the run goes on, or this tests nothing.
    println!("{landed} of 114 kills landed mid-run, {mid_act} while changing files");
    assert!(landed >= 68, "only {landed} of 114 kills landed mid-run");
    assert!(
        mid_act >= 50,
        "only {mid_act} kills landed while files were changed"
    );
}

/// `undo` writes users' files too (a copy renamed over each link): killed
/// at random moments, then run again, it still gives back the exact tree
/// and loses no content. 30 kills, over `link` and `link --symbolic`.
#[test]
fn sigkill_during_undo_loses_nothing() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut landed = 0;
    for (i, verb) in [&["link"][..], &["link", "--symbolic"]]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        let t = crash_tree(60);
        let state = tempfile::tempdir().unwrap();
        let before = snapshot(&t.path("t"));
        let mut c = dedupe(state.path());
        c.args(*verb).arg(t.path("t"));
        assert!(run(c).status.success(), "{verb:?}");
        // How long an undo takes here, measured on the first tree of each kind.
        let mut u = crate::util::bin();
        u.env("XDG_STATE_HOME", state.path())
            .arg("undo")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let start = Instant::now();
        let mut child = u.spawn().unwrap();
        let window = if i < 2 {
            child.wait().unwrap();
            // The calibration run undid everything: link again to kill the next.
            let full = start.elapsed().as_micros() as u64;
            let mut c = dedupe(state.path());
            c.args(*verb).arg(t.path("t"));
            assert!(run(c).status.success());
            let mut u2 = crate::util::bin();
            u2.env("XDG_STATE_HOME", state.path())
                .arg("undo")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            child = u2.spawn().unwrap();
            full
        } else {
            40_000
        };
        std::thread::sleep(Duration::from_micros(next() % window.max(1)));
        let _ = child.kill();
        if child.wait().unwrap().code().is_none() {
            landed += 1;
        }
        // Every content still there (a half-written copy may sit beside
        // it until the next undo removes it).
        assert!(
            contents(&t.path("t")).is_superset(&contents_of(&before)),
            "{verb:?}: a content was lost"
        );
        let again = undo(state.path());
        let now = snapshot(&t.path("t"));
        assert!(
            now == before,
            "{verb:?}: a second undo did not restore the tree: {}",
            String::from_utf8_lossy(&again.stdout)
        );
    }
    println!("{landed} of 30 kills landed during undo");
    assert!(landed >= 15, "only {landed} of 30 kills landed during undo");
}
