//! The key-source seam: keys a source knows are taken instead of reads,
//! keys the readers compute are handed to it, and an answer of the wrong
//! kind is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dedupe::{Config, Finder, KeyRequest, KeySource, ReadFacts, StageKey, Summary};

type Known = Arc<Mutex<BTreeMap<(PathBuf, &'static str), StageKey>>>;

/// Remembers what the readers computed; answers from it if `answer`.
struct Memory {
    known: Known,
    answer: bool,
    asked: Arc<Mutex<usize>>,
    finished: Arc<Mutex<usize>>,
}

impl KeySource for Memory {
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]) {
        *self.asked.lock().unwrap() += requests.len();
        if !self.answer {
            return;
        }
        let known = self.known.lock().unwrap();
        for (r, a) in requests.iter().zip(answers.iter_mut()) {
            *a = known.get(&(r.path.to_path_buf(), r.spec.id)).copied();
        }
    }

    fn computed(&mut self, r: &KeyRequest<'_>, key: &StageKey) {
        let mut known = self.known.lock().unwrap();
        let old = known.insert((r.path.to_path_buf(), r.spec.id), *key);
        assert!(old.is_none(), "each key is computed once per run");
    }

    fn finish(&mut self) {
        *self.finished.lock().unwrap() += 1;
    }
}

/// Answers every question with a key of the wrong kind.
struct WrongKind;

impl KeySource for WrongKind {
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]) {
        for (r, a) in requests.iter().zip(answers.iter_mut()) {
            *a = Some(match r.spec.stage {
                dedupe::Stage::Full => StageKey::Partial([1, 2]),
                _ => StageKey::Full(dedupe::HashAlgo::Xxh3.hasher().finish()),
            });
        }
    }
}

fn tree(root: &Path) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(root.join("a"), &big).unwrap();
    std::fs::write(root.join("b"), &big).unwrap();
    let mut other = big.clone();
    *other.last_mut().unwrap() ^= 1;
    std::fs::write(root.join("c"), &other).unwrap();
    std::fs::write(root.join("s1"), b"small twin").unwrap();
    std::fs::write(root.join("s2"), b"small twin").unwrap();
}

fn run(root: &Path, source: Box<dyn KeySource>) -> (Vec<Vec<PathBuf>>, Summary) {
    let finder = Finder::builder(Arc::new(Config::default()))
        .key_source(source)
        .build();
    let report = finder.run(&[root], |_| {}).unwrap();
    let summary = report.summary.clone();
    let groups = report.groups().map(|g| g.paths()).collect();
    (groups, summary)
}

fn stage<'a>(s: &'a Summary, name: &str) -> &'a dedupe::StageStats {
    s.stages.iter().find(|st| st.name == name).unwrap()
}

#[test]
fn known_keys_replace_reads_and_computed_keys_are_handed_over() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let known = Known::default();
    let asked = Arc::new(Mutex::new(0));
    let finished = Arc::new(Mutex::new(0));
    let memory = |answer| {
        Box::new(Memory {
            known: Arc::clone(&known),
            answer,
            asked: Arc::clone(&asked),
            finished: Arc::clone(&finished),
        })
    };
    let (first, s1) = run(t.path(), memory(false));
    assert_eq!(first.len(), 2, "{first:?}");
    // Quick keys of a, b and c (c differs in its tail, so leaves there),
    // full digests of a, b, s1 and s2.
    assert_eq!(known.lock().unwrap().len(), 7);
    let ids: Vec<&str> = known.lock().unwrap().keys().map(|k| k.1).collect();
    assert!(ids.contains(&"quick.edges-4096.xxh3-128.v1"), "{ids:?}");
    assert!(ids.contains(&"full.blake3-256.v1"), "{ids:?}");
    let read_first = stage(&s1, "quick").bytes_read + stage(&s1, "full").bytes_read;
    assert!(read_first > 600_000, "{s1:?}");
    assert_eq!(stage(&s1, "full").keys_known, 0);

    let computed = known.lock().unwrap().len();
    let (second, s2) = run(t.path(), memory(true));
    assert_eq!(second, first, "same groups from known keys");
    for name in ["quick", "statistical", "full"] {
        let st = stage(&s2, name);
        assert_eq!(st.bytes_read, 0, "{name}: nothing read");
        assert_eq!(st.keys_known, st.files, "{name}");
    }
    assert_eq!(
        known.lock().unwrap().len(),
        computed,
        "nothing computed, so nothing new handed over"
    );
    assert!(*asked.lock().unwrap() >= 2 * computed);
    assert_eq!(
        *finished.lock().unwrap(),
        2,
        "told once at the end of each run"
    );
}

