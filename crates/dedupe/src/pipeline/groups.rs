//! The group registry: groups as they form and grow, when each is reported
//! again, their ids, and the compact store the final report reads.
//!
//! * Ids come from content (size, digest and, after a hash collision
//!   proven by `--verify`, which of the colliding groups), so an unchanged
//!   tree gets the same ids in every run, whatever the thread count. They
//!   are kept below 2^53 so JSON readers that use doubles (`jq`, browsers)
//!   read them exactly.
//! * A group is reported when it forms, and again only once it has grown by
//!   half since it was last reported, so a group of N files costs at most
//!   about 3N paths of JSON Lines however slowly the walk finds them; the
//!   end of the run reports every group whose last report is out of date.
//! * Files are listed in report order (root order, then path bytes; see
//!   [`Names::cmp`]); each inode is named by the first of its paths in that
//!   order.

use std::collections::HashMap;

use rustc_hash::{FxBuildHasher, FxHashSet};

use super::keys::FileStamp;
use super::paths::{Names, PathRef};
use super::slab::Slab;
use crate::entry::FileId;
use crate::group::{DuplicateGroup, GroupFile};
use crate::hash::{Digest, HashAlgo};

/// Largest id (exclusive): exact in an IEEE double.
const ID_LIMIT: u64 = 1 << 53;

/// A file in a group, with what identifies it on disk.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) path: PathRef,
    pub(crate) id: FileId,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
    /// Its inode may have other paths; the one to show is in the aliases.
    pub(crate) aliased: bool,
    /// It is a file bind mount: its source may be another member, found
    /// only when they meet (the source itself looks like any other file).
    pub(crate) mount_root: bool,
}

pub(crate) struct Group {
    pub(crate) id: u64,
    pub(crate) size: u64,
    pub(crate) digest: Digest,
    pub(crate) members: Vec<Member>,
    /// Members when last reported (0: never).
    reported: usize,
    dirty: bool,
}

/// Where an inode's paths are recorded when it has more than one: the
/// first in report order is the one shown.
pub(crate) type Aliases = HashMap<FileId, PathRef, FxBuildHasher>;

#[derive(Default)]
pub(crate) struct Registry {
    /// In fixed chunks: a doubling `Vec` of groups was a quarter of the
    /// peak on a million small files (half of it spare capacity).
    groups: Slab<Group>,
    dirty: Vec<u32>,
    ids: FxHashSet<u64>,
}

impl Registry {
    /// A new group of two (or more), to be reported. `probe` tells apart
    /// groups whose files share a digest but not their bytes.
    pub(crate) fn create(
        &mut self,
        size: u64,
        digest: Digest,
        probe: u32,
        members: Vec<Member>,
    ) -> u32 {
        let mut id = content_id(size, &digest, probe);
        // Two different groups with one id would merge in a reader's eyes;
        // at 2^53 this needs millions of groups, and then the next free id
        // is taken (the only case where ids depend on the order of work).
        while !self.ids.insert(id) {
            id = (id + 1) % ID_LIMIT;
        }
        let g = self.groups.insert(Group {
            id,
            size,
            digest,
            members,
            reported: 0,
            dirty: true,
        });
        self.dirty.push(g);
        g
    }

    pub(crate) fn get(&self, g: u32) -> &Group {
        self.groups.get(g)
    }

    /// Adds `m` to group `g`, unless it is another path to a member's
    /// inode (a file bind mount); then the first of the two paths in report
    /// order stays, and false is returned.
    pub(crate) fn join(&mut self, g: u32, m: Member, names: &Names) -> bool {
        let grp = self.groups.get_mut(g);
        if m.mount_root || grp.members.iter().any(|x| x.mount_root) {
            if let Some(x) = grp.members.iter_mut().find(|x| x.id == m.id) {
                if names.cmp(&m.path, &x.path).is_lt() {
                    *x = m;
                }
                return false;
            }
        }
        grp.members.push(m);
        self.mark(g);
        true
    }

