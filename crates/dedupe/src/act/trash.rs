//! The freedesktop.org trash (Trash specification 1.0), by hand.
//!
//! Why not the `trash` crate: its Linux code (5.2.5) falls back to
//! `std::fs::copy` plus delete, with no fsync and no check, when a rename
//! crosses devices (the data loss this issue exists to prevent); it does
//! not say where an item went, which the journal needs for undo; it names
//! files by path rather than through directory handles; and it writes no
//! `DeletionDate` without its `chrono` feature. The part of the spec a
//! tool that only trashes needs is small:
//!
//! * a file on the home trash's file system goes to `$XDG_DATA_HOME/Trash`
//!   (`~/.local/share/Trash`); any other to its mount's `$topdir/.Trash/$uid`
//!   (if `.Trash` is a real, sticky directory) or `$topdir/.Trash-$uid`;
//! * `info/NAME.trashinfo` is created first, exclusively, naming the
//!   original path; then the file is renamed to `files/NAME`, never over
//!   anything (`RENAME_NOREPLACE`), never copied.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The home trash: `$XDG_DATA_HOME/Trash`, else `~/.local/share/Trash`.
pub(crate) fn home_trash() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("Trash"))
}

/// The top directory of the mount holding the directory `dir` (absolute,
/// symlinks resolved): the highest ancestor on the same device.
fn topdir(dir: &Path, dev: u64) -> PathBuf {
    let mut top = dir.to_path_buf();
    for a in dir.ancestors().skip(1) {
        match std::fs::metadata(a) {
            Ok(m) if m.dev() == dev => top = a.to_path_buf(),
            _ => break,
        }
    }
    top
}

/// Creates `dir` (and parents) with mode 0700 if missing; it must end up a
/// real directory, not a symlink.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    Ok(())
}

/// The trash directory for a file in directory `dir` on device `dev`,
/// created if needed (with its `files` and `info`).
pub(crate) fn trash_dir(dir: &Path, dev: u64) -> std::io::Result<PathBuf> {
    let dir = std::fs::canonicalize(dir)?;
    let uid = rustix::process::getuid().as_raw();
    // A trash directory on a shared file system must be a real directory
    // of ours: one that is a symlink, or someone else's, would hand them
    // the files (as GLib refuses too).
    let ours = |p: &Path| {
        let made = std::fs::DirBuilder::new().mode(0o700).create(p);
        if made.is_err_and(|e| e.kind() != std::io::ErrorKind::AlreadyExists) {
            return false;
        }
        std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid)
    };
    let chosen = match home_trash() {
        Some(home) if super::fsops::device_of(&home) == Some(dev) => {
            private_dir(&home)?;
            home
        }
        _ => {
            let top = topdir(&dir, dev);
            let shared = top.join(".Trash");
            let usable = std::fs::symlink_metadata(&shared).is_ok_and(|m| {
                // The spec: a real directory with the sticky bit, else
                // it must not be used.
                m.is_dir() && m.mode() & 0o1000 != 0
            });
            let own = top.join(format!(".Trash-{uid}"));
            if usable && ours(&shared.join(uid.to_string())) {
                shared.join(uid.to_string())
            } else if ours(&own) {
                own
            } else {
                return Err(std::io::Error::other(format!(
                    "{} is not a directory of yours",
                    own.display()
                )));
            }
        }
    };
    private_dir(&chosen.join("files"))?;
    private_dir(&chosen.join("info"))?;
    Ok(chosen)
}

/// A name for `name` in `trash` that neither `files/` nor `info/` holds
/// and no other step of this run took: the name itself, else with `.2`,
/// `.3`, ... appended (as file managers do); shortened so that
/// `NAME.trashinfo` still fits in 255 bytes (the info file keeps the
/// whole original path).
pub(crate) fn free_name(
    trash: &Path,
    name: &std::ffi::OsStr,
    taken: &mut std::collections::HashSet<PathBuf>,
    next: &mut std::collections::HashMap<PathBuf, u64>,
) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    const MAX: usize = 255 - ".trashinfo".len();
    // Suffixes this run tried already are not tried again: thousands of
    // `LICENSE` files would otherwise cost a quadratic number of stats.
    let first = next.entry(trash.join(name)).or_insert(1);
    for n in *first.. {
        *first = n + 1;
        let suffix = if n > 1 {
            format!(".{n}")
        } else {
            String::new()
        };
        let mut base = name.as_bytes();
        if base.len() + suffix.len() > MAX {
            base = &base[..MAX - suffix.len()];
            // Cut at a character boundary where the name is UTF-8.
            while !base.is_empty() && std::str::from_utf8(base).is_err() && name.to_str().is_some()
            {
                base = &base[..base.len() - 1];
            }
        }
        let mut candidate = std::ffi::OsString::from_vec(base.to_vec());
        candidate.push(&suffix);
        let dest = trash.join("files").join(&candidate);
        let info = info_path(&dest);
        if !taken.contains(&dest)
            && std::fs::symlink_metadata(&dest).is_err()
            && std::fs::symlink_metadata(info.as_deref().unwrap_or(&dest)).is_err()
        {
            taken.insert(dest.clone());
            return dest;
        }
    }
    unreachable!("some suffix is free")
}

