//! The command line under hostile conditions: stderr or stdout that cannot
//! be written, out-of-range tuning, names that would fool a terminal.

use crate::util::{
    bin, chmod, code, dev_full, run, run_to, scanned_names, split0, stderr, unprivileged, Tree,
};

/// A tree with one duplicate pair and one directory that user `nobody`
/// cannot read; returns it with the locked directory.
fn partly_unreadable() -> (Tree, std::path::PathBuf) {
    let t = Tree::new();
    t.file("ok/a", "dup");
    t.file("ok/b", "dup");
    let locked = t.file("locked/c", "dup");
    let locked = locked.parent().unwrap().to_path_buf();
    chmod(&locked, 0o000);
    (t, locked)
}

#[test]
fn a_failed_write_to_stderr_neither_aborts_nor_loses_stdout() {
    let (t, locked) = partly_unreadable();

    let mut cmd = bin();
    cmd.arg(t.path("missing"));
    let out = run_to(cmd, None, Some(dev_full()));
    assert_eq!(code(&out), 2, "a missing root is a usage error");

    // Each of these writes to stderr at least once: the error list
    // (-v), the closing note, the --stats summary.
    let runs: [&[&str]; 4] = [
        &["-f", "fdupes"],
        &["-v", "-f", "fdupes"],
        &["--stats", "-f", "fdupes"],
        &["scan", "-v", "--stats"],
    ];
    for args in runs {
        let mut cmd = bin();
        cmd.args(args).arg(t.root());
        let cmd = unprivileged(cmd).expect("setpriv to drop root");
        let out = run_to(cmd, None, Some(dev_full()));
        assert_eq!(code(&out), 1, "{args:?}: an unreadable directory exits 1");
        let listed = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(names.len(), 2, "{args:?}: all of stdout: {listed}");
        assert!(names.iter().all(|n| n.contains("/ok/")), "{listed}");
    }
    chmod(&locked, 0o755);
}

