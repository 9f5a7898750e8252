//! Safe wrappers for two Linux file ioctls that share and map extents:
//!
//! * [`dedupe_range`]: `FIDEDUPERANGE`, the kernel compares a range of two
//!   files and, only if the bytes are equal, makes the destination share
//!   the source's extents, atomically with respect to writers. Unlike
//!   `FICLONE` it can never replace different data.
//! * [`extents`]: `FS_IOC_FIEMAP`, where a file's data lies on the device,
//!   to tell whether two files already share every extent.
//!
//! Each call passes a `#[repr(C)]` struct laid out as in
//! `<linux/fs.h>` / `<linux/fiemap.h>`; the layouts are checked by
//! `const` assertions below.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use rustix::ioctl::{opcode, Opcode, Updater};

/// `struct file_dedupe_range` without its trailing array.
#[repr(C)]
#[derive(Default)]
struct DedupeRange {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
}

/// `struct file_dedupe_range_info`.
#[repr(C)]
#[derive(Default)]
struct DedupeRangeInfo {
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// The header followed by exactly one destination, as the kernel reads
/// them (`dest_count` = 1).
#[repr(C)]
#[derive(Default)]
struct DedupeOne {
    range: DedupeRange,
    info: DedupeRangeInfo,
}

const _: () = assert!(std::mem::size_of::<DedupeRange>() == 24);
const _: () = assert!(std::mem::size_of::<DedupeRangeInfo>() == 32);
const _: () = assert!(std::mem::size_of::<DedupeOne>() == 56);

/// `_IOWR(0x94, 54, struct file_dedupe_range)`: the size in the opcode is
/// the header's, without the destinations.
const FIDEDUPERANGE: Opcode = opcode::read_write::<DedupeRange>(0x94, 54);
const FILE_DEDUPE_RANGE_SAME: i32 = 0;
const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;

/// What the kernel did with one [`dedupe_range`] request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deduped {
    /// The ranges were equal; this many bytes from the start of the
    /// range now share the source's extents (a file system may do less
    /// than was asked: the caller goes on from there).
    Same(u64),
    /// The ranges differ; nothing was shared.
    Differs,
}

/// Asks the kernel to compare `len` bytes of `src` at `src_offset` with
/// `dest` at `dest_offset` and, if they are equal, to make `dest` share
/// `src`'s extents. `dest` must be open for writing, or owned by the
/// caller, or the caller must have `CAP_SYS_ADMIN`.
///
/// # Errors
///
/// The ioctl's (`EOPNOTSUPP`/`EINVAL` where the file system cannot share
/// extents, `EXDEV` across file systems) or the per-file status the
/// kernel reports (`EPERM` when `dest` may not be written).
pub fn dedupe_range(
    src: impl AsFd,
    src_offset: u64,
    len: u64,
    dest: impl AsFd,
    dest_offset: u64,
) -> io::Result<Deduped> {
    let mut arg = DedupeOne {
        range: DedupeRange {
            src_offset,
            src_length: len,
            dest_count: 1,
            ..DedupeRange::default()
        },
        info: DedupeRangeInfo {
            dest_fd: i64::from(dest.as_fd().as_raw_fd()),
            dest_offset,
            ..DedupeRangeInfo::default()
        },
    };
    // SAFETY: FIDEDUPERANGE reads a `file_dedupe_range` header and
    // `dest_count` (1) `file_dedupe_range_info` entries right after it,
    // and writes `bytes_deduped` and `status` into that entry: `arg` is
    // exactly that memory (layout asserted above), borrowed mutably for
    // the call. `dest_fd` stays open: `dest` is borrowed for the call.
    unsafe {
        rustix::ioctl::ioctl(
            src.as_fd(),
            Updater::<FIDEDUPERANGE, DedupeOne>::new(&mut arg),
        )?;
    }
    match arg.info.status {
        FILE_DEDUPE_RANGE_SAME => Ok(Deduped::Same(arg.info.bytes_deduped)),
        FILE_DEDUPE_RANGE_DIFFERS => Ok(Deduped::Differs),
        s if s < 0 => Err(io::Error::from_raw_os_error(-s)),
        s => Err(io::Error::other(format!(
            "FIDEDUPERANGE: unknown status {s}"
        ))),
    }
}

