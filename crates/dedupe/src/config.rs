//! Configuration: what to look at ([`Config`]) and how hard to push the
//! walker ([`StreamingConfig`]).
//!
//! Both are plain structs with public fields so callers can use struct-update
//! syntax (`Config { max_depth: Some(10), ..Config::default() }`). Nothing is checked at construction; [`Config::validate`] and
//! [`StreamingConfig::validate`] run once, when a walk starts, and return a
//! typed [`ConfigError`] instead of panicking later in a worker thread.

use std::time::Duration;

/// Largest worker count accepted. More threads than this only add contention
/// and file descriptors; it also catches `usize` arithmetic mistakes early.
pub const MAX_WORKERS: usize = 1024;

/// Largest [`StreamingConfig::batch_size`] accepted. Every scanner
/// preallocates a batch of this many entries (about 72 bytes each, so
/// 4.5 MiB at the cap); past a few hundred files a bigger batch saves
/// nothing, since handing one over costs a single channel send.
pub const MAX_BATCH_SIZE: usize = 65_536;

/// Largest [`StreamingConfig::discovery_buffer_size`] accepted: the files
/// held between walker and consumer, some 100-200 MiB at the cap with their
/// names. A bigger buffer only postpones the backpressure that keeps memory
/// bounded; without a cap, `usize::MAX` overflowed an allocation.
pub const MAX_DISCOVERY_BUFFER: usize = 1_000_000;

/// Largest capacity, in batches, of the walker-to-consumer channel
/// (`discovery_buffer_size / batch_size`). crossbeam's bounded channel
/// allocates every slot up front, so a 20M-file buffer in one-file batches
/// cost 1.25 GB before the first file was found; 65,536 slots are a few MiB.
pub const MAX_CHANNEL_BATCHES: usize = 65_536;

/// What the walk visits and which files reach the consumer.
#[derive(Clone, Debug)]
pub struct Config {
    /// Deepest level to report files from; the roots' direct children are at
    /// depth 1. `None` means unlimited. `Some(0)` reports nothing below a root
    /// directory (a root that is itself a file is still reported).
    pub max_depth: Option<usize>,
    /// Smallest file size in bytes to report (inclusive). `0` lists empty files.
    pub min_file_size: u64,
    /// Largest file size in bytes to report (inclusive). `None`: no limit.
    pub max_file_size: Option<u64>,
    /// Reader threads of the duplicate pipeline: the threads that open,
    /// read and hash candidates. Every stage shares them (the name is the
    /// one the original API specification gives this field). `0`: found
    /// per device while the run goes on, starting at one per available CPU
    /// (see the README's "Adaptive I/O"); `N`: exactly `N` per device.
    pub threads_per_stage: usize,
    /// Follow symbolic links to files and directories. Off by default. When
    /// on, a directory reached twice (same device and inode) is entered once.
    pub follow_links: bool,
    /// Do not descend into directories on another file system than their root.
    pub one_file_system: bool,
    /// Report hidden entries (names starting with `.`) and descend into hidden
    /// directories. On by default: duplicates hide there too.
    pub include_hidden: bool,
    /// Name, path and extension filters, applied inside the walker.
    pub filters: Filters,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_depth: None,
            min_file_size: 0,
            max_file_size: None,
            threads_per_stage: 0,
            follow_links: false,
            one_file_system: false,
            include_hidden: true,
            filters: Filters::default(),
        }
    }
}

impl Config {
    /// Checks the values that can be checked without touching the disk.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(max) = self.max_file_size {
            if max < self.min_file_size {
                return Err(ConfigError::SizeRange {
                    min: self.min_file_size,
                    max,
                });
            }
        }
        if self.threads_per_stage > MAX_WORKERS {
            return Err(ConfigError::Threads(self.threads_per_stage));
        }
        self.filters.validate()
    }

    /// `threads_per_stage` with `0` resolved to the number of CPUs.
    pub fn effective_threads(&self) -> usize {
        if self.threads_per_stage == 0 {
            available_cpus()
        } else {
            self.threads_per_stage
        }
    }
}

