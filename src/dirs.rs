//! `dedupe dirs`: directories that are copies of each other, or wholly
//! contained in another.

use std::io::{self, BufWriter, Write};

use clap::Args;
use dedupe::dirs::{output, Collector, DirsOptions};
use dedupe::FindEvent;

use crate::args::{FindArgs, FindFormat};
use crate::ui::{self, exit, Ui};
use crate::Interrupt;

/// `dedupe dirs`.
#[derive(Args, Debug)]
pub struct DirsArgs {
    #[command(flatten)]
    pub find: FindArgs,
    /// Also require the same relative paths and names, not just the same
    /// file contents.
    #[arg(long)]
    pub same_layout: bool,
}

pub fn run(mut args: DirsArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    let format = args.find.format;
    if matches!(format, FindFormat::Fdupes | FindFormat::Csv) || args.find.print0 {
        ui::warn(
            "dedupe dirs: --format takes text, json, jsonl, html or ncdu (and -0 does not apply)",
        );
        return Ok(exit::USAGE);
    }
    if args.find.walk.follow_links {
        // A directory of links into another is not a copy of it, and a
        // directory reached through a link would be counted twice.
        ui::warn("dedupe dirs: -L/--follow-links cannot be used: symlinks are not copies, so directories holding them are never duplicates");
        return Ok(exit::USAGE);
    }
    interrupt.arm(|| std::process::exit(i32::from(exit::INTERRUPTED)));
    let unlisted = match crate::find::add_listed(&mut args.find) {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    if args.find.paths.is_empty() {
        ui::warn("dedupe dirs: no paths given\n\nUsage: dedupe dirs [OPTIONS] <PATHS>...");
        return Ok(exit::USAGE);
    }
    let ui = Ui::new(args.find.walk.progress, true, args.find.walk.verbose);
    // Empty files are walked (size 0 by default), so they do not count as
    // filtered out: they are simply not content.
    let (finder, probe, warned) = crate::find::finder(&args.find, &ui, 0, true, false);
    let cancel = finder.canceller();
    interrupt.arm(move || cancel.cancel());
    let options = DirsOptions {
        same_layout: args.same_layout,
        ..DirsOptions::default()
    };
    let mut dirs = Collector::new(&options);
    let result = finder.run(&args.find.paths, |ev| {
        if let FindEvent::Error(e) = &ev {
            ui.entry_error(e);
        }
        dirs.observe(&ev);
    });
    ui.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            ui::warn(ui::find_error(&e));
            return Ok(exit::USAGE);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout());
    let written = match format {
        FindFormat::Html | FindFormat::Ncdu => {
            let (found, tree) = dirs.finish_with_tree(&report, &options);
            let roots = &args.find.paths;
            crate::find::write_map(&mut out, format, roots, &report, &tree, Some(&found))
        }
        other => {
            let found = dirs.finish(&report, &options);
            match other {
                FindFormat::Json => output::json(&mut out, &found),
                FindFormat::Jsonl => output::jsonl(&mut out, &found),
                _ => output::text(&mut out, &found),
            }
        }
    };
    if let Some(code) = ui::output_failed(written.and_then(|()| out.flush())) {
        return Ok(code);
    }
    let stats = args.find.walk.stats || args.find.walk.verbose;
    crate::cache::report(probe.as_ref(), warned, stats);
    let s = &report.summary;
    Ok(ui::end_code(
        &ui,
        args.find.walk.verbose,
        s,
        interrupt.fired(),
        "only what was seen before the stop was compared",
        unlisted,
    ))
}
