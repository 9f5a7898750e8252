//! The pipeline's bookkeeping: which files share which keys, as a trie per
//! size (size -> quick key -> statistical key -> full hash). Pure data, no
//! I/O: the coordinator feeds it walk entries and stage results, and it
//! answers with tasks to run and groups to report.
//!
//! The rule that keeps work and memory small: a file advances to the next
//! stage only once another file shares its key at the current one. A lone
//! file waits (it may yet be joined by a file found later in the walk); a
//! file alone at the last stage is reduced to its path.
//!
//! Memory is what bounds a 10^7-file run, so the maps are packed: a slot is
//! a tagged `u32`, a key four `u32`s (a 20-byte map entry), and settled
//! paths live in a side table of 16-byte entries. Per settled file that is
//! about 20-40 bytes of map, 16 of path and its name in the arena; per
//! candidate still being read, 48 bytes more.

use std::collections::{BinaryHeap, HashSet};

use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::read::{ladder, Expect, Stage, Task, TaskKind};
use crate::entry::{DirPath, EntryKind, FileEntry, FileId};
use crate::group::DuplicateGroup;
use crate::hash::{Digest, HashAlgo, Key};

/// Parent id of the size level.
const ROOT: u32 = u32::MAX;

/// A name stored in the [`Names`] arena: chunk (32 bits), offset (20 bits),
/// length (12 bits).
#[derive(Clone, Copy, Debug)]
struct NameRef(u64);

/// Append-only storage for file names, in fixed chunks so it never copies
/// itself while growing (a doubling `Vec` would briefly need twice the
/// memory). Written here because interning millions of short byte strings
/// with 8-byte handles is not what general arena crates optimise for.
#[derive(Default)]
struct Names {
    chunks: Vec<Vec<u8>>,
}

const CHUNK: usize = 1 << 20;
const MAX_NAME: usize = (1 << 12) - 1;

impl Names {
    fn push(&mut self, name: &[u8]) -> NameRef {
        let name = &name[..name.len().min(MAX_NAME)];
        match self.chunks.last() {
            Some(c) if c.len() + name.len() <= CHUNK => {}
            _ => self.chunks.push(Vec::with_capacity(CHUNK)),
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let off = chunk.len();
        chunk.extend_from_slice(name);
        NameRef(((idx as u64) << 32) | ((off as u64) << 12) | name.len() as u64)
    }

    fn get(&self, r: NameRef) -> &[u8] {
        let idx = (r.0 >> 32) as usize;
        let off = ((r.0 >> 12) & 0xF_FFFF) as usize;
        let len = (r.0 & 0xFFF) as usize;
        &self.chunks[idx][off..off + len]
    }
}

/// A path in compact form.
#[derive(Clone, Debug)]
struct PathRef {
    dir: Arc<DirPath>,
    name: NameRef,
}

/// A file still being examined.
struct Cand {
    path: PathRef,
    id: FileId,
    mtime_ns: i64,
    /// The trie node whose next stage this file is in (ROOT at first).
    node: u32,
    follow: bool,
}

/// What sits under one key, packed into a `u32` in the maps (see
/// [`Slot::pack`]): a 2-bit tag and a 30-bit index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The only file so far; its next stage is not run until another comes.
    Waiting(u32),
    /// Two or more files: they all go on to the next stage.
    Node(u32),
    /// Last stage, one file: settled; its path is in `singles`.
    Single(u32),
    /// Last stage, two or more files: a duplicate group.
    Group(u32),
}

/// Largest index a packed slot holds (about a billion files).
const SLOT_MAX: u32 = (1 << 30) - 1;

impl Slot {
    fn pack(self) -> u32 {
        let (tag, i) = match self {
            Slot::Waiting(i) => (0, i),
            Slot::Node(i) => (1, i),
            Slot::Single(i) => (2, i),
            Slot::Group(i) => (3, i),
        };
        assert!(i <= SLOT_MAX, "more than {SLOT_MAX} files in one run");
        (tag << 30) | i
    }

    fn unpack(v: u32) -> Slot {
        let i = v & SLOT_MAX;
        match v >> 30 {
            0 => Slot::Waiting(i),
            1 => Slot::Node(i),
            2 => Slot::Single(i),
            _ => Slot::Group(i),
        }
    }
}

/// A key as stored: four `u32`s, so a map entry is 20 bytes, not 24.
type PackedKey = [u32; 4];

