//! The pipeline's bookkeeping: which files share which keys, as a trie per
//! size (size -> quick key -> statistical key -> full digest). Pure data,
//! no I/O: the coordinator feeds it walk entries and stage results, and it
//! answers with tasks to run and groups to report.
//!
//! The rule that keeps work and memory small: a file advances to the next
//! stage only once another file shares its key at the current one. A lone
//! file waits (it may yet be joined by a file found later in the walk); a
//! file alone at the last stage is reduced to what a later twin needs.
//!
//! Correctness rules kept here:
//! * One inode is one file: entries whose inode may have other paths
//!   (hard links, followed symlinks, file bind mounts) are recorded by
//!   device and inode; a second path to a recorded inode is never read,
//!   and reports show the first of its paths in report order.
//! * The last level matches the whole digest, not its first 128 bits: a
//!   slot holding files whose digest differs further on is passed over
//!   (probing to the next key), and so is one whose bytes `--verify` found
//!   to differ, so a hash collision starts a group of its own.
//!
//! Memory is what bounds a 10^7-file run, so the maps are packed: a slot is
//! a tagged `u32`, a key four `u32`s (a 20-byte map entry).

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::groups::{Aliases, DuplicateGroupParts, GroupStore, Member, Registry};
use super::paths::{Names, PathRef};
use super::read::{ladder, Expect, Stage, Target, Task, TaskKind};
use super::slab::Slab;
use crate::entry::{time_ns, FileEntry, FileId};
use crate::hash::{quick_key, Digest, HashAlgo, Key};

/// Parent id of the size level.
const ROOT: u32 = u32::MAX;

/// A file still being examined.
struct Cand {
    member: Member,
    /// The trie node whose next stage this file is in (ROOT at first).
    node: u32,
}

/// A candidate's place at the last level while `--verify` compares it.
struct Pending {
    probe: u32,
    digest: Digest,
    other: FileId,
}

/// What sits under one key, packed into a `u32` in the maps (see
/// [`Slot::pack`]): a 2-bit tag and a 30-bit index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The only file so far; its next stage is not run until another comes.
    Waiting(u32),
    /// Two or more files: they all go on to the next stage.
    Node(u32),
    /// Last stage, one file: settled, in `singles`.
    Single(u32),
    /// Last stage, two or more files: a duplicate group.
    Group(u32),
}

/// Largest index a packed slot holds (about a billion).
const SLOT_MAX: u32 = (1 << 30) - 1;

/// Files one run accepts: every index a run creates (candidates, trie
/// nodes, settled files, groups) stays below [`SLOT_MAX`] with room to
/// spare, so packing can never truncate.
pub(crate) const MAX_FILES: u64 = (SLOT_MAX / 4) as u64;

// Candidates, nodes, settled files and groups each stay below
// `MAX_FILES * 4`, the most a run can create from that many files.
const _: () = assert!(MAX_FILES * 4 <= SLOT_MAX as u64 + 1);

