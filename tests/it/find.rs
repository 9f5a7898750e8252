//! Duplicate finding against a brute-force reference: read every file,
//! group by exact bytes, collapse hard links. Every execution strategy must
//! agree with it exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dedupe::report::decode_json_path;
use dedupe::{
    Config, ErrorKind, FindEvent, FindOptions, Finder, HashAlgo, NoProgress, ProgressTracker,
    StreamingConfig,
};
use dedupe_testkit::gen::{generate, GenSpec, SizeDist};
use proptest::prelude::*;

use crate::util::{bin, chmod, code, p, reference_files, run, split0, stderr, unprivileged, Tree};

/// A group as a set of inodes (hard links are one file), or of paths.
pub(crate) type Groups = BTreeSet<BTreeSet<Vec<u8>>>;

/// The reference: exact bytes, no hashing. Groups of inodes, each inode
/// named by its smallest path, unless `hard_links`.
pub(crate) fn reference(root: &Path, min_size: u64, hard_links: bool) -> Groups {
    /// Content -> file (inode, or path number) -> its paths.
    type ByContent = BTreeMap<Vec<u8>, BTreeMap<(u64, u64), Vec<Vec<u8>>>>;
    let mut by_content = ByContent::new();
    for (n, path) in reference_files(root).into_iter().enumerate() {
        let md = std::fs::metadata(p(&path)).unwrap();
        if md.len() < min_size {
            continue;
        }
        let bytes = std::fs::read(p(&path)).unwrap();
        // With `hard_links`, every path is a file of its own.
        let id = if hard_links {
            (u64::MAX, n as u64)
        } else {
            (md.dev(), md.ino())
        };
        by_content
            .entry(bytes)
            .or_default()
            .entry(id)
            .or_default()
            .push(path);
    }
    by_content
        .into_values()
        .filter(|inodes| inodes.len() > 1)
        .map(|inodes| {
            inodes
                .into_values()
                .map(|mut v| {
                    v.sort();
                    v.swap_remove(0)
                })
                .collect()
        })
        .collect()
}

/// Normalises reported groups: each path replaced by the smallest path of
/// its inode (so which hard link was reported does not matter).
pub(crate) fn normalise(groups: Vec<Vec<PathBuf>>, root: &Path, hard_links: bool) -> Groups {
    let mut names: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    if !hard_links {
        for path in reference_files(root) {
            let md = std::fs::metadata(p(&path)).unwrap();
            let e = names
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| path.clone());
            if path < *e {
                *e = path;
            }
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let set: BTreeSet<Vec<u8>> = g
                .iter()
                .map(|f| {
                    let raw = f.as_os_str().as_encoded_bytes().to_vec();
                    if hard_links {
                        raw
                    } else {
                        let md = std::fs::metadata(f).unwrap();
                        names[&(md.dev(), md.ino())].clone()
                    }
                })
                .collect();
            assert_eq!(set.len(), g.len(), "a file twice in one group: {g:?}");
            set
        })
        .collect()
}

fn find_lib(
    root: &Path,
    options: FindOptions,
    config: Config,
    sc: StreamingConfig,
) -> (Vec<Vec<PathBuf>>, dedupe::Summary) {
    let finder = Finder::builder(Arc::new(config))
        .progress(Arc::new(NoProgress))
        .streaming(sc)
        .options(options)
        .build();
    let mut live: BTreeMap<u64, usize> = BTreeMap::new();
    let report = finder
        .run(&[root], |ev| {
            if let FindEvent::Group(g) = ev {
                // Re-reports keep the id and never lose members.
                let prev = live.insert(g.id, g.files.len()).unwrap_or(0);
                assert!(g.files.len() >= prev.max(2), "group {} shrank", g.id);
            }
        })
        .unwrap();
    let summary = report.summary.clone();
    let groups: Vec<Vec<PathBuf>> = report.groups().map(|g| g.paths()).collect();
    // Only that every final group was also reported during the run (when
    // is checked by hardening::groups_are_reported_while_the_walk_goes_on).
    assert_eq!(live.len(), groups.len(), "a final group was never reported");
    (groups, summary)
}

