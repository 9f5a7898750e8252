//! The duplicate pipeline: metadata -> quick check -> statistical -> full
//! hash, fed by the streaming walker while it is still running, with
//! groups reported the moment they are confirmed.
//!
//! ```text
//!  walk ─▶ coordinator ──▶ trie (grouping) ──▶ Placement ─┬─▶ scheduler ──▶ jobs ──▶ readers (N threads)
//!              ▲                                          └─▶ statistics            │
//!              │◀─────────────── keys / digests ◀────────────────────────────────────┘
//!              └─▶ key source (optional: keys known without reading)
//! ```
//!
//! * Metadata: files are bucketed by size as they arrive; a file whose size
//!   no other file has is never opened. Hard links to one inode collapse to
//!   one file.
//! * Then the stages in [`stage`]: both ends, samples spread through large
//!   files, the whole content. A file goes to the next stage only when
//!   another shares its key at this one (the trie, `trie.rs`).
//! * Scheduling (`schedule.rs`): larger files first, small ones batched,
//!   in-flight work bounded, large reads limited on spinning disks.
//! * Everything the coordinator knows is in one thread (`coordinator.rs`):
//!   no locks on the hot path, and results are deterministic given the same
//!   inputs.

mod adapt;
mod coordinator;
mod groups;
pub mod keys;
mod keyserve;
mod msg;
mod paths;
mod pool;
mod read;
mod schedule;
mod slab;
pub mod stage;
mod stats;
mod summary;
mod trie;

pub use adapt::{Change, IoChoice, Reason};
pub use groups::GroupOrder;
pub use summary::{FindReport, StageStats, Summary};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{never, select};

use coordinator::Coordinator;
use keys::KeySource;
use keyserve::{Answer, KeyLink, KeyMsg};
use pool::{Finished, Pools};
use schedule::Scheduler;
pub use stage::Stage;
use trie::{Rules, Trie};

use crate::config::{Config, StreamingConfig};
use crate::entry::{EntryError, ErrorKind};
use crate::group::DuplicateGroup;
use crate::hash::HashAlgo;
use crate::progress::{NoProgress, ProgressTracker};
use crate::walk::{StreamingWalker, WalkError, WalkEvent, WalkStats};

/// Tasks that may wait for a reader before the coordinator stops taking
/// files from the walker. The walker then blocks on its own bounded
/// channel, so a walk far faster than hashing cannot pile the whole tree
/// up in memory.
const MAX_BACKLOG: usize = 16_384;

/// How often an idle coordinator looks at the cancel flag.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(50);

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
    /// process (the "traditional" mode, for comparison).
    pub streaming: bool,
    /// Where files found unique so far wait once there are many of them
    /// (`settled_in_memory`): an unlinked temporary file there, which the
    /// kernel caches while memory allows. `None`: the system's temporary
    /// directory (`$TMPDIR`, else `/tmp`). If the file cannot be made or
    /// written, they stay in memory.
    pub spill_dir: Option<PathBuf>,
    /// Files found unique so far kept in memory before the rest wait in
    /// the temporary file; `u32::MAX` keeps all in memory.
    pub settled_in_memory: u32,
}

impl Default for FindOptions {
    fn default() -> Self {
        FindOptions {
            hash: HashAlgo::Blake3,
            verify: false,
            hard_links: false,
            streaming: true,
            spill_dir: None,
            settled_in_memory: trie::DEFAULT_IN_MEMORY,
        }
    }
}

