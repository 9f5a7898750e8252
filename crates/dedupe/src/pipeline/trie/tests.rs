//! The trie without I/O: results are fed by hand, as readers would.

use super::*;
use crate::entry::{DirPath, EntryKind};
use crate::hash::HashAlgo;
use crate::pipeline::msg::Outcome;
use crate::pipeline::schedule::Scheduler;
use crate::pipeline::stage::Stage;
use crate::pipeline::stats::Stats;

pub(super) fn rules() -> Rules {
    Rules {
        algo: HashAlgo::Blake3,
        verify: false,
        hard_links: false,
        follow_links: false,
        max_files: MAX_FILES,
    }
}

/// The trie with placements routed as the coordinator routes them, reads
/// answered by hand.
pub(super) struct State {
    pub(super) trie: Trie,
    sched: Scheduler,
    stats: Stats,
}

impl State {
    /// Every settled file is kept in the temporary file, so these tests
    /// go through its records (the first few thousand of a real run stay
    /// in memory, which every integration test covers).
    pub(super) fn new(rules: Rules) -> State {
        State::with(Trie::new(rules).spill_to(std::env::temp_dir(), 0))
    }

    pub(super) fn with(trie: Trie) -> State {
        State {
            trie,
            sched: Scheduler::new(1, true),
            stats: Stats::default(),
        }
    }

    fn route(&mut self, p: Placement) {
        self.stats.placed(&p);
        for (c, size) in p.reads() {
            self.sched.push(c, size, self.trie.cand_dev(c));
        }
    }

    /// Adds `e`; pushes the sizes of files that became candidates.
    fn add(&mut self, e: &FileEntry, became: &mut Vec<u64>) -> Result<(), TooManyFiles> {
        let p = self.trie.add(e)?;
        if let Some((Step::Size, n, size)) = p.passed() {
            became.extend(std::iter::repeat_n(size, n as usize));
        }
        self.route(p);
        Ok(())
    }

    fn ready_len(&self) -> usize {
        self.sched.ready_len()
    }

    fn has_ready(&self) -> bool {
        self.ready_len() > 0
    }

    /// The next job's tasks, taken off the queue at once.
    fn next_job(&mut self) -> Option<Vec<Task>> {
        let job = self.sched.next_job()?;
        self.sched.job_skipped(job.lane, job.large);
        Some(
            job.cands
                .iter()
                .map(|&c| {
                    self.sched.finished(self.trie.cand_size(c));
                    self.trie.task(c)
                })
                .collect(),
        )
    }

    fn stage_done(&mut self, c: u32, key: Key, digest: Option<Digest>) {
        let p = self.trie.stage_done(c, key, digest);
        self.route(p);
    }

    fn verified(&mut self, c: u32) {
        let p = self.trie.verified(c);
        self.route(p);
    }

    fn differs(&mut self, c: u32) {
        let p = self.trie.differs(c);
        self.route(p);
    }

    fn other_changed(&mut self, c: u32) {
        let p = self.trie.other_changed(c);
        self.route(p);
    }

    pub(super) fn take_due(&mut self, force: bool) -> Vec<DuplicateGroupParts> {
        self.trie.take_due(force)
    }

    fn into_store(self) -> GroupStore {
        self.trie.into_store()
    }

    fn collapsed_links(&self) -> u64 {
        self.stats.collapsed
    }

    fn passed(&self) -> [u64; 5] {
        self.stats.passed()
    }
}

pub(super) fn entry(dir: &Arc<DirPath>, name: &str, size: u64, ino: u64) -> FileEntry {
    let mut st: rustix::fs::Stat = base_stat();
    st.st_size = i64::try_from(size).unwrap();
    st.st_ino = ino;
    st.st_nlink = 1;
    FileEntry::from_stat(Arc::clone(dir), name.as_bytes(), &st, EntryKind::File)
}

/// A real `stat` to start from (there is no safe zeroed one); the tests
/// overwrite the fields that matter.
fn base_stat() -> rustix::fs::Stat {
    rustix::fs::stat("/").expect("stat /")
}