fn pack_key(k: Key) -> PackedKey {
    [
        k[0] as u32,
        (k[0] >> 32) as u32,
        k[1] as u32,
        (k[1] >> 32) as u32,
    ]
}

struct Node {
    size: u64,
    /// Stages its members have completed.
    step: u8,
    children: HashMap<PackedKey, u32>,
}

struct Group {
    id: Option<u64>,
    size: u64,
    digest: Digest,
    files: Vec<PathRef>,
    last_emit: Option<Instant>,
    dirty: bool,
}

/// A task waiting for a worker, ordered largest file first, then oldest.
struct Ready {
    size: u64,
    seq: u64,
    cand: u32,
    /// Byte comparison against a group member, for `--verify`.
    verify: Option<Box<VerifyWith>>,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.size
            .cmp(&other.size)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

struct VerifyWith {
    key: Key,
    digest: Digest,
    other: PathRef,
}

/// Index of a stage in the `passed` counts: size, quick, statistical,
/// full.
pub(crate) fn stage_index(s: Option<Stage>) -> usize {
    match s {
        None => 0,
        Some(Stage::Quick) => 1,
        Some(Stage::Statistical) => 2,
        Some(Stage::Full) => 3,
    }
}

/// Group as handed to the coordinator for reporting.
pub(crate) struct GroupOut {
    pub id: u64,
    pub size: u64,
    pub digest: Digest,
    pub files: Vec<PathBuf>,
}

pub(crate) struct State {
    algo: HashAlgo,
    verify: bool,
    hard_links: bool,
    names: Names,
    cands: Vec<Option<Cand>>,
    free: Vec<u32>,
    sizes: HashMap<u64, u32>,
    /// Paths of settled lone files (`Slot::Single`), with a free list.
    singles: Vec<Option<PathRef>>,
    free_singles: Vec<u32>,
    nodes: Vec<Node>,
    groups: Vec<Group>,
    /// Files with more than one link (or reached through a link), to read
    /// each inode once.
    seen: HashSet<FileId, rustc_hash::FxBuildHasher>,
    /// Waiting tasks, small and large files apart (large ones may be
    /// limited to one reader at a time).
    ready_small: BinaryHeap<Ready>,
    ready_large: BinaryHeap<Ready>,
    /// Files at least this large are "large".
    large: u64,
    seq: u64,
    dirty: Vec<u32>,
    next_id: u64,
    /// Per stage (see [`stage_index`]): files that shared their key after
    /// it, so were still candidates.
    pub(crate) passed: [u64; 4],
    pub(crate) collapsed_links: u64,
    /// Net candidates at rest (alone for now, grouped, or failed), and
    /// their bytes: the progress bar's position.
    settled: (i64, i64),
}

impl State {
    pub(crate) fn new(algo: HashAlgo, verify: bool, hard_links: bool, large: u64) -> State {
        State {
            algo,
            verify,
            hard_links,
            names: Names::default(),
            cands: Vec::new(),
            free: Vec::new(),
            sizes: HashMap::default(),
            singles: Vec::new(),
            free_singles: Vec::new(),
            nodes: Vec::new(),
            groups: Vec::new(),
            seen: HashSet::default(),
            ready_small: BinaryHeap::new(),
            ready_large: BinaryHeap::new(),
            large,
            seq: 0,
            dirty: Vec::new(),
            next_id: 1,
            passed: [0; 4],
            collapsed_links: 0,
            settled: (0, 0),
        }
    }

    /// A file from the walk. Returns sizes of files that became candidates
    /// (for progress).
    pub(crate) fn add(&mut self, e: &FileEntry, became: &mut Vec<u64>) {
        if !self.hard_links
            && (e.nlink > 1 || e.kind == EntryKind::SymlinkToFile)
            && !self.seen.insert(e.id)
        {
            self.collapsed_links += 1;
            return;
        }
        let (s, ns) = e.mtime_parts();
        let cand = Cand {
            path: PathRef {
                dir: Arc::clone(e.dir()),
                name: self.names.push(e.name().as_encoded_bytes()),
            },
            id: e.id,
            mtime_ns: s.saturating_mul(1_000_000_000).saturating_add(ns as i64),
            node: ROOT,
            follow: e.kind == EntryKind::SymlinkToFile,
        };
        let c = match self.free.pop() {
            Some(i) => {
                self.cands[i as usize] = Some(cand);
                i
            }
            None => {
                self.cands.push(Some(cand));
                (self.cands.len() - 1) as u32
            }
        };
        self.place(c, ROOT, [e.size, 0], None, became);
    }