/// `files/NAME` → `info/NAME.trashinfo`.
pub(crate) fn info_path(dest: &Path) -> Option<PathBuf> {
    let trash = dest.parent()?.parent()?;
    let mut name = dest.file_name()?.to_os_string();
    name.push(".trashinfo");
    Some(trash.join("info").join(name))
}

/// The `.trashinfo` text for a file that was at `original` (absolute).
pub(crate) fn info_text(original: &Path, deleted_unix: i64) -> Vec<u8> {
    let mut t = b"[Trash Info]\nPath=".to_vec();
    // RFC 2396 escaping of everything but unreserved characters and '/'.
    for &b in original.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()/".contains(&b) {
            t.push(b);
        } else {
            t.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    t.extend_from_slice(b"\nDeletionDate=");
    t.extend_from_slice(date(deleted_unix).as_bytes());
    t.push(b'\n');
    t
}

/// `YYYY-MM-DDThh:mm:ss` in UTC. The spec asks for local time; reading
/// the time zone needs a time-zone database crate for one line of a file
/// that trash viewers only display, so UTC it is (said in the README).
fn date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Writes the info file for `dest`: whole and synced at the temporary
/// name `tmp` in the info directory, then renamed into place without
/// replacing anything, so a process killed at any instant leaves either
/// no info file or a complete one (and at most the temporary name, which
/// recovery removes). `Ok(false)`: the name exists (another program took
/// it meanwhile).
pub(crate) fn write_info(dest: &Path, original: &Path, tmp: &Path) -> std::io::Result<bool> {
    let info = info_path(dest).ok_or_else(|| std::io::Error::other("bad trash path"))?;
    let tmp = info.with_file_name(tmp);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).expect("a flag bit"))
        .open(&tmp)?;
    let written = f
        .write_all(&info_text(original, now))
        .and_then(|()| f.sync_all());
    let placed = written.and_then(|()| {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp,
            rustix::fs::CWD,
            &info,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(std::io::Error::from)
    });
    match placed {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Removes what a killed step may have left in the info directory: the
/// temporary info file, and the info file if the file never got there.
pub(crate) fn clean_after(dest: &Path, original: &Path, tmp: Option<&Path>, done: bool) {
    if let (Some(info), Some(tmp)) = (info_path(dest), tmp) {
        let _ = std::fs::remove_file(info.with_file_name(tmp));
    }
    if !done {
        remove_info(dest, original);
    }
}

/// Whether the info file for `dest` is the one written for `original`
/// (so recovery and undo remove only their own).
pub(crate) fn info_is_for(dest: &Path, original: &Path) -> bool {
    let Some(info) = info_path(dest) else {
        return false;
    };
    let Ok(text) = std::fs::read(info) else {
        return false;
    };
    let want = info_text(original, 0);
    let path_line = |t: &[u8]| t.split(|&b| b == b'\n').nth(1).map(<[u8]>::to_vec);
    path_line(&text).is_some() && path_line(&text) == path_line(&want)
}

/// Removes the info file for `dest` if it is `original`'s.
pub(crate) fn remove_info(dest: &Path, original: &Path) {
    if info_is_for(dest, original) {
        if let Some(info) = info_path(dest) {
            let _ = std::fs::remove_file(info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date(0), "1970-01-01T00:00:00");
        assert_eq!(date(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(date(1_795_305_599), "2026-11-21T23:59:59");
        assert_eq!(date(-1), "1969-12-31T23:59:59");
    }

    #[test]
    fn info_escapes_every_byte_outside_the_unreserved_set() {
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/a b/%\n\xff<x>.jpg"));
        let t = String::from_utf8(info_text(p, 0)).unwrap();
        assert_eq!(
            t,
            "[Trash Info]\nPath=/a%20b/%25%0A%FF%3Cx%3E.jpg\nDeletionDate=1970-01-01T00:00:00\n"
        );
    }

    #[test]
    fn free_names_skip_taken_and_existing_ones() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("files")).unwrap();
        std::fs::create_dir_all(t.path().join("info")).unwrap();
        std::fs::write(t.path().join("files/a"), b"").unwrap();
        std::fs::write(t.path().join("info/a.2.trashinfo"), b"").unwrap();
        let mut taken = std::collections::HashSet::new();
        let mut next = std::collections::HashMap::new();
        let name = std::ffi::OsStr::new("a");
        assert_eq!(
            free_name(t.path(), name, &mut taken, &mut next),
            t.path().join("files/a.3")
        );
        assert_eq!(
            free_name(t.path(), name, &mut taken, &mut next),
            t.path().join("files/a.4")
        );
        let long = "é".repeat(127);
        let got = free_name(t.path(), std::ffi::OsStr::new(&long), &mut taken, &mut next);
        let got = got
            .file_name()
            .unwrap()
            .to_str()
            .expect("cut at a boundary");
        assert_eq!(got.len(), 244);
        let got = free_name(t.path(), std::ffi::OsStr::new(&long), &mut taken, &mut next);
        assert!(got.file_name().unwrap().len() <= 245, "{got:?}");
        assert!(got.to_str().unwrap().ends_with(".2"));
    }
}
