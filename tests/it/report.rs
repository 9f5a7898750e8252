//! Reports read back: what `dedupe find --format json|jsonl` writes, read
//! with the library's report reader, is the library's own result, each
//! file with the identity it had when it was hashed.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use dedupe::report::read::read_groups;
use dedupe::{Config, DuplicateGroup, Finder};

use crate::util::{bin, run};

fn tree(root: &Path) {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for name in ["a", "b", "sub/c"] {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &big).unwrap();
    }
    // Names a report must keep exactly: a newline, bytes that are not UTF-8.
    let odd = root.join(std::ffi::OsStr::from_bytes(b"new\nline \xff"));
    std::fs::write(&odd, b"twin").unwrap();
    std::fs::write(root.join("plain"), b"twin").unwrap();
    std::fs::write(root.join("alone"), b"one of a kind").unwrap();
}

fn library_groups(root: &Path) -> Vec<DuplicateGroup> {
    Finder::builder(Arc::new(Config::default()))
        .build()
        .run(&[root], |_| {})
        .unwrap()
        .into_groups()
}

#[test]
fn json_and_jsonl_reports_read_back_with_identity() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let want = library_groups(t.path());
    assert_eq!(want.len(), 2);
    for format in ["json", "jsonl"] {
        let mut cmd = bin();
        cmd.arg(t.path()).args(["--format", format]);
        let out = run(cmd);
        assert!(out.status.success(), "{format}: {out:?}");
        let got = read_groups(&out.stdout[..]).unwrap();
        assert_eq!(got, want, "{format}");
        for f in got.iter().flat_map(|g| &g.files) {
            let m = std::fs::metadata(&f.path).unwrap();
            let s = &f.stamp;
            assert_eq!((s.id.dev, s.id.ino, s.size), (m.dev(), m.ino(), m.len()));
            assert_eq!(s.mtime_ns, m.mtime() * 1_000_000_000 + m.mtime_nsec());
            assert_eq!(s.ctime_ns, m.ctime() * 1_000_000_000 + m.ctime_nsec());
        }
    }
}