    fn cand(&self, c: u32) -> &Cand {
        self.cands[c as usize].as_ref().expect("live candidate")
    }

    fn take(&mut self, c: u32) -> Cand {
        self.free.push(c);
        self.cands[c as usize].take().expect("live candidate")
    }

    /// The slot under `key` (a size at the root).
    fn get_slot(&self, parent: u32, key: Key) -> Option<Slot> {
        let v = if parent == ROOT {
            self.sizes.get(&key[0])
        } else {
            self.nodes[parent as usize].children.get(&pack_key(key))
        };
        v.copied().map(Slot::unpack)
    }

    fn put_slot(&mut self, parent: u32, key: Key, slot: Slot) {
        if parent == ROOT {
            self.sizes.insert(key[0], slot.pack());
        } else {
            self.nodes[parent as usize]
                .children
                .insert(pack_key(key), slot.pack());
        }
    }

    fn add_single(&mut self, p: PathRef) -> u32 {
        match self.free_singles.pop() {
            Some(i) => {
                self.singles[i as usize] = Some(p);
                i
            }
            None => {
                self.singles.push(Some(p));
                (self.singles.len() - 1) as u32
            }
        }
    }

    fn take_single(&mut self, i: u32) -> PathRef {
        self.free_singles.push(i);
        self.singles[i as usize].take().expect("live single")
    }

    /// Puts candidate `c`, whose key under `parent` is `key`, in the trie.
    fn place(
        &mut self,
        c: u32,
        parent: u32,
        key: Key,
        digest: Option<Digest>,
        became: &mut Vec<u64>,
    ) {
        let (size, steps) = if parent == ROOT {
            (key[0], 0usize)
        } else {
            let n = &self.nodes[parent as usize];
            (n.size, n.step as usize + 1)
        };
        let last = steps == ladder(size).len();
        let stage_idx = if steps == 0 {
            0
        } else {
            stage_index(Some(ladder(size)[steps - 1]))
        };
        let existing = self.get_slot(parent, key);
        let was_candidate = steps > 0;
        let new_slot = match existing {
            None if last => {
                if was_candidate {
                    self.settle(1, size);
                }
                let cand = self.take(c);
                Slot::Single(self.add_single(cand.path))
            }
            None => {
                if was_candidate {
                    self.settle(1, size);
                }
                self.cands[c as usize].as_mut().expect("live").node = parent;
                Slot::Waiting(c)
            }
            Some(Slot::Waiting(o)) => {
                if was_candidate {
                    self.settle(-1, size); // `o` is back at work
                }
                let n = self.nodes.len() as u32;
                self.nodes.push(Node {
                    size,
                    step: steps as u8,
                    children: HashMap::default(),
                });
                self.passed[stage_idx] += 2;
                if steps == 0 {
                    became.extend([size, size]);
                }
                for x in [o, c] {
                    self.cands[x as usize].as_mut().expect("live").node = n;
                    self.schedule(x, size, None);
                }
                Slot::Node(n)
            }
            Some(Slot::Node(n)) => {
                self.passed[stage_idx] += 1;
                if steps == 0 {
                    became.push(size);
                }
                self.cands[c as usize].as_mut().expect("live").node = n;
                self.schedule(c, size, None);
                Slot::Node(n)
            }
            Some(Slot::Single(i)) => {
                if self.verify && size > 0 {
                    let other = self.singles[i as usize].clone().expect("live single");
                    self.schedule_verify(c, parent, size, key, digest, other);
                    Slot::Single(i)
                } else {
                    let p = self.take_single(i);
                    self.passed[stage_idx] += 2;
                    if steps == 0 {
                        became.extend([size, size]);
                        self.settle(2, size);
                    } else {
                        self.settle(1, size);
                    }
                    let cand = self.take(c);
                    let digest = digest.unwrap_or_else(|| self.algo.hasher().finish());
                    Slot::Group(self.new_group(size, digest, [p, cand.path]))
                }
            }
            Some(Slot::Group(g)) => {
                if self.verify && size > 0 {
                    let other = self.groups[g as usize].files[0].clone();
                    self.schedule_verify(c, parent, size, key, digest, other);
                } else {
                    self.passed[stage_idx] += 1;
                    if steps == 0 {
                        became.push(size);
                    }
                    self.settle(1, size);
                    let cand = self.take(c);
                    self.join(g, cand.path);
                }
                Slot::Group(g)
            }
        };
        if existing != Some(new_slot) {
            self.put_slot(parent, key, new_slot);
        }
    }

