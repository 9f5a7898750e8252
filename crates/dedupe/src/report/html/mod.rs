//! `--format html`: one self-contained page showing where the space goes.
//!
//! The page is the CSS and script below (`report.css`, `report.js`,
//! embedded at build time) and the run's data as JSON in a
//! `<script type="application/json">` block, which the script renders.
//! Nothing is fetched, so it works offline from `file://`.
//!
//! File names are hostile input. Three walls keep a name from becoming
//! markup or code: every `<` in the JSON is written `\u003c`, so no name
//! can close the data block; the script puts text into the page only with
//! `textContent`; and the Content-Security-Policy allows no script or
//! style but the page's own two blocks, named by their SHA-256, so even a
//! name that slipped into markup could not run.
//!
//! Bounded: the page holds at most [`Budget`]'s numbers of directories,
//! groups and rows, the largest first; what is left out is counted, and
//! the JSON formats have everything.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::escape;
use crate::dirs::{DirTree, DirsReport};
use crate::pipeline::{FindReport, GroupOrder};

mod space;

pub use space::top_dirs;

const SCRIPT: &str = include_str!("report.js");
const STYLE: &str = include_str!("report.css");

/// How much of a run the page holds.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Directories in the treemap.
    pub dirs: usize,
    /// Duplicate groups listed.
    pub groups: usize,
    /// Paths listed per group.
    pub files_per_group: usize,
    /// Identical-directory groups and subsets listed (each).
    pub dir_rows: usize,
}

impl Default for Budget {
    fn default() -> Self {
        // Enough to see where the space goes in any tree, small enough
        // that the page opens at once (a few MiB at most).
        Budget {
            dirs: 3000,
            groups: 2000,
            files_per_group: 100,
            dir_rows: 2000,
        }
    }
}

/// What the page shows.
pub struct Page<'a> {
    /// The roots searched, in the order given.
    pub roots: &'a [PathBuf],
    /// The finder's report.
    pub report: &'a FindReport,
    /// The directories the run saw.
    pub tree: &'a DirTree,
    /// Duplicate directories, for `dedupe dirs`.
    pub dirs: Option<&'a DirsReport>,
}

fn shown(p: &Path) -> Value {
    Value::String(escape(p).into_owned())
}

/// The page's data, as the script reads it.
pub fn data(page: &Page<'_>, budget: Budget) -> Value {
    let s = &page.report.summary;
    let mut totals = json!({
        "files": s.files_scanned,
        "bytes": s.bytes_scanned,
        "groups": s.groups,
        "duplicates": s.redundant_files,
        "reclaimable": s.redundant_bytes,
    });
    let mut groups = Vec::new();
    let (mut left_groups, mut left_bytes) = (0u64, 0u64);
    for g in page.report.groups_by(GroupOrder::Reclaimable) {
        if groups.len() >= budget.groups {
            left_groups += 1;
            left_bytes += g.redundant_bytes();
            continue;
        }
        groups.push(json!({
            "id": g.id,
            "size": g.size,
            "count": g.files.len(),
            "reclaimable": g.redundant_bytes(),
            "files": g.files.iter().take(budget.files_per_group).map(|f| shown(f)).collect::<Vec<_>>(),
        }));
    }
    let (mut identical, mut subsets) = (Vec::new(), Vec::new());
    let mut dirs_left = json!({"identical": 0, "subsets": 0});
    if let Some(d) = page.dirs {
        totals["identical_groups"] = d.summary.identical_groups.into();
        totals["subsets"] = d.summary.subsets.into();
        for g in d.identical.iter().take(budget.dir_rows) {
            identical.push(json!({
                "id": g.id,
                "bytes": g.bytes,
                "files": g.files,
                "reclaimable": g.reclaimable,
                "dirs": g.dirs.iter().map(|p| shown(p)).collect::<Vec<_>>(),
            }));
        }
        for x in d.subsets.iter().take(budget.dir_rows) {
            subsets.push(json!({
                "dir": shown(&x.dir),
                "within": shown(&x.within),
                "bytes": x.bytes,
                "files": x.files,
            }));
        }
        dirs_left = json!({
            "identical": d.identical.len().saturating_sub(budget.dir_rows),
            "subsets": d.subsets.len().saturating_sub(budget.dir_rows),
        });
    }
    json!({
        "kind": if page.dirs.is_some() { "dirs" } else { "find" },
        "roots": page.roots.iter().map(|p| shown(p)).collect::<Vec<_>>(),
        "generator": concat!("dedupe ", env!("CARGO_PKG_VERSION")),
        "totals": totals,
        "tree": space::tree(page.tree, budget.dirs),
        "groups": groups,
        "groups_left_out": {"groups": left_groups, "reclaimable": left_bytes},
        "identical": identical,
        "subsets": subsets,
        "dirs_left_out": dirs_left,
    })
}

/// `'sha256-<base64>'` of a block's exact text, for the CSP.
fn csp_hash(block: &str) -> String {
    let digest = Sha256::digest(block.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// JSON that cannot end the `<script>` block holding it: `<` only occurs
/// inside JSON strings, where `\u003c` means the same.
fn embeddable(v: &Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

/// Writes the page.
pub fn write(w: &mut dyn Write, page: &Page<'_>, budget: Budget) -> io::Result<()> {
    let data = embeddable(&data(page, budget));
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src {}; style-src {}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>dedupe report</title>\n<style>{STYLE}</style>\n</head><body>\n\
         <noscript>This report needs JavaScript. Its data is in the JSON block at the end of this file.</noscript>\n\
         <main id=\"app\"></main>\n\
         <script type=\"application/json\" id=\"dedupe-data\">{data}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        csp_hash(SCRIPT),
        csp_hash(STYLE),
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_can_close_the_data_block() {
        let v = json!({"name": "</script><script>alert(1)</script><!--"});
        let text = embeddable(&v);
        assert!(!text.contains('<'), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v, "the same data once parsed");
    }

    #[test]
    fn the_blocks_need_no_closing_tag_escapes() {
        // The CSP names the blocks by hash, so they are embedded verbatim:
        // they must not contain their own end tags.
        assert!(!SCRIPT.contains("</script"));
        assert!(!STYLE.contains("</style"));
    }
}
