//! `dedupe <PATHS>` / `dedupe find`: the main job.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use dedupe::report::{human_bytes, json, plural, text, Terminator};
use dedupe::{FindEvent, FindOptions, Finder, HashAlgo, Summary};

use crate::args::{FindArgs, FindFormat, HashArg};
use crate::ui::{self, exit, Ui};
use crate::Interrupt;

pub fn run(args: FindArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    if args.paths.is_empty() {
        ui::warn("dedupe: no paths given\n\nUsage: dedupe [OPTIONS] <PATHS>...\n       dedupe <COMMAND>\n\nFor more information, try '--help'.");
        return Ok(exit::USAGE);
    }
    let ui = Ui::new(args.walk.progress, true, args.walk.verbose);
    let options = FindOptions {
        hash: match args.hash {
            HashArg::Xxh3 => HashAlgo::Xxh3,
            HashArg::Blake3 => HashAlgo::Blake3,
            HashArg::Sha256 => HashAlgo::Sha256,
        },
        verify: args.verify,
        hard_links: args.hard_links,
        streaming: !args.no_streaming,
    };
    let finder = Finder::builder(Arc::new(args.walk.to_config(1)))
        .progress(ui.tracker())
        .streaming(args.walk.to_streaming())
        .options(options)
        .build();
    let cancel = finder.canceller();
    interrupt.arm(move || cancel.cancel());

    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut write_failed: Option<io::Error> = None;
    let incremental = args.format == FindFormat::Jsonl;
    let result = finder.run(&args.paths, |ev| match ev {
        FindEvent::Group(g) if incremental && write_failed.is_none() => {
            if let Err(e) = json::group_line(&mut out, g) {
                write_failed = Some(e);
                finder.canceller().cancel();
            }
        }
        FindEvent::Error(e) => {
            ui.entry_error(e);
            if incremental && write_failed.is_none() {
                if let Err(err) = json::error_line(&mut out, e) {
                    write_failed = Some(err);
                }
            }
        }
        _ => {}
    });
    ui.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            ui::warn(ui::find_error(&e));
            return Ok(exit::USAGE);
        }
    };
    let term = if args.print0 {
        Terminator::Nul
    } else {
        Terminator::Newline
    };
    let written = match write_failed {
        Some(e) => Err(e),
        None => match args.format {
            FindFormat::Jsonl => json::summary_line(&mut out, &report.summary),
            FindFormat::Json => json::document(&mut out, &report),
            FindFormat::Text => text::text(&mut out, &report, term),
            FindFormat::Fdupes => text::fdupes(&mut out, report.groups(), term),
            FindFormat::Csv => text::csv(&mut out, report.groups()),
        },
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(exit::OK);
        }
        ui::warn(format_args!("dedupe: cannot write output: {e}"));
        return Ok(exit::OUTPUT);
    }
    let s = &report.summary;
    if args.walk.stats || args.walk.verbose {
        print_summary(s, args.walk.verbose);
    }
    if s.interrupted || interrupt.fired() {
        ui::warn("dedupe: interrupted; the groups above were confirmed before the stop");
        return Ok(exit::INTERRUPTED);
    }
    ui::error_note(&ui, args.walk.verbose, &s.error_counts());
    Ok(if ui::serious_errors(&s.error_counts()) > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

fn print_summary(s: &Summary, verbose: bool) {
    let secs = (s.elapsed_ms as f64 / 1000.0).max(1e-3);
    let mut e = io::stderr().lock();
    let _ = writeln!(
        e,
        "scanned {} ({}) in {}; {}, {} ({})",
        plural(s.files_scanned, "file", "files"),
        human_bytes(s.bytes_scanned),
        plural(s.dirs_scanned, "directory", "directories"),
        plural(s.groups, "group", "groups"),
        plural(s.redundant_files, "redundant file", "redundant files"),
        human_bytes(s.redundant_bytes)
    );
    let _ = writeln!(
        e,
        "time {:.3} s (walk {:.3} s), {:.0} files/s, first group after {}, {} mode, {} readers, hash {}{}",
        secs,
        s.scan_ms as f64 / 1000.0,
        s.files_scanned as f64 / secs,
        s.first_group_ms
            .map_or("-".to_string(), |ms| format!("{ms} ms")),
        if s.streaming { "streaming" } else { "traditional" },
        s.readers,
        s.hash,
        if s.verified { ", verified byte by byte" } else { "" }
    );
    let _ = writeln!(e, "errors: {}", ui::errors_by_kind(&s.error_counts()));
    if s.hard_links_collapsed > 0 {
        let _ = writeln!(e, "hard links collapsed: {}", s.hard_links_collapsed);
    }
    if verbose {
        let _ = writeln!(
            e,
            "stage         files read   bytes read  candidates after  busy"
        );
        for st in &s.stages {
            let _ = writeln!(
                e,
                "{:<12} {:>11} {:>12} {:>17} {:>6} ms",
                st.name,
                st.files,
                human_bytes(st.bytes_read),
                st.candidates_after,
                st.busy_ms
            );
        }
    }
    if let Some(peak) = dedupe::rss::peak() {
        let _ = writeln!(e, "peak memory: {}", human_bytes(peak));
    }
}
