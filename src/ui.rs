//! What every command shares: progress on or off, messages on stderr that
//! do not tear the bars, the error summary and the exit code.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

use dedupe::report::escape;
use dedupe::{
    ConfigError, EntryError, ErrorKind, FindError, NoProgress, ProgressTracker, WalkError,
};

use crate::args::ProgressMode;
use crate::bars::Bars;

/// Exit codes, as documented in the README.
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Done, but some entries could not be read.
    pub const PARTIAL: u8 = 1;
    /// Bad usage, or a root that does not exist.
    pub const USAGE: u8 = 2;
    /// The output could not be written (disk full, I/O error). A reader
    /// that goes away (`dedupe ... | head`) is not this: that exits 0.
    pub const OUTPUT: u8 = 3;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
}

/// Writes one line to stderr, ignoring failure. `eprintln!` panics when
/// stderr cannot be written (`2>/dev/full`, a closed pipe), and with
/// `panic = "abort"` that would also throw away buffered stdout: the
/// results matter more than the messages about them.
pub fn warn(msg: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{msg}");
}

/// The terminal side of a run.
pub struct Ui {
    bars: Option<Arc<Bars>>,
    verbose: bool,
}

impl Ui {
    pub fn new(mode: ProgressMode, processing: bool, verbose: bool) -> Ui {
        let show = match mode {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        Ui {
            bars: show.then(|| Bars::start(processing, mode == ProgressMode::Always)),
            verbose,
        }
    }

    pub fn tracker(&self) -> Arc<dyn ProgressTracker> {
        match &self.bars {
            Some(b) => b.clone(),
            None => Arc::new(NoProgress),
        }
    }

    /// A line on stderr, above the bars if they are drawn.
    pub fn message(&self, line: &str) {
        match &self.bars {
            // indicatif drops lines printed over hidden bars (`--progress
            // always` when stderr is not a terminal), so those go direct.
            Some(b) if !b.is_hidden() => b.println(line),
            _ => warn(line),
        }
    }

    /// An entry error: listed with `--verbose`, otherwise only counted.
    /// The path is escaped (not `EntryError`'s Display, which prints it
    /// raw): a name can hold a newline or a terminal escape sequence.
    pub fn entry_error(&self, e: &EntryError) {
        if self.verbose {
            self.message(&format!("dedupe: {}: {}", escape(&e.path), e.message));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            b.finish();
        }
    }
}

/// A walk that could not start, as a message for the user. The library
/// speaks of fields; the user typed flags, so the flags are named too.
pub fn walk_error(e: &WalkError) -> String {
    match e {
        WalkError::Config(c) => match config_flags(c) {
            Some(flags) => format!("dedupe: {c} ({flags})"),
            None => format!("dedupe: {c}"),
        },
        WalkError::Root { path, source } => format!("dedupe: {}: {source}", escape(path)),
        e => format!("dedupe: {e}"),
    }
}

/// [`walk_error`] for a search, which adds its own setup errors.
pub fn find_error(e: &FindError) -> String {
    match e {
        FindError::Walk(w) => walk_error(w),
        e => format!("dedupe: {e}"),
    }
}

/// The flags that set the value a [`ConfigError`] is about.
fn config_flags(e: &ConfigError) -> Option<&'static str> {
    Some(match e {
        ConfigError::Threads(_) => "--threads, --scan-workers",
        ConfigError::BatchSize | ConfigError::BatchTooLarge(_) => "--batch-size",
        ConfigError::BufferTooLarge(_) => "--buffer-size",
        ConfigError::Buffer { .. } | ConfigError::ChannelTooLarge { .. } => {
            "--buffer-size, --batch-size"
        }
        ConfigError::BatchTimeout => "--batch-timeout-ms",
        ConfigError::SizeRange { .. } => "--min-size, --max-size",
        ConfigError::Extension(_) => "--ext, --exclude-ext",
        _ => return None,
    })
}

/// Errors worth an exit code of 1: everything but files that vanished
/// between listing and reading (nothing was lost; they are just gone) and
/// what was skipped on purpose (pseudo file systems).
pub fn serious_errors(errors: &[u64; ErrorKind::ALL.len()]) -> u64 {
    ErrorKind::ALL
        .iter()
        .zip(errors)
        .filter(|(k, _)| !matches!(**k, ErrorKind::Vanished | ErrorKind::Skipped))
        .map(|(_, n)| n)
        .sum()
}

/// "`permission_denied` 2, vanished 1", or "none".
pub fn errors_by_kind(errors: &[u64; ErrorKind::ALL.len()]) -> String {
    let parts: Vec<String> = ErrorKind::ALL
        .iter()
        .zip(errors)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The closing note when errors were counted but not listed.
pub fn error_note(ui: &Ui, verbose: bool, errors: &[u64; ErrorKind::ALL.len()]) {
    if serious_errors(errors) > 0 && !verbose {
        ui.message(&format!(
            "dedupe: some entries could not be read ({}); --verbose lists them",
            errors_by_kind(errors)
        ));
    }
}

/// The exit code of a run whose output could not be written, if so: a
/// closed pipe (`| head`) is a normal end, anything else (a full disk)
/// is an output error.
pub fn output_failed(written: io::Result<()>) -> Option<u8> {
    let e = written.err()?;
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Some(exit::OK);
    }
    warn(format_args!("dedupe: cannot write output: {e}"));
    Some(exit::OUTPUT)
}

/// The exit code at the end of a search: interrupted (saying `what` of
/// it), some entries unreadable (after a note, unless `--verbose` listed
/// them; `unlisted` counts those not yet reported), or done.
pub fn end_code(
    ui: &Ui,
    verbose: bool,
    s: &dedupe::Summary,
    interrupted: bool,
    what: &str,
    unlisted: u64,
) -> u8 {
    if s.interrupted || interrupted {
        warn(format_args!("dedupe: interrupted; {what}"));
        return exit::INTERRUPTED;
    }
    error_note(ui, verbose, &s.error_counts());
    if serious_errors(&s.error_counts()) + unlisted > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }
}
