//! The changes themselves, each made so that no content can be lost if
//! the process stops at any instant: a link is made at a fresh name and
//! renamed over the victim, a move never replaces anything, a removal
//! happens only while the kept copy is there.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;

use super::exec::{CrashPoint, ExecOptions, Outcome, Skip};
use super::fsops::{self, At};
use super::journal::Op;
use super::Action;
use crate::pipeline::keys::FileStamp;

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

/// What a symbolic link at `victim` should hold to reach `keep`: relative
/// from the victim's real directory when asked, else the kept file's real
/// absolute path; either way checked after creation.
pub(super) fn symlink_target(action: &Action, victim: &Path, keep: &Path) -> io::Result<PathBuf> {
    let keep = std::fs::canonicalize(keep)?;
    let relative = matches!(action, Action::Link { relative: true, .. });
    if !relative {
        return Ok(keep);
    }
    let dir = victim.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = std::fs::canonicalize(dir.unwrap_or(Path::new(".")))?;
    Ok(fsops::relative(&dir, &keep))
}

fn still(v: &At, stamp: &FileStamp) -> bool {
    v.stat().is_ok_and(|st| fsops::unchanged(&st, stamp))
}

/// The kept file is still there and still holds what was compared: its
/// size, mtime and ctime are what they were then (or after this run's own
/// last link to it). Checked right before each change: a write into it
/// after the comparison would otherwise leave no copy of the content.
fn keeper_alive(k: &At, keep: &FileStamp) -> bool {
    k.stat()
        .is_ok_and(|st| fsops::unchanged(&st, keep) && st.st_nlink > 0)
}

pub(super) fn remove(v: &At, stamp: &FileStamp, k: &At, keep: &FileStamp) -> Outcome {
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    // The last copy must never go: the kept file is still there.
    if !keeper_alive(k, keep) {
        return Outcome::Skipped(Skip::KeptChanged);
    }
    match rustix::fs::unlinkat(&v.dir, &v.name, AtFlags::empty()) {
        Ok(()) => Outcome::Done,
        Err(e) => failed(format!("cannot remove: {e}")),
    }
}

