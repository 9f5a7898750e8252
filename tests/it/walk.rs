//! The library walker against a plain recursive reference.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use dedupe::{
    Config, ConfigError, EntryKind, ErrorKind, FileEntry, Filters, NoProgress, StreamingConfig,
    StreamingWalker, WalkError, WalkEvent, WalkStats,
};
use dedupe_testkit::gen::{generate, GenSpec};

use crate::util::{reference_files, Tree};

fn walk_all(
    config: Config,
    sc: StreamingConfig,
    roots: &[&std::path::Path],
) -> (Vec<FileEntry>, Vec<dedupe::EntryError>, WalkStats) {
    let walker = StreamingWalker::new(Arc::new(config), Arc::new(NoProgress), Some(sc));
    let mut walk = walker.walk(roots).unwrap();
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for ev in walk.by_ref() {
        match ev {
            WalkEvent::Batch(b) => {
                assert!(!b.is_empty(), "empty batches are never sent");
                files.extend(b);
            }
            WalkEvent::Error(e) => errors.push(e),
            _ => {}
        }
    }
    let stats = walk.stats();
    (files, errors, stats)
}

fn paths(files: &[FileEntry]) -> BTreeSet<Vec<u8>> {
    files
        .iter()
        .map(|f| f.path().as_os_str().as_bytes().to_vec())
        .collect()
}

fn configs() -> Vec<StreamingConfig> {
    vec![
        StreamingConfig {
            scanner_workers: 1,
            max_scanner_workers: 1,
            discovery_buffer_size: 1,
            batch_size: 1,
            batch_timeout: Duration::from_millis(1),
        },
        StreamingConfig::simple_config(),
        StreamingConfig::high_throughput_config(),
        StreamingConfig {
            scanner_workers: 7,
            max_scanner_workers: 28,
            discovery_buffer_size: 21,
            batch_size: 3,
            batch_timeout: Duration::from_secs(60),
        },
    ]
}

#[test]
fn every_strategy_finds_exactly_the_reference_files() {
    let tree = Tree::new();
    let spec = GenSpec {
        files: 3_000,
        dirs: 150,
        seed: 11,
        max_size: 2_000,
        ..GenSpec::default()
    };
    generate(tree.root(), &spec).unwrap();
    let expected = reference_files(tree.root());
    assert_eq!(expected.len(), 3_000);
    for sc in configs() {
        let (files, errors, stats) = walk_all(Config::default(), sc.clone(), &[tree.root()]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files.len(), 3_000, "no file twice ({sc:?})");
        assert_eq!(paths(&files), expected, "{sc:?}");
        assert_eq!(stats.files, 3_000);
        assert_eq!(stats.dirs, 150);
        let total: u64 = files.iter().map(|f| f.size).sum();
        assert_eq!(stats.bytes, total);
        for f in files.iter().take(50) {
            let md = std::fs::metadata(f.path()).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (f.size, f.id.ino, f.id.dev, f.nlink),
                (md.len(), md.ino(), md.dev(), md.nlink())
            );
            assert_eq!(f.mtime(), md.modified().unwrap());
        }
    }
}

#[test]
fn awkward_names_and_special_files() {
    let t = Tree::new();
    t.file("with space/a b.jpg", "x");
    t.file(b"new\nline/na\nme", "y");
    t.file(b"bad\xffutf8/\xfe\xfd.bin", "z");
    t.file("empty", "");
    t.file(".hidden/.dotfile", "h");
    t.fifo("pipe");
    t.symlink("empty", "link-to-file");
    t.symlink(t.path("with space"), "link-to-dir");
    let (files, errors, _) = walk_all(Config::default(), StreamingConfig::default(), &[t.root()]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(paths(&files), reference_files(t.root()));
    assert_eq!(files.len(), 5, "FIFO and symlinks are not listed");
    // Hidden entries can be skipped.
    let cfg = Config {
        include_hidden: false,
        ..Config::default()
    };
    let (files, _, _) = walk_all(cfg, StreamingConfig::default(), &[t.root()]);
    assert_eq!(files.len(), 4);
}

#[test]
fn hard_links_carry_one_file_id() {
    let t = Tree::new();
    t.file("a", "same inode");
    t.hardlink("a", "b");
    let (files, _, _) = walk_all(Config::default(), StreamingConfig::default(), &[t.root()]);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].id, files[1].id);
    assert!(files.iter().all(|f| f.nlink == 2));
}

