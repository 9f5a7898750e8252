//! Content hashes behind one interface. The full-content hash is chosen by
//! the user; the quick checks always use xxh3-128 (they only split
//! candidates, and the full hash or a byte comparison decides).
//!
//! BLAKE3 is the default full hash because a group is a promise that the
//! bytes are equal, and with a non-cryptographic hash anyone who can write
//! two files can break it: xxh3-128 collisions are easy to craft with its
//! default secret, and even with a random secret fixed pairs of 32-240-byte
//! messages collide with probability about 2^-27 (xxHash issue #1127).
//! BLAKE3 costs about 5 GB/s per core here, against page-cache reads at
//! about 6.4 GB/s, so warm runs that read much pay for it (measured in the
//! README's benchmarks); cold runs wait for the disk either way.
//!
//! Every algorithm here gives at least 128 bits: 64-bit hashes collide too
//! easily at 10^8+ files. The trie matches the whole digest, not only the
//! first 128 bits it keys on.

use std::fmt;
use std::str::FromStr;

/// The full-content hash algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HashAlgo {
    /// xxh3-128: non-cryptographic, faster than memory copies; only for
    /// data nobody could have crafted.
    Xxh3,
    /// BLAKE3-256: cryptographic. The default.
    #[default]
    Blake3,
    /// SHA-256: cryptographic and comparable with `sha256sum`.
    Sha256,
}

impl HashAlgo {
    /// Name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Xxh3 => "xxh3",
            HashAlgo::Blake3 => "blake3",
            HashAlgo::Sha256 => "sha256",
        }
    }

    /// Bytes in a digest of this algorithm.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Xxh3 => 16,
            HashAlgo::Blake3 | HashAlgo::Sha256 => 32,
        }
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> ContentHasher {
        match self {
            HashAlgo::Xxh3 => ContentHasher::Xxh3(Box::default()),
            HashAlgo::Blake3 => ContentHasher::Blake3(Box::default()),
            HashAlgo::Sha256 => ContentHasher::Sha256(sha2::Sha256::default()),
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "xxh3" | "xxh3-128" => Ok(HashAlgo::Xxh3),
            "blake3" => Ok(HashAlgo::Blake3),
            "sha256" | "sha-256" => Ok(HashAlgo::Sha256),
            other => Err(format!("unknown hash {other:?} (xxh3, blake3, sha256)")),
        }
    }
}

/// An incremental hasher of the chosen algorithm.
pub enum ContentHasher {
    /// xxh3-128 state (boxed: it is large).
    Xxh3(Box<xxhash_rust::xxh3::Xxh3Default>),
    /// BLAKE3 state (boxed: it is large).
    Blake3(Box<blake3::Hasher>),
    /// SHA-256 state.
    Sha256(sha2::Sha256),
}

impl ContentHasher {
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Xxh3(h) => h.update(bytes),
            ContentHasher::Blake3(h) => {
                h.update(bytes);
            }
            ContentHasher::Sha256(h) => sha2::Digest::update(h, bytes),
        }
    }

    /// The digest: 16 bytes for xxh3-128, 32 for the others.
    pub fn finish(self) -> Digest {
        match self {
            ContentHasher::Xxh3(h) => Digest::from_slice(&h.digest128().to_be_bytes()),
            ContentHasher::Blake3(h) => Digest::from_slice(h.finalize().as_bytes()),
            ContentHasher::Sha256(h) => Digest::from_slice(&sha2::Digest::finalize(h)),
        }
    }
}

/// A digest of up to 32 bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    bytes: [u8; 32],
    len: u8,
}

impl Digest {
    pub(crate) fn from_slice(s: &[u8]) -> Digest {
        let mut bytes = [0; 32];
        bytes[..s.len()].copy_from_slice(s);
        Digest {
            bytes,
            len: s.len() as u8,
        }
    }

    /// A digest of `algo` read back from its bytes (a cache, a report):
    /// `None` if the length is not that algorithm's.
    pub fn from_bytes(algo: HashAlgo, bytes: &[u8]) -> Option<Digest> {
        (bytes.len() == algo.digest_len()).then(|| Digest::from_slice(bytes))
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The first 128 bits, used as an in-memory key.
    pub fn key(&self) -> Key {
        let b = &self.bytes;
        [
            u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        ]
    }

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.as_bytes()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 128-bit key (two words, so it packs at 8-byte alignment).
pub type Key = [u64; 2];

/// xxh3-128 of the concatenation of `parts`: the quick-check hash.
pub fn quick_key(parts: &[&[u8]]) -> Key {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for p in parts {
        h.update(p);
    }
    let v = h.digest128();
    [v as u64, (v >> 64) as u64]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = HashAlgo::Sha256.hasher();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The BLAKE3 reference vector for "abc", fed in two pieces.
        let mut h = HashAlgo::Blake3.hasher();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.finish().to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        let mut h = HashAlgo::Xxh3.hasher();
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(d.as_bytes().len(), 16);
        assert_eq!(
            d.to_hex(),
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(b"abc"))
        );
        assert_eq!(quick_key(&[b"a", b"bc"]), quick_key(&[b"abc"]));
        assert_ne!(quick_key(&[b"abd"]), quick_key(&[b"abc"]));
        assert_eq!("BLAKE3".parse::<HashAlgo>(), Ok(HashAlgo::Blake3));
        assert!("md5".parse::<HashAlgo>().is_err());
    }

    #[test]
    fn digests_read_back_only_at_their_length() {
        for algo in [HashAlgo::Xxh3, HashAlgo::Blake3, HashAlgo::Sha256] {
            let d = algo.hasher().finish();
            assert_eq!(d.as_bytes().len(), algo.digest_len(), "{algo}");
            assert_eq!(Digest::from_bytes(algo, d.as_bytes()), Some(d));
            assert_eq!(Digest::from_bytes(algo, &d.as_bytes()[1..]), None);
        }
    }
}