/// An entry with the given size, inode and bind-mount flag.
fn entry_with(dir: &Arc<DirPath>, name: &str, size: u64, ino: u64, mount_root: bool) -> FileEntry {
    let mut m = crate::entry::Meta::of_stat(&base_stat());
    m.size = size;
    m.id.ino = ino;
    m.nlink = 1;
    m.mount_root = mount_root;
    FileEntry::from_meta(Arc::clone(dir), name.as_bytes(), &m, EntryKind::File)
}

/// The verification's other file, and an outcome saying it changed.
fn other(t: &Task) -> &Target {
    let TaskKind::Verify(other) = &t.kind else {
        unreachable!("not a verification")
    };
    other
}

fn other_changed(t: &Task) -> Outcome {
    Outcome::OtherChanged(crate::entry::EntryError::new(
        other(t).path.clone(),
        crate::entry::ErrorKind::Changed,
        "changed",
    ))
}

fn digest(byte: u8) -> Digest {
    let mut h = HashAlgo::Blake3.hasher();
    h.update(&[byte]);
    h.finish()
}

pub(super) fn add(s: &mut State, e: &FileEntry) {
    s.add(e, &mut Vec::new()).unwrap();
}

/// Runs every ready task: full hashes answered with `content(task)`,
/// verifications with `same(task)`.
pub(super) fn drain(
    s: &mut State,
    content: impl Fn(&Task) -> Digest,
    same: impl Fn(&Task) -> Outcome,
) {
    while let Some(job) = s.next_job() {
        for t in job {
            match &t.kind {
                TaskKind::Stage(spec) if spec.stage == Stage::Full => {
                    let d = content(&t);
                    s.stage_done(t.cand, d.key(), Some(d));
                }
                TaskKind::Verify(_) => match same(&t) {
                    Outcome::Same => s.verified(t.cand),
                    Outcome::Differ => s.differs(t.cand),
                    Outcome::OtherChanged(_) => s.other_changed(t.cand),
                    _ => unreachable!(),
                },
                k @ TaskKind::Stage(_) => {
                    panic!("unexpected task {:?}", matches!(k, TaskKind::Stage(_)))
                }
            }
        }
    }
}

/// A trie with `--verify` and three 10-byte files "a", "b", "c" in that order.
fn verifying_abc() -> State {
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(Rules {
        verify: true,
        ..rules()
    });
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        add(&mut s, &entry(&dir, n, 10, i as u64 + 1));
    }
    s
}

pub(super) fn no_verify(_: &Task) -> Outcome {
    panic!("no verification expected")
}

