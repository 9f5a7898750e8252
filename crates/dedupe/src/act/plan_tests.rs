//! The planner's rules, one by one, on hand-made groups.

use super::*;
use crate::entry::FileId;
use crate::pipeline::keys::FileStamp;

fn file(path: &str, ino: u64, mtime: i64) -> GroupFile {
    GroupFile {
        path: PathBuf::from(path),
        stamp: FileStamp {
            size: 10,
            id: FileId { dev: 1, ino },
            mtime_ns: mtime,
            ctime_ns: mtime,
        },
    }
}

fn group(files: Vec<GroupFile>) -> DuplicateGroup {
    DuplicateGroup {
        id: 7,
        size: 10,
        hash: Digest::from_slice(&[1; 32]),
        algo: HashAlgo::Blake3,
        files,
    }
}

/// The kept path under `rules` (roots `/r1`, `/r2`).
fn kept(rules: &str, files: Vec<GroupFile>) -> String {
    let keep = rules
        .split(',')
        .map(|r| KeepRule::parse(r).unwrap())
        .collect();
    let opts = PlanOptions {
        keep,
        roots: vec![PathBuf::from("/r1"), PathBuf::from("/r2")],
        ..PlanOptions::default()
    };
    let p = plan(&[group(files)], &Action::Remove, &opts);
    p.groups[0].keep.path.display().to_string()
}

#[test]
fn each_rule_picks_its_copy_and_the_path_breaks_ties() {
    let files = || {
        vec![
            file("/r2/a/b/c/long-name", 1, 100),
            file("/r1/x/y", 2, 300),
            file("/r2/z", 3, 200),
            file("/elsewhere/d/q", 4, 50),
        ]
    };
    assert_eq!(kept("root-order", files()), "/r1/x/y");
    assert_eq!(kept("oldest", files()), "/elsewhere/d/q");
    assert_eq!(kept("newest", files()), "/r1/x/y");
    assert_eq!(kept("shortest-path", files()), "/r2/z");
    assert_eq!(kept("longest-path", files()), "/r2/a/b/c/long-name");
    assert_eq!(kept("shallowest", files()), "/r2/z");
    assert_eq!(kept("deepest", files()), "/r2/a/b/c/long-name");
    assert_eq!(kept("path:**/x/*", files()), "/r1/x/y");
    // Earlier rules win; later ones break their ties.
    assert_eq!(kept("shallowest,newest", files()), "/r2/z");
    assert_eq!(kept("root-order,oldest", files()), "/r1/x/y");
    // A full tie: the smaller path bytes, whatever the input order.
    let tie = |order: [usize; 2]| {
        let f = [file("/r1/b", 1, 5), file("/r1/a", 2, 5)];
        kept("oldest", order.iter().map(|&i| f[i].clone()).collect())
    };
    assert_eq!(tie([0, 1]), "/r1/a");
    assert_eq!(tie([1, 0]), "/r1/a");
    assert!(KeepRule::parse("biggest").is_err());
    assert!(KeepRule::parse("path:[").is_err());
}

#[test]
fn references_protections_links_and_isolation_hold_files() {
    let files = vec![
        file("/r1/a", 1, 100),
        file("/r1/b", 2, 10),
        file("/r2/c", 3, 10),
        file("/r2/keep-me", 4, 10),
        file("/r1/a-link", 1, 100),
    ];
    let opts = PlanOptions {
        roots: vec![PathBuf::from("/r1"), PathBuf::from("/r2")],
        references: vec![PathBuf::from("/r1/a")],
        protect: vec![glob("**/keep-*").unwrap()],
        ..PlanOptions::default()
    };
    let p = plan(&[group(files.clone())], &Action::Remove, &opts);
    let g = &p.groups[0];
    assert_eq!(g.keep.path, PathBuf::from("/r1/a"), "references first");
    let held: Vec<(String, Held)> = g
        .held
        .iter()
        .map(|(f, h)| (f.path.display().to_string(), *h))
        .collect();
    assert!(
        held.contains(&("/r1/a-link".into(), Held::SameFile)),
        "{held:?}"
    );
    assert!(
        held.contains(&("/r2/keep-me".into(), Held::Protected)),
        "{held:?}"
    );
    let victims: Vec<_> = p.steps.iter().map(|s| s.victim.path.clone()).collect();
    assert_eq!(victims, [PathBuf::from("/r1/b"), PathBuf::from("/r2/c")]);
    assert_eq!(p.bytes(), 20);

    let isolated = PlanOptions {
        isolate: true,
        ..opts
    };
    let p = plan(&[group(files)], &Action::Remove, &isolated);
    let victims: Vec<_> = p.steps.iter().map(|s| s.victim.path.clone()).collect();
    assert_eq!(
        victims,
        [PathBuf::from("/r2/c")],
        "same root as the kept copy"
    );
    assert!(p.groups[0]
        .held
        .iter()
        .any(|(f, h)| f.path == Path::new("/r1/b") && *h == Held::SameRoot));
}

