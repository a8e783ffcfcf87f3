//! Layer sources for the merger: something that can be opened (more than once) as a
//! possibly compressed tar stream, plus decompression by magic number and the guard that
//! bounds how many bytes tar metadata may occupy.
//!
//! Compression is detected from the first bytes rather than the media type: registries and
//! `docker save` archives are known to mislabel layers (gzip served as `.tar`), and the
//! magic numbers of gzip (`1f 8b`) and zstd (`28 b5 2f fd`) cannot start a tar header's
//! name field in practice.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::rc::Rc;

use crate::digest::{Digest, VerifyingReader};

/// A layer the merger can open, possibly twice (a rare hard-link case re-reads a layer).
pub trait Layer {
    /// How errors name this layer (its digest, or its path in an archive).
    fn describe(&self) -> String;
    /// The raw (possibly compressed) tar bytes from the start.
    fn open(&self) -> io::Result<Box<dyn Read + '_>>;
}

/// A layer blob in a file (the blob cache, an OCI layout) or a window of one (a member of
/// an uncompressed tar archive), optionally verified against its digest as it is read.
#[derive(Debug, Clone)]
pub struct FileLayer {
    pub path: PathBuf,
    /// What errors call it, e.g. its digest.
    pub name: String,
    /// `(offset, length)` of the blob inside the file; `None` for the whole file.
    pub window: Option<(u64, u64)>,
    /// Expected digest (and size) of the raw blob bytes; checked when the stream ends.
    pub verify: Option<(Digest, Option<u64>)>,
}

impl FileLayer {
    pub fn new(path: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        FileLayer {
            path: path.into(),
            name: name.into(),
            window: None,
            verify: None,
        }
    }
}

/// The layers of a manifest to merge: a blob listed more than once (the same file and window,
/// so the same bytes) keeps only its newest occurrence, in manifest order. That is exact for
/// [`super::merge`], which goes newest first: every path an older copy holds is already
/// delivered, whited out or made opaque by the newer one, whose whiteouts also reach everything
/// below the older copy. A manifest listing one layer 2 000 times merges it once.
pub fn newest_occurrences(layers: &[FileLayer]) -> Vec<&dyn Layer> {
    let key = |l: &FileLayer| (l.path.clone(), l.window);
    let mut last = std::collections::HashMap::new();
    for (i, l) in layers.iter().enumerate() {
        last.insert(key(l), i);
    }
    layers
        .iter()
        .enumerate()
        .filter(|(i, l)| last.get(&key(l)) == Some(i))
        .map(|(_, l)| l as &dyn Layer)
        .collect()
}

impl Layer for FileLayer {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        let mut f = File::open(&self.path)?;
        let raw: Box<dyn Read> = match self.window {
            Some((offset, len)) => {
                f.seek(SeekFrom::Start(offset))?;
                Box::new(f.take(len))
            }
            None => Box::new(f),
        };
        Ok(match self.verify {
            Some((digest, size)) => Box::new(VerifyingReader::new(raw, digest, size)),
            None => raw,
        })
    }
}

/// A layer held in memory (tests, small archives).
#[derive(Debug, Clone)]
pub struct MemoryLayer {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl MemoryLayer {
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        MemoryLayer {
            name: name.into(),
            bytes,
        }
    }
}

impl Layer for MemoryLayer {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(&self.bytes[..]))
    }
}

/// Compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Wrap `raw` in the decompressor its first bytes call for.
pub fn decompress<'a>(raw: Box<dyn Read + 'a>) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut buf = BufReader::with_capacity(64 * 1024, raw);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        (
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        )
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (
            Compression::Zstd,
            Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
        )
    } else {
        (Compression::None, Box::new(buf))
    })
}

/// Counts bytes read while "armed" and fails once they pass a budget. The merger arms it
/// around each `next()` of the tar iterator, where the tar crate reads headers, GNU long
/// names and PAX records into memory with no limit of its own; entry data (read disarmed)
/// is streamed and does not count. Shared through `Rc` because the archive owns the reader.
#[derive(Clone, Default)]
pub(crate) struct MetaBudget {
    state: Rc<Cell<(bool, u64)>>,
}

impl MetaBudget {
    pub(crate) fn arm(&self) {
        self.state.set((true, 0));
    }
    pub(crate) fn disarm(&self) {
        self.state.set((false, 0));
    }
    pub(crate) fn guard<R: Read>(&self, inner: R, limit: u64) -> Guarded<R> {
        Guarded {
            inner,
            state: self.state.clone(),
            limit,
        }
    }
}

