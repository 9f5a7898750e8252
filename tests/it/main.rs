//! The integration tests: the library walker, `dedupe scan`, `dedupe gen`
//! and duplicate finding, each against brute-force references on trees
//! with traps.

mod act;
mod act_crash;
mod act_review;
mod act_trash_clone;
mod cache;
mod cli;
mod dirs;
mod find;
mod gen;
mod hardening;
mod html;
mod keys;
mod report;
mod scan;
mod util;
mod walk;
