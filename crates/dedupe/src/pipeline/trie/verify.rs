//! `--verify`: a candidate whose digest a settled file or a group has
//! too waits for a byte comparison with one of those files, and is placed
//! by its result.

use super::{probe_key, tail, Pending, Placement, Single, Slot, Step, Target, Trie};
use crate::entry::FileId;
use crate::hash::Digest;

impl Trie {
    /// `c` is to be compared with `other`, a file at probe `probe`.
    pub(super) fn verify(
        &mut self,
        c: u32,
        probe: u32,
        digest: Digest,
        other: FileId,
    ) -> Placement {
        let size = self.size_of(self.cand(c).node);
        self.verifying.insert(
            c,
            Pending {
                probe,
                digest,
                other,
            },
        );
        Placement::Verify { cand: c, size }
    }

    fn pending(&mut self, c: u32) -> Pending {
        self.verifying
            .remove(&c)
            .expect("a verification was pending")
    }

    /// `c` proved byte-equal to the file it was compared with.
    pub(crate) fn verified(&mut self, c: u32) -> Placement {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        let size = self.size_of(parent);
        let key = probe_key(&p.digest, p.probe);
        let full = Step::Stage(self.ladder.full().stage);
        match self.get_slot(parent, key) {
            Some(Slot::Single(i)) => match self.single(i) {
                Some(s) if s.member.id == p.other => {
                    self.singles.discard(i);
                    let member = self.take(c).member;
                    let g = self
                        .groups
                        .create(size, p.digest, p.probe, vec![s.member, member]);
                    self.put_slot(parent, key, Slot::Group(g));
                    Placement::Grouped { step: full, size }
                }
                // Another file there now, or the record was lost (then
                // `place_final` frees it and `c` takes the slot).
                _ => self.place_final(c, parent, p.digest, p.probe),
            },
            Some(Slot::Group(g)) if self.groups.get(g).members.iter().any(|m| m.id == p.other) => {
                let member = self.take(c).member;
                self.join_group(g, member, full, size)
            }
            // The file it matched left meanwhile: place it afresh.
            _ => self.place_final(c, parent, p.digest, p.probe),
        }
    }

    /// `c` has the digest of the files at its probe but not their bytes:
    /// a hash collision. It goes on to the next probe, a group of its own.
    pub(crate) fn differs(&mut self, c: u32) -> Placement {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        self.place_final(c, parent, p.digest, p.probe + 1)
    }

    /// The file `c` was to be compared with changed during the run: that
    /// file leaves its slot, and `c` is placed again.
    pub(crate) fn other_changed(&mut self, c: u32) -> Placement {
        let p = self.pending(c);
        let parent = self.cand(c).node;
        let key = probe_key(&p.digest, p.probe);
        match self.get_slot(parent, key) {
            Some(Slot::Single(i)) if self.single(i).is_some_and(|s| s.member.id == p.other) => {
                // `c` takes the changed file's place.
                let member = self.take(c).member;
                self.singles.replace(
                    i,
                    Single {
                        member,
                        tail: tail(&p.digest),
                    },
                );
                Placement::Settled
            }
            Some(Slot::Group(g)) => {
                self.groups.remove(g, p.other);
                if self.groups.get(g).members.is_empty() {
                    // `c` takes the place of the group's last member.
                    let member = self.take(c).member;
                    self.groups.join(g, member, &self.names);
                    Placement::Settled
                } else {
                    self.place_final(c, parent, p.digest, p.probe)
                }
            }
            _ => self.place_final(c, parent, p.digest, p.probe),
        }
    }

    /// The member with identity `id` at `c`'s pending probe.
    pub(super) fn verify_target(&self, c: u32, p: &Pending, size: u64) -> Option<Target> {
        let key = probe_key(&p.digest, p.probe);
        match self.get_slot(self.cand(c).node, key)? {
            Slot::Single(i) => Some(self.target(&self.single(i)?.member, size)),
            Slot::Group(g) => {
                let m = self
                    .groups
                    .get(g)
                    .members
                    .iter()
                    .find(|m| m.id == p.other)?;
                Some(self.target(m, size))
            }
            _ => None,
        }
    }
}
