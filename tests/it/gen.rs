//! `dedupe gen` writes the tree it promises.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::util::{bin, code, p, reference_files, run, stderr, Tree};

#[test]
fn gen_is_deterministic_and_counts_match() {
    let a = Tree::new();
    let b = Tree::new();
    for t in [&a, &b] {
        let mut cmd = bin();
        cmd.arg("gen").arg(t.root()).args([
            "--files",
            "500",
            "--dirs",
            "30",
            "--seed",
            "9",
            "--max-size",
            "8K",
        ]);
        let out = run(cmd);
        assert_eq!(code(&out), 0, "{}", crate::util::stderr(&out));
    }
    let fa = reference_files(a.root());
    assert_eq!(fa.len(), 500);
    for path in &fa {
        let rel = &path[a.root().as_os_str().len()..];
        let mut other = b.root().as_os_str().as_encoded_bytes().to_vec();
        other.extend_from_slice(rel);
        assert_eq!(
            std::fs::read(crate::util::p(path)).unwrap(),
            std::fs::read(crate::util::p(&other)).unwrap()
        );
    }
    let mut bad = bin();
    bad.arg("gen").arg(a.root()).args(["--dirs", "0"]);
    let out = run(bad);
    assert_eq!(code(&out), 2);
    assert!(crate::util::stderr(&out).contains("--dirs"));
}

#[test]
fn a_non_empty_directory_is_refused_unless_forced() {
    let fresh = Tree::new();
    let mut cmd = bin();
    cmd.arg("gen")
        .arg(fresh.root())
        .args(["--files", "5", "--dirs", "1"]);
    assert_eq!(code(&run(cmd)), 0);
    let generated = reference_files(fresh.root());
    let first = generated.iter().next().unwrap();
    let name = &first[fresh.root().as_os_str().len() + 1..];

    // The user's own file, under a name gen would write.
    let mine = Tree::new();
    let precious = mine.file(name, "precious");
    mine.file("mine.doc", "mine");
    let mut cmd = bin();
    cmd.arg("gen")
        .arg(mine.root())
        .args(["--files", "5", "--dirs", "1"]);
    let out = run(cmd);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious");
    assert_eq!(reference_files(mine.root()).len(), 2, "nothing written");

    let mut cmd = bin();
    cmd.arg("gen")
        .arg(mine.root())
        .args(["--files", "5", "--dirs", "1", "--force"]);
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&precious).unwrap(),
        std::fs::read(p(first)).unwrap()
    );
    assert_eq!(reference_files(mine.root()).len(), 6);

    // A file where the directory should be.
    let mut cmd = bin();
    cmd.arg("gen").arg(mine.path("mine.doc"));
    let out = run(cmd);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

/// Whether any regular file exists below `dir` (stops at the first).
fn any_file(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let ft = e.file_type().unwrap();
            ft.is_file() || (ft.is_dir() && any_file(&e.path()))
        })
}

#[test]
fn ctrl_c_stops_gen_early_with_130() {
    let t = Tree::new();
    let files: usize = 300_000;
    let mut cmd = bin();
    cmd.arg("gen")
        .arg(t.root())
        .args([
            "--files",
            &files.to_string(),
            "--dirs",
            "50",
            "--max-size",
            "1K",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while !any_file(t.root()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gen wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_process(Pid::from_child(&child), Signal::INT).unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("gen ignored SIGINT for 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        signalled.elapsed()
    );
    let written = reference_files(t.root()).len();
    assert!(written < files, "stopped early: {written} files");
}
