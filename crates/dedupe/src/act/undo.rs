//! Recovery and undo, both from a journal and the file system.
//!
//! * Recovery settles changes a killed run began but did not record the
//!   end of: the victim's path says whether the rename (or unlink, or
//!   move) happened; a leftover temporary link, or the trash info file of
//!   a file that never reached the trash, is removed. Nothing is redone.
//! * Undo reverses a run's changes, last first: a moved or trashed file
//!   goes back; a link or a clone becomes an independent copy again
//!   (written beside it, checked against the recorded hash, given the
//!   recorded mode, owner and modification time, then renamed over the
//!   link or clone); a removal is reported as irreversible.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

use super::fsops::{self, At};
use super::journal::{self, Journal, Op, OpKind, OpState, StatRec};

/// What recovery or undo did.
#[derive(Clone, Debug, Default)]
pub struct UndoReport {
    /// Half-done changes found completed.
    pub recovered_done: u64,
    /// Half-done changes found not made (their traces removed).
    pub recovered_not_done: u64,
    /// Changes reversed.
    pub undone: u64,
    /// Removals, which cannot be reversed.
    pub irreversible: Vec<PathBuf>,
    /// Changes that could not be reversed, and why.
    pub failed: Vec<(PathBuf, String)>,
}

fn is(st: &rustix::fs::Stat, rec: &StatRec) -> bool {
    (st.st_dev, st.st_ino) == (rec.dev, rec.ino)
}

fn is_our_symlink(v: &At, name: &Path, target: Option<&Path>) -> bool {
    let Some(target) = target else { return false };
    rustix::fs::readlinkat(&v.dir, name, Vec::new())
        .is_ok_and(|t| t.as_bytes() == fsops::bytes(target))
}

/// Whether the name in `v`'s directory is what `op` put there.
fn is_ours(v: &At, name: &Path, op: &Op) -> bool {
    match op.kind {
        OpKind::Symlink => is_our_symlink(v, name, op.target.as_deref()),
        // A clone is the victim's own inode, with shared extents.
        OpKind::Clone => rustix::fs::statat(&v.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| is(&st, &op.victim_stat)),
        _ => rustix::fs::statat(&v.dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| is(&st, &op.keep_stat)),
    }
}

/// Decides a change that has no outcome in the journal.
fn settle(op: &Op) -> io::Result<bool> {
    match op.kind {
        OpKind::Link | OpKind::Symlink => {
            let v = fsops::at(&op.victim)?;
            let done = is_ours(&v, &v.name, op);
            if let Some(tmp) = &op.tmp {
                if is_ours(&v, tmp, op) {
                    rustix::fs::unlinkat(&v.dir, tmp.as_path(), AtFlags::empty())?;
                }
            }
            Ok(done)
        }
        OpKind::Move if op.tmp.is_some() => settle_copy(op),
        OpKind::Move | OpKind::Trash => {
            let source = fsops::at(&op.victim).and_then(|v| v.stat());
            let dest = op.dest.as_deref().map(fsops::at);
            let done = !source.is_ok_and(|st| is(&st, &op.victim_stat))
                && matches!(dest, Some(Ok(d)) if d.stat().is_ok_and(|st| is(&st, &op.victim_stat)));
            if let (OpKind::Trash, Some(dest)) = (op.kind, op.dest.as_deref()) {
                super::trash::clean_after(dest, &op.victim, op.tmp.as_deref(), done);
            }
            Ok(done)
        }
        // Sharing extents leaves both contents as they were whether or
        // not it happened; count it made if the file is still there, so
        // undo makes it an independent copy either way.
        OpKind::Clone => {
            let v = fsops::at(&op.victim)?;
            Ok(is_ours(&v, &v.name, op))
        }
        OpKind::Remove => match fsops::at(&op.victim).and_then(|v| v.stat()) {
            Err(rustix::io::Errno::NOENT) => Ok(true),
            Ok(st) => Ok(!is(&st, &op.victim_stat)),
            Err(e) => Err(e.into()),
        },
    }
}

/// Opens the journal at `path` for recovery or undo, holding its lock;
/// `WouldBlock` if a running `dedupe` holds it.
fn open_locked(path: &Path) -> io::Result<Journal> {
    Journal::append(path)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is in use by a running dedupe", path.display()),
        )
    })
}