    /// Removes the member with identity `id` (it changed during the run).
    pub(crate) fn remove(&mut self, g: u32, id: FileId) -> Option<Member> {
        let grp = self.groups.get_mut(g);
        let at = grp.members.iter().position(|m| m.id == id)?;
        let m = grp.members.remove(at);
        self.mark(g);
        Some(m)
    }

    fn mark(&mut self, g: u32) {
        let grp = self.groups.get_mut(g);
        if !grp.dirty {
            grp.dirty = true;
            self.dirty.push(g);
        }
    }

    /// Groups to report now: new ones, ones that grew by half since their
    /// last report, and with `force` every one whose report is out of date.
    pub(crate) fn take_due(
        &mut self,
        force: bool,
        names: &Names,
        aliases: &Aliases,
    ) -> Vec<DuplicateGroupParts> {
        self.due(force)
            .into_iter()
            .map(|g| {
                let grp = self.groups.get(g);
                DuplicateGroupParts {
                    id: grp.id,
                    size: grp.size,
                    digest: grp.digest,
                    files: sorted_files(grp.size, &grp.members, names, aliases),
                }
            })
            .collect()
    }

    /// Marks the groups due as reported, without building their reports
    /// (nobody listens: the final report is built from the store), and
    /// says how many there were.
    pub(crate) fn skip_due(&mut self, force: bool) -> usize {
        self.due(force).len()
    }

    /// The groups due (see [`Registry::take_due`]), marked as reported.
    fn due(&mut self, force: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for g in std::mem::take(&mut self.dirty) {
            let grp = self.groups.get_mut(g);
            let n = grp.members.len();
            let due = force || grp.reported == 0 || 2 * n >= 3 * grp.reported;
            if !due || (n < 2 && grp.reported == 0) {
                if due {
                    grp.dirty = false;
                } else {
                    keep.push(g);
                }
                continue;
            }
            grp.reported = n.max(1);
            grp.dirty = false;
            out.push(g);
        }
        self.dirty = keep;
        out
    }

    /// The groups of a finished run (those still of two or more files),
    /// in report order: largest files first, then by their first path.
    pub(crate) fn into_store(self, names: Names, aliases: Aliases, algo: HashAlgo) -> GroupStore {
        // Sized first, so the kept groups are not copied while a doubling
        // vector grows.
        let n = self
            .groups
            .values()
            .filter(|g| g.members.len() >= 2)
            .count();
        let mut groups = Vec::with_capacity(n);
        groups.extend(self.groups.into_values().filter(|g| g.members.len() >= 2));
        for g in &mut groups {
            sort_members(&mut g.members, &names, &aliases);
        }
        groups.sort_by(|a, b| {
            b.size.cmp(&a.size).then_with(|| {
                names.cmp(
                    shown(&a.members[0], &aliases),
                    shown(&b.members[0], &aliases),
                )
            })
        });
        GroupStore {
            names,
            aliases,
            groups,
            algo,
        }
    }
}

/// A group's fields as the coordinator reports them.
pub(crate) struct DuplicateGroupParts {
    pub(crate) id: u64,
    pub(crate) size: u64,
    pub(crate) digest: Digest,
    pub(crate) files: Vec<GroupFile>,
}

/// The path to show for a member: the first of its inode's paths.
fn shown<'a>(m: &'a Member, aliases: &'a Aliases) -> &'a PathRef {
    if m.aliased {
        aliases.get(&m.id).unwrap_or(&m.path)
    } else {
        &m.path
    }
}

fn sort_members(members: &mut [Member], names: &Names, aliases: &Aliases) {
    members.sort_by(|a, b| names.cmp(shown(a, aliases), shown(b, aliases)));
}

fn sorted_files(size: u64, members: &[Member], names: &Names, aliases: &Aliases) -> Vec<GroupFile> {
    let mut refs: Vec<(&PathRef, &Member)> =
        members.iter().map(|m| (shown(m, aliases), m)).collect();
    refs.sort_by(|a, b| names.cmp(a.0, b.0));
    refs.into_iter()
        .map(|(p, m)| group_file(names.path(p), size, m))
        .collect()
}