#[test]
fn symlink_loops_end_and_list_each_file_once() {
    let t = Tree::new();
    t.file("d/x/file", "1");
    t.symlink(t.path("d"), "d/x/up"); // a loop back to an ancestor
    t.symlink("self", "self"); // a link to itself
    t.symlink(t.path("d/x"), "alias"); // a second way into d/x
    t.symlink(t.path("d/x/file"), "d/filelink");
    let (files, _, _) = walk_all(Config::default(), StreamingConfig::default(), &[t.root()]);
    assert_eq!(files.len(), 1, "symlinks not followed by default");
    let follow = Config {
        follow_links: true,
        ..Config::default()
    };
    for sc in configs() {
        let (files, errors, stats) = walk_all(follow.clone(), sc, &[t.root()]);
        let regular: Vec<_> = files.iter().filter(|f| f.kind == EntryKind::File).collect();
        assert_eq!(regular.len(), 1, "{:?}", paths(&files));
        assert_eq!(
            files
                .iter()
                .filter(|f| f.kind == EntryKind::SymlinkToFile)
                .count(),
            1
        );
        assert_eq!(
            stats.errors_of(ErrorKind::Loop),
            1,
            "the self link: {errors:?}"
        );
    }
}

#[test]
fn filters_apply_before_the_consumer() {
    let t = Tree::new();
    t.file("a/movie.MKV", vec![0; 100]);
    t.file("a/notes.txt", vec![0; 100]);
    t.file("a/small.jpg", vec![0; 10]);
    t.file("a/b/deep.jpg", vec![0; 100]);
    t.file("cache/c.jpg", vec![0; 100]);
    t.file("a/sub.srt", vec![0; 5000]);
    let names = |cfg: Config| -> BTreeSet<String> {
        let (files, _, _) = walk_all(cfg, StreamingConfig::default(), &[t.root()]);
        files
            .iter()
            .map(|f| f.name().to_string_lossy().into_owned())
            .collect()
    };
    let media = Config {
        filters: Filters {
            media: true,
            ..Filters::default()
        },
        ..Config::default()
    };
    assert_eq!(names(media.clone()).len(), 5, "all but notes.txt");
    let sized = Config {
        min_file_size: 50,
        max_file_size: Some(1000),
        ..media.clone()
    };
    assert_eq!(
        names(sized),
        ["movie.MKV", "deep.jpg", "c.jpg"].map(String::from).into()
    );
    let shallow = Config {
        max_depth: Some(2),
        filters: Filters {
            exclude_globs: vec!["cache".into()],
            exclude_extensions: vec!["srt".into()],
            ..Filters::default()
        },
        ..Config::default()
    };
    assert_eq!(
        names(shallow),
        ["movie.MKV", "notes.txt", "small.jpg"]
            .map(String::from)
            .into()
    );
    let globbed = Config {
        filters: Filters {
            include_globs: vec!["**/b/*.jpg".into(), "*.txt".into()],
            ..Filters::default()
        },
        ..Config::default()
    };
    assert_eq!(
        names(globbed),
        ["deep.jpg", "notes.txt"].map(String::from).into()
    );
}

#[test]
fn roots_may_be_files_and_bad_setup_is_a_typed_error() {
    let t = Tree::new();
    let f = t.file("one.jpg", "1");
    let fifo = t.fifo("pipe");
    let (files, errors, _) = walk_all(Config::default(), StreamingConfig::default(), &[&f, &fifo]);
    assert_eq!(paths(&files), [f.as_os_str().as_bytes().to_vec()].into());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::NotRegular);

    let walker = StreamingWalker::new(Arc::new(Config::default()), Arc::new(NoProgress), None);
    let missing = t.path("missing");
    assert!(matches!(
        walker.walk(&[&missing]),
        Err(WalkError::Root { .. })
    ));
    let none: [&std::path::Path; 0] = [];
    assert!(matches!(
        walker.walk(&none),
        Err(WalkError::Config(ConfigError::NoPaths))
    ));
    let bad = StreamingWalker::new(
        Arc::new(Config::default()),
        Arc::new(NoProgress),
        Some(StreamingConfig {
            batch_size: 0,
            ..StreamingConfig::default()
        }),
    );
    assert!(matches!(
        bad.walk(&[t.root()]),
        Err(WalkError::Config(ConfigError::BatchSize))
    ));
}

#[test]
fn dropping_a_walk_early_stops_it() {
    let t = Tree::new();
    generate(
        t.root(),
        &GenSpec {
            files: 5_000,
            dirs: 200,
            max_size: 1,
            ..GenSpec::default()
        },
    )
    .unwrap();
    let tiny = StreamingConfig {
        scanner_workers: 4,
        max_scanner_workers: 4,
        discovery_buffer_size: 10,
        batch_size: 10,
        batch_timeout: Duration::from_millis(5),
    };
    let walker = StreamingWalker::new(
        Arc::new(Config::default()),
        Arc::new(NoProgress),
        Some(tiny),
    );
    let mut walk = walker.walk(&[t.root()]).unwrap();
    let first = walk.next();
    assert!(matches!(first, Some(WalkEvent::Batch(_))));
    // Give the scanners all the time they could want: with a consumer that
    // does not read, they stop once the channel (one batch) and their own
    // batches are full.
    std::thread::sleep(Duration::from_millis(300));
    let stats = walk.stats();
    // Received, in the channel, and one full batch held or being sent by
    // each scanner (a batch flushes when full).
    let bound = 10 + 10 + 4 * 2 * 10;
    assert!(
        stats.files <= bound,
        "backpressure held the scanners back: {} files walked, at most {bound} allowed",
        stats.files
    );
    // Dropping must return: scanners blocked on the full channel are
    // released and joined.
    crate::util::within(Duration::from_secs(20), move || drop(walk))
        .expect("dropping the walk did not return");
}