    /// A new group of two, to be reported.
    fn new_group(&mut self, size: u64, digest: Digest, files: [PathRef; 2]) -> u32 {
        let g = self.groups.len() as u32;
        self.groups.push(Group {
            id: None,
            size,
            digest,
            files: files.into(),
            last_emit: None,
            dirty: true,
        });
        self.dirty.push(g);
        g
    }

    /// Queues a byte comparison of `c` against `other` before `c` may join
    /// the files under `key`.
    fn schedule_verify(
        &mut self,
        c: u32,
        parent: u32,
        size: u64,
        key: Key,
        digest: Option<Digest>,
        other: PathRef,
    ) {
        self.cands[c as usize].as_mut().expect("live").node = parent;
        let with = VerifyWith {
            key,
            digest: digest.unwrap_or_else(|| self.algo.hasher().finish()),
            other,
        };
        self.schedule(c, size, Some(Box::new(with)));
    }

    fn join(&mut self, g: u32, path: PathRef) {
        let grp = &mut self.groups[g as usize];
        grp.files.push(path);
        if !grp.dirty {
            grp.dirty = true;
            self.dirty.push(g);
        }
    }

    fn schedule(&mut self, c: u32, size: u64, verify: Option<Box<VerifyWith>>) {
        self.seq += 1;
        let heap = if size >= self.large {
            &mut self.ready_large
        } else {
            &mut self.ready_small
        };
        heap.push(Ready {
            size,
            seq: self.seq,
            cand: c,
            verify,
        });
    }

    /// A stage result: the candidate's key at the stage it was in.
    pub(crate) fn stage_done(&mut self, c: u32, key: Key, digest: Option<Digest>) {
        let parent = self.cand(c).node;
        self.place(c, parent, key, digest, &mut Vec::new());
    }

    fn settle(&mut self, files: i64, size: u64) {
        self.settled.0 += files;
        self.settled.1 += files * size as i64;
    }

    /// Candidates at rest so far, and their bytes.
    pub(crate) fn settled(&self) -> (u64, u64) {
        (self.settled.0.max(0) as u64, self.settled.1.max(0) as u64)
    }

    /// A candidate verified equal to the group it was headed for.
    pub(crate) fn verified(&mut self, c: u32, key: Key, digest: Digest) {
        let cand = self.take(c);
        let parent = cand.node;
        let size = self.nodes[parent as usize].size;
        self.settle(1, size);
        let stage_idx = stage_index(Some(Stage::Full));
        let slot = self.get_slot(parent, key);
        let new_slot = match slot {
            Some(Slot::Single(i)) => {
                let p = self.take_single(i);
                self.passed[stage_idx] += 2;
                Slot::Group(self.new_group(size, digest, [p, cand.path]))
            }
            Some(Slot::Group(g)) => {
                self.passed[stage_idx] += 1;
                self.join(g, cand.path);
                Slot::Group(g)
            }
            Some(other) => other,
            None => Slot::Single(self.add_single(cand.path)),
        };
        if slot != Some(new_slot) {
            self.put_slot(parent, key, new_slot);
        }
    }

    /// A candidate that could not be read leaves the pipeline.
    pub(crate) fn failed(&mut self, c: u32) {
        let cand = self.take(c);
        if cand.node != ROOT {
            let size = self.nodes[cand.node as usize].size;
            self.settle(1, size);
        }
    }

    /// Tasks waiting for a reader.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready_small.len() + self.ready_large.len()
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.ready_len() > 0
    }

    pub(crate) fn clear_ready(&mut self) {
        // Drop the candidates too: nothing will read them now.
        let waiting: Vec<u32> = self
            .ready_small
            .drain()
            .chain(self.ready_large.drain())
            .map(|r| r.cand)
            .collect();
        for c in waiting {
            self.take(c);
        }
    }

