//! Reading a report back: the groups of a `json` document or a `jsonl`
//! stream written by `dedupe find`, with each file's identity, so that a
//! later step (acting on duplicates) can work from a saved report and
//! check every file is still what was hashed.
//!
//! In JSON Lines a group may be written several times as it grows (same
//! id, full membership each time): the last line of each id wins. Groups
//! come back largest files first, then by their first path's bytes, so the
//! result does not depend on the order the lines were written in.

use std::collections::HashMap;
use std::io::BufRead;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use serde_json::Value;

use super::decode_json_path;
use super::json::IdentityJson;
use crate::entry::FileId;
use crate::group::{DuplicateGroup, GroupFile};
use crate::hash::{Digest, HashAlgo};
use crate::pipeline::keys::FileStamp;

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The input could not be read.
    #[error("cannot read the report: {0}")]
    Io(#[from] std::io::Error),
    /// A line or the document is not what `dedupe find` writes.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line number (the document's first line for `json`).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn invalid(line: usize, message: impl Into<String>) -> ReportError {
    ReportError::Invalid {
        line,
        message: message.into(),
    }
}

/// The groups of a report (`json` or `jsonl`, told apart by content), in
/// the order described in the module docs.
pub fn read_groups(input: impl BufRead) -> Result<Vec<DuplicateGroup>, ReportError> {
    let mut by_id: HashMap<u64, DuplicateGroup> = HashMap::new();
    let mut text = String::new();
    let mut first_line = None;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if first_line.is_none() {
            first_line = Some(i + 1);
            // JSON Lines start with a whole object that has a "type"; any
            // other start is a document (ours spreads its groups over
            // lines, `jq .` over many more), read whole.
            let tagged = serde_json::from_str::<Value>(trimmed)
                .is_ok_and(|v| v.get("type").is_some_and(Value::is_string));
            if !tagged {
                text.push_str(&line);
                text.push('\n');
                continue;
            }
        }
        if !text.is_empty() {
            text.push_str(&line);
            text.push('\n');
            continue;
        }
        let v: Value = serde_json::from_str(trimmed).map_err(|e| invalid(i + 1, e.to_string()))?;
        match v.get("type").and_then(Value::as_str) {
            Some("group") => match group(&v).map_err(|m| invalid(i + 1, m))? {
                Some(g) => {
                    by_id.insert(g.id, g);
                }
                // Fewer than two files left (the others changed during the
                // run): no longer a group.
                None => {
                    by_id.remove(&num_field(&v, "id").map_err(|m| invalid(i + 1, m))?);
                }
            },
            Some("error" | "summary") => {}
            _ => return Err(invalid(i + 1, "not a line of a dedupe report")),
        }
    }
    if !text.is_empty() {
        let line = first_line.unwrap_or(1);
        let doc: Value = serde_json::from_str(&text).map_err(|e| invalid(line, e.to_string()))?;
        let groups = doc
            .get("groups")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(line, "no \"groups\" array"))?;
        for v in groups {
            let Some(g) = group(v).map_err(|m| invalid(line, m))? else {
                return Err(invalid(line, "a group of fewer than two files"));
            };
            if by_id.insert(g.id, g).is_some() {
                return Err(invalid(line, "two groups with one id"));
            }
        }
    }
    let mut groups: Vec<DuplicateGroup> = by_id.into_values().collect();
    groups.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| first_path(a).cmp(first_path(b)))
    });
    Ok(groups)
}

/// A group's first path, as bytes (the order reports use).
fn first_path(g: &DuplicateGroup) -> &[u8] {
    g.files.first().map_or(&[], |f| f.as_os_str().as_bytes())
}

fn num_field(v: &Value, k: &str) -> Result<u64, String> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or(format!("no \"{k}\" number"))
}

