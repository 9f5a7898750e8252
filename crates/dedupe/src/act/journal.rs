//! The journal: one JSON Lines file per run, synced to disk before and
//! after each change (`intent`, then `done` or `failed`), so a run killed
//! at any instant leaves a record of every change it may have begun.
//! Paths are lossless (see [`JsonPath`]); each intent holds both files'
//! `lstat` and the content hash, which is what recovery and undo check.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::Stat;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::report::{decode_json_path, JsonPath};

/// What a file was, as recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRec {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
}

impl StatRec {
    pub(crate) fn of(st: &Stat) -> StatRec {
        let s = super::fsops::stamp_of(st);
        StatRec {
            dev: s.id.dev,
            ino: s.id.ino,
            size: s.size,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
        }
    }
}

/// The kind of one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// The victim was unlinked.
    Remove,
    /// The victim was replaced by a hard link to the kept file.
    Link,
    /// The victim was replaced by a symbolic link to the kept file.
    Symlink,
    /// The victim was renamed to `dest`.
    Move,
    /// The victim was renamed to `dest` in a trash directory, whose info
    /// file names its original path.
    Trash,
    /// The victim was made to share the kept file's extents.
    Clone,
}

impl OpKind {
    /// The name in the journal.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Remove => "remove",
            OpKind::Link => "link",
            OpKind::Symlink => "symlink",
            OpKind::Move => "move",
            OpKind::Trash => "trash",
            OpKind::Clone => "clone",
        }
    }

    fn parse(s: &str) -> Option<OpKind> {
        Some(match s {
            "remove" => OpKind::Remove,
            "link" => OpKind::Link,
            "symlink" => OpKind::Symlink,
            "move" => OpKind::Move,
            "trash" => OpKind::Trash,
            "clone" => OpKind::Clone,
            _ => return None,
        })
    }
}

/// Where a change stands in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpState {
    /// Begun, with no outcome recorded (the run was killed): recovery
    /// decides from the file system.
    Pending,
    /// Completed.
    Done,
    /// Not made (a check failed, or recovery found it had not happened).
    NotDone,
    /// Reversed by `undo`.
    Undone,
}

/// One change as the journal records it.
#[derive(Clone, Debug)]
pub struct Op {
    /// Its number in the run.
    pub op: u64,
    /// What it does.
    pub kind: OpKind,
    /// The file changed.
    pub victim: PathBuf,
    /// The copy kept.
    pub keep: PathBuf,
    /// The temporary name (in the victim's directory) a link is made at.
    pub tmp: Option<PathBuf>,
    /// For a move or trash: where to.
    pub dest: Option<PathBuf>,
    /// For a symlink: what it points to.
    pub target: Option<PathBuf>,
    /// The victim before the change.
    pub victim_stat: StatRec,
    /// The kept file before the change.
    pub keep_stat: StatRec,
    /// Hex content hash and its algorithm name.
    pub hash: String,
    /// The hash algorithm's name.
    pub algo: String,
    /// Where it stands.
    pub state: OpState,
    /// A copy `undo` began writing beside the victim (removed by recovery
    /// if the undo was killed before renaming it into place).
    pub undo_tmp: Option<PathBuf>,
}