fn strategies() -> Vec<(FindOptions, Config, StreamingConfig)> {
    let mut out = Vec::new();
    for streaming in [true, false] {
        for threads in [1, 3] {
            out.push((
                FindOptions {
                    streaming,
                    // Half the runs keep every settled file in the
                    // temporary file, as a large run does past the first
                    // few thousand.
                    settled_in_memory: if threads == 1 {
                        FindOptions::default().settled_in_memory
                    } else {
                        0
                    },
                    ..FindOptions::default()
                },
                Config {
                    min_file_size: 1,
                    threads_per_stage: threads,
                    ..Config::default()
                },
                if threads == 1 {
                    StreamingConfig {
                        scanner_workers: 1,
                        ..StreamingConfig::default()
                    }
                } else {
                    StreamingConfig::high_throughput_config()
                },
            ));
        }
    }
    out.push((
        FindOptions {
            verify: true,
            hash: HashAlgo::Blake3,
            settled_in_memory: 0,
            ..FindOptions::default()
        },
        Config {
            min_file_size: 1,
            ..Config::default()
        },
        StreamingConfig::default(),
    ));
    out.push((
        FindOptions {
            hash: HashAlgo::Sha256,
            ..FindOptions::default()
        },
        Config {
            min_file_size: 1,
            threads_per_stage: 2,
            ..Config::default()
        },
        StreamingConfig {
            scanner_workers: 3,
            discovery_buffer_size: 4,
            batch_size: 2,
            ..StreamingConfig::default()
        },
    ));
    out
}

/// Files that differ from `base` only in one byte, at each end and in the
/// middle, plus exact copies; in every size regime of the pipeline.
fn traps(t: &Tree) {
    for (label, size) in [
        ("small", 1000usize),
        ("medium", 300_000),
        // The last partial read chunk: below and above the size where the
        // statistical stage starts.
        ("chunked", 3 * 1024 * 1024 + 500_000),
        ("large", 5 * 1024 * 1024 + 7),
        ("chunked-sampled", 9 * 1024 * 1024 + 500_000),
    ] {
        let base: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        t.file(format!("{label}/base"), &base);
        t.file(format!("{label}/copy dir/copy"), &base);
        // "near-end": inside the last partial read chunk, outside the quick
        // check's 4 KiB tail and every statistical sample.
        let near_end = size.checked_sub(100_000);
        let variants = [
            ("first", Some(0)),
            ("middle", Some(size / 2 + 1)),
            ("last", Some(size - 1)),
            ("near-end", near_end),
        ];
        for (what, at) in variants {
            let Some(at) = at else { continue };
            let mut v = base.clone();
            v[at] ^= 1;
            t.file(format!("{label}/{what}"), &v);
            if what == "middle" {
                t.file(format!("{label}/{what}-twin"), &v);
            }
        }
    }
    t.file("links/a", "linked content");
    t.hardlink("links/a", "links/b");
    t.file("links/c", "linked content");
    t.file("empty1", "");
    t.file("empty2", "");
    t.file("empty3", "");
    t.file(b"odd/new\nline", "odd names");
    t.file(b"odd/bad\xff\xfe", "odd names");
    t.file("odd/with space", "odd names");
    t.file("odd/quote\"and,comma", "odd names");
    t.fifo("odd/fifo");
    t.symlink(t.root(), "odd/loop");
    t.symlink("links/a", "odd/link-to-a");
}

#[test]
fn traps_match_the_reference_in_every_strategy() {
    let t = Tree::new();
    traps(&t);
    let expected = reference(t.root(), 1, false);
    assert_eq!(
        expected.len(),
        10 + 1 + 1,
        "5 regimes x (copy, middle twin), links, odd names"
    );
    for (opts, cfg, sc) in strategies() {
        let label = format!("{opts:?} threads {}", cfg.threads_per_stage);
        let (groups, summary) = find_lib(t.root(), opts, cfg, sc);
        assert_eq!(normalise(groups, t.root(), false), expected, "{label}");
        assert_eq!(summary.hard_links_collapsed, 1, "{label}");
        assert_eq!(summary.errors.len(), 0, "{label}: {:?}", summary.errors);
    }
}

