//! Settled files kept in the temporary file: read back for groups and
//! comparisons, and a record that cannot be read back loses its file,
//! never makes a group.

use super::tests::{add, drain, names, no_verify, rules, State};
use super::*;
use crate::entry::{DirPath, FileId};
use crate::pipeline::groups::Member;
use crate::pipeline::msg::Outcome;
use crate::pipeline::paths::PathRef;

/// Files settled before their twins come: more than one write buffer, so
/// some are read back from the file and some from the buffer.
const FIRST: u32 = 2000;

/// The content of `f{i}` and of its twin `t{i}`.
fn content(i: u32) -> Digest {
    let mut h = HashAlgo::Blake3.hasher();
    h.update(&i.to_le_bytes());
    h.finish()
}

/// A file whose identity and times all differ from its neighbours', so
/// a field read back wrong shows in the groups.
fn entry(dir: &Arc<DirPath>, name: &str, i: u32) -> FileEntry {
    let mut st = rustix::fs::stat("/").expect("stat /");
    st.st_size = 10;
    st.st_ino = 1_000_000 + u64::from(i);
    st.st_dev = 7 + u64::from(i % 3);
    st.st_nlink = 1;
    st.st_mtime = 1_000_000 + i64::from(i);
    st.st_mtime_nsec = i.into();
    st.st_ctime = 2_000_000 + i64::from(i);
    st.st_ctime_nsec = (3 * i).into();
    FileEntry::from_stat(
        Arc::clone(dir),
        name.as_bytes(),
        &st,
        crate::entry::EntryKind::File,
    )
}

/// The number in a file name (`f12`, `t12`).
fn number(path: &std::path::Path) -> u32 {
    let name = path.file_name().unwrap().to_string_lossy();
    name[1..].parse().unwrap()
}

/// Twins of these files come after all of them settled: the first ones
/// were written to the file, the last ones are still in the buffer.
fn twinned() -> impl Iterator<Item = u32> {
    (0..250).chain(FIRST - 250..FIRST)
}

/// Settles `FIRST` files, lets `between` act on the trie, then adds the
/// twins and returns the groups, sorted.
fn settle_then_twin(mut s: State, between: impl FnOnce(&State)) -> (Groups, State) {
    let dir = DirPath::new("/d", 0);
    let hash = |t: &Task| content(number(&t.file.path));
    for i in 0..FIRST {
        add(&mut s, &entry(&dir, &format!("f{i}"), i));
    }
    drain(&mut s, hash, no_verify);
    between(&s);
    for i in twinned() {
        add(&mut s, &entry(&dir, &format!("t{i}"), FIRST + i));
    }
    // With --verify, the twin is compared with the settled file read back:
    // equal when the names carry one number.
    let same = |t: &Task| {
        let TaskKind::Verify(other) = &t.kind else {
            unreachable!()
        };
        if number(&other.path) == number(&t.file.path) {
            Outcome::Same
        } else {
            Outcome::Differ
        }
    };
    drain(&mut s, hash, same);
    let mut groups: Groups = s.take_due(true).into_iter().map(|g| g.files).collect();
    groups.sort_by(|a, b| a[0].path.cmp(&b[0].path));
    (groups, s)
}

/// Each group's files, groups in order of their first path.
type Groups = Vec<Vec<crate::group::GroupFile>>;

fn named(groups: &Groups) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = groups.iter().map(|g| names(g)).collect();
    v.sort();
    v
}

fn pairs(of: impl Iterator<Item = u32>) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = of.map(|i| vec![format!("f{i}"), format!("t{i}")]).collect();
    v.sort();
    v
}

#[test]
fn settled_files_in_the_file_come_back_whole_for_their_twins() {
    for verify in [false, true] {
        let r = Rules { verify, ..rules() };
        let (groups, s) = settle_then_twin(State::new(r), |s| {
            assert_eq!(
                s.trie.singles.spilled(),
                FIRST as usize,
                "every settled file went to the file"
            );
        });
        assert_eq!(named(&groups), pairs(twinned()), "verify: {verify}");
        assert_eq!(s.trie.lost(), 0);
        // The same run with everything in memory gives the same groups,
        // with the same identities and times.
        let (in_memory, s) = settle_then_twin(State::with(Trie::new(r)), |_| {});
        assert_eq!(in_memory, groups);
        assert_eq!(s.trie.singles.spilled(), 0);
    }
}