/// Filters on names, paths and extensions.
///
/// Globs use `globset` syntax (`*`, `**`, `?`, `[a-z]`, `{a,b}`). A glob that
/// contains a `/` is matched against the path relative to the root the
/// file was found under (so roots spelled `t`, `./t` or `t/` behave alike);
/// any other glob against the file or directory name alone, so `--exclude
/// .git` and `--exclude '**/cache/**'` both do what they look like.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// If not empty, a file is reported only if it matches one of these.
    /// Directories are always entered (a file deep inside may still match).
    pub include_globs: Vec<String>,
    /// Files matching any of these are skipped, and directories matching any
    /// of these are not entered at all.
    pub exclude_globs: Vec<String>,
    /// Globs match without regard to case (`*.jpg` matches `A.JPG`).
    pub ignore_case: bool,
    /// If not empty, only files with one of these extensions (without the
    /// dot, compared without regard to ASCII case) are reported.
    pub extensions: Vec<String>,
    /// Files with one of these extensions are skipped.
    pub exclude_extensions: Vec<String>,
    /// Report only media files: the extensions in [`MEDIA_EXTENSIONS`], in
    /// addition to any listed in `extensions`.
    pub media: bool,
}

impl Filters {
    fn validate(&self) -> Result<(), ConfigError> {
        for g in self.include_globs.iter().chain(&self.exclude_globs) {
            globset::Glob::new(g).map_err(|e| ConfigError::Glob {
                glob: g.clone(),
                message: e.kind().to_string(),
            })?;
        }
        for e in self.extensions.iter().chain(&self.exclude_extensions) {
            let e = e.strip_prefix('.').unwrap_or(e);
            if e.is_empty() || e.contains('/') {
                return Err(ConfigError::Extension(e.to_string()));
            }
        }
        Ok(())
    }
}

/// Extensions selected by the `media` preset: video, audio, image and
/// subtitle formats that photo, video, music and anime collections hold.
pub const MEDIA_EXTENSIONS: &[&str] = &[
    // video
    "3gp", "asf", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "ogv",
    "rm", "rmvb", "ts", "vob", "webm", "wmv", // audio
    "aac", "aiff", "alac", "ape", "dsf", "flac", "m4a", "mka", "mp3", "ogg", "opus", "wav", "wma",
    "wv", // image
    "arw", "avif", "bmp", "cr2", "cr3", "dng", "gif", "heic", "heif", "jpeg", "jpg", "jxl", "nef",
    "orf", "png", "psd", "raf", "rw2", "svg", "tif", "tiff", "webp", // subtitles
    "ass", "idx", "srt", "ssa", "sub", "sup", "vtt",
];

/// How the walker runs: threads, buffers and batching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamingConfig {
    /// Directory scanner threads. They share directories by work stealing.
    pub scanner_workers: usize,
    /// Scanners the walk may grow to when directories are slow to open (a
    /// cold cache, a network share: each open then waits on the device,
    /// and more of them at once go faster). Equal to `scanner_workers`:
    /// the number is fixed.
    pub max_scanner_workers: usize,
    /// Files the walker may hold in flight between the scanners and the
    /// consumer. The channel between them holds
    /// `discovery_buffer_size / batch_size` batches; when it is full the
    /// scanners wait, so memory stays bounded however large the tree.
    pub discovery_buffer_size: usize,
    /// Files per batch handed to the consumer.
    pub batch_size: usize,
    /// A partial batch is handed over once it is this old, so files keep
    /// flowing from a slow walk (network shares, cold disks).
    pub batch_timeout: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self::simple_config()
    }
}

impl StreamingConfig {
    /// For small and medium trees: 2-4 scanners, a 5K discovery buffer and
    /// 50-file batches.
    pub fn simple_config() -> Self {
        let scanner_workers = available_cpus().clamp(2, 4);
        StreamingConfig {
            scanner_workers,
            max_scanner_workers: grown(scanner_workers),
            discovery_buffer_size: 5_000,
            batch_size: 50,
            batch_timeout: Duration::from_millis(100),
        }
    }