fn group_file(path: std::path::PathBuf, size: u64, m: &Member) -> GroupFile {
    GroupFile {
        path,
        stamp: FileStamp {
            size,
            id: m.id,
            mtime_ns: m.mtime_ns,
            ctime_ns: m.ctime_ns,
        },
    }
}

/// An id from a group's content: the same tree gives the same ids.
fn content_id(size: u64, digest: &Digest, probe: u32) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(&size.to_le_bytes());
    h.update(digest.as_bytes());
    h.update(&probe.to_le_bytes());
    // Never 0, so an id is always a positive number.
    (h.digest() % (ID_LIMIT - 1)) + 1
}

/// The order of a final report's groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupOrder {
    /// Most bytes to reclaim first (size x copies beyond the first).
    #[default]
    Reclaimable,
    /// Largest files first (report order).
    Size,
    /// Most copies first.
    Count,
    /// By first path (root order, then path bytes).
    Path,
}

/// The groups of a finished run, compact: paths are built one group at a
/// time as the report is written.
pub(crate) struct GroupStore {
    names: Names,
    aliases: Aliases,
    groups: Vec<Group>,
    algo: HashAlgo,
}

impl GroupStore {
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    pub(crate) fn redundant_files(&self) -> u64 {
        self.groups.iter().map(|g| g.members.len() as u64 - 1).sum()
    }

