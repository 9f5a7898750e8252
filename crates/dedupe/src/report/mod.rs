//! Output formats. Writers take any `io::Write`; the library never decides
//! where output goes.
//!
//! Paths are bytes on Unix and may not be UTF-8. Every machine-readable
//! format here is lossless: in JSON a UTF-8 path is a string and any other
//! path is `{"bytes":"<base64>"}`.

pub mod html;
pub mod json;
pub mod ncdu;
pub mod read;
pub mod text;
pub mod writer;

pub use text::Terminator;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use base64::Engine;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A path serialized losslessly: a string when it is UTF-8, otherwise
/// `{"bytes": "<standard base64>"}`.
pub struct JsonPath<'a>(pub &'a [u8]);

impl<'a> JsonPath<'a> {
    /// Wraps a `Path`.
    pub fn of(path: &'a Path) -> Self {
        JsonPath(path.as_os_str().as_bytes())
    }

    /// As a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for JsonPath<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "bytes",
                    &base64::engine::general_purpose::STANDARD.encode(self.0),
                )?;
                m.end()
            }
        }
    }
}

/// Decodes what [`JsonPath`] wrote (for tests and tools that read reports).
pub fn decode_json_path(v: &serde_json::Value) -> Option<Vec<u8>> {
    match v {
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        serde_json::Value::Object(m) => base64::engine::general_purpose::STANDARD
            .decode(m.get("bytes")?.as_str()?)
            .ok(),
        _ => None,
    }
}

/// A path as people should see it on a terminal, the way `ls -b` and
/// fclones show it: a newline in a name would otherwise fake an extra
/// report line, and an ESC sequence would repaint the terminal.
///
/// Control characters (U+0000-U+001F, U+007F-U+009F) and bytes that are
/// not UTF-8 are escaped byte by byte as `\xNN` (`\n`, `\t`, `\r` for the
/// common three), and a backslash becomes `\\`, so the escaped text maps
/// back to exactly one byte string. Everything else, other scripts
/// included, is left alone; a path that needs nothing is borrowed.
pub fn escape_path(path: &[u8]) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || c == '\\';
    if let Ok(s) = std::str::from_utf8(path) {
        if !s.contains(needs) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(path.len() + 16);
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    // C1 controls are two bytes in UTF-8; escape each.
                    let mut bytes = [0; 4];
                    for b in c.encode_utf8(&mut bytes).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// [`escape_path`] for a `Path`.
pub fn escape(path: &Path) -> Cow<'_, str> {
    escape_path(path.as_os_str().as_bytes())
}

/// A count for people: `plural(1, "file", "files")` is `1 file`, any
/// other number takes the plural (`0 files`, `2 files`).
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A size for people: `0 B`, `999 B`, `1.0 KiB`, `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_paths_round_trip_through_json() {
        for bytes in [&b"plain/name.jpg"[..], b"a\nb", b"\xff\xfe/x", b""] {
            let text = serde_json::to_string(&JsonPath(bytes)).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(decode_json_path(&v).unwrap(), bytes);
            assert_eq!(v.is_string(), std::str::from_utf8(bytes).is_ok());
        }
    }

    /// The inverse of [`escape_path`], for the round-trip test.
    fn unescape(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = s.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            rest = tail;
            if b != b'\\' {
                out.push(b);
                continue;
            }
            let (&kind, tail) = rest.split_first().expect("a complete escape");
            rest = tail;
            match kind {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&rest[..2]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    rest = &rest[2..];
                }
                other => panic!("unknown escape \\{}", other as char),
            }
        }
        out
    }

    #[test]
    fn escaped_paths_show_no_control_characters_and_map_back() {
        let cases: [(&[u8], &str); 9] = [
            (b"plain/name.jpg", "plain/name.jpg"),
            (
                "caf\u{e9}/\u{65e5}\u{672c}.txt".as_bytes(),
                "caf\u{e9}/\u{65e5}\u{672c}.txt",
            ),
            (b"x\n    /etc/passwd", r"x\n    /etc/passwd"),
            (b"evil\x1b[2J\x1b[31m", r"evil\x1b[2J\x1b[31m"),
            (b"a\tb\rc\0d\x7f", r"a\tb\rc\x00d\x7f"),
            (b"back\\slash", r"back\\slash"),
            (b"bad\xff\xfe/\xc3", r"bad\xff\xfe/\xc3"),
            // U+009B is CSI for terminals that read 8-bit controls.
            ("c1\u{9b}2J".as_bytes(), r"c1\xc2\x9b2J"),
            (b"", ""),
        ];
        for (raw, shown) in cases {
            let got = escape_path(raw);
            assert_eq!(got, shown, "{raw:?}");
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                raw == shown.as_bytes(),
                "borrowed exactly when nothing changes: {raw:?}"
            );
        }
        // Every byte, alone and next to every other: no control character
        // survives, and the escaping is reversible (so unambiguous).
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let raw = [b'<', a, b, b'>'];
                let shown = escape_path(&raw);
                assert!(!shown.chars().any(char::is_control), "{raw:?} -> {shown}");
                assert_eq!(unescape(&shown), raw, "{shown}");
            }
        }
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(0, "file", "files"), "0 files");
        assert_eq!(plural(1, "directory", "directories"), "1 directory");
        assert_eq!(plural(2, "group", "groups"), "2 groups");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
