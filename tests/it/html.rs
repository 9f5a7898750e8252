//! The HTML report in a real browser: headless Chromium renders the page
//! `dedupe` wrote, and the test reads the DOM it built. Hostile names must
//! come out as text, the page's own code must run under its CSP, and the
//! treemap and tables must be there. The ncdu export is checked for shape.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{bin, run, Tree};

const HOSTILE: [&str; 4] = [
    "<img src=x onerror=document.title='PWNED'>",
    "\"><svg onload=document.title='PWNED'>",
    "<script>document.title='PWNED'<",
    "esc\u{1b}[31mred",
];

/// Chromium, or `None` (said loudly) when it is not installed; CI sets
/// `DEDUPE_REQUIRE_CHROMIUM` so a missing browser fails there.
fn chromium() -> Option<&'static str> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c);
        }
    }
    assert!(
        std::env::var_os("DEDUPE_REQUIRE_CHROMIUM").is_none(),
        "DEDUPE_REQUIRE_CHROMIUM is set but no chromium is installed"
    );
    eprintln!("SKIPPED: no chromium installed; the HTML report was not rendered");
    None
}

/// The DOM Chromium builds from `page`, and what it logged (CSP reports).
fn render(browser: &str, page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn count(dom: &str, class: &str) -> usize {
    dom.match_indices("class=\"")
        .filter(|(i, _)| {
            let rest = &dom[i + 7..];
            let end = rest.find('"').unwrap_or(0);
            rest[..end].split(' ').any(|c| c == class)
        })
        .count()
}

/// A tree where every hostile name is a directory holding duplicates, and
/// two directories are copies.
fn hostile_tree() -> Tree {
    let t = Tree::new();
    for (i, name) in HOSTILE.iter().enumerate() {
        t.file(format!("{name}/dup.bin"), vec![i as u8; 5000]);
        t.file(format!("copy{i}/{name}.bin"), vec![i as u8; 5000]);
    }
    t.file("album/a.jpg", vec![7u8; 20_000]);
    t.file("album/b.jpg", vec![8u8; 10_000]);
    t.file("backup/album/a.jpg", vec![7u8; 20_000]);
    t.file("backup/album/b.jpg", vec![8u8; 10_000]);
    t.file("unique.txt", "only one");
    t
}

fn page(t: &Tree, cmd: &str) -> std::path::PathBuf {
    let mut c = bin();
    c.arg(cmd).arg(t.root()).args(["--format", "html"]);
    let out = run(c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    // Nothing is fetched: no address a browser would load.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    for name in HOSTILE {
        assert!(!html.contains(name), "raw name in the page: {name}");
    }
    let path = t.root().with_extension(format!("{cmd}.html"));
    std::fs::write(&path, html).unwrap();
    path
}

fn check_dom(dom: &str, log: &str) {
    assert!(
        dom.contains("<title>dedupe report</title>"),
        "the title was changed"
    );
    assert!(!dom.contains("PWNED</title>"));
    assert!(!dom.contains("<img") && !dom.contains("<svg") && !dom.contains("<iframe"));
    assert!(
        dom.contains("&lt;img src=x onerror="),
        "the name is shown as text"
    );
    assert!(
        count(dom, "tm-node") >= 3,
        "treemap nodes: {}",
        count(dom, "tm-node")
    );
    assert!(
        count(dom, "group") >= 5,
        "group rows: {}",
        count(dom, "group")
    );
    for line in log.lines() {
        assert!(
            !line.contains("Content Security Policy")
                && !line.contains("Refused to")
                && !line.contains("Uncaught"),
            "{line}"
        );
    }
}

#[test]
fn find_html_renders_groups_and_treemap_with_hostile_names_as_text() {
    let t = hostile_tree();
    let path = page(&t, "find");
    let Some(browser) = chromium() else { return };
    let (dom, log) = render(browser, &path);
    check_dom(&dom, &log);
    assert!(dom.contains("id=\"treemap\"") && dom.contains("id=\"groups\""));
    let _ = std::fs::remove_file(path);
}

#[test]
fn dirs_html_lists_the_copied_directories() {
    let t = hostile_tree();
    let path = page(&t, "dirs");
    let Some(browser) = chromium() else { return };
    let (dom, log) = render(browser, &path);
    check_dom(&dom, &log);
    assert!(count(&dom, "dirgroup") >= 1, "identical directory rows");
    assert!(dom.contains("backup/album"), "the copy is listed");
    let _ = std::fs::remove_file(path);
}

#[test]
fn the_embedded_data_is_the_run() {
    let t = hostile_tree();
    let mut c = bin();
    c.arg("find").arg(t.root()).args(["--format", "html"]);
    let html = String::from_utf8(run(c).stdout).unwrap();
    let start = html.find("id=\"dedupe-data\">").unwrap() + 17;
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    // 4 hostile pairs + 2 album pairs: 6 groups, each freeing one copy.
    assert_eq!(data["totals"]["groups"], 6);
    assert_eq!(data["totals"]["reclaimable"], 4 * 5000 + 30_000);
    assert_eq!(data["tree"]["redundant"], 4 * 5000 + 30_000);
    let names: Vec<&str> = data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
        })
        .collect();
    assert!(
        names.iter().any(|n| n.contains(HOSTILE[0])),
        "parsed back, the name is intact"
    );
    assert!(
        names.iter().any(|n| n.contains("esc\\x1b[31mred")),
        "control bytes escaped"
    );
}

#[test]
fn ncdu_export_has_the_redundant_copies_as_sizes() {
    let t = hostile_tree();
    let mut c = bin();
    c.arg("find").arg(t.root()).args(["--format", "ncdu"]);
    let out = run(c);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v[0].as_u64(), v[1].as_u64()), (Some(1), Some(2)));
    assert_eq!(v[2]["progname"], "dedupe");
    // Sum every file entry's asize: the redundant bytes.
    fn sum(v: &Value) -> u64 {
        match v {
            Value::Array(a) => a.iter().skip(1).map(sum).sum(),
            Value::Object(o) => o.get("asize").and_then(Value::as_u64).unwrap_or(0),
            _ => 0,
        }
    }
    assert_eq!(sum(&v[3]), 4 * 5000 + 30_000);
    assert_eq!(
        v[3][0]["name"].as_str().unwrap(),
        t.root().to_str().unwrap()
    );
}