    /// The next job: one large file (largest first) if `allow_large`,
    /// otherwise up to `max_small` small files, largest first. Large files
    /// get a reader to themselves; small ones share a channel message.
    pub(crate) fn next_job(&mut self, max_small: usize, allow_large: bool) -> Option<Vec<Task>> {
        if allow_large {
            if let Some(r) = self.ready_large.pop() {
                return Some(vec![self.task(r)]);
            }
        }
        let mut tasks = Vec::new();
        while tasks.len() < max_small {
            let Some(r) = self.ready_small.pop() else {
                break;
            };
            tasks.push(self.task(r));
        }
        (!tasks.is_empty()).then_some(tasks)
    }

    fn full_path(&self, p: &PathRef) -> PathBuf {
        p.dir.join(self.names.get(p.name))
    }

    fn task(&self, r: Ready) -> Task {
        let cand = self.cand(r.cand);
        let node = &self.nodes[cand.node as usize];
        let expect = Expect {
            size: node.size,
            id: cand.id,
            mtime_ns: cand.mtime_ns,
            follow: cand.follow,
        };
        let kind = match &r.verify {
            Some(v) => TaskKind::Verify(self.full_path(&v.other)),
            None => TaskKind::Stage(ladder(node.size)[node.step as usize]),
        };
        Task {
            cand: r.cand,
            path: self.full_path(&cand.path),
            expect,
            kind,
            tag: r.verify.map(|v| (v.key, v.digest)),
        }
    }

    /// Groups changed since they were last reported, if `force` or their
    /// last report is older than `min_gap`; new groups always.
    pub(crate) fn take_dirty(
        &mut self,
        force: bool,
        min_gap: std::time::Duration,
    ) -> Vec<GroupOut> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        let now = Instant::now();
        for g in std::mem::take(&mut self.dirty) {
            let due = force
                || self.groups[g as usize]
                    .last_emit
                    .is_none_or(|t| now.duration_since(t) >= min_gap);
            if !due {
                keep.push(g);
                continue;
            }
            let id = match self.groups[g as usize].id {
                Some(id) => id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.groups[g as usize].id = Some(id);
                    id
                }
            };
            let grp = &self.groups[g as usize];
            out.push(GroupOut {
                id,
                size: grp.size,
                digest: grp.digest,
                files: grp.files.iter().map(|p| self.full_path(p)).collect(),
            });
            let grp = &mut self.groups[g as usize];
            grp.dirty = false;
            grp.last_emit = Some(now);
        }
        self.dirty = keep;
        out
    }

    /// Reports every group still unreported, then keeps only what the
    /// final report needs (groups and names); the maps are freed.
    pub(crate) fn into_store(mut self, algo: HashAlgo) -> GroupStore {
        // Every group gets its id (in order of confirmation) before the end.
        let _ = self.take_dirty(true, std::time::Duration::ZERO);
        let mut order: Vec<u32> = (0..self.groups.len() as u32).collect();
        let groups = std::mem::take(&mut self.groups);
        order.sort_by(|&a, &b| {
            let (a, b) = (&groups[a as usize], &groups[b as usize]);
            b.size.cmp(&a.size).then(a.id.cmp(&b.id))
        });
        let names = std::mem::take(&mut self.names);
        drop(self);
        GroupStore {
            names,
            groups,
            order,
            algo,
        }
    }
}

/// The groups of a finished run, compact.
pub(crate) struct GroupStore {
    names: Names,
    groups: Vec<Group>,
    order: Vec<u32>,
    algo: HashAlgo,
}

impl GroupStore {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    pub(crate) fn redundant_files(&self) -> u64 {
        self.groups.iter().map(|g| g.files.len() as u64 - 1).sum()
    }