    /// For large trees: two scanners per CPU (one runs while the other waits
    /// on the disk), a 50K discovery buffer and 200-file batches.
    pub fn high_throughput_config() -> Self {
        let scanner_workers = (available_cpus() * 2).min(MAX_WORKERS);
        StreamingConfig {
            scanner_workers,
            max_scanner_workers: grown(scanner_workers),
            discovery_buffer_size: 50_000,
            batch_size: 200,
            batch_timeout: Duration::from_millis(100),
        }
    }

    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.scanner_workers == 0 || self.scanner_workers > MAX_WORKERS {
            return Err(ConfigError::Threads(self.scanner_workers));
        }
        if self.max_scanner_workers < self.scanner_workers || self.max_scanner_workers > MAX_WORKERS
        {
            return Err(ConfigError::Threads(self.max_scanner_workers));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::BatchSize);
        }
        if self.batch_size > MAX_BATCH_SIZE {
            return Err(ConfigError::BatchTooLarge(self.batch_size));
        }
        if self.discovery_buffer_size > MAX_DISCOVERY_BUFFER {
            return Err(ConfigError::BufferTooLarge(self.discovery_buffer_size));
        }
        if self.discovery_buffer_size < self.batch_size {
            return Err(ConfigError::Buffer {
                buffer: self.discovery_buffer_size,
                batch: self.batch_size,
            });
        }
        if self.channel_batches() > MAX_CHANNEL_BATCHES {
            return Err(ConfigError::ChannelTooLarge {
                buffer: self.discovery_buffer_size,
                batch: self.batch_size,
            });
        }
        if self.batch_timeout.is_zero() {
            return Err(ConfigError::BatchTimeout);
        }
        Ok(())
    }

    /// Capacity of the scanner-to-consumer channel, in batches.
    pub(crate) fn channel_batches(&self) -> usize {
        (self.discovery_buffer_size / self.batch_size).max(1)
    }
}

/// How far a walk starting with `n` scanners may grow on slow directories:
/// measured cold on the 1M-file tree, 2 scanners took 7.6 s, 16 took
/// 3.1 s, 32 took 2.9 s; warm, 16 cost nothing over 2 (they only list
/// when there is work).
fn grown(n: usize) -> usize {
    (n * 8).clamp(n, 32.max(n)).min(MAX_WORKERS)
}

