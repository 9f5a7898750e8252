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

use super::change::{clone_into, copy_move, move_to, remove, replace, trash_to};
use super::check::{check, compare, ready, Checked, Ready, RunState};
use super::fsops;
use super::journal::{Journal, OpKind, OpState};
use super::plan::{Plan, Step};
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
    /// `move` to another file system: copy, sync and verify, then unlink
    /// (otherwise such a move is skipped).
    pub allow_copy: bool,
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
/// duplicates take 20 s here, most of it waiting for the disk, and
/// batches of 128 still spent a third of a `link` run in the journal's
/// syncs. A step holds up to four descriptors until its batch is made
/// (two directories, the victim, for `clone` the kept file), so a batch
/// takes at most half of what the process may open: see [`batch_size`].
const MAX_BATCH: usize = 2048;
const MIN_BATCH: usize = 16;

/// Steps per batch under the process's descriptor limit (the command
/// line raises its soft limit to the hard one; 1024, the usual soft
/// limit, gives 128).
fn batch_size() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 8)
        .unwrap_or(MAX_BATCH)
        .clamp(MIN_BATCH, MAX_BATCH)
}

/// Compares a batch's checked steps, side by side on up to this many
/// threads: the comparison reads both files of every step, as much as
/// the search read, and from the page cache it is CPU work.
const COMPARERS: usize = 4;

fn compare_batch(plan: &Plan, checked: &[Checked]) -> Vec<Result<crate::hash::Digest, Outcome>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(COMPARERS)
        .min(checked.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<crate::hash::Digest, Outcome>>> =
        checked.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        // Each thread takes the next step not taken and keeps what it
        // found, by index, until it is joined.
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = checked.get(i) else { break };
                        mine.push((i, compare(c, &plan.steps[c.index()])));
                    }
                    mine
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().unwrap_or_default() {
                results[i] = Some(r);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Outcome::Failed("not compared".into()))))
        .collect()
}

/// Threads that close victims (see [`execute`]).
const CLOSERS: usize = 4;

/// Runs `plan`, journaling into `journal`; `on_step` hears each outcome,
/// with where the file went for a move or trash that was made (a trash
/// name is chosen only when the step runs).
/// `stop` is polled between batches of steps. A journal that cannot be
/// written stops the run with that error: nothing is changed unrecorded.
pub fn execute(
    plan: &Plan,
    opts: &ExecOptions,
    journal: &mut Journal,
    stop: &dyn Fn() -> bool,
    mut on_step: impl FnMut(&Step, &Outcome, Option<&std::path::Path>),
) -> io::Result<ActReport> {
    let mut report = ActReport::default();
    // A kept file gains a link (and a new ctime) with each hard link made
    // to it: what this run did to it is not a change since the scan.
    let mut ours_now: HashMap<FileId, FileStamp> = HashMap::new();
    let mut count = |report: &mut ActReport,
                     step: &Step,
                     outcome: &Outcome,
                     frees: bool,
                     dest: Option<&std::path::Path>| {
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
        on_step(step, outcome, dest.filter(|_| *outcome == Outcome::Done));
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
    count: &mut impl FnMut(&mut ActReport, &Step, &Outcome, bool, Option<&std::path::Path>),
    closer: &crossbeam_channel::Sender<std::os::fd::OwnedFd>,
) -> io::Result<()> {
    let mut steps = plan.steps.iter().enumerate().peekable();
    let mut run = RunState {
        taken: HashSet::new(),
        next_suffix: HashMap::new(),
        cloned: HashSet::new(),
        covered: HashMap::new(),
    };
    // Paths of one inode the plan acts on (with `--hard-links`, every
    // path of a losing inode is a step of its own).
    for s in &plan.steps {
        *run.covered.entry(s.victim.stamp.id).or_insert(0) += 1;
    }
    let batch_len = batch_size();
    while steps.peek().is_some() {
        if stop() {
            report.interrupted = true;
            break;
        }
        // Check and compare a batch; steps that fail a check are done with.
        let mut checked: Vec<Checked> = Vec::new();
        while checked.len() < batch_len {
            let Some((i, step)) = steps.next() else { break };
            let keep = ours_now
                .get(&step.keep.stamp.id)
                .unwrap_or(&step.keep.stamp);
            let victim = ours_now
                .get(&step.victim.stamp.id)
                .unwrap_or(&step.victim.stamp);
            match check(&plan.action, opts, i, step, (*keep, *victim), &mut run) {
                Ok(c) => checked.push(c),
                Err(outcome) => count(report, step, &outcome, false, None),
            }
        }
        let hashes = compare_batch(plan, &checked);
        let mut batch: Vec<Ready> = Vec::with_capacity(checked.len());
        for (c, hash) in checked.into_iter().zip(hashes) {
            let step = &plan.steps[c.index()];
            match hash.and_then(|h| ready(&plan.action, opts, step, c, &h, &mut run)) {
                Ok(r) => batch.push(r),
                Err(outcome) => count(report, step, &outcome, false, None),
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
            outcomes.push(make(plan, opts, r, ours_now));
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
        journal.outcomes(batch.iter().zip(&outcomes).map(|(r, (o, _))| {
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
            let (outcome, gone) = outcome;
            let frees = match r.op.kind {
                OpKind::Clone => true,
                OpKind::Move | OpKind::Trash => false,
                _ => *gone,
            };
            count(report, step, outcome, frees, r.op.dest.as_deref());
            let _ = closer.send(r.vf);
        }
    }
    Ok(())
}

/// Makes one checked, journaled change, and notes what it did to the
/// stamps of the inodes it touched. Also says whether the victim's inode
/// lost its last link with this change (exactly one step of a hard-link
/// set sees that, so its bytes are counted once).
fn make(
    plan: &Plan,
    opts: &ExecOptions,
    r: &Ready,
    ours_now: &mut HashMap<FileId, FileStamp>,
) -> (Outcome, bool) {
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
        OpKind::Move if r.op.tmp.is_some() => copy_move(&r.op, opts, &r.v, &vs, &r.vf),
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
    if outcome != Outcome::Done {
        return (outcome, false);
    }
    // A hard link moves the kept file's ctime: take the new one as ours
    // only if its size and mtime did not move (a write).
    let mut note = |st: &rustix::fs::Stat, was: &FileStamp| {
        let now = fsops::stamp_of(st);
        if st.st_nlink > 0 && (now.id, now.size, now.mtime_ns) == (was.id, was.size, was.mtime_ns) {
            ours_now.insert(now.id, now);
        }
    };
    if r.op.kind == OpKind::Link {
        if let Ok(st) = r.k.stat() {
            note(&st, &keep);
        }
    }
    // Likewise a victim's inode that lives on at its other paths (the
    // next steps of a hard-link set): unlinking one moved its ctime.
    let Ok(st) = rustix::fs::fstat(&r.vf) else {
        return (outcome, false);
    };
    note(&st, &vs);
    (outcome, st.st_nlink == 0)
}

pub(super) fn crash(opts: &ExecOptions, op: u64, at: CrashPoint) {
    if opts.crash_at == Some((op, at)) {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::Action;
    use crate::group::{DuplicateGroup, GroupFile};
    use crate::hash::{Digest, HashAlgo};
    use std::path::Path;
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
            execute(&plan, &exec, &mut journal, &|| false, |_, o, _| {
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
