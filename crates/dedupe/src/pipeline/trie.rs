//! Grouping: which files share which keys, as a trie per size (size ->
//! quick key -> statistical key -> full digest). Pure data, no I/O and no
//! scheduling: the coordinator feeds it walk entries and stage results,
//! and each call answers with a [`Placement`], what happened to the file
//! (it waits, goes on to its next stage, settled, formed or joined a
//! group, needs a byte comparison, or left). The coordinator routes that
//! to the scheduler and the statistics.
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
//! a tagged `u32`, a key four `u32`s (a 20-byte map entry; see `slot`).
//!
//! About 600 lines on purpose: every transition of one state machine
//! (place, the last level, verification outcomes, leaving) is here, so a
//! change to one can be checked against all the others in one read.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::groups::{Aliases, DuplicateGroupParts, GroupStore, Member, Registry};
use super::keys::FileStamp;
use super::msg::{Target, Task, TaskKind};
use super::paths::{Names, PathRef};
use super::slab::Slab;
use super::stage::{Ladder, Step};
use crate::entry::{time_ns, FileEntry, FileId};
use crate::hash::{Digest, HashAlgo, Key};

mod placement;
mod singles;
mod slot;
mod verify;
pub(crate) use placement::Placement;
use singles::Singles;
pub(crate) use singles::DEFAULT_IN_MEMORY;
pub(crate) use slot::MAX_FILES;
use slot::SLOT_MAX;
use slot::{pack_key, probe_key, tail, PackedKey, Slot};

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

/// What a settled lone file keeps: itself, and the digest bits beyond the
/// 128 its key holds.
#[derive(Clone)]
struct Single {
    member: Member,
    tail: [u8; 16],
}

/// What a settled slot held, taken out of it.
enum Existing {
    Single(Single),
    Group(u32),
}

struct Node {
    size: u64,
    /// Stages its members have completed.
    step: u8,
    children: HashMap<PackedKey, u32>,
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
    /// Files accepted before the run stops with [`TooManyFiles`]
    /// ([`MAX_FILES`]; smaller in tests).
    pub max_files: u64,
}

/// More files than one run can index.
#[derive(Debug)]
pub(crate) struct TooManyFiles;

pub(crate) struct Trie {
    rules: Rules,
    ladder: Ladder,
    names: Names,
    cands: Slab<Cand>,
    /// Byte comparisons candidates wait for (`--verify`), with what each
    /// was placed under: kept aside, so candidates without one pay nothing.
    verifying: HashMap<u32, Pending>,
    sizes: HashMap<u64, u32>,
    singles: Singles,
    nodes: Vec<Node>,
    groups: Registry,
    /// Inodes that may have more than one path, with the first path in
    /// report order: each is read once and shown by that path.
    aliases: Aliases,
    accepted: u64,
}

impl Trie {
    pub(crate) fn new(rules: Rules) -> Trie {
        Trie {
            rules,
            ladder: Ladder::new(rules.algo),
            names: Names::default(),
            cands: Slab::default(),
            verifying: HashMap::default(),
            sizes: HashMap::default(),
            singles: Singles::new(),
            nodes: Vec::new(),
            groups: Registry::default(),
            aliases: Aliases::default(),
            accepted: 0,
        }
    }

