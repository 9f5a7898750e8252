//! Which volume a file is on, named so that the name survives a reboot.
//!
//! `st_dev` cannot key a cache: it is assigned at mount time, and on btrfs,
//! dm-crypt, LVM and removable disks it changes from one boot (or one
//! plug-in) to the next, so a cache keyed on it either misses everything
//! or, worse, meets another volume's inode numbers. The name is found from
//! `/proc/self/mountinfo`, first match wins:
//! * a block device with a file-system UUID (`/dev/disk/by-uuid`): `uuid:`;
//! * btrfs and ZFS, whose subvolumes share a device but each number inodes
//!   from scratch: the `statfs` file-system id, which both derive from the
//!   pool or file-system UUID and the subvolume: `fsid:`;
//! * anything else (NFS, CIFS, FUSE, tmpfs, overlay): type, source and the
//!   mounted root, e.g. `nfs:server:/export:/`.
//!
//! No name is trusted to be unique on its own: an entry is used only when
//! size, mtime and ctime (nanoseconds) also match, and ctime cannot be set
//! by anyone without changing the system clock.
//!
//! Some volumes are not cached at all (`untrusted`): where ctime is not
//! kept by the kernel (FAT, exFAT, FUSE, CIFS, 9p) a rewrite that puts
//! the mtime back would go unseen, and tmpfs, ramfs and squashfs mounts
//! have no name that survives a reboot. (`path_keyed` and
//! [`Volumes::relative`] remain for volumes whose inode numbers are
//! unstable but whose stamps can be trusted; none is listed today.)

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A mount as `/proc/self/mountinfo` lists it.
#[derive(Clone, Debug)]
pub(crate) struct Mount {
    pub dev: u64,
    /// The directory of the volume that is mounted (`/` for a whole one).
    pub root: PathBuf,
    pub point: PathBuf,
    pub fstype: String,
    pub source: String,
    pub super_opts: String,
}

/// A volume as the cache knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Volume {
    /// Shared: every cache entry of the volume names it.
    pub name: std::sync::Arc<str>,
    pub path_keyed: bool,
}

/// Names the volumes of the devices a run meets, each once.
pub(crate) struct Volumes {
    mounts: Vec<Mount>,
    uuids: Option<HashMap<u64, String>>,
    by_dev: HashMap<u64, Option<Volume>>,
}

impl Volumes {
    pub(crate) fn new() -> Volumes {
        let mounts = fs::read("/proc/self/mountinfo")
            .map(|b| parse_mountinfo(&b))
            .unwrap_or_default();
        Volumes {
            mounts,
            uuids: None,
            by_dev: HashMap::new(),
        }
    }

    /// Every mount, for `cache stats` and `cache prune` (which must know
    /// which volumes are mounted now).
    pub(crate) fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The volume of device `dev`, reached through `path`; `None` when it
    /// cannot be named (no mount lists the device), and then nothing of
    /// it is cached.
    pub(crate) fn of(&mut self, dev: u64, path: &Path) -> Option<&Volume> {
        if !self.by_dev.contains_key(&dev) {
            let v = self.name(dev, path);
            self.by_dev.insert(dev, v);
        }
        self.by_dev.get(&dev).and_then(Option::as_ref)
    }

    fn name(&mut self, dev: u64, path: &Path) -> Option<Volume> {
        let m = self.mount_of(dev, path)?.clone();
        if untrusted(&m) {
            return None;
        }
        let path_keyed = path_keyed(&m);
        let fsid_typed = matches!(m.fstype.as_str(), "btrfs" | "zfs");
        if !fsid_typed && m.source.starts_with("/dev/") {
            if let Some(uuid) = self.uuid_of(&m.source) {
                return Some(Volume {
                    name: format!("uuid:{uuid}").into(),
                    path_keyed,
                });
            }
        }
        if fsid_typed {
            if let Ok(st) = rustix::fs::statvfs(path) {
                return Some(Volume {
                    name: format!("fsid:{}:{:016x}", m.fstype, st.f_fsid).into(),
                    path_keyed,
                });
            }
        }
        Some(Volume {
            name: format!("{}:{}:{}", m.fstype, m.source, m.root.display()).into(),
            path_keyed,
        })
    }

    /// The mount of `dev` whose mount point holds `path` (the longest
    /// such), or any mount of `dev`.
    fn mount_of(&self, dev: u64, path: &Path) -> Option<&Mount> {
        let same: Vec<&Mount> = self.mounts.iter().filter(|m| m.dev == dev).collect();
        let abs = absolute(path);
        same.iter()
            .filter(|m| abs.starts_with(&m.point))
            .max_by_key(|m| m.point.as_os_str().len())
            .or_else(|| same.first())
            .copied()
    }

