//! JSON and JSON Lines. Paths are lossless (see [`JsonPath`]).

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use super::JsonPath;
use crate::entry::EntryError;
use crate::group::DuplicateGroup;
use crate::hash::HashAlgo;
use crate::pipeline::{FindReport, GroupOrder, Summary};

#[derive(Serialize)]
struct GroupJson<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    id: u64,
    size: u64,
    hash: String,
    algo: HashAlgo,
    files: Vec<JsonPath<'a>>,
    /// Per file, in the order of `files`: what it was when read, so a
    /// later action can check it is still that file.
    identity: Vec<IdentityJson>,
}

/// A file's identity in a report.
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct IdentityJson {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

impl<'a> GroupJson<'a> {
    fn of(g: &'a DuplicateGroup, kind: Option<&'static str>) -> Self {
        GroupJson {
            kind,
            id: g.id,
            size: g.size,
            hash: g.hash.to_hex(),
            algo: g.algo,
            files: g
                .files
                .iter()
                .map(|p| JsonPath(p.as_os_str().as_bytes()))
                .collect(),
            identity: g
                .files
                .iter()
                .map(|f| IdentityJson {
                    dev: f.stamp.id.dev,
                    ino: f.stamp.id.ino,
                    mtime_ns: f.stamp.mtime_ns,
                    ctime_ns: f.stamp.ctime_ns,
                })
                .collect(),
        }
    }
}

fn line(w: &mut dyn Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *w, v)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// `{"type":"group","id":N,"size":..,"hash":"<hex>","algo":..,"files":[..],
/// "identity":[{"dev","ino","mtime_ns","ctime_ns"},..]}` and a newline,
/// flushed.
pub fn group_line(w: &mut dyn Write, g: &DuplicateGroup) -> io::Result<()> {
    line(w, &GroupJson::of(g, Some("group")))
}

/// `{"type":"error","kind":..,"path":..,"message":..}` and a newline.
pub fn error_line(w: &mut dyn Write, e: &EntryError) -> io::Result<()> {
    #[derive(Serialize)]
    struct ErrorJson<'a> {
        #[serde(rename = "type")]
        kind_tag: &'static str,
        kind: &'static str,
        path: JsonPath<'a>,
        message: &'a str,
    }
    line(
        w,
        &ErrorJson {
            kind_tag: "error",
            kind: e.kind.as_str(),
            path: JsonPath::of(&e.path),
            message: &e.message,
        },
    )
}

/// `{"type":"summary",..}` and a newline.
pub fn summary_line(w: &mut dyn Write, s: &Summary) -> io::Result<()> {
    #[derive(Serialize)]
    struct Tagged<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        summary: &'a Summary,
    }
    line(
        w,
        &Tagged {
            kind: "summary",
            summary: s,
        },
    )
}

/// One document: `{"summary":{..},"groups":[..]}`, groups in `order`.
pub fn document(w: &mut dyn Write, r: &FindReport, order: GroupOrder) -> io::Result<()> {
    // Written piece by piece so only one group's paths exist at a time.
    w.write_all(b"{\"summary\":")?;
    serde_json::to_writer(&mut *w, &r.summary)?;
    w.write_all(b",\"groups\":[")?;
    for (i, g) in r.groups_by(order).enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"\n")?;
        serde_json::to_writer(&mut *w, &GroupJson::of(&g, None))?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush()
}
