//! The streaming walker: parallel directory scanners that hand batches of
//! [`FileEntry`] values to a consumer while the walk is still going on.
//!
//! ```text
//!  roots ──▶ injector ──▶ scanner 1 ─┐ (local LIFO deques,
//!                        scanner 2 ─┼─  work stealing)   bounded channel
//!                        scanner N ─┘ ──── batches ────▶ [cap = buffer/batch] ──▶ Walk (Iterator)
//! ```
//!
//! Why this shape:
//! * Directory listing is system-call bound, so several OS threads list
//!   directories at once. Each keeps its own stack of directories to visit
//!   (depth first, so the frontier stays small) and steals the shallowest
//!   directory of a busy peer when it runs dry.
//! * Files leave in batches over one bounded channel. Batching makes the
//!   channel cost per file negligible; the bound
//!   (`discovery_buffer_size / batch_size` batches) is the backpressure that
//!   keeps memory flat: when the consumer is slower than the disk, the
//!   scanners wait instead of queueing the whole tree.
//! * A regular file costs one `fstatat` relative to its open directory;
//!   directories and symlinks are typed by the listing itself and never
//!   stat'ed. FIFOs, sockets and devices are skipped without a system call.
//! * Errors are items too ([`WalkEvent::Error`]); nothing per-entry stops
//!   the walk.
//!
//! Dropping a [`Walk`] stops the scanners and joins them.

mod grow;
mod scanner;

#[cfg(feature = "async")]
mod stream;
#[cfg(feature = "async")]
pub use stream::StreamError;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_deque::{Injector, Stealer, Worker};

use crate::config::{Config, ConfigError, StreamingConfig};
use crate::entry::{EntryError, ErrorKind, FileEntry};
use crate::progress::ProgressTracker;

pub(crate) use filter::Filter;
mod filter;
mod roots;

/// What a walk yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum WalkEvent {
    /// Files found, in discovery order within each directory.
    Batch(Vec<FileEntry>),
    /// An entry that could not be read. The walk goes on.
    Error(EntryError),
    /// Directories whose listing is over, each sent after every file found
    /// in it (only with [`StreamingWalker::report_directories`]).
    Dirs(Vec<DirDone>),
}

/// A directory whose listing is over, with what it held. Its
/// subdirectories get events of their own.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DirDone {
    /// The directory.
    pub dir: Arc<crate::entry::DirPath>,
    /// Regular files passed on (in [`WalkEvent::Batch`]es).
    pub files: u64,
    /// Subdirectories queued for listing.
    pub subdirs: u64,
    /// Entries the filters left out (names, extensions, globs, sizes,
    /// hidden, depth; a file named as a root is listed under its root).
    pub excluded: u64,
    /// Entries that could not be examined (each also an error event).
    pub unreadable: u64,
    /// Symlinks not followed, dangling symlinks, FIFOs, sockets, devices.
    pub special: u64,
    /// The listing reached its end. False: it was not listed (unreadable,
    /// another file system with `--one-file-system`, a pseudo file system,
    /// or already listed through another path) or an error cut it short.
    pub complete: bool,
}

/// A setup problem that stops a walk before it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A root path cannot be examined (it does not exist, say).
    #[error("{}: {source}", path.display())]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A scanner thread could not be started.
    #[error("cannot start scanner thread: {0}")]
    Thread(std::io::Error),
}

/// Final (or running) counts of a walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Directories listed.
    pub dirs: u64,
    /// Files reported to the consumer.
    pub files: u64,
    /// Total size of the files reported.
    pub bytes: u64,
    /// Errors, indexed like [`ErrorKind::ALL`].
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Time since the walk started.
    pub elapsed: Duration,
    /// Scanners started during the walk because directories were slow to
    /// open (see [`StreamingConfig::max_scanner_workers`]).
    pub scanners_added: usize,
}

impl WalkStats {
    /// Total errors of every kind.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Errors of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }
}