#[test]
fn a_record_that_cannot_be_read_back_loses_its_file_and_makes_no_group() {
    for verify in [false, true] {
        let r = Rules { verify, ..rules() };
        let (groups, s) = settle_then_twin(State::new(r), |s| s.trie.singles.break_file());
        // Only the twins of files still in the write buffer found them.
        assert_eq!(
            named(&groups),
            pairs(FIRST - 250..FIRST),
            "verify: {verify}"
        );
        assert_eq!(s.trie.lost(), 250, "each lost file counted once");
    }
}

#[test]
fn without_a_usable_directory_settled_files_stay_in_memory() {
    let trie = Trie::new(rules()).spill_to("/nonexistent/dedupe-spill".into(), 0);
    let (groups, s) = settle_then_twin(State::with(trie), |s| {
        assert_eq!(s.trie.singles.spilled(), 0);
    });
    assert_eq!(named(&groups), pairs(twinned()));
    assert_eq!(s.trie.lost(), 0);
}

/// The content of a file named `{f,t}{i}` or `{n,u}{i}` under `algo`.
fn content_of(algo: HashAlgo, path: &std::path::Path) -> Digest {
    let name = path.file_name().unwrap().to_string_lossy();
    let i = number(path)
        + if matches!(&name[..1], "n" | "u") {
            10_000
        } else {
            0
        };
    let mut h = algo.hasher();
    h.update(&i.to_le_bytes());
    h.finish()
}

/// Settles 2,000 files, groups the first 250 with twins (freeing records
/// already written to the file), settles 250 new files (which take those
/// records over), lets `between` act, then adds the new files' twins.
fn reuse_then_twin(algo: HashAlgo, between: impl FnOnce(&State, &[u8])) -> (Vec<Vec<String>>, u64) {
    let mut s = State::new(Rules { algo, ..rules() });
    let dir = DirPath::new("/d", 0);
    let hash = |t: &Task| content_of(algo, &t.file.path);
    let phase = |s: &mut State, prefix: &str, range: std::ops::Range<u32>, base: u32| {
        for i in range {
            add(s, &entry(&dir, &format!("{prefix}{i}"), base + i));
        }
        drain(s, hash, no_verify);
    };
    phase(&mut s, "f", 0..FIRST, 0);
    phase(&mut s, "t", 0..250, FIRST);
    let before = s.trie.singles.file_bytes();
    phase(&mut s, "n", 0..250, 2 * FIRST);
    assert_eq!(
        s.trie.singles.spilled(),
        FIRST as usize,
        "the freed records were taken over"
    );
    between(&s, &before);
    phase(&mut s, "u", 0..250, 3 * FIRST);
    let groups = s
        .take_due(true)
        .iter()
        .map(|g| names(&g.files))
        .collect::<Vec<_>>();
    let mut groups = groups;
    groups.sort();
    (groups, s.trie.lost())
}

#[test]
fn records_taken_over_in_the_file_come_back_as_their_new_files() {
    let (groups, lost) = reuse_then_twin(HashAlgo::Blake3, |_, _| {});
    let mut expected = pairs(0..250);
    expected.extend((0..250).map(|i| vec![format!("n{i}"), format!("u{i}")]));
    expected.sort();
    assert_eq!(groups, expected);
    assert_eq!(lost, 0);
}

#[test]
fn an_earlier_occupant_read_back_is_lost_not_grouped() {
    // xxh3 digests are 128 bits, all of them in the key: the tail a
    // settled file keeps is zero, so only the record's check tells the
    // new file from the one that held its index before.
    let (groups, lost) = reuse_then_twin(HashAlgo::Xxh3, |s, before| {
        s.trie.singles.restore_file(before);
    });
    assert_eq!(groups, pairs(0..250), "no twin grouped with a stale record");
    assert_eq!(lost, 250);
}

