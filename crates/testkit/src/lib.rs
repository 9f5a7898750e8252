//! Tools for testing and benchmarking dedupe, kept out of the library so
//! it ships only what finding duplicates needs: a deterministic test-tree
//! generator ([`gen`], behind `dedupe gen`) and readings of this process's
//! memory ([`rss`], for the memory suite and `--stats`).

#![deny(missing_docs)]

pub mod gen;
pub mod rss;
