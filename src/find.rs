//! `dedupe <PATHS>` / `dedupe find`: the main job.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use dedupe::dirs::{Collector, DirTree, DirsOptions, DirsReport};
use dedupe::report::html;
use dedupe::report::writer::{writer, Format, Layout, Spawned};
use dedupe::report::{human_bytes, plural, Terminator};
use dedupe::{CacheProbe, FindEvent, FindOptions, Finder, GroupOrder, HashAlgo, Summary};

use crate::args::{FindArgs, FindFormat, HashArg, SortArg};
use crate::ui::{self, exit, Ui};
use crate::Interrupt;

pub fn run(mut args: FindArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    // Reading a list from a pipe may block for as long as the other side
    // takes: Ctrl-C meanwhile ends the process at once (nothing has been
    // written yet, so nothing can be left half done).
    interrupt.arm(|| std::process::exit(i32::from(exit::INTERRUPTED)));
    let unlisted = match add_listed(&mut args) {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    if args.paths.is_empty() {
        ui::warn("dedupe: no paths given\n\nUsage: dedupe [OPTIONS] <PATHS>...\n       dedupe <COMMAND>\n\nFor more information, try '--help'.");
        return Ok(exit::USAGE);
    }
    let ui = Ui::new(args.walk.progress, true, args.walk.verbose);
    let map = matches!(args.format, FindFormat::Html | FindFormat::Ncdu);
    // Only JSON Lines writes groups as they come; the other formats are
    // built from the final report, so the run need not build one per
    // change.
    let streams = matches!(args.format, FindFormat::Jsonl);
    let (finder, probe, warned) = finder(&args, &ui, 1, map, streams);
    let cancel = finder.canceller();
    interrupt.arm(move || cancel.cancel());

    let (format, layout) = report_format(&args);
    let out = BufWriter::with_capacity(1 << 16, io::stdout());
    // `html` and `ncdu` are drawn from the directory tree at the end. The
    // other formats go to a report writer, on a thread of its own if it
    // writes as things happen, so a slow reader of stdout does not hold up
    // the hashing.
    let mut tree = map.then(|| Collector::new(&DirsOptions::default()));
    let (report_out, map_out) = if map {
        (None, Some(out))
    } else {
        let w = writer(format, Box::new(out), layout);
        (Some(Spawned::start(w, 1024)?), None)
    };
    let result = finder.run(&args.paths, |ev| {
        if let Some(t) = &mut tree {
            t.observe(&ev);
        }
        if let FindEvent::Error(e) = ev {
            ui.entry_error(e);
        }
        let Some(r) = &report_out else { return };
        match ev {
            FindEvent::Group(g) => r.group(g),
            FindEvent::Error(e) => r.error(e),
            _ => {}
        }
        // The output is gone (a closed pipe, a full disk): stop.
        if r.failed() {
            finder.canceller().cancel();
        }
    });
    ui.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            ui::warn(ui::find_error(&e));
            return Ok(exit::USAGE);
        }
    };
    let written = match (report_out, tree, map_out) {
        (Some(r), ..) => r.finish(&report),
        (None, Some(t), Some(mut out)) => {
            let tree = t.into_tree(&report);
            write_map(&mut out, args.format, &args.paths, &report, &tree, None)
                .and_then(|()| out.flush())
        }
        _ => Ok(()),
    };
    if let Some(code) = ui::output_failed(written) {
        return Ok(code);
    }
    let s = &report.summary;
    let stats = args.walk.stats || args.walk.verbose;
    if stats {
        print_summary(s, args.walk.verbose);
    }
    crate::cache::report(probe.as_ref(), warned, stats);
    Ok(ui::end_code(
        &ui,
        args.walk.verbose,
        s,
        interrupt.fired(),
        "the groups above were confirmed before the stop",
        unlisted,
    ))
}

/// The report writer's format and layout. `html` and `ncdu` have no
/// report writer (they are drawn from the directory tree); they map to
/// `Json` only to keep the match whole.
fn report_format(args: &FindArgs) -> (Format, Layout) {
    let term = if args.print0 {
        Terminator::Nul
    } else {
        Terminator::Newline
    };
    let format = match args.format {
        FindFormat::Text => Format::Text,
        FindFormat::Fdupes => Format::Fdupes,
        FindFormat::Json | FindFormat::Html | FindFormat::Ncdu => Format::Json,
        FindFormat::Jsonl => Format::Jsonl,
        FindFormat::Csv => Format::Csv,
    };
    let order = match args.sort {
        SortArg::Reclaimable => GroupOrder::Reclaimable,
        SortArg::Size => GroupOrder::Size,
        SortArg::Count => GroupOrder::Count,
        SortArg::Path => GroupOrder::Path,
    };
    (format, Layout::new(term, order))
}

/// Writes the formats drawn from the directory tree (`html`, `ncdu`).
pub fn write_map(
    out: &mut dyn Write,
    format: FindFormat,
    roots: &[std::path::PathBuf],
    report: &dedupe::pipeline::FindReport,
    tree: &DirTree,
    dirs: Option<&DirsReport>,
) -> io::Result<()> {
    match format {
        FindFormat::Ncdu => dedupe::report::ncdu::write(out, tree, report),
        _ => {
            let page = html::Page {
                roots,
                report,
                tree,
                dirs,
            };
            html::write(out, &page, html::Budget::default())
        }
    }
}