    pub(crate) fn redundant_bytes(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| g.size * (g.members.len() as u64 - 1))
            .sum()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = DuplicateGroup> + '_ {
        self.groups.iter().map(move |g| self.group(g))
    }

    /// The groups in `order`; ties keep report order. Only indices are
    /// sorted: paths are still built one group at a time.
    pub(crate) fn iter_by(&self, order: GroupOrder) -> impl Iterator<Item = DuplicateGroup> + '_ {
        let mut idx: Vec<u32> = (0..self.groups.len() as u32).collect();
        let g = |i: &u32| &self.groups[*i as usize];
        match order {
            GroupOrder::Size => {}
            GroupOrder::Reclaimable => idx.sort_by_key(|i| {
                let g = g(i);
                std::cmp::Reverse(u128::from(g.size) * (g.members.len() as u128 - 1))
            }),
            GroupOrder::Count => idx.sort_by_key(|i| std::cmp::Reverse(g(i).members.len())),
            GroupOrder::Path => idx.sort_by(|a, b| {
                let first = |i: &u32| shown(&g(i).members[0], &self.aliases);
                self.names.cmp(first(a), first(b))
            }),
        }
        idx.into_iter()
            .map(move |i| self.group(&self.groups[i as usize]))
    }

    fn group(&self, g: &Group) -> DuplicateGroup {
        DuplicateGroup {
            id: g.id,
            size: g.size,
            hash: g.digest,
            algo: self.algo,
            files: g
                .members
                .iter()
                .map(|m| group_file(self.names.path(shown(m, &self.aliases)), g.size, m))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::DirPath;
    use std::sync::Arc;

    fn digest(b: u8) -> Digest {
        let mut h = HashAlgo::Blake3.hasher();
        h.update(&[b]);
        h.finish()
    }

    fn member(
        names: &mut Names,
        dir: &Arc<DirPath>,
        name: &str,
        ino: u64,
        mount_root: bool,
    ) -> Member {
        Member {
            path: PathRef {
                dir: Arc::clone(dir),
                name: names.push(name.as_bytes()),
            },
            id: FileId { dev: 1, ino },
            mtime_ns: 0,
            ctime_ns: 0,
            aliased: false,
            mount_root,
        }
    }

    #[test]
    fn a_bind_mounted_file_meeting_its_source_s_group_is_one_member() {
        let mut names = Names::default();
        let dir = DirPath::with_root("d", 1, 0, None);
        let src = member(&mut names, &dir, "src", 1, false);
        let copy = member(&mut names, &dir, "copy", 2, false);
        let alias = member(&mut names, &dir, "alias", 1, true);
        let other = member(&mut names, &dir, "other", 3, false);
        let mut r = Registry::default();
        let g = r.create(10, digest(1), 0, vec![src, copy]);
        assert!(!r.join(g, alias, &names), "the alias is not a new member");
        assert!(r.join(g, other, &names));
        let shown: Vec<&[u8]> = r
            .get(g)
            .members
            .iter()
            .map(|m| names.get(m.path.name))
            .collect();
        assert_eq!(
            shown,
            [&b"alias"[..], b"copy", b"other"],
            "the first path in report order stays"
        );
        // The other way round: the source meets a group holding its alias.
        let a = member(&mut names, &dir, "a-alias", 4, true);
        let c = member(&mut names, &dir, "c", 5, false);
        let z = member(&mut names, &dir, "z-src", 4, false);
        let g = r.create(11, digest(2), 0, vec![a, c]);
        assert!(!r.join(g, z, &names));
        assert_eq!(r.get(g).members.len(), 2);
    }

    #[test]
    fn two_groups_never_share_an_id() {
        let mut r = Registry::default();
        let ids: Vec<u64> = (0..3)
            .map(|_| {
                let g = r.create(10, digest(1), 0, Vec::new());
                r.get(g).id
            })
            .collect();
        // One content, three groups (as after proven collisions would not
        // give, but the fallback must hold): the next free ids, in range.
        assert_eq!(
            ids,
            [ids[0], (ids[0] + 1) % ID_LIMIT, (ids[0] + 2) % ID_LIMIT]
        );
        assert!(ids.iter().all(|&id| id < ID_LIMIT));
        assert_eq!(r.get(2).id, ids[2], "groups are numbered in creation order");
    }

    #[test]
    fn ids_come_from_content_and_regrowth_is_reported_by_half() {
        assert_eq!(content_id(5, &digest(1), 0), content_id(5, &digest(1), 0));
        assert_ne!(content_id(5, &digest(1), 0), content_id(5, &digest(1), 1));
        assert_ne!(content_id(5, &digest(1), 0), content_id(6, &digest(1), 0));
        assert!(content_id(5, &digest(1), 0) < ID_LIMIT);

        let mut names = Names::default();
        let dir = DirPath::with_root("d", 1, 0, None);
        let mut member = |n: u64| Member {
            path: PathRef {
                dir: dir.clone(),
                name: names.push(format!("f{n:03}").as_bytes()),
            },
            id: FileId { dev: 1, ino: n },
            mtime_ns: 0,
            ctime_ns: 0,
            aliased: false,
            mount_root: false,
        };
        let first = vec![member(2), member(1)];
        let more: Vec<Member> = (3..=40).map(&mut member).collect();
        let mut r = Registry::default();
        let g = r.create(10, digest(1), 0, first);
        let aliases = Aliases::default();
        let out = r.take_due(false, &names, &aliases);
        assert_eq!(out.len(), 1);
        let paths: Vec<&std::path::Path> = out[0].files.iter().map(|f| &*f.path).collect();
        assert_eq!(paths, ["d/f001", "d/f002"].map(std::path::Path::new));
        assert_eq!(
            out[0].files[1].stamp.id.ino, 2,
            "identity travels with the path"
        );
        assert_eq!(out[0].files[1].stamp.size, 10);
        let mut reported = vec![2];
        for m in more {
            r.join(g, m, &names);
            if let Some(o) = r.take_due(false, &names, &aliases).pop() {
                reported.push(o.files.len());
            }
        }
        // Each report at least half again as large as the one before.
        assert_eq!(reported, [2, 3, 5, 8, 12, 18, 27]);
        assert!(r.take_due(false, &names, &aliases).is_empty());
        assert_eq!(r.take_due(true, &names, &aliases)[0].files.len(), 40);
    }
}