/// Something that happened during a run, delivered as it happens.
#[derive(Debug)]
#[non_exhaustive]
pub enum FindEvent<'a> {
    /// A group was confirmed, or its membership changed (same id, full
    /// membership). With `--verify` a member found changed leaves; a group
    /// written again with fewer than two files is no longer a group.
    Group(&'a DuplicateGroup),
    /// A file or directory could not be read, or changed during the run.
    Error(&'a EntryError),
    /// Files the walk found, as it found them (only with
    /// [`FinderBuilder::observe_walk`]).
    Files(&'a [crate::entry::FileEntry]),
    /// Directories whose listing is over, each after its files (only with
    /// [`FinderBuilder::observe_walk`]).
    Dirs(&'a [crate::walk::DirDone]),
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
    /// A thread of the pipeline could not be started.
    #[error("cannot start a pipeline thread: {0}")]
    Thread(std::io::Error),
    /// More files than one run can index.
    #[error(
        "more than {} candidate files in one run; split the run",
        trie::MAX_FILES
    )]
    TooManyFiles,
    /// `hard_links` with `follow_links`: a symlink and its target are one
    /// file, hard links are two, and a followed link does not say which
    /// directory entry it names.
    #[error("hard links as duplicates (--hard-links) cannot be combined with following symlinks (--follow-links)")]
    HardLinksWithFollow,
}

/// Finds duplicate files: the walker plus the staged pipeline. Built with
/// [`Finder::builder`].
pub struct Finder {
    walker: StreamingWalker,
    config: Arc<Config>,
    options: FindOptions,
    progress: Arc<dyn ProgressTracker>,
    keys: Option<Mutex<Box<dyn KeySource>>>,
    cancel: Cancel,
    observe: bool,
    groups: bool,
}

/// Sets up a [`Finder`]; every setting has a default.
pub struct FinderBuilder {
    config: Arc<Config>,
    streaming: StreamingConfig,
    options: FindOptions,
    progress: Arc<dyn ProgressTracker>,
    keys: Option<Box<dyn KeySource>>,
    observe: bool,
    groups: bool,
}

impl FinderBuilder {
    /// Pass each group to the event callback as it is confirmed or grows
    /// ([`FindEvent::Group`]). On by default; a caller that only wants the
    /// final report turns it off, and the run then does not build a
    /// report (every path of every group) for each change.
    pub fn observe_groups(mut self, on: bool) -> Self {
        self.groups = on;
        self
    }

    /// Also pass the walk's files and finished directories to the event
    /// callback ([`FindEvent::Files`], [`FindEvent::Dirs`]), for callers
    /// that build a per-directory view (duplicate directories, the space
    /// map). Off by default.
    pub fn observe_walk(mut self, on: bool) -> Self {
        self.observe = on;
        self
    }

    /// How the walk is tuned (default: [`StreamingConfig::default`]).
    pub fn streaming(mut self, streaming: StreamingConfig) -> Self {
        self.streaming = streaming;
        self
    }

    /// How duplicates are decided (default: [`FindOptions::default`]).
    pub fn options(mut self, options: FindOptions) -> Self {
        self.options = options;
        self
    }

    /// Where progress goes (default: nowhere).
    pub fn progress(mut self, progress: Arc<dyn ProgressTracker>) -> Self {
        self.progress = progress;
        self
    }

    /// Something that may know stage keys without reading (a cache); the
    /// readers answer the rest (see [`keys`]).
    pub fn key_source(mut self, keys: Box<dyn KeySource>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The finder.
    pub fn build(self) -> Finder {
        Finder {
            walker: StreamingWalker::new(
                Arc::clone(&self.config),
                Arc::clone(&self.progress),
                Some(self.streaming),
            )
            .report_directories(self.observe),
            observe: self.observe,
            groups: self.groups,
            config: self.config,
            options: self.options,
            progress: self.progress,
            keys: self.keys.map(Mutex::new),
            cancel: Cancel::default(),
        }
    }
}

impl Finder {
    /// A builder for a finder over `config`'s files.
    pub fn builder(config: Arc<Config>) -> FinderBuilder {
        FinderBuilder {
            config,
            streaming: StreamingConfig::default(),
            options: FindOptions::default(),
            progress: Arc::new(NoProgress),
            keys: None,
            observe: false,
            groups: true,
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
        let result = match &self.keys {
            Some(keys) => {
                // One run at a time uses the key source.
                let mut keys = keys
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.run_inner(roots, Some(&mut **keys), on_event)
            }
            None => self.run_inner(roots, None, on_event),
        };
        self.cancel.reset();
        result
    }

    // One function on purpose: the loop's exit and backpressure conditions
    // read best next to the channels and threads they depend on.
    #[allow(clippy::too_many_lines)]
    fn run_inner<P: AsRef<Path>>(
        &self,
        roots: &[P],
        keys: Option<&mut (dyn KeySource + 'static)>,
        on_event: impl FnMut(FindEvent<'_>),
    ) -> Result<FindReport, FindError> {
        let started = Instant::now();
        if self.options.hard_links && self.config.follow_links {
            return Err(FindError::HardLinksWithFollow);
        }
        let readers = self.config.effective_threads();
        let fixed = self.config.threads_per_stage != 0;
        let walk = self.walker.walk(roots)?;
        let stopper = walk.stopper();

        // The walk through its public iterator, on a thread of its own so
        // the coordinator can wait on it and on the readers at once. The
        // channel holds one batch: when the coordinator stops taking files
        // this thread blocks, and so, through their bounded channel, do
        // the scanners.
        let (walk_tx, walk_rx) = crossbeam_channel::bounded::<WalkEvent>(1);
        let forward = std::thread::Builder::new()
            .name("dedupe-walk".into())
            .spawn(move || {
                let mut walk = walk;
                for ev in walk.by_ref() {
                    if walk_tx.send(ev).is_err() {
                        break;
                    }
                }
                walk.stats()
            })
            .map_err(FindError::Thread)?;

        // Readers, a pool per device, started as devices are met. The
        // results channel is unbounded so a reader never blocks on it; the
        // scheduler's cap on jobs out bounds it.
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Finished>();
        let mut pools = Pools::new(
            done_tx,
            Arc::clone(&self.cancel.0),
            Arc::clone(&self.progress),
        );

        // The key source, if any, answers on a thread of its own
        // (`keyserve.rs`); the scope joins it, after it has written out
        // what it holds, before the report is returned.
        std::thread::scope(|scope| {
            let (answers_tx, answers_rx) = crossbeam_channel::unbounded::<Vec<Answer>>();
            let link = match keys {
                Some(keys) => {
                    let above = keys.answers_above();
                    let small = keys.small_up_to().min(keys::SMALL_MAX);
                    // Only files that are small need probing.
                    pools.probe_up_to(if small > above { small } else { 0 });
                    let (tx, rx) = crossbeam_channel::unbounded::<KeyMsg>();
                    std::thread::Builder::new()
                        .name("dedupe-keys".into())
                        .spawn_scoped(scope, move || keyserve::serve(keys, &rx, &answers_tx))
                        .map_err(FindError::Thread)?;
                    Some(KeyLink::new(tx, above, small))
                }
                None => None,
            };
            let mut answers_arm = if link.is_some() { answers_rx } else { never() };
            let trie = Trie::new(Rules {
                algo: self.options.hash,
                verify: self.options.verify,
                hard_links: self.options.hard_links,
                follow_links: self.config.follow_links,
                max_files: trie::MAX_FILES,
            })
            .spill_to(
                self.options
                    .spill_dir
                    .clone()
                    .unwrap_or_else(std::env::temp_dir),
                self.options.settled_in_memory,
            );
            let mut co = Coordinator::new(
                trie,
                Scheduler::new(readers, fixed),
                link,
                self.options.hash,
                &*self.progress,
                on_event,
            );
            co.groups_wanted = self.groups;
            let mut walking = true;
            let mut interrupted = false;
            let mut overflow = false;
            let mut thread_error = None;

            loop {
                if !interrupted && (self.cancel.is_set() || overflow) {
                    interrupted = true;
                    stopper.stop();
                }
                if interrupted {
                    // Results of reads still out may queue more work; none
                    // of it will run.
                    co.abandon_queued();
                } else if self.options.streaming || !walking {
                    co.ask_keys();
                    co.sched.tick();
                    for lane in 0..co.sched.lanes() {
                        if let Err(e) = pools.resize(lane, co.sched.readers(lane)) {
                            thread_error = Some(e);
                            self.cancel.cancel();
                        }
                    }
                    if thread_error.is_none() {
                        co.dispatch(|job, tasks| {
                            pools.send(job.lane, job.large, tasks, job.prefetch)
                        });
                    }
                }
                co.emit(false);
                // Done when nothing is out (reads, lookups) and, unless
                // cancelled, the walk is over and nothing waits. A
                // cancelled run does not wait for the walk: the scanners
                // stop and are joined below.
                let out = co.sched.jobs_out();
                let unasked = co.unasked();
                if out == 0
                    && ((interrupted && unasked == 0)
                        || (!walking && co.sched.ready_len() + unasked == 0))
                {
                    break;
                }
                // Backpressure: with enough work queued, let the walker wait.
                let take_files = walking
                    && !interrupted
                    && (!self.options.streaming
                        || co.sched.ready_len() + co.unasked() < MAX_BACKLOG);
                let walk_arm = if take_files { walk_rx.clone() } else { never() };
                select! {
                    recv(walk_arm) -> ev => match ev {
                        Ok(WalkEvent::Batch(batch)) => {
                            if self.observe {
                                co.observe(FindEvent::Files(&batch));
                            }
                            if co.on_walk_batch(&batch).is_err() {
                                overflow = true;
                            }
                        }
                        Ok(WalkEvent::Error(e)) => co.on_walk_error(&e),
                        Ok(WalkEvent::Dirs(dirs)) => co.observe(FindEvent::Dirs(&dirs)),
                        Err(_) => {
                            walking = false;
                            // Counted before being told, so the tracker
                            // sees the final total first.
                            co.emit(false);
                            self.progress.candidates_known();
                        }
                    },
                    recv(done_rx) -> results => match results {
                        Ok(results) => co.on_results(results),
                        Err(_) => break,
                    },
                    recv(answers_arm) -> answers => match answers {
                        Ok(a) if interrupted => co.abandon_answers(a),
                        Ok(a) => co.on_answers(a),
                        // The source's thread ended early (it panicked;
                        // the scope passes that on): what it held is lost.
                        Err(_) => {
                            answers_arm = never();
                            co.finish_keys();
                            thread_error = Some(std::io::Error::other("the key source stopped"));
                            self.cancel.cancel();
                        }
                    },
                    // A cancel is seen within this even when nothing else
                    // happens (a slow lookup out, a stalled walk).
                    default(CANCEL_POLL) => {}
                }
            }
            pools.join();
            // The forwarding thread ends when its channel closes (a
            // cancelled run) or the walk has ended; it joins the scanners.
            drop(walk_rx);
            let scan = forward.join().unwrap_or_default();
            co.finish_keys();
            if let Some(e) = thread_error {
                return Err(FindError::Thread(e));
            }
            if overflow {
                return Err(FindError::TooManyFiles);
            }
            co.emit(true);
            Ok(self.report(co, scan, readers, started, interrupted))
        })
    }

    fn report<F>(
        &self,
        mut co: Coordinator<'_, F>,
        scan: WalkStats,
        readers: usize,
        started: Instant,
        interrupted: bool,
    ) -> FindReport {
        let io = co.sched.io_report();
        let stats = co.stats;
        // Files whose settled record could not be read back from the
        // temporary file left the run: I/O errors.
        let lost = co.trie.lost();
        let store = co.trie.into_store();
        let mut errors = std::array::from_fn::<u64, { ErrorKind::ALL.len() }, _>(|i| {
            scan.errors[i] + stats.errors[i]
        });
        errors[ErrorKind::Io.index()] += lost;
        let summary = Summary {
            files_scanned: scan.files,
            bytes_scanned: scan.bytes,
            dirs_scanned: scan.dirs,
            hard_links_collapsed: stats.collapsed,
            stages: stats.stages(scan.files.saturating_sub(stats.collapsed)),
            groups: store.len() as u64,
            redundant_files: store.redundant_files(),
            redundant_bytes: store.redundant_bytes(),
            errors: ErrorKind::ALL
                .iter()
                .zip(errors)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (k.as_str(), n))
                .collect(),
            hash: self.options.hash,
            verified: self.options.verify,
            streaming: self.options.streaming,
            readers,
            io,
            scanners: self.walker.streaming_config().scanner_workers,
            scanners_added: scan.scanners_added,
            scan_ms: scan.elapsed.as_millis() as u64,
            elapsed_ms: started.elapsed().as_millis() as u64,
            first_group_ms: stats.first_group.map(|d| d.as_millis() as u64),
            interrupted,
        };
        FindReport {
            groups: store,
            summary,
        }
    }
}
