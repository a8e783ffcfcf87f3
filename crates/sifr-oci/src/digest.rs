//! Content digests (`sha256:<64 hex>`) and a reader that verifies one while streaming.
//!
//! Only sha256 is accepted: it is what every registry and image layout in use produces, and
//! accepting an algorithm we cannot verify would let unverified bytes through. The verifying
//! reader hashes every byte it hands out and fails the read that reaches EOF if the digest or
//! the expected size does not match, so a consumer that reads to the end never sees a
//! successful end of a corrupt stream.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A digest string that is not `sha256:<64 lower-case hex>`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest algorithm `{algorithm}` in `{digest}`: only sha256 is supported")]
    Algorithm { digest: String, algorithm: String },
    #[error("malformed digest `{0}`: expected `sha256:` and 64 lower-case hex digits")]
    Malformed(String),
}

/// A sha256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Parse `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((alg, hex_part)) = s.split_once(':') else {
            return Err(DigestError::Malformed(s.to_string()));
        };
        if alg != "sha256" {
            return Err(DigestError::Algorithm {
                digest: s.to_string(),
                algorithm: alg.to_string(),
            });
        }
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Malformed(s.to_string()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| DigestError::Malformed(s.to_string()))?;
        Ok(Digest(out))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The 64 hex digits, without the algorithm (used as a file name in caches and layouts).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The algorithm name: always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why verified content was rejected; carried inside an `io::Error` by [`VerifyingReader`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("content digest mismatch: expected `{expected}`, got `{actual}`")]
    Digest { expected: Digest, actual: Digest },
    #[error("content of `{digest}` has {actual} bytes, expected {expected}")]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
}

/// Incremental sha256 over bytes seen so far.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

/// Hashes what passes through and checks it against `expected` when the inner reader ends.
/// A size, when known, is enforced as it streams: more bytes than announced fail at once.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Digest,
    size: Option<u64>,
    hasher: Option<Hasher>,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            expected,
            size,
            hasher: Some(Hasher::new()),
        }
    }

    /// Continue from bytes already verified to be a prefix (a resumed download): `prefix`
    /// is the hash state over those bytes.
    pub fn resume(inner: R, expected: Digest, size: Option<u64>, prefix: Hasher) -> Self {
        VerifyingReader {
            inner,
            expected,
            size,
            hasher: Some(prefix),
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(0); // already verified
        };
        let n = self.inner.read(buf)?;
        hasher.update(&buf[..n]);
        if let Some(size) = self.size
            && hasher.len() > size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                VerifyError::Size {
                    digest: self.expected,
                    expected: size,
                    actual: hasher.len(),
                },
            ));
        }
        if n == 0 && !buf.is_empty() {
            let hasher = self.hasher.take().expect("checked above");
            let len = hasher.len();
            if let Some(size) = self.size.filter(|&s| s != len) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    VerifyError::Size {
                        digest: self.expected,
                        expected: size,
                        actual: len,
                    },
                ));
            }
            let actual = hasher.finish();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    VerifyError::Digest {
                        expected: self.expected,
                        actual,
                    },
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_sha256() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex().len(), 64);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn rejects_bad_digests_naming_them() {
        for bad in [
            "sha256:abc",
            "sha256",
            "SHA256:00",
            &EMPTY.to_uppercase(),
            &format!("{EMPTY}0"),
        ] {
            let e = Digest::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let e = Digest::parse("sha512:00").unwrap_err();
        assert!(matches!(e, DigestError::Algorithm { .. }), "{e}");
    }

    #[test]
    fn verifying_reader_passes_good_content() {
        let data = b"hello world".repeat(1000);
        let mut r = VerifyingReader::new(&data[..], Digest::of(&data), Some(data.len() as u64));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn verifying_reader_fails_at_eof_naming_both_digests() {
        let expected = Digest::of(b"good");
        let mut r = VerifyingReader::new(&b"evil"[..], expected, None);
        let e = io::read_to_string(&mut r).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&expected.to_string()), "{msg}");
        assert!(msg.contains(&Digest::of(b"evil").to_string()), "{msg}");
    }

    #[test]
    fn verifying_reader_enforces_size_both_ways() {
        let d = Digest::of(b"abcdef");
        let mut long = VerifyingReader::new(&b"abcdef"[..], d, Some(3));
        assert!(
            io::read_to_string(&mut long)
                .unwrap_err()
                .to_string()
                .contains("expected 3")
        );
        let mut short = VerifyingReader::new(&b"abcdef"[..], d, Some(10));
        assert!(
            io::read_to_string(&mut short)
                .unwrap_err()
                .to_string()
                .contains("expected 10")
        );
    }

    #[test]
    fn resume_continues_the_hash() {
        let data = b"0123456789";
        let mut prefix = Hasher::new();
        prefix.update(&data[..4]);
        let mut r = VerifyingReader::resume(&data[4..], Digest::of(data), Some(10), prefix);
        assert_eq!(io::read_to_string(&mut r).unwrap(), "456789");
    }
}
