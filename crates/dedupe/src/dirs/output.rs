//! `dedupe dirs` reports: text for people, JSON and JSON Lines for tools
//! (paths lossless, as in every other report).

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::{DirsReport, DirsSummary, IdenticalDirs, SubsetDir};
use crate::report::{escape, human_bytes, plural, JsonPath};

#[derive(Serialize)]
struct IdenticalJson<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    id: u64,
    bytes: u64,
    files: u64,
    reclaimable: u64,
    dirs: Vec<JsonPath<'a>>,
}

impl<'a> IdenticalJson<'a> {
    fn of(g: &'a IdenticalDirs, kind: Option<&'static str>) -> Self {
        IdenticalJson {
            kind,
            id: g.id,
            bytes: g.bytes,
            files: g.files,
            reclaimable: g.reclaimable,
            dirs: g.dirs.iter().map(|d| JsonPath::of(d)).collect(),
        }
    }
}

#[derive(Serialize)]
struct SubsetJson<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    dir: JsonPath<'a>,
    within: JsonPath<'a>,
    bytes: u64,
    files: u64,
}

impl<'a> SubsetJson<'a> {
    fn of(s: &'a SubsetDir, kind: Option<&'static str>) -> Self {
        SubsetJson {
            kind,
            dir: JsonPath::of(&s.dir),
            within: JsonPath::of(&s.within),
            bytes: s.bytes,
            files: s.files,
        }
    }
}

/// `{"summary":{..},"identical":[..],"subsets":[..]}`.
pub fn json(w: &mut dyn Write, r: &DirsReport) -> io::Result<()> {
    w.write_all(b"{\"summary\":")?;
    serde_json::to_writer(&mut *w, &r.summary)?;
    w.write_all(b",\"identical\":[")?;
    for (i, g) in r.identical.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *w, &IdenticalJson::of(g, None))?;
    }
    w.write_all(b"\n],\"subsets\":[")?;
    for (i, s) in r.subsets.iter().enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *w, &SubsetJson::of(s, None))?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush()
}

/// A line per identical group (`"type":"identical"`), per subset
/// (`"subset"`), then the summary (`"summary"`).
pub fn jsonl(w: &mut dyn Write, r: &DirsReport) -> io::Result<()> {
    for g in &r.identical {
        serde_json::to_writer(&mut *w, &IdenticalJson::of(g, Some("identical")))?;
        w.write_all(b"\n")?;
    }
    for s in &r.subsets {
        serde_json::to_writer(&mut *w, &SubsetJson::of(s, Some("subset")))?;
        w.write_all(b"\n")?;
    }
    #[derive(Serialize)]
    struct Tagged<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        summary: &'a DirsSummary,
    }
    serde_json::to_writer(
        &mut *w,
        &Tagged {
            kind: "summary",
            summary: &r.summary,
        },
    )?;
    w.write_all(b"\n")?;
    w.flush()
}

/// For people: identical groups, most reclaimable first, then subsets,
/// largest first. Paths are escaped (see [`escape`]).
pub fn text(w: &mut dyn Write, r: &DirsReport) -> io::Result<()> {
    let s = &r.summary;
    writeln!(
        w,
        "{} of identical directories ({} in all), {} reclaimable; {}",
        plural(s.identical_groups, "group", "groups"),
        plural(s.identical_dirs, "directory", "directories"),
        human_bytes(s.reclaimable_bytes),
        plural(s.subsets, "subset", "subsets"),
    )?;
    for g in &r.identical {
        writeln!(
            w,
            "\n{} reclaimable: {} of {} ({} each)",
            human_bytes(g.reclaimable),
            plural(g.dirs.len() as u64, "copy", "copies"),
            plural(g.files, "file", "files"),
            human_bytes(g.bytes),
        )?;
        for d in &g.dirs {
            writeln!(w, "  {}", shown(d))?;
        }
    }
    if !r.subsets.is_empty() {
        writeln!(w, "\nsubsets (every file's content is also in the other):")?;
    }
    for x in &r.subsets {
        writeln!(
            w,
            "\n{} in {}: {}\n  within {}",
            human_bytes(x.bytes),
            plural(x.files, "file", "files"),
            shown(&x.dir),
            shown(&x.within),
        )?;
    }
    w.flush()
}

fn shown(p: &Path) -> std::borrow::Cow<'_, str> {
    escape(p)
}