/// Shared atomic counters behind [`WalkStats`].
#[derive(Default)]
pub(crate) struct Counters {
    dirs: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
}

impl Counters {
    fn snapshot(&self, elapsed: Duration) -> WalkStats {
        WalkStats {
            dirs: self.dirs.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            errors: std::array::from_fn(|i| self.errors[i].load(Ordering::Relaxed)),
            elapsed,
            scanners_added: 0,
        }
    }
}

/// The walker: holds the configuration; each call to
/// [`StreamingWalker::walk`] starts an independent walk.
pub struct StreamingWalker {
    config: Arc<Config>,
    streaming: StreamingConfig,
    progress: Arc<dyn ProgressTracker>,
    dir_events: bool,
}

impl StreamingWalker {
    /// A walker for `config`, reporting to `progress`, tuned by `streaming`
    /// (`None`: [`StreamingConfig::default`]).
    pub fn new(
        config: Arc<Config>,
        progress: Arc<dyn ProgressTracker>,
        streaming: Option<StreamingConfig>,
    ) -> StreamingWalker {
        StreamingWalker {
            config,
            streaming: streaming.unwrap_or_default(),
            progress,
            dir_events: false,
        }
    }

    /// The walk configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The streaming configuration.
    pub fn streaming_config(&self) -> &StreamingConfig {
        &self.streaming
    }

    /// Also send a [`WalkEvent::Dirs`] event for every directory, after
    /// the files found in it (off by default: most consumers want files
    /// only).
    pub fn report_directories(mut self, on: bool) -> Self {
        self.dir_events = on;
        self
    }

    /// Starts walking `roots` and returns at once. Iterate the returned
    /// [`Walk`] to receive batches as they are found.
    ///
    /// Fails before starting if a configuration value is invalid or a root
    /// does not exist; roots that exist but cannot be listed are reported
    /// as [`WalkEvent::Error`] like any other directory.
    pub fn walk<P: AsRef<Path>>(&self, roots: &[P]) -> Result<Walk, WalkError> {
        self.streaming.validate()?;
        let filter = Filter::new(&self.config)?;
        if roots.is_empty() {
            return Err(ConfigError::NoPaths.into());
        }
        // Roots are opened first: a missing root stops the walk before any
        // thread starts. Each directory is walked once however many roots
        // reach it, and a root inside another root is walked as its own
        // root (the outer walk skips it), so filters on the outer walk never
        // hide a directory the user named.
        let mut opened = Vec::with_capacity(roots.len());
        for r in roots {
            let path = r.as_ref();
            let root = scanner::open_root(path).map_err(|source| WalkError::Root {
                path: path.to_path_buf(),
                source,
            })?;
            opened.push(root);
        }
        // Files named as roots, each once (two spellings of one file are
        // one root); each root keeps its place in the order given.
        let mut root_files = HashSet::default();
        let opened: Vec<(u32, scanner::Root)> = opened
            .into_iter()
            .enumerate()
            .filter(|(_, root)| match root {
                scanner::Root::File { meta, .. } => root_files.insert(meta.id),
                _ => true,
            })
            .map(|(i, root)| (u32::try_from(i).unwrap_or(u32::MAX), root))
            .collect();

        let sc = &self.streaming;
        let (tx, rx) = crossbeam_channel::bounded(sc.channel_batches());
        // Deques for every scanner the walk may grow to, so each can be
        // stolen from; the ones beyond `scanner_workers` wait as spares
        // until slow directories call for their threads (`scanner::grow`).
        let mut workers: Vec<Worker<scanner::Job>> = (0..sc.max_scanner_workers)
            .map(|_| Worker::new_lifo())
            .collect();
        let spare = workers.split_off(sc.scanner_workers);
        let shared = Arc::new(scanner::Shared {
            injector: Injector::new(),
            stealers: workers
                .iter()
                .chain(&spare)
                .map(Worker::stealer)
                .collect::<Vec<Stealer<_>>>(),
            growth: grow::Growth::new(spare),
            pending: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            filter,
            config: Arc::clone(&self.config),
            batch_size: sc.batch_size,
            batch_timeout: sc.batch_timeout,
            dir_events: self.dir_events,
            counters: Counters::default(),
            progress: Arc::clone(&self.progress),
            visited: Mutex::new(HashSet::default()),
            root_files,
            open_dirs: Arc::new(AtomicUsize::new(0)),
        });

        // Roots that are files, and roots that cannot be walked, become
        // events; directories become jobs. The first scanner sends those
        // events before it lists anything, so every event reaches the
        // consumer through the one channel.
        let mut files = Vec::new();
        let mut initial: Vec<WalkEvent> = Vec::new();
        for (index, root) in opened {
            match root {
                scanner::Root::Dir { path, fd, meta } => {
                    if shared.first_visit(meta.id.dev, meta.id.ino) {
                        scanner::seed_dir(&shared, index, path, fd, &meta);
                    }
                }
                scanner::Root::File { path, meta } => {
                    files.extend(scanner::root_file(&shared, index, &path, &meta));
                }
                scanner::Root::Other(e) => initial.push(WalkEvent::Error(e)),
            }
        }
        if !files.is_empty() {
            initial.insert(0, WalkEvent::Batch(files));
        }

        let mut threads = Vec::with_capacity(workers.len());
        for (i, local) in workers.into_iter().enumerate() {
            let mine = Arc::clone(&shared);
            let tx: Sender<WalkEvent> = tx.clone();
            let first = std::mem::take(&mut initial);
            let handle = std::thread::Builder::new()
                .name(format!("dedupe-scan-{i}"))
                .spawn(move || scanner::run(&mine, local, &tx, first));
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    shared.quit.store(true, Ordering::Relaxed);
                    drop(rx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(WalkError::Thread(e));
                }
            }
        }
        drop(tx);
        Ok(Walk {
            rx: Some(rx),
            threads,
            shared,
            started: Instant::now(),
            finished: false,
        })
    }
}

