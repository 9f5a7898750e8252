//! Settled files (fully hashed, alone under their digest so far), kept in
//! memory up to a count and in an unlinked temporary file beyond it.
//!
//! Why: on a million small files two thirds of them settle alone, and at
//! 72 bytes each they were a third of the run's peak memory. A settled
//! file is looked at again only when a file with the same 128-bit key
//! comes (a duplicate, or a hash collision), so its record can wait on
//! disk, where the kernel keeps it in the page cache while memory allows
//! and writes it out when it does not. The trie keeps what it searches by
//! (the key, in its maps) in memory.
//!
//! Nothing here may turn into a wrong answer: a record that cannot be
//! written stays in memory; one that cannot be read back is reported lost
//! (the caller drops the file from the run and counts an I/O error), never
//! guessed.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::Single;
use crate::entry::{DirPath, FileId};
use crate::pipeline::groups::Member;
use crate::pipeline::paths::{NameRef, PathRef};
use crate::pipeline::slab::Slab;

/// Indices at or above this are records in the file (index - base); below,
/// slots in memory. Both stay below the packed slot's limit: a run holds
/// fewer than `MAX_FILES` (2^28) settled files.
const FILE_BASE: u32 = 1 << 29;
const _: () = assert!(FILE_BASE as u64 + super::MAX_FILES <= super::SLOT_MAX as u64);

/// Bytes per record: directory index 4, name 8, device 8, inode 8, two
/// times 16, flags 1, digest tail 16 (61), and a 24-bit check of those,
/// the record's index and its generation, so a record read back from a
/// hole, a short file, another index or an earlier occupant of its index
/// is found lost instead of used.
const REC: usize = 64;
const BODY: usize = 61;
/// Records gathered before one write: 64 KiB.
const BUF_RECS: usize = 1024;

/// Settled files kept in memory before the file is used, by default: a
/// run this small never creates one.
pub(crate) const DEFAULT_IN_MEMORY: u32 = 1 << 13;

pub(super) struct Singles {
    mem: Slab<Single>,
    mem_live: u32,
    in_memory: u32,
    /// Where the file goes; `None`: everything stays in memory.
    dir: Option<PathBuf>,
    spill: Option<Spill>,
    /// The file could not be created or written: memory from then on.
    failed: bool,
    lost: u64,
}

struct Spill {
    file: File,
    /// Records `[0, flushed)` are in the file, the next ones in `buf`.
    flushed: u32,
    buf: Vec<u8>,
    free: Vec<u32>,
    /// Each record's generation, one more every time its index is written
    /// with another file, and part of its check: a read that returns an
    /// earlier occupant's bytes (a lost write) fails the check.
    gens: Vec<u8>,
    /// Records whose rewrite failed, kept here instead.
    patched: HashMap<u32, [u8; REC], FxBuildHasher>,
    /// Directories by index: a record holds an index, and this holds the
    /// directory alive.
    dirs: Vec<Arc<DirPath>>,
    dir_ids: HashMap<usize, u32, FxBuildHasher>,
}

impl Singles {
    /// All in memory.
    pub(super) fn new() -> Singles {
        Singles {
            mem: Slab::default(),
            mem_live: 0,
            in_memory: u32::MAX,
            dir: None,
            spill: None,
            failed: false,
            lost: 0,
        }
    }

    /// Beyond `in_memory` live records, into a temporary file in `dir`.
    pub(super) fn spill_to(&mut self, dir: PathBuf, in_memory: u32) {
        self.dir = Some(dir);
        self.in_memory = in_memory;
    }

    /// Records that could not be read back (their files left the run).
    pub(super) fn lost(&self) -> u64 {
        self.lost
    }

    /// Records in the file now (for tests).
    #[cfg(test)]
    pub(super) fn spilled(&self) -> usize {
        self.spill
            .as_ref()
            .map_or(0, |s| s.flushed as usize + s.buf.len() / REC - s.free.len())
    }

    /// Empties the file, so records written to it can no longer be read
    /// back (a failing disk, for tests).
    #[cfg(test)]
    pub(super) fn break_file(&self) {
        if let Some(s) = &self.spill {
            s.file.set_len(0).expect("truncate the temporary file");
        }
    }