/// An open journal, appended to and synced line by line.
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// Takes the journal's lock (released when the file is closed); false if
/// another process holds it.
fn lock(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn path_json(p: &Path) -> Value {
    JsonPath::of(p).to_value()
}

impl Journal {
    /// Creates a new journal at `path` (its directory is created, mode
    /// 0700: it names the user's files).
    pub fn create(path: &Path, header: &Value) -> io::Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Only a directory made here is made private: an existing one
            // (a home, /tmp) keeps its mode.
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        // Held for the run: recovery by another process leaves it alone.
        lock(&file)?;
        let mut j = Journal {
            file,
            path: path.to_path_buf(),
        };
        let mut h = header.clone();
        h["type"] = json!("start");
        j.line(&h)?;
        Ok(j)
    }

    /// Opens an existing journal to append outcomes (recovery, undo),
    /// after the line a crash may have cut short. `Ok(None)`: a running
    /// process holds it.
    pub fn append(path: &Path) -> io::Result<Option<Journal>> {
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        if !lock(&file)? {
            return Ok(None);
        }
        use std::io::{Read, Seek, SeekFrom};
        let len = file.seek(SeekFrom::End(0))?;
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Some(Journal {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record and waits until it is on disk.
    pub(crate) fn line(&mut self, v: &Value) -> io::Result<()> {
        self.lines(std::iter::once(v.clone()))
    }

    /// Writes records and waits until all are on disk.
    fn lines(&mut self, vs: impl Iterator<Item = Value>) -> io::Result<()> {
        let mut text = Vec::new();
        for v in vs {
            serde_json::to_writer(&mut text, &v)?;
            text.push(b'\n');
        }
        self.file.write_all(&text)?;
        self.file.sync_data()
    }

    /// Records that these changes are about to happen.
    pub(crate) fn intents<'a>(&mut self, ops: impl Iterator<Item = &'a Op>) -> io::Result<()> {
        self.lines(ops.map(intent_json))
    }

    /// Records outcomes: `(op, state, why)`.
    pub(crate) fn outcomes(
        &mut self,
        outcomes: impl Iterator<Item = (u64, OpState, Option<String>)>,
    ) -> io::Result<()> {
        self.lines(outcomes.filter_map(|(op, state, why)| outcome_json(op, state, why.as_deref())))
    }

    /// Records one outcome of `op`: `done`, `not_done` (with why) or
    /// `undone`.
    pub(crate) fn outcome(&mut self, op: u64, state: OpState, why: Option<&str>) -> io::Result<()> {
        match outcome_json(op, state, why) {
            Some(v) => self.line(&v),
            None => Ok(()),
        }
    }

    /// Records that `undo` is about to write a copy at `tmp` for `op`.
    pub(crate) fn undo_intent(&mut self, op: u64, tmp: &Path) -> io::Result<()> {
        self.line(&json!({"type": "undo_intent", "op": op, "tmp": path_json(tmp)}))
    }

    /// Records that the run ended (every change has its outcome).
    pub(crate) fn end(&mut self, v: &Value) -> io::Result<()> {
        let mut e = v.clone();
        e["type"] = json!("end");
        self.line(&e)
    }
}

fn intent_json(op: &Op) -> Value {
    let opt = |p: &Option<PathBuf>| p.as_deref().map_or(Value::Null, path_json);
    json!({
        "type": "intent",
        "op": op.op,
        "kind": op.kind.name(),
        "victim": path_json(&op.victim),
        "keep": path_json(&op.keep),
        "tmp": opt(&op.tmp),
        "dest": opt(&op.dest),
        "target": opt(&op.target),
        "victim_stat": op.victim_stat,
        "keep_stat": op.keep_stat,
        "hash": op.hash,
        "algo": op.algo,
    })
}

fn outcome_json(op: u64, state: OpState, why: Option<&str>) -> Option<Value> {
    let name = match state {
        OpState::Done => "done",
        OpState::NotDone => "not_done",
        OpState::Undone => "undone",
        OpState::Pending => return None,
    };
    let mut v = json!({"type": name, "op": op});
    if let Some(w) = why {
        v["why"] = json!(w);
    }
    Some(v)
}

/// A journal read back.
#[derive(Debug, Default)]
pub struct JournalLog {
    /// The header (`start` record).
    pub header: Value,
    /// The changes, by number.
    pub ops: Vec<Op>,
    /// Whether the run recorded its end.
    pub ended: bool,
}

fn get_path(v: &Value, k: &str) -> Option<PathBuf> {
    decode_json_path(v.get(k)?).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
}

/// Whether the journal at `path` ends with an `end` record: its run, or
/// the last undo of it, finished or was settled by recovery, so nothing
/// in it is half done. Reads only the file's tail, so the check before
/// every run costs the same however many journals have piled up (reading
/// each whole took a second per few hundred thousand steps of history).
pub fn settled(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    /// An `end` record is a few hundred bytes.
    const TAIL: u64 = 4096;
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).is_err()
        || f.read_to_end(&mut tail).is_err()
    {
        return false;
    }
    let last = tail.split(|&b| b == b'\n').rev().find(|l| !l.is_empty());
    last.and_then(|l| serde_json::from_slice::<Value>(l).ok())
        .is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("end"))
}