/// A group object; `None` for one of fewer than two files (a group whose
/// other members changed during the run).
fn group(v: &Value) -> Result<Option<DuplicateGroup>, String> {
    let (id, size) = (num_field(v, "id")?, num_field(v, "size")?);
    let algo: HashAlgo = v
        .get("algo")
        .and_then(Value::as_str)
        .ok_or("no \"algo\" (a report from an older dedupe; run find again)")?
        .parse()?;
    let hex = v.get("hash").and_then(Value::as_str).ok_or("no \"hash\"")?;
    let hash = hex_bytes(hex)
        .and_then(|b| Digest::from_bytes(algo, &b))
        .ok_or(format!("\"hash\" is not a {algo} digest"))?;
    let files = v
        .get("files")
        .and_then(Value::as_array)
        .ok_or("no \"files\" array")?;
    let identity = v
        .get("identity")
        .and_then(Value::as_array)
        .ok_or("no \"identity\" (a report from an older dedupe; run find again)")?;
    if files.len() != identity.len() {
        return Err("\"files\" and \"identity\" differ in length".into());
    }
    if files.len() < 2 {
        return Ok(None);
    }
    let files = files
        .iter()
        .zip(identity)
        .map(|(p, id)| {
            let path = decode_json_path(p).ok_or("a path that is not a string or bytes")?;
            let id: IdentityJson =
                serde_json::from_value(id.clone()).map_err(|e| format!("identity: {e}"))?;
            Ok(GroupFile {
                path: PathBuf::from(std::ffi::OsString::from_vec(path)),
                stamp: FileStamp {
                    size,
                    id: FileId {
                        dev: id.dev,
                        ino: id.ino,
                    },
                    mtime_ns: id.mtime_ns,
                    ctime_ns: id.ctime_ns,
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Some(DuplicateGroup {
        id,
        size,
        hash,
        algo,
        files,
    }))
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    // Digits only (`from_str_radix` would take a sign).
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::json;

    fn group(id: u64, size: u64, names: &[&[u8]]) -> DuplicateGroup {
        let mut h = HashAlgo::Blake3.hasher();
        h.update(&id.to_le_bytes());
        DuplicateGroup {
            id,
            size,
            hash: h.finish(),
            algo: HashAlgo::Blake3,
            files: names
                .iter()
                .enumerate()
                .map(|(i, n)| GroupFile {
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(n)),
                    stamp: FileStamp {
                        size,
                        id: FileId {
                            dev: 7,
                            ino: id * 100 + i as u64,
                        },
                        mtime_ns: -5,
                        ctime_ns: 1 << 60,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn jsonl_reads_back_the_last_membership_of_each_group() {
        let small = group(1, 10, &[b"a", b"b"]);
        let grown = group(1, 10, &[b"a", b"b", b"c\n\xff"]);
        let big = group(2, 99, &[b"x", b"y"]);
        let mut out = Vec::new();
        for g in [&small, &big, &grown] {
            json::group_line(&mut out, g).unwrap();
        }
        out.extend_from_slice(b"{\"type\":\"summary\",\"groups\":2}\n");
        let back = read_groups(&out[..]).unwrap();
        assert_eq!(back, [big, grown], "largest first, the last line of id 1");
    }

    #[test]
    fn a_group_left_with_one_file_is_gone_and_documents_may_be_pretty() {
        let pair = group(1, 10, &[b"a", b"b"]);
        let mut one = pair.clone();
        one.files.truncate(1);
        let mut out = Vec::new();
        json::group_line(&mut out, &pair).unwrap();
        json::group_line(&mut out, &one).unwrap();
        assert_eq!(read_groups(&out[..]).unwrap(), []);

        let mut line = Vec::new();
        json::group_line(&mut line, &pair).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let doc = serde_json::json!({"summary": {}, "groups": [v]});
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        assert_eq!(read_groups(pretty.as_bytes()).unwrap(), [pair]);
    }

    #[test]
    fn bad_input_names_its_line() {
        let err = |s: &str| read_groups(s.as_bytes()).unwrap_err().to_string();
        assert!(err("{\"type\":\"group\"}\n").starts_with("line 1:"));
        assert!(err("\n{\"type\":\"other\"}").starts_with("line 2:"));
        assert!(err("not json").starts_with("line 1:"));
        let signed = r#"{"type":"group","id":1,"size":1,"hash":"+f","algo":"xxh3","files":["a","b"],"identity":[]}"#;
        assert!(err(signed).starts_with("line 1:"), "{}", err(signed));
        let old = r#"{"type":"group","id":1,"size":1,"hash":"00","files":["a","b"]}"#;
        assert!(err(old).contains("older dedupe"), "{}", err(old));
    }
}