    /// The file's bytes now (for tests).
    #[cfg(test)]
    pub(super) fn file_bytes(&self) -> Vec<u8> {
        use std::io::{Read, Seek};
        let mut f = &self.spill.as_ref().expect("a file").file;
        let mut v = Vec::new();
        f.rewind().expect("rewind");
        f.read_to_end(&mut v).expect("read the temporary file");
        v
    }

    /// Makes every later write to the file fail (it is reopened read-only
    /// through `/proc`), as a full disk would (for tests).
    #[cfg(test)]
    pub(super) fn fail_writes(&mut self) {
        use std::os::fd::AsRawFd;
        let spill = self.spill.as_mut().expect("a file");
        let path = format!("/proc/self/fd/{}", spill.file.as_raw_fd());
        spill.file = File::open(path).expect("reopen read-only");
    }

    /// Puts `bytes` back as the file's start, as writes lost by the
    /// disk would (for tests).
    #[cfg(test)]
    pub(super) fn restore_file(&self, bytes: &[u8]) {
        let f = &self.spill.as_ref().expect("a file").file;
        f.write_all_at(bytes, 0)
            .expect("rewrite the temporary file");
    }

    pub(super) fn insert(&mut self, s: Single) -> u32 {
        if self.mem_live >= self.in_memory && !self.failed {
            if self.spill.is_none() {
                self.spill = self.dir.as_deref().and_then(Spill::create);
            }
            match self.spill.as_mut().and_then(|spill| spill.insert(&s)) {
                Some(i) => return FILE_BASE + i,
                None => self.failed = true,
            }
        }
        self.mem_live += 1;
        self.mem.insert(s)
    }

    /// Record `i`, or `None` if it cannot be read back: the caller frees
    /// it with [`Singles::discard_lost`] and puts something else in its
    /// slot.
    pub(super) fn get(&self, i: u32) -> Option<Single> {
        if i < FILE_BASE {
            return Some(self.mem.get(i).clone());
        }
        self.spill.as_ref().and_then(|s| s.get(i - FILE_BASE))
    }

    /// Frees record `i`, which could not be read back, and counts it.
    pub(super) fn discard_lost(&mut self, i: u32) {
        self.lost += 1;
        self.discard(i);
    }

    /// Frees record `i` (its index is reused).
    pub(super) fn discard(&mut self, i: u32) {
        if i < FILE_BASE {
            self.mem_live -= 1;
            self.mem.take(i);
        } else if let Some(s) = self.spill.as_mut() {
            s.patched.remove(&(i - FILE_BASE));
            s.free.push(i - FILE_BASE);
        }
    }

    /// Puts `s` in record `i`'s place.
    pub(super) fn replace(&mut self, i: u32, s: Single) {
        if i < FILE_BASE {
            self.mem.replace(i, s);
        } else if let Some(spill) = self.spill.as_mut() {
            spill.rewrite(i - FILE_BASE, &s);
        }
    }
}

impl Spill {
    /// An empty store in an unlinked file in `dir`; `None` if none can be
    /// made there.
    fn create(dir: &Path) -> Option<Spill> {
        Some(Spill {
            file: tempfile::tempfile_in(dir).ok()?,
            flushed: 0,
            buf: Vec::with_capacity(BUF_RECS * REC),
            free: Vec::new(),
            gens: Vec::new(),
            patched: HashMap::default(),
            dirs: Vec::new(),
            dir_ids: HashMap::default(),
        })
    }

