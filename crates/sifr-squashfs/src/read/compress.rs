//! Block decompressors for the compressor ids of SquashFS 4.0.
//!
//! Every call decompresses one whole block into a buffer whose size is capped by the caller
//! (8 KiB for metadata, the block size for data), so a hostile block can never inflate past
//! that cap. LZO is recognised but not built in and reported as unsupported. This module must
//! not read the image or cache any data; it keeps one gzip and one zstd decoder state per thread
//! (creating a zstd context per block was 2 % of the CPU of a cold launch over FUSE).

use std::cell::RefCell;

use super::error::{Error, Result};

thread_local! {
    static INFLATE: RefCell<Option<flate2::Decompress>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compressor named by the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compressor {
    /// zlib stream (id 1).
    Gzip,
    /// Legacy LZMA "alone" format (id 2).
    Lzma,
    /// LZO (id 3): recognised, not supported.
    Lzo,
    /// xz stream (id 4).
    Xz,
    /// LZ4 block format (id 5).
    Lz4,
    /// zstd frame (id 6).
    Zstd,
}

impl Compressor {
    pub(crate) fn from_id(id: u16) -> Result<Self> {
        Ok(match id {
            1 => Compressor::Gzip,
            2 => Compressor::Lzma,
            3 => return Err(Error::UnsupportedCompressor { id, name: "lzo" }),
            4 => Compressor::Xz,
            5 => Compressor::Lz4,
            6 => Compressor::Zstd,
            _ => {
                return Err(Error::UnsupportedCompressor {
                    id,
                    name: "unknown",
                });
            }
        })
    }

    /// The name mksquashfs uses for this compressor.
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Gzip => "gzip",
            Compressor::Lzma => "lzma",
            Compressor::Lzo => "lzo",
            Compressor::Xz => "xz",
            Compressor::Lz4 => "lz4",
            Compressor::Zstd => "zstd",
        }
    }

    /// Decompresses `input` (one block found at `offset`) into at most `cap` bytes.
    pub(crate) fn decompress(
        self,
        input: &[u8],
        cap: usize,
        what: &'static str,
        offset: u64,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decompress_into(input, cap, what, offset, &mut out)?;
        Ok(out)
    }

    /// Like [`Compressor::decompress`], into `out` (its contents replaced, its allocation
    /// reused when big enough).
    pub(crate) fn decompress_into(
        self,
        input: &[u8],
        cap: usize,
        what: &'static str,
        offset: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let fail = |reason: String| Error::Decompress {
            compressor: self.name(),
            what,
            offset,
            reason,
        };
        out.clear();
        out.reserve(cap);
        match self {
            Compressor::Gzip => INFLATE.with(|cell| {
                let mut cell = cell.borrow_mut();
                let d = match cell.as_mut() {
                    Some(d) => {
                        d.reset(true);
                        d
                    }
                    None => cell.insert(flate2::Decompress::new(true)),
                };
                // Every decoder here writes only into spare capacity, never past it; a
                // reused `out` may have more than `cap`, hence the length checks.
                match d.decompress_vec(input, out, flate2::FlushDecompress::Finish) {
                    Ok(flate2::Status::StreamEnd) if out.len() <= cap => Ok(()),
                    Ok(_) => Err(fail(format!("stream does not end within {cap} bytes"))),
                    Err(e) => Err(fail(e.to_string())),
                }
            }),
            Compressor::Xz | Compressor::Lzma => {
                // 256 MiB memory limit: far above what mksquashfs dictionaries need (at most the
                // 1 MiB block size), low enough that a hostile header cannot exhaust memory.
                let limit = 256 << 20;
                let stream = if self == Compressor::Xz {
                    liblzma::stream::Stream::new_stream_decoder(limit, 0)
                } else {
                    liblzma::stream::Stream::new_lzma_decoder(limit)
                };
                let mut s = stream.map_err(|e| fail(e.to_string()))?;
                match s.process_vec(input, out, liblzma::stream::Action::Finish) {
                    Ok(liblzma::stream::Status::StreamEnd) if out.len() <= cap => Ok(()),
                    Ok(_) => Err(fail(format!("stream does not end within {cap} bytes"))),
                    Err(e) => Err(fail(e.to_string())),
                }
            }
            Compressor::Lz4 => {
                out.resize(cap, 0);
                let n = lz4_flex::block::decompress_into(input, out)
                    .map_err(|e| fail(e.to_string()))?;
                out.truncate(n);
                Ok(())
            }
            Compressor::Zstd => ZSTD.with(|cell| {
                let mut cell = cell.borrow_mut();
                let z = match cell.as_mut() {
                    Some(z) => z,
                    None => cell
                        .insert(zstd::bulk::Decompressor::new().map_err(|e| fail(e.to_string()))?),
                };
                // Decoded into the vector's spare capacity: no zero-filling of `cap` bytes.
                z.decompress_to_buffer(input, out)
                    .map_err(|e| fail(e.to_string()))?;
                if out.len() > cap {
                    return Err(fail(format!("block decodes past {cap} bytes")));
                }
                Ok(())
            }),
            Compressor::Lzo => Err(Error::UnsupportedCompressor { id: 3, name: "lzo" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_larger_than_the_cap_is_an_error() {
        let data = vec![7u8; 20000];
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(
            Compressor::Zstd.decompress(&z, 20000, "t", 0).unwrap(),
            data
        );
        assert!(Compressor::Zstd.decompress(&z, 8192, "t", 0).is_err());
        let l = lz4_flex::block::compress(&data);
        assert!(Compressor::Lz4.decompress(&l, 8192, "t", 0).is_err());
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &data).unwrap();
        let g = e.finish().unwrap();
        assert_eq!(
            Compressor::Gzip.decompress(&g, 20000, "t", 0).unwrap(),
            data
        );
        assert!(Compressor::Gzip.decompress(&g, 8192, "t", 0).is_err());
        assert!(
            Compressor::Gzip
                .decompress(b"garbage", 8192, "t", 0)
                .is_err()
        );
        assert!(Compressor::Xz.decompress(b"garbage", 8192, "t", 0).is_err());
    }
}
