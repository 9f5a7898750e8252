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
    if !still(v, stamp) {
        return Outcome::Skipped(Skip::VictimChanged);
    }
    // A rename cannot cross file systems: say so before creating any
    // directory there.
    let existing = dest.ancestors().skip(1).find(|a| a.exists());
    if let (Some(a), Ok(vst)) = (existing, v.stat()) {
        if std::fs::metadata(a).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.dev() != vst.st_dev
        }) {
            return Outcome::Skipped(Skip::OtherDevice);
        }
    }
    if let Some(parent) = dest.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return failed(format!("cannot create {}: {e}", parent.display()));
        }
    }
    let d = match fsops::at(dest) {
        Ok(d) => d,
        Err(e) => return failed(format!("cannot open the destination directory: {e}")),
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
