//! `dedupe remove | trash | link | move | clone | undo`: act on duplicate groups found now
//! (every `find` option applies) or read from a saved report (`--from`).
//! The library plans, checks, journals and changes; this prints.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::Args;
use dedupe::act::{self, Action, ExecOptions, KeepRule, PlanOptions};
use dedupe::report::{escape, plural, JsonPath};
use dedupe::DuplicateGroup;
use serde_json::json;

use crate::act_print::Printer;
use crate::args::{FindArgs, FindFormat};
use crate::ui::{self, exit, Ui};
use crate::Interrupt;

/// Options shared by every action.
#[derive(Args, Debug)]
pub struct ActArgs {
    #[command(flatten)]
    pub find: FindArgs,
    /// Act on the groups of a report written by `dedupe find --format json|jsonl` ('-': stdin) instead of searching.
    #[arg(long, value_name = "REPORT")]
    pub from: Option<PathBuf>,
    /// Which copy to keep: an ordered chain of root-order, oldest, newest, shortest-path, longest-path, shallowest, deepest, most-links, path:GLOB; a byte-wise path comparison breaks the last tie.
    #[arg(
        long,
        value_name = "RULES",
        value_delimiter = ',',
        default_value = "root-order,oldest,shortest-path"
    )]
    pub keep: Vec<String>,
    /// Files under DIR are never changed and are kept first (repeatable).
    #[arg(long = "reference", value_name = "DIR")]
    pub reference: Vec<PathBuf>,
    /// Files whose path matches GLOB are never changed (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub protect: Vec<String>,
    /// Only copies under different roots count: duplicates within one root are left alone.
    #[arg(long)]
    pub isolate: bool,
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Write the journal here instead of `$XDG_STATE_HOME/dedupe/journal/`.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Hard-link files whose owner, group or mode differ (each path then shows the kept file's).
    #[arg(long)]
    pub allow_metadata_change: bool,
    /// Act on files that have other hard links (nothing is freed while those remain).
    #[arg(long)]
    pub allow_other_links: bool,
}

/// `dedupe link`.
#[derive(Args, Debug)]
pub struct LinkArgs {
    #[command(flatten)]
    pub act: ActArgs,
    /// Symbolic links instead of hard links (absolute unless --relative).
    #[arg(long, short = 's')]
    pub symbolic: bool,
    /// Relative symbolic links.
    #[arg(long, requires = "symbolic")]
    pub relative: bool,
}

/// `dedupe move`.
#[derive(Args, Debug)]
pub struct MoveArgs {
    #[command(flatten)]
    pub act: ActArgs,
    /// Where the copies go, each at its path below its root.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// When DIR is on another file system: copy each file, sync and verify the copy, then remove the original (otherwise such moves are skipped).
    #[arg(long)]
    pub allow_copy: bool,
}

/// `dedupe undo`.
#[derive(Args, Debug)]
pub struct UndoArgs {
    /// The journal of the run to reverse (default: the newest run in `$XDG_STATE_HOME/dedupe/journal/` that changed something).
    #[arg(value_name = "JOURNAL")]
    pub journal: Option<PathBuf>,
}

pub fn remove(a: ActArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    run(a, Action::Remove, interrupt)
}

pub fn link(a: LinkArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    let action = Action::Link {
        symbolic: a.symbolic,
        relative: a.relative,
    };
    run(a.act, action, interrupt)
}

pub fn move_(a: MoveArgs, interrupt: &Interrupt) -> anyhow::Result<u8> {
    let to = std::path::absolute(&a.to)?;
    // Moved files would be found again by the next run, and moved again.
    let real_to = real_or_abs(&to);
    if let Some(root) = a
        .act
        .find
        .paths
        .iter()
        .find(|p| real_to.starts_with(real_or_abs(p)))
    {
        anyhow::bail!(
            "--to {} lies inside {}, a path being searched",
            escape(&to),
            escape(root)
        );
    }
    run_with(a.act, Action::Move { to }, interrupt, a.allow_copy)
}

/// The real path of `p`, or of its nearest existing ancestor joined with
/// the rest (`--to` may not exist yet).
fn real_or_abs(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut base = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(r) = std::fs::canonicalize(&base) {
            return rest.iter().rev().fold(r, |acc: PathBuf, n| acc.join(n));
        }
        match (
            base.file_name().map(std::ffi::OsStr::to_os_string),
            base.parent(),
        ) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                base = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
}