/// `struct fiemap` without its trailing array.
#[repr(C)]
#[derive(Default)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// Extents asked for per call.
const BATCH: usize = 64;

#[repr(C)]
struct FiemapBatch {
    map: Fiemap,
    extents: [FiemapExtent; BATCH],
}

const _: () = assert!(std::mem::size_of::<Fiemap>() == 32);
const _: () = assert!(std::mem::size_of::<FiemapExtent>() == 56);

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: Opcode = opcode::read_write::<Fiemap>(b'f', 11);
/// Flush delayed allocations first, so every extent has its place.
const FIEMAP_FLAG_SYNC: u32 = 1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;

/// `fe_flags` bits that mean the physical address is not a plain block
/// address (unknown, delayed, encoded, inline, packed in a tail):
/// extents with them never count as shared.
pub const EXTENT_NOT_PLAIN: u32 = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400;
/// `FIEMAP_EXTENT_SHARED`: the extent is shared with another file.
pub const EXTENT_SHARED: u32 = 0x2000;

/// One extent of a file: `length` bytes at `logical` in the file lie at
/// `physical` on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the device.
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// Every extent of `file`, in file order (holes are absent).
///
/// # Errors
///
/// The ioctl's (`EOPNOTSUPP` where the file system has no extent map).
pub fn extents(file: impl AsFd) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut arg = FiemapBatch {
            map: Fiemap {
                start,
                length: u64::MAX - start,
                flags: FIEMAP_FLAG_SYNC,
                extent_count: BATCH as u32,
                ..Fiemap::default()
            },
            extents: [FiemapExtent::default(); BATCH],
        };
        // SAFETY: FS_IOC_FIEMAP reads a `struct fiemap` and writes at most
        // `fm_extent_count` (BATCH) `fiemap_extent`s right after it: `arg`
        // is that memory (layouts asserted above), borrowed mutably.
        unsafe {
            rustix::ioctl::ioctl(
                file.as_fd(),
                Updater::<FS_IOC_FIEMAP, FiemapBatch>::new(&mut arg),
            )?;
        }
        let n = (arg.map.mapped_extents as usize).min(BATCH);
        let got = &arg.extents[..n];
        out.extend(got.iter().map(|e| Extent {
            logical: e.logical,
            physical: e.physical,
            length: e.length,
            flags: e.flags,
        }));
        match got.last() {
            Some(e) if e.flags & FIEMAP_EXTENT_LAST == 0 && e.length > 0 => {
                start = e.logical + e.length;
            }
            _ => return Ok(out),
        }
    }
}

/// Whether `a` and `b` already share every extent: the same physical
/// blocks at the same offsets, none of them of a kind whose address says
/// nothing (inline, delayed, encoded). Two empty files share nothing.
///
/// # Errors
///
/// As [`extents`].
pub fn fully_shared(a: impl AsFd, b: impl AsFd) -> io::Result<bool> {
    let (x, y) = (extents(a)?, extents(b)?);
    let plain = |e: &Extent| e.flags & EXTENT_NOT_PLAIN == 0;
    let key = |e: &Extent| (e.logical, e.physical, e.length);
    Ok(!x.is_empty()
        && x.len() == y.len()
        && x.iter().all(plain)
        && y.iter().all(plain)
        && x.iter().map(key).eq(y.iter().map(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a file system without extent sharing (tmpfs, ext4) the ioctl
    /// fails cleanly rather than corrupting anything; the reflink tests
    /// on XFS live with the integration tests.
    #[test]
    fn dedupe_fails_cleanly_where_unsupported_and_maps_work_anywhere() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, vec![7u8; 8192]).unwrap();
        std::fs::write(&b, vec![7u8; 8192]).unwrap();
        let fa = std::fs::File::open(&a).unwrap();
        let fb = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
        match dedupe_range(&fa, 0, 8192, &fb, 0) {
            Ok(Deduped::Same(n)) => assert!(n <= 8192),
            Ok(Deduped::Differs) => panic!("equal bytes reported as different"),
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
        assert_eq!(std::fs::read(&b).unwrap(), vec![7u8; 8192]);
        if let Ok(ext) = extents(&fa) {
            let total: u64 = ext.iter().map(|e| e.length).sum();
            assert!(ext.is_empty() || total >= 8192, "{ext:?}");
        }
    }
}