    pub(crate) fn redundant_bytes(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| g.size * (g.files.len() as u64 - 1))
            .sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = DuplicateGroup> + '_ {
        self.order.iter().map(move |&i| {
            let g = &self.groups[i as usize];
            DuplicateGroup {
                id: g.id.unwrap_or(0),
                size: g.size,
                hash: g.digest,
                algo: self.algo,
                files: g
                    .files
                    .iter()
                    .map(|p| p.dir.join(self.names.get(p.name)))
                    .collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashAlgo;

    fn entry(dir: &Arc<DirPath>, name: &str, size: u64, ino: u64) -> FileEntry {
        let mut st: rustix::fs::Stat = base_stat();
        st.st_size = size as i64;
        st.st_ino = ino;
        st.st_nlink = 1;
        FileEntry::from_stat(Arc::clone(dir), name.as_bytes(), &st, EntryKind::File)
    }

    /// A real `stat` to start from (there is no safe zeroed one); the tests
    /// overwrite the fields that matter.
    fn base_stat() -> rustix::fs::Stat {
        rustix::fs::stat("/").expect("stat /")
    }

    fn digest(byte: u8) -> Digest {
        let mut h = HashAlgo::Xxh3.hasher();
        h.update(&[byte]);
        h.finish()
    }

    /// Runs every ready task, answering Full with `content(cand)`.
    fn drain(s: &mut State, content: impl Fn(&Task) -> u8) {
        while let Some(job) = s.next_job(64, true) {
            for t in job {
                assert!(matches!(t.kind, TaskKind::Stage(Stage::Full)));
                let d = digest(content(&t));
                s.stage_done(t.cand, d.key(), Some(d));
            }
        }
    }

    #[test]
    fn unique_sizes_are_never_read_and_groups_keep_their_id() {
        let dir = DirPath::new("/d", 0);
        let mut s = State::new(HashAlgo::Xxh3, false, false, 1 << 20);
        let mut became = Vec::new();
        s.add(&entry(&dir, "a", 10, 1), &mut became);
        s.add(&entry(&dir, "b", 11, 2), &mut became);
        assert!(!s.has_ready(), "unique sizes are not read");
        s.add(&entry(&dir, "c", 10, 3), &mut became);
        assert_eq!(became, vec![10, 10]);
        assert_eq!(s.ready_len(), 2);
        drain(&mut s, |_| 7);
        let first = s.take_dirty(false, std::time::Duration::from_secs(3600));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, 1);
        assert_eq!(first[0].files.len(), 2);
        // A third copy found later joins the same group, same id.
        s.add(&entry(&dir, "e", 10, 5), &mut became);
        s.add(&entry(&dir, "f", 10, 6), &mut became); // same size, other content
        drain(&mut s, |t| if t.path.ends_with("f") { 8 } else { 7 });
        assert!(
            s.take_dirty(false, std::time::Duration::from_secs(3600))
                .is_empty(),
            "updates wait for the re-emit gap"
        );
        let again = s.take_dirty(true, std::time::Duration::ZERO);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, 1);
        let names: Vec<_> = again[0]
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a", "c", "e"]);
        let store = s.into_store(HashAlgo::Xxh3);
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
    fn hard_links_collapse_unless_asked() {
        let dir = DirPath::new("/d", 0);
        let linked = |name: &str| {
            let mut e = entry(&dir, name, 10, 42);
            e.nlink = 2;
            e
        };
        let mut s = State::new(HashAlgo::Xxh3, false, false, 1 << 20);
        s.add(&linked("a"), &mut Vec::new());
        s.add(&linked("b"), &mut Vec::new());
        assert_eq!(s.collapsed_links, 1);
        assert!(!s.has_ready());
        let mut s = State::new(HashAlgo::Xxh3, false, true, 1 << 20);
        s.add(&linked("a"), &mut Vec::new());
        s.add(&linked("b"), &mut Vec::new());
        assert_eq!(s.ready_len(), 2);
    }

    #[test]
    fn larger_files_are_served_first_and_small_ones_batched() {
        let dir = DirPath::new("/d", 0);
        let mut s = State::new(HashAlgo::Xxh3, false, false, 1000);
        for (i, size) in [5u64, 5, 7000, 7000, 300, 300].into_iter().enumerate() {
            s.add(
                &entry(&dir, &format!("f{i}"), size, i as u64 + 1),
                &mut Vec::new(),
            );
        }
        let job = s.next_job(64, true).unwrap();
        assert_eq!(job.len(), 1, "a large file is a job alone");
        assert_eq!(job[0].expect.size, 7000);
        let job = s.next_job(64, false).unwrap();
        let sizes: Vec<u64> = job.iter().map(|t| t.expect.size).collect();
        assert_eq!(
            sizes,
            [300, 300, 5, 5],
            "large files held back, small ones batched, larger first"
        );
        assert_eq!(s.next_job(64, true).unwrap()[0].expect.size, 7000);
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
        let mut names = Names::default();
        let a = names.push(b"first");
        let b = names.push(b"\xffsecond");
        assert_eq!(names.get(a), b"first");
        assert_eq!(names.get(b), b"\xffsecond");
    }
}
