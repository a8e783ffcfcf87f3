//! Block compressors for the writer: gzip (zlib stream), zstd, xz and lz4, plus the
//! compressor-options record that follows the superblock.
//!
//! Every function here is pure (bytes in, bytes out) and safe to call from any worker
//! thread; per-thread codec state is cached in thread-locals so a block costs no setup.
//! It must not decide layout: callers store a block raw when `compress` returns `None`.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::str::FromStr;

use crate::format::{compressor, put_u16, put_u32};

/// A codec and its level, as chosen by the user (`gzip`, `zstd:3`, `xz:6`, `lz4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// zlib stream, levels 1..=9; squashfs-tools' default is 9.
    Gzip { level: u32 },
    /// zstd frame, levels 1..=22; squashfs-tools' default is 15.
    Zstd { level: i32 },
    /// xz stream with a CRC32 check, presets 0..=9, dictionary = block size.
    Xz { level: u32 },
    /// Raw LZ4 block ("legacy" format); lz4_flex has no HC mode, so no level.
    Lz4,
}

impl Default for Compression {
    /// zstd level 3: in the project's measurements (docs/benchmarks.md) it packs a Debian
    /// rootfs about as small as gzip -9 at a tenth of the CPU time.
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// Why a compression spec string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressionParseError {
    #[error("unknown compressor `{0}` (expected gzip, zstd, xz or lz4)")]
    Unknown(String),
    #[error("invalid level `{level}` for {codec} (expected {range})")]
    Level {
        codec: &'static str,
        level: String,
        range: &'static str,
    },
}

impl FromStr for Compression {
    type Err = CompressionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        let bad = |codec, range| CompressionParseError::Level {
            codec,
            level: level.unwrap_or_default().to_string(),
            range,
        };
        // Parses `level` (or takes `default`) and checks it against `range`.
        fn level_in<T: FromStr + PartialOrd>(
            level: Option<&str>,
            default: T,
            range: std::ops::RangeInclusive<T>,
        ) -> Option<T> {
            match level {
                None => Some(default),
                Some(l) => l.parse().ok().filter(|l| range.contains(l)),
            }
        }
        match name.to_ascii_lowercase().as_str() {
            "gzip" | "zlib" => Ok(Compression::Gzip {
                level: level_in(level, 9, 1..=9).ok_or_else(|| bad("gzip", "1..=9"))?,
            }),
            "zstd" => Ok(Compression::Zstd {
                level: level_in(level, 3, 1..=22).ok_or_else(|| bad("zstd", "1..=22"))?,
            }),
            "xz" => Ok(Compression::Xz {
                level: level_in(level, 6, 0..=9).ok_or_else(|| bad("xz", "0..=9"))?,
            }),
            "lz4" => match level {
                None => Ok(Compression::Lz4),
                Some(_) => Err(bad("lz4", "no level")),
            },
            other => Err(CompressionParseError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip { level } => write!(f, "gzip:{level}"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
            Compression::Xz { level } => write!(f, "xz:{level}"),
            Compression::Lz4 => write!(f, "lz4"),
        }
    }
}

impl Compression {
    /// The superblock's compressor id.
    pub fn id(&self) -> u16 {
        match self {
            Compression::Gzip { .. } => compressor::GZIP,
            Compression::Zstd { .. } => compressor::ZSTD,
            Compression::Xz { .. } => compressor::XZ,
            Compression::Lz4 => compressor::LZ4,
        }
    }

    /// The compressor-options record, if one is written. Mirrors squashfs-tools: options
    /// appear only when they differ from what a reader assumes without them, except lz4,
    /// whose readers require the format version to be present.
    pub fn options_record(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match *self {
            Compression::Gzip { level } if level != 9 => {
                put_u32(&mut out, level);
                put_u16(&mut out, 15); // window bits
                put_u16(&mut out, 0); // strategies: default only
            }
            Compression::Zstd { level } if level != 15 => put_u32(&mut out, level as u32),
            Compression::Lz4 => {
                put_u32(&mut out, 1); // LZ4_LEGACY: raw blocks
                put_u32(&mut out, 0); // no HC flag
            }
            _ => return None,
        }
        Some(out)
    }

    /// Compress one block. `None` when the result would not be smaller than the input
    /// (the caller then stores it raw) or the codec failed on this input.
    pub fn compress(&self, data: &[u8], block_size: u32) -> Option<Vec<u8>> {
        if data.is_empty() {
            return None;
        }
        let out = match *self {
            Compression::Gzip { level } => gzip(data, level),
            Compression::Zstd { level } => zstd_block(data, level),
            Compression::Xz { level } => xz(data, level, block_size),
            Compression::Lz4 => Some(lz4_flex::block::compress(data)),
        }?;
        (out.len() < data.len()).then_some(out)
    }
}

thread_local! {
    static GZIP: RefCell<Option<(u32, flate2::Compress)>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

fn gzip(data: &[u8], level: u32) -> Option<Vec<u8>> {
    GZIP.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match slot.as_mut() {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            _ => {
                let c = flate2::Compress::new(flate2::Compression::new(level), true);
                &mut slot.insert((level, c)).1
            }
        };
        // Room for exactly the input: anything that does not fit is stored raw anyway.
        let mut out = Vec::with_capacity(data.len());
        match c.compress_vec(data, &mut out, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) => Some(out),
            _ => None,
        }
    })
}

fn zstd_block(data: &[u8], level: i32) -> Option<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match slot.as_mut() {
            Some((l, c)) if *l == level => c,
            _ => {
                let c = zstd::bulk::Compressor::new(level).ok()?;
                &mut slot.insert((level, c)).1
            }
        };
        c.compress(data).ok()
    })
}

fn xz(data: &[u8], level: u32, block_size: u32) -> Option<Vec<u8>> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    let mut opts = LzmaOptions::new_preset(level).ok()?;
    // The kernel sizes its dictionary from the block size (at least one metadata block);
    // a larger encoder dictionary would be rejected, a smaller one only costs ratio.
    opts.dict_size(block_size.max(crate::format::METADATA_SIZE as u32));
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc32).ok()?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::with_capacity(data.len()), stream);
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("gzip".parse(), Ok(Compression::Gzip { level: 9 }));
        assert_eq!("zstd:19".parse(), Ok(Compression::Zstd { level: 19 }));
        assert_eq!("xz".parse(), Ok(Compression::Xz { level: 6 }));
        assert_eq!("lz4".parse(), Ok(Compression::Lz4));
        assert!("gzip:0".parse::<Compression>().is_err());
        assert!("brotli".parse::<Compression>().is_err());
    }

    #[test]
    fn compressible_data_shrinks_and_random_data_does_not() {
        let text = b"squashfs ".repeat(1000);
        for c in [
            Compression::Gzip { level: 9 },
            Compression::Zstd { level: 3 },
            Compression::Xz { level: 1 },
            Compression::Lz4,
        ] {
            assert!(c.compress(&text, 131072).is_some(), "{c}");
        }
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(
            Compression::Gzip { level: 9 }
                .compress(&noise, 131072)
                .is_none()
        );
    }
}
