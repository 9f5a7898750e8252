//! Running a plan, a batch of steps at a time:
//!
//! 1. each step re-`lstat`s the victim and the kept file through their
//!    parent directory handles: both must be exactly what was hashed
//!    (device, inode, size, mtime, ctime, a regular file), else it is
//!    skipped; then the rules; then their bytes are compared to the end;
//! 2. the batch's intents are journaled (one sync);
//! 3. each change is made ([`super::change`]), the victim re-checked
//!    right before;
//! 4. the file systems touched are synced, then the outcomes journaled
//!    (one sync).
//!
//! A write into the victim between the comparison and the rename is lost
//! with the victim's inode; no tool on Linux can close that window without
//! `FIDEDUPERANGE`, which `clone` uses: there the kernel compares again
//! and shares only equal bytes, atomically with respect to writers.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

use super::change::{clone_into, move_to, remove, replace, symlink_target, trash_to};
use super::fsops::{self, At};
use super::journal::{Journal, Op, OpKind, OpState, StatRec};
use super::plan::{Plan, Step};
use super::Action;
use crate::entry::FileId;
use crate::pipeline::keys::FileStamp;

/// Options of a run besides the plan.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Hard-link files whose owner, group or mode differ (the link takes
    /// the kept file's).
    pub allow_metadata_change: bool,
    /// Act on an inode that has other hard links (the change frees nothing
    /// while they remain).
    pub allow_other_links: bool,
    /// Test hook: stop the process (`abort`) at this point of this step.
    #[doc(hidden)]
    pub crash_at: Option<(u64, CrashPoint)>,
    /// Test hook: called when a batch is checked and journaled, right
    /// before its changes.
    #[doc(hidden)]
    pub before_changes: Option<fn(&Plan)>,
}

/// Points inside a step where a test may stop the process.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The intent is journaled; nothing changed yet.
    AfterIntent,
    /// The link exists at its temporary name.
    AfterTemp,
    /// The change is made; its outcome is not journaled.
    AfterChange,
}

/// Why a step was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The victim is gone or no longer what was hashed.
    VictimChanged,
    /// The kept file is gone or no longer what was hashed.
    KeptChanged,
    /// They are one inode already.
    AlreadyLinked,
    /// The bytes differ (the report is stale, or a hash collided).
    Differs,
    /// A hard link or rename cannot cross file systems.
    OtherDevice,
    /// The victim's inode has links the plan does not cover.
    OtherLinks(u64),
    /// Owner, group or mode differ (a hard link would change them).
    Metadata,
    /// `move`: something already exists at the destination.
    DestExists,
    /// On different devices, one of them an overlay or FUSE mount, which
    /// can show one file at two paths.
    MaybeSameFile,
    /// `clone`: the two files already share every extent.
    AlreadyShared,
    /// `clone`: the file system cannot share extents.
    NoReflink,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::VictimChanged => f.write_str("changed or gone since the scan"),
            Skip::KeptChanged => f.write_str("the kept copy changed or is gone since the scan"),
            Skip::AlreadyLinked => f.write_str("already the same file as the kept copy"),
            Skip::Differs => f.write_str("content differs from the kept copy"),
            Skip::OtherDevice => f.write_str("on another file system than its target"),
            Skip::OtherLinks(n) => write!(f, "has {n} hard links (the others would keep it)"),
            Skip::Metadata => f.write_str(
                "owner, group or mode differ from the kept copy's (see --allow-metadata-change)",
            ),
            Skip::DestExists => f.write_str("the destination exists"),
            Skip::MaybeSameFile => {
                f.write_str("may be the kept file itself, seen through an overlay or FUSE mount")
            }
            Skip::AlreadyShared => f.write_str("already shares every extent with the kept copy"),
            Skip::NoReflink => f.write_str("the file system cannot share extents"),
        }
    }
}

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Made (and journaled).
    Done,
    /// Not made, for a reason that is not an error.
    Skipped(Skip),
    /// Not made: a system call failed.
    Failed(String),
}

/// Totals of a run.
#[derive(Clone, Debug, Default)]
pub struct ActReport {
    /// Changes made.
    pub done: u64,
    /// Steps skipped.
    pub skipped: u64,
    /// Steps that failed.
    pub failed: u64,
    /// Bytes given back (the victims' sizes).
    pub bytes: u64,
    /// The run stopped early (cancelled).
    pub interrupted: bool,
}

