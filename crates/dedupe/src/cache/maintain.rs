//! `dedupe cache stats | prune | clear`.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;

use super::sqlite::{bits, unbits, with_conn, FILE_NAME};
use super::store::StoreError;
use super::volume::Volumes;

/// One volume's part of the cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VolumeStats {
    /// The volume's name.
    pub name: String,
    /// Files with entries.
    pub files: u64,
    /// Mounted now.
    pub mounted: bool,
    /// When an entry was last stored or used, seconds since the epoch.
    pub last_seen: i64,
}

/// What `cache stats` shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// The cache file.
    pub path: PathBuf,
    /// Bytes on disk (the file and its write-ahead log).
    pub bytes: u64,
    /// Files with entries.
    pub files: u64,
    /// Stored keys (up to one per stage per file).
    pub keys: u64,
    /// Oldest and newest last use, seconds since the epoch (0 if empty).
    pub oldest: i64,
    /// See `oldest`.
    pub newest: i64,
    /// Per volume.
    pub volumes: Vec<VolumeStats>,
}

/// What `cache prune` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Files with removed keys.
    pub files: u64,
    /// Keys removed.
    pub keys: u64,
    /// Keys kept because their volume is not mounted now.
    pub unmounted_kept: u64,
}

/// The names of the volumes mounted now.
fn mounted_names() -> HashSet<String> {
    let mut v = Volumes::new();
    let mounts: Vec<(u64, PathBuf)> = v
        .mounts()
        .iter()
        .map(|m| (m.dev, m.point.clone()))
        .collect();
    mounts
        .into_iter()
        .filter_map(|(dev, point)| v.of(dev, &point).map(|vol| vol.name.to_string()))
        .collect()
}

fn file_bytes(dir: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|ext| fs::metadata(dir.join(format!("{FILE_NAME}{ext}"))).ok())
        .map(|m| m.len())
        .sum()
}

/// Entries, size, volumes and age of the cache in `dir`.
pub fn stats(dir: &Path) -> Result<CacheStats, StoreError> {
    let mounted = mounted_names();
    let (files, keys, oldest, newest, volumes) = with_conn(dir, |c| {
        let (keys, oldest, newest): (i64, Option<i64>, Option<i64>) = c.query_row(
            "SELECT count(*), min(seen), max(seen) FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let files: i64 = c.query_row(
            "SELECT count(*) FROM (SELECT DISTINCT volume, ino, rel FROM entries)",
            [],
            |r| r.get(0),
        )?;
        let mut st = c.prepare(
            "SELECT v.name, (SELECT count(*) FROM (SELECT DISTINCT ino, rel FROM entries e \
             WHERE e.volume = v.id)), coalesce((SELECT max(seen) FROM entries e \
             WHERE e.volume = v.id), 0) FROM volumes v ORDER BY v.name",
        )?;
        let volumes = st
            .query_map([], |r| {
                let name: String = r.get(0)?;
                Ok(VolumeStats {
                    mounted: mounted.contains(&name),
                    name,
                    files: unbits(r.get::<_, i64>(1)?),
                    last_seen: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((
            unbits(files),
            unbits(keys),
            oldest.unwrap_or(0),
            newest.unwrap_or(0),
            volumes,
        ))
    })?;
    Ok(CacheStats {
        path: dir.join(FILE_NAME),
        bytes: file_bytes(dir),
        files,
        keys,
        oldest,
        newest,
        volumes,
    })
}

/// Removes the entries of files under `roots` (every entry, if `roots` is
/// empty) that are no longer at their path as the same, unchanged file,
/// and, with
/// `older_than`, those not stored or used for that long. Entries of
/// volumes that are not mounted now are never removed: their files are
/// not gone, only away.
pub fn prune(
    dir: &Path,
    roots: &[PathBuf],
    older_than: Option<Duration>,
) -> Result<PruneReport, StoreError> {
    let mut volumes = Volumes::new();
    let mounted = mounted_names();
    let roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| fs::canonicalize(r).unwrap_or_else(|_| super::volume::absolute(r)))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| bits(d.as_secs()));
    let cutoff = older_than.map(|d| now - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
    with_conn(dir, |c| {
        let mut report = PruneReport::default();
        // Rows to delete: (volume id, ino, rel, spec).
        let mut gone: Vec<(i64, i64, Vec<u8>, i64)> = Vec::new();
        {
            let mut st = c.prepare(
                "SELECT e.volume, v.name, e.ino, e.rel, e.spec, e.size, e.mtime_ns, e.ctime_ns, \
                 e.path, e.seen FROM entries e JOIN volumes v ON v.id = e.volume",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let (vol, name, ino, rel, spec): (i64, String, i64, Vec<u8>, i64) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                let (size, mtime, ctime, path, seen): (i64, i64, i64, Vec<u8>, i64) =
                    (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?);
                if !mounted.contains(&name) {
                    report.unmounted_kept += 1;
                    continue;
                }
                let mut drop_it = || gone.push((vol, ino, rel.clone(), spec));
                if cutoff.is_some_and(|cut| seen < cut) {
                    drop_it();
                    continue;
                }
                let path = Path::new(OsStr::from_bytes(&path));
                if !roots.is_empty() && !roots.iter().any(|root| path.starts_with(root)) {
                    continue;
                }
                // Still there as the same file, unchanged: kept. A file
                // that moved away is found again by the next run (entries
                // are keyed by inode), but prune cannot tell it from one
                // that was deleted.
                let current = fs::symlink_metadata(path).ok().filter(|m| {
                    m.is_file()
                        && m.len() == unbits(size)
                        && super::stamp_ns(m.mtime(), m.mtime_nsec()) == mtime
                        && super::stamp_ns(m.ctime(), m.ctime_nsec()) == ctime
                });
                let same = current.is_some_and(|m| {
                    volumes.of(m.dev(), path).cloned().is_some_and(|v| {
                        *v.name == *name
                            && if v.path_keyed {
                                volumes.relative(m.dev(), path).as_deref() == Some(&rel[..])
                            } else {
                                m.ino() == unbits(ino)
                            }
                    })
                });
                if !same {
                    drop_it();
                }
            }
        }
        c.execute_batch("BEGIN IMMEDIATE")?;
        let mut files = HashSet::new();
        for (vol, ino, rel, spec) in &gone {
            let n = c
                .prepare_cached(
                    "DELETE FROM entries WHERE volume = ?1 AND ino = ?2 AND rel = ?3 AND spec = ?4",
                )?
                .execute(params![vol, ino, rel, spec])?;
            report.keys += n as u64;
            files.insert((vol, ino, rel));
        }
        c.execute_batch("COMMIT")?;
        report.files = files.len() as u64;
        Ok(report)
    })
}

/// Deletes the cache in `dir` (its file, write-ahead log and shared
/// memory). A run using it at the same time keeps its open file and
/// loses what it writes; the next run starts a new cache.
pub fn clear(dir: &Path) -> std::io::Result<bool> {
    let mut removed = false;
    for ext in ["", "-wal", "-shm"] {
        match fs::remove_file(dir.join(format!("{FILE_NAME}{ext}"))) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}
