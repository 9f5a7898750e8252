//! File-system steps of an action, each on a directory handle: the parent
//! directory is opened once, the file is named relative to it (never
//! through a symlink), and its device and inode are checked against the
//! report before anything happens, so a directory swapped for a symlink
//! mid-run cannot redirect a change to another file.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::entry::time_ns;
use crate::pipeline::keys::FileStamp;

/// A file named by its open parent directory and its name in it.
pub(crate) struct At {
    pub(crate) dir: OwnedFd,
    pub(crate) name: PathBuf,
}

/// Opens the parent directory of `path`; `path` must have a file name.
/// Symlinks on the way are followed (a root may be one): what makes this
/// safe against a directory swapped for a symlink is that every step then
/// checks the name's device and inode against the scan before it acts.
pub(crate) fn at(path: &Path) -> Result<At, Errno> {
    let name = path.file_name().ok_or(Errno::INVAL)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = match crate::fsutil::open(parent, flags) {
        // A directory we may search but not list: handles still work for
        // every *at call; only its fsync is lost.
        Err(Errno::ACCESS) => crate::fsutil::open(parent, flags | OFlags::PATH)?,
        other => other?,
    };
    Ok(At {
        dir,
        name: PathBuf::from(name),
    })
}

impl At {
    /// `lstat` of the name.
    pub(crate) fn stat(&self) -> Result<Stat, Errno> {
        rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW)
    }

    /// Opens the name (`access`: `RDONLY`, `WRONLY` or `RDWR`; never
    /// truncated, never through a symlink).
    pub(crate) fn open(&self, access: OFlags) -> Result<OwnedFd, Errno> {
        rustix::fs::openat(
            &self.dir,
            &self.name,
            access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
    }

    /// Opens the name for reading, never through a symlink.
    pub(crate) fn open_read(&self) -> Result<OwnedFd, Errno> {
        self.open(OFlags::RDONLY)
    }

    /// Makes the directory's entries durable (best effort: a handle opened
    /// only for searching cannot be synced).
    pub(crate) fn sync_dir(&self) {
        let _ = rustix::fs::fsync(&self.dir);
    }
}

/// The device of `p` or of its nearest existing ancestor (where a path
/// about to be created will live).
pub(crate) fn device_of(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    p.ancestors()
        .find_map(|a| std::fs::metadata(a).ok())
        .map(|m| m.dev())
}

/// Creates the directories above `p`.
pub(crate) fn make_parent(p: &Path) -> std::io::Result<()> {
    match p.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => std::fs::create_dir_all(d),
        None => Ok(()),
    }
}

/// A time in nanoseconds since the epoch, as `utimensat` takes it.
pub(crate) fn timespec(ns: i64) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// What a file is now, in the report's terms.
pub(crate) fn stamp_of(st: &Stat) -> FileStamp {
    FileStamp {
        size: u64::try_from(st.st_size).unwrap_or(0),
        id: crate::entry::FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        },
        mtime_ns: time_ns((st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0))),
        ctime_ns: time_ns((st.st_ctime, u32::try_from(st.st_ctime_nsec).unwrap_or(0))),
    }
}

/// Whether `st` is a regular file and still exactly what was hashed.
pub(crate) fn unchanged(st: &Stat, was: &FileStamp) -> bool {
    is_file(st) && stamp_of(st) == *was
}

pub(crate) fn is_file(st: &Stat) -> bool {
    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
}

/// Whether two open files hold the same bytes, read side by side to the
/// end of both (a file that grew or shrank since its stat differs): their
/// `algo` hash if they do.
pub(crate) fn same_bytes(
    a: impl AsFd,
    b: impl AsFd,
    algo: crate::hash::HashAlgo,
) -> Result<Option<crate::hash::Digest>, Errno> {
    const CHUNK: usize = 1 << 20;
    // Buffers no larger than the file (most duplicates are small, and
    // zeroing 2 MiB per pair was an eighth of a `trash` run's CPU); a
    // file that grew since is still read to its end, a chunk at a time.
    let len = rustix::fs::fstat(&a)
        .ok()
        .and_then(|st| usize::try_from(st.st_size).ok())
        .map_or(CHUNK, |n| n.saturating_add(1).min(CHUNK));
    let mut x = vec![0u8; len];
    let mut y = vec![0u8; len];
    let mut h = algo.hasher();
    loop {
        let n = read_full(&a, &mut x)?;
        let m = read_full(&b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(None);
        }
        if n == 0 {
            return Ok(Some(h.finish()));
        }
        h.update(&x[..n]);
    }
}

