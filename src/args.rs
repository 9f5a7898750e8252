//! The command line as parsed, kept close to the flags (ripgrep's
//! "low args"). [`WalkArgs::to_config`] turns it into library values.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use dedupe::config::MAX_WORKERS;
use dedupe::{Config, Filters, StreamingConfig};

/// Find duplicate files in very large directory trees, streaming.
///
/// `dedupe <PATHS>...` finds groups of byte-identical files. Files flow
/// into the duplicate pipeline while the walk is still running, and memory
/// stays bounded however large the tree is.
#[derive(Parser, Debug)]
#[command(
    name = "dedupe",
    version,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub find: FindArgs,
}

impl Cli {
    /// Combinations clap cannot express (a conflict with one value of an
    /// option), as clap usage errors: same look, exit code 2.
    pub fn check(&self) -> Result<(), clap::Error> {
        let format = match &self.command {
            Some(Command::Scan(a)) => {
                (a.print0 && a.format != ScanFormat::Paths).then_some("jsonl")
            }
            Some(Command::Find(a)) => a.print0_conflict(),
            Some(
                Command::Remove(a)
                | Command::Trash(a)
                | Command::Clone(a)
                | Command::Move(crate::act::MoveArgs { act: a, .. }),
            ) => a.find.print0_conflict(),
            Some(Command::Link(l)) => l.act.find.print0_conflict(),
            Some(
                Command::Dirs(_)
                | Command::Gen(_)
                | Command::Completions { .. }
                | Command::Man
                | Command::Cache(_)
                | Command::Undo(_),
            ) => None,
            None => self.find.print0_conflict(),
        };
        match format {
            // Silently ignoring -0 would hand `xargs -0` one record
            // holding the whole report.
            Some(f) => Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                format!(
                    "-0/--print0 cannot be used with --format {f}: it applies to the path formats, and {f} already delimits every path"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The exit codes, shown at the end of `--help` (and in the man page).
const EXIT_CODES: &str = "\
Exit codes:
  0    done
  1    done, but some entries could not be read
  2    bad usage, a missing root, out-of-range tuning
  3    the output could not be written (a reader that goes away, as with `| head`, is not an error)
  130  interrupted (Ctrl-C); what was written is valid";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Find groups of duplicate files (what `dedupe <PATHS>` does).
    Find(FindArgs),
    /// List every matching regular file as soon as it is found.
    Scan(ScanArgs),
    /// Generate a deterministic test tree with duplicates and traps.
    Gen(GenArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `dedupe completions bash > ~/.local/share/bash-completion/completions/dedupe`;
    /// zsh: `dedupe completions zsh > ~/.zfunc/_dedupe`;
    /// fish: `dedupe completions fish > ~/.config/fish/completions/dedupe.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show, prune or clear the hash cache.
    Cache(CacheCmd),
    /// Remove every copy but one of each group (cannot be undone).
    Remove(crate::act::ActArgs),
    /// Replace every copy but one by a hard link (or --symbolic link) to the kept one.
    Link(crate::act::LinkArgs),
    /// Move every copy but one under --to DIR, keeping its path below its root.
    Move(crate::act::MoveArgs),
    /// Move every copy but one to the trash of its own file system (freedesktop.org; undo brings them back).
    Trash(crate::act::ActArgs),
    /// Make every copy but one share the kept copy's extents (btrfs, XFS; FIDEDUPERANGE): each keeps its own path and metadata.
    Clone(crate::act::ActArgs),
    /// Reverse a run of remove, trash, link, move or clone from its journal (removals are listed).
    Undo(crate::act::UndoArgs),
    /// Find directories that are copies of each other, or wholly inside another.
    Dirs(crate::dirs::DirsArgs),
    /// Print the man page (roff) to stdout: `dedupe man | man -l -`.
    Man,
}

/// Walk options shared by every command that walks.
#[derive(Args, Debug, Clone)]
pub struct WalkArgs {
    /// Smallest file size to consider (e.g. 1, 4K, 10MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// Largest file size to consider.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Do not report files deeper than this (a root's children are at depth 1).
    #[arg(long, short = 'd', value_name = "N")]
    pub max_depth: Option<usize>,
    /// Only files whose name (or path below its root, if the glob has a '/') matches; repeatable.
    #[arg(long = "include", short = 'i', value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files and directories whose name (or path below its root, if the glob has a '/') matches; repeatable.
    #[arg(long = "exclude", short = 'x', value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Globs (--include, --exclude) match without regard to case.
    #[arg(long, short = 'I')]
    pub ignore_case: bool,
    /// Only files with these extensions (comma-separated or repeated; case-insensitive).
    #[arg(long = "ext", short = 'e', value_name = "EXT", value_delimiter = ',')]
    pub ext: Vec<String>,
    /// Skip files with these extensions.
    #[arg(long = "exclude-ext", value_name = "EXT", value_delimiter = ',')]
    pub exclude_ext: Vec<String>,
    /// Only media files: video, audio, image and subtitle extensions.
    #[arg(long)]
    pub media: bool,
    /// Skip hidden files and directories (names starting with '.').
    #[arg(long)]
    pub no_hidden: bool,
    /// Do not cross into other file systems.
    #[arg(long, short = 'X')]
    pub one_file_system: bool,
    /// Follow symbolic links (a directory reached twice is entered once).
    #[arg(long, short = 'L')]
    pub follow_links: bool,
    /// Reader threads per device, fixed (default, or 0: found while the run goes on, from one per CPU up); `scan` reads no content.
    #[arg(long, short = 't', value_name = "N")]
    pub threads: Option<usize>,
    /// Use the high-throughput walker preset (2 scanners per CPU, 50K buffer, 200-file batches).
    #[arg(long)]
    pub parallel_scan: bool,
    /// Directory scanner threads, fixed (overrides the preset; 0: automatic, and more are added while directories are slow to list).
    #[arg(long, value_name = "N")]
    pub scan_workers: Option<usize>,
    /// Files per batch handed from the walker to the pipeline (at most 65536).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Files the walker may hold in flight (at most 1000000, and 65536 batches).
    #[arg(long, value_name = "N")]
    pub buffer_size: Option<usize>,
    /// Hand over a partial batch after this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub batch_timeout_ms: Option<u64>,
    /// Live progress bars on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// List every error, and more statistics.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Print a final summary on stderr.
    #[arg(long)]
    pub stats: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always; when stderr is not a terminal, as a plain status line
    /// every 2 seconds and one at the end.
    Always,
    /// Never.
    Never,
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{e} (try 1, 4K, 10MiB, 1.5G)"))
}

impl WalkArgs {
    /// The library configuration; `default_min` is the command's own
    /// default smallest size.
    pub fn to_config(&self, default_min: u64) -> Config {
        Config {
            max_depth: self.max_depth,
            min_file_size: self.min_size.unwrap_or(default_min),
            max_file_size: self.max_size,
            threads_per_stage: self.threads.unwrap_or(0),
            follow_links: self.follow_links,
            one_file_system: self.one_file_system,
            include_hidden: !self.no_hidden,
            filters: Filters {
                include_globs: self.include.clone(),
                exclude_globs: self.exclude.clone(),
                ignore_case: self.ignore_case,
                extensions: self.ext.clone(),
                exclude_extensions: self.exclude_ext.clone(),
                media: self.media,
            },
        }
    }

    /// The walker tuning: a preset, then explicit overrides.
    pub fn to_streaming(&self) -> StreamingConfig {
        let mut sc = if self.parallel_scan {
            StreamingConfig::high_throughput_config()
        } else {
            StreamingConfig::simple_config()
        };
        if let Some(t) = self.threads.filter(|&t| t > 0) {
            // Capped: `--threads 1024 --parallel-scan` is a valid request
            // for the most threads, not an error about 2048 that the user
            // never typed. Too large a `--threads` is still refused, by
            // `Config::validate`, with the number given.
            let scanners = if self.parallel_scan {
                t.saturating_mul(2)
            } else {
                t
            };
            sc.scanner_workers = scanners.min(MAX_WORKERS.max(t));
            sc.max_scanner_workers = sc.max_scanner_workers.max(sc.scanner_workers);
        }
        // 0 is "automatic", as for `--threads`: the preset's count, or the
        // one `--threads` implies.
        if let Some(n) = self.scan_workers.filter(|&n| n > 0) {
            // A number the user chose is kept: no growth.
            sc.scanner_workers = n;
            sc.max_scanner_workers = n;
        }
        if let Some(n) = self.batch_size {
            sc.batch_size = n;
            sc.discovery_buffer_size = sc.discovery_buffer_size.max(n);
        }
        if let Some(n) = self.buffer_size {
            sc.discovery_buffer_size = n;
        }
        if let Some(ms) = self.batch_timeout_ms {
            sc.batch_timeout = Duration::from_millis(ms);
        }
        sc
    }
}

/// `dedupe scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files and directories to scan.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// End each path with NUL instead of a newline (not with jsonl).
    #[arg(long, short = '0')]
    pub print0: bool,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ScanFormat::Paths)]
    pub format: ScanFormat,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanFormat {
    /// One path per line.
    Paths,
    /// One JSON object per file: path, size, dev, inode, nlink, mtime.
    Jsonl,
}

/// `dedupe find` and `dedupe <PATHS>`.
#[derive(Args, Debug)]
pub struct FindArgs {
    /// Files and directories to search for duplicates.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Also search the paths listed in FILE, one per line (NUL-separated
    /// with -0); `-` reads them from stdin: `fd -e jpg -0 | dedupe
    /// --files-from - -0`. Like paths on the command line, listed files
    /// are searched whatever the name filters say, and keep the list's
    /// order in reports.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    /// Streaming mode: process files while the walk goes on (the default).
    #[arg(long, overrides_with = "no_streaming")]
    pub streaming: bool,
    /// Traditional mode: walk everything first, then process.
    #[arg(long)]
    pub no_streaming: bool,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = FindFormat::Text)]
    pub format: FindFormat,
    /// NUL-terminated paths (text or fdupes only), an empty record between
    /// groups; with --files-from, the list is NUL-separated too.
    #[arg(long, short = '0')]
    pub print0: bool,
    /// Order of the groups in the final report (jsonl writes them as they
    /// are confirmed).
    #[arg(long, value_enum, default_value_t = SortArg::Reclaimable)]
    pub sort: SortArg,
    /// Full-content hash (BLAKE3 by default: files that differ cannot be
    /// crafted to share it; xxh3 is faster but only for trusted data).
    #[arg(long, value_enum, default_value_t = HashArg::Blake3)]
    pub hash: HashArg,
    /// Compare files byte by byte before reporting them as duplicates.
    #[arg(long)]
    pub verify: bool,
    /// Treat hard links to one inode as duplicates of each other.
    #[arg(long, short = 'H')]
    pub hard_links: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
}