#[test]
fn output_that_cannot_be_written_exits_3() {
    let t = Tree::new();
    t.file("a", "dup");
    t.file("b", "dup");
    let runs: [&[&str]; 7] = [
        &["scan"],
        &["scan", "-0"],
        &["scan", "-f", "jsonl"],
        &["find"],
        &["-f", "fdupes"],
        &["-f", "json"],
        &["-f", "jsonl"],
    ];
    for args in runs {
        let mut cmd = bin();
        cmd.args(args).arg(t.root());
        let out = run_to(cmd, Some(dev_full()), None);
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cannot write output"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn messages_reach_stderr_when_progress_is_forced_but_not_drawn() {
    // `--progress always` with stderr not a terminal: indicatif hides the
    // bars, and lines printed "above" them must still be written.
    let t = Tree::new();
    let fifo = t.fifo("pipe");
    for verbose in [false, true] {
        let mut cmd = bin();
        cmd.args(["scan", "--progress", "always"]).arg(&fifo);
        if verbose {
            cmd.arg("-v");
        }
        let out = run(cmd);
        assert_eq!(code(&out), 1);
        let err = stderr(&out);
        let expected = if verbose { "pipe" } else { "not_regular 1" };
        assert!(err.contains(expected), "verbose {verbose}: {err:?}");
    }
}

#[test]
fn oversized_walker_tuning_is_refused_with_a_message() {
    let t = Tree::new();
    t.file("a", "dup");
    t.file("b", "dup");
    let cases: [(&[&str], &str); 4] = [
        (&["--buffer-size", "18446744073709551615"], "--buffer-size"),
        (&["--batch-size", "18446744073709551615"], "--batch-size"),
        (&["--batch-size", "1000000000"], "--batch-size"),
        // 20M one-file batches: a 20M-slot channel, allocated up front.
        (
            &["--buffer-size", "20000000", "--batch-size", "1"],
            "--buffer-size",
        ),
    ];
    for (args, flag) in cases {
        for command in ["find", "scan"] {
            let mut cmd = bin();
            cmd.arg(command).args(args).arg(t.root());
            let out = run(cmd);
            let err = stderr(&out);
            assert_eq!(code(&out), 2, "{command} {args:?}: {err}");
            assert!(err.contains(flag), "{command} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            assert!(out.stdout.is_empty());
        }
    }
    // The largest channel allowed works.
    let mut cmd = bin();
    cmd.args(["scan", "--buffer-size", "1000000", "--batch-size", "16"])
        .arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn scan_workers_0_means_automatic() {
    let t = Tree::new();
    t.file("a", "x");
    let mut cmd = bin();
    cmd.args(["scan", "--scan-workers", "0"]).arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        [t.path("a").as_os_str().as_encoded_bytes(), b"\n"].concat()
    );
}

/// A tree whose names try to fake report lines or drive the terminal.
fn hostile_names() -> Tree {
    let t = Tree::new();
    t.file("a", "dup");
    t.file(b"x\n    /etc/passwd", "dup");
    t.file(b"evil\x1b[2J\x1b[31m.txt", "dup");
    t.file(b"back\\slash\xff", "dup");
    t
}

/// No control byte but the line feeds that end lines, no ESC.
fn assert_no_raw_controls(text: &[u8]) {
    let bad: Vec<u8> = text
        .iter()
        .copied()
        .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
        .collect();
    assert!(
        bad.is_empty(),
        "{bad:?} in {}",
        String::from_utf8_lossy(text)
    );
}

#[test]
fn the_text_report_escapes_names_and_the_raw_formats_do_not() {
    let t = hostile_names();
    let mut cmd = bin();
    cmd.arg(t.root());
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_no_raw_controls(&out.stdout);
    let text = String::from_utf8(out.stdout).expect("escaped text is UTF-8");
    let members: Vec<&str> = text.lines().filter(|l| l.starts_with("    ")).collect();
    assert_eq!(members.len(), 4, "one line per file: {text}");
    let root = t.root().to_str().unwrap();
    for name in [
        r"a",
        r"x\n    /etc/passwd",
        r"evil\x1b[2J\x1b[31m.txt",
        r"back\\slash\xff",
    ] {
        let line = format!("    {root}/{name}");
        assert!(members.contains(&line.as_str()), "{line:?} in {text}");
    }

    // fdupes and -0 keep the bytes as they are.
    let expected: std::collections::BTreeSet<Vec<u8>> = crate::util::reference_files(t.root());
    for args in [&["-f", "fdupes", "-0"][..], &["-0"]] {
        let mut cmd = bin();
        cmd.args(args).arg(t.root());
        let out = run(cmd);
        let got: std::collections::BTreeSet<Vec<u8>> = split0(&out.stdout)
            .into_iter()
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(got, expected, "{args:?}");
    }
    let mut cmd = bin();
    cmd.args(["-f", "fdupes"]).arg(t.root());
    let out = run(cmd);
    assert!(
        out.stdout
            .windows(b"x\n    /etc/passwd".len())
            .any(|w| w == b"x\n    /etc/passwd"),
        "fdupes is byte-exact"
    );
}

#[test]
fn paths_in_error_messages_are_escaped() {
    let t = Tree::new();
    let fifo = t.fifo(b"pi\x1b[2Jpe\n");
    let mut cmd = bin();
    cmd.args(["scan", "-v"]).arg(&fifo);
    let out = run(cmd);
    assert_eq!(code(&out), 1);
    assert_no_raw_controls(&out.stderr);
    assert!(stderr(&out).contains(r"pi\x1b[2Jpe\n:"), "{}", stderr(&out));

    for command in ["find", "scan"] {
        let mut cmd = bin();
        cmd.arg(command).arg(t.path(b"missing\x1b[2J"));
        let out = run(cmd);
        assert_eq!(code(&out), 2);
        assert_no_raw_controls(&out.stderr);
        assert!(
            stderr(&out).contains(r"missing\x1b[2J:"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn counts_of_one_are_singular() {
    let t = Tree::new();
    t.file("a", "dup");
    t.file("b", "dup");
    let mut cmd = bin();
    cmd.arg("--stats").arg(t.root());
    let out = run(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "# 2 files (6 B) scanned; 1 duplicate group; 1 redundant file (3 B reclaimable)\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\n\n# 2 files (6 B) scanned; 1 duplicate group; 1 redundant file (3 B reclaimable)\n"
        ),
        "the totals again at the end: {text}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("scanned 2 files (6 B) in 1 directory; 1 group, 1 redundant file (3 B)"),
        "{err}"
    );

    let one = Tree::new();
    one.file("a", "x");
    let mut cmd = bin();
    cmd.args(["scan", "--stats"]).arg(one.root());
    let err = stderr(&run(cmd));
    assert!(
        err.contains("scanned 1 file (1 B) in 1 directory in "),
        "{err}"
    );

    let g = Tree::new();
    let mut cmd = bin();
    cmd.arg("gen")
        .arg(g.path("t"))
        .args(["--files", "1", "--dirs", "1"]);
    let err = stderr(&run(cmd));
    assert!(err.starts_with("wrote 1 file ("), "{err}");
    assert!(err.contains(") in 1 directory under "), "{err}");
}

#[test]
fn print0_with_a_self_delimiting_format_is_a_usage_error() {
    let t = Tree::new();
    t.file("a", "dup");
    t.file("b", "dup");
    let runs: [&[&str]; 6] = [
        &["-0", "-f", "csv"],
        &["-0", "-f", "json"],
        &["--format", "jsonl", "--print0"],
        &["find", "-0", "-f", "json"],
        &["scan", "-0", "-f", "jsonl"],
        &["scan", "-f", "jsonl", "-0"],
    ];
    for args in runs {
        let mut cmd = bin();
        cmd.args(args).arg(t.root());
        let out = run(cmd);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(err.contains("--print0"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    for args in [&["-0", "-f", "fdupes"][..], &["scan", "-0", "-f", "paths"]] {
        let mut cmd = bin();
        cmd.args(args).arg(t.root());
        assert_eq!(code(&run(cmd)), 0, "{args:?}");
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_flag_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let mut cmd = bin();
        cmd.args(["completions", shell]);
        let out = run(cmd);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // Every shell's script names the flags it completes.
        assert!(text.contains("print0"), "{shell}");
        assert!(text.contains("hard-links"), "{shell}");
    }
    let mut cmd = bin();
    cmd.args(["completions", "tcsh"]);
    assert_eq!(code(&run(cmd)), 2, "an unknown shell is a usage error");

    let mut cmd = bin();
    cmd.arg("man");
    let out = run(cmd);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH dedupe"),
        "{page:.200}"
    );
    for section in ["DEDUPE FIND", "DEDUPE SCAN", "DEDUPE GEN", "Exit codes"] {
        assert!(page.contains(section), "{section} missing");
    }
    assert!(page.contains("one\\-file\\-system") || page.contains("one-file-system"));
}

#[test]
fn help_lists_exit_codes_and_a_repeated_option_takes_its_last_value() {
    let mut cmd = bin();
    cmd.arg("--help");
    let help = String::from_utf8(run(cmd).stdout).unwrap();
    assert!(
        help.contains("Exit codes:") && help.contains("130"),
        "{help}"
    );

    let t = Tree::new();
    t.file("a", "same");
    t.file("b", "same");
    let mut cmd = bin();
    cmd.arg(t.root())
        .args(["--format", "text", "--format", "jsonl"]);
    let out = run(cmd);
    assert!(out.status.success(), "{out:?}");
    let first = out.stdout.split(|&b| b == b'\n').next().unwrap().to_vec();
    assert!(
        first.starts_with(b"{\"type\":\"group\""),
        "{}",
        String::from_utf8_lossy(&first)
    );
}

#[test]
fn files_from_reads_a_list_of_paths_by_line_or_nul() {
    let t = Tree::new();
    t.file("a", "same");
    t.file("b", "same");
    t.file("new\nline", "same");
    t.file("not listed", "same");
    let a = t.path("a");
    let b = t.path("b");
    let odd = t.path("new\nline");
    // One per line, from a file.
    let list = t.file("list.txt", "");
    let mut text = Vec::new();
    for p in [&a, &b] {
        text.extend_from_slice(p.as_os_str().as_encoded_bytes());
        text.push(b'\n');
    }
    std::fs::write(&list, &text).unwrap();
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "--files-from"]).arg(&list);
    let out = run(cmd);
    assert!(out.status.success(), "{out:?}");
    let want = format!("{}\n{}\n\n", a.display(), b.display());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);

    // NUL-separated on stdin, so a name may hold a newline; -0 is allowed
    // with jsonl here, since it applies to the list.
    let mut input = Vec::new();
    for p in [&a, &odd] {
        input.extend_from_slice(p.as_os_str().as_encoded_bytes());
        input.push(0);
    }
    let mut child = bin()
        .args(["--files-from", "-", "-0", "--format", "jsonl"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let groups = dedupe::report::read::read_groups(&out.stdout[..]).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].paths(), [a.clone(), odd.clone()]);

    // A listed path that is gone is reported and the rest is searched
    // (exit 1, as for any file that could not be read).
    let mut gone = text.clone();
    gone.extend_from_slice(b"/nonexistent/listed\n");
    std::fs::write(&list, &gone).unwrap();
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "--files-from"]).arg(&list);
    let out = run(cmd);
    assert_eq!(code(&out), 1, "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(
        stderr(&out).contains("/nonexistent/listed"),
        "{}",
        stderr(&out)
    );

    // An empty list finds nothing; it is not a usage error.
    std::fs::write(&list, b"").unwrap();
    let mut cmd = bin();
    cmd.args(["--files-from"]).arg(&list);
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{out:?}");

    let mut cmd = bin();
    cmd.args(["--files-from"]).arg(t.path("missing"));
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read --files-from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sort_orders_groups_by_reclaimable_bytes_size_count_or_path() {
    let t = Tree::new();
    // a: 2 x 50 B (50 reclaimable), c: 20 x 10 B (190), b: 5 x 60 B (240):
    // each order below is different.
    for i in 0..2 {
        t.file(format!("a{i}"), [b'a'; 50]);
    }
    for i in 0..20 {
        t.file(format!("c{i:02}"), [b'c'; 10]);
    }
    for i in 0..5 {
        t.file(format!("b{i}"), [b'b'; 60]);
    }
    let firsts = |sort: Option<&str>| {
        let mut cmd = bin();
        cmd.arg(t.root()).args(["--format", "fdupes"]);
        if let Some(s) = sort {
            cmd.args(["--sort", s]);
        }
        let out = run(cmd);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        text.split("\n\n")
            .filter(|g| !g.is_empty())
            .map(|g| {
                let first = g.lines().next().unwrap();
                first.rsplit('/').next().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(firsts(None), ["b0", "c00", "a0"], "reclaimable by default");
    assert_eq!(firsts(Some("reclaimable")), ["b0", "c00", "a0"]);
    assert_eq!(firsts(Some("size")), ["b0", "a0", "c00"]);
    assert_eq!(firsts(Some("count")), ["c00", "b0", "a0"]);
    assert_eq!(firsts(Some("path")), ["a0", "b0", "c00"]);
}

#[test]
fn progress_always_logs_status_lines_when_stderr_is_not_a_terminal() {
    let t = Tree::new();
    t.file("a", "same");
    t.file("b", "same");
    let mut cmd = bin();
    cmd.arg(t.root()).args(["--progress", "always"]);
    let out = run(cmd);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("dedupe: scanning 2 files") && l.contains("(done)")),
        "{err}"
    );
    assert!(err.contains("processing 2/2 candidates"), "{err}");
    let mut cmd = bin();
    cmd.arg(t.root());
    assert_eq!(stderr(&run(cmd)), "", "auto: nothing when not a terminal");
}

#[test]
fn path_globs_match_below_the_root_however_it_is_spelled() {
    let t = Tree::new();
    t.file("t1/keep/a.jpg", "x");
    t.file("t1/sub/b.JPG", "y");
    t.file("t1/sub/c.txt", "z");
    let list = |root: &str, args: &[&str]| {
        let mut cmd = bin();
        cmd.current_dir(t.root()).arg("scan").arg(root).args(args);
        scanned_names(cmd)
    };
    for root in ["t1", "./t1", "t1/", t.path("t1").to_str().unwrap()] {
        assert_eq!(
            list(root, &["--exclude", "sub/*"]),
            ["a.jpg"],
            "root {root}"
        );
        assert_eq!(
            list(root, &["--include", "sub/*.txt"]),
            ["c.txt"],
            "root {root}"
        );
    }
    assert_eq!(list("t1", &["--include", "*.jpg"]), ["a.jpg"]);
    assert_eq!(
        list("t1", &["-I", "--include", "*.jpg"]),
        ["a.jpg", "b.JPG"]
    );
}

#[test]
fn ctrl_c_while_the_list_is_read_ends_the_run() {
    // A list that never comes: stdin stays open and empty.
    let mut child = bin()
        .args(["--files-from", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let stdin = child.stdin.take();
    let out = crate::util::within(std::time::Duration::from_secs(20), move || {
        child.wait_with_output().unwrap()
    });
    drop(stdin);
    let out = out.expect("Ctrl-C did not end a run waiting for its list");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
}
