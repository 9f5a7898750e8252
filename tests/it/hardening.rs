//! Regression tests for what independent testing broke (the adversarial and
//! code reviews): each fails on the code before its fix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dedupe::{
    Config, ErrorKind, FindEvent, FindOptions, Finder, HashAlgo, NoProgress, ProgressTracker,
    StreamingConfig, StreamingWalker, WalkEvent,
};

use crate::util::{bin, code, run, split0, stderr, within, Tree};

/// Two different files of `size` bytes with equal xxh3-128 (default
/// secret): lane 0 of stripes 0 and 1 holds (X, Y) in one and (Y, X) in
/// the other, with X and Y chosen from the secret so every multiply term is
/// zero and the sums match.
fn xxh3_collision(size: usize) -> (Vec<u8>, Vec<u8>) {
    let ks: [u8; 16] = [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad,
        0x1c,
    ];
    let s1 = u64::from_le_bytes(ks[0..8].try_into().unwrap());
    let s2 = u64::from_le_bytes(ks[8..16].try_into().unwrap());
    let x = (s1 & 0xffff_ffff_0000_0000) | (s2 & 0xffff_ffff);
    let y = (s2 & 0xffff_ffff_0000_0000) | (s1 & 0xffff_ffff);
    let make = |first: u64, second: u64| {
        let mut b = vec![b'A'; size];
        b[0..8].copy_from_slice(&first.to_le_bytes());
        b[64..72].copy_from_slice(&second.to_le_bytes());
        b
    };
    (make(x, y), make(y, x))
}