/// A caller that wants only the final report gets the same groups, no
/// group events, and still the time of the first group.
#[test]
fn groups_unobserved_give_the_same_report() {
    let t = Tree::new();
    traps(&t);
    let run = |observe: bool| {
        let finder = Finder::builder(Arc::new(Config {
            min_file_size: 1,
            ..Config::default()
        }))
        .observe_groups(observe)
        .build();
        let mut events = 0;
        let report = finder
            .run(&[t.root()], |ev| {
                if let FindEvent::Group(_) = ev {
                    events += 1;
                }
            })
            .unwrap();
        let groups: Vec<Vec<PathBuf>> = report.groups().map(|g| g.paths()).collect();
        (groups, events, report.summary.first_group_ms)
    };
    let (seen, seen_events, seen_first) = run(true);
    let (unseen, unseen_events, unseen_first) = run(false);
    assert_eq!(unseen, seen);
    assert_eq!(seen.len(), 12);
    assert!(seen_events >= 12, "{seen_events} events");
    assert_eq!(unseen_events, 0);
    assert!(seen_first.is_some() && unseen_first.is_some());
}

#[test]
fn hard_links_and_empty_files_on_request() {
    let t = Tree::new();
    traps(&t);
    let opts = FindOptions {
        hard_links: true,
        ..FindOptions::default()
    };
    let cfg = Config {
        min_file_size: 0,
        ..Config::default()
    };
    let (groups, _) = find_lib(t.root(), opts, cfg, StreamingConfig::default());
    assert_eq!(
        normalise(groups, t.root(), true),
        reference(t.root(), 0, true)
    );
}

#[test]
fn the_statistical_stage_splits_large_files_without_reading_them_whole() {
    let t = Tree::new();
    let size = 8 << 20;
    let base: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    for k in 0..4 {
        let mut v = base.clone();
        // Inside the file (not in the 4 KiB quick-check edges), at the start
        // of statistical sample k+1 of 16 (spread over size - 4 KiB).
        v[(size - 4096) * (k + 1) / 15] ^= 0xff;
        t.file(format!("big{k}"), &v);
    }
    let (groups, summary) = find_lib(
        t.root(),
        FindOptions::default(),
        Config::default(),
        StreamingConfig::default(),
    );
    assert!(groups.is_empty());
    let full = summary.stages.iter().find(|s| s.name == "full").unwrap();
    let stat = summary
        .stages
        .iter()
        .find(|s| s.name == "statistical")
        .unwrap();
    assert_eq!(stat.files, 4);
    assert!(full.bytes_read < size as u64, "full reads: {full:?}");
}

/// Start of statistical sample `k` (0-15) in a file of `size` bytes: 16
/// samples of 4 KiB spread evenly from the first byte to the last.
fn sample_start(size: usize, k: usize) -> usize {
    (size - 4096) * k / 15
}

#[test]
fn every_stage_does_its_job() {
    let t = Tree::new();
    let variants = |label: &str, size: usize, flips: &[(&str, usize)]| {
        let base: Vec<u8> = (0..size).map(|i| (i * 13 + i / 509) as u8).collect();
        t.file(format!("{label}/base"), &base);
        t.file(format!("{label}/copy"), &base);
        for (name, at) in flips {
            let mut v = base.clone();
            v[*at] ^= 0x5a;
            t.file(format!("{label}/{name}"), &v);
        }
    };
    // Medium (quick check, then full hash): the edges split at the quick
    // check and are never read whole.
    let m = 300_000;
    variants("medium", m, &[("first", 0), ("last", m - 1)]);
    // Large (quick, statistical, full): edges split at the quick check, a
    // byte at a sample at the statistical stage, and a byte inside the last
    // partial read chunk, in no sample, only by the full hash.
    let l = 9 * 1024 * 1024 + 500_000;
    let hidden = l - 100_000;
    assert!((0..16).all(|k| !(sample_start(l, k)..sample_start(l, k) + 4096).contains(&hidden)));
    variants(
        "large",
        l,
        &[
            ("first", 0),
            ("last", l - 1),
            ("sampled", sample_start(l, 7) + 10),
            ("hidden", hidden),
        ],
    );
    let (groups, summary) = find_lib(
        t.root(),
        FindOptions::default(),
        Config::default(),
        StreamingConfig::default(),
    );
    assert_eq!(
        normalise(groups, t.root(), false),
        reference(t.root(), 1, false)
    );
    let stage = |name: &str| {
        summary
            .stages
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .clone()
    };
    let (quick, stat, full) = (stage("quick"), stage("statistical"), stage("full"));
    assert_eq!(
        (quick.files, quick.candidates_after),
        (4 + 6, 2 + 4),
        "{quick:?}"
    );
    assert_eq!((stat.files, stat.candidates_after), (4, 3), "{stat:?}");
    assert_eq!(
        full.files,
        2 + 3,
        "only files that shared every earlier key: {full:?}"
    );
    assert_eq!(
        full.candidates_after,
        2 + 2,
        "base and copy in each regime: {full:?}"
    );
    assert_eq!(quick.bytes_read, 10 * 8192, "head and tail only");
    assert_eq!(stat.bytes_read, 4 * 16 * 4096, "16 samples only");
    assert_eq!(full.bytes_read, 2 * m as u64 + 3 * l as u64);
}