impl Slot {
    fn pack(self) -> u32 {
        let (tag, i) = match self {
            Slot::Waiting(i) => (0, i),
            Slot::Node(i) => (1, i),
            Slot::Single(i) => (2, i),
            Slot::Group(i) => (3, i),
        };
        debug_assert!(i <= SLOT_MAX, "bounded by MAX_FILES");
        (tag << 30) | (i & SLOT_MAX)
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

/// The key of a digest at the last level: its first 128 bits, or, for
/// probe `k > 0`, a hash of the whole digest and `k`.
fn probe_key(d: &Digest, k: u32) -> Key {
    if k == 0 {
        d.key()
    } else {
        quick_key(&[d.as_bytes(), &k.to_le_bytes()])
    }
}

/// What a settled lone file keeps: itself, and the digest bits beyond the
/// 128 its key holds.
struct Single {
    member: Member,
    tail: [u8; 16],
}

fn tail(d: &Digest) -> [u8; 16] {
    let mut t = [0; 16];
    let b = d.as_bytes();
    if b.len() > 16 {
        let n = (b.len() - 16).min(16);
        t[..n].copy_from_slice(&b[16..16 + n]);
    }
    t
}

struct Node {
    size: u64,
    /// Stages its members have completed.
    step: u8,
    children: HashMap<PackedKey, u32>,
}

/// A task waiting for a worker, ordered largest file first, then oldest.
struct Ready {
    size: u64,
    seq: u64,
    cand: u32,
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

/// How the trie decides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub algo: HashAlgo,
    pub verify: bool,
    /// Hard links are separate files (`-H`).
    pub hard_links: bool,
    /// Symlinks are followed, so any file may be reached twice.
    pub follow_links: bool,
    /// Files at least this large are "large".
    pub large: u64,
    /// Files accepted before the run stops with [`TooManyFiles`]
    /// ([`MAX_FILES`]; smaller in tests).
    pub max_files: u64,
}

/// More files than one run can index.
#[derive(Debug)]
pub(crate) struct TooManyFiles;

pub(crate) struct State {
    rules: Rules,
    names: Names,
    cands: Slab<Cand>,
    /// Byte comparisons candidates wait for (`--verify`), with what each
    /// was placed under: kept aside, so candidates without one pay nothing.
    verifying: HashMap<u32, Pending>,
    sizes: HashMap<u64, u32>,
    singles: Slab<Single>,
    nodes: Vec<Node>,
    groups: Registry,
    /// Inodes that may have more than one path, with the first path in
    /// report order: each is read once and shown by that path.
    aliases: Aliases,
    /// Waiting tasks, small and large files apart (large ones may be
    /// limited to one reader at a time).
    ready_small: BinaryHeap<Ready>,
    ready_large: BinaryHeap<Ready>,
    seq: u64,
    accepted: u64,
    /// Per stage (see [`stage_index`]): files that shared their key after
    /// it, so were still candidates.
    pub(crate) passed: [u64; 4],
    pub(crate) collapsed_links: u64,
    /// Net candidates at rest (alone for now, grouped, or failed), and
    /// their bytes: the progress bar's position.
    settled: (i64, i64),
}

impl State {
    pub(crate) fn new(rules: Rules) -> State {
        State {
            rules,
            names: Names::default(),
            cands: Slab::default(),
            verifying: HashMap::default(),
            sizes: HashMap::default(),
            singles: Slab::default(),
            nodes: Vec::new(),
            groups: Registry::default(),
            aliases: Aliases::default(),
            ready_small: BinaryHeap::new(),
            ready_large: BinaryHeap::new(),
            seq: 0,
            accepted: 0,
            passed: [0; 4],
            collapsed_links: 0,
            settled: (0, 0),
        }
    }

    /// A file from the walk. Pushes sizes of files that became candidates
    /// (for progress).
    pub(crate) fn add(&mut self, e: &FileEntry, became: &mut Vec<u64>) -> Result<(), TooManyFiles> {
        // With -H hard links are files of their own, but a bind-mounted
        // file is still its source (it is not a second directory entry).
        let aliased = if self.rules.hard_links {
            false
        } else {
            self.rules.follow_links || e.may_be_aliased()
        };
        let name = e.name().as_encoded_bytes();
        if aliased {
            if let Some(first) = self.aliases.get(&e.id) {
                // Another path to an inode already here: only its name,
                // and only if it comes first in report order, is kept.
                self.collapsed_links += 1;
                if self.names.cmp_parts(e.dir(), name, first).is_lt() {
                    let path = self.path_of(e);
                    self.aliases.insert(e.id, path);
                }
                return Ok(());
            }
        }
        let path = self.path_of(e);
        if aliased {
            self.aliases.insert(e.id, path.clone());
        }
        self.accepted += 1;
        if self.accepted > self.rules.max_files {
            return Err(TooManyFiles);
        }
        let member = Member {
            path,
            id: e.id,
            mtime_ns: time_ns(e.mtime_parts()),
            ctime_ns: time_ns(e.ctime_parts()),
            aliased,
            mount_root: e.is_mount_root(),
        };
        let c = self.cands.insert(Cand { member, node: ROOT });
        self.place(c, ROOT, [e.size, 0], None, became);
        Ok(())
    }

    /// `e`'s path, its name stored in the arena.
    fn path_of(&mut self, e: &FileEntry) -> PathRef {
        PathRef {
            dir: Arc::clone(e.dir()),
            name: self.names.push(e.name().as_encoded_bytes()),
        }
    }

    fn cand(&self, c: u32) -> &Cand {
        self.cands.get(c)
    }

    fn cand_mut(&mut self, c: u32) -> &mut Cand {
        self.cands.get_mut(c)
    }

    fn take(&mut self, c: u32) -> Cand {
        self.cands.take(c)
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

    fn add_single(&mut self, s: Single) -> u32 {
        self.singles.insert(s)
    }

    fn take_single(&mut self, i: u32) -> Single {
        self.singles.take(i)
    }

    fn single(&self, i: u32) -> &Single {
        self.singles.get(i)
    }

    /// Whether `a` and `b` are one inode met by two paths (a file bind
    /// mount and its source: only they get this far as two candidates).
    fn one_file(a: &Member, b: &Member) -> bool {
        (a.mount_root || b.mount_root) && a.id == b.id
    }

    /// Two paths of one inode met at a settled slot: keep the one first in
    /// report order in `kept`.
    fn collapse_into(&mut self, kept: &mut Member, other: Member) {
        self.collapsed_links += 1;
        if self.names.cmp(&other.path, &kept.path).is_lt() {
            *kept = other;
        }
    }

    /// Joins `member` to group `g`, counting a bind-mount alias as
    /// collapsed instead.
    fn join_group(&mut self, g: u32, member: Member) -> bool {
        let joined = self.groups.join(g, member, &self.names);
        if !joined {
            self.collapsed_links += 1;
        }
        joined
    }

    fn size_of(&self, parent: u32) -> u64 {
        self.nodes[parent as usize].size
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
        if steps == ladder(size).len() {
            match digest {
                // Only a full-hash result carries a digest (never at the root).
                Some(d) => self.place_final(c, parent, d, 0),
                // Empty files: nothing to read, all equal.
                None => self.place_empty(c, size, became),
            }
            return;
        }
        let stage_idx = if steps == 0 {
            0
        } else {
            stage_index(Some(ladder(size)[steps - 1]))
        };
        let existing = self.get_slot(parent, key);
        let new_slot = match existing {
            Some(Slot::Waiting(o)) => {
                if steps > 0 {
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
                    self.cand_mut(x).node = n;
                    self.schedule(x, size);
                }
                Slot::Node(n)
            }
            Some(Slot::Node(n)) => {
                self.passed[stage_idx] += 1;
                if steps == 0 {
                    became.push(size);
                }
                self.cand_mut(c).node = n;
                self.schedule(c, size);
                Slot::Node(n)
            }
            // Nothing here yet (settled slots exist only at the last level).
            _ => {
                if steps > 0 {
                    self.settle(1, size);
                }
                self.cand_mut(c).node = parent;
                Slot::Waiting(c)
            }
        };
        if existing != Some(new_slot) {
            self.put_slot(parent, key, new_slot);
        }
    }

    /// An empty file (its size is its whole content).
    fn place_empty(&mut self, c: u32, size: u64, became: &mut Vec<u64>) {
        let key = [size, 0];
        let member = self.take(c).member;
        let digest = self.rules.algo.hasher().finish();
        let slot = match self.get_slot(ROOT, key) {
            Some(Slot::Single(i)) if Self::one_file(&self.single(i).member, &member) => {
                let mut s = self.take_single(i);
                self.collapse_into(&mut s.member, member);
                Slot::Single(self.add_single(s))
            }
            Some(Slot::Single(i)) => {
                let first = self.take_single(i).member;
                self.passed[0] += 2;
                became.extend([size, size]);
                self.settle(2, size);
                Slot::Group(self.groups.create(size, digest, 0, vec![first, member]))
            }
            Some(Slot::Group(g)) => {
                if self.join_group(g, member) {
                    self.passed[0] += 1;
                    became.push(size);
                    self.settle(1, size);
                }
                Slot::Group(g)
            }
            _ => Slot::Single(self.add_single(Single {
                member,
                tail: [0; 16],
            })),
        };
        self.put_slot(ROOT, key, slot);
    }

    /// Candidate `c`, fully hashed to `digest`, at the last level under
    /// `parent`, looking from probe `k` on for the slot of its content.
    fn place_final(&mut self, c: u32, parent: u32, digest: Digest, mut k: u32) {
        let size = self.size_of(parent);
        let full = stage_index(Some(Stage::Full));
        loop {
            let key = probe_key(&digest, k);
            match self.get_slot(parent, key) {
                None => {
                    self.settle(1, size);
                    let member = self.take(c).member;
                    let i = self.add_single(Single {
                        member,
                        tail: tail(&digest),
                    });
                    self.put_slot(parent, key, Slot::Single(i));
                    return;
                }
                Some(Slot::Single(i)) if self.single(i).tail == tail(&digest) => {
                    if Self::one_file(&self.single(i).member, &self.cand(c).member) {
                        self.settle(1, size);
                        let member = self.take(c).member;
                        let mut s = self.take_single(i);
                        self.collapse_into(&mut s.member, member);
                        let j = self.add_single(s);
                        self.put_slot(parent, key, Slot::Single(j));
                        return;
                    }
                    if self.rules.verify {
                        let other = self.single(i).member.id;
                        return self.schedule_verify(c, k, digest, other);
                    }
                    let first = self.take_single(i).member;
                    let member = self.take(c).member;
                    self.passed[full] += 2;
                    self.settle(1, size);
                    let g = self.groups.create(size, digest, k, vec![first, member]);
                    self.put_slot(parent, key, Slot::Group(g));
                    return;
                }
                Some(Slot::Group(g)) if self.groups.get(g).digest == digest => {
                    let members = &self.groups.get(g).members;
                    if self.rules.verify && !members.is_empty() {
                        let other = members[0].id;
                        return self.schedule_verify(c, k, digest, other);
                    }
                    self.settle(1, size);
                    let member = self.take(c).member;
                    if self.join_group(g, member) {
                        self.passed[full] += 1;
                    }
                    return;
                }
                // Another content whose digest shares the key's bits, or
                // bytes `--verify` found to differ: look further.
                _ => k += 1,
            }
        }
    }

    fn schedule_verify(&mut self, c: u32, probe: u32, digest: Digest, other: FileId) {
        let size = self.size_of(self.cand(c).node);
        self.verifying.insert(
            c,
            Pending {
                probe,
                digest,
                other,
            },
        );
        self.schedule(c, size);
    }

    fn schedule(&mut self, c: u32, size: u64) {
        self.seq += 1;
        let heap = if size >= self.rules.large {
            &mut self.ready_large
        } else {
            &mut self.ready_small
        };
        heap.push(Ready {
            size,
            seq: self.seq,
            cand: c,
        });
    }

    /// A stage result: the candidate's key at the stage it was in (with the
    /// whole digest at the last stage).
    pub(crate) fn stage_done(&mut self, c: u32, key: Key, digest: Option<Digest>) {
        let parent = self.cand(c).node;
        self.place(c, parent, key, digest, &mut Vec::new());
    }

    fn settle(&mut self, files: i64, size: u64) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        self.settled.0 += files;
        self.settled.1 = self.settled.1.saturating_add(files.saturating_mul(size));
    }

    /// Candidates at rest so far, and their bytes.
    pub(crate) fn settled(&self) -> (u64, u64) {
        (
            u64::try_from(self.settled.0).unwrap_or(0),
            u64::try_from(self.settled.1).unwrap_or(0),
        )
    }

    fn pending(&mut self, c: u32) -> Pending {
        self.verifying
            .remove(&c)
            .expect("a verification was pending")
    }

    /// `c` proved byte-equal to the file it was compared with.
    pub(crate) fn verified(&mut self, c: u32) {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        let size = self.size_of(parent);
        let key = probe_key(&p.digest, p.probe);
        let full = stage_index(Some(Stage::Full));
        match self.get_slot(parent, key) {
            Some(Slot::Single(i)) if self.single(i).member.id == p.other => {
                let first = self.take_single(i).member;
                let member = self.take(c).member;
                self.passed[full] += 2;
                self.settle(1, size);
                let g = self
                    .groups
                    .create(size, p.digest, p.probe, vec![first, member]);
                self.put_slot(parent, key, Slot::Group(g));
            }
            Some(Slot::Group(g)) if self.groups.get(g).members.iter().any(|m| m.id == p.other) => {
                self.settle(1, size);
                let member = self.take(c).member;
                if self.join_group(g, member) {
                    self.passed[full] += 1;
                }
            }
            // The file it matched left meanwhile: place it afresh.
            _ => self.place_final(c, parent, p.digest, p.probe),
        }
    }

    /// `c` has the digest of the files at its probe but not their bytes:
    /// a hash collision. It goes on to the next probe, a group of its own.
    pub(crate) fn differs(&mut self, c: u32) {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        self.place_final(c, parent, p.digest, p.probe + 1);
    }

    /// The file `c` was to be compared with changed during the run: that
    /// file leaves its slot, and `c` is placed again.
    pub(crate) fn other_changed(&mut self, c: u32) {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        let key = probe_key(&p.digest, p.probe);
        match self.get_slot(parent, key) {
            Some(Slot::Single(i)) if self.single(i).member.id == p.other => {
                // `c` takes the changed file's place.
                let member = self.take(c).member;
                self.settle(1, self.size_of(parent));
                self.singles.replace(
                    i,
                    Single {
                        member,
                        tail: tail(&p.digest),
                    },
                );
            }
            Some(Slot::Group(g)) => {
                self.groups.remove(g, p.other);
                if self.groups.get(g).members.is_empty() {
                    let member = self.take(c).member;
                    self.settle(1, self.size_of(parent));
                    self.join_group(g, member);
                } else {
                    self.place_final(c, parent, p.digest, p.probe);
                }
            }
            _ => self.place_final(c, parent, p.digest, p.probe),
        }
    }

    /// A candidate that could not be read leaves the pipeline.
    pub(crate) fn failed(&mut self, c: u32) {
        self.verifying.remove(&c);
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

    /// Drops every waiting task and its candidate: nothing will read them
    /// now (the run was cancelled).
    pub(crate) fn clear_ready(&mut self) {
        let waiting: Vec<u32> = self
            .ready_small
            .drain()
            .chain(self.ready_large.drain())
            .map(|r| r.cand)
            .collect();
        for c in waiting {
            self.verifying.remove(&c);
            self.take(c);
        }
    }

    /// The next job: one large file (largest first) if `allow_large`,
    /// otherwise up to `max_small` small files, largest first. Large files
    /// get a reader to themselves; small ones share a channel message.
    pub(crate) fn next_job(&mut self, max_small: usize, allow_large: bool) -> Option<Vec<Task>> {
        if allow_large {
            if let Some(r) = self.ready_large.pop() {
                return Some(vec![self.task(r.cand)]);
            }
        }
        let mut tasks = Vec::new();
        while tasks.len() < max_small {
            let Some(r) = self.ready_small.pop() else {
                break;
            };
            tasks.push(self.task(r.cand));
        }
        (!tasks.is_empty()).then_some(tasks)
    }

    fn target(&self, m: &Member, size: u64) -> Target {
        Target {
            path: self.names.path(&m.path),
            base: m.path.dir.base().cloned(),
            expect: Expect {
                size,
                id: m.id,
                mtime_ns: m.mtime_ns,
                ctime_ns: m.ctime_ns,
            },
        }
    }

    /// The member with identity `id` at `c`'s pending probe.
    fn verify_target(&self, c: u32, p: &Pending, size: u64) -> Option<Target> {
        let key = probe_key(&p.digest, p.probe);
        let m = match self.get_slot(self.cand(c).node, key)? {
            Slot::Single(i) => &self.single(i).member,
            Slot::Group(g) => self
                .groups
                .get(g)
                .members
                .iter()
                .find(|m| m.id == p.other)?,
            _ => return None,
        };
        Some(self.target(m, size))
    }

    fn task(&self, c: u32) -> Task {
        let cand = self.cand(c);
        let node = &self.nodes[cand.node as usize];
        let file = self.target(&cand.member, node.size);
        let kind = match self.verifying.get(&c) {
            Some(p) => match self.verify_target(c, p, node.size) {
                Some(t) => TaskKind::Verify(t),
                // Cannot happen (a slot's files leave only through this
                // candidate's own result); re-hashing is always safe.
                None => TaskKind::Stage(Stage::Full),
            },
            None => TaskKind::Stage(ladder(node.size)[node.step as usize]),
        };
        Task {
            cand: c,
            file,
            kind,
        }
    }

    /// Groups to report now (see [`Registry::take_due`]).
    pub(crate) fn take_due(&mut self, force: bool) -> Vec<DuplicateGroupParts> {
        self.groups.take_due(force, &self.names, &self.aliases)
    }

    /// Keeps only what the final report needs (groups, names, aliases);
    /// the maps are freed.
    pub(crate) fn into_store(self) -> GroupStore {
        let algo = self.rules.algo;
        self.groups.into_store(self.names, self.aliases, algo)
    }
}

#[cfg(test)]
mod tests;