    /// A file from the walk.
    pub(crate) fn add(&mut self, e: &FileEntry) -> Result<Placement, TooManyFiles> {
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
                if self.names.cmp_parts(e.dir(), name, first).is_lt() {
                    let path = self.path_of(e);
                    self.aliases.insert(e.id, path);
                }
                return Ok(Placement::Collapsed);
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
        Ok(self.place(c, ROOT, [e.size, 0], None))
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

    /// Settled files beyond `in_memory` are kept in a temporary file in
    /// `dir` (see [`singles`]).
    #[must_use]
    pub(crate) fn spill_to(mut self, dir: std::path::PathBuf, in_memory: u32) -> Trie {
        self.singles.spill_to(dir, in_memory);
        self
    }

    /// Settled files whose record could not be read back from the
    /// temporary file: they left the run, an I/O error each.
    pub(crate) fn lost(&self) -> u64 {
        self.singles.lost()
    }

    fn add_single(&mut self, s: Single) -> u32 {
        self.singles.insert(s)
    }

    /// Settled file `i`, or `None` if its record was lost (see
    /// [`singles`]). A record read back is used only if its name is one
    /// the arena holds, so no damage can index past it.
    fn single(&self, i: u32) -> Option<Single> {
        self.singles
            .get(i)
            .filter(|s| self.names.holds(s.member.path.name))
    }

    /// Takes settled file `i` out (`None`: lost, and counted).
    fn take_single(&mut self, i: u32) -> Option<Single> {
        let s = self.single(i);
        if s.is_some() {
            self.singles.discard(i);
        } else {
            self.singles.discard_lost(i);
        }
        s
    }

    /// Whether `a` and `b` are one inode met by two paths (a file bind
    /// mount and its source: only they get this far as two candidates).
    fn one_file(a: &Member, b: &Member) -> bool {
        (a.mount_root || b.mount_root) && a.id == b.id
    }

    /// Two paths of one inode met at a settled slot: keep the one first in
    /// report order in `kept`.
    fn collapse_into(&self, kept: &mut Member, other: Member) {
        if self.names.cmp(&other.path, &kept.path).is_lt() {
            *kept = other;
        }
    }

    /// Joins `member` to group `g` (a bind-mount alias of a member
    /// collapses into it instead).
    fn join_group(&mut self, g: u32, member: Member, step: Step, size: u64) -> Placement {
        if self.groups.join(g, member, &self.names) {
            Placement::Joined { step, size }
        } else {
            Placement::Collapsed
        }
    }

    fn size_of(&self, parent: u32) -> u64 {
        self.nodes[parent as usize].size
    }

    /// The size of candidate `c`'s file.
    /// The device candidate `c` is on.
    pub(crate) fn cand_dev(&self, c: u32) -> u64 {
        self.cand(c).member.id.dev
    }

    pub(crate) fn cand_size(&self, c: u32) -> u64 {
        match self.cand(c).node {
            ROOT => 0,
            n => self.size_of(n),
        }
    }

    /// Puts candidate `c`, whose key under `parent` is `key`, in the trie.
    fn place(&mut self, c: u32, parent: u32, key: Key, digest: Option<Digest>) -> Placement {
        let (size, steps) = if parent == ROOT {
            (key[0], 0usize)
        } else {
            let n = &self.nodes[parent as usize];
            (n.size, n.step as usize + 1)
        };
        if steps == self.ladder.steps(size) {
            return match digest {
                // Only a full-hash result carries a digest (never at the root).
                Some(d) => self.place_final(c, parent, d, 0),
                // Empty files: nothing to read, all equal.
                None => self.place_empty(c, size),
            };
        }
        let step = match steps {
            0 => Step::Size,
            n => Step::Stage(self.ladder.step(size, n - 1).stage),
        };
        let existing = self.get_slot(parent, key);
        let (slot, placement) = match existing {
            Some(Slot::Waiting(o)) => {
                let n = self.nodes.len() as u32;
                self.nodes.push(Node {
                    size,
                    step: steps as u8,
                    children: HashMap::default(),
                });
                for x in [o, c] {
                    self.cand_mut(x).node = n;
                }
                let woke = Some(o);
                let p = Placement::Advance {
                    cand: c,
                    woke,
                    step,
                    size,
                };
                (Slot::Node(n), p)
            }
            Some(Slot::Node(n)) => {
                self.cand_mut(c).node = n;
                let p = Placement::Advance {
                    cand: c,
                    woke: None,
                    step,
                    size,
                };
                (Slot::Node(n), p)
            }
            // Nothing here yet (settled slots exist only at the last level).
            _ => {
                self.cand_mut(c).node = parent;
                (Slot::Waiting(c), Placement::Waiting)
            }
        };
        if existing != Some(slot) {
            self.put_slot(parent, key, slot);
        }
        placement
    }

    /// An empty file (its size is its whole content).
    fn place_empty(&mut self, c: u32, size: u64) -> Placement {
        let key = [size, 0];
        let member = self.take(c).member;
        let digest = self.rules.algo.hasher().finish();
        let existing = match self.get_slot(ROOT, key) {
            // A record lost is a file gone: this one takes its place.
            Some(Slot::Single(i)) => self.take_single(i).map(Existing::Single),
            Some(Slot::Group(g)) => Some(Existing::Group(g)),
            _ => None,
        };
        let (slot, placement) = match existing {
            Some(Existing::Single(mut s)) if Self::one_file(&s.member, &member) => {
                self.collapse_into(&mut s.member, member);
                (Slot::Single(self.add_single(s)), Placement::Collapsed)
            }
            Some(Existing::Single(s)) => {
                let g = self.groups.create(size, digest, 0, vec![s.member, member]);
                let step = Step::Size;
                (Slot::Group(g), Placement::Grouped { step, size })
            }
            Some(Existing::Group(g)) => {
                (Slot::Group(g), self.join_group(g, member, Step::Size, size))
            }
            None => {
                let single = Single {
                    member,
                    tail: [0; 16],
                };
                (Slot::Single(self.add_single(single)), Placement::Waiting)
            }
        };
        self.put_slot(ROOT, key, slot);
        placement
    }

    /// Candidate `c`, fully hashed to `digest`, at the last level under
    /// `parent`, looking from probe `k` on for the slot of its content.
    fn place_final(&mut self, c: u32, parent: u32, digest: Digest, mut k: u32) -> Placement {
        let size = self.size_of(parent);
        let full = Step::Stage(self.ladder.full().stage);
        loop {
            let key = probe_key(&digest, k);
            let single = match self.get_slot(parent, key) {
                Some(Slot::Single(i)) => match self.single(i) {
                    Some(s) => Some((i, s)),
                    // Its record was lost: the file left, and `c` takes
                    // its place.
                    None => {
                        self.singles.discard_lost(i);
                        None
                    }
                },
                Some(Slot::Group(g)) => {
                    if self.groups.get(g).digest == digest {
                        let members = &self.groups.get(g).members;
                        if self.rules.verify && !members.is_empty() {
                            let other = members[0].id;
                            return self.verify(c, k, digest, other);
                        }
                        let member = self.take(c).member;
                        return self.join_group(g, member, full, size);
                    }
                    k += 1;
                    continue;
                }
                Some(Slot::Waiting(_) | Slot::Node(_)) => {
                    k += 1;
                    continue;
                }
                None => None,
            };
            match single {
                None => {
                    let member = self.take(c).member;
                    let i = self.add_single(Single {
                        member,
                        tail: tail(&digest),
                    });
                    self.put_slot(parent, key, Slot::Single(i));
                    return Placement::Settled;
                }
                Some((i, mut s)) if s.tail == tail(&digest) => {
                    if Self::one_file(&s.member, &self.cand(c).member) {
                        let member = self.take(c).member;
                        self.collapse_into(&mut s.member, member);
                        self.singles.replace(i, s);
                        return Placement::Collapsed;
                    }
                    if self.rules.verify {
                        return self.verify(c, k, digest, s.member.id);
                    }
                    self.singles.discard(i);
                    let member = self.take(c).member;
                    let g = self.groups.create(size, digest, k, vec![s.member, member]);
                    self.put_slot(parent, key, Slot::Group(g));
                    return Placement::Grouped { step: full, size };
                }
                // Another content whose digest shares the key's bits, or
                // bytes `--verify` found to differ: look further.
                Some(_) => k += 1,
            }
        }
    }

    /// A stage result: the candidate's key at the stage it was in (with the
    /// whole digest at the last stage).
    pub(crate) fn stage_done(&mut self, c: u32, key: Key, digest: Option<Digest>) -> Placement {
        // A comparison whose other file left before it was sent became a
        // full hash (see `task`): that comparison is over. Left behind, it
        // would attach to the next candidate given this slab index.
        self.verifying.remove(&c);
        let parent = self.cand(c).node;
        self.place(c, parent, key, digest)
    }

    /// A candidate that could not be read, or will not be (the run was
    /// cancelled), leaves the pipeline.
    pub(crate) fn failed(&mut self, c: u32) -> Placement {
        self.verifying.remove(&c);
        self.take(c);
        Placement::Left
    }

    fn target(&self, m: &Member, size: u64) -> Target {
        Target {
            path: self.names.path(&m.path),
            base: m.path.dir.base().cloned(),
            expect: FileStamp {
                size,
                id: m.id,
                mtime_ns: m.mtime_ns,
                ctime_ns: m.ctime_ns,
            },
        }
    }

    /// Whether `c`'s next read is a byte comparison (`--verify`).
    pub(crate) fn verifies(&self, c: u32) -> bool {
        self.verifying.contains_key(&c)
    }

    /// The read candidate `c` waits for.
    pub(crate) fn task(&self, c: u32) -> Task {
        let cand = self.cand(c);
        let node = &self.nodes[cand.node as usize];
        let file = self.target(&cand.member, node.size);
        let kind = match self.verifying.get(&c) {
            Some(p) => match self.verify_target(c, p, node.size) {
                Some(t) => TaskKind::Verify(t),
                // The file it was to be compared with left meanwhile (another
                // comparison found it changed): hash it again and place it
                // afresh, which is always safe.
                None => TaskKind::Stage(self.ladder.full()),
            },
            None => TaskKind::Stage(self.ladder.step(node.size, node.step as usize)),
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

    /// Marks the groups due as reported without building their reports;
    /// how many there were (see [`Registry::skip_due`]).
    pub(crate) fn skip_due(&mut self, force: bool) -> usize {
        self.groups.skip_due(force)
    }

    /// Keeps only what the final report needs (groups, names, aliases);
    /// the maps are freed.
    pub(crate) fn into_store(self) -> GroupStore {
        let Trie {
            rules,
            names,
            groups,
            aliases,
            cands,
            singles,
            nodes,
            sizes,
            verifying,
            ..
        } = self;
        // Freed before the report's groups are gathered, not after.
        drop((cands, singles, nodes, sizes, verifying));
        groups.into_store(names, aliases, rules.algo)
    }
}

#[cfg(test)]
mod singles_tests;
#[cfg(test)]
mod tests;