/// Deletes one directory of the tree each time another finishes listing,
/// so directories disappear while they wait in the queue.
struct Remover {
    root: std::path::PathBuf,
    next: std::sync::atomic::AtomicUsize,
}
impl dedupe::ProgressTracker for Remover {
    fn dir_scanned(&self, _: u64, _: u64) {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(self.root.join(format!("d{}", 39 - n.min(39))));
    }
}

#[test]
fn files_vanishing_during_the_walk_are_not_fatal() {
    let t = Tree::new();
    for d in 0..40 {
        for f in 0..50 {
            t.file(format!("d{d}/f{f}"), "x");
        }
    }
    let walker = StreamingWalker::new(
        Arc::new(Config::default()),
        Arc::new(Remover {
            root: t.root().to_path_buf(),
            next: std::sync::atomic::AtomicUsize::default(),
        }),
        Some(StreamingConfig {
            scanner_workers: 1,
            ..StreamingConfig::default()
        }),
    );
    let mut walk = walker.walk(&[t.root()]).unwrap();
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for ev in walk.by_ref() {
        match ev {
            WalkEvent::Batch(b) => files.extend(b),
            WalkEvent::Error(e) => errors.push(e),
            _ => {}
        }
    }
    let stats = walk.stats();
    assert!(files.len() < 2_000, "directories were removed mid-walk");
    assert!(!files.is_empty());
    for e in &errors {
        assert_eq!(e.kind, ErrorKind::Vanished, "{e}");
    }
    assert_eq!(stats.total_errors(), errors.len() as u64);
    assert_eq!(stats.files, files.len() as u64);
}

/// Every directory event of a walk, with the files of its directory seen
/// before it, keyed by path.
fn dir_events(config: Config, root: &std::path::Path) -> Vec<(dedupe::DirDone, u64)> {
    let sc = StreamingConfig {
        batch_size: 2,
        ..StreamingConfig::simple_config()
    };
    let walker = StreamingWalker::new(Arc::new(config), Arc::new(NoProgress), Some(sc))
        .report_directories(true);
    let mut seen = std::collections::HashMap::<std::path::PathBuf, u64>::default();
    let mut out = Vec::new();
    for ev in walker.walk(&[root]).unwrap() {
        match ev {
            WalkEvent::Batch(b) => {
                for e in b {
                    *seen.entry(e.dir().path().to_path_buf()).or_default() += 1;
                }
            }
            WalkEvent::Dirs(dirs) => {
                for d in dirs {
                    let before = seen.get(&d.dir.path().to_path_buf()).copied().unwrap_or(0);
                    out.push((d, before));
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.dir.path().cmp(b.0.dir.path()));
    out
}

#[test]
fn each_directory_is_reported_once_after_its_files_with_its_counts() {
    let t = Tree::new();
    t.file("a.txt", "x");
    t.file("b.jpg", "x");
    t.symlink("b.jpg", "link");
    t.file("sub/x.jpg", "y");
    t.fifo("sub/fifo");
    t.dir("sub/deep");
    t.dir("sub/.hidden");
    let config = Config {
        filters: Filters {
            extensions: vec!["jpg".into()],
            ..Filters::default()
        },
        include_hidden: false,
        ..Config::default()
    };
    let events = dir_events(config, t.root());
    let got: Vec<_> = events
        .iter()
        .map(|(d, before)| {
            let rel = d.dir.path().strip_prefix(t.root()).unwrap().to_path_buf();
            (
                rel.to_string_lossy().into_owned(),
                [d.files, d.subdirs, d.excluded, d.unreadable, d.special],
                d.complete,
                *before,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // files, subdirs, excluded, unreadable, special; each after its files
            (String::new(), [1, 1, 1, 0, 1], true, 1),
            ("sub".to_string(), [1, 1, 1, 0, 1], true, 1),
            ("sub/deep".to_string(), [0, 0, 0, 0, 0], true, 0),
        ]
    );
}

#[test]
fn a_directory_reached_twice_is_reported_unlisted_the_second_time() {
    let t = Tree::new();
    t.file("sub/f", "x");
    t.symlink("..", "sub/up");
    let config = Config {
        follow_links: true,
        ..Config::default()
    };
    let events = dir_events(config, t.root());
    let complete: Vec<(String, bool)> = events
        .iter()
        .map(|(d, _)| {
            let rel = d.dir.path().strip_prefix(t.root()).unwrap();
            (rel.to_string_lossy().into_owned(), d.complete)
        })
        .collect();
    assert_eq!(
        complete,
        [
            (String::new(), true),
            ("sub".to_string(), true),
            ("sub/up".to_string(), false),
        ]
    );
}