/// The finder `args` ask for, with its hash cache (if any) and the number
/// of cache warnings already shown.
pub fn build(args: &FindArgs, ui: &Ui) -> (Finder, Option<CacheProbe>, usize) {
    finder(args, ui, 1, false, false)
}

/// [`build`] with the command's own smallest size by default and, with
/// `observe`, the walk's files and directories passed to the callback; with
/// `groups`, each group as it is confirmed or grows.
pub fn finder(
    args: &FindArgs,
    ui: &Ui,
    default_min: u64,
    observe: bool,
    groups: bool,
) -> (Finder, Option<CacheProbe>, usize) {
    let options = FindOptions {
        hash: match args.hash {
            HashArg::Xxh3 => HashAlgo::Xxh3,
            HashArg::Blake3 => HashAlgo::Blake3,
            HashArg::Sha256 => HashAlgo::Sha256,
        },
        verify: args.verify,
        hard_links: args.hard_links,
        streaming: !args.no_streaming,
        ..FindOptions::default()
    };
    let builder = Finder::builder(Arc::new(args.walk.to_config(default_min)))
        .observe_walk(observe)
        .observe_groups(groups)
        .progress(ui.tracker())
        .streaming(args.walk.to_streaming())
        .options(options);
    let (builder, probe, warned) = crate::cache::attach(builder, &args.cache);
    (builder.build(), probe, warned)
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
    let _ =
        writeln!(
        e,
        "time {:.3} s (walk {:.3} s), {:.0} files/s, first group after {}, {} mode, {}, hash {}{}",
        secs,
        s.scan_ms as f64 / 1000.0,
        s.files_scanned as f64 / secs,
        s.first_group_ms
            .map_or("-".to_string(), |ms| format!("{ms} ms")),
        if s.streaming { "streaming" } else { "traditional" },
        readers(s),
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
        let _ = writeln!(
            e,
            "walk: {} scanners{}",
            s.scanners,
            if s.scanners_added > 0 {
                format!(", {} more added for slow directories", s.scanners_added)
            } else {
                String::new()
            }
        );
        for d in &s.io {
            let _ = writeln!(
                e,
                "device {}: {} readers at the end, {} at most, {:.1} on average{}",
                d.device,
                d.readers_end,
                d.readers_peak,
                d.readers_mean,
                if d.fixed {
                    " (fixed by --threads)".to_string()
                } else {
                    format!(", {}", plural(d.changes, "change", "changes"))
                }
            );
            for h in &d.history {
                let _ = writeln!(e, "  {:>7} ms  {:>2}  {}", h.at_ms, h.readers, h.reason);
            }
            if d.changes + 1 > d.history.len() as u64 {
                let _ = writeln!(e, "  ...");
            }
        }
    }
    if let Some(peak) = dedupe_testkit::rss::peak() {
        let _ = writeln!(e, "peak memory: {}", human_bytes(peak));
    }
}

/// How many readers the run used, in a few words.
fn readers(s: &Summary) -> String {
    match s.io.as_slice() {
        [] => plural(s.readers as u64, "reader", "readers"),
        [d] if d.fixed => plural(d.readers_end as u64, "reader", "readers"),
        [d] => format!(
            "readers adaptive ({} to start, {} at most, {} at the end)",
            s.readers, d.readers_peak, d.readers_end
        ),
        many => format!("{} devices, readers adaptive", many.len()),
    }
}

/// The paths listed in `list` (`-`: stdin), one per line or, with `nul`,
/// NUL-separated; empty entries are skipped. Paths are bytes, so names
/// that are not UTF-8 pass through.
fn read_list(list: &std::path::Path, nul: bool) -> io::Result<Vec<std::path::PathBuf>> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let mut bytes = Vec::new();
    if list.as_os_str() == "-" {
        io::stdin().lock().read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(list)?.read_to_end(&mut bytes)?;
    }
    let sep = if nul { 0 } else { b'\n' };
    Ok(bytes
        .split(|&b| b == sep)
        .filter(|p| !p.is_empty())
        .map(|p| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect())
}

/// Adds the paths `--files-from` lists to `args.paths`. Listed paths that
/// are gone are each reported, and the run goes on with the rest (a list
/// made a moment ago may name files deleted since): their number is
/// returned. `Err`: the exit code when there is nothing to do.
pub fn add_listed(args: &mut FindArgs) -> Result<u64, u8> {
    let Some(list) = &args.files_from else {
        return Ok(0);
    };
    let paths = read_list(list, args.print0).map_err(|e| {
        ui::warn(format_args!(
            "dedupe: cannot read --files-from {}: {e}",
            dedupe::report::escape(list)
        ));
        exit::USAGE
    })?;
    let mut unlisted = 0;
    for p in paths {
        match std::fs::symlink_metadata(&p) {
            Ok(_) => args.paths.push(p),
            Err(e) => {
                unlisted += 1;
                ui::warn(format_args!(
                    "dedupe: {}: {e} (listed in --files-from); skipped",
                    dedupe::report::escape(&p)
                ));
            }
        }
    }
    if args.paths.is_empty() {
        // An empty list (a `fd ... |` that matched nothing) finds nothing;
        // that is not a usage error.
        if unlisted == 0 {
            ui::warn("dedupe: --files-from listed no paths; nothing to search");
            return Err(exit::OK);
        }
        return Err(exit::PARTIAL);
    }
    Ok(unlisted)
}