fn groups(
    a: &mut ActArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<Result<Vec<DuplicateGroup>, u8>> {
    if let Some(from) = &a.from {
        let input: Box<dyn BufRead> = if from.as_os_str() == "-" {
            Box::new(BufReader::new(io::stdin()))
        } else {
            Box::new(BufReader::new(std::fs::File::open(from).map_err(|e| {
                anyhow::anyhow!("cannot open {}: {e}", from.display())
            })?))
        };
        let groups = dedupe::report::read::read_groups(input)
            .map_err(|e| anyhow::anyhow!("{}: {e}", escape(from)))?;
        return Ok(Ok(groups));
    }
    if let Err(code) = crate::find::add_listed(&mut a.find) {
        return Ok(Err(code));
    }
    // A reference directory is searched too, or it would protect nothing.
    for r in &a.reference {
        let real = std::fs::canonicalize(r).unwrap_or_else(|_| r.clone());
        let covered = a
            .find
            .paths
            .iter()
            .any(|p| std::fs::canonicalize(p).is_ok_and(|p| real.starts_with(p)));
        if !covered && !a.find.paths.is_empty() {
            a.find.paths.push(r.clone());
        }
    }
    if a.find.paths.is_empty() {
        ui::warn("dedupe: no paths given (and no --from REPORT)");
        return Ok(Err(exit::USAGE));
    }
    let ui = Ui::new(a.find.walk.progress, true, a.find.walk.verbose);
    let (finder, _, _) = crate::find::build(&a.find, &ui);
    let cancel = finder.canceller();
    interrupt.arm(move || cancel.cancel());
    let result = finder.run(&a.find.paths, |ev| {
        if let dedupe::FindEvent::Error(e) = ev {
            ui.entry_error(e);
        }
    });
    ui.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            ui::warn(ui::find_error(&e));
            return Ok(Err(exit::USAGE));
        }
    };
    // Acting on half a search could keep a copy that a finished search
    // would not have: stop instead.
    if report.summary.interrupted || interrupt.fired() {
        ui::warn("dedupe: interrupted before the search finished; nothing was changed");
        return Ok(Err(exit::INTERRUPTED));
    }
    Ok(Ok(report.into_groups()))
}

fn plan_options(a: &ActArgs) -> anyhow::Result<PlanOptions> {
    let keep = a
        .keep
        .iter()
        .map(|r| KeepRule::parse(r).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let protect = a
        .protect
        .iter()
        .map(|g| act::glob(g).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    Ok(PlanOptions {
        keep,
        // Report paths are spelled as the roots were given.
        roots: a.find.paths.clone(),
        references: a
            .reference
            .iter()
            .flat_map(|r| [r.clone(), abs(r)])
            .collect(),
        protect,
        isolate: a.isolate,
    })
}

pub fn run(a: ActArgs, action: Action, interrupt: &Interrupt) -> anyhow::Result<u8> {
    run_with(a, action, interrupt, false)
}

fn run_with(
    mut a: ActArgs,
    action: Action,
    interrupt: &Interrupt,
    allow_copy: bool,
) -> anyhow::Result<u8> {
    if !matches!(
        a.find.format,
        FindFormat::Text | FindFormat::Json | FindFormat::Jsonl
    ) {
        anyhow::bail!("actions print text, json or jsonl");
    }
    let opts = plan_options(&a)?;
    // Settle what an earlier, killed run left half done before reading
    // the tree again.
    if !a.dry_run {
        recover_all();
    }
    let groups = match groups(&mut a, interrupt)? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    let plan = act::plan(&groups, &action, &opts);
    let mut out = Printer::new(a.find.format, &action, a.dry_run);
    if a.dry_run {
        for step in &plan.steps {
            out.step(step, None, None);
        }
        out.held(&plan);
        out.summary(&plan, None, None);
        return Ok(exit::OK);
    }
    if plan.steps.is_empty() {
        out.summary(&plan, None, None);
        return Ok(exit::OK);
    }
    let journal_path = match &a.journal {
        Some(p) => p.clone(),
        None => act::default_journal_dir()
            .ok_or_else(|| anyhow::anyhow!("no journal directory: set HOME or use --journal"))?
            .join(journal_name()),
    };
    let header = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "action": action.name(),
        "argv": std::env::args_os().map(|s| JsonPath::of(Path::new(&s)).to_value()).collect::<Vec<_>>(),
        "steps": plan.steps.len(),
    });
    let mut journal = act::Journal::create(&journal_path, &header).map_err(|e| {
        anyhow::anyhow!("cannot create the journal {}: {e}", journal_path.display())
    })?;
    if a.journal.is_some() {
        link_journal(&journal_path);
    }
    ui::warn(format_args!("dedupe: journal {}", escape(&journal_path)));
    if action == Action::Remove {
        ui::warn("dedupe remove: removed files cannot be brought back by undo");
    }
    let exec = ExecOptions {
        allow_metadata_change: a.allow_metadata_change,
        allow_other_links: a.allow_other_links,
        allow_copy,
        crash_at: crash_point(),
        before_changes: None,
    };
    // Bigger batches, fewer journal syncs (see the function).
    act::raise_descriptor_limit();
    let stop = || interrupt.fired();
    let report = act::execute(&plan, &exec, &mut journal, &stop, |step, outcome, dest| {
        out.step(step, Some(outcome), dest);
    })?;
    out.held(&plan);
    out.summary(&plan, Some(&report), Some(journal.path()));
    Ok(if report.interrupted {
        exit::INTERRUPTED
    } else if report.failed > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// Test hook: `DEDUPE_CRASH_AT=<step>:<intent|temp|change>` aborts the
/// process at that point, as a power cut would stop it.
fn crash_point() -> Option<(u64, act::CrashPoint)> {
    let v = std::env::var("DEDUPE_CRASH_AT").ok()?;
    let (n, at) = v.split_once(':')?;
    let at = match at {
        "intent" => act::CrashPoint::AfterIntent,
        "temp" => act::CrashPoint::AfterTemp,
        "change" => act::CrashPoint::AfterChange,
        _ => return None,
    };
    Some((n.parse().ok()?, at))
}

/// Named by start time (to the nanosecond, so names sort as runs began).
fn journal_name() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "run-{:012}.{:09}-{}.jsonl",
        t.as_secs(),
        t.subsec_nanos(),
        std::process::id()
    )
}

