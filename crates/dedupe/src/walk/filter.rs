//! The walker's filters, compiled once per walk. Name-level checks run
//! before any system call, so a media-only scan never stats a `.txt` file.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::{Config, ConfigError, MEDIA_EXTENSIONS};
use crate::entry::DirPath;

/// Globs split by what they are matched against.
#[derive(Default)]
struct Globs {
    /// Matched against the name alone.
    name: Option<GlobSet>,
    /// Matched against the path relative to the root the file was found
    /// under (globs containing `/`).
    path: Option<GlobSet>,
}

impl Globs {
    fn build(globs: &[String], ignore_case: bool) -> Result<Globs, ConfigError> {
        let mut name = GlobSetBuilder::new();
        let mut path = GlobSetBuilder::new();
        let (mut n, mut p) = (0, 0);
        for g in globs {
            let glob = GlobBuilder::new(g)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| ConfigError::Glob {
                    glob: g.clone(),
                    message: e.kind().to_string(),
                })?;
            if g.contains('/') {
                path.add(glob);
                p += 1;
            } else {
                name.add(glob);
                n += 1;
            }
        }
        let finish = |b: GlobSetBuilder, count: usize| -> Result<Option<GlobSet>, ConfigError> {
            if count == 0 {
                return Ok(None);
            }
            b.build().map(Some).map_err(|e| ConfigError::Glob {
                glob: globs.join(","),
                message: e.to_string(),
            })
        };
        Ok(Globs {
            name: finish(name, n)?,
            path: finish(path, p)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.name.is_none() && self.path.is_none()
    }

    fn matches(&self, dir: &DirPath, name: &[u8]) -> bool {
        if let Some(set) = &self.name {
            if set.is_match(Path::new(OsStr::from_bytes(name))) {
                return true;
            }
        }
        if let Some(set) = &self.path {
            // Relative to the root: `t`, `./t` and `t/` as roots match alike.
            let rel = dir.relative();
            let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                path.extend_from_slice(rel);
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let candidate = globset::Candidate::new(Path::new(OsStr::from_bytes(&path)));
            if set.is_match_candidate(&candidate) {
                return true;
            }
        }
        false
    }
}

/// Compiled form of [`Config`]'s filters.
pub(crate) struct Filter {
    include: Globs,
    exclude: Globs,
    /// Lower-case extensions to keep; `None` keeps all.
    extensions: Option<HashSet<Vec<u8>>>,
    exclude_extensions: HashSet<Vec<u8>>,
    include_hidden: bool,
    min_size: u64,
    max_size: u64,
    max_depth: u32,
}

fn lower_ext(e: &str) -> Vec<u8> {
    e.strip_prefix('.')
        .unwrap_or(e)
        .to_ascii_lowercase()
        .into_bytes()
}

impl Filter {
    pub(crate) fn new(config: &Config) -> Result<Filter, ConfigError> {
        config.validate()?;
        let f = &config.filters;
        let mut keep: HashSet<Vec<u8>> = f.extensions.iter().map(|e| lower_ext(e)).collect();
        if f.media {
            keep.extend(MEDIA_EXTENSIONS.iter().map(|e| lower_ext(e)));
        }
        Ok(Filter {
            include: Globs::build(&f.include_globs, f.ignore_case)?,
            exclude: Globs::build(&f.exclude_globs, f.ignore_case)?,
            extensions: (!keep.is_empty()).then_some(keep),
            exclude_extensions: f.exclude_extensions.iter().map(|e| lower_ext(e)).collect(),
            include_hidden: config.include_hidden,
            min_size: config.min_file_size,
            max_size: config.max_file_size.unwrap_or(u64::MAX),
            max_depth: config
                .max_depth
                .map_or(u32::MAX, |d| d.min(u32::MAX as usize) as u32),
        })
    }

    /// Whether a directory named `name` inside `dir` is entered.
    pub(crate) fn enter_dir(&self, dir: &DirPath, name: &[u8]) -> bool {
        dir.depth() + 1 < self.max_depth
            && (self.include_hidden || !is_hidden(name))
            && (self.exclude.is_empty() || !self.exclude.matches(dir, name))
    }

