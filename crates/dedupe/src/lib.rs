//! # dedupe
//!
//! Find duplicate files in very large directory trees, streaming: files
//! flow into the duplicate-detection pipeline as they are discovered, memory
//! stays bounded however large the tree, and nothing is reported as a
//! duplicate unless its bytes are equal.
//!
//! This crate is the library core: no terminal output, no argument parsing.
//! The `dedupe` command-line tool is a thin layer over it.
//!
//! ## Walking a tree
//!
//! ```
//! use std::sync::Arc;
//! use dedupe::{Config, NoProgress, StreamingConfig, StreamingWalker, WalkEvent};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("a.jpg"), b"hello").unwrap();
//! let config = Arc::new(Config {
//!     max_depth: Some(10),
//!     min_file_size: 1,
//!     ..Config::default()
//! });
//! let walker = StreamingWalker::new(
//!     config,
//!     Arc::new(NoProgress),
//!     Some(StreamingConfig::high_throughput_config()),
//! );
//! let mut files = 0;
//! let walk = walker.walk(&[dir.path()]).expect("the root exists");
//! for event in walk {
//!     match event {
//!         WalkEvent::Batch(batch) => files += batch.len(),
//!         WalkEvent::Error(e) => eprintln!("{e}"),
//!         _ => {} // directory events, when asked for
//!     }
//! }
//! assert_eq!(files, 1);
//! ```
//!
//! With the `async` feature, `StreamingWalker::stream_to_pipeline` hands
//! the same batches to an async closure.
//!
//! ## Finding duplicates
//!
//! [`Finder`] runs the walker and the staged pipeline (size, quick check,
//! statistical sample, full hash) at once, and reports each group the
//! moment it is confirmed:
//!
//! ```
//! use std::sync::Arc;
//! use dedupe::{Config, FindEvent, FindOptions, Finder};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("a.jpg"), b"same bytes").unwrap();
//! # std::fs::write(dir.path().join("b.jpg"), b"same bytes").unwrap();
//! # std::fs::write(dir.path().join("c.jpg"), b"other byte").unwrap();
//! let finder = Finder::builder(Arc::new(Config::default()))
//!     .options(FindOptions::default())
//!     .build();
//! let mut seen = 0;
//! let report = finder
//!     .run(&[dir.path()], |event| {
//!         if let FindEvent::Group(g) = event {
//!             seen += 1; // written as soon as confirmed, while the walk goes on
//!             assert_eq!(g.files.len(), 2);
//!         }
//!     })
//!     .unwrap();
//! assert_eq!((seen, report.group_count()), (1, 1));
//! assert_eq!(report.summary.redundant_bytes, 10);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod act;
pub mod cache;
pub mod config;
pub mod dirs;
pub mod entry;
mod error;
mod fsutil;
pub mod group;
pub mod hash;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod walk;

pub use cache::{CacheProbe, HashCache};
pub use config::{Config, ConfigError, Filters, StreamingConfig, MEDIA_EXTENSIONS};
pub use entry::{DirPath, EntryError, EntryKind, ErrorKind, FileEntry, FileId};
pub use error::Error;
pub use group::{DuplicateGroup, GroupFile};
pub use hash::{Digest, HashAlgo};
pub use pipeline::keys::{
    FileStamp, KeyRequest, KeySource, ReadFacts, StageKey, SMALL_HIT_RATIO, SMALL_MAX, SMALL_TRIAL,
};
pub use pipeline::stage::StageSpec;
pub use pipeline::{
    Cancel, FindError, FindEvent, FindOptions, FindReport, Finder, FinderBuilder, GroupOrder,
    Stage, StageStats, Summary,
};
pub use progress::{NoProgress, ProgressTracker};
#[cfg(feature = "async")]
pub use walk::StreamError;
pub use walk::{DirDone, Stopper, StreamingWalker, Walk, WalkError, WalkEvent, WalkStats};