/// Sums what the pipeline reports to a progress bar.
#[derive(Default)]
struct Tally {
    added: std::sync::Mutex<(u64, u64)>,
    settled: std::sync::Mutex<(u64, u64)>,
}
impl ProgressTracker for Tally {
    fn candidates_added(&self, files: u64, bytes: u64) {
        let mut a = self.added.lock().unwrap();
        *a = (a.0 + files, a.1 + bytes);
    }
    fn candidates_settled(&self, files: u64, bytes: u64) {
        let mut s = self.settled.lock().unwrap();
        *s = (s.0 + files, s.1 + bytes);
    }
}

#[test]
fn the_progress_bar_ends_full() {
    let t = Tree::new();
    traps(&t);
    for verify in [false, true] {
        let tally = Arc::new(Tally::default());
        let finder = Finder::builder(Arc::new(Config::default()))
            .progress(tally.clone())
            .options(FindOptions {
                verify,
                ..FindOptions::default()
            })
            .build();
        finder.run(&[t.root()], |_| {}).unwrap();
        let added = *tally.added.lock().unwrap();
        assert!(added.0 > 20, "{added:?}");
        assert_eq!(
            *tally.settled.lock().unwrap(),
            added,
            "every candidate added was settled once (verify {verify})"
        );
    }
}

/// Changes a file after the walk and before hashing (non-streaming mode
/// hashes only once the walk is over): it must leave its group.
struct Saboteur(PathBuf);
impl ProgressTracker for Saboteur {
    fn scan_finished(&self) {
        std::fs::write(&self.0, b"other content!").unwrap();
        let f = std::fs::File::options().write(true).open(&self.0).unwrap();
        f.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        )
        .unwrap();
    }
}

#[test]
fn a_file_changed_during_the_run_leaves_its_group() {
    let t = Tree::new();
    t.file("a", "same content!!");
    t.file("b", "same content!!");
    let victim = t.file("c", "same content!!");
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(Saboteur(victim.clone())))
        .options(FindOptions {
            streaming: false,
            ..FindOptions::default()
        })
        .build();
    let mut errors = Vec::new();
    let report = finder
        .run(&[t.root()], |ev| {
            if let FindEvent::Error(e) = ev {
                errors.push((e.kind, e.path.clone()));
            }
        })
        .unwrap();
    let groups: Vec<Vec<PathBuf>> = report.groups().map(|g| g.paths()).collect();
    assert_eq!(groups.len(), 1);
    assert!(!groups[0].contains(&victim), "{groups:?}");
    assert_eq!(groups[0].len(), 2);
    assert_eq!(errors, vec![(ErrorKind::Changed, victim)]);
    assert_eq!(report.summary.errors.get("changed"), Some(&1));
}

fn cli_groups(args: &[&str], root: &Path) -> (Groups, std::process::Output) {
    let mut cmd = bin();
    cmd.args(args)
        .arg(root)
        .args(["--format", "json", "--progress", "never"]);
    let out = run(cmd);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let groups = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    PathBuf::from(std::ffi::OsString::from(
                        p(&decode_json_path(f).unwrap()).as_os_str(),
                    ))
                })
                .collect()
        })
        .collect();
    (normalise(groups, root, false), out)
}