    /// Whether a file named `name` in `dir` may be reported, judged on its
    /// name alone (before any system call).
    pub(crate) fn file_name_ok(&self, dir: &DirPath, name: &[u8]) -> bool {
        if dir.depth() >= self.max_depth {
            return false;
        }
        if !self.include_hidden && is_hidden(name) {
            return false;
        }
        if self.extensions.is_some() || !self.exclude_extensions.is_empty() {
            // Lower-cased on the stack: this runs for every file listed.
            let mut buf = [0u8; 32];
            let ext: Option<Cow<'_, [u8]>> =
                extension(name).map(|e| match buf.get_mut(..e.len()) {
                    Some(b) => {
                        b.copy_from_slice(e);
                        b.make_ascii_lowercase();
                        Cow::Borrowed(&*b)
                    }
                    None => Cow::Owned(e.to_ascii_lowercase()), // rare: very long
                });
            if let Some(keep) = &self.extensions {
                match &ext {
                    Some(e) if keep.contains(&**e) => {}
                    _ => return false,
                }
            }
            if let Some(e) = &ext {
                if self.exclude_extensions.contains(&**e) {
                    return false;
                }
            }
        }
        if !self.exclude.is_empty() && self.exclude.matches(dir, name) {
            return false;
        }
        self.include.is_empty() || self.include.matches(dir, name)
    }

    /// Whether a file of this size may be reported.
    pub(crate) fn size_ok(&self, size: u64) -> bool {
        size >= self.min_size && size <= self.max_size
    }
}

fn is_hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// The extension of a file name: what follows the last dot, if the dot is
/// not the first character (`.bashrc` has none).
fn extension(name: &[u8]) -> Option<&[u8]> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    (dot > 0 && dot + 1 < name.len()).then(|| &name[dot + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Filters;

    fn filter(f: Filters) -> Filter {
        Filter::new(&Config {
            filters: f,
            ..Config::default()
        })
        .unwrap()
    }

    #[test]
    fn extensions_are_case_insensitive_and_media_preset_works() {
        let f = filter(Filters {
            media: true,
            ..Filters::default()
        });
        let d = DirPath::new("root", 0);
        assert!(f.file_name_ok(&d, b"a.MKV"));
        assert!(f.file_name_ok(&d, b"b.jpg"));
        assert!(!f.file_name_ok(&d, b"c.txt"));
        assert!(!f.file_name_ok(&d, b"mkv"));
        assert!(!f.file_name_ok(&d, b".mkv"));
    }

    #[test]
    fn globs_match_names_or_paths() {
        let f = filter(Filters {
            exclude_globs: vec!["*.tmp".into(), "**/skip/**".into(), "cache".into()],
            ..Filters::default()
        });
        let root = DirPath::new("root", 0);
        let d = root.child(b"a");
        assert_eq!(d.relative(), b"a");
        assert!(!f.file_name_ok(&d, b"x.tmp"));
        assert!(f.file_name_ok(&d, b"x.jpg"));
        assert!(!f.enter_dir(&d, b"cache"));
        assert!(f.enter_dir(&d, b"other"));
        let s = root.child(b"skip");
        assert!(!f.file_name_ok(&s, b"x.jpg"));
        // Path globs see the path below the root, not the root's spelling.
        let f = filter(Filters {
            exclude_globs: vec!["a/*.jpg".into()],
            ..Filters::default()
        });
        assert!(!f.file_name_ok(&d, b"x.jpg"));
        assert!(f.file_name_ok(&DirPath::new("elsewhere/a", 0), b"x.jpg"));
        let f = filter(Filters {
            include_globs: vec!["IMG_*".into()],
            exclude_extensions: vec!["png".into()],
            ..Filters::default()
        });
        assert!(f.file_name_ok(&d, b"IMG_1.jpg"));
        assert!(!f.file_name_ok(&d, b"IMG_1.PNG"));
        assert!(!f.file_name_ok(&d, b"DSC_1.jpg"));
        assert!(f.enter_dir(&d, b"anything"));
    }

    #[test]
    fn depth_and_hidden() {
        let f = Filter::new(&Config {
            max_depth: Some(1),
            include_hidden: false,
            ..Config::default()
        })
        .unwrap();
        let root = DirPath::new("r", 0);
        assert!(f.file_name_ok(&root, b"a"));
        assert!(!f.file_name_ok(&root, b".a"));
        assert!(!f.enter_dir(&root, b"sub"));
        let sub = DirPath::new("r/sub", 1);
        assert!(!f.file_name_ok(&sub, b"a"));
    }
}