/// Reads a journal. A last line cut short by a crash is ignored; any other
/// bad line is an error.
pub fn read(path: &Path) -> io::Result<JournalLog> {
    // Bytes, not text: a line cut inside a multi-byte character is still
    // just a cut line.
    let lines: Vec<Vec<u8>> = BufReader::new(File::open(path)?)
        .split(b'\n')
        .collect::<io::Result<_>>()?;
    let bad = |i: usize, what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: line {}: {what}", path.display(), i + 1),
        )
    };
    let mut log = JournalLog::default();
    let mut ops: BTreeMap<u64, Op> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => return Err(bad(i, &e.to_string())),
        };
        let n = v.get("op").and_then(Value::as_u64);
        match v.get("type").and_then(Value::as_str) {
            Some("start") => log.header = v,
            Some("end") => log.ended = true,
            Some("intent") => {
                let stat = |k: &str| {
                    v.get(k)
                        .cloned()
                        .and_then(|s| serde_json::from_value::<StatRec>(s).ok())
                };
                let op = (|| {
                    Some(Op {
                        op: n?,
                        kind: OpKind::parse(v.get("kind")?.as_str()?)?,
                        victim: get_path(&v, "victim")?,
                        keep: get_path(&v, "keep")?,
                        tmp: get_path(&v, "tmp"),
                        dest: get_path(&v, "dest"),
                        target: get_path(&v, "target"),
                        victim_stat: stat("victim_stat")?,
                        keep_stat: stat("keep_stat")?,
                        hash: v.get("hash")?.as_str()?.to_string(),
                        algo: v.get("algo")?.as_str()?.to_string(),
                        state: OpState::Pending,
                        undo_tmp: None,
                    })
                })()
                .ok_or_else(|| bad(i, "incomplete intent"))?;
                ops.insert(op.op, op);
            }
            Some("undo_intent") => {
                let op = n
                    .and_then(|n| ops.get_mut(&n))
                    .ok_or_else(|| bad(i, "undo of an unknown change"))?;
                op.undo_tmp = get_path(&v, "tmp");
            }
            Some(kind @ ("done" | "not_done" | "undone")) => {
                let op = n
                    .and_then(|n| ops.get_mut(&n))
                    .ok_or_else(|| bad(i, "outcome of an unknown change"))?;
                op.state = match kind {
                    "done" => OpState::Done,
                    "not_done" => OpState::NotDone,
                    _ => OpState::Undone,
                };
            }
            _ => return Err(bad(i, "unknown record")),
        }
    }
    log.ops = ops.into_values().collect();
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_journal_whose_last_record_is_an_end_is_settled() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("run.jsonl");
        let mut j = Journal::create(&p, &json!({})).unwrap();
        assert!(!settled(&p), "a started run");
        j.end(&json!({"done": 0})).unwrap();
        assert!(settled(&p), "an ended run");
        j.undo_intent(1, Path::new("tmp")).unwrap();
        assert!(!settled(&p), "an undo under way after the end");
        j.outcome(1, OpState::Undone, None).unwrap();
        assert!(!settled(&p), "an undo that did not record its end");
        j.end(&json!({"undo": true})).unwrap();
        assert!(settled(&p));
        // A line cut by a crash after the end.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"type\":\"undo_int")
            .unwrap();
        assert!(!settled(&p), "a cut line");
        assert!(!settled(&t.path().join("missing.jsonl")));
    }
}