pub(super) fn names(files: &[crate::group::GroupFile]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn unique_sizes_are_never_read_and_groups_keep_their_id() {
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(rules());
    let mut became = Vec::new();
    s.add(&entry(&dir, "c", 10, 1), &mut became).unwrap();
    s.add(&entry(&dir, "b", 11, 2), &mut became).unwrap();
    assert!(!s.has_ready(), "unique sizes are not read");
    s.add(&entry(&dir, "a", 10, 3), &mut became).unwrap();
    assert_eq!(became, vec![10, 10]);
    assert_eq!(s.ready_len(), 2);
    drain(&mut s, |_| digest(7), no_verify);
    let first = s.take_due(false);
    assert_eq!(first.len(), 1);
    assert_eq!(
        names(&first[0].files),
        ["a", "c"],
        "report order, not arrival"
    );
    let id = first[0].id;
    // A third copy found later joins the same group, same id.
    add(&mut s, &entry(&dir, "e", 10, 5));
    add(&mut s, &entry(&dir, "f", 10, 6)); // same size, other content
    drain(
        &mut s,
        |t| digest(if t.file.path.ends_with("f") { 8 } else { 7 }),
        no_verify,
    );
    let again = s.take_due(false);
    assert_eq!(again.len(), 1, "grew from 2 to 3: half again");
    assert_eq!(again[0].id, id);
    assert_eq!(names(&again[0].files), ["a", "c", "e"]);
    let store = s.into_store();
    assert_eq!(
        (
            store.len(),
            store.redundant_files(),
            store.redundant_bytes()
        ),
        (1, 2, 20)
    );
}

#[test]
fn hard_links_collapse_to_their_first_path_unless_asked() {
    let dir = DirPath::new("/d", 0);
    let linked = |name: &str| {
        let mut e = entry(&dir, name, 10, 42);
        e.nlink = 2;
        e
    };
    let mut s = State::new(rules());
    add(&mut s, &linked("z"));
    add(&mut s, &linked("b"));
    add(&mut s, &entry(&dir, "copy", 10, 43));
    assert_eq!(s.collapsed_links(), 1);
    assert_eq!(s.ready_len(), 2, "the inode is read once");
    drain(&mut s, |_| digest(1), no_verify);
    let g = s.take_due(true);
    assert_eq!(names(&g[0].files), ["b", "copy"], "shown by its first path");
    let mut s = State::new(Rules {
        hard_links: true,
        ..rules()
    });
    add(&mut s, &linked("a"));
    add(&mut s, &linked("b"));
    assert_eq!(s.ready_len(), 2);
}

#[test]
fn a_followed_symlink_and_its_target_are_one_file() {
    let dir = DirPath::new("/d", 0);
    let target = entry(&dir, "t", 10, 7);
    let mut link = entry(&dir, "l", 10, 7);
    link.kind = EntryKind::SymlinkToFile;
    for follow_links in [true, false] {
        let mut s = State::new(Rules {
            follow_links,
            ..rules()
        });
        // The target (nlink 1) first: only `follow_links` records it.
        add(&mut s, &target);
        add(&mut s, &link);
        assert_eq!(s.collapsed_links(), u64::from(follow_links));
    }
}

#[test]
fn the_last_level_matches_the_whole_digest() {
    // Two 32-byte digests that share their first 128 bits.
    let a = Digest::from_slice(&[1; 32]);
    let mut bytes = [1; 32];
    bytes[31] = 2;
    let b = Digest::from_slice(&bytes);
    assert_eq!(a.key(), b.key());
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(rules());
    for (i, n) in ["a1", "b1", "a2", "b2", "b3"].iter().enumerate() {
        add(&mut s, &entry(&dir, n, 10, i as u64 + 1));
    }
    drain(
        &mut s,
        |t| {
            if t.file.path.to_string_lossy().contains('a') {
                a
            } else {
                b
            }
        },
        no_verify,
    );
    let mut groups: Vec<Vec<String>> = s.take_due(true).iter().map(|g| names(&g.files)).collect();
    groups.sort();
    assert_eq!(groups, [vec!["a1", "a2"], vec!["b1", "b2", "b3"]]);
}

#[test]
fn verify_splits_a_hash_collision_into_groups_of_equal_bytes() {
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(Rules {
        verify: true,
        ..rules()
    });
    // One digest for all; bytes equal only within x* and within y*.
    for (i, n) in ["x1", "y1", "y2", "x2", "y3"].iter().enumerate() {
        add(&mut s, &entry(&dir, n, 10, i as u64 + 1));
    }
    let path_of = |t: &Target| t.path.to_string_lossy().into_owned();
    drain(
        &mut s,
        |_| digest(3),
        |t| {
            let TaskKind::Verify(other) = &t.kind else {
                unreachable!()
            };
            let (me, them) = (path_of(&t.file), path_of(other));
            if me.contains('x') == them.contains('x') {
                Outcome::Same
            } else {
                Outcome::Differ
            }
        },
    );
    let out = s.take_due(true);
    let mut groups: Vec<Vec<String>> = out.iter().map(|g| names(&g.files)).collect();
    groups.sort();
    assert_eq!(groups, [vec!["x1", "x2"], vec!["y1", "y2", "y3"]]);
    assert_ne!(out[0].id, out[1].id, "one digest, two groups, two ids");
    // A colliding file found later meets the formed groups: it is compared
    // with them, not let in on its digest.
    add(&mut s, &entry(&dir, "y4", 10, 9));
    drain(
        &mut s,
        |_| digest(3),
        |t| {
            let TaskKind::Verify(other) = &t.kind else {
                unreachable!()
            };
            if other.path.to_string_lossy().contains('x') {
                Outcome::Differ
            } else {
                Outcome::Same
            }
        },
    );
    let mut groups: Vec<Vec<String>> = s.take_due(true).iter().map(|g| names(&g.files)).collect();
    groups.sort();
    assert_eq!(
        groups,
        [vec!["y1", "y2", "y3", "y4"]],
        "only the y group grew"
    );
}

#[test]
fn verify_drops_the_member_that_changed_and_keeps_the_candidate() {
    let mut s = verifying_abc();
    // Whoever is compared with "a" finds it changed.
    drain(
        &mut s,
        |_| digest(3),
        |t| {
            let TaskKind::Verify(other) = &t.kind else {
                unreachable!()
            };
            if other.path.ends_with("a") {
                other_changed(t)
            } else {
                Outcome::Same
            }
        },
    );
    let out = s.take_due(true);
    let files: Vec<Vec<String>> = out.iter().map(|g| names(&g.files)).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!files[0].contains(&"a".to_string()), "{files:?}");
    assert_eq!(files[0].len(), 2, "{files:?}");
}