/// A file's extended attributes (names and values, sorted); an error
/// (no support on this file system) reads as none.
pub(crate) fn xattrs(fd: impl AsFd) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::flistxattr(&fd, &mut names[..]) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let mut value = vec![0u8; 65_536];
            let len = std::ffi::CString::new(name)
                .ok()
                .and_then(|c| rustix::fs::fgetxattr(&fd, c.as_c_str(), &mut value[..]).ok())
                .unwrap_or(0);
            value.truncate(len);
            (name.to_vec(), value)
        })
        .collect();
    out.sort();
    out
}

/// Writes a copy of `src` (read from its current offset to the end) at
/// the new name `name` in `dir`: created exclusively, never through a
/// symlink, checked against `hash` (hex, of algorithm `algo`), given the
/// owner, mode and mtime of `rec`, and synced. The caller removes `name`
/// on error.
pub(crate) fn write_copy(
    src: impl AsFd,
    dir: impl AsFd,
    name: &Path,
    rec: &super::journal::StatRec,
    algo: &str,
    hash: &str,
) -> std::io::Result<()> {
    use std::str::FromStr;
    let algo = crate::hash::HashAlgo::from_str(algo).map_err(std::io::Error::other)?;
    let dst = rustix::fs::openat(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    if copy_hashing(&src, &dst, algo)? != hash {
        return Err(std::io::Error::other(
            "the copy's hash differs from the journal's",
        ));
    }
    // Only root can give a file away; anyone else keeps their own.
    let _ = rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(rec.uid)),
        Some(rustix::fs::Gid::from_raw(rec.gid)),
    );
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(rec.mode & 0o7777))?;
    let t = timespec(rec.mtime_ns);
    rustix::fs::futimens(
        &dst,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    rustix::fs::fsync(&dst)?;
    Ok(())
}

/// Copies `src` to `dst`, returning the hex hash of what was copied.
fn copy_hashing(
    src: impl AsFd,
    dst: impl AsFd,
    algo: crate::hash::HashAlgo,
) -> std::io::Result<String> {
    let mut h = algo.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&src, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        let mut off = 0;
        while off < n {
            off += rustix::io::write(&dst, &buf[off..n])?;
        }
    }
    Ok(h.finish().to_hex())
}

/// The `algo` hash of an open file, read from its current offset.
pub(crate) fn hash_of(f: impl AsFd, algo: crate::hash::HashAlgo) -> std::io::Result<String> {
    let mut h = algo.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&f, &mut buf)?;
        if n == 0 {
            return Ok(h.finish().to_hex());
        }
        h.update(&buf[..n]);
    }
}

/// Reads until `buf` is full or the file ends.
pub(crate) fn read_full(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A fresh hidden name for a temporary entry beside `name`: short, so a
/// name near 255 bytes still has room, and unlikely to exist (creation is
/// exclusive anyway).
pub(crate) fn temp_name(op: u64) -> PathBuf {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    PathBuf::from(format!(".dedupe-{pid:x}-{op:x}-{nanos:x}.tmp"))
}

/// The relative path from directory `from` to `to`, both absolute and
/// free of `.` and `..` components.
pub(crate) fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Bytes of a path (for messages and the journal).
pub(crate) fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(r("/a/b", "/a/c/f"), PathBuf::from("../c/f"));
        assert_eq!(r("/a/b", "/a/b/f"), PathBuf::from("f"));
        assert_eq!(r("/x", "/a/f"), PathBuf::from("../a/f"));
        assert_eq!(r("/", "/a/f"), PathBuf::from("a/f"));
    }

    const B3: crate::hash::HashAlgo = crate::hash::HashAlgo::Blake3;

    #[test]
    fn byte_comparison_sees_every_position_and_length() {
        let t = tempfile::tempdir().unwrap();
        let size = (1 << 20) + 7;
        let base: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let a = t.path().join("a");
        std::fs::write(&a, &base).unwrap();
        let open = |p: &Path| std::fs::File::open(p).unwrap();
        for (i, pos) in [0, size / 2, size - 1].into_iter().enumerate() {
            let mut other = base.clone();
            other[pos] ^= 1;
            let b = t.path().join(format!("b{i}"));
            std::fs::write(&b, &other).unwrap();
            assert!(
                same_bytes(open(&a), open(&b), B3).unwrap().is_none(),
                "byte {pos}"
            );
        }
        let c = t.path().join("c");
        std::fs::write(&c, &base[..size - 1]).unwrap();
        assert!(
            same_bytes(open(&a), open(&c), B3).unwrap().is_none(),
            "shorter"
        );
        std::fs::write(&c, &base).unwrap();
        let mut h = B3.hasher();
        h.update(&base);
        assert_eq!(
            same_bytes(open(&a), open(&c), B3).unwrap(),
            Some(h.finish())
        );
    }
}