#[test]
fn cli_formats_agree_and_are_lossless() {
    let t = Tree::new();
    traps(&t);
    let expected = reference(t.root(), 1, false);
    let (json, out) = cli_groups(&[], t.root());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json, expected);
    let (json, _) = cli_groups(
        &[
            "find",
            "--no-streaming",
            "--verify",
            "--hash",
            "sha256",
            "-t",
            "1",
        ],
        t.root(),
    );
    assert_eq!(json, expected);

    // fdupes with NUL terminators: an empty record between groups.
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "-0"]).arg(t.root());
    let out = run(cmd);
    let mut groups = vec![Vec::new()];
    for rec in split0(&out.stdout) {
        if rec.is_empty() {
            groups.push(Vec::new());
        } else {
            groups.last_mut().unwrap().push(PathBuf::from(p(&rec)));
        }
    }
    groups.retain(|g| !g.is_empty());
    assert_eq!(normalise(groups, t.root(), false), expected);

    // JSON Lines: groups as they come, then one summary.
    let mut cmd = bin();
    cmd.args(["--format", "jsonl"]).arg(t.root());
    let out = run(cmd);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["groups"], expected.len() as u64);
    let mut latest: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for l in &lines[..lines.len() - 1] {
        assert_eq!(l["type"], "group", "{l}");
        let files = l["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| PathBuf::from(p(&decode_json_path(f).unwrap())))
            .collect();
        latest.insert(l["id"].as_u64().unwrap(), files);
        assert_eq!(l["hash"].as_str().unwrap().len(), 64, "BLAKE3 by default");
    }
    assert_eq!(
        normalise(latest.into_values().collect(), t.root(), false),
        expected
    );

    // CSV: one row per file, read back by a real CSV parser (names hold a
    // newline, a quote and a comma, and bytes that are not UTF-8).
    let mut cmd = bin();
    cmd.args(["--format", "csv"]).arg(t.root());
    let out = run(cmd);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&out.stdout[..]);
    assert_eq!(
        reader.byte_headers().unwrap(),
        &csv::ByteRecord::from(vec!["group", "size", "hash", "path"])
    );
    let mut by_group: BTreeMap<Vec<u8>, Vec<PathBuf>> = BTreeMap::new();
    for rec in reader.byte_records() {
        let rec = rec.unwrap();
        assert_eq!(rec.len(), 4, "{rec:?}");
        by_group
            .entry(rec[0].to_vec())
            .or_default()
            .push(PathBuf::from(p(&rec[3])));
    }
    assert_eq!(
        normalise(by_group.into_values().collect(), t.root(), false),
        expected
    );

    // Text: header, sizes for people, groups largest first.
    let mut cmd = bin();
    cmd.arg(t.root());
    let out = run(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("# "), "{text}");
    assert!(
        text.contains(&format!("{} duplicate groups", expected.len())),
        "{text}"
    );
    let first_group = text.lines().find(|l| l.contains(" x ")).unwrap();
    assert!(
        first_group.contains("9.5 MiB"),
        "largest first: {first_group}"
    );
}

