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
//!     }
//! }
//! assert_eq!(files, 1);
//! ```
//!
//! With the `async` feature, [`StreamingWalker::stream_to_pipeline`] hands
//! the same batches to an async closure.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod entry;
pub mod gen;
pub mod group;
pub mod hash;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod rss;
pub mod walk;

pub use config::{Config, ConfigError, Filters, StreamingConfig, MEDIA_EXTENSIONS};
pub use entry::{DirPath, EntryError, EntryKind, ErrorKind, FileEntry, FileId};
pub use group::DuplicateGroup;
pub use hash::{Digest, HashAlgo};
pub use pipeline::{
    Cancel, FindEvent, FindOptions, FindReport, Finder, Stage, StageStats, Summary,
};
pub use progress::{NoProgress, ProgressTracker};
#[cfg(feature = "async")]
pub use walk::StreamError;
pub use walk::{Stopper, StreamingWalker, Walk, WalkError, WalkEvent, WalkStats};