#[test]
fn an_answer_of_the_wrong_kind_is_read_instead() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let (groups, s) = run(t.path(), Box::new(WrongKind));
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(stage(&s, "full").keys_known, 0);
    assert!(stage(&s, "full").bytes_read > 0);
}

/// Answers like [`Memory`], but takes no file of 4 KiB or less.
struct Above(Memory);

impl KeySource for Above {
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]) {
        assert!(
            requests.iter().all(|r| r.stamp.size > 4096),
            "asked of a small file"
        );
        self.0.lookup(requests, answers);
    }

    fn answers_above(&self) -> u64 {
        4096
    }

    fn computed(&mut self, r: &KeyRequest<'_>, key: &StageKey) {
        assert!(r.stamp.size > 4096, "told of a small file");
        self.0.computed(r, key);
    }
}

#[test]
fn files_the_source_does_not_take_are_neither_asked_about_nor_told() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let known = Known::default();
    let source = || {
        Box::new(Above(Memory {
            known: Arc::clone(&known),
            answer: true,
            asked: Arc::default(),
            finished: Arc::default(),
        }))
    };
    let (first, _) = run(t.path(), source());
    assert_eq!(first.len(), 2, "{first:?}");
    // a, b, c: quick keys; a and b: full digests. Not s1 or s2.
    assert_eq!(known.lock().unwrap().len(), 5);
    let (second, s) = run(t.path(), source());
    assert_eq!(second, first);
    // The small twins are read again; the large files are not.
    assert_eq!(stage(&s, "quick").bytes_read, 0);
    assert_eq!(stage(&s, "full").bytes_read, 20, "{s:?}");
}

/// Cancels the run from inside its first lookup, then answers slowly.
struct CancelInLookup(Arc<Mutex<Option<dedupe::Cancel>>>);

