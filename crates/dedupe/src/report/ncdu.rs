//! `--format ncdu`: the redundant copies as a directory tree in ncdu's
//! JSON export format, so `ncdu -f FILE` (or `gdu -f FILE`) browses the
//! waste with the keys users know: each directory's size is the bytes of
//! the redundant copies beneath it, and its entries are those copies.
//!
//! The format (ncdu's "JSON export", major version 1): `[1, 2, {info},
//! [root-info, entry, [subdir-info, ...], ...]]`, a directory being an
//! array whose first element describes it. Names are shown escaped
//! ([`escape_path`]): ncdu wants strings, and a raw name that is not UTF-8
//! would not be one.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use serde_json::json;

use super::{escape_path, html::top_dirs};
use crate::dirs::DirTree;
use crate::pipeline::FindReport;

/// A directory's own redundant copies: (name, size).
type Copies = Vec<(Box<[u8]>, u64)>;

/// Writes the tree of redundant copies.
pub fn write(w: &mut dyn Write, tree: &DirTree, report: &FindReport) -> io::Result<()> {
    let dirs = tree.dirs();
    // Each directory's own redundant copies: (name, size), as attributed
    // in the tree (every group member but the first).
    let mut own: Vec<Copies> = vec![Vec::new(); dirs.len()];
    for g in report.groups() {
        for f in g.files.iter().skip(1) {
            if let Some(d) = tree.dir_of(&f.path) {
                let name = f.path.file_name().map_or(&[][..], |n| n.as_bytes());
                own[d as usize].push((name.into(), g.size));
            }
        }
    }
    for list in &mut own {
        list.sort();
    }
    write!(
        w,
        "[1,2,{}",
        json!({"progname": "dedupe", "progver": env!("CARGO_PKG_VERSION")})
    )?;
    let tops: Vec<u32> = top_dirs(tree)
        .into_iter()
        .filter(|&t| dirs[t as usize].redundant > 0)
        .collect();
    match tops.as_slice() {
        [one] => dir(w, tree, &own, *one, true)?,
        many => {
            // ncdu shows one root: several become children of one.
            write!(w, ",\n[{}", json!({"name": "dedupe: redundant copies"}))?;
            for &t in many {
                dir(w, tree, &own, t, true)?;
            }
            w.write_all(b"]")?;
        }
    }
    w.write_all(b"]\n")?;
    w.flush()
}

/// Writes directory `i` (with `,` before it), then its copies and its
/// subdirectories that hold any. Iterative, as trees can be deep.
fn dir(w: &mut dyn Write, tree: &DirTree, own: &[Copies], i: u32, top: bool) -> io::Result<()> {
    let dirs = tree.dirs();
    // The directories written and not yet closed: a closing bracket is
    // written when the walk leaves one's subtree.
    let mut open: Vec<u32> = Vec::new();
    let mut j = i;
    let end = dirs[i as usize].end;
    while j < end {
        let d = &dirs[j as usize];
        while let Some(&o) = open.last() {
            if j < dirs[o as usize].end {
                break;
            }
            w.write_all(b"]")?;
            open.pop();
        }
        if d.redundant == 0 {
            j = d.end;
            continue;
        }
        let path = d.dir.path().as_os_str().as_bytes();
        let name = if top && j == i {
            path
        } else {
            path.rsplit(|&b| b == b'/').next().unwrap_or(path)
        };
        write!(w, ",\n[{}", json!({"name": escape_path(name)}))?;
        for (n, size) in &own[j as usize] {
            write!(
                w,
                ",\n{}",
                json!({"name": escape_path(n), "asize": size, "dsize": size})
            )?;
        }
        open.push(j);
        j += 1;
    }
    for _ in open {
        w.write_all(b"]")?;
    }
    Ok(())
}
