//! Output formats. Writers take any `io::Write`; the library never decides
//! where output goes.
//!
//! Paths are bytes on Unix and may not be UTF-8. Every machine-readable
//! format here is lossless: in JSON a UTF-8 path is a string and any other
//! path is `{"bytes":"<base64>"}`.

pub mod json;
pub mod text;

pub use text::Terminator;

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

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
