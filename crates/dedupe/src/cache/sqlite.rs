//! The hash cache in SQLite: one file, WAL mode, shared safely by
//! concurrent runs.
//!
//! Why these settings: WAL lets lookups run while another connection (our
//! writer thread, or another `dedupe`) commits; `synchronous=NORMAL` in
//! WAL mode keeps the database consistent after a crash or power loss and
//! only risks the last commits, which a cache can lose; the busy timeout
//! makes two processes that write at once take turns instead of failing
//! with "database is locked" (dupeGuru's failure).
//!
//! Schema (`user_version` 1, `application_id` "ddup"):
//! * `volumes(id, name)`, `specs(id, name)`: names stored once;
//! * `entries`: one row per stage key, keyed on `(volume, ino, rel,
//!   spec)`, with what the file was when the key was computed (size,
//!   `mtime_ns`, `ctime_ns`), the path it was reached by and when it was last
//!   stored or used. One table and one B-tree: a lookup is one seek and a
//!   store one insert (measured: two tables, files and keys, cost twice as
//!   much per stored key). A row of an older stamp is never an answer; it
//!   is replaced when its file's key is stored again, or pruned.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::store::{Query, Store, StoreError, Stored, Validity, Write};

/// The cache's file within its directory.
pub const FILE_NAME: &str = "hashes.sqlite3";
/// "ddup": marks the file as ours, so a foreign SQLite file is noticed.
const APPLICATION_ID: i32 = 0x6464_7570;
/// Bumped whenever the schema or the meaning of a column changes; an old
/// file is moved aside (the cache is disposable).
const SCHEMA_VERSION: i32 = 1;
/// How long a commit waits for another process's.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Page cache per connection, KiB: enough for the B-tree's inner pages on
/// millions of entries, small against the pipeline's memory bound.
const CACHE_KIB: i64 = 8 * 1024;

const SCHEMA: &str = "
CREATE TABLE volumes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE specs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE entries (
    volume INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    rel BLOB NOT NULL,
    spec INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    key BLOB NOT NULL,
    path BLOB NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (volume, ino, rel, spec)
) WITHOUT ROWID;
";

/// Why an existing cache file was not used.
#[derive(Debug)]
pub(crate) enum Unusable {
    /// Damaged, truncated, foreign or of another schema: move it aside.
    Bad(String),
    /// Cannot be opened or written at all (permissions, full disk): run
    /// without a cache.
    Unavailable(String),
}

fn classify(e: &rusqlite::Error) -> Unusable {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Unusable::Bad(e.to_string()),
        _ => Unusable::Unavailable(e.to_string()),
    }
}