/// The journals in `dir`, oldest first; apart, the links (from `--journal
/// FILE` runs) to journals another user could have rewritten: not the
/// directory owner's, or writable by others. Those are never followed on
/// our own (recovery and undo rename and remove files as a journal says).
/// A link whose journal was deleted is removed: nothing is left to settle.
fn journals(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let owner = std::fs::metadata(dir).map(|m| m.uid()).ok();
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            match std::fs::metadata(&p) {
                Ok(m) if Some(m.uid()) == owner && m.mode() & 0o022 == 0 => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
                _ => {
                    others.push(p);
                    continue;
                }
            }
        }
        ours.push(p);
    }
    ours.sort();
    others.sort();
    (ours, others)
}

/// A journal written elsewhere (`--journal FILE`) gets a symbolic link,
/// named like any run's journal, in the default directory: the next run
/// then settles it if this one is killed, and `undo` without an argument
/// finds it. Without the link, a killed run's half-done step stayed so
/// until the user ran `undo FILE` (a temporary name left beside a file).
fn link_journal(journal: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = act::default_journal_dir() else {
        return;
    };
    let linked = std::path::absolute(journal).and_then(|target| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::os::unix::fs::symlink(target, dir.join(journal_name()))
    });
    if let Err(e) = linked {
        ui::warn(format_args!(
            "dedupe: cannot link the journal from {} ({e}): if this run is interrupted, run `dedupe undo {}`",
            escape(&dir),
            escape(journal)
        ));
    }
}

/// Recovers every unfinished journal in the default directory (and those
/// its links point to).
fn recover_all() {
    let Some(dir) = act::default_journal_dir() else {
        return;
    };
    // Only journals whose last record is not an end can hold a change
    // left half done; finding that reads a few bytes of each.
    let (ours, others) = journals(&dir);
    for j in others.iter().filter(|j| !act::journal::settled(j)) {
        ui::warn(format_args!(
            "dedupe: not recovering {}: its journal is not yours alone; run `dedupe undo` on it if you trust it",
            escape(j)
        ));
    }
    for j in ours.into_iter().filter(|j| !act::journal::settled(j)) {
        let mut r = act::UndoReport::default();
        match act::recover(&j, &mut r) {
            // A run going on now: its journal is its own.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(_) if r.recovered_done + r.recovered_not_done > 0 => ui::warn(format_args!(
                "dedupe: settled {} left half done by an interrupted run ({})",
                plural(r.recovered_done + r.recovered_not_done, "change", "changes"),
                escape(&j)
            )),
            Ok(_) => {}
            Err(e) => ui::warn(format_args!("dedupe: cannot recover {}: {e}", escape(&j))),
        }
    }
}

pub fn undo(a: UndoArgs) -> anyhow::Result<u8> {
    // By default the newest run that changed something not yet undone.
    let path = match a.journal {
        Some(p) => p,
        None => act::default_journal_dir()
            .map(|d| journals(&d).0)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|j| act::journal::read(j).is_ok_and(|log| act::undo_reversible(&log)))
            .ok_or_else(|| anyhow::anyhow!("no run to undo"))?,
    };
    let r = act::undo(&path).map_err(|e| anyhow::anyhow!("{}: {e}", escape(&path)))?;
    let mut e = io::stdout().lock();
    for p in &r.irreversible {
        let _ = writeln!(e, "irreversible: {} was removed", escape(p));
    }
    for (p, why) in &r.failed {
        let _ = writeln!(e, "not undone: {}: {why}", escape(p));
    }
    let _ = writeln!(
        e,
        "undone {} from {}",
        plural(r.undone, "change", "changes"),
        escape(&path)
    );
    Ok(if r.failed.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}