pub(crate) struct Guarded<R> {
    inner: R,
    state: Rc<Cell<(bool, u64)>>,
    limit: u64,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (armed, used) = self.state.get();
        if !armed {
            return self.inner.read(buf);
        }
        if used >= self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tar metadata of one entry exceeds {} bytes", self.limit),
            ));
        }
        // Never read past the budget, so an oversized record fails before it is buffered.
        let room = (self.limit - used).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.state.set((true, used + n as u64));
        Ok(n)
    }
}

/// Lets a layer end right after its last entry's data, without the padding to the next
/// 512-byte block and without the end-of-archive blocks: Go's `archive/tar` (Apptainer's and
/// containerd's unpackers, `umoci unpack`) takes the end of the stream there as the end of the
/// archive, and Debian 12's `umoci insert` writes such layers. The tar crate fails instead
/// ("unexpected EOF during skip") while skipping the missing padding.
///
/// The merger tells it where the entry it has just read in full ends ([`TailPad::entry_end`]);
/// only a stream that ends exactly there reads as if the padding were present. A stream that
/// ends anywhere else (a truncated entry) still fails.
#[derive(Clone, Default)]
pub(crate) struct TailPad {
    /// Bytes handed to the tar reader so far, and where the last full entry's data ends.
    state: Rc<Cell<(u64, Option<u64>)>>,
}

impl TailPad {
    pub(crate) fn wrap<R: Read>(&self, inner: R) -> Padded<R> {
        Padded {
            inner,
            state: self.state.clone(),
            pad_left: 0,
        }
    }

    /// The entry whose data starts at `data_start` and is `size` bytes long was read in full.
    pub(crate) fn entry_end(&self, data_start: u64, size: u64) {
        let (pos, _) = self.state.get();
        self.state.set((pos, Some(data_start + size)));
    }
}

pub(crate) struct Padded<R> {
    inner: R,
    state: Rc<Cell<(u64, Option<u64>)>>,
    pad_left: usize,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (pos, end) = self.state.get();
        if self.pad_left == 0 && !buf.is_empty() {
            let n = self.inner.read(buf)?;
            if n > 0 || pos % 512 == 0 || end != Some(pos) {
                self.state.set((pos + n as u64, end));
                return Ok(n);
            }
            // The stream ended right after an entry's data: its padding, then the end.
            self.pad_left = (512 - pos % 512) as usize;
            self.state.set((pos, None));
        }
        let n = self.pad_left.min(buf.len());
        buf[..n].fill(0);
        self.pad_left -= n;
        let (pos, end) = self.state.get();
        self.state.set((pos + n as u64, end));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_layer_is_merged_once_at_its_newest_place() {
        let l = |p: &str| FileLayer::new(p, p);
        let names = |layers: &[FileLayer]| -> Vec<String> {
            newest_occurrences(layers)
                .iter()
                .map(|x| x.describe())
                .collect()
        };
        let mut layers = vec![l("base")];
        layers.extend((0..2000).map(|_| l("same")));
        layers.push(l("top"));
        assert_eq!(names(&layers), ["base", "same", "top"]);
        // A copy above another layer stays above it.
        assert_eq!(names(&[l("a"), l("b"), l("a")]), ["b", "a"]);
        // The same file at two windows (two blobs of one archive) is two layers.
        let mut w1 = l("archive");
        w1.window = Some((0, 10));
        let mut w2 = l("archive");
        w2.window = Some((10, 10));
        assert_eq!(newest_occurrences(&[w1, w2]).len(), 2);
    }

    use std::io::Write;

    #[test]
    fn detects_gzip_zstd_and_plain() {
        let plain = b"plain tar bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        for (bytes, want) in [
            (&plain, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let (c, mut r) = decompress(Box::new(&bytes[..])).unwrap();
            assert_eq!(c, want);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn budget_fails_only_while_armed() {
        let budget = MetaBudget::default();
        let data = [7u8; 100];
        let mut g = budget.guard(&data[..], 10);
        let mut buf = [0u8; 64];
        assert_eq!(g.read(&mut buf).unwrap(), 64);
        budget.arm();
        assert_eq!(g.read(&mut buf).unwrap(), 10);
        let e = g.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        budget.disarm();
        assert_eq!(g.read(&mut buf).unwrap(), 26);
    }
}
