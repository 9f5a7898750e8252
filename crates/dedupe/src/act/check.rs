//! The checks before a change, each a reason to skip the step: both
//! files unchanged since the scan (through their parent directories'
//! handles), the rules of the action, and equal bytes compared to the end.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::change::symlink_target;
use super::exec::{ExecOptions, Outcome, Skip};
use super::fsops::{self, At};
use super::journal::{Op, OpKind, OpState, StatRec};
use super::plan::Step;
use super::Action;
use crate::entry::FileId;
use crate::pipeline::keys::FileStamp;

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

/// A checked step, ready to be journaled and made.
pub(super) struct Ready {
    pub(super) index: usize,
    pub(super) op: Op,
    pub(super) v: At,
    pub(super) k: At,
    pub(super) kst: rustix::fs::Stat,
    /// The victim, open: see [`execute`] on where it is closed.
    pub(super) vf: std::os::fd::OwnedFd,
    /// `clone`: the kept file, open (the source of the extents).
    pub(super) kf: Option<std::os::fd::OwnedFd>,
}

/// File systems on which two paths on different devices may be one file
/// (an overlay and its lower directory; a FUSE union such as mergerfs and
/// its branches): device and inode do not tell, and equal bytes prove
/// nothing, so nothing is removed, linked or moved across them.
fn aliasing_fs(dir: &At) -> bool {
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    rustix::fs::fstatfs(&dir.dir).is_ok_and(|s| {
        // `f_type`'s width differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let t = s.f_type as i64;
        t == OVERLAYFS_SUPER_MAGIC || t == FUSE_SUPER_MAGIC
    })
}

/// What the checks of a run remember across steps.
pub(super) struct RunState {
    /// Trash names given to this run's steps (not on disk until made).
    pub(super) taken: HashSet<std::path::PathBuf>,
    /// `clone`: inodes already given a step (one step shares an inode's
    /// extents for all its paths).
    pub(super) cloned: HashSet<(u64, u64)>,
    /// The next trash-name suffix to try, per trash and name.
    pub(super) next_suffix: HashMap<std::path::PathBuf, u64>,
    /// How many steps act on each victim inode.
    pub(super) covered: HashMap<FileId, u64>,
}

/// The rules of the kinds that need both files on one file system: a hard
/// link keeps one owner, mode and set of extended attributes; a clone of
/// files that already share every extent is done already.
fn same_fs_rules(
    kind: OpKind,
    opts: &ExecOptions,
    (vst, vf): (&rustix::fs::Stat, &std::os::fd::OwnedFd),
    (kst, kf): (&rustix::fs::Stat, &std::os::fd::OwnedFd),
) -> Result<(), Outcome> {
    use Outcome::Skipped;
    if !matches!(kind, OpKind::Link | OpKind::Clone) {
        return Ok(());
    }
    if vst.st_dev != kst.st_dev {
        return Err(Skipped(Skip::OtherDevice));
    }
    if kind == OpKind::Clone {
        // A re-run finds nothing left to do, without reading a byte.
        if extent_share::fully_shared(vf, kf).unwrap_or(false) {
            return Err(Skipped(Skip::AlreadyShared));
        }
        return Ok(());
    }
    // One inode has one owner, mode and set of extended attributes
    // (capabilities, ACLs, security labels): a link would change them.
    let meta = |s: &rustix::fs::Stat| (s.st_uid, s.st_gid, s.st_mode & 0o7777);
    if !opts.allow_metadata_change
        && (meta(vst) != meta(kst) || fsops::xattrs(vf) != fsops::xattrs(kf))
    {
        return Err(Skipped(Skip::Metadata));
    }
    Ok(())
}

/// Where a move or trash step puts the victim, and whether that is a
/// copy to another file system (`Err`: the step's outcome).
fn destination(
    kind: OpKind,
    opts: &ExecOptions,
    step: &Step,
    (v, vst): (&At, &rustix::fs::Stat),
    run: &mut RunState,
) -> Result<(Option<std::path::PathBuf>, bool), Outcome> {
    use Outcome::Skipped;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dest = match kind {
        OpKind::Trash => {
            let dir = step
                .victim
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty());
            let trash = super::trash::trash_dir(dir.unwrap_or(Path::new(".")), vst.st_dev)
                .map_err(|e| failed(format!("no usable trash directory: {e}")))?;
            Some(super::trash::free_name(
                &trash,
                v.name.as_os_str(),
                &mut run.taken,
                &mut run.next_suffix,
            ))
        }
        _ => step.dest.as_deref().map(abs),
    };
    // A move to another file system is refused, or with `--allow-copy`
    // made as a copy (synced and verified) before the original goes.
    let copy = kind == OpKind::Move
        && dest
            .as_deref()
            .is_some_and(|d| fsops::device_of(d) != Some(vst.st_dev));
    if copy && !opts.allow_copy {
        return Err(Skipped(Skip::OtherDevice));
    }
    Ok((dest, copy))
}

/// A step whose files passed every check but the byte comparison, open.
pub(super) struct Checked {
    index: usize,
    kind: OpKind,
    v: At,
    k: At,
    vst: rustix::fs::Stat,
    kst: rustix::fs::Stat,
    vf: std::os::fd::OwnedFd,
    kf: std::os::fd::OwnedFd,
}

impl Checked {
    /// The step's index in the plan.
    pub(super) fn index(&self) -> usize {
        self.index
    }
}

