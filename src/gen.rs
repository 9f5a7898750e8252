//! `dedupe gen`: a deterministic test tree for tests and benchmarks.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dedupe::report::{escape, human_bytes, plural};
use dedupe_testkit::gen::{generate_with_cancel, GenError, GenSpec, SizeDist};

use crate::args::{GenArgs, SizeDistArg};
use crate::ui::{self, exit};
use crate::Interrupt;

pub fn run(args: GenArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    let spec = GenSpec {
        files: args.files,
        dirs: args.dirs,
        dup_ratio: args.dup_ratio,
        near_ratio: args.near_ratio,
        seed: args.seed,
        min_size: args.min_size,
        max_size: args.max_size,
        sizes: match args.sizes {
            SizeDistArg::Uniform => SizeDist::Uniform,
            SizeDistArg::Lognormal => SizeDist::LogNormal {
                median: args.median,
                sigma: 1.5,
            },
        },
    };
    if let Err(e) = spec.validate() {
        ui::warn(format_args!("dedupe gen: {e}"));
        return Ok(exit::USAGE);
    }
    if let Err(why) = check_target(&args.dir, args.force) {
        ui::warn(format_args!("dedupe gen: {}: {why}", escape(&args.dir)));
        return Ok(exit::USAGE);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    interrupt.arm(move || flag.store(true, Ordering::Relaxed));
    // A Ctrl-C that came before the arm above only set `fired`.
    if interrupt.fired() {
        cancel.store(true, Ordering::Relaxed);
    }
    let t = Instant::now();
    let report = match generate_with_cancel(&args.dir, &spec, &cancel) {
        Ok(r) => r,
        Err(GenError::Cancelled(r)) => {
            ui::warn(format_args!(
                "dedupe gen: interrupted after writing {}; {} holds a partial tree",
                plural(r.files, "file", "files"),
                escape(&args.dir)
            ));
            return Ok(exit::INTERRUPTED);
        }
        Err(e) => {
            ui::warn(format_args!("dedupe gen: {}: {e}", escape(&args.dir)));
            return Ok(exit::PARTIAL);
        }
    };
    ui::warn(format_args!(
        "wrote {} ({}) in {} under {} in {:.1} s: {}, {}",
        plural(report.files, "file", "files"),
        human_bytes(report.bytes),
        plural(report.dirs + 1, "directory", "directories"),
        escape(&args.dir),
        t.elapsed().as_secs_f64(),
        plural(report.duplicates, "exact duplicate", "exact duplicates"),
        plural(
            report.near_duplicates,
            "same-size near-duplicate",
            "same-size near-duplicates"
        )
    ));
    Ok(exit::OK)
}

/// Refuses a target that is a file, or a directory that already holds
/// something (unless `force`): gen overwrites files under its own names,
/// and mixing its tree with someone's files spoils both.
fn check_target(dir: &Path, force: bool) -> Result<(), &'static str> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                Err("directory is not empty; use --force to write into it anyway (files with the generated names are overwritten)")
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err("not a directory"),
        // Missing: gen creates it. Anything else: gen reports it as it
        // fails to write.
        Err(_) => Ok(()),
    }
}
