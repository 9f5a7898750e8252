//! `dedupe gen` writes the tree it promises.

use crate::util::{bin, code, reference_files, run, Tree};

#[test]
fn gen_is_deterministic_and_counts_match() {
    let a = Tree::new();
    let b = Tree::new();
    for t in [&a, &b] {
        let mut cmd = bin();
        cmd.arg("gen").arg(t.root()).args([
            "--files",
            "500",
            "--dirs",
            "30",
            "--seed",
            "9",
            "--max-size",
            "8K",
        ]);
        let out = run(cmd);
        assert_eq!(code(&out), 0, "{}", crate::util::stderr(&out));
    }
    let fa = reference_files(a.root());
    assert_eq!(fa.len(), 500);
    for path in &fa {
        let rel = &path[a.root().as_os_str().len()..];
        let mut other = b.root().as_os_str().as_encoded_bytes().to_vec();
        other.extend_from_slice(rel);
        assert_eq!(
            std::fs::read(crate::util::p(path)).unwrap(),
            std::fs::read(crate::util::p(&other)).unwrap()
        );
    }
    let mut bad = bin();
    bad.arg("gen").arg(a.root()).args(["--dirs", "0"]);
    let out = run(bad);
    assert_eq!(code(&out), 2);
    assert!(crate::util::stderr(&out).contains("--dirs"));
}