fn store_error(e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
        Some(ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            StoreError::Full(e.to_string())
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Checks the file's header before SQLite opens it: a file cut short
/// (a copy that stopped, a disk that filled) would otherwise only fail
/// when a lookup reaches a missing page.
fn check_header(path: &Path) -> Result<(), Unusable> {
    let Ok(mut f) = fs::File::open(path) else {
        return Ok(()); // absent: created below
    };
    let len = f.metadata().map_or(0, |m| m.len());
    if len == 0 {
        return Ok(());
    }
    let mut h = [0u8; 100];
    if f.read_exact(&mut h).is_err() || &h[..16] != b"SQLite format 3\0" {
        return Err(Unusable::Bad("not an SQLite database".into()));
    }
    let page = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65_536,
        p => u64::from(p),
    };
    let pages = u64::from(u32::from_be_bytes([h[28], h[29], h[30], h[31]]));
    // The page count is valid when the change counter matches the
    // "version valid for" field (SQLite's file-format rule), and the file
    // is complete only when no write-ahead log is being copied back into
    // it: with a log present (another run at work, or a crash SQLite will
    // recover from) the file may be shorter for a moment, so say nothing.
    // A rollback journal likewise: a run creating the file writes its
    // first pages through one, before it switches to WAL.
    let log: u64 = ["-wal", "-journal"]
        .iter()
        .map(|ext| {
            let mut side = path.as_os_str().to_owned();
            side.push(ext);
            fs::metadata(PathBuf::from(side)).map_or(0, |m| m.len())
        })
        .sum();
    if log == 0 && h[24..28] == h[92..96] && len < pages * page {
        return Err(Unusable::Bad(format!(
            "truncated: {len} bytes, the header says {}",
            pages * page
        )));
    }
    Ok(())
}

/// Opens (creating if needed) the cache file at `path` and checks that it
/// is ours and of this schema.
pub(crate) fn open(path: &Path) -> Result<Connection, Unusable> {
    check_header(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(&e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| classify(&e))?;
    // One statement, so both header fields come from one snapshot: read
    // apart, a run that creates the schema in between would be seen half
    // done (id 0, version 1) and taken for another program's file.
    let (mut app, mut version) = header_ids(&conn).map_err(|e| classify(&e))?;
    if app == 0 && version == 0 {
        (app, version) = create(&conn).map_err(|e| classify(&e))?;
    }
    if app != APPLICATION_ID {
        return Err(Unusable::Bad(format!(
            "written by another program (application id {app:#x})"
        )));
    } else if version != SCHEMA_VERSION {
        return Err(Unusable::Bad(format!(
            "schema version {version}, this dedupe uses {SCHEMA_VERSION}"
        )));
    }
    let mode = wal_mode(&conn).map_err(|e| classify(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Unusable::Unavailable(format!(
            "cannot use write-ahead logging (journal mode {mode})"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-{CACHE_KIB}; PRAGMA foreign_keys=OFF;"
    ))
    .map_err(|e| classify(&e))?;
    Ok(conn)
}

/// Switches the file to write-ahead logging (a no-op once it is). The
/// switch needs the file to itself, and SQLite answers "busy" at once,
/// without its busy handler, while another run that just opened the file
/// holds a read lock; so wait here as the busy timeout would.
fn wal_mode(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn header_ids(conn: &Connection) -> rusqlite::Result<(i32, i32)> {
    conn.query_row(
        "SELECT a.application_id, v.user_version FROM pragma_application_id a, pragma_user_version v",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Creates the schema in an empty file, unless a process that opened it at
/// the same moment did it first; returns the header ids it then holds. A
/// database with tables but no ids is another program's and is left as is.
fn create(conn: &Connection) -> rusqlite::Result<(i32, i32)> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let ids = header_ids(conn)?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if ids != (0, 0) || tables != 0 {
            return Ok(ids);
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&format!(
            "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={SCHEMA_VERSION};"
        ))?;
        header_ids(conn)
    })();
    match result {
        Ok(ids) => conn.execute_batch("COMMIT").map(|()| ids),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Moves a bad cache file (and its WAL and shared-memory files) aside;
/// returns where it went.
pub(crate) fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut to = path.as_os_str().to_owned();
    to.push(format!(".bad-{stamp}"));
    let to = PathBuf::from(to);
    fs::rename(path, &to)?;
    for ext in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(ext);
        let _ = fs::remove_file(PathBuf::from(side));
    }
    Ok(to)
}

/// A name's id, or when it was found missing: a name another connection
/// (our writer, another run) adds later is looked up again after
/// [`RECHECK`], so a first run over a volume does not query for every file.
#[derive(Clone, Copy)]
enum Known {
    Id(i64),
    Absent(Instant),
}

impl From<Option<i64>> for Known {
    fn from(id: Option<i64>) -> Known {
        id.map_or_else(|| Known::Absent(Instant::now()), Known::Id)
    }
}

/// How long a missing name is believed missing.
const RECHECK: Duration = Duration::from_secs(1);

/// A `u64` (inode number, size) as the `i64` SQLite stores, bit for bit:
/// inode numbers above 2^63 exist (some FUSE and network file systems).
pub(crate) fn bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

/// The inverse of [`bits`].
pub(crate) fn unbits(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// The id of `name` in `table`, remembered in `known` (a name found
/// missing is asked again after [`RECHECK`], or at once to create it).
fn cached_id(
    conn: &Connection,
    known: &mut HashMap<String, Known>,
    table: &str,
    name: &str,
    create: bool,
) -> rusqlite::Result<Option<i64>> {
    match known.get(name) {
        Some(Known::Id(id)) => return Ok(Some(*id)),
        Some(Known::Absent(at)) if !create && at.elapsed() < RECHECK => return Ok(None),
        _ => {}
    }
    let id = SqliteStore::id(conn, table, name, create)?;
    known.insert(name.to_owned(), Known::from(id));
    Ok(id)
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    conn: Connection,
    volumes: HashMap<String, Known>,
    specs: HashMap<String, Known>,
}

impl SqliteStore {
    pub(crate) fn new(conn: Connection) -> SqliteStore {
        SqliteStore {
            conn,
            volumes: HashMap::new(),
            specs: HashMap::new(),
        }
    }

    /// The id of a name in `table`, inserting it when `create`.
    fn id(
        conn: &Connection,
        table: &str,
        name: &str,
        create: bool,
    ) -> rusqlite::Result<Option<i64>> {
        let sql = format!("SELECT id FROM {table} WHERE name = ?1");
        let found = conn
            .prepare_cached(&sql)?
            .query_row([name], |r| r.get(0))
            .optional()?;
        if found.is_some() || !create {
            return Ok(found);
        }
        conn.prepare_cached(&format!("INSERT INTO {table}(name) VALUES (?1)"))?
            .execute([name])?;
        Ok(Some(conn.last_insert_rowid()))
    }

    fn volume(&mut self, name: &str, create: bool) -> rusqlite::Result<Option<i64>> {
        cached_id(&self.conn, &mut self.volumes, "volumes", name, create)
    }

    fn spec(&mut self, name: &str, create: bool) -> rusqlite::Result<Option<i64>> {
        cached_id(&self.conn, &mut self.specs, "specs", name, create)
    }

    fn get_inner(
        &mut self,
        queries: &[Query<'_>],
        out: &mut [Option<Stored>],
    ) -> rusqlite::Result<()> {
        // One read transaction for the batch: alone, each SELECT took and
        // dropped the shared lock and re-read the WAL index, a third of
        // its cost on a re-run.
        self.conn.execute_batch("BEGIN")?;
        let result = self.get_all(queries, out);
        let end = self.conn.execute_batch("COMMIT");
        result.and(end)
    }

    fn get_all<'a>(
        &mut self,
        queries: &[Query<'a>],
        out: &mut [Option<Stored>],
    ) -> rusqlite::Result<()> {
        // In key order, so the B-tree pages a batch needs are visited
        // once each, front to back.
        let mut order: Vec<usize> = (0..queries.len()).collect();
        order.sort_by(|&a, &b| queries[a].entry.cmp(queries[b].entry));
        // A batch is almost always one volume and a few specs: their ids
        // are looked up when they change, not per file (hashing names was
        // a tenth of a lookup).
        let mut last_vol: Option<(&str, Option<i64>)> = None;
        let mut last_spec: Option<(&str, Option<i64>)> = None;
        let mut ids = |this: &mut Self, q: &Query<'a>| -> rusqlite::Result<_> {
            let vol = match last_vol {
                Some((name, id)) if name == &*q.entry.volume => id,
                _ => {
                    let id = this.volume(&q.entry.volume, false)?;
                    last_vol = Some((&*q.entry.volume, id));
                    id
                }
            };
            let spec = match last_spec {
                Some((name, id)) if name == q.spec => id,
                _ => {
                    let id = this.spec(q.spec, false)?;
                    last_spec = Some((q.spec, id));
                    id
                }
            };
            Ok(vol.zip(spec))
        };
        let mut asked = Vec::with_capacity(order.len());
        for i in order {
            if let Some(ids) = ids(self, &queries[i])? {
                asked.push((i, ids));
            }
        }
        // One statement for the batch (looking it up in the statement
        // cache hashes its text each time).
        let mut st = self.conn.prepare_cached(
            "SELECT size, mtime_ns, ctime_ns, key, seen FROM entries \
             WHERE volume = ?1 AND ino = ?2 AND rel = ?3 AND spec = ?4",
        )?;
        for (i, (vol, spec)) in asked {
            let q = &queries[i];
            out[i] = st
                .query_row(params![vol, bits(q.entry.ino), q.entry.rel, spec], |r| {
                    Ok(Stored {
                        valid: Validity {
                            size: unbits(r.get::<_, i64>(0)?),
                            mtime_ns: r.get(1)?,
                            ctime_ns: r.get(2)?,
                        },
                        key: r.get(3)?,
                        seen: r.get(4)?,
                    })
                })
                .optional()?;
        }
        Ok(())
    }

    fn put_inner(&mut self, writes: &[Write], now: i64) -> rusqlite::Result<()> {
        // A deferred transaction would take the write lock at its first
        // write and could fail there without waiting (SQLite cannot retry
        // an upgrade from a read lock); take it up front instead.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = self.put_all(writes, now);
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // Names inserted in the rolled-back transaction are gone.
                self.volumes.clear();
                self.specs.clear();
                Err(e)
            }
        }
    }

    fn put_all(&mut self, writes: &[Write], now: i64) -> rusqlite::Result<()> {
        for w in writes {
            match w {
                Write::Put {
                    entry,
                    valid,
                    spec,
                    key,
                    path,
                } => {
                    let vol = self.volume(&entry.volume, true)?.expect("created");
                    let spec = self.spec(spec, true)?.expect("created");
                    self.conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO entries \
                             (volume, ino, rel, spec, size, mtime_ns, ctime_ns, key, path, seen) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        )?
                        .execute(params![
                            vol,
                            bits(entry.ino),
                            entry.rel,
                            spec,
                            bits(valid.size),
                            valid.mtime_ns,
                            valid.ctime_ns,
                            key,
                            path,
                            now
                        ])?;
                }
                Write::Seen(entry) => {
                    if let Some(vol) = self.volume(&entry.volume, false)? {
                        self.conn
                            .prepare_cached(
                                "UPDATE entries SET seen = ?4 WHERE volume = ?1 AND ino = ?2 AND rel = ?3",
                            )?
                            .execute(params![vol, bits(entry.ino), entry.rel, now])?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn get(&mut self, queries: &[Query<'_>], out: &mut [Option<Stored>]) -> Result<(), StoreError> {
        self.get_inner(queries, out).map_err(|e| store_error(&e))
    }

    fn put(&mut self, writes: &[Write], now: i64) -> Result<(), StoreError> {
        self.put_inner(writes, now).map_err(|e| store_error(&e))
    }

    fn refresh(&mut self) {
        self.volumes.retain(|_, k| matches!(k, Known::Id(_)));
        self.specs.retain(|_, k| matches!(k, Known::Id(_)));
    }
}

/// Runs `f` on a connection to the cache file in `dir` for maintenance.
pub(crate) fn with_conn<T>(
    dir: &Path,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let path = dir.join(FILE_NAME);
    let conn = match open(&path) {
        Ok(c) => c,
        Err(Unusable::Bad(s)) => return Err(StoreError::Corrupt(s)),
        Err(Unusable::Unavailable(s)) => return Err(StoreError::Other(s)),
    };
    f(&conn).map_err(|e| store_error(&e))
}