/// A walk in progress. Iterate it for [`WalkEvent`]s; it ends when every
/// directory has been listed. Dropping it early stops the scanners.
pub struct Walk {
    rx: Option<Receiver<WalkEvent>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<scanner::Shared>,
    started: Instant,
    finished: bool,
}

impl Walk {
    /// Counts so far (final once the iterator has returned `None`).
    pub fn stats(&self) -> WalkStats {
        WalkStats {
            scanners_added: self.shared.growth.added(),
            ..self.shared.counters.snapshot(self.started.elapsed())
        }
    }

    /// Asks the scanners to stop soon; the iterator then ends.
    pub fn stop(&self) {
        self.shared.quit.store(true, Ordering::Relaxed);
    }

    /// A handle that can stop this walk from another thread (a Ctrl-C
    /// handler, say).
    pub fn stopper(&self) -> Stopper {
        Stopper(Arc::clone(&self.shared))
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
            // Scanners added during the walk; one may add another until it
            // ends, so take them until none is left.
            while let Some(t) = self.shared.growth.take_thread() {
                let _ = t.join();
            }
            self.shared.progress.scan_finished();
        }
    }
}

/// Stops a [`Walk`] from anywhere.
#[derive(Clone)]
pub struct Stopper(Arc<scanner::Shared>);

impl Stopper {
    /// Asks the scanners to stop soon.
    pub fn stop(&self) {
        self.0.quit.store(true, Ordering::Relaxed);
    }
}

impl Iterator for Walk {
    type Item = WalkEvent;

    fn next(&mut self) -> Option<WalkEvent> {
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(ev) => Some(ev),
            Err(_) => {
                self.finish();
                None
            }
        }
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Relaxed);
        // Dropping the receiver makes blocked senders fail and exit.
        self.rx = None;
        self.finish();
    }
}
