//! The duplicate pipeline (seed 000): metadata -> quick check ->
//! statistical -> full hash, fed by the streaming walker while it is still
//! running, with groups reported the moment they are confirmed.
//!
//! ```text
//!  walker batches ─▶ coordinator (owns all state) ── jobs, largest first ─▶ readers (N threads)
//!                         ▲                                                      │
//!                         └──────────────────── keys / digests ◀──────────────────┘
//! ```
//!
//! * Metadata: files are bucketed by size as they arrive; a file whose size
//!   no other file has is never opened. Hard links to one inode collapse to
//!   one file.
//! * Quick check: head and tail (4 KiB each). Statistical: 16 samples
//!   spread through files over 4 MiB, so files that differ only in the
//!   middle split without being read whole. Full: the whole content with
//!   the chosen algorithm. Files up to 64 KiB skip straight to the full
//!   hash, one read each.
//! * A file goes to the next stage only when another shares its key; the
//!   trie in the `state` module keeps that bookkeeping.
//! * Priority: when work waits, larger files go first (they free the most
//!   space). Batching: small files travel 1-64 per job, large files one per
//!   job. Adaptive: see [`adapt`].
//! * In-flight jobs are capped at 2 x readers, so paths are built only for
//!   work about to run and memory stays bounded.
//! * Everything the coordinator knows is in one thread: no locks on the
//!   hot path, and results are deterministic given the same inputs.

pub mod adapt;
mod groups;
mod paths;
mod read;
mod slab;
mod state;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, Receiver};

use groups::GroupStore;
pub use read::Stage;
use read::{Done, Outcome, Reader, Task};
use state::{Rules, State};

use crate::config::{Config, StreamingConfig};
use crate::entry::{EntryError, ErrorKind};
use crate::group::DuplicateGroup;
use crate::hash::HashAlgo;
use crate::progress::ProgressTracker;
use crate::walk::{StreamingWalker, WalkError, WalkEvent};

/// Files at least this large get a job to themselves.
const LARGE_JOB: u64 = 1 << 20;
/// Tasks that may wait for a reader before the coordinator stops taking
/// files from the walker. The walker then blocks on its own bounded
/// channel, so a walk far faster than hashing cannot pile the whole tree
/// up in memory.
const MAX_BACKLOG: usize = 16_384;

/// How duplicates are decided.
#[derive(Clone, Debug)]
pub struct FindOptions {
    /// Full-content hash.
    pub hash: HashAlgo,
    /// Compare byte by byte before reporting a file as a duplicate.
    pub verify: bool,
    /// Treat hard links to one inode as duplicates of each other (by
    /// default they are one file).
    pub hard_links: bool,
    /// Process while walking (the default). Off: walk everything, then
    /// process (the "traditional" mode of the seed's comparison).
    pub streaming: bool,
}

impl Default for FindOptions {
    fn default() -> Self {
        FindOptions {
            hash: HashAlgo::Blake3,
            verify: false,
            hard_links: false,
            streaming: true,
        }
    }
}

/// Something that happened during a run, delivered as it happens.
#[derive(Debug)]
pub enum FindEvent<'a> {
    /// A group was confirmed, or gained members (same id, full membership).
    Group(&'a DuplicateGroup),
    /// A file or directory could not be read, or changed during the run.
    Error(&'a EntryError),
}

/// Counts for one stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageStats {
    /// `size`, `quick`, `statistical`, `full` or `verify`.
    pub name: &'static str,
    /// Files this stage examined.
    pub files: u64,
    /// Bytes it read.
    pub bytes_read: u64,
    /// Files still candidates after it (they share their key with another).
    pub candidates_after: u64,
    /// Reader time spent in it, summed over threads, in milliseconds.
    pub busy_ms: u64,
    #[serde(skip)]
    busy_ns: u64,
}

