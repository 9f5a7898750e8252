//! The persistent hash cache: a re-run over an unchanged tree reads
//! nothing and answers the same; anything that changed is read again; a
//! damaged cache, two runs at once, `kill -9` and Ctrl-C never change an
//! answer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dedupe::report::decode_json_path;
use dedupe::{Config, FindOptions, Finder, HashCache, ProgressTracker, Summary};
use dedupe_testkit::gen::{generate, GenSpec, SizeDist};

use crate::find::{normalise, reference, Groups};
use crate::util::{bin, code, p, run, stderr, Tree};

/// Files changed less than this long ago are not stored (the CLI's racy
/// window is 3 s); CLI tests wait this long after making their tree.
const SETTLE: Duration = Duration::from_millis(3_200);

fn traps(t: &Tree) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    t.file("a", &big);
    t.file("d/b", &big);
    let mut tail = big.clone();
    *tail.last_mut().unwrap() ^= 1;
    t.file("d/c", &tail);
    let mut head = big.clone();
    head[0] ^= 1;
    t.file("e/c", &head);
    t.file("d/s1", b"small twin");
    t.file("e/s2", b"small twin");
    t.hardlink("a", "e/a-link");
}

fn lib_run(root: &Path, cache: Option<HashCache>, options: FindOptions) -> (Groups, Summary) {
    let mut b = Finder::builder(Arc::new(Config::default())).options(options);
    if let Some(c) = cache {
        b = b.key_source(Box::new(c));
    }
    let report = b.build().run(&[root], |_| {}).unwrap();
    let groups = report.groups().map(|g| g.paths()).collect();
    (normalise(groups, root, false), report.summary)
}

/// A cache that stores everything at once: no racy window, no small-file
/// threshold (the tree's twins are 10 bytes).
fn cache_in(dir: &Path) -> HashCache {
    HashCache::open(dir)
        .unwrap()
        .racy_window(Duration::ZERO)
        .small_files(0)
}

fn read(s: &Summary) -> u64 {
    s.stages.iter().map(|st| st.bytes_read).sum()
}

#[test]
fn a_second_run_over_an_unchanged_tree_reads_nothing_and_agrees() {
    let t = Tree::new();
    traps(&t);
    let dir = tempfile::tempdir().unwrap();
    let expected = reference(t.root(), 1, false);
    let (first, s1) = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
    assert_eq!(first, expected);
    assert!(read(&s1) > 600_000, "{s1:?}");
    let cache = cache_in(dir.path());
    let probe = cache.probe();
    let (second, s2) = lib_run(t.root(), Some(cache), FindOptions::default());
    assert_eq!(second, expected);
    for st in &s2.stages {
        if st.name != "verify" && st.name != "size" {
            assert_eq!(st.bytes_read, 0, "{st:?}");
            assert_eq!(st.keys_known, st.files, "{st:?}");
        }
    }
    let c = probe.counters();
    assert!(c.hits >= 6 && c.misses == 0 && c.stored == 0, "{c:?}");
    // --verify always reads: the cache only spares the hashing reads.
    let verify = FindOptions {
        verify: true,
        ..FindOptions::default()
    };
    let (third, s3) = lib_run(t.root(), Some(cache_in(dir.path())), verify);
    assert_eq!(third, expected);
    assert!(
        s3.stages
            .iter()
            .any(|st| st.name == "verify" && st.bytes_read > 0),
        "{s3:?}"
    );
}

#[test]
fn a_rewrite_that_puts_the_mtime_back_is_read_again() {
    let t = Tree::new();
    traps(&t);
    let dir = tempfile::tempdir().unwrap();
    let _ = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
    // `d/b` gets other bytes of the same size and its old mtime back, as
    // `cp -p` or `touch -r` would leave it: only ctime tells.
    let b = t.path("d/b");
    let mtime = std::fs::metadata(&b).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&b).unwrap();
    bytes[150_000] ^= 0xff;
    std::fs::write(&b, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&b).unwrap().modified().unwrap(), mtime);
    let (groups, s) = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
    assert_eq!(groups, reference(t.root(), 1, false));
    assert!(
        !groups.iter().flatten().any(|f| f.ends_with(b"d/b")),
        "{groups:?}"
    );
    assert!(read(&s) >= 300_000, "b was read again: {s:?}");
}