#[test]
fn slots_and_keys_pack_losslessly() {
    for slot in [
        Slot::Waiting(0),
        Slot::Node(5),
        Slot::Single(SLOT_MAX),
        Slot::Group(77),
    ] {
        assert_eq!(Slot::unpack(slot.pack()), slot);
    }
    let k: Key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
    assert_eq!(
        pack_key(k),
        [0x89ab_cdef, 0x0123_4567, 0x7654_3210, 0xfedc_ba98]
    );
}

#[test]
fn more_files_than_a_run_indexes_is_an_error_not_a_panic() {
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(Rules {
        max_files: 2,
        ..rules()
    });
    add(&mut s, &entry(&dir, "a", 1, 1));
    add(&mut s, &entry(&dir, "b", 1, 2));
    assert!(s.add(&entry(&dir, "c", 1, 3), &mut Vec::new()).is_err());
}

#[test]
fn verify_drops_a_changed_group_member_and_regroups_the_rest() {
    let mut s = verifying_abc();
    // "a" and "b" form a group; then "a" changes, and "c", compared with
    // it, finds it so: "a" leaves the group, "c" joins "b".
    let verifications = std::cell::Cell::new(0);
    drain(
        &mut s,
        |_| digest(3),
        |t| {
            let TaskKind::Verify(other) = &t.kind else {
                unreachable!()
            };
            verifications.set(verifications.get() + 1);
            if verifications.get() > 1 && other.path.ends_with("a") {
                other_changed(t)
            } else {
                Outcome::Same
            }
        },
    );
    let out = s.take_due(true);
    assert_eq!(out.len(), 1);
    assert_eq!(names(&out[0].files), ["b", "c"]);
}

#[test]
fn a_file_bind_mount_is_its_source_and_shows_its_first_path() {
    let dir = DirPath::new("/d", 0);
    let with = |name: &str, ino: u64, mount_root: bool| entry_with(&dir, name, 10, ino, mount_root);
    let mut s = State::new(rules());
    // The source (nlink 1, nothing marks it) and its bind mount: they
    // meet only at the last level.
    add(&mut s, &with("z-src", 1, false));
    add(&mut s, &with("a-alias", 1, true));
    drain(&mut s, |_| digest(4), no_verify);
    assert!(s.take_due(true).is_empty(), "one inode is no group");
    assert_eq!(s.collapsed_links(), 1);
    // A real copy makes a group of two, shown by the alias's path, the
    // first of the inode's paths in report order.
    add(&mut s, &with("m-copy", 2, false));
    drain(&mut s, |_| digest(4), no_verify);
    let g = s.take_due(true);
    assert_eq!(g.len(), 1);
    assert_eq!(names(&g[0].files), ["a-alias", "m-copy"]);
    // A second bind mount of the same file meets the group: not a member.
    add(&mut s, &with("b-alias2", 1, true));
    drain(&mut s, |_| digest(4), no_verify);
    assert_eq!(s.collapsed_links(), 2);
    assert!(s.take_due(true).is_empty(), "the group did not grow");
}