/// Settles every change of the journal at `path` a killed run (or undo)
/// left without an outcome; returns the journal as it now stands.
pub fn recover(path: &Path, report: &mut UndoReport) -> io::Result<journal::JournalLog> {
    let mut j = open_locked(path)?;
    recover_locked(path, &mut j, report)
}

fn recover_locked(
    path: &Path,
    j: &mut Journal,
    report: &mut UndoReport,
) -> io::Result<journal::JournalLog> {
    let mut log = journal::read(path)?;
    for op in &mut log.ops {
        // An undo killed part way: a copy left beside the link (the
        // rename never happened) is removed; if the rename did happen
        // (the path holds a file that is not the link), it is recorded.
        if let (Some(tmp), true) = (&op.undo_tmp, op.state == OpState::Done) {
            if let Ok(v) = fsops::at(&op.victim) {
                let _ = rustix::fs::unlinkat(&v.dir, tmp.as_path(), AtFlags::empty());
                let copy = v
                    .stat()
                    .is_ok_and(|st| fsops::is_file(&st) && !is_ours(&v, &v.name, op));
                if copy {
                    op.state = OpState::Undone;
                    j.outcome(op.op, OpState::Undone, Some("settled by recovery"))?;
                }
            }
        }
        if op.state != OpState::Pending {
            continue;
        }
        // A step whose paths cannot be reached any more (a directory
        // removed since) is not done: it must not stop the others.
        let done = settle(op).unwrap_or(false);
        op.state = if done {
            OpState::Done
        } else {
            OpState::NotDone
        };
        if done {
            report.recovered_done += 1;
        } else {
            report.recovered_not_done += 1;
        }
        j.outcome(op.op, op.state, Some("settled by recovery"))?;
    }
    // Settled now, and marked so (see `journal::settled`): also after an
    // undo that was killed, whose run had recorded its end long before.
    if !journal::settled(path) {
        j.end(&serde_json::json!({"recovered": true}))?;
    }
    log.ended = true;
    Ok(log)
}

/// Whether a journal holds a change `undo` could reverse.
pub fn reversible(log: &journal::JournalLog) -> bool {
    log.ops
        .iter()
        .any(|o| o.kind != OpKind::Remove && matches!(o.state, OpState::Done | OpState::Pending))
}