#[test]
fn a_renamed_directory_keeps_its_entries() {
    let t = Tree::new();
    traps(&t);
    let dir = tempfile::tempdir().unwrap();
    let _ = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
    std::fs::rename(t.path("d"), t.path("renamed")).unwrap();
    let (groups, s) = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
    assert_eq!(groups, reference(t.root(), 1, false));
    assert_eq!(read(&s), 0, "entries are keyed by inode: {s:?}");
}

/// Rewrites a file after the walk recorded it, before it is read.
/// With `true`, puts the old mtime back too, as `cp -p` or `touch -r`
/// would: then only the ctime tells.
struct Saboteur(PathBuf, bool);

impl ProgressTracker for Saboteur {
    fn scan_finished(&self) {
        let mtime = std::fs::metadata(&self.0).unwrap().modified().unwrap();
        std::fs::write(&self.0, b"other content!").unwrap();
        if self.1 {
            let f = std::fs::File::options().write(true).open(&self.0).unwrap();
            f.set_modified(mtime).unwrap();
        }
    }
}

#[test]
fn a_file_that_changes_during_the_run_is_not_stored() {
    let t = Tree::new();
    t.file("a", "same content!!");
    t.file("b", "same content!!");
    let victim = t.file("c", "same content!!");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(dir.path());
    let probe = cache.probe();
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(Saboteur(victim, false)))
        .options(FindOptions {
            streaming: false,
            ..FindOptions::default()
        })
        .key_source(Box::new(cache))
        .build();
    let report = finder.run(&[t.root()], |_| {}).unwrap();
    assert_eq!(report.group_count(), 1);
    assert_eq!(report.summary.errors.get("changed"), Some(&1));
    assert_eq!(probe.counters().stored, 2, "a and b only");
}

// ---- the command line ----

/// A tree of `files` files under 64 KiB with duplicates, old enough to be
/// stored.
fn gen_tree(files: u64, seed: u64) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    generate(
        t.path(),
        &GenSpec {
            files,
            dirs: files / 100 + 1,
            seed,
            // Sizes close together: nearly every file shares its size
            // with another, so nearly every file is read and stored.
            min_size: 16 * 1024,
            max_size: 16 * 1024 + files / 12,
            sizes: SizeDist::Uniform,
            ..GenSpec::default()
        },
    )
    .unwrap();
    std::thread::sleep(SETTLE);
    t
}

/// Runs `dedupe --format json` with `args`; returns groups, bytes read and
/// the summary.
fn cli(root: &Path, args: &[&str]) -> (Groups, u64, serde_json::Value, String) {
    let mut cmd = bin();
    cmd.arg(root)
        .args(["--format", "json", "--progress", "never"])
        .args(args);
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    parse(root, &out.stdout, stderr(&out))
}

fn parse(root: &Path, stdout: &[u8], err: String) -> (Groups, u64, serde_json::Value, String) {
    let doc: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)));
    let groups = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| p(&decode_json_path(f).unwrap()).to_path_buf())
                .collect()
        })
        .collect();
    let summary = doc["summary"].clone();
    let bytes = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes_read"].as_u64().unwrap())
        .sum();
    (normalise(groups, root, false), bytes, summary, err)
}