/// Number of CPUs this process may run on (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Worker count of zero or above [`MAX_WORKERS`].
    #[error("thread count must be between 1 and {MAX_WORKERS}, got {0}")]
    Threads(usize),
    /// `batch_size` of zero.
    #[error("batch size must be at least 1")]
    BatchSize,
    /// `batch_size` above [`MAX_BATCH_SIZE`].
    #[error("batch size must be at most {MAX_BATCH_SIZE} files, got {0}")]
    BatchTooLarge(usize),
    /// `discovery_buffer_size` above [`MAX_DISCOVERY_BUFFER`].
    #[error("discovery buffer must be at most {MAX_DISCOVERY_BUFFER} files, got {0}")]
    BufferTooLarge(usize),
    /// More than [`MAX_CHANNEL_BATCHES`] batches in the discovery buffer.
    #[error(
        "discovery buffer ({buffer}) / batch size ({batch}) is {} batches, more than the {MAX_CHANNEL_BATCHES} the channel may hold; use larger batches or a smaller buffer",
        buffer / batch
    )]
    ChannelTooLarge {
        /// The discovery buffer size given.
        buffer: usize,
        /// The batch size given.
        batch: usize,
    },
    /// Discovery buffer smaller than one batch.
    #[error("discovery buffer ({buffer}) must hold at least one batch ({batch})")]
    Buffer {
        /// The discovery buffer size given.
        buffer: usize,
        /// The batch size given.
        batch: usize,
    },
    /// A zero batch timeout would flush after every file.
    #[error("batch timeout must be greater than zero")]
    BatchTimeout,
    /// `max_file_size` below `min_file_size`.
    #[error("maximum size ({max}) is below minimum size ({min})")]
    SizeRange {
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// A glob that does not parse.
    #[error("invalid glob {glob:?}: {message}")]
    Glob {
        /// The glob as given.
        glob: String,
        /// What is wrong with it.
        message: String,
    },
    /// An empty extension or one with a path separator.
    #[error("invalid extension {0:?}")]
    Extension(String),
    /// No paths to walk.
    #[error("no paths given")]
    NoPaths,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_match_the_seed() {
        let s = StreamingConfig::simple_config();
        s.validate().unwrap();
        assert!((2..=4).contains(&s.scanner_workers));
        assert_eq!(s.max_scanner_workers, (s.scanner_workers * 8).min(32));
        assert_eq!((s.discovery_buffer_size, s.batch_size), (5_000, 50));
        let h = StreamingConfig::high_throughput_config();
        h.validate().unwrap();
        assert_eq!(h.scanner_workers, available_cpus() * 2);
        assert_eq!((h.discovery_buffer_size, h.batch_size), (50_000, 200));
        assert_eq!(h.channel_batches(), 250);
    }

    #[test]
    fn invalid_values_are_typed_errors() {
        let bad = StreamingConfig {
            scanner_workers: 0,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Threads(0)));
        let bad = StreamingConfig {
            batch_size: 0,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::BatchSize));
        // The walk may grow, never shrink below its start.
        let bad = StreamingConfig {
            scanner_workers: 8,
            max_scanner_workers: 4,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Threads(4)));
        let bad = StreamingConfig {
            max_scanner_workers: MAX_WORKERS + 1,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Threads(MAX_WORKERS + 1)));
        let bad = StreamingConfig {
            discovery_buffer_size: 10,
            batch_size: 50,
            ..StreamingConfig::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::Buffer { .. })));
        let bad = StreamingConfig {
            batch_timeout: Duration::ZERO,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::BatchTimeout));
        let bad = StreamingConfig {
            scanner_workers: MAX_WORKERS + 1,
            ..StreamingConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::Threads(MAX_WORKERS + 1)));
        let bad = Config {
            min_file_size: 10,
            max_file_size: Some(5),
            ..Config::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::SizeRange { .. })));
        let mut bad = Config::default();
        bad.filters.exclude_globs.push("a[".into());
        assert!(matches!(bad.validate(), Err(ConfigError::Glob { .. })));
        let mut bad = Config::default();
        bad.filters.extensions.push(".".into());
        assert!(matches!(bad.validate(), Err(ConfigError::Extension(_))));
    }

    fn tuning(buffer: usize, batch: usize) -> StreamingConfig {
        StreamingConfig {
            discovery_buffer_size: buffer,
            batch_size: batch,
            ..StreamingConfig::default()
        }
    }

    #[test]
    fn oversized_buffers_and_batches_are_typed_errors() {
        use ConfigError::*;
        // Each of these panicked or exhausted memory once the walk began.
        assert_eq!(
            tuning(usize::MAX, 50).validate(),
            Err(BufferTooLarge(usize::MAX))
        );
        assert_eq!(
            tuning(usize::MAX, usize::MAX).validate(),
            Err(BatchTooLarge(usize::MAX))
        );
        assert_eq!(
            tuning(5_000, 1_000_000_000).validate(),
            Err(BatchTooLarge(1_000_000_000))
        );
        assert_eq!(
            tuning(20_000_000, 1).validate(),
            Err(BufferTooLarge(20_000_000))
        );
        // Within both limits, but a million one-file slots in the channel.
        let err = tuning(MAX_DISCOVERY_BUFFER, 1).validate().unwrap_err();
        assert_eq!(
            err,
            ChannelTooLarge {
                buffer: MAX_DISCOVERY_BUFFER,
                batch: 1
            }
        );
        assert!(err.to_string().contains("1000000 batches"), "{err}");
        // 1M / 15 is 66,666 batches; 1M / 16 is 62,500.
        assert!(tuning(MAX_DISCOVERY_BUFFER, 15).validate().is_err());
        // The limits themselves are accepted.
        tuning(MAX_DISCOVERY_BUFFER, 16).validate().unwrap();
        tuning(MAX_CHANNEL_BATCHES, 1).validate().unwrap();
        tuning(MAX_BATCH_SIZE, MAX_BATCH_SIZE).validate().unwrap();
        assert_eq!(
            tuning(MAX_BATCH_SIZE + 1, MAX_BATCH_SIZE + 1).validate(),
            Err(BatchTooLarge(MAX_BATCH_SIZE + 1))
        );
    }
}
