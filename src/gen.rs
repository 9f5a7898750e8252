//! `dedupe gen`: a deterministic test tree for tests and benchmarks.

use std::time::Instant;

use dedupe::gen::{generate, GenSpec, SizeDist};
use dedupe::report::human_bytes;

use crate::args::{GenArgs, SizeDistArg};
use crate::ui::{self, exit};

pub fn run(args: GenArgs) -> anyhow::Result<u8> {
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
    let t = Instant::now();
    let report = match generate(&args.dir, &spec) {
        Ok(r) => r,
        Err(e) => {
            ui::warn(format_args!("dedupe gen: {}: {e}", args.dir.display()));
            return Ok(exit::PARTIAL);
        }
    };
    ui::warn(format_args!(
        "wrote {} files ({}) in {} directories under {} in {:.1} s: {} exact duplicates, {} same-size near-duplicates",
        report.files,
        human_bytes(report.bytes),
        report.dirs + 1,
        args.dir.display(),
        t.elapsed().as_secs_f64(),
        report.duplicates,
        report.near_duplicates
    ));
    Ok(exit::OK)
}