#[test]
fn cli_a_damaged_cache_is_moved_aside_and_the_answer_stays_exact() {
    let tree = gen_tree(600, 11);
    let expected = reference(tree.path(), 1, false);
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 3] = [
        ("random bytes", |f| {
            std::fs::write(
                f,
                (0..9000u32)
                    .map(|i| (i * 31 % 253) as u8)
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        }),
        ("truncated", |f| {
            let len = std::fs::metadata(f).unwrap().len();
            std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_len(len / 3)
                .unwrap();
        }),
        ("a JSON file", |f| std::fs::write(f, "{}\n").unwrap()),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().to_str().unwrap();
        let (groups, full, _, _) = cli(tree.path(), &["--cache-dir", cache_dir]);
        assert_eq!(groups, expected, "{what}");
        damage(&dir.path().join(dedupe::cache::FILE_NAME));
        let (groups, again, _, err) = cli(tree.path(), &["--cache-dir", cache_dir]);
        assert_eq!(groups, expected, "{what}");
        assert!(err.contains("moved aside"), "{what}: {err}");
        assert_eq!(again, full, "{what}: nothing of the damaged file is used");
        let (_, third, _, err) = cli(tree.path(), &["--cache-dir", cache_dir]);
        assert_eq!(third, 0, "{what}: the new cache works: {err}");
    }
}

#[test]
fn cli_two_runs_at_once_share_the_cache() {
    let tree = gen_tree(3000, 12);
    let expected = reference(tree.path(), 1, false);
    let dir = tempfile::tempdir().unwrap();
    let spawn = || {
        bin()
            .arg(tree.path())
            .args(["--format", "json", "--progress", "never", "--cache-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{err}");
        assert!(!err.contains("warning"), "{err}");
        let (groups, ..) = parse(tree.path(), &out.stdout, err);
        assert_eq!(groups, expected);
    }
    let (groups, bytes, ..) = cli(tree.path(), &["--cache-dir", dir.path().to_str().unwrap()]);
    assert_eq!(groups, expected);
    assert_eq!(bytes, 0, "both runs' keys are in the cache");
}

/// Keys committed to the cache in `dir` so far (0 before it exists).
fn committed(dir: &Path) -> u64 {
    let file = dir.join(dedupe::cache::FILE_NAME);
    let Ok(c) =
        rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    c.query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| u64::try_from(n).unwrap())
}

/// Starts a slow run (one reader, SHA-256) of `tree` with the cache in
/// `dir`; `until` says when to stop it.
fn interrupt_run(
    tree: &Path,
    dir: &Path,
    signal: i32,
    until: impl Fn(u32) -> bool,
) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg(tree)
        .args([
            "--format",
            "json",
            "--progress",
            "never",
            "-t",
            "1",
            "--hash",
            "sha256",
        ])
        .arg("--cache-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let start = Instant::now();
    while !until(pid) {
        assert!(start.elapsed() < Duration::from_secs(60), "never reached");
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "the run ended before it could be stopped");
    child.wait_with_output().unwrap()
}

/// Bytes the process has read so far (`rchar` in /proc/PID/io).
fn rchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn cli_a_run_killed_half_way_resumes_from_what_it_stored() {
    let tree = gen_tree(24_000, 13);
    let expected = reference(tree.path(), 1, false);
    let (groups, full, ..) = cli(tree.path(), &["--no-cache", "--hash", "sha256"]);
    assert_eq!(groups, expected);
    let dir = tempfile::tempdir().unwrap();
    let again = [
        "--cache-dir",
        dir.path().to_str().unwrap(),
        "--hash",
        "sha256",
    ];
    // Killed once the first batch is committed, well before the end.
    let out = interrupt_run(tree.path(), dir.path(), 9, |_| committed(dir.path()) > 0);
    assert!(out.status.code().is_none(), "killed by the signal");
    let kept = committed(dir.path());
    assert!(kept >= dedupe::cache::COMMIT_ROWS as u64, "{kept}");
    // Re-run with the same arguments: what was committed is not read again.
    let (groups, resumed, ..) = cli(tree.path(), &again);
    assert_eq!(groups, expected);
    let per_key = full / 24_000;
    assert!(
        resumed + kept * per_key * 9 / 10 <= full,
        "resumed {resumed} of {full} with {kept} keys kept"
    );
    let (_, third, ..) = cli(tree.path(), &again);
    assert_eq!(third, 0);
}

