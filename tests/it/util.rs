//! Helpers: temp trees with awkward names and special files, running the
//! `dedupe` binary with a watchdog, and brute-force references.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary tree that anyone may read (so tests can run the binary as
/// an unprivileged user).
pub struct Tree {
    pub dir: tempfile::TempDir,
}

pub fn p(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Tree { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        self.root().join(p(rel.as_ref()))
    }

    /// Writes a file, creating its directories.
    pub fn file(&self, rel: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    #[allow(dead_code)]
    pub fn dir(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(&path).unwrap();
        path
    }

    pub fn hardlink(&self, existing: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(new);
        fs::hard_link(self.path(existing), &path).unwrap();
        path
    }

    pub fn symlink(&self, target: impl AsRef<Path>, new: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(new);
        std::os::unix::fs::symlink(target, &path).unwrap();
        path
    }

    /// A file at the bottom of a directory chain deeper than `PATH_MAX`
    /// (4096 bytes), built with openat: no whole-path call can make one.
    pub fn deep_file(&self, content: &[u8]) -> PathBuf {
        self.deep_dir(&["deep.bin"], content).join("deep.bin")
    }

    /// A directory chain deeper than `PATH_MAX` holding `files`, each with
    /// `content`; returns the chain's bottom directory.
    pub fn deep_dir(&self, files: &[&str], content: &[u8]) -> PathBuf {
        use rustix::fs::{Mode, OFlags};
        let name = "d".repeat(250);
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let mut fd = rustix::fs::open(self.root(), dir_flags, Mode::empty()).unwrap();
        let mut path = self.root().to_path_buf();
        for _ in 0..20 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, name.as_str(), dir_flags, Mode::empty()).unwrap();
            path.push(&name);
        }
        for file in files {
            let flags = OFlags::WRONLY | OFlags::CREATE;
            let f = rustix::fs::openat(&fd, *file, flags, Mode::from_raw_mode(0o644)).unwrap();
            rustix::io::write(&f, content).unwrap();
        }
        assert!(path.as_os_str().len() > 4096);
        path
    }

    pub fn fifo(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        path
    }
}

/// Every regular file below `root`, by a plain recursive std walk that
/// follows no symlinks: the reference the walker must agree with.
pub fn reference_files(root: &Path) -> BTreeSet<Vec<u8>> {
    fn rec(dir: &Path, out: &mut BTreeSet<Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                rec(&e.path(), out);
            } else if ft.is_file() {
                out.insert(e.path().as_os_str().as_bytes().to_vec());
            }
        }
    }
    let mut out = BTreeSet::new();
    rec(root, &mut out);
    out
}

/// Sets a file's or directory's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The hash cache directory of every `dedupe` this test process starts,
/// so tests never write to the home directory (tests that are about the
/// cache pass `--cache-dir` or `--no-cache`).
pub fn cache_home() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dedupe"));
    cmd.env("XDG_CACHE_HOME", cache_home());
    cmd
}

/// Runs a command to the end, failing the test if it takes more than a
/// minute (a FIFO opened by mistake would hang forever).
pub fn run(cmd: Command) -> Output {
    run_to(cmd, None, None)
}

/// Like [`run`], but stdout and/or stderr go to the given files instead of
/// being captured (what is not captured comes back empty).
pub fn run_to(mut cmd: Command, stdout: Option<fs::File>, stderr: Option<fs::File>) -> Output {
    let sink = |f: Option<fs::File>| f.map_or_else(Stdio::piped, Stdio::from);
    cmd.stdin(Stdio::null())
        .stdout(sink(stdout))
        .stderr(sink(stderr));
    let mut child = cmd.spawn().expect("spawn dedupe");
    let out = child.stdout.take();
    let err = child.stderr.take();
    let t_out = std::thread::spawn(move || out.map(read_all).unwrap_or_default());
    let t_err = std::thread::spawn(move || err.map(read_all).unwrap_or_default());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("dedupe did not finish within 60 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn read_all(mut r: impl std::io::Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// Splits NUL-terminated records (an empty record stays, as a group
/// separator).
pub fn split0(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let body = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// `/dev/full`, opened for writing: every write to it fails with ENOSPC.
pub fn dev_full() -> fs::File {
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Wraps `cmd` to run as user `nobody` when the tests run as root (root
/// reads everything, so an unreadable directory would not be one).
/// Returns None when that is impossible here.
pub fn unprivileged(cmd: Command) -> Option<Command> {
    if !rustix::process::geteuid().is_root() {
        return Some(cmd);
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let mut wrapped = Command::new(setpriv);
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    Some(wrapped)
}

/// Runs `f` on a thread and waits at most `limit` for it: `None` means it
/// was still running (a hang; the thread is left behind, the test fails).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The file names (last path component) `dedupe scan` printed, sorted;
/// fails the test unless it exited 0.
pub fn scanned_names(cmd: Command) -> Vec<String> {
    let out = run(cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    names
}