    fn uuid_of(&mut self, source: &str) -> Option<String> {
        let rdev = fs::metadata(source)
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .map(|m| std::os::unix::fs::MetadataExt::rdev(&m))?;
        self.uuids
            .get_or_insert_with(read_uuids)
            .get(&rdev)
            .cloned()
    }

    /// The path of `path` within its volume, for path-keyed volumes: the
    /// mounted root joined with the path below the mount point.
    pub(crate) fn relative(&self, dev: u64, path: &Path) -> Option<Vec<u8>> {
        let m = self.mount_of(dev, path)?;
        let abs = absolute(path);
        let below = abs.strip_prefix(&m.point).ok()?;
        Some(m.root.join(below).into_os_string().into_vec())
    }
}

/// Volumes whose files are never cached: on FAT, exFAT, FUSE, CIFS, SMB
/// and 9p the ctime is a copy of the mtime or whatever the server says, so
/// a rewrite that restores the mtime (`cp -p`, `touch -r`) cannot be told
/// from the original; tmpfs and ramfs are gone at reboot and every mount
/// of them has the same name; squashfs images are named after loop
/// devices that are renumbered at boot, and their timestamps are whole
/// seconds with ctime equal to mtime.
fn untrusted(m: &Mount) -> bool {
    path_keyed(m)
        || matches!(
            m.fstype.as_str(),
            "cifs" | "smb3" | "9p" | "tmpfs" | "ramfs" | "squashfs" | "devtmpfs"
        )
}

/// FAT, exFAT, FUSE and CIFS without server inode numbers: inode numbers
/// that do not survive a remount.
fn path_keyed(m: &Mount) -> bool {
    matches!(m.fstype.as_str(), "vfat" | "msdos" | "exfat" | "fuseblk")
        || m.fstype == "fuse"
        || m.fstype.starts_with("fuse.")
        || (m.fstype.starts_with("cifs") || m.fstype == "smb3")
            && m.super_opts.split(',').any(|o| o == "noserverino")
}

/// `path` made absolute against the working directory (not resolved:
/// symbolic links stay as the walk met them).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| path.to_path_buf(), |d| d.join(path))
    }
}

/// Block device number to file-system UUID, from `/dev/disk/by-uuid`.
fn read_uuids() -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let Ok(dir) = fs::read_dir("/dev/disk/by-uuid") else {
        return out;
    };
    for e in dir.flatten() {
        if let Ok(m) = fs::metadata(e.path()) {
            if m.file_type().is_block_device() {
                let rdev = std::os::unix::fs::MetadataExt::rdev(&m);
                out.insert(rdev, e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Parses `/proc/self/mountinfo` (see proc(5)): `id parent major:minor
/// root point options [optional...] - fstype source super_options`.
pub(crate) fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.len() < dash + 3 || dash < 6 {
            continue;
        }
        let Some(dev) = std::str::from_utf8(fields[2])
            .ok()
            .and_then(|s| s.split_once(':'))
            .and_then(|(a, b)| Some(rustix::fs::makedev(a.parse().ok()?, b.parse().ok()?)))
        else {
            continue;
        };
        let text = |b: &[u8]| String::from_utf8_lossy(&unescape(b)).into_owned();
        out.push(Mount {
            dev,
            root: PathBuf::from(OsStr::from_bytes(&unescape(fields[3]))),
            point: PathBuf::from(OsStr::from_bytes(&unescape(fields[4]))),
            fstype: text(fields[dash + 1]),
            source: text(fields[dash + 2]),
            super_opts: fields.get(dash + 3).map(|b| text(b)).unwrap_or_default(),
        });
    }
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, d| a * 8 + u32::from(d - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_optional_fields() {
        let text = b"36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                     40 1 0:45 / /media/usb rw shared:7 - vfat /dev/sdb1 rw\n\
                     41 1 0:46 / /net rw - cifs //srv/share rw,noserverino\n\
                     garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].dev, rustix::fs::makedev(98, 0));
        assert_eq!(m[0].root, Path::new("/mnt1"));
        assert_eq!(m[0].point, Path::new("/mnt two"));
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].source, "/dev/root");
        assert!(!untrusted(&m[0]));
        assert!(untrusted(&m[1]), "FAT keeps no ctime");
        assert!(untrusted(&m[2]), "CIFS ctime is the server's word");
    }

    #[test]
    fn the_root_file_system_has_a_name_that_is_not_its_device_number() {
        let mut v = Volumes::new();
        let dev = std::os::unix::fs::MetadataExt::dev(&fs::metadata("/").unwrap());
        let vol = v.of(dev, Path::new("/")).expect("/ is mounted").clone();
        assert!(!vol.name.is_empty());
        assert_ne!(&*vol.name, dev.to_string());
        // Asked again: the same answer, from memory.
        assert_eq!(v.of(dev, Path::new("/etc")), Some(&vol));
    }
}
