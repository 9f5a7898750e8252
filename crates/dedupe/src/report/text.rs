//! Formats for people and for other tools: text, fdupes and CSV.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use super::{escape_path, human_bytes, plural};
use crate::group::DuplicateGroup;
use crate::pipeline::{FindReport, GroupOrder};

/// Path terminator: newline, or NUL for `-0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Terminator {
    /// `\n`.
    #[default]
    Newline,
    /// `\0`.
    Nul,
}

impl Terminator {
    fn byte(self) -> u8 {
        match self {
            Terminator::Newline => b'\n',
            Terminator::Nul => 0,
        }
    }
}

/// The default report: a header with totals, then each group in `order`
/// with its size and hash, one path per line, then the totals again (a
/// long report's top has scrolled away). Paths are escaped with
/// [`escape_path`], since this format is read on terminals and a name with
/// a newline must not pass for two members. An interrupted run says so at
/// both ends. With [`Terminator::Nul`] the header and footer are left out
/// and paths end in NUL, with an empty record between groups; those are
/// for programs, so they stay byte-exact.
pub fn text(
    w: &mut dyn Write,
    r: &FindReport,
    term: Terminator,
    order: GroupOrder,
) -> io::Result<()> {
    let s = &r.summary;
    let totals = |w: &mut dyn Write| -> io::Result<()> {
        writeln!(
            w,
            "# {} ({}) scanned; {}; {} ({} reclaimable)",
            plural(s.files_scanned, "file", "files"),
            human_bytes(s.bytes_scanned),
            plural(s.groups, "duplicate group", "duplicate groups"),
            plural(s.redundant_files, "redundant file", "redundant files"),
            human_bytes(s.redundant_bytes),
        )?;
        if s.interrupted {
            writeln!(
                w,
                "# interrupted: these are the groups confirmed before the stop"
            )?;
        }
        Ok(())
    };
    if term == Terminator::Newline {
        totals(w)?;
    }
    for g in r.groups_by(order) {
        let g = &g;
        if term == Terminator::Newline {
            writeln!(
                w,
                "\n{} x {} ({} reclaimable) {}:{}",
                g.files.len(),
                human_bytes(g.size),
                human_bytes(g.redundant_bytes()),
                g.algo,
                g.hash.to_hex()
            )?;
            for f in &g.files {
                writeln!(w, "    {}", escape_path(f.as_os_str().as_bytes()))?;
            }
        } else {
            paths(w, g, term)?;
            w.write_all(&[0])?;
        }
    }
    if term == Terminator::Newline && s.groups > 0 {
        writeln!(w)?;
        totals(w)?;
    }
    w.flush()
}

fn paths(w: &mut dyn Write, g: &DuplicateGroup, term: Terminator) -> io::Result<()> {
    for f in &g.files {
        w.write_all(f.as_os_str().as_bytes())?;
        w.write_all(&[term.byte()])?;
    }
    Ok(())
}

/// fdupes' format: the paths of each group, a blank line (or, with NUL
/// terminators, an empty record) between groups.
pub fn fdupes(
    w: &mut dyn Write,
    groups: impl IntoIterator<Item = DuplicateGroup>,
    term: Terminator,
) -> io::Result<()> {
    for g in groups {
        paths(w, &g, term)?;
        w.write_all(&[term.byte()])?;
    }
    w.flush()
}

/// CSV with a header: `group,size,hash,path`, one row per file, written
/// by the `csv` crate (RFC 4180 quoting; path bytes as they are, so names
/// that are not UTF-8 survive).
pub fn csv(w: &mut dyn Write, groups: impl IntoIterator<Item = DuplicateGroup>) -> io::Result<()> {
    let mut out = ::csv::Writer::from_writer(w);
    out.write_record(["group", "size", "hash", "path"])?;
    for g in groups {
        let (id, size, hash) = (g.id.to_string(), g.size.to_string(), g.hash.to_hex());
        for f in &g.files {
            out.write_byte_record(&::csv::ByteRecord::from(vec![
                id.as_bytes(),
                size.as_bytes(),
                hash.as_bytes(),
                f.as_os_str().as_bytes(),
            ]))?;
        }
    }
    out.flush()
}