#[test]
fn when_the_file_cannot_be_written_settled_files_stay_in_memory() {
    let mut s = State::new(rules());
    let dir = DirPath::new("/d", 0);
    let hash = |t: &Task| content(number(&t.file.path));
    // Enough that the write buffer fills a second time.
    let n = 3000;
    for i in 0..n {
        add(&mut s, &entry(&dir, &format!("f{i}"), i));
        if i == 1500 {
            // 1,024 records written, the rest in the write buffer.
            drain(&mut s, hash, no_verify);
            s.trie.singles.fail_writes();
        }
    }
    drain(&mut s, hash, no_verify);
    // The buffer could not be written at 2,048: what it held, and every
    // file settled after, stayed in memory.
    assert_eq!(s.trie.singles.spilled(), 2048);
    for i in 0..n {
        add(&mut s, &entry(&dir, &format!("t{i}"), n + i));
    }
    drain(&mut s, hash, no_verify);
    let mut groups: Vec<Vec<String>> = s.take_due(true).iter().map(|g| names(&g.files)).collect();
    groups.sort();
    assert_eq!(groups, pairs(0..n));
    assert_eq!(s.trie.lost(), 0);
}

/// A settled file whose every field, flag and digest byte depends on `n`.
fn record(n: u32) -> Single {
    let n64 = u64::from(n);
    Single {
        member: Member {
            path: PathRef {
                dir: DirPath::new(format!("/d{}", n % 7), 0),
                name: crate::pipeline::paths::NameRef::from_bits((n64 << 12) | 5),
            },
            id: FileId {
                dev: 7 + n64,
                ino: 1_000 + n64,
            },
            mtime_ns: -3 * i64::from(n),
            ctime_ns: 5 * i64::from(n),
            aliased: n % 2 == 1,
            mount_root: n % 3 == 0,
        },
        tail: [(n % 251) as u8; 16],
    }
}

fn same(a: &Single, b: &Single) -> bool {
    let m = |s: &Single| {
        let m = &s.member;
        (
            m.path.dir.path().to_path_buf(),
            m.path.name.bits(),
            m.id,
            m.mtime_ns,
            m.ctime_ns,
            m.aliased,
            m.mount_root,
            s.tail,
        )
    };
    m(a) == m(b)
}

#[test]
fn records_round_trip_through_the_buffer_and_the_file() {
    let mut s = Singles::new();
    s.spill_to(std::env::temp_dir(), 0);
    let ids: Vec<u32> = (0..3000).map(|n| s.insert(record(n))).collect();
    // Two full buffers written, the rest still buffered.
    assert_eq!(s.file_bytes().len(), 2048 * 64);
    for (n, &i) in ids.iter().enumerate() {
        assert!(same(&s.get(i).unwrap(), &record(n as u32)), "record {n}");
    }
    // Replaced in place, in the file and in the buffer.
    s.replace(ids[5], record(9005));
    s.replace(ids[2500], record(9500));
    assert!(same(&s.get(ids[5]).unwrap(), &record(9005)));
    assert!(same(&s.get(ids[2500]).unwrap(), &record(9500)));
    // Freed and taken over, in the buffer and in the file.
    s.discard(ids[2600]);
    s.discard(ids[10]);
    let a = s.insert(record(7000));
    let b = s.insert(record(7001));
    assert_eq!([a, b], [ids[10], ids[2600]], "freed records are reused");
    assert!(same(&s.get(a).unwrap(), &record(7000)));
    assert!(same(&s.get(b).unwrap(), &record(7001)));
    for (n, &i) in ids.iter().enumerate() {
        if ![5, 10, 2500, 2600].contains(&n) {
            assert!(same(&s.get(i).unwrap(), &record(n as u32)), "record {n}");
        }
    }
}

#[test]
fn the_first_records_stay_in_memory_as_long_as_few_are_live() {
    let mut s = Singles::new();
    s.spill_to(std::env::temp_dir(), 3);
    let ids: Vec<u32> = (0..3).map(|n| s.insert(record(n))).collect();
    s.discard(ids[1]);
    let again = s.insert(record(3));
    assert_eq!(s.spilled(), 0, "three live: still in memory");
    s.replace(again, record(4));
    assert!(same(&s.get(again).unwrap(), &record(4)));
    let spilled = s.insert(record(5));
    assert_eq!(s.spilled(), 1, "the fourth live one goes to the file");
    assert!(same(&s.get(spilled).unwrap(), &record(5)));
    assert!(same(&s.get(ids[0]).unwrap(), &record(0)));
}