#[test]
fn a_group_under_references_only_changes_nothing() {
    let files = vec![file("/r1/a", 1, 1), file("/r1/b", 2, 2)];
    let opts = PlanOptions {
        references: vec![PathBuf::from("/r1")],
        ..PlanOptions::default()
    };
    let p = plan(&[group(files)], &Action::Remove, &opts);
    assert!(p.steps.is_empty());
    assert_eq!(p.groups[0].held.len(), 1);
}

#[test]
fn moves_stay_below_the_target() {
    let to = Path::new("/q");
    let roots = [PathBuf::from("/r1")];
    assert_eq!(
        move_dest(to, &roots, Path::new("/r1/a/b")),
        Path::new("/q/a/b")
    );
    assert_eq!(
        move_dest(to, &roots, Path::new("/x/y")),
        Path::new("/q/x/y")
    );
    assert_eq!(
        move_dest(to, &roots, Path::new("../s2/n")),
        Path::new("/q/s2/n"),
        "no way out through .."
    );
}

#[test]
fn the_default_chain_and_links_and_real_paths_and_moves() {
    // Empty `keep`: root-order, then oldest.
    let files = vec![
        file("/r2/a", 1, 1),
        file("/r1/b", 2, 9),
        file("/r1/c", 3, 5),
    ];
    let opts = PlanOptions {
        roots: vec![PathBuf::from("/r1"), PathBuf::from("/r2")],
        ..PlanOptions::default()
    };
    let p = plan(&[group(files.clone())], &Action::Remove, &opts);
    assert_eq!(p.groups[0].keep.path, Path::new("/r1/c"));
    // A move has a destination below the target; other actions none.
    let to = PathBuf::from("/q");
    let p = plan(&[group(files)], &Action::Move { to }, &opts);
    assert_eq!(p.steps[0].dest.as_deref(), Some(Path::new("/q/b")));
    assert_eq!(p.steps[1].dest.as_deref(), Some(Path::new("/q/a")));

    // most-links reads the link count; --protect matches real paths.
    let t = tempfile::tempdir().unwrap();
    let real = t.path().canonicalize().unwrap();
    std::fs::create_dir(real.join("d")).unwrap();
    for n in ["d/a-one", "d/z-many"] {
        std::fs::write(real.join(n), b"x").unwrap();
    }
    std::fs::hard_link(real.join("d/z-many"), real.join("d/z-many2")).unwrap();
    std::os::unix::fs::symlink(real.join("d"), real.join("s")).unwrap();
    let g = group(vec![
        file(real.join("s/a-one").to_str().unwrap(), 1, 1),
        file(real.join("s/z-many").to_str().unwrap(), 2, 2),
    ]);
    let opts = PlanOptions {
        keep: vec![KeepRule::parse("most-links").unwrap()],
        ..PlanOptions::default()
    };
    let p = plan(std::slice::from_ref(&g), &Action::Remove, &opts);
    assert!(
        p.groups[0].keep.path.ends_with("s/z-many"),
        "not the smaller path"
    );
    let pattern = format!("{}/d/a-one", real.display());
    let opts = PlanOptions {
        keep: vec![KeepRule::parse("most-links").unwrap()],
        protect: vec![glob(&pattern).unwrap()],
        ..PlanOptions::default()
    };
    let p = plan(&[g], &Action::Remove, &opts);
    assert!(p.steps.is_empty(), "protected through its real path");
}

/// A copy in a trash can goes with the trash when it is emptied: any
/// other copy is kept first, whatever the chain says.
#[test]
fn a_copy_in_the_trash_is_kept_only_when_it_is_the_last() {
    for trashed in [
        "/r1/.local/share/Trash/files/a",
        "/r1/.Trash-1000/files/a",
        "/r1/.Trash/1000/files/a",
    ] {
        let files = vec![file(trashed, 1, 1), file("/r2/much/deeper/a", 2, 9)];
        assert_eq!(
            kept("root-order,oldest,shortest-path", files),
            "/r2/much/deeper/a"
        );
    }
    let files = vec![file("/r1/Trash/a", 1, 1), file("/r2/x/a", 2, 9)];
    assert_eq!(kept("root-order", files), "/r1/Trash/a", "not a trash can");
}