impl KeySource for CancelInLookup {
    fn lookup(&mut self, _: &[KeyRequest<'_>], _: &mut [Option<StageKey>]) {
        if let Some(c) = self.0.lock().unwrap().take() {
            c.cancel();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// A run cancelled while a lookup is out waits for its answer and ends
/// (no hang, nothing read for the abandoned files).
#[test]
fn a_run_cancelled_during_a_lookup_ends() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let slot = Arc::new(Mutex::new(None));
    let finder = Finder::builder(Arc::new(Config::default()))
        .key_source(Box::new(CancelInLookup(Arc::clone(&slot))))
        .build();
    *slot.lock().unwrap() = Some(finder.canceller());
    let (tx, rx) = std::sync::mpsc::channel();
    let root = t.path().to_path_buf();
    std::thread::spawn(move || {
        let report = finder.run(&[root], |_| {}).unwrap();
        tx.send(report.summary.clone()).unwrap();
    });
    let s = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run ended");
    assert!(s.interrupted, "{s:?}");
    assert_eq!(stage(&s, "quick").bytes_read, 0, "{s:?}");
}

/// Sizes of the files a source was told of, and whether each was read
/// from the device.
type Told = Arc<Mutex<Vec<(u64, Option<bool>)>>>;

/// Like [`Memory`], with files of 4 KiB or less small: counts the
/// questions about them, and notes how the read of each key it is told
/// of went.
struct Small {
    memory: Memory,
    questions: Arc<Mutex<usize>>,
    told: Told,
}

impl KeySource for Small {
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]) {
        *self.questions.lock().unwrap() += requests.iter().filter(|r| r.stamp.size <= 4096).count();
        self.memory.lookup(requests, answers);
    }

    fn small_up_to(&self) -> u64 {
        4096
    }

    fn computed_read(&mut self, r: &KeyRequest<'_>, key: &StageKey, read: &ReadFacts) {
        self.told
            .lock()
            .unwrap()
            .push((r.stamp.size, read.from_disk));
        // Told again on a run that does not answer: kept, as a cache would.
        let mut known = self.memory.known.lock().unwrap();
        known.insert((r.path.to_path_buf(), r.spec.id), *key);
    }
}

/// Drops a file's pages from the page cache, so its next read goes to the
/// device. The drop can fail while the kernel still holds a page (a
/// journal commit under way, another test's I/O): callers try again.
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

#[test]
fn small_files_are_told_of_when_read_from_the_device_and_then_answered() {
    // In the target directory, not $TMPDIR: a tmpfs has no device.
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    tree(t.path());
    let known = Known::default();
    let told = Arc::new(Mutex::new(Vec::new()));
    let small_asked = Arc::new(Mutex::new(0));
    let source = |answer| {
        Box::new(Small {
            memory: Memory {
                known: Arc::clone(&known),
                answer,
                asked: Arc::default(),
                finished: Arc::default(),
            },
            questions: Arc::clone(&small_asked),
            told: Arc::clone(&told),
        })
    };
    // Just written, so in the page cache: the small twins are not worth
    // keeping, and the source hears only of the large files.
    let (first, _) = run(t.path(), source(false));
    assert_eq!(first.len(), 2, "{first:?}");
    let sizes = |told: &[(u64, Option<bool>)]| -> Vec<u64> {
        let mut v: Vec<u64> = told.iter().map(|t| t.0).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(sizes(&told.lock().unwrap()), [300_000; 5]);
    assert!(told.lock().unwrap().iter().all(|t| t.1.is_none()));
    // Read from the device: told, and known to be. Each twin is, in some
    // run (see `evict`); never one read from the page cache.
    let mut from_disk = 0;
    for _ in 0..20 {
        told.lock().unwrap().clear();
        for f in ["s1", "s2"] {
            evict(&t.path().join(f));
        }
        let (second, _) = run(t.path(), source(false));
        assert_eq!(second, first);
        let told = told.lock().unwrap();
        let small: Vec<_> = told.iter().filter(|t| t.0 == 10).collect();
        assert!(small.iter().all(|t| t.1 == Some(true)), "{small:?}");
        from_disk = small.len();
        if from_disk == 2 {
            break;
        }
    }
    assert_eq!(from_disk, 2);
    // Asked about, and answered: nothing read at all.
    *small_asked.lock().unwrap() = 0;
    let (third, s) = run(t.path(), source(true));
    assert_eq!(third, first);
    assert_eq!(stage(&s, "full").bytes_read, 0, "{s:?}");
    assert_eq!(*small_asked.lock().unwrap(), 2);
}

/// `files` small files in twins: 1 to `sizes` bytes, each size with
/// `files / sizes` files, two by two alike.
fn small_twins(root: &Path, files: u32, sizes: u32) {
    for i in 0..files {
        let size = (i % sizes + 1) as usize;
        let byte = (i / (2 * sizes)) as u8;
        std::fs::write(root.join(format!("f{i}")), vec![byte; size]).unwrap();
    }
}

/// A [`Small`] over `known`, answering from it if `answer`.
fn small_source(known: &Known, answer: bool, questions: &Arc<Mutex<usize>>) -> Small {
    Small {
        memory: Memory {
            known: Arc::clone(known),
            answer,
            asked: Arc::default(),
            finished: Arc::default(),
        },
        questions: Arc::clone(questions),
        told: Arc::default(),
    }
}

#[test]
fn byte_comparisons_of_small_files_take_no_place_in_the_trial() {
    // Under --verify, twins found by hash are compared byte for byte;
    // those reads are never asked about. Had they taken places in the
    // trial without answers coming back, every later small file would
    // wait for its verdict for good, and the run would never end.
    let t = tempfile::tempdir().unwrap();
    small_twins(t.path(), 3000, 30);
    let source = small_source(&Known::default(), false, &Arc::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let root = t.path().to_path_buf();
    std::thread::spawn(move || {
        let finder = Finder::builder(Arc::new(Config::default()))
            .options(dedupe::FindOptions {
                verify: true,
                ..dedupe::FindOptions::default()
            })
            .key_source(Box::new(source))
            .build();
        let n = finder.run(&[&root], |_| {}).unwrap().groups().count();
        let _ = tx.send(n);
    });
    let groups = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run ends");
    assert_eq!(groups, 1500);
}

#[test]
fn small_files_stop_being_asked_about_when_too_few_are_answered() {
    let t = tempfile::tempdir().unwrap();
    // 6,000 small candidates: 100 files of each size from 1 to 60 bytes.
    small_twins(t.path(), 6000, 60);
    let ask = |answer: bool, known: &Known| {
        let small_asked = Arc::new(Mutex::new(0));
        let source = small_source(known, answer, &small_asked);
        let (groups, _) = run(t.path(), Box::new(source));
        assert_eq!(groups.len(), 3000);
        let n = *small_asked.lock().unwrap();
        n
    };
    // Nothing answered: asking stops after the trial.
    let none = ask(false, &Known::default());
    assert_eq!(none, dedupe::SMALL_TRIAL as usize);
    // Everything answered: every file asked about.
    let all = Known::default();
    let (groups, _) = run(
        t.path(),
        Box::new(Memory {
            known: Arc::clone(&all),
            answer: false,
            asked: Arc::default(),
            finished: Arc::default(),
        }),
    );
    assert_eq!(groups.len(), 3000);
    assert_eq!(all.lock().unwrap().len(), 6000);
    assert_eq!(ask(true, &all), 6000);
}