/// The final statistics (the seed's "detailed error statistics in final
/// report").
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Regular files that passed the filters.
    pub files_scanned: u64,
    /// Their total size.
    pub bytes_scanned: u64,
    /// Directories listed.
    pub dirs_scanned: u64,
    /// Extra paths to an inode already seen (hard links), not read again.
    pub hard_links_collapsed: u64,
    /// Per stage: size, quick, statistical, full, verify.
    pub stages: Vec<StageStats>,
    /// Duplicate groups.
    pub groups: u64,
    /// Files beyond the first in each group.
    pub redundant_files: u64,
    /// Bytes beyond the first copy in each group.
    pub redundant_bytes: u64,
    /// Errors by kind (snake_case names), walk and pipeline together.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
    /// Errors per kind as an array indexed like `ErrorKind::ALL`.
    #[serde(skip)]
    pub error_counts: [u64; ErrorKind::ALL.len()],
    /// The full hash used.
    pub hash: HashAlgo,
    /// Whether groups were verified byte by byte.
    pub verified: bool,
    /// Streaming or traditional mode.
    pub streaming: bool,
    /// Readers used by the hashing stages.
    pub readers: usize,
    /// Wall time of the walk, in milliseconds.
    pub scan_ms: u64,
    /// Wall time of the whole run, in milliseconds.
    pub elapsed_ms: u64,
    /// From start to the first group reported, in milliseconds.
    pub first_group_ms: Option<u64>,
    /// The run was cancelled; results are partial.
    pub interrupted: bool,
}

/// What a run found. The groups are kept compact and turned into
/// [`DuplicateGroup`]s one at a time as they are read, so writing a report
/// of millions of duplicates does not hold all their paths at once.
pub struct FindReport {
    groups: GroupStore,
    /// Statistics.
    pub summary: Summary,
}

impl FindReport {
    /// The groups, largest files first (then by id).
    pub fn groups(&self) -> impl Iterator<Item = DuplicateGroup> + '_ {
        self.groups.iter()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// All groups, largest files first, as one vector.
    pub fn into_groups(self) -> Vec<DuplicateGroup> {
        self.groups.iter().collect()
    }
}

impl std::fmt::Debug for FindReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindReport")
            .field("groups", &self.groups.len())
            .field("summary", &self.summary)
            .finish()
    }
}

/// Cancels a running [`Finder::run`] from another thread.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ask the run to stop soon; it returns what it has confirmed so far.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindError {
    /// The walk could not start (bad configuration, a missing root).
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// A reader thread could not be started.
    #[error("cannot start reader thread: {0}")]
    Thread(std::io::Error),
    /// More files than one run can index.
    #[error(
        "more than {} candidate files in one run; split the run",
        state::MAX_FILES
    )]
    TooManyFiles,
    /// `hard_links` with `follow_links`: a symlink and its target are one
    /// file, hard links are two, and a followed link does not say which
    /// directory entry it names.
    #[error("hard links as duplicates (--hard-links) cannot be combined with following symlinks (--follow-links)")]
    HardLinksWithFollow,
}

/// Finds duplicate files: the walker plus the staged pipeline.
pub struct Finder {
    walker: StreamingWalker,
    config: Arc<Config>,
    options: FindOptions,
    progress: Arc<dyn ProgressTracker>,
    cancel: Cancel,
}

impl Finder {
    /// A finder over `config`'s files, tuned by `streaming`, deciding by
    /// `options`.
    pub fn new(
        config: Arc<Config>,
        progress: Arc<dyn ProgressTracker>,
        streaming: Option<StreamingConfig>,
        options: FindOptions,
    ) -> Finder {
        Finder {
            walker: StreamingWalker::new(Arc::clone(&config), Arc::clone(&progress), streaming),
            config,
            options,
            progress,
            cancel: Cancel::default(),
        }
    }

