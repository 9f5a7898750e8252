//! Deterministic test trees (a large test directory generator):
//! the same [`GenSpec`] always writes the same bytes under the same names,
//! whatever the thread count, so tests and benchmarks are repeatable.
//!
//! A tree holds originals, exact duplicates of earlier files, and
//! near-duplicates: same size as an earlier file, differing in one byte at
//! its start, middle or end (the traps a careless quick check falls into).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

/// How file sizes are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeDist {
    /// Uniform between the minimum and maximum.
    Uniform,
    /// Log-normal with this median and shape, clamped to the range: many
    /// small files and a long tail of large ones, like real collections.
    LogNormal {
        /// Median size in bytes.
        median: u64,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSpec {
    /// Number of files.
    pub files: u64,
    /// Number of directories (nested, eight children per directory).
    pub dirs: u64,
    /// Fraction of files that are exact copies of an earlier file.
    pub dup_ratio: f64,
    /// Fraction of files that have the size of an earlier file but differ
    /// from it in one byte (first, middle or last).
    pub near_ratio: f64,
    /// Seed: same seed, same tree.
    pub seed: u64,
    /// Smallest file size.
    pub min_size: u64,
    /// Largest file size.
    pub max_size: u64,
    /// Size distribution.
    pub sizes: SizeDist,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            files: 10_000,
            dirs: 500,
            dup_ratio: 0.2,
            near_ratio: 0.05,
            seed: 1,
            min_size: 0,
            max_size: 64 * 1024,
            sizes: SizeDist::Uniform,
        }
    }
}

impl GenSpec {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.dirs == 0 {
            return Err(SpecError::NoDirs);
        }
        if !(0.0..=1.0).contains(&self.dup_ratio) || !(0.0..=1.0).contains(&self.near_ratio) {
            return Err(SpecError::Ratio);
        }
        if self.dup_ratio + self.near_ratio > 1.0 {
            return Err(SpecError::RatioSum);
        }
        if self.min_size > self.max_size {
            return Err(SpecError::SizeRange);
        }
        Ok(())
    }
}

/// A [`GenSpec`] that cannot be generated. The messages name the `dedupe
/// gen` flags, since that is where specs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `dirs` is zero: the root itself counts as one.
    #[error("--dirs must be at least 1")]
    NoDirs,
    /// A ratio outside 0..=1 (or NaN).
    #[error("ratios must be between 0 and 1")]
    Ratio,
    /// `dup_ratio + near_ratio` above 1.
    #[error("dup ratio plus near ratio must not exceed 1")]
    RatioSum,
    /// `min_size` above `max_size`.
    #[error("--min-size must not exceed --max-size")]
    SizeRange,
}

/// Why [`generate_with_cancel`] stopped short.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The spec is invalid; nothing was written.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Creating a directory or writing a file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The cancel flag was raised. Files finished before that are complete
    /// and counted in the report; the rest were never created.
    #[error("cancelled after writing {}", dedupe::report::plural(.0.files, "file", "files"))]
    Cancelled(GenReport),
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenReport {
    /// Files written.
    pub files: u64,
    /// Directories created (besides the root).
    pub dirs: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files that are exact copies of an earlier file.
    pub duplicates: u64,
    /// Files with an earlier file's size and one differing byte.
    pub near_duplicates: u64,
}

/// `SplitMix64`: a fixed, published mixing function. Written here rather
/// than taken from `rand` because generated trees must stay byte-identical
/// across dependency upgrades, which `rand`'s generators do not promise.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform float in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What file `i` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Content {
    /// The original whose bytes this file starts from.
    origin: u64,
    size: u64,
    /// Byte offset flipped for a near-duplicate.
    flip: Option<u64>,
}

struct Plan<'a> {
    spec: &'a GenSpec,
}