#[test]
fn cli_ctrl_c_commits_what_was_computed_and_says_interrupted() {
    let tree = gen_tree(24_000, 14);
    let dir = tempfile::tempdir().unwrap();
    // Stopped after some reading, before any batch is due (2 s, 10k keys).
    let out = interrupt_run(tree.path(), dir.path(), 2, |pid| rchar(pid) > 40 << 20);
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["interrupted"], true);
    let kept = committed(dir.path());
    assert!(kept > 0, "the writer was flushed before exit");
    let (groups, ..) = cli(
        tree.path(),
        &[
            "--cache-dir",
            dir.path().to_str().unwrap(),
            "--hash",
            "sha256",
        ],
    );
    assert_eq!(groups, reference(tree.path(), 1, false));
}

fn cache_cmd(dir: &Path, args: &[&str]) -> String {
    let mut cmd = bin();
    cmd.arg("cache").args(args).arg("--cache-dir").arg(dir);
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn stats_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&cache_cmd(dir, &["stats", "--json"])).unwrap()
}

#[test]
fn cli_cache_stats_prune_and_clear() {
    let t = Tree::new();
    for i in 0..6u8 {
        // Three pairs of 8 KiB twins.
        t.file(format!("d{}/f{i}", i % 3), vec![i / 2; 8192]);
    }
    std::thread::sleep(SETTLE);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c");
    let _ = cli(t.root(), &["--cache-dir", cache.to_str().unwrap()]);
    let s = stats_json(&cache);
    assert_eq!(s["files"], 6, "{s}");
    assert_eq!(s["volumes"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["volumes"][0]["mounted"], true, "{s}");
    assert!(cache_cmd(&cache, &["stats"]).contains("6 files"));

    // Entries of a volume that is not mounted now, and one unused for long.
    let c = rusqlite::Connection::open(cache.join(dedupe::cache::FILE_NAME)).unwrap();
    c.execute_batch(
        "INSERT INTO volumes(name) VALUES ('uuid:not-mounted-here');
         INSERT INTO entries SELECT (SELECT id FROM volumes WHERE name = 'uuid:not-mounted-here'),
             ino, rel, spec, size, mtime_ns, ctime_ns, key, path, 0 FROM entries;
         UPDATE entries SET seen = 1000 WHERE path LIKE '%/d2/f5';",
    )
    .unwrap();
    drop(c);

    // Gone, rewritten, and (below another root) gone: only what is under
    // the given root goes.
    std::fs::remove_file(t.path("d0/f0")).unwrap();
    std::fs::write(t.path("d1/f1"), vec![9u8; 8192]).unwrap();
    std::fs::remove_file(t.path("d0/f3")).unwrap();
    let out = cache_cmd(&cache, &["prune", t.path("d1").to_str().unwrap()]);
    assert!(out.contains("removed 1 key of 1 file"), "{out}");
    assert!(
        out.contains("kept 6 keys on volumes not mounted now"),
        "{out}"
    );
    let out = cache_cmd(&cache, &["prune"]);
    assert!(out.contains("removed 2 keys of 2 files"), "{out}");
    assert_eq!(
        stats_json(&cache)["files"],
        9,
        "3 here, 6 on the other volume"
    );
    let out = cache_cmd(&cache, &["prune", "--older-than", "30d"]);
    assert!(out.contains("removed 1 key of 1 file"), "{out}");
    let s = stats_json(&cache);
    let vols = s["volumes"].as_array().unwrap();
    assert!(
        vols.iter().any(|v| v["name"] == "uuid:not-mounted-here"
            && v["mounted"] == false
            && v["files"] == 6),
        "{s}"
    );

    assert!(cache_cmd(&cache, &["clear"]).contains("removed the hash cache"));
    assert!(!cache.join(dedupe::cache::FILE_NAME).exists());
    assert!(cache_cmd(&cache, &["stats"]).contains("no hash cache"));
}

#[test]
fn cli_a_cache_that_cannot_be_written_means_a_warning_and_an_exact_run() {
    let tree = gen_tree(300, 15);
    let expected = reference(tree.path(), 1, false);
    // Not writable: a directory of root's, for user nobody.
    let locked = tempfile::tempdir().unwrap();
    crate::util::chmod(locked.path(), 0o755);
    crate::util::chmod(tree.path(), 0o755);
    let mut cmd = bin();
    cmd.arg(tree.path())
        .args(["--format", "json", "--progress", "never", "--cache-dir"])
        .arg(locked.path().join("cache"));
    let cmd = crate::util::unprivileged(cmd).expect("setpriv to drop root");
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("cannot use the hash cache"), "{err}");
    assert_eq!(parse(tree.path(), &out.stdout, err).0, expected);

    // A full one: the writes stop with a warning, the answer stays exact.
    if !crate::hardening::as_root("a full cache file system (tmpfs)") {
        return;
    }
    let small = tempfile::tempdir().unwrap();
    let _mount =
        crate::hardening::Mount::new(&["-t", "tmpfs", "-o", "size=96k", "tmpfs"], small.path());
    let big = gen_tree(3000, 16);
    let (groups, _, _, err) = cli(big.path(), &["--cache-dir", small.path().to_str().unwrap()]);
    assert_eq!(groups, reference(big.path(), 1, false));
    assert!(err.contains("hash cache writes stopped"), "{err}");
}