/// Reverses the run journaled at `path` (after recovering it).
pub fn undo(path: &Path) -> io::Result<UndoReport> {
    let mut report = UndoReport::default();
    let mut j = open_locked(path)?;
    let log = recover_locked(path, &mut j, &mut report)?;
    // Paths of one inode (a hard-link set relinked with `--hard-links`)
    // become one inode again: the first restored is copied, the others
    // linked to that copy. Keyed by the original inode; the value is the
    // copy's path and its inode.
    let mut restored: std::collections::HashMap<(u64, u64), (PathBuf, (u64, u64))> =
        std::collections::HashMap::new();
    // Including copies an earlier, interrupted undo restored.
    for op in log.ops.iter().filter(|o| o.state == OpState::Undone) {
        if matches!(op.kind, OpKind::Link | OpKind::Symlink | OpKind::Clone) {
            if let Ok(st) = fsops::at(&op.victim).and_then(|v| v.stat()) {
                if fsops::is_file(&st) && !is(&st, &op.keep_stat) {
                    restored
                        .entry((op.victim_stat.dev, op.victim_stat.ino))
                        .or_insert((op.victim.clone(), (st.st_dev, st.st_ino)));
                }
            }
        }
    }
    for op in log.ops.iter().rev().filter(|o| o.state == OpState::Done) {
        let original = (op.victim_stat.dev, op.victim_stat.ino);
        let result = match op.kind {
            OpKind::Remove => {
                report.irreversible.push(op.victim.clone());
                continue;
            }
            OpKind::Move if op.tmp.is_some() => copy_back(op, &mut j),
            OpKind::Move | OpKind::Trash => move_back(op),
            OpKind::Clone => unshare(op),
            OpKind::Link | OpKind::Symlink => {
                let sibling = restored.get(&original).cloned();
                restore_copy(op, &mut j, sibling.as_ref()).map(|id| {
                    restored
                        .entry(original)
                        .or_insert_with(|| (op.victim.clone(), id));
                })
            }
        };
        match result {
            Ok(()) => {
                j.outcome(op.op, OpState::Undone, None)?;
                report.undone += 1;
            }
            Err(e) => report.failed.push((op.victim.clone(), e.to_string())),
        }
    }
    // Nothing of this undo is left half done (see `journal::settled`).
    j.end(&serde_json::json!({"undo": true, "undone": report.undone,
        "failed": report.failed.len()}))?;
    Ok(report)
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Whether `path` holds a regular file with the journal's content and
/// the victim's mtime: the copy a `move --allow-copy` made.
fn is_our_copy(path: &Path, op: &Op) -> bool {
    let Ok(d) = fsops::at(path) else { return false };
    let Ok(st) = d.stat() else { return false };
    if !fsops::is_file(&st) || fsops::stamp_of(&st).mtime_ns != op.victim_stat.mtime_ns {
        return false;
    }
    let Ok(f) = d.open_read() else { return false };
    let Ok(algo) = op.algo.parse::<crate::hash::HashAlgo>() else {
        return false;
    };
    fsops::hash_of(&f, algo).is_ok_and(|h| h == op.hash)
}

/// A copying move left without an outcome: done if the original is gone
/// and the copy is in place; otherwise not done, and the copy (finished
/// or not) is removed, since the original is still there.
fn settle_copy(op: &Op) -> io::Result<bool> {
    let dest = op.dest.as_deref().ok_or_else(|| other("no destination"))?;
    if let (Ok(d), Some(tmp)) = (fsops::at(dest), op.tmp.as_deref()) {
        let _ = rustix::fs::unlinkat(&d.dir, tmp, AtFlags::empty());
    }
    let source = fsops::at(&op.victim).and_then(|v| v.stat());
    if source.is_ok_and(|st| is(&st, &op.victim_stat)) {
        if is_our_copy(dest, op) {
            std::fs::remove_file(dest)?;
        }
        return Ok(false);
    }
    Ok(is_our_copy(dest, op))
}

/// Undoes a copying move: copies the file back (checked, with its
/// metadata), then removes the copy at the destination.
fn copy_back(op: &Op, j: &mut Journal) -> io::Result<()> {
    let dest = op.dest.as_deref().ok_or_else(|| other("no destination"))?;
    let d = fsops::at(dest)?;
    // What is copied back is checked against the journal's hash as it is
    // read (`write_copy`): a file changed at the destination is refused.
    let src = d.open_read()?;
    fsops::make_parent(&op.victim)?;
    let v = fsops::at(&op.victim)?;
    let tmp = fsops::temp_name(op.op);
    j.undo_intent(op.op, &tmp)?;
    let placed = fsops::write_copy(&src, &v.dir, &tmp, &op.victim_stat, &op.algo, &op.hash)
        .and_then(|()| {
            rustix::fs::renameat_with(&v.dir, &tmp, &v.dir, &v.name, RenameFlags::NOREPLACE)
                .map_err(io::Error::from)
        });
    if let Err(e) = placed {
        let _ = rustix::fs::unlinkat(&v.dir, &tmp, AtFlags::empty());
        return Err(e);
    }
    v.sync_dir();
    rustix::fs::unlinkat(&d.dir, &d.name, AtFlags::empty())?;
    d.sync_dir();
    Ok(())
}

fn move_back(op: &Op) -> io::Result<()> {
    let dest = op.dest.as_deref().ok_or_else(|| other("no destination"))?;
    let d = fsops::at(dest)?;
    let moved = d.stat().is_ok_and(|st| is(&st, &op.victim_stat));
    if !moved {
        // Back already (an undo killed after its rename): finish it.
        let home = fsops::at(&op.victim).and_then(|v| v.stat());
        if home.is_ok_and(|st| is(&st, &op.victim_stat)) {
            if op.kind == OpKind::Trash {
                super::trash::remove_info(dest, &op.victim);
            }
            return Ok(());
        }
        return Err(other(format!(
            "{} is no longer the moved file",
            dest.display()
        )));
    }
    fsops::make_parent(&op.victim)?;
    let v = fsops::at(&op.victim)?;
    rustix::fs::renameat_with(&d.dir, &d.name, &v.dir, &v.name, RenameFlags::NOREPLACE)?;
    v.sync_dir();
    if op.kind == OpKind::Trash {
        super::trash::remove_info(dest, &op.victim);
    }
    Ok(())
}

/// Makes the victim's path an independent file again: a checked copy, or
/// with `sibling` (another path of the same original inode, restored
/// already, and its new inode) a hard link to that copy. Returns the
/// inode now at the path.
fn restore_copy(
    op: &Op,
    j: &mut Journal,
    sibling: Option<&(PathBuf, (u64, u64))>,
) -> io::Result<(u64, u64)> {
    let v = fsops::at(&op.victim)?;
    if !is_ours(&v, &v.name, op) {
        return Err(other("the path no longer holds the link dedupe made"));
    }
    if let Some((path, id)) = sibling {
        let s = fsops::at(path)?;
        // Still the copy undo made, with the content, or copy afresh.
        let content = || {
            let algo = op.algo.parse::<crate::hash::HashAlgo>().map_err(other)?;
            fsops::hash_of(s.open_read()?, algo)
        };
        if s.stat().is_ok_and(|st| (st.st_dev, st.st_ino) == *id)
            && content().is_ok_and(|h| h == op.hash)
        {
            let tmp = fsops::temp_name(op.op);
            j.undo_intent(op.op, &tmp)?;
            rustix::fs::linkat(&s.dir, &s.name, &v.dir, &tmp, AtFlags::empty())?;
            return place(&v, &tmp, op);
        }
    }
    // Read through the link (a hard link is the kept inode itself; a
    // symlink leads to it).
    let src = rustix::fs::openat(
        &v.dir,
        &v.name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let tmp = fsops::temp_name(op.op);
    j.undo_intent(op.op, &tmp)?;
    if let Err(e) = fsops::write_copy(&src, &v.dir, &tmp, &op.victim_stat, &op.algo, &op.hash) {
        let _ = rustix::fs::unlinkat(&v.dir, &tmp, AtFlags::empty());
        return Err(e);
    }
    place(&v, &tmp, op)
}

/// Undoes a clone in place: the file's own extents are unshared
/// (`FALLOC_FL_UNSHARE_RANGE`, or where that is missing by writing each
/// block's own bytes back), so it keeps its inode, hard links, owner,
/// extended attributes and (restored) mtime. Its content never changes,
/// so a stop at any moment loses nothing.
fn unshare(op: &Op) -> io::Result<()> {
    let v = fsops::at(&op.victim)?;
    if !is_ours(&v, &v.name, op) {
        return Err(other("the path no longer holds the cloned file"));
    }
    let f = v.open(OFlags::RDWR)?;
    let st = rustix::fs::fstat(&f)?;
    if !is(&st, &op.victim_stat) {
        return Err(other("the path changed during undo"));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let flags = rustix::fs::FallocateFlags::UNSHARE_RANGE;
    if size > 0 && rustix::fs::fallocate(&f, flags, 0, size).is_err() {
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        while off < size {
            let n = rustix::io::pread(&f, &mut buf, off)?;
            if n == 0 {
                break;
            }
            let mut w = 0;
            while w < n {
                w += rustix::io::pwrite(&f, &buf[w..n], off + w as u64)?;
            }
            off += n as u64;
        }
    }
    rustix::fs::fsync(&f)?;
    let t = fsops::timespec(op.victim_stat.mtime_ns);
    let omit = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    rustix::fs::futimens(
        &f,
        &rustix::fs::Timestamps {
            last_access: omit,
            last_modification: t,
        },
    )?;
    Ok(())
}

/// Renames the restored file at `tmp` over the victim's path, if that
/// still holds what dedupe made; returns the inode now there.
fn place(v: &At, tmp: &Path, op: &Op) -> io::Result<(u64, u64)> {
    let renamed = if is_ours(v, &v.name, op) {
        rustix::fs::renameat(&v.dir, tmp, &v.dir, &v.name).map_err(io::Error::from)
    } else {
        Err(other("the path changed during undo"))
    };
    if let Err(e) = renamed {
        let _ = rustix::fs::unlinkat(&v.dir, tmp, AtFlags::empty());
        return Err(e);
    }
    v.sync_dir();
    let st = v.stat()?;
    Ok((st.st_dev, st.st_ino))
}