impl Plan<'_> {
    fn h(&self, i: u64, salt: u64) -> u64 {
        mix(self.spec.seed ^ mix(i.wrapping_mul(0x1000_0001).wrapping_add(salt)))
    }

    fn original_size(&self, i: u64) -> u64 {
        let s = self.spec;
        let span = s.max_size - s.min_size;
        match s.sizes {
            SizeDist::Uniform => s.min_size + self.h(i, 1) % (span + 1),
            SizeDist::LogNormal { median, sigma } => {
                // Box-Muller from two uniforms.
                let u1 = unit(self.h(i, 2)).max(f64::MIN_POSITIVE);
                let u2 = unit(self.h(i, 3));
                let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let size = (median.max(1) as f64) * (sigma * n).exp();
                // `size` is positive (an exponential); the cast saturates.
                #[allow(clippy::cast_sign_loss)]
                let size = size as u64;
                size.clamp(s.min_size, s.max_size)
            }
        }
    }

    /// Whether file `i` is a copy (0), a near copy (1) or an original (2).
    fn role(&self, i: u64) -> u8 {
        if i == 0 {
            return 2;
        }
        let u = unit(self.h(i, 4));
        if u < self.spec.dup_ratio {
            0
        } else if u < self.spec.dup_ratio + self.spec.near_ratio {
            1
        } else {
            2
        }
    }

    /// The original that file `i` copies or starts from.
    fn origin(&self, mut i: u64) -> u64 {
        // Follow copies back to an original: expected hops 1/(1-ratio).
        while self.role(i) != 2 {
            i = self.h(i, 5) % i;
        }
        i
    }

    fn content(&self, i: u64) -> Content {
        match self.role(i) {
            2 => Content {
                origin: i,
                size: self.original_size(i),
                flip: None,
            },
            role => {
                let origin = self.origin(self.h(i, 5) % i);
                let size = self.original_size(origin);
                let flip = (role == 1 && size > 0).then(|| match self.h(i, 6) % 3 {
                    0 => 0,
                    1 => size / 2,
                    _ => size - 1,
                });
                Content { origin, size, flip }
            }
        }
    }

    fn dir_of(&self, i: u64) -> u64 {
        self.h(i, 7) % self.spec.dirs
    }

    fn name_of(&self, i: u64) -> String {
        const EXT: [&str; 10] = [
            "jpg", "mp4", "mkv", "flac", "png", "txt", "dat", "srt", "JPG", "mp3",
        ];
        let ext = EXT[(self.h(i, 8) % EXT.len() as u64) as usize];
        if i % 53 == 7 {
            format!("f{i:07} copy (1).{ext}")
        } else {
            format!("f{i:07}.{ext}")
        }
    }
}

/// Directory `k`'s path relative to the root: directory 0 is the root
/// itself, directory k > 0 sits inside directory (k - 1) / 8.
fn dir_paths(root: &Path, dirs: u64) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::with_capacity(dirs as usize);
    paths.push(root.to_path_buf());
    for k in 1..dirs {
        let parent = &paths[((k - 1) / 8) as usize];
        paths.push(parent.join(format!("d{k:05}")));
    }
    paths
}