#[test]
fn bad_input_exits_2_and_unreadable_entries_exit_1() {
    let t = Tree::new();
    let mut cmd = bin();
    cmd.arg(t.path("missing"));
    let out = run(cmd);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing") && stderr(&out).contains("No such file"));
    let out = run(bin());
    assert_eq!(code(&out), 2, "no paths: usage");
    let mut cmd = bin();
    cmd.args(["--hash", "md5", "."]);
    assert_eq!(code(&run(cmd)), 2);

    t.file("ok/a", "dup");
    t.file("ok/b", "dup");
    let locked = t.file("locked/c", "dup");
    chmod(locked.parent().unwrap(), 0o000);
    let unreadable = t.file("ok/unreadable", "dup");
    chmod(&unreadable, 0o000);
    t.fifo("ok/fifo");
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "--stats"]).arg(t.root());
    let cmd = unprivileged(cmd).expect("setpriv to drop root");
    let out = run(cmd);
    chmod(locked.parent().unwrap(), 0o755);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("ok/a") && listed.contains("ok/b"),
        "{listed}"
    );
    assert!(!listed.contains("unreadable"));
    assert!(
        stderr(&out).contains("permission_denied 2"),
        "{}",
        stderr(&out)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn generated_trees_match_the_reference(
        seed in 0u64..1_000_000,
        dup in 0.0f64..0.5,
        near in 0.0f64..0.3,
        max_size in prop::sample::select(vec![200u64, 70_000, 200_000]),
        lognormal in any::<bool>(),
        streaming in any::<bool>(),
        threads in 1usize..4,
        spill in any::<bool>(),
    ) {
        let t = Tree::new();
        let spec = GenSpec {
            files: 300,
            dirs: 17,
            dup_ratio: dup,
            near_ratio: near,
            seed,
            min_size: 0,
            max_size,
            sizes: if lognormal { SizeDist::LogNormal { median: max_size / 8 + 1, sigma: 1.5 } } else { SizeDist::Uniform },
        };
        generate(t.root(), &spec).unwrap();
        let expected = reference(t.root(), 1, false);
        let (groups, _) = find_lib(
            t.root(),
            FindOptions {
                streaming,
                settled_in_memory: if spill { 0 } else { u32::MAX },
                ..FindOptions::default()
            },
            Config { min_file_size: 1, threads_per_stage: threads, ..Config::default() },
            StreamingConfig { scanner_workers: threads, batch_size: 7, discovery_buffer_size: 21, ..StreamingConfig::default() },
        );
        prop_assert_eq!(normalise(groups, t.root(), false), expected);
    }
}

#[test]
fn a_cancelled_run_ends_and_says_so() {
    let t = Tree::new();
    generate(
        t.root(),
        &GenSpec {
            files: 2_000,
            dirs: 50,
            max_size: 100,
            ..GenSpec::default()
        },
    )
    .unwrap();
    let finder = Finder::builder(Arc::new(Config::default()))
        .progress(Arc::new(NoProgress))
        .options(FindOptions::default())
        .build();
    finder.canceller().cancel();
    let report = finder.run(&[t.root()], |_| {}).unwrap();
    assert!(report.summary.interrupted);
    assert!(
        report
            .summary
            .stages
            .iter()
            .all(|s| s.files == 0 || s.name == "size"),
        "{:?}",
        report.summary.stages
    );
}

#[test]
fn duplicates_deeper_than_path_max_are_found() {
    let t = Tree::new();
    let deep = t.deep_file(b"deep duplicate");
    let shallow = t.file("shallow", "deep duplicate");
    for verify in [false, true] {
        let opts = FindOptions {
            verify,
            ..FindOptions::default()
        };
        let (groups, summary) = find_lib(
            t.root(),
            opts,
            Config::default(),
            StreamingConfig::default(),
        );
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let mut g = groups.concat();
        g.sort();
        let mut want = vec![deep.clone(), shallow.clone()];
        want.sort();
        assert_eq!(g, want);
    }
}

#[test]
fn overlapping_roots_count_each_file_once() {
    let t = Tree::new();
    t.file("top/a", "dup");
    t.file("top/sub/b", "dup");
    t.file("top/sub/c", "other");
    let sub = t.path("top/sub");
    let top = t.path("top");
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "-0"])
        .arg(&sub)
        .arg(&top)
        .arg(&sub);
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut files: Vec<Vec<u8>> = split0(&out.stdout)
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            t.path("top/a").into_os_string().into_encoded_bytes(),
            t.path("top/sub/b").into_os_string().into_encoded_bytes()
        ]
    );
}

#[test]
fn files_given_as_roots_are_compared() {
    let t = Tree::new();
    let a = t.file("a.jpg", "same bytes");
    let b = t.file("b.jpg", "same bytes");
    let c = t.file("dir/c.jpg", "same bytes");
    let mut cmd = bin();
    cmd.args(["--format", "fdupes", "-0"])
        .arg(&a)
        .arg(&b)
        .arg(t.path("dir"));
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut files: Vec<Vec<u8>> = split0(&out.stdout)
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    files.sort();
    let want: Vec<Vec<u8>> = [a, b, c]
        .into_iter()
        .map(|p| p.into_os_string().into_encoded_bytes())
        .collect();
    assert_eq!(files, want);
}