/// Groups from `dedupe <args> -f fdupes -0 <roots>`, each sorted, as sets.
fn fdupes_groups(
    args: &[&str],
    roots: &[&Path],
) -> (BTreeSet<BTreeSet<Vec<u8>>>, std::process::Output) {
    let mut cmd = bin();
    cmd.args(args)
        .args(["-f", "fdupes", "-0", "--progress", "never"]);
    cmd.args(roots);
    let out = run(cmd);
    let mut groups = BTreeSet::new();
    let mut cur = BTreeSet::new();
    for rec in split0(&out.stdout) {
        if rec.is_empty() {
            groups.insert(std::mem::take(&mut cur));
        } else {
            cur.insert(rec);
        }
    }
    (groups, out)
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

fn set(paths: &[&Path]) -> BTreeSet<Vec<u8>> {
    paths.iter().map(|p| bytes(p)).collect()
}

#[test]
fn crafted_hash_collisions_are_not_duplicates_by_default() {
    let t = Tree::new();
    for size in [300, 4096, 65536, 1_000_000, 8 << 20] {
        let (a, b) = xxh3_collision(size);
        assert_ne!(a, b);
        t.file(format!("{size}/a.bin"), a);
        t.file(format!("{size}/b.bin"), b);
    }
    // The pairs do collide under xxh3: the attack is real...
    let (groups, out) = fdupes_groups(&["--hash", "xxh3"], &[t.root()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(groups.len(), 5, "the crafted pairs collide under xxh3");
    // ...and the default does not fall for it, nor does --verify.
    for args in [
        &[][..],
        &["--hash", "sha256"],
        &["--hash", "xxh3", "--verify"],
    ] {
        let (groups, out) = fdupes_groups(args, &[t.root()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(groups.is_empty(), "{args:?}: {groups:?}");
    }
}

#[test]
fn verify_starts_a_new_group_on_a_collision() {
    let t = Tree::new();
    let (a, b) = xxh3_collision(4096);
    let a = t.file("vfy/a.bin", a);
    let bb = t.file("vfy/b.bin", &b);
    let c = t.file("vfy/c.bin", &b);
    let d = t.file("vfy/d.bin", &b);
    for threads in ["1", "3"] {
        let (groups, out) = fdupes_groups(
            &["--hash", "xxh3", "--verify", "-t", threads],
            &[&a, &bb, &c, &d],
        );
        assert_eq!(
            code(&out),
            0,
            "a collision is not an error: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("changed"), "{}", stderr(&out));
        assert_eq!(groups, [set(&[&bb, &c, &d])].into());
    }
}

/// Runs a closure as root only; anywhere else the test fails loudly unless
/// `DEDUPE_SKIP_ROOT_TESTS` is set, so a skipped check is never a silent pass.
pub fn as_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("DEDUPE_SKIP_ROOT_TESTS").is_some() {
        eprintln!("SKIPPED (not root): {what}");
        return false;
    }
    panic!("{what} needs root (mount); run as root or set DEDUPE_SKIP_ROOT_TESTS=1 to skip it");
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
pub struct Mount(PathBuf);
impl Mount {
    pub fn new(args: &[&str], target: &Path) -> Mount {
        let status = std::process::Command::new("mount")
            .args(args)
            .arg(target)
            .status()
            .expect("mount");
        assert!(status.success(), "mount {args:?} {}", target.display());
        Mount(target.to_path_buf())
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_inode_through_a_bind_mount_is_one_file() {
    if !as_root("bind-mount aliasing") {
        return;
    }
    let t = Tree::new();
    let only = t.file("tree/sub/only", "unique file A");
    // A real copy of `only`: its bind-mounted alias then meets a group.
    let only_copy = t.file("tree/other/only copy", "unique file A");
    let twin_a = t.file("tree/sub/twin", "twin content");
    let twin_b = t.file("tree/other/twin", "twin content");
    let bind = t.dir("tree/bind");
    let _dir = Mount::new(&["--bind", t.path("tree/sub").to_str().unwrap()], &bind);
    // A file bind mount too: a second path to one inode with nlink 1.
    let fbind = t.file("tree/fbind", "");
    let _file = Mount::new(&["--bind", only.to_str().unwrap()], &fbind);
    let (groups, out) = fdupes_groups(&[], &[&t.path("tree")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // One path per inode: each group holds the real copy and one path of
    // the aliased inode (which one depends on which path of the
    // bind-mounted directory the walk reached first).
    assert_eq!(groups.len(), 2, "{groups:?}");
    for g in &groups {
        assert_eq!(g.len(), 2, "{g:?}");
        let (real, aliases) = if g.contains(&bytes(&only_copy)) {
            (&only_copy, [fbind.clone(), only.clone(), bind.join("only")])
        } else {
            (&twin_b, [twin_a.clone(), bind.join("twin"), twin_a.clone()])
        };
        assert!(g.contains(&bytes(real)), "{g:?}");
        assert!(aliases.iter().any(|a| g.contains(&bytes(a))), "{g:?}");
    }
    // The directory and its bind mount named as roots: one directory.
    let (groups, out) = fdupes_groups(&[], &[&t.path("tree/sub"), &bind]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(groups.is_empty(), "{groups:?}");
    // The bind-mounted directory is listed once.
    let mut cmd = bin();
    cmd.arg("scan").arg("-0").arg(t.path("tree"));
    let out = run(cmd);
    let listed = split0(&out.stdout);
    let twins = listed.iter().filter(|p| p.ends_with(b"/twin")).count();
    assert_eq!(twins, 2, "sub/twin once, other/twin once: {listed:?}");
}

#[test]
fn a_followed_symlink_is_not_a_copy_of_its_target() {
    let t = Tree::new();
    let target = t.file("dir/t", "lonely");
    t.symlink("t", "dir/l");
    let copy = t.file("dir/x/real copy", "shared");
    t.symlink("x/real copy", "dir/shortcut");
    let other = t.file("dir/y/other copy", "shared");
    let (groups, out) = fdupes_groups(&["-L"], &[&t.path("dir")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // One group: the two real copies (the shortcut is one of them).
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = groups.into_iter().next().unwrap();
    assert_eq!(g.len(), 2, "{g:?}");
    assert!(g.contains(&bytes(&other)), "{g:?}");
    assert!(!g.iter().any(|p| p.ends_with(b"/t") || p.ends_with(b"/l")));
    let _ = (target, copy);
    // -H (hard links are duplicates) with -L cannot tell entries apart.
    let mut cmd = bin();
    cmd.args(["-L", "-H"]).arg(t.path("dir"));
    let out = run(cmd);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// Moves `dir` aside and puts a symlink to `to` in its place.
fn swap_for_symlink(dir: &Path, to: &Path) {
    std::fs::rename(dir, dir.with_file_name("moved-away")).unwrap();
    std::os::unix::fs::symlink(to, dir).unwrap();
}

/// Swaps `dir` for a symlink to `to` the `n`th time a directory finishes
/// listing (with one scanner the order is depth first and known).
struct SwapAfter {
    n: usize,
    seen: AtomicUsize,
    dir: PathBuf,
    to: PathBuf,
}
impl ProgressTracker for SwapAfter {
    fn dir_scanned(&self, _: u64, _: u64) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            swap_for_symlink(&self.dir, &self.to);
        }
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_does_not_lead_the_walk_out() {
    let t = Tree::new();
    t.file("root/a/b/inside", "inside");
    t.file("outside/b/SECRET", "secret");
    let swap = SwapAfter {
        n: 2, // root, then a: b is queued when a is swapped
        seen: AtomicUsize::new(0),
        dir: t.path("root/a"),
        to: t.path("outside"),
    };
    let walker = StreamingWalker::new(
        Arc::new(Config::default()),
        Arc::new(swap),
        Some(StreamingConfig {
            scanner_workers: 1,
            ..StreamingConfig::default()
        }),
    );
    let mut names = Vec::new();
    for ev in walker.walk(&[t.path("root")]).unwrap() {
        if let WalkEvent::Batch(b) = ev {
            names.extend(b.iter().map(|f| f.name().to_owned()));
        }
    }
    assert_eq!(names, ["inside"], "listed through the symlink: {names:?}");
}

/// Swaps a directory for a symlink once the walk is over (the pipeline
/// then reads in traditional mode).
struct SwapAtEnd {
    dir: PathBuf,
    to: PathBuf,
}
impl ProgressTracker for SwapAtEnd {
    fn scan_finished(&self) {
        swap_for_symlink(&self.dir, &self.to);
    }
}

#[test]
fn a_read_does_not_follow_a_directory_swapped_for_a_symlink() {
    let t = Tree::new();
    t.file("root/y", "victim content");
    t.file("root/a/x", "victim content");
    t.file("outside/x", "victim content");
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(SwapAtEnd {
            dir: t.path("root/a"),
            to: t.path("outside"),
        }))
        .options(FindOptions {
            streaming: false,
            ..FindOptions::default()
        })
        .build();
    let mut errors = Vec::new();
    let report = finder
        .run(&[t.path("root")], |ev| {
            if let FindEvent::Error(e) = ev {
                errors.push(e.to_string());
            }
        })
        .unwrap();
    assert_eq!(report.group_count(), 0);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("symlink appeared"),
        "refused before opening: {errors:?}"
    );
}

#[test]
fn a_symlink_named_as_a_root_is_read() {
    let t = Tree::new();
    t.file("r/a.txt", "same");
    let b = t.file("r/b.txt", "same");
    let link = t.symlink("a.txt", "r/link_to_a");
    let (groups, out) = fdupes_groups(&[], &[&link, &b]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(groups, [set(&[&link, &b])].into());
}

#[test]
fn a_root_inside_another_root_is_searched_whatever_the_filters() {
    let t = Tree::new();
    let e = t.path("e");
    let cache = t.path("e/cache");
    let c1 = t.file("e/cache/t1", "twin");
    let c2 = t.file("e/cache/t2", "twin");
    t.file("e/o", "outer");
    let deep = t.file("m/s/t/f", "deep");
    let top = t.file("m/top", "deep");
    let hid = t.path("h/.hid");
    let h1 = t.file("h/.hid/x", "hidden twin");
    let h2 = t.file("h/.hid/y", "hidden twin");
    for (args, roots, want) in [
        (
            vec!["--exclude", "cache"],
            vec![&e, &cache],
            set(&[&c1, &c2]),
        ),
        (
            vec!["-d", "1"],
            vec![&t.path("m"), &deep],
            set(&[&deep, &top]),
        ),
        (
            vec!["--no-hidden"],
            vec![&t.path("h"), &hid],
            set(&[&h1, &h2]),
        ),
    ] {
        let roots: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();
        let (groups, out) = fdupes_groups(&args, &roots);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(groups, [want].into(), "{args:?}");
    }
    // Named twice, or in other spellings: still one file each.
    let dot = t.path("e/./cache");
    let (groups, _) = fdupes_groups(&[], &[&cache, &e, &dot, &c1]);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups.into_iter().next().unwrap().len(), 2);
}

#[test]
fn a_mounted_root_inside_another_root_is_searched_with_one_file_system() {
    if !as_root("-X with a root on a tmpfs inside another root") {
        return;
    }
    let t = Tree::new();
    let outer = t.dir("outer");
    let mnt = t.dir("outer/mnt");
    let _m = Mount::new(&["-t", "tmpfs", "-o", "size=5m", "tmpfs"], &mnt);
    let t1 = mnt.join("t1");
    let t2 = mnt.join("t2");
    std::fs::write(&t1, "twin").unwrap();
    std::fs::write(&t2, "twin").unwrap();
    t.file("outer/o", "outer");
    let (groups, out) = fdupes_groups(&["-X"], &[&outer, &mnt]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(groups, [set(&[&t1, &t2])].into());
}

#[test]
fn scan_lists_overlapping_roots_once() {
    let t = Tree::new();
    t.file("t/sub/f", "x");
    let mut cmd = bin();
    cmd.args(["scan", "-0"])
        .arg(t.path("t"))
        .arg(t.path("t/sub"))
        .arg(t.path("t"));
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(split0(&out.stdout).len(), 1, "{:?}", split0(&out.stdout));
}

/// Many sparse files of equal content: reading them is quick but not
/// instant, so a cancel lands while work is in flight.
fn sparse_tree(t: &Tree, files: usize, size: u64) {
    for i in 0..files {
        let p = t.path(format!("d{}/f{i:05}", i % 20));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    }
}

#[test]
fn a_cancel_at_any_moment_ends_the_run() {
    let t = Tree::new();
    sparse_tree(&t, 4000, 100 * 1024);
    for (verify, streaming) in [(false, true), (true, true), (false, false)] {
        for delay_ms in [0u64, 5, 20, 50, 100, 200] {
            let finder = Arc::new(
                Finder::builder(Arc::new(Config::default()))
                    .progress(Arc::new(NoProgress))
                    .options(FindOptions {
                        verify,
                        streaming,
                        ..FindOptions::default()
                    })
                    .build(),
            );
            let cancel = finder.canceller();
            let root = t.root().to_path_buf();
            let report = within(Duration::from_secs(30), move || {
                let canceller = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(delay_ms));
                    cancel.cancel();
                });
                let r = finder.run(&[root], |_| {}).unwrap();
                canceller.join().unwrap();
                r
            })
            .unwrap_or_else(|| {
                panic!("run still going 30 s after cancel at {delay_ms} ms (verify {verify}, streaming {streaming})")
            });
            // Every group reported is a true group (all files are equal).
            for g in report.groups() {
                assert!(g.files.len() >= 2);
            }
        }
    }
}

#[test]
fn a_cancel_interrupts_a_whole_file_read() {
    let t = Tree::new();
    // Two equal sparse files of 1 TiB: hours of reading.
    for name in ["a", "b"] {
        std::fs::File::create(t.path(name))
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
    }
    let finder = Arc::new(
        Finder::builder(Arc::new(Config::default()))
            .progress(Arc::new(NoProgress))
            .options(FindOptions::default())
            .build(),
    );
    let cancel = finder.canceller();
    let root = t.root().to_path_buf();
    let report = within(Duration::from_secs(60), move || {
        let c = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
        });
        let r = finder.run(&[root], |_| {}).unwrap();
        c.join().unwrap();
        r
    })
    .expect("the read went on after the cancel");
    assert!(report.summary.interrupted);
    assert_eq!(report.group_count(), 0);
}

#[test]
fn a_cancelled_finder_runs_again() {
    let t = Tree::new();
    t.file("a", "dup");
    t.file("b", "dup");
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(NoProgress))
        .options(FindOptions::default())
        .build();
    finder.canceller().cancel();
    assert!(finder.run(&[t.root()], |_| {}).unwrap().summary.interrupted);
    let again = finder.run(&[t.root()], |_| {}).unwrap();
    assert!(!again.summary.interrupted);
    assert_eq!(again.group_count(), 1);
}

#[test]
fn jsonl_head_ends_the_run() {
    let t = Tree::new();
    sparse_tree(&t, 4000, 100 * 1024);
    // Pairs marked by 8 bytes in the middle: thousands of groups.
    for i in 0..4000usize {
        let p = t.path(format!("d{}/f{i:05}", i % 20));
        let f = std::fs::File::options().write(true).open(p).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &(i as u64 / 2).to_le_bytes(), 50_000)
            .unwrap();
    }
    for _ in 0..3 {
        let mut cmd = std::process::Command::new("bash");
        cmd.env("XDG_CACHE_HOME", crate::util::cache_home());
        cmd.arg("-c").arg(format!(
            "{} {} -f jsonl --progress never | head -n 1; echo \"rc ${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_dedupe"),
            t.root().display()
        ));
        let out = run(cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("{\"type\":\"group\""), "{text}");
        assert!(
            text.contains("rc 0"),
            "a closed pipe is not a failure: {text}"
        );
    }
}

#[test]
fn jsonl_output_stays_within_a_constant_of_the_final_membership() {
    // One group of 600 identical files found slowly: each directory's
    // listing waits a little, as on a network share.
    struct Slow;
    impl ProgressTracker for Slow {
        fn dir_scanned(&self, _: u64, _: u64) {
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    let t = Tree::new();
    for i in 0..600 {
        t.file(format!("d{:03}/f{i}", i / 5), "same 4 bytes");
    }
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(Slow))
        .streaming(StreamingConfig {
            scanner_workers: 1,
            batch_size: 1,
            discovery_buffer_size: 1,
            ..StreamingConfig::default()
        })
        .options(FindOptions::default())
        .build();
    let mut emitted = 0usize;
    let mut last = 0usize;
    let report = finder
        .run(&[t.root()], |ev| {
            if let FindEvent::Group(g) = ev {
                emitted += g.files.len();
                last = g.files.len();
            }
        })
        .unwrap();
    assert_eq!(last, 600, "the last event of the group is complete");
    assert_eq!(report.group_count(), 1);
    // Reports at growth by half sum to under 3 x the last one, plus the
    // final, complete one.
    assert!(
        emitted <= 4 * 600,
        "{emitted} paths emitted for a group of 600"
    );
}

#[test]
fn reports_are_byte_identical_across_runs_and_thread_counts() {
    let t = Tree::new();
    dedupe_gen(t.root(), 3000);
    for format in ["text", "fdupes", "csv", "json"] {
        let mut outs = BTreeSet::new();
        for args in [
            &["-t", "1", "--scan-workers", "1"][..],
            &["-t", "3", "--parallel-scan"],
            &["--no-streaming"],
        ] {
            let mut cmd = bin();
            cmd.args(args)
                .args(["-f", format, "--progress", "never"])
                .arg(t.root());
            let out = run(cmd);
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            let mut text = String::from_utf8(out.stdout).unwrap();
            if format == "json" {
                // The summary holds timings; the groups must not move.
                let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
                text = doc["groups"].to_string();
            }
            outs.insert(text);
        }
        assert_eq!(outs.len(), 1, "{format} output differs between runs");
    }
}

fn dedupe_gen(root: &Path, files: u64) {
    dedupe_testkit::gen::generate(
        root,
        &dedupe_testkit::gen::GenSpec {
            files,
            dirs: 60,
            max_size: 3000,
            dup_ratio: 0.3,
            seed: 5,
            ..dedupe_testkit::gen::GenSpec::default()
        },
    )
    .unwrap();
}

#[test]
fn pseudo_file_systems_are_skipped_once() {
    for root in ["/proc/self", "/sys/kernel"] {
        let (groups, out) = fdupes_groups(&["-v"], &[Path::new(root)]);
        assert!(groups.is_empty());
        assert_eq!(code(&out), 0, "skipping on purpose is not a failure");
        let err = stderr(&out);
        assert_eq!(err.matches("pseudo file system").count(), 1, "{err}");
        assert!(!err.contains("changed"), "{err}");
    }
}

#[test]
fn a_root_longer_than_path_max_is_accepted() {
    let t = Tree::new();
    let dir = t.deep_dir(&["one", "two"], b"deep twin");
    let (groups, out) = fdupes_groups(&[], &[&dir]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(groups.len(), 1);
}

/// Holds the walk back (after its first directory) until a group has been
/// reported, or gives up after a while: then the test fails.
struct Gate {
    open: AtomicBool,
    waited_out: AtomicBool,
    first: AtomicBool,
}
impl ProgressTracker for Gate {
    fn dir_scanned(&self, _: u64, _: u64) {
        if self.first.swap(false, Ordering::SeqCst) || self.waited_out.load(Ordering::SeqCst) {
            return;
        }
        for _ in 0..1000 {
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.waited_out.store(true, Ordering::SeqCst);
    }
}

#[test]
fn groups_are_reported_while_the_walk_goes_on() {
    let t = Tree::new();
    // The pair sits in the root, the first directory listed.
    t.file("1", "early pair");
    t.file("2", "early pair");
    for i in 0..30 {
        t.file(format!("z{i:02}/x"), format!("{i}"));
    }
    let gate = Arc::new(Gate {
        open: AtomicBool::new(false),
        waited_out: AtomicBool::new(false),
        first: AtomicBool::new(true),
    });
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(gate.clone())
        .streaming(StreamingConfig {
            scanner_workers: 1,
            batch_size: 1,
            discovery_buffer_size: 1,
            ..StreamingConfig::default()
        })
        .options(FindOptions::default())
        .build();
    let groups = Mutex::new(0);
    finder
        .run(&[t.root()], |ev| {
            if let FindEvent::Group(_) = ev {
                *groups.lock().unwrap() += 1;
                gate.open.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    assert_eq!(*groups.lock().unwrap(), 1);
    assert!(
        !gate.waited_out.load(Ordering::SeqCst),
        "no group came until the walk was released"
    );
}

#[test]
fn the_first_jsonl_line_arrives_while_the_process_runs() {
    use std::io::BufRead;
    let t = Tree::new();
    t.file("small/a", "small pair");
    t.file("small/b", "small pair");
    for name in ["big/a", "big/b"] {
        let p = t.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(p).unwrap().set_len(1 << 40).unwrap();
    }
    let mut child = bin()
        .args(["-f", "jsonl", "-t", "3", "--progress", "never"])
        .arg(t.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = within(Duration::from_secs(60), move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no line within a minute");
    assert!(line.contains("small/a"), "{line}");
    assert!(running, "the line came only at exit");
}

#[test]
fn hash_choices_key_groups_by_their_whole_digest() {
    let t = Tree::new();
    t.file("a", "x");
    t.file("b", "x");
    for (hash, hex) in [("blake3", 64), ("sha256", 64), ("xxh3", 32)] {
        let mut cmd = bin();
        cmd.args(["-f", "json", "--hash", hash]).arg(t.root());
        let out = run(cmd);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            doc["groups"][0]["hash"].as_str().unwrap().len(),
            hex,
            "{hash}"
        );
        assert_eq!(doc["summary"]["hash"], hash);
    }
    let _ = HashAlgo::default();
    assert_eq!(HashAlgo::default(), HashAlgo::Blake3);
    let _ = ErrorKind::Skipped;
}
