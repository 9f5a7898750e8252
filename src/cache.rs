//! `dedupe cache stats | prune | clear`, and opening the cache for `find`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use dedupe::cache::{self, CacheStats};
use dedupe::report::{human_bytes, plural};
use dedupe::{CacheProbe, FinderBuilder, HashCache};

use crate::args::{CacheAction, CacheArgs, CacheCmd};
use crate::ui::{self, exit};

fn dir_or_default(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    dir.or_else(HashCache::default_dir)
        .context("no cache directory: set XDG_CACHE_HOME or HOME, or pass --cache-dir")
}

/// The cache a `find` run uses, or `None` (`--no-cache`, or it cannot be
/// used: then a warning, and the run reads everything).
pub fn open(args: &CacheArgs) -> Option<HashCache> {
    if args.no_cache {
        return None;
    }
    let dir = match dir_or_default(args.cache_dir.clone()) {
        Ok(d) => d,
        Err(e) => {
            ui::warn(format_args!(
                "dedupe: warning: {e:#}; running without the hash cache"
            ));
            return None;
        }
    };
    match HashCache::open(&dir) {
        Ok(c) => {
            for w in c.probe().counters().warnings {
                ui::warn(format_args!("dedupe: warning: {w}"));
            }
            Some(c)
        }
        Err(e) => {
            ui::warn(format_args!("dedupe: warning: {e}; running without it"));
            None
        }
    }
}

/// Gives the cache (unless `--no-cache`, or it cannot be used) to the
/// finder; returns a probe on it and how many warnings were printed.
pub fn attach(
    builder: FinderBuilder,
    args: &CacheArgs,
) -> (FinderBuilder, Option<CacheProbe>, usize) {
    match open(args) {
        Some(c) => {
            let probe = c.probe();
            // Warnings from opening were printed already.
            let warned = probe.counters().warnings.len();
            (builder.key_source(Box::new(c)), Some(probe), warned)
        }
        None => (builder, None, 0),
    }
}

/// After a run: the cache's warnings not printed yet, and with `stats`
/// its counters.
pub fn report(probe: Option<&CacheProbe>, warned: usize, stats: bool) {
    let Some(c) = probe.map(CacheProbe::counters) else {
        return;
    };
    for w in c.warnings.iter().skip(warned) {
        ui::warn(format_args!("dedupe: warning: {w}"));
    }
    if stats {
        ui::warn(format_args!(
            "cache: {} known, {} not known, {} stored, {} too new to store, {} dropped",
            c.hits, c.misses, c.stored, c.racy, c.dropped
        ));
    }
}

pub fn run(c: CacheCmd) -> anyhow::Result<u8> {
    let dir = dir_or_default(c.cache_dir)?;
    let mut out = std::io::stdout().lock();
    match c.action {
        CacheAction::Stats { json } => {
            if !dir.join(cache::FILE_NAME).exists() {
                writeln!(out, "no hash cache in {}", dir.display())?;
                return Ok(exit::OK);
            }
            let s = cache::stats(&dir).with_context(|| format!("cache {}", dir.display()))?;
            if json {
                serde_json::to_writer_pretty(&mut out, &s)?;
                writeln!(out)?;
            } else {
                print_stats(&mut out, &s)?;
            }
        }
        CacheAction::Prune { roots, older_than } => {
            if !dir.join(cache::FILE_NAME).exists() {
                writeln!(out, "no hash cache in {}", dir.display())?;
                return Ok(exit::OK);
            }
            let r = cache::prune(&dir, &roots, older_than)
                .with_context(|| format!("cache {}", dir.display()))?;
            writeln!(
                out,
                "removed {} of {}; kept {} on volumes not mounted now",
                plural(r.keys, "key", "keys"),
                plural(r.files, "file", "files"),
                plural(r.unmounted_kept, "key", "keys"),
            )?;
        }
        CacheAction::Clear => {
            let removed = cache::clear(&dir).with_context(|| format!("cache {}", dir.display()))?;
            if removed {
                writeln!(out, "removed the hash cache in {}", dir.display())?;
            } else {
                writeln!(out, "no hash cache in {}", dir.display())?;
            }
        }
    }
    Ok(exit::OK)
}

fn age(now: i64, t: i64) -> String {
    if t == 0 {
        return "-".into();
    }
    let s = (now - t).max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn print_stats(out: &mut dyn Write, s: &CacheStats) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    writeln!(
        out,
        "cache:   {} ({})",
        s.path.display(),
        human_bytes(s.bytes)
    )?;
    writeln!(
        out,
        "entries: {} of {}",
        plural(s.keys, "key", "keys"),
        plural(s.files, "file", "files")
    )?;
    writeln!(
        out,
        "used:    oldest {}, newest {}",
        age(now, s.oldest),
        age(now, s.newest)
    )?;
    writeln!(out, "volumes:")?;
    for v in &s.volumes {
        writeln!(
            out,
            "  {}  {}, {}, last used {}",
            v.name,
            plural(v.files, "file", "files"),
            if v.mounted { "mounted" } else { "not mounted" },
            age(now, v.last_seen)
        )?;
    }
    Ok(())
}