/// Checks a step (both files unchanged since the scan, the rules); `Err`
/// is the step's final outcome. The bytes are compared next, by
/// [`compare`], then [`ready`] makes the journal entry.
pub(super) fn check(
    action: &Action,
    opts: &ExecOptions,
    index: usize,
    step: &Step,
    (keep_stamp, victim_stamp): (FileStamp, FileStamp),
    run: &mut RunState,
) -> Result<Checked, Outcome> {
    use Outcome::Skipped;
    let v = fsops::at(&step.victim).map_err(|_| Skipped(Skip::VictimChanged))?;
    let vst = match v.stat() {
        Ok(st) if fsops::unchanged(&st, &victim_stamp) => st,
        _ => return Err(Skipped(Skip::VictimChanged)),
    };
    let k = fsops::at(&step.keep).map_err(|_| Skipped(Skip::KeptChanged))?;
    let kst = match k.stat() {
        Ok(st) if fsops::unchanged(&st, &keep_stamp) => st,
        _ => return Err(Skipped(Skip::KeptChanged)),
    };
    if (vst.st_dev, vst.st_ino) == (kst.st_dev, kst.st_ino) {
        return Err(Skipped(Skip::AlreadyLinked));
    }
    if vst.st_dev != kst.st_dev && (aliasing_fs(&v) || aliasing_fs(&k)) {
        return Err(Skipped(Skip::MaybeSameFile));
    }
    let kind = match action {
        Action::Remove => OpKind::Remove,
        Action::Link {
            symbolic: false, ..
        } => OpKind::Link,
        Action::Link { symbolic: true, .. } => OpKind::Symlink,
        Action::Move { .. } => OpKind::Move,
        Action::Trash => OpKind::Trash,
        Action::Clone => OpKind::Clone,
    };
    // Sharing extents changes the inode's data for all its links alike:
    // other links are no reason to leave it. Otherwise an inode goes only
    // if the plan acts on every one of its links (found with
    // `--hard-links`), or when asked.
    let covered = run.covered.get(&victim_stamp.id).copied().unwrap_or(0);
    if kind != OpKind::Clone && vst.st_nlink > covered.max(1) && !opts.allow_other_links {
        return Err(Skipped(Skip::OtherLinks(vst.st_nlink)));
    }
    // The bytes are read through handles checked to be the stat'ed inodes.
    let (Ok(vf), Ok(kf)) = (v.open_read(), k.open_read()) else {
        return Err(failed("cannot open both files to compare them"));
    };
    let same_inode = |fd: &std::os::fd::OwnedFd, st: &rustix::fs::Stat| {
        rustix::fs::fstat(fd).is_ok_and(|f| (f.st_dev, f.st_ino) == (st.st_dev, st.st_ino))
    };
    if !same_inode(&vf, &vst) {
        return Err(Skipped(Skip::VictimChanged));
    }
    if !same_inode(&kf, &kst) {
        return Err(Skipped(Skip::KeptChanged));
    }
    same_fs_rules(kind, opts, (&vst, &vf), (&kst, &kf))?;
    if kind == OpKind::Clone && !run.cloned.insert((vst.st_dev, vst.st_ino)) {
        return Err(Skipped(Skip::AlreadyShared));
    }
    Ok(Checked {
        index,
        kind,
        v,
        k,
        vst,
        kst,
        vf,
        kf,
    })
}

/// Compares a checked step's two files to the end of both: the hash
/// undo will check, computed from the bytes compared (never taken from a
/// report), or the step's outcome. Touches nothing shared, so a batch's
/// comparisons run side by side.
pub(super) fn compare(c: &Checked, step: &Step) -> Result<crate::hash::Digest, Outcome> {
    match fsops::same_bytes(&c.vf, &c.kf, step.algo) {
        Ok(Some(digest)) => Ok(digest),
        Ok(None) => Err(Outcome::Skipped(Skip::Differs)),
        Err(e) => Err(failed(format!("cannot compare: {e}"))),
    }
}

/// A compared step's journal entry (with its destination, for a move or
/// trash): ready to be journaled and made.
pub(super) fn ready(
    action: &Action,
    opts: &ExecOptions,
    step: &Step,
    c: Checked,
    hash: &crate::hash::Digest,
    run: &mut RunState,
) -> Result<Ready, Outcome> {
    let Checked {
        index,
        kind,
        v,
        k,
        vst,
        kst,
        vf,
        kf,
    } = c;
    let target = match kind {
        OpKind::Symlink => match symlink_target(action, &step.victim, &step.keep) {
            Ok(t) => Some(t),
            Err(e) => return Err(failed(format!("cannot resolve the link target: {e}"))),
        },
        _ => None,
    };
    let op_no = index as u64 + 1;
    // Absolute, so recovery and undo work from any directory.
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dest, copy) = destination(kind, opts, step, (&v, &vst), run)?;
    let op = Op {
        op: op_no,
        kind,
        victim: abs(&step.victim),
        keep: abs(&step.keep),
        // A link's temporary name beside the victim; a trash info file's
        // in the trash's info directory; a copy's beside its destination.
        tmp: (matches!(kind, OpKind::Link | OpKind::Symlink | OpKind::Trash) || copy)
            .then(|| fsops::temp_name(op_no)),
        dest,
        target,
        victim_stat: StatRec::of(&vst),
        keep_stat: StatRec::of(&kst),
        hash: hash.to_hex(),
        algo: step.algo.name().to_string(),
        state: OpState::Pending,
        undo_tmp: None,
    };
    Ok(Ready {
        index,
        op,
        v,
        k,
        kst,
        vf,
        kf: (kind == OpKind::Clone).then_some(kf),
    })
}