pub(super) fn replace(
    op: &Op,
    opts: &ExecOptions,
    v: &At,
    stamp: &FileStamp,
    k: &At,
    keep: &FileStamp,
) -> Outcome {
    let tmp = op.tmp.as_deref().expect("links have a temporary name");
    // Checked before the link is made: the link itself moves the kept
    // file's ctime.
    if !keeper_alive(k, keep) {
        return Outcome::Skipped(Skip::KeptChanged);
    }
    let made = match &op.target {
        Some(target) => rustix::fs::symlinkat(target.as_path(), &v.dir, tmp),
        None => rustix::fs::linkat(&k.dir, &k.name, &v.dir, tmp, AtFlags::empty()),
    };
    if let Err(e) = made {
        return match e {
            Errno::XDEV => Outcome::Skipped(Skip::OtherDevice),
            e => failed(format!("cannot create the link: {e}")),
        };
    }
    super::exec::crash(opts, op.op, CrashPoint::AfterTemp);
    let drop_tmp = || {
        let _ = rustix::fs::unlinkat(&v.dir, tmp, AtFlags::empty());
    };
    // The new name must reach the kept inode (a symlink through whatever
    // its path resolves to now).
    let flags = if op.target.is_some() {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let reaches = rustix::fs::statat(&v.dir, tmp, flags)
        .is_ok_and(|st| (st.st_dev, st.st_ino) == (keep.id.dev, keep.id.ino));
    // Since then only the ctime may have moved (by the link just made).
    let unwritten = k.stat().is_ok_and(|st| {
        let now = fsops::stamp_of(&st);
        (now.id, now.size, now.mtime_ns) == (keep.id, keep.size, keep.mtime_ns) && st.st_nlink > 0
    });
    if !reaches || !unwritten {
        drop_tmp();
        return Outcome::Skipped(Skip::KeptChanged);
    }
    if !still(v, stamp) {
        drop_tmp();
        return Outcome::Skipped(Skip::VictimChanged);
    }
    if let Err(e) = rustix::fs::renameat(&v.dir, tmp, &v.dir, &v.name) {
        drop_tmp();
        return failed(format!("cannot rename the link into place: {e}"));
    }
    // rename(2) does nothing when both names are links of one inode (the
    // victim became a link of the kept file meanwhile): the temporary
    // name is then still there.
    if rustix::fs::statat(&v.dir, tmp, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        drop_tmp();
    }
    Outcome::Done
}

pub(super) fn move_to(v: &At, stamp: &FileStamp, dest: Option<&Path>) -> Outcome {
    let Some(dest) = dest else {
        return failed("no destination");
    };
    // A destination on another file system was skipped (or made a copy)
    // when the step was checked, before any directory was created there.
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    let d = match dest_dir(dest) {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    match rustix::fs::renameat_with(&v.dir, &v.name, &d.dir, &d.name, RenameFlags::NOREPLACE) {
        // Made durable with the batch (`syncfs`), before its outcome.
        Ok(()) => Outcome::Done,
        Err(Errno::XDEV) => Outcome::Skipped(Skip::OtherDevice),
        Err(Errno::EXIST) => Outcome::Skipped(Skip::DestExists),
        Err(e) => failed(format!("cannot move: {e}")),
    }
}

/// The directory a move's `dest` goes into, created if missing.
fn dest_dir(dest: &Path) -> Result<At, Outcome> {
    fsops::make_parent(dest)
        .map_err(|e| failed(format!("cannot create the destination's directory: {e}")))?;
    fsops::at(dest).map_err(|e| failed(format!("cannot open the destination directory: {e}")))
}

/// Moves the victim into the trash at `op.dest`: the info file first
/// (exclusive, synced), then a rename that never replaces anything and
/// never crosses file systems. The kept copy must still be there.
pub(super) fn trash_to(op: &Op, v: &At, stamp: &FileStamp, k: &At, keep: &FileStamp) -> Outcome {
    let Some(dest) = op.dest.as_deref() else {
        return failed("no trash destination");
    };
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    if !keeper_alive(k, keep) {
        return Outcome::Skipped(Skip::KeptChanged);
    }
    let d = match fsops::at(dest) {
        Ok(d) => d,
        Err(e) => return failed(format!("cannot open the trash: {e}")),
    };
    let tmp = op
        .tmp
        .as_deref()
        .expect("trash steps have a temporary name");
    match super::trash::write_info(dest, &op.victim, tmp) {
        Ok(true) => {}
        Ok(false) => return Outcome::Skipped(Skip::DestExists),
        Err(e) => return failed(format!("cannot write the trash info file: {e}")),
    }
    let undo_info = || super::trash::remove_info(dest, &op.victim);
    if !still(v, stamp) {
        undo_info();
        return Outcome::Skipped(Skip::VictimChanged);
    }
    match rustix::fs::renameat_with(&v.dir, &v.name, &d.dir, &d.name, RenameFlags::NOREPLACE) {
        Ok(()) => Outcome::Done,
        Err(e) => {
            undo_info();
            match e {
                Errno::XDEV => Outcome::Skipped(Skip::OtherDevice),
                Errno::EXIST => Outcome::Skipped(Skip::DestExists),
                e => failed(format!("cannot move to the trash: {e}")),
            }
        }
    }
}

/// `move --allow-copy` to another file system: the victim's bytes are
/// copied to a temporary name beside the destination, checked against the
/// hash compared, given the victim's mode, owner and times, synced, and
/// renamed into place without replacing anything; only then, if the
/// victim is still what was copied, is it unlinked.
pub(super) fn copy_move(
    op: &Op,
    opts: &ExecOptions,
    v: &At,
    stamp: &FileStamp,
    vf: &std::os::fd::OwnedFd,
) -> Outcome {
    let (Some(dest), Some(tmp)) = (op.dest.as_deref(), op.tmp.as_deref()) else {
        return failed("no destination");
    };
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    let d = match dest_dir(dest) {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    let drop_tmp = || {
        let _ = rustix::fs::unlinkat(&d.dir, tmp, AtFlags::empty());
    };
    if let Err(e) = rustix::fs::seek(vf, rustix::fs::SeekFrom::Start(0))
        .map_err(std::io::Error::from)
        .and_then(|_| fsops::write_copy(vf, &d.dir, tmp, &op.victim_stat, &op.algo, &op.hash))
    {
        drop_tmp();
        return failed(format!("cannot copy: {e}"));
    }
    super::exec::crash(opts, op.op, CrashPoint::AfterTemp);
    match rustix::fs::renameat_with(&d.dir, tmp, &d.dir, &d.name, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(e) => {
            drop_tmp();
            return match e {
                Errno::EXIST => Outcome::Skipped(Skip::DestExists),
                e => failed(format!("cannot rename the copy into place: {e}")),
            };
        }
    }
    d.sync_dir();
    // Written to since it was copied: the copy is not what is there now.
    if !still(v, stamp) {
        let _ = rustix::fs::unlinkat(&d.dir, &d.name, AtFlags::empty());
        return Outcome::Skipped(Skip::VictimChanged);
    }
    match rustix::fs::unlinkat(&v.dir, &v.name, AtFlags::empty()) {
        Ok(()) => Outcome::Done,
        Err(e) => failed(format!("copied, but cannot remove the original: {e}")),
    }
}

/// Largest request per `FIDEDUPERANGE` call: btrfs caps each at 16 MiB,
/// and smaller requests keep each kernel-side lock short.
const CLONE_CHUNK: u64 = 16 << 20;

/// Makes the victim (`vf`, checked to be its inode) share the kept file's
/// (`kf`) extents, range by range. The kernel compares each range and
/// shares it only if the bytes are equal, so a write to either file at
/// any moment leaves both contents intact: at worst the rest is left
/// unshared (`Differs`).
pub(super) fn clone_into(
    v: &At,
    stamp: &FileStamp,
    vf: &std::os::fd::OwnedFd,
    k: &At,
    keep: &FileStamp,
    kf: &std::os::fd::OwnedFd,
) -> Outcome {
    use extent_share::{dedupe_range, Deduped};
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    if !keeper_alive(k, keep) {
        return Outcome::Skipped(Skip::KeptChanged);
    }
    // The kernel lets the file's owner (or an administrator) dedupe into
    // a read-only descriptor; anyone else needs one open for writing
    // (opening does not change the file).
    let mut dest = None;
    let mut off = 0u64;
    while off < stamp.size {
        let len = CLONE_CHUNK.min(stamp.size - off);
        let fd = dest.as_ref().unwrap_or(vf);
        match dedupe_range(kf, off, len, fd, off) {
            Ok(Deduped::Same(0)) => return failed("the file system shared nothing"),
            Ok(Deduped::Same(n)) => off += n,
            Ok(Deduped::Differs) => return Outcome::Skipped(Skip::Differs),
            Err(e) if dest.is_none() && e.raw_os_error() == Some(Errno::PERM.raw_os_error()) => {
                match v.open(rustix::fs::OFlags::WRONLY) {
                    Ok(w) if same_inode(&w, stamp) => dest = Some(w),
                    _ => return failed(format!("cannot share extents: {e}")),
                }
            }
            Err(e) => {
                let code = e.raw_os_error().map(Errno::from_raw_os_error);
                return match code {
                    Some(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOTTY) if off == 0 => {
                        Outcome::Skipped(Skip::NoReflink)
                    }
                    Some(Errno::XDEV) => Outcome::Skipped(Skip::OtherDevice),
                    _ => failed(format!("cannot share extents at byte {off}: {e}")),
                };
            }
        }
    }
    Outcome::Done
}

fn same_inode(fd: &std::os::fd::OwnedFd, stamp: &FileStamp) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| (st.st_dev, st.st_ino) == (stamp.id.dev, stamp.id.ino))
}