/// Steps whose intents are journaled with one sync, then made, then
/// recorded with one more: three syncs per step made `link` on 20k
/// duplicates take 20 s here, most of it waiting for the disk. A batch
/// holds at most four descriptors per step (two directories, the victim,
/// for `clone` the kept file), so 128 stays well inside the usual limit
/// of 1024.
const BATCH: usize = 128;

/// Threads that close victims (see [`execute`]).
const CLOSERS: usize = 4;

/// A checked step, ready to be journaled and made.
struct Ready {
    index: usize,
    op: Op,
    v: At,
    k: At,
    kst: rustix::fs::Stat,
    /// The victim, open: see [`execute`] on where it is closed.
    vf: std::os::fd::OwnedFd,
    /// `clone`: the kept file, open (the source of the extents).
    kf: Option<std::os::fd::OwnedFd>,
}

/// Runs `plan`, journaling into `journal`; `on_step` hears each outcome.
/// `stop` is polled between batches of steps. A journal that cannot be
/// written stops the run with that error: nothing is changed unrecorded.
pub fn execute(
    plan: &Plan,
    opts: &ExecOptions,
    journal: &mut Journal,
    stop: &dyn Fn() -> bool,
    mut on_step: impl FnMut(&Step, &Outcome),
) -> io::Result<ActReport> {
    let mut report = ActReport::default();
    // A kept file gains a link (and a new ctime) with each hard link made
    // to it: what this run did to it is not a change since the scan.
    let mut ours_now: HashMap<FileId, FileStamp> = HashMap::new();
    let mut count = |report: &mut ActReport, step: &Step, outcome: &Outcome, frees: bool| {
        match outcome {
            Outcome::Done => {
                report.done += 1;
                if frees {
                    report.bytes += step.size;
                }
            }
            Outcome::Skipped(_) => report.skipped += 1,
            Outcome::Failed(_) => report.failed += 1,
        }
        on_step(step, outcome);
    };
    // Freeing a victim's blocks (truncate, and on a file system mounted
    // with `discard` a synchronous discard per extent) happens when its
    // last link goes and its last descriptor closes. Each victim is held
    // open across its change and closed by these threads, so that wait
    // leaves the steps' thread and several overlap: on this machine it
    // was most of a 20k-file `link`.
    // Bounded: when closing falls behind, the steps wait rather than hold
    // every victim open (a descriptor each, under a limit of often 1024).
    let (closer, closing) = crossbeam_channel::bounded::<std::os::fd::OwnedFd>(CLOSERS * 32);
    std::thread::scope(|scope| -> io::Result<()> {
        for _ in 0..CLOSERS {
            let closing = closing.clone();
            scope.spawn(move || closing.iter().for_each(drop));
        }
        drop(closing);
        let result = run_batches(
            plan,
            opts,
            journal,
            stop,
            &mut report,
            &mut ours_now,
            &mut count,
            &closer,
        );
        drop(closer);
        result
    })?;
    journal.end(&serde_json::json!({
        "done": report.done, "skipped": report.skipped, "failed": report.failed,
        "bytes": report.bytes, "interrupted": report.interrupted,
    }))?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn run_batches(
    plan: &Plan,
    opts: &ExecOptions,
    journal: &mut Journal,
    stop: &dyn Fn() -> bool,
    report: &mut ActReport,
    ours_now: &mut HashMap<FileId, FileStamp>,
    count: &mut impl FnMut(&mut ActReport, &Step, &Outcome, bool),
    closer: &crossbeam_channel::Sender<std::os::fd::OwnedFd>,
) -> io::Result<()> {
    let mut steps = plan.steps.iter().enumerate().peekable();
    let mut run = RunState {
        taken: HashSet::new(),
        covered: HashMap::new(),
        freed: HashSet::new(),
    };
    // Paths of one inode the plan acts on (with `--hard-links`, every
    // path of a losing inode is a step of its own).
    for s in &plan.steps {
        *run.covered.entry(s.victim.stamp.id).or_insert(0) += 1;
    }
    while steps.peek().is_some() {
        if stop() {
            report.interrupted = true;
            break;
        }
        // Check and compare a batch; steps that fail a check are done with.
        let mut batch: Vec<Ready> = Vec::new();
        while batch.len() < BATCH {
            let Some((i, step)) = steps.next() else { break };
            let keep = ours_now
                .get(&step.keep.stamp.id)
                .unwrap_or(&step.keep.stamp);
            let victim = ours_now
                .get(&step.victim.stamp.id)
                .unwrap_or(&step.victim.stamp);
            match prepare(&plan.action, opts, i, step, (*keep, *victim), &mut run) {
                Ok(r) => batch.push(r),
                Err(outcome) => count(report, step, &outcome, false),
            }
        }
        if batch.is_empty() {
            continue;
        }
        journal.intents(batch.iter().map(|r| &r.op))?;
        if let Some(hook) = opts.before_changes {
            hook(plan);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for r in &batch {
            crash(opts, r.op.op, CrashPoint::AfterIntent);
            let step = &plan.steps[r.index];
            let was = fsops::stamp_of(&r.kst);
            let keep = ours_now.get(&was.id).copied().unwrap_or(was);
            let vs = ours_now
                .get(&step.victim.stamp.id)
                .copied()
                .unwrap_or(step.victim.stamp);
            let outcome = match r.op.kind {
                OpKind::Remove => remove(&r.v, &vs, &r.k, &keep),
                OpKind::Link | OpKind::Symlink => replace(&r.op, opts, &r.v, &vs, &r.k, &keep),
                OpKind::Move => move_to(&r.v, &vs, r.op.dest.as_deref()),
                OpKind::Trash => trash_to(&r.op, &r.v, &vs, &r.k, &keep),
                OpKind::Clone => clone_into(
                    &r.v,
                    &vs,
                    &r.vf,
                    &r.k,
                    &keep,
                    r.kf.as_ref().expect("clone steps hold the kept file"),
                ),
            };
            crash(opts, r.op.op, CrashPoint::AfterChange);
            // A hard link moves the kept file's ctime: take the new one as
            // ours only if its size and mtime did not move (a write).
            if outcome == Outcome::Done && r.op.kind == OpKind::Link {
                if let Ok(st) = r.k.stat() {
                    let now = fsops::stamp_of(&st);
                    if (now.id, now.size, now.mtime_ns) == (keep.id, keep.size, keep.mtime_ns) {
                        ours_now.insert(now.id, now);
                    }
                }
            }
            // Likewise a victim's inode that lives on at its other paths
            // (the next steps of a hard-link set): unlinking one moved
            // its ctime.
            if outcome == Outcome::Done {
                if let Ok(st) = rustix::fs::fstat(&r.vf) {
                    let now = fsops::stamp_of(&st);
                    if st.st_nlink > 0
                        && (now.id, now.size, now.mtime_ns) == (vs.id, vs.size, vs.mtime_ns)
                    {
                        ours_now.insert(now.id, now);
                    }
                }
            }
            outcomes.push(outcome);
        }
        // The changes on disk before their outcomes are: one syncfs per
        // file system touched (a directory fsync each would cost what the
        // journal's per-step syncs did).
        let mut synced = Vec::new();
        for r in &batch {
            // A victim's directory is on the victim's file system.
            if !synced.contains(&r.op.victim_stat.dev) {
                synced.push(r.op.victim_stat.dev);
                let _ = rustix::fs::syncfs(&r.v.dir);
            }
        }
        if let Some(to) = batch.iter().find_map(|r| r.op.dest.as_deref()) {
            if let Ok(d) = fsops::at(to) {
                let _ = rustix::fs::syncfs(&d.dir);
            }
        }
        journal.outcomes(batch.iter().zip(&outcomes).map(|(r, o)| {
            let why = match o {
                Outcome::Done => None,
                Outcome::Skipped(s) => Some(s.to_string()),
                Outcome::Failed(e) => Some(e.clone()),
            };
            let state = if why.is_none() {
                OpState::Done
            } else {
                OpState::NotDone
            };
            (r.op.op, state, why)
        }))?;
        for (r, outcome) in batch.into_iter().zip(&outcomes) {
            let step = &plan.steps[r.index];
            // Bytes are freed when the victim's inode lost its last link
            // (a moved or trashed file still takes its space), or by a
            // clone.
            let frees = match r.op.kind {
                OpKind::Clone => true,
                OpKind::Move | OpKind::Trash => false,
                // Once per inode: a hard-link set's steps all see it gone.
                _ => {
                    rustix::fs::fstat(&r.vf).is_ok_and(|st| st.st_nlink == 0)
                        && run.freed.insert(r.op.victim_stat.ino_key())
                }
            };
            count(report, step, outcome, frees);
            let _ = closer.send(r.vf);
        }
    }
    Ok(())
}

pub(super) fn crash(opts: &ExecOptions, op: u64, at: CrashPoint) {
    if opts.crash_at == Some((op, at)) {
        std::process::abort();
    }
}

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
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
struct RunState {
    /// Trash names given to this run's steps (not on disk until made).
    taken: HashSet<std::path::PathBuf>,
    /// How many steps act on each victim inode.
    covered: HashMap<FileId, u64>,
    /// Victim inodes whose bytes were counted as freed.
    freed: HashSet<(u64, u64)>,
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

/// Checks a step (both files unchanged since the scan, the rules, equal
/// bytes); `Err` is the step's final outcome.
fn prepare(
    action: &Action,
    opts: &ExecOptions,
    index: usize,
    step: &Step,
    (keep_stamp, victim_stamp): (FileStamp, FileStamp),
    run: &mut RunState,
) -> Result<Ready, Outcome> {
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
    // The bytes, now, through handles checked to be the stat'ed inodes.
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
    // The hash undo will check is computed here, from the bytes compared,
    // never taken from a report.
    let hash = match fsops::same_bytes(&vf, &kf, step.algo) {
        Ok(Some(digest)) => digest,
        Ok(None) => return Err(Skipped(Skip::Differs)),
        Err(e) => return Err(failed(format!("cannot compare: {e}"))),
    };
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
            ))
        }
        _ => step.dest.as_deref().map(abs),
    };
    let op = Op {
        op: op_no,
        kind,
        victim: abs(&step.victim),
        keep: abs(&step.keep),
        // A link's temporary name beside the victim; a trash info file's
        // in the trash's info directory.
        tmp: matches!(kind, OpKind::Link | OpKind::Symlink | OpKind::Trash)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{DuplicateGroup, GroupFile};
    use crate::hash::{Digest, HashAlgo};
    use std::path::PathBuf;

    fn member(p: &Path) -> GroupFile {
        GroupFile {
            path: p.to_path_buf(),
            stamp: fsops::stamp_of(&rustix::fs::stat(p).unwrap()),
        }
    }

    /// The kept file written to after the comparison, before the changes:
    /// no copy may go, or the compared content would exist nowhere.
    #[test]
    fn a_kept_file_written_after_the_comparison_stops_every_change() {
        fn rewrite_kept(plan: &Plan) {
            std::fs::write(&plan.steps[0].keep.path, b"MODIFIED").unwrap();
        }
        for action in [
            Action::Remove,
            Action::Link {
                symbolic: false,
                relative: false,
            },
        ] {
            let t = tempfile::tempdir().unwrap();
            let paths: Vec<PathBuf> = ["k", "v1", "v2"].iter().map(|n| t.path().join(n)).collect();
            for p in &paths {
                std::fs::write(p, b"ORIGINAL").unwrap();
            }
            let group = DuplicateGroup {
                id: 1,
                size: 8,
                hash: Digest::from_slice(&[0; 32]),
                algo: HashAlgo::Blake3,
                files: paths.iter().map(|p| member(p)).collect(),
            };
            let opts = super::super::PlanOptions {
                keep: vec![super::super::KeepRule::ShortestPath],
                ..Default::default()
            };
            let plan = super::super::plan(&[group], &action, &opts);
            assert_eq!(plan.steps.len(), 2);
            let mut journal =
                Journal::create(&t.path().join("j/run.jsonl"), &serde_json::json!({})).unwrap();
            let exec = ExecOptions {
                before_changes: Some(rewrite_kept),
                ..ExecOptions::default()
            };
            let mut outcomes = Vec::new();
            execute(&plan, &exec, &mut journal, &|| false, |_, o| {
                outcomes.push(o.clone());
            })
            .unwrap();
            assert_eq!(
                outcomes,
                vec![Outcome::Skipped(Skip::KeptChanged); 2],
                "{action:?}"
            );
            for v in &paths[1..] {
                assert_eq!(std::fs::read(v).unwrap(), b"ORIGINAL", "{action:?}");
            }
        }
    }
}