#[test]
fn cli_the_cache_lives_under_xdg_cache_home_else_home() {
    let t = Tree::new();
    t.file("a", vec![5u8; 8192]);
    t.file("b", vec![5u8; 8192]);
    let (xdg, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cmd = bin();
    cmd.arg(t.root())
        .env("XDG_CACHE_HOME", xdg.path())
        .env("HOME", home.path());
    assert_eq!(code(&run(cmd)), 0);
    let dir = xdg.path().join("dedupe");
    assert!(dir.join(dedupe::cache::FILE_NAME).is_file());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "it holds paths");
    assert!(!home.path().join(".cache").exists());

    let mut cmd = bin();
    cmd.arg(t.root())
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", home.path());
    assert_eq!(code(&run(cmd)), 0);
    assert!(home
        .path()
        .join(".cache/dedupe")
        .join(dedupe::cache::FILE_NAME)
        .is_file());
}

#[test]
fn a_file_changed_after_the_walk_is_not_answered_from_the_cache() {
    for keep_mtime in [false, true] {
        let t = Tree::new();
        t.file("a", "same content!!");
        t.file("b", "same content!!");
        let victim = t.file("c", "same content!!");
        let dir = tempfile::tempdir().unwrap();
        let (groups, _) = lib_run(t.root(), Some(cache_in(dir.path())), FindOptions::default());
        assert_eq!(groups.len(), 1);
        // Rewritten (same size) between the walk and the hashing: the
        // stored key is of the old bytes, and must not be taken.
        let finder = Finder::builder(Arc::new(Config::default()))
            .progress(Arc::new(Saboteur(victim.clone(), keep_mtime)))
            .options(FindOptions {
                streaming: false,
                ..FindOptions::default()
            })
            .key_source(Box::new(cache_in(dir.path())))
            .build();
        let report = finder.run(&[t.root()], |_| {}).unwrap();
        let groups: Vec<Vec<PathBuf>> = report.groups().map(|g| g.paths()).collect();
        assert_eq!(groups.len(), 1, "keep_mtime {keep_mtime}: {groups:?}");
        assert!(
            !groups[0].contains(&victim),
            "keep_mtime {keep_mtime}: {groups:?}"
        );
    }
}