/// Fills `buf` with the bytes of `c` starting at offset `at`.
fn fill(spec_seed: u64, c: &Content, at: u64, buf: &mut [u8]) {
    let base = mix(spec_seed ^ mix(c.origin ^ 0xC0FF_EE00));
    let (mut off, mut i) = (at, 0);
    while i < buf.len() {
        let word = mix(base.wrapping_add(off / 8)).to_le_bytes();
        let start = (off % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        off += n as u64;
    }
    if let Some(flip) = c.flip {
        if flip >= at && flip < at + buf.len() as u64 {
            buf[(flip - at) as usize] ^= 0x5A;
        }
    }
}

const CHUNK: usize = 1 << 20;

fn write_file(path: &Path, seed: u64, c: &Content, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    let mut at = 0;
    while at < c.size {
        let n = (c.size - at).min(CHUNK as u64) as usize;
        buf.resize(n, 0);
        fill(seed, c, at, buf);
        f.write_all(buf)?;
        at += n as u64;
    }
    Ok(())
}

/// Writes the tree described by `spec` under `root` (created if missing).
/// Files already there under the generated names are overwritten.
pub fn generate(root: &Path, spec: &GenSpec) -> io::Result<GenReport> {
    let never = AtomicBool::new(false);
    generate_with_cancel(root, spec, &never).map_err(|e| match e {
        GenError::Io(e) => e,
        e @ GenError::Spec(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
        e @ GenError::Cancelled(_) => io::Error::new(io::ErrorKind::Interrupted, e),
    })
}

/// [`generate`], stopping soon after `cancel` becomes true: it is checked
/// before each directory and each file, so at most one file per thread is
/// finished after the flag is raised.
pub fn generate_with_cancel(
    root: &Path,
    spec: &GenSpec,
    cancel: &AtomicBool,
) -> Result<GenReport, GenError> {
    spec.validate()?;
    let plan = Plan { spec };
    let dirs = dir_paths(root, spec.dirs);
    let mut report = GenReport::default();
    for (k, d) in dirs.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(GenError::Cancelled(report));
        }
        fs::create_dir_all(d)?;
        // Directory 0 is the root, which the report does not count.
        report.dirs = k as u64;
    }
    let files = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let dups = AtomicU64::new(0);
    let nears = AtomicU64::new(0);
    /// Why a rayon worker stopped; `try_for_each` ends the whole loop.
    enum Stop {
        Io(io::Error),
        Cancelled,
    }
    let result = (0..spec.files).into_par_iter().try_for_each_init(
        || Vec::with_capacity(CHUNK),
        |buf, i| -> Result<(), Stop> {
            if cancel.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            let c = plan.content(i);
            let path = dirs[plan.dir_of(i) as usize].join(plan.name_of(i));
            write_file(&path, spec.seed, &c, buf).map_err(Stop::Io)?;
            files.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(c.size, Ordering::Relaxed);
            if c.origin != i {
                if c.flip.is_some() {
                    nears.fetch_add(1, Ordering::Relaxed);
                } else {
                    dups.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        },
    );
    report.files = files.into_inner();
    report.bytes = bytes.into_inner();
    report.duplicates = dups.into_inner();
    report.near_duplicates = nears.into_inner();
    match result {
        Ok(()) => Ok(report),
        Err(Stop::Io(e)) => Err(GenError::Io(e)),
        Err(Stop::Cancelled) => Err(GenError::Cancelled(report)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_offset_independent() {
        let c = Content {
            origin: 3,
            size: 100,
            flip: Some(50),
        };
        let mut whole = vec![0; 100];
        fill(9, &c, 0, &mut whole);
        let mut parts = vec![0; 100];
        fill(9, &c, 0, &mut parts[..13]);
        fill(9, &c, 13, &mut parts[13..77]);
        fill(9, &c, 77, &mut parts[77..]);
        assert_eq!(whole, parts);
        let mut plain = vec![0; 100];
        fill(9, &Content { flip: None, ..c }, 0, &mut plain);
        let diff: Vec<usize> = (0..100).filter(|&k| whole[k] != plain[k]).collect();
        assert_eq!(diff, vec![50]);
    }

    #[test]
    fn same_spec_same_tree_and_ratios_hold() {
        let spec = GenSpec {
            files: 300,
            dirs: 20,
            seed: 42,
            max_size: 3000,
            ..GenSpec::default()
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ra = generate(a.path(), &spec).unwrap();
        let rb = generate(b.path(), &spec).unwrap();
        assert_eq!(ra, rb);
        assert!(ra.duplicates > 20 && ra.duplicates < 110, "{ra:?}");
        assert!(ra.near_duplicates > 0, "{ra:?}");
        let plan = Plan { spec: &spec };
        let path_of = |root: &Path, i: u64| {
            dir_paths(root, spec.dirs)[plan.dir_of(i) as usize].join(plan.name_of(i))
        };
        for i in 0..spec.files {
            assert_eq!(
                fs::read(path_of(a.path(), i)).unwrap(),
                fs::read(path_of(b.path(), i)).unwrap()
            );
        }
        let other = GenSpec {
            seed: 43,
            ..spec.clone()
        };
        let c = tempfile::tempdir().unwrap();
        generate(c.path(), &other).unwrap();
        // Another seed moves or changes file 0 (not empty under seed 42,
        // so the comparison means something).
        let x = fs::read(path_of(a.path(), 0)).unwrap();
        assert!(!x.is_empty());
        assert!(fs::read(path_of(c.path(), 0)).map_or(true, |y| y != x));
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let check = |spec: GenSpec| spec.validate().unwrap_err();
        let d = GenSpec::default;
        assert_eq!(check(GenSpec { dirs: 0, ..d() }), SpecError::NoDirs);
        assert_eq!(
            check(GenSpec {
                near_ratio: f64::NAN,
                ..d()
            }),
            SpecError::Ratio
        );
        assert_eq!(
            check(GenSpec {
                dup_ratio: 0.9,
                near_ratio: 0.2,
                ..d()
            }),
            SpecError::RatioSum
        );
        assert_eq!(
            check(GenSpec {
                min_size: 5,
                max_size: 1,
                ..d()
            }),
            SpecError::SizeRange
        );
        let dir = tempfile::tempdir().unwrap();
        let err = generate(dir.path(), &GenSpec { dirs: 0, ..d() }).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_raised_cancel_flag_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        let spec = GenSpec {
            files: 50,
            dirs: 5,
            ..GenSpec::default()
        };
        let err = generate_with_cancel(&root, &spec, &AtomicBool::new(true)).unwrap_err();
        assert!(
            matches!(&err, GenError::Cancelled(r) if *r == GenReport::default()),
            "{err:?}"
        );
        assert!(!root.exists());
        let done = generate_with_cancel(&root, &spec, &AtomicBool::new(false)).unwrap();
        assert_eq!((done.files, done.dirs), (50, 4));
    }
}