/// Where the hash cache is.
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// Keep the hash cache in DIR (default: `$XDG_CACHE_HOME/dedupe`, else
    /// `~/.cache/dedupe`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the hash cache: read every candidate, store nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

/// `dedupe cache ...`.
#[derive(Args, Debug)]
pub struct CacheCmd {
    #[command(subcommand)]
    pub action: CacheAction,
    /// The cache directory (default: `$XDG_CACHE_HOME/dedupe`, else
    /// `~/.cache/dedupe`).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// Entries, size on disk, volumes and age of the cache.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries of files that no longer exist (under ROOTS, or
    /// anywhere), and with --older-than those unused for that long.
    /// Entries of volumes not mounted now are always kept.
    Prune {
        /// Only entries of files under these directories.
        #[arg(value_name = "ROOTS")]
        roots: Vec<PathBuf>,
        /// Also remove entries not stored or used for this long (e.g. 30d, 12h, 2w).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<Duration>,
    },
    /// Delete the cache.
    Clear,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 30d, 12h or 2w)"))
}

impl FindArgs {
    /// The format `-0` was combined with, if it has no use for it.
    fn print0_conflict(&self) -> Option<&'static str> {
        // With a list of paths to read, -0 says how that list is separated.
        if !self.print0 || self.files_from.is_some() {
            return None;
        }
        match self.format {
            FindFormat::Text | FindFormat::Fdupes => None,
            FindFormat::Json => Some("json"),
            FindFormat::Jsonl => Some("jsonl"),
            FindFormat::Csv => Some("csv"),
            FindFormat::Html => Some("html"),
            FindFormat::Ncdu => Some("ncdu"),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindFormat {
    /// For people: totals, then groups largest first.
    Text,
    /// fdupes-compatible: paths, a blank line between groups.
    Fdupes,
    /// One JSON document at the end.
    Json,
    /// JSON Lines, one object per group as soon as it is confirmed.
    Jsonl,
    /// CSV: group,size,hash,path.
    Csv,
    /// One self-contained HTML page: totals, a treemap of where the
    /// redundant bytes are, the groups (and, for `dirs`, the directories).
    Html,
    /// The redundant copies as a tree in ncdu's JSON export format:
    /// `ncdu -f FILE` or `gdu -f FILE` browses it.
    Ncdu,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortArg {
    /// Most bytes to reclaim first (size x copies beyond the first).
    Reclaimable,
    /// Largest files first.
    Size,
    /// Most copies first.
    Count,
    /// By first path.
    Path,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashArg {
    /// xxh3-128: fastest, but two different files can be crafted to share it.
    Xxh3,
    /// BLAKE3 (cryptographic, the default).
    Blake3,
    /// SHA-256 (cryptographic, matches sha256sum).
    Sha256,
}

/// `dedupe gen`.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// Directory to create the tree in.
    pub dir: PathBuf,
    /// Number of files.
    #[arg(long, default_value_t = 10_000)]
    pub files: u64,
    /// Number of directories (nested, eight per level).
    #[arg(long, default_value_t = 500)]
    pub dirs: u64,
    /// Fraction of files that are exact copies of an earlier file.
    #[arg(long, default_value_t = 0.2)]
    pub dup_ratio: f64,
    /// Fraction of files with an earlier file's size and one differing byte.
    #[arg(long, default_value_t = 0.05)]
    pub near_ratio: f64,
    /// Seed: same arguments, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Smallest file size.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub min_size: u64,
    /// Largest file size.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub max_size: u64,
    /// Size distribution.
    #[arg(long, value_enum, default_value_t = SizeDistArg::Uniform)]
    pub sizes: SizeDistArg,
    /// Median size for the log-normal distribution.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    pub median: u64,
    /// Write into a directory that is not empty (files with the generated names are overwritten).
    #[arg(long)]
    pub force: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeDistArg {
    /// Uniform between --min-size and --max-size.
    Uniform,
    /// Log-normal around --median, clamped to the range.
    Lognormal,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_args(args: &[&str]) -> WalkArgs {
        let argv = ["dedupe"].iter().chain(args).chain(&["."]);
        Cli::try_parse_from(argv).unwrap().find.walk
    }

    #[test]
    fn scanners_derived_from_threads_are_capped() {
        let sc = walk_args(&["--threads", "1024", "--parallel-scan"]).to_streaming();
        assert_eq!(sc.scanner_workers, MAX_WORKERS);
        sc.validate().unwrap();
        let sc = walk_args(&["--threads", "600", "--parallel-scan"]).to_streaming();
        assert_eq!(sc.scanner_workers, MAX_WORKERS);
        let sc = walk_args(&["--threads", "3", "--parallel-scan"]).to_streaming();
        assert_eq!(sc.scanner_workers, 6);
        // Out of range stays out of range, reported as typed, not doubled
        // (and without an overflow).
        let sc = walk_args(&["--threads", "2000", "--parallel-scan"]).to_streaming();
        assert_eq!(sc.validate(), Err(dedupe::ConfigError::Threads(2000)));
        let max = usize::MAX.to_string();
        let sc = walk_args(&["--threads", &max, "--parallel-scan"]).to_streaming();
        assert_eq!(sc.scanner_workers, usize::MAX);
    }

    #[test]
    fn scan_workers_0_is_automatic() {
        let auto = walk_args(&[]).to_streaming();
        assert_eq!(walk_args(&["--scan-workers", "0"]).to_streaming(), auto);
        let sc = walk_args(&["-t", "3", "--scan-workers", "0"]).to_streaming();
        assert_eq!(sc.scanner_workers, 3);
        let sc = walk_args(&["-t", "3", "--scan-workers", "5"]).to_streaming();
        assert_eq!(sc.scanner_workers, 5);
    }
}