    /// A handle that cancels runs of this finder.
    pub fn canceller(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Finds the duplicate groups under `roots`, calling `on_event` as
    /// groups are confirmed and errors happen.
    ///
    /// A cancelled run returns what it confirmed so far, with
    /// `summary.interrupted` set; the canceller is reset at the end, so the
    /// next run starts afresh.
    pub fn run<P: AsRef<Path>>(
        &self,
        roots: &[P],
        on_event: impl FnMut(FindEvent<'_>),
    ) -> Result<FindReport, FindError> {
        let result = self.run_inner(roots, on_event);
        self.cancel.reset();
        result
    }

    fn run_inner<P: AsRef<Path>>(
        &self,
        roots: &[P],
        mut on_event: impl FnMut(FindEvent<'_>),
    ) -> Result<FindReport, FindError> {
        let started = Instant::now();
        if self.options.hard_links && self.config.follow_links {
            return Err(FindError::HardLinksWithFollow);
        }
        let readers = adapt::readers(&self.config);
        let mut large_readers = adapt::LargeReaders::new(roots, readers);
        let mut walk = self.walker.walk(roots)?;
        let walk_rx = walk.receiver().clone();

        // Readers: bounded job channel (the coordinator never has more than
        // 2 x readers jobs out, so sends never block); results come back
        // on a channel that holds at most that many messages too.
        let max_inflight = readers * 2;
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Vec<Task>>(max_inflight);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Vec<Done>>(max_inflight);
        let mut threads = Vec::with_capacity(readers);
        for i in 0..readers {
            let rx = job_rx.clone();
            let tx = done_tx.clone();
            let reader = Reader::new(self.options.hash, Arc::clone(&self.cancel.0));
            let progress = Arc::clone(&self.progress);
            let t = std::thread::Builder::new()
                .name(format!("dedupe-read-{i}"))
                .spawn(move || reader_loop(rx, tx, reader, &*progress))
                .map_err(FindError::Thread)?;
            threads.push(t);
        }
        drop((job_rx, done_tx));

        let mut state = State::new(Rules {
            algo: self.options.hash,
            verify: self.options.verify,
            hard_links: self.options.hard_links,
            follow_links: self.config.follow_links,
            large: LARGE_JOB,
            max_files: state::MAX_FILES,
        });
        let mut inflight_large = 0usize;
        let mut stages: [StageStats; 5] =
            ["size", "quick", "statistical", "full", "verify"].map(|name| StageStats {
                name,
                ..StageStats::default()
            });
        let mut pipeline_errors = [0u64; ErrorKind::ALL.len()];
        let mut first_group: Option<Duration> = None;
        let mut walking = true;
        let mut scan_stats = None;
        let mut inflight = 0usize;
        let mut interrupted = false;
        let mut overflow = false;
        let mut became = Vec::new();
        let mut reported_settled = (0u64, 0u64);

        loop {
            if !interrupted && (self.cancel.is_set() || overflow) {
                interrupted = true;
                walk.stop();
            }
            if interrupted {
                // Results of reads still in flight may queue more work;
                // none of it will run.
                state.clear_ready();
            } else if self.options.streaming || !walking {
                while inflight < max_inflight && state.has_ready() {
                    let batch = adapt::batch_for(state.ready_len(), readers);
                    let allow_large = inflight_large < large_readers.limit();
                    let Some(job) = state.next_job(batch, allow_large) else {
                        break;
                    };
                    if job.len() == 1 && job[0].file.expect.size >= LARGE_JOB {
                        inflight_large += 1;
                    }
                    if job_tx.send(job).is_err() {
                        break;
                    }
                    inflight += 1;
                }
            }
            emit(
                &mut state,
                false,
                &mut first_group,
                started,
                self.options.hash,
                &mut on_event,
            );
            // What is at rest dips when a waiting file goes back to work,
            // and the tracker takes only increases: report the high-water
            // mark, which ends at exactly the candidates added.
            let (files, bytes) = state.settled();
            let more = (
                files.saturating_sub(reported_settled.0),
                bytes.saturating_sub(reported_settled.1),
            );
            if more != (0, 0) {
                self.progress.candidates_settled(more.0, more.1);
                reported_settled = (reported_settled.0 + more.0, reported_settled.1 + more.1);
            }
            // Done when nothing is in flight and, unless cancelled, the
            // walk is over and nothing waits. A cancelled run does not wait
            // for the walk: dropping it stops and joins the scanners.
            if inflight == 0 && (interrupted || (!walking && !state.has_ready())) {
                break;
            }
            // Backpressure: with enough work queued, let the walker wait.
            let take_files = walking
                && !interrupted
                && (!self.options.streaming || state.ready_len() < MAX_BACKLOG);
            let walk_arm = if take_files { walk_rx.clone() } else { never() };
            select! {
                recv(walk_arm) -> ev => match ev {
                    Ok(WalkEvent::Batch(batch)) => {
                        for e in &batch {
                            if state.add(e, &mut became).is_err() {
                                overflow = true;
                                break;
                            }
                        }
                        if !became.is_empty() {
                            let bytes: u64 = became.iter().sum();
                            self.progress.candidates_added(became.len() as u64, bytes);
                            became.clear();
                        }
                    }
                    Ok(WalkEvent::Error(e)) => on_event(FindEvent::Error(&e)),
                    Err(_) => {
                        walking = false;
                        // Every event came through the channel, now closed:
                        // this joins the scanners and tells the tracker.
                        let rest = walk.next();
                        debug_assert!(rest.is_none());
                        scan_stats = Some(walk.stats());
                    }
                },
                recv(done_rx) -> results => {
                    let Ok(results) = results else { break };
                    inflight -= 1;
                    if results.len() == 1 && results[0].size >= LARGE_JOB {
                        inflight_large -= 1;
                        large_readers.observe(results[0].bytes_read, results[0].nanos);
                    }
                    for d in results {
                        apply(&mut state, d, &mut stages, &mut pipeline_errors, &mut on_event);
                    }
                }
            }
        }
        drop(job_tx);
        for t in threads {
            let _ = t.join();
        }
        if overflow {
            return Err(FindError::TooManyFiles);
        }
        emit(
            &mut state,
            true,
            &mut first_group,
            started,
            self.options.hash,
            &mut on_event,
        );
        let scan = scan_stats.unwrap_or_else(|| walk.stats());
        drop(walk);

        let passed = state.passed;
        for (i, s) in stages.iter_mut().enumerate() {
            if let Some(&n) = passed.get(i) {
                s.candidates_after = n;
            }
            s.busy_ms = s.busy_ns / 1_000_000;
        }
        let collapsed = state.collapsed_links;
        stages[0].files = scan.files.saturating_sub(collapsed);
        let error_counts: [u64; ErrorKind::ALL.len()] =
            std::array::from_fn(|i| scan.errors[i] + pipeline_errors[i]);
        let store = state.into_store();
        let summary = Summary {
            files_scanned: scan.files,
            bytes_scanned: scan.bytes,
            dirs_scanned: scan.dirs,
            hard_links_collapsed: collapsed,
            stages: stages.to_vec(),
            groups: store.len() as u64,
            redundant_files: store.redundant_files(),
            redundant_bytes: store.redundant_bytes(),
            errors: ErrorKind::ALL
                .iter()
                .zip(error_counts)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.as_str(), n))
                .collect(),
            error_counts,
            hash: self.options.hash,
            verified: self.options.verify,
            streaming: self.options.streaming,
            readers,
            scan_ms: scan.elapsed.as_millis() as u64,
            elapsed_ms: started.elapsed().as_millis() as u64,
            first_group_ms: first_group.map(|d| d.as_millis() as u64),
            interrupted,
        };
        Ok(FindReport {
            groups: store,
            summary,
        })
    }
}

/// Reports groups that are new or have grown (see `groups::Registry`).
fn emit(
    state: &mut State,
    force: bool,
    first: &mut Option<Duration>,
    started: Instant,
    algo: HashAlgo,
    on_event: &mut impl FnMut(FindEvent<'_>),
) {
    for g in state.take_due(force) {
        first.get_or_insert_with(|| started.elapsed());
        let group = DuplicateGroup {
            id: g.id,
            size: g.size,
            hash: g.digest,
            algo,
            files: g.files,
        };
        on_event(FindEvent::Group(&group));
    }
}

/// Applies one reader result to the state.
fn apply(
    state: &mut State,
    d: Done,
    stages: &mut [StageStats; 5],
    errors: &mut [u64; ErrorKind::ALL.len()],
    on_event: &mut impl FnMut(FindEvent<'_>),
) {
    let idx = match d.stage {
        Some(s) => state::stage_index(Some(s)),
        None => 4,
    };
    let st = &mut stages[idx];
    st.files += 1;
    st.bytes_read += d.bytes_read;
    st.busy_ns += d.nanos;
    let mut error = |e: EntryError| {
        errors[e.kind.index()] += 1;
        on_event(FindEvent::Error(&e));
    };
    match d.outcome {
        Outcome::Failed(e) => {
            state.failed(d.cand);
            error(e);
        }
        Outcome::Cancelled => state.failed(d.cand),
        Outcome::Key(k) => state.stage_done(d.cand, k, None),
        Outcome::Full(digest) => state.stage_done(d.cand, digest.key(), Some(digest)),
        Outcome::Same => state.verified(d.cand),
        Outcome::Differ => state.differs(d.cand),
        Outcome::OtherChanged(e) => {
            state.other_changed(d.cand);
            error(e);
        }
    }
}

fn reader_loop(
    jobs: Receiver<Vec<Task>>,
    done: crossbeam_channel::Sender<Vec<Done>>,
    mut reader: Reader,
    progress: &dyn ProgressTracker,
) {
    for job in jobs {
        let results: Vec<Done> = job.into_iter().map(|t| reader.run(t)).collect();
        let bytes: u64 = results.iter().map(|d| d.bytes_read).sum();
        progress.bytes_hashed(bytes);
        if done.send(results).is_err() {
            break;
        }
    }
}