    /// Stores `s`; `None` if the file cannot take it.
    fn insert(&mut self, s: &Single) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            self.rewrite(i, s);
            return Some(i);
        }
        if self.buf.len() == BUF_RECS * REC {
            let at = u64::from(self.flushed) * REC as u64;
            self.file.write_all_at(&self.buf, at).ok()?;
            self.flushed += BUF_RECS as u32;
            self.buf.clear();
        }
        let i = self.flushed + (self.buf.len() / REC) as u32;
        self.gens.push(0);
        let rec = self.encode(s, i);
        self.buf.extend_from_slice(&rec);
        Some(i)
    }

    /// Puts `s` at index `i` (a reused one, or a live one replaced), as
    /// the index's next generation.
    fn rewrite(&mut self, i: u32, s: &Single) {
        let g = &mut self.gens[i as usize];
        *g = g.wrapping_add(1);
        let rec = self.encode(s, i);
        self.put(i, rec);
    }

    fn put(&mut self, i: u32, rec: [u8; REC]) {
        if i >= self.flushed {
            let at = (i - self.flushed) as usize * REC;
            self.buf[at..at + REC].copy_from_slice(&rec);
        } else if self
            .file
            .write_all_at(&rec, u64::from(i) * REC as u64)
            .is_ok()
        {
            self.patched.remove(&i);
        } else {
            self.patched.insert(i, rec);
        }
    }

    fn get(&self, i: u32) -> Option<Single> {
        if let Some(rec) = self.patched.get(&i) {
            return self.decode(rec, i);
        }
        let mut rec = [0u8; REC];
        if i >= self.flushed {
            let at = (i - self.flushed) as usize * REC;
            rec.copy_from_slice(self.buf.get(at..at + REC)?);
        } else {
            self.file
                .read_exact_at(&mut rec, u64::from(i) * REC as u64)
                .ok()?;
        }
        self.decode(&rec, i)
    }

    fn dir_id(&mut self, dir: &Arc<DirPath>) -> u32 {
        let key = Arc::as_ptr(dir) as usize;
        if let Some(&id) = self.dir_ids.get(&key) {
            return id;
        }
        let id = u32::try_from(self.dirs.len()).expect("fewer directories than settled files");
        self.dirs.push(Arc::clone(dir));
        self.dir_ids.insert(key, id);
        id
    }

    fn encode(&mut self, s: &Single, i: u32) -> [u8; REC] {
        let m = &s.member;
        let mut r = [0u8; REC];
        r[0..4].copy_from_slice(&self.dir_id(&m.path.dir).to_le_bytes());
        r[4..12].copy_from_slice(&m.path.name.bits().to_le_bytes());
        r[12..20].copy_from_slice(&m.id.dev.to_le_bytes());
        r[20..28].copy_from_slice(&m.id.ino.to_le_bytes());
        r[28..36].copy_from_slice(&m.mtime_ns.to_le_bytes());
        r[36..44].copy_from_slice(&m.ctime_ns.to_le_bytes());
        r[44] = u8::from(m.aliased) | (u8::from(m.mount_root) << 1);
        r[45..BODY].copy_from_slice(&s.tail);
        let c = check(&r, i, self.gens[i as usize]);
        r[BODY..].copy_from_slice(&c);
        r
    }

    /// `None` for a record that does not name a known directory (a short
    /// or damaged read).
    fn decode(&self, r: &[u8; REC], i: u32) -> Option<Single> {
        if r[BODY..] != check(r, i, self.gens[i as usize]) {
            return None;
        }
        let u64_at = |a: usize| u64::from_le_bytes(r[a..a + 8].try_into().expect("8 bytes"));
        let i64_at = |a: usize| i64::from_le_bytes(r[a..a + 8].try_into().expect("8 bytes"));
        let dir = u32::from_le_bytes(r[0..4].try_into().expect("4 bytes"));
        let dir = Arc::clone(self.dirs.get(dir as usize)?);
        Some(Single {
            member: Member {
                path: PathRef {
                    dir,
                    name: NameRef::from_bits(u64_at(4)),
                },
                id: FileId {
                    dev: u64_at(12),
                    ino: u64_at(20),
                },
                mtime_ns: i64_at(28),
                ctime_ns: i64_at(36),
                aliased: r[44] & 1 != 0,
                mount_root: r[44] & 2 != 0,
            },
            tail: r[45..61].try_into().expect("16 bytes"),
        })
    }
}

/// The check bytes of record `i`, generation `gen`, with body `r[..BODY]`.
fn check(r: &[u8; REC], i: u32, gen: u8) -> [u8; REC - BODY] {
    let seed = u64::from(i) | (u64::from(gen) << 32);
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(&r[..BODY], seed);
    let b = h.to_le_bytes();
    [b[0], b[1], b[2]]
}