#[test]
fn empty_files_are_one_group_and_their_aliases_collapse() {
    let dir = DirPath::new("/d", 0);
    let with = |name: &str, ino: u64, mount_root: bool| entry_with(&dir, name, 0, ino, mount_root);
    let mut s = State::new(rules());
    add(&mut s, &with("e1", 1, false));
    add(&mut s, &with("alias", 1, true));
    assert_eq!(s.collapsed_links(), 1, "a bind mount of an empty file");
    assert!(s.take_due(true).is_empty());
    add(&mut s, &with("e2", 2, false));
    add(&mut s, &with("e3", 3, false));
    assert!(!s.has_ready(), "empty files are never read");
    let g = s.take_due(true);
    assert_eq!(names(&g[0].files), ["alias", "e2", "e3"]);
    assert_eq!(s.passed()[0], 3, "three candidates at the size stage");
}

#[test]
fn a_verification_against_a_file_that_left_proves_nothing() {
    let mut s = verifying_abc();
    // "b" and "c" are both compared with "a". The first finds "a" changed
    // (so "b" takes its place); the second says "c" equals "a", which
    // proves nothing about "b": "c" must be compared with "b" (and differs).
    let calls = std::cell::Cell::new(0);
    drain(
        &mut s,
        |_| digest(3),
        |t| {
            calls.set(calls.get() + 1);
            match calls.get() {
                1 => other_changed(t),
                2 => Outcome::Same,
                _ => Outcome::Differ,
            }
        },
    );
    assert!(
        s.take_due(true).is_empty(),
        "no group: c was never shown equal to b"
    );
    assert_eq!(calls.get(), 3);
}

#[test]
fn a_comparison_turned_into_a_rehash_leaves_nothing_behind() {
    let dir = DirPath::new("/d", 0);
    let mut s = State::new(Rules {
        verify: true,
        ..rules()
    });
    let size = 100_000; // a quick check, then the full hash
    for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
        add(&mut s, &entry(&dir, n, size, i as u64 + 1));
    }
    let name = |t: &Task| {
        t.file
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let mut comparisons = 0;
    let mut rehashed_d = false;
    while let Some(job) = s.next_job() {
        for t in job {
            match &t.kind {
                TaskKind::Stage(spec) if spec.stage == Stage::Quick => {
                    s.stage_done(t.cand, [7, 7], None);
                }
                TaskKind::Stage(_) => {
                    // "d" is hashed again (its comparison lost its other
                    // file) and now has other bytes.
                    let again = name(&t) == "d" && comparisons > 0;
                    rehashed_d |= again;
                    let d = digest(if again { 2 } else { 1 });
                    s.stage_done(t.cand, d.key(), Some(d));
                }
                TaskKind::Verify(other) => {
                    comparisons += 1;
                    let other_name = other.path.file_name().unwrap().to_string_lossy();
                    // "a" changed: the first comparison against it says so.
                    if other_name == "a" && name(&t) == "c" {
                        s.other_changed(t.cand);
                    } else {
                        s.verified(t.cand);
                    }
                }
            }
        }
    }
    assert!(rehashed_d, "the comparison of d became a full hash");
    // A new file takes d's slot in the candidate slab: its first read must
    // be its quick check, not a leftover of d's comparison.
    add(&mut s, &entry(&dir, "e", size, 9));
    add(&mut s, &entry(&dir, "f", size, 10));
    let mut first_reads = Vec::new();
    while let Some(job) = s.next_job() {
        for t in job {
            let quick = matches!(&t.kind, TaskKind::Stage(spec) if spec.stage == Stage::Quick);
            first_reads.push((name(&t), quick));
        }
    }
    first_reads.sort();
    assert_eq!(
        first_reads,
        [("e".to_string(), true), ("f".to_string(), true)]
    );
}
