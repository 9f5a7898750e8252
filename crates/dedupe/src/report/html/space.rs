//! The treemap's data: directories sized by redundant bytes, within a
//! budget.
//!
//! Directories are taken largest first (a heap over the frontier, starting
//! at the roots), so the budget goes where the waste is; a directory's
//! children left out are summed into its `other`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::unix::ffi::OsStrExt;

use serde_json::{json, Map, Value};

use crate::dirs::DirTree;
use crate::report::escape_path;

/// Levels below a root shown in the treemap.
const MAX_DEPTH: u32 = 64;

/// The top-level directories of `tree` (one per root), in tree order.
pub fn top_dirs(tree: &DirTree) -> Vec<u32> {
    let dirs = tree.dirs();
    let mut out = Vec::new();
    let mut i = 0;
    while i < dirs.len() {
        out.push(i as u32);
        i = dirs[i].end as usize;
    }
    out
}

/// Directory `i`'s children, in tree order.
fn children(tree: &DirTree, i: u32) -> impl Iterator<Item = u32> + '_ {
    let dirs = tree.dirs();
    let end = dirs[i as usize].end;
    let mut j = i + 1;
    std::iter::from_fn(move || {
        (j < end).then(|| {
            let k = j;
            j = dirs[k as usize].end;
            k
        })
    })
}

/// The treemap root ("all roots") and, beneath it, at most `budget`
/// directories holding redundant bytes.
pub(super) fn tree(tree: &DirTree, budget: usize) -> Value {
    let dirs = tree.dirs();
    let tops = top_dirs(tree);
    let mut chosen = vec![false; dirs.len()];
    let mut heap: BinaryHeap<(u64, Reverse<u32>)> = tops
        .iter()
        .filter(|&&t| dirs[t as usize].redundant > 0)
        .map(|&t| (dirs[t as usize].redundant, Reverse(t)))
        .collect();
    let mut taken = 0;
    while let Some((_, Reverse(i))) = heap.pop() {
        if taken >= budget {
            break;
        }
        chosen[i as usize] = true;
        taken += 1;
        for c in children(tree, i) {
            // Deeper directories are folded into their ancestor's
            // "other": the page nests one element per level, and so does
            // the writing of its data.
            if dirs[c as usize].redundant > 0 && dirs[c as usize].dir.depth() < MAX_DEPTH {
                heap.push((dirs[c as usize].redundant, Reverse(c)));
            }
        }
    }
    let top = |t: &u32| dirs[*t as usize].redundant > 0;
    let (redundant, total) = tops.iter().fold((0u64, 0u64), |(r, b), &t| {
        (r + dirs[t as usize].redundant, b + dirs[t as usize].bytes)
    });
    let mut root = Map::new();
    root.insert("name".into(), "all roots".into());
    root.insert("path".into(), "".into());
    root.insert("redundant".into(), redundant.into());
    root.insert("total".into(), total.into());
    let kids: Vec<u32> = tops.iter().copied().filter(top).collect();
    fill(tree, &mut root, &kids, &chosen, true);
    Value::Object(root)
}

/// Puts `kids` (the chosen ones, largest first) and the sum of the others
/// into `node`.
fn fill(tree: &DirTree, node: &mut Map<String, Value>, kids: &[u32], chosen: &[bool], top: bool) {
    let dirs = tree.dirs();
    let mut shown: Vec<u32> = kids
        .iter()
        .copied()
        .filter(|&k| chosen[k as usize])
        .collect();
    shown.sort_by_key(|&k| (Reverse(dirs[k as usize].redundant), k));
    let mut list = Vec::with_capacity(shown.len());
    for k in shown {
        let d = &dirs[k as usize];
        let path = d.dir.path().as_os_str().as_bytes();
        let name = if top {
            path
        } else {
            path.rsplit(|&b| b == b'/').next().unwrap_or(path)
        };
        let mut m = Map::new();
        m.insert("name".into(), escape_path(name).into_owned().into());
        m.insert("path".into(), escape_path(path).into_owned().into());
        m.insert("redundant".into(), d.redundant.into());
        m.insert("total".into(), d.bytes.into());
        let sub: Vec<u32> = children(tree, k)
            .filter(|&c| dirs[c as usize].redundant > 0)
            .collect();
        fill(tree, &mut m, &sub, chosen, false);
        list.push(Value::Object(m));
    }
    let left: Vec<u32> = kids
        .iter()
        .copied()
        .filter(|&k| !chosen[k as usize])
        .collect();
    if !left.is_empty() {
        let sum = |f: fn(&crate::dirs::TreeDir) -> u64| -> u64 {
            left.iter().map(|&k| f(&dirs[k as usize])).sum()
        };
        node.insert(
            "other".into(),
            json!({
                "dirs": left.len(),
                "files": sum(|d| d.redundant_files),
                "redundant": sum(|d| d.redundant),
            }),
        );
    }
    node.insert("children".into(), Value::Array(list));
}
