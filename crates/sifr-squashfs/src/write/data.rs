//! The data section: file contents cut into blocks, compressed on a worker pool and written
//! in submission order, tails packed into fragment blocks, all-zero blocks stored as
//! sparse, and whole files deduplicated by content.
//!
//! Determinism: the layout depends only on the order of `add_*` calls. Workers only turn
//! bytes into compressed bytes; the calling thread assigns sequence numbers and writes
//! results strictly in that order, so any thread count yields the same image.
//! Memory: at most `window` blocks are in flight, one fragment block is open, and a file
//! is held whole only when it is at most `SMALL_FILE` bytes (to hash it before writing).
//! This module must not touch the tree or the metadata tables.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use sha2::{Digest, Sha256};

use super::Options;
use super::compress::Compression;
use super::error::{Result, WriteError};
use crate::format::{DATA_UNCOMPRESSED, FragmentEntry};

/// Files up to this size are read whole, hashed and compared before any block is written,
/// so a duplicate costs nothing in the image. Larger path-backed files are hashed in a
/// first pass; larger streamed files are written as they come and are not deduplicated
/// against earlier files (they can still be the original for later ones).
const SMALL_FILE: u64 = 8 << 20;

/// Where one file's contents ended up.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileData {
    pub size: u64,
    /// Absolute offset of the first stored block (0 when every block is sparse or empty).
    pub start: u64,
    /// One size word per block that is not in a fragment (0 = sparse).
    pub blocks: Vec<u32>,
    /// Fragment block index and offset inside it, if the tail is in a fragment.
    pub fragment: Option<(u32, u32)>,
    pub sparse: u64,
}

/// Counters for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Regular files added (hard links excluded).
    pub files: u64,
    /// Bytes of file content read.
    pub bytes_in: u64,
    /// Files whose content was found earlier in the image and stored once.
    pub duplicate_files: u64,
    pub duplicate_bytes: u64,
    /// Bytes in all-zero blocks stored as holes.
    pub sparse_bytes: u64,
}

/// How a file's bytes are handed to the writer.
pub enum FileSource<'a> {
    /// No content (size 0).
    Empty,
    Bytes(&'a [u8]),
    /// A host file, opened without following a final symlink; lets duplicates be verified
    /// byte-for-byte by re-reading the earlier file.
    Path(&'a Path),
    /// A stream read to its end (a tar entry, a decompressing reader).
    Reader(&'a mut dyn Read),
}

enum Target {
    Data { file: u32, index: u32 },
    Fragment,
}

struct Candidate {
    file: u32,
    path: Option<PathBuf>,
}

/// What lstat says about a host file; if any of it changed, its contents may have (ctime
/// moves on every write and cannot be set back by users).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp([i64; 7]);

impl Stamp {
    pub(crate) fn of(md: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp([
            md.dev() as i64,
            md.ino() as i64,
            md.size() as i64,
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
        ])
    }
}

/// A stored file that is the only one of its size so far, so it was not hashed; it is
/// hashed (re-read) only if another file of that size turns up.
struct Unhashed {
    file: u32,
    path: PathBuf,
    stamp: Stamp,
}

/// A small host file's contents read ahead by the directory walk, with its SHA-256 when the
/// walk already knew it would be needed.
pub(crate) struct Prefetched<'a> {
    pub data: &'a [u8],
    pub hash: Option<[u8; 32]>,
    pub path: &'a Path,
    pub stamp: Stamp,
}

type Done = (u64, Vec<u8>, Option<Vec<u8>>);

pub(crate) struct Pipeline<W: Write + Seek> {
    out: io::BufWriter<W>,
    pos: u64,
    comp: Compression,
    block_size: u32,
    fragments_on: bool,
    tail_packing: bool,
    dedup: bool,
    pool: super::workers::Workers,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    next_seq: u64,
    next_write: u64,
    targets: VecDeque<Target>,
    ready: BTreeMap<u64, (Vec<u8>, Option<Vec<u8>>)>,
    window: u64,
    frag_buf: Vec<u8>,
    fragments: Vec<FragmentEntry>,
    /// Fragment blocks sealed so far (written or in flight): the open block's index.
    sealed_fragments: u32,
    files: Vec<FileData>,
    seen: HashMap<(u64, [u8; 32]), Candidate>,
    /// Sizes of all files in `seen` or `unhashed`: a size not in here cannot be a duplicate.
    sizes: HashSet<u64>,
    unhashed: HashMap<u64, Unhashed>,
    stats: DataStats,
}

fn out_err(e: io::Error) -> WriteError {
    WriteError::Output(e)
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(crate) fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        // NONBLOCK: a FIFO swapped in after lstat must not hang the walk.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn same_file_contents(a: &Path, b: &mut dyn Read) -> io::Result<bool> {
    let mut fa = open_nofollow(a)?;
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(b, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

impl<W: Write + Seek> Pipeline<W> {
    pub(crate) fn new(out: W, opts: &Options, header_len: u64) -> Result<Self> {
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        let pool = super::workers::Workers::new(threads, "sqfs-compress")
            .map_err(WriteError::ThreadPool)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut out = io::BufWriter::with_capacity(1 << 20, out);
        // Reserve the superblock and compressor options; the superblock is rewritten last.
        out.write_all(&vec![0u8; header_len as usize])
            .map_err(out_err)?;
        Ok(Pipeline {
            out,
            pos: header_len,
            comp: opts.compression,
            block_size: opts.block_size,
            fragments_on: opts.fragments,
            tail_packing: opts.tail_packing,
            dedup: opts.dedup,
            pool,
            tx,
            rx,
            next_seq: 0,
            next_write: 0,
            targets: VecDeque::new(),
            ready: BTreeMap::new(),
            // Enough blocks in flight to keep every worker busy while the caller waits for
            // the oldest one: a worker preempted on a shared machine then stalls the
            // writer only after the others have run 16 blocks each ahead (about 4 MiB of
            // raw + compressed data per thread).
            window: (threads as u64) * 16 + 32,
            frag_buf: Vec::new(),
            fragments: Vec::new(),
            sealed_fragments: 0,
            files: Vec::new(),
            seen: HashMap::new(),
            sizes: HashSet::new(),
            unhashed: HashMap::new(),
            stats: DataStats::default(),
        })
    }

    /// Write everything still in flight and hand back the output (positioned at the end of
    /// the data), the fragment table, the file table and the counters.
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_parts(
        mut self,
    ) -> Result<(
        io::BufWriter<W>,
        u64,
        Vec<FragmentEntry>,
        Vec<FileData>,
        DataStats,
    )> {
        self.seal_fragment();
        self.drain(0)?;
        Ok((self.out, self.pos, self.fragments, self.files, self.stats))
    }

    /// Compress and write a file's contents; returns its index in `files`.
    /// What has been added so far.
    pub(crate) fn stats(&self) -> DataStats {
        self.stats
    }

    pub(crate) fn add_file(&mut self, src: FileSource<'_>, image_path: &Path) -> Result<u32> {
        self.stats.files += 1;
        match src {
            FileSource::Empty => self.new_file(),
            FileSource::Bytes(b) => self.add_small(b, None),
            FileSource::Path(p) => {
                let mut f = open_nofollow(p).map_err(|e| WriteError::read(p, e))?;
                let len = f.metadata().map_err(|e| WriteError::read(p, e))?.len();
                if len <= SMALL_FILE {
                    let mut buf = Vec::with_capacity(len as usize);
                    f.read_to_end(&mut buf)
                        .map_err(|e| WriteError::read(p, e))?;
                    return self.add_small(&buf, Some(p));
                }
                let mut key = None;
                if self.dedup {
                    let (size, hash) = hash_stream(&mut f).map_err(|e| WriteError::read(p, e))?;
                    if let Some(id) = self.find_duplicate_of_path(size, hash, p)? {
                        return Ok(id);
                    }
                    key = Some((size, hash));
                    f.seek(SeekFrom::Start(0))
                        .map_err(|e| WriteError::read(p, e))?;
                }
                let (id, size, hash) = self.stream(&[], &mut f, p)?;
                self.remember(key.unwrap_or((size, hash)), id, Some(p));
                Ok(id)
            }
            FileSource::Reader(r) => {
                let mut head = Vec::new();
                let mut limited = r.take(SMALL_FILE + 1);
                limited
                    .read_to_end(&mut head)
                    .map_err(|e| WriteError::read(image_path, e))?;
                let r = limited.into_inner();
                if head.len() as u64 <= SMALL_FILE {
                    return self.add_small(&head, None);
                }
                let (id, size, hash) = self.stream(&head, r, image_path)?;
                self.remember((size, hash), id, None);
                Ok(id)
            }
        }
    }

    fn new_file(&mut self) -> Result<u32> {
        let id = self.files.len() as u32;
        self.files.push(FileData::default());
        Ok(id)
    }

    fn remember(&mut self, key: (u64, [u8; 32]), file: u32, path: Option<&Path>) {
        if self.dedup && key.0 > 0 {
            // An unhashed earlier file of this size goes first, as if hashed when stored.
            self.hash_unhashed(key.0);
            self.sizes.insert(key.0);
            self.seen.entry(key).or_insert(Candidate {
                file,
                path: path.map(Path::to_path_buf),
            });
        }
    }

    fn find_duplicate_of_path(
        &mut self,
        size: u64,
        hash: [u8; 32],
        p: &Path,
    ) -> Result<Option<u32>> {
        self.hash_unhashed(size);
        let Some(c) = self.seen.get(&(size, hash)) else {
            return Ok(None);
        };
        let same = match &c.path {
            Some(cp) => {
                let mut f = open_nofollow(p).map_err(|e| WriteError::read(p, e))?;
                same_file_contents(cp, &mut f).map_err(|e| WriteError::read(cp, e))?
            }
            // The earlier copy came from a stream and cannot be re-read: SHA-256 and size.
            None => true,
        };
        let file = c.file;
        Ok(same.then(|| self.hit(file, size)))
    }

    fn hit(&mut self, file: u32, size: u64) -> u32 {
        self.stats.duplicate_files += 1;
        self.stats.duplicate_bytes += size;
        self.stats.bytes_in += size;
        file
    }

    fn add_small(&mut self, data: &[u8], path: Option<&Path>) -> Result<u32> {
        self.add_small_hashed(data, None, path)
    }

    /// Add contents read ahead of time by the walk's reader thread.
    ///
    /// Hashing is lazy, as in mksquashfs (which compares checksums only on a size match):
    /// a file whose size no earlier file has is stored without hashing it, and hashed by
    /// re-reading it only when a second file of that size arrives. Dedup decisions are the
    /// same as hashing every file, unless the earlier file changed in the meantime (its
    /// `Stamp` differs), in which case it is simply not a dedup target.
    pub(crate) fn add_loaded(&mut self, f: Prefetched<'_>) -> Result<u32> {
        self.stats.files += 1;
        let size = f.data.len() as u64;
        if self.dedup && f.hash.is_none() && size > 0 && !self.sizes.contains(&size) {
            let id = self.store_slice(f.data)?;
            self.sizes.insert(size);
            self.unhashed.insert(
                size,
                Unhashed {
                    file: id,
                    path: f.path.to_path_buf(),
                    stamp: f.stamp,
                },
            );
            return Ok(id);
        }
        self.add_small_hashed(f.data, f.hash, Some(f.path))
    }

    /// Hash the unhashed file of `size`, if any, and make it a dedup candidate.
    fn hash_unhashed(&mut self, size: u64) {
        let Some(u) = self.unhashed.remove(&size) else {
            return;
        };
        let unchanged =
            std::fs::symlink_metadata(&u.path).is_ok_and(|md| Stamp::of(&md) == u.stamp);
        if !unchanged {
            return;
        }
        if let Some(Ok((data, Some(hash)))) = read_small(&u.path, size, Hashing::Compute)
            && data.len() as u64 == size
        {
            self.seen.entry((size, hash)).or_insert(Candidate {
                file: u.file,
                path: Some(u.path),
            });
        }
    }

    fn add_small_hashed(
        &mut self,
        data: &[u8],
        hash: Option<[u8; 32]>,
        path: Option<&Path>,
    ) -> Result<u32> {
        if data.is_empty() {
            return self.new_file();
        }
        let mut key = None;
        if self.dedup {
            let hash: [u8; 32] = hash.unwrap_or_else(|| Sha256::digest(data).into());
            let k = (data.len() as u64, hash);
            self.hash_unhashed(k.0);
            if let Some(c) = self.seen.get(&k) {
                let same = match &c.path {
                    Some(cp) => same_file_contents(cp, &mut &data[..])
                        .map_err(|e| WriteError::read(cp, e))?,
                    None => true,
                };
                if same {
                    return Ok(self.hit(c.file, data.len() as u64));
                }
            }
            key = Some(k);
        }
        let id = self.store_slice(data)?;
        if let Some(k) = key {
            self.remember(k, id, path);
        }
        Ok(id)
    }

    /// Store contents that are already in memory: full blocks go to the workers, the tail
    /// is copied straight into the open fragment block (no per-file block allocation).
    fn store_slice(&mut self, data: &[u8]) -> Result<u32> {
        let id = self.new_file()?;
        let bs = self.block_size as usize;
        for (index, chunk) in data.chunks(bs).enumerate() {
            let is_tail = chunk.len() < bs;
            if is_tail && self.fragments_on && (self.tail_packing || index == 0) {
                self.add_fragment(id, chunk)?;
            } else {
                self.data_block(id, index as u32, chunk.to_vec())?;
            }
        }
        self.files[id as usize].size = data.len() as u64;
        self.stats.bytes_in += data.len() as u64;
        Ok(id)
    }

    /// Record one data block of `file`: all-zero blocks become holes, others are compressed.
    fn data_block(&mut self, file: u32, index: u32, block: Vec<u8>) -> Result<()> {
        self.files[file as usize].blocks.push(0);
        if block.iter().all(|&b| b == 0) {
            self.files[file as usize].sparse += block.len() as u64;
            self.stats.sparse_bytes += block.len() as u64;
            Ok(())
        } else {
            self.submit(Target::Data { file, index }, block)
        }
    }

    /// Cut `head` followed by `rest` into blocks and submit them; returns (file, size, sha256).
    fn stream(
        &mut self,
        head: &[u8],
        rest: &mut dyn Read,
        path: &Path,
    ) -> Result<(u32, u64, [u8; 32])> {
        let id = self.new_file()?;
        let bs = self.block_size as usize;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head = head;
        let mut index = 0u32;
        loop {
            // Not zero-filled: only what is read is ever part of the block.
            let mut block = Vec::with_capacity(bs);
            let take = head.len().min(bs);
            block.extend_from_slice(&head[..take]);
            head = &head[take..];
            if block.len() < bs {
                (&mut *rest)
                    .take((bs - block.len()) as u64)
                    .read_to_end(&mut block)
                    .map_err(|e| WriteError::read(path, e))?;
            }
            let n = block.len();
            if n == 0 {
                break;
            }
            hasher.update(&block);
            size += n as u64;
            let is_tail = n < bs;
            if is_tail && self.fragments_on && (self.tail_packing || index == 0) {
                self.add_fragment(id, &block)?;
                break;
            }
            self.data_block(id, index, block)?;
            index += 1;
            if is_tail {
                break;
            }
        }
        self.files[id as usize].size = size;
        self.stats.bytes_in += size;
        Ok((id, size, hasher.finalize().into()))
    }

    fn add_fragment(&mut self, file: u32, tail: &[u8]) -> Result<()> {
        if self.frag_buf.len() + tail.len() > self.block_size as usize {
            self.seal_fragment_submit()?;
        }
        self.files[file as usize].fragment =
            Some((self.sealed_fragments, self.frag_buf.len() as u32));
        self.frag_buf.extend_from_slice(tail);
        Ok(())
    }

    fn seal_fragment_submit(&mut self) -> Result<()> {
        if self.frag_buf.is_empty() {
            return Ok(());
        }
        self.sealed_fragments += 1;
        let block = std::mem::take(&mut self.frag_buf);
        self.submit(Target::Fragment, block)
    }

    /// Seal the last fragment block without waiting (the caller drains next).
    fn seal_fragment(&mut self) {
        if !self.frag_buf.is_empty() {
            self.sealed_fragments += 1;
            let block = std::mem::take(&mut self.frag_buf);
            self.targets.push_back(Target::Fragment);
            self.spawn(block);
        }
    }

    fn spawn(&mut self, block: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tx = self.tx.clone();
        let comp = self.comp;
        let bs = self.block_size;
        self.pool.spawn(move || {
            let c = comp.compress(&block, bs);
            // The receiver lives as long as the pipeline; a send error means it is gone.
            let _ = tx.send((seq, block, c));
        });
    }

    fn submit(&mut self, target: Target, block: Vec<u8>) -> Result<()> {
        self.targets.push_back(target);
        self.spawn(block);
        self.drain(self.window)
    }

    /// Write finished blocks in order until at most `keep` remain in flight.
    fn drain(&mut self, keep: u64) -> Result<()> {
        while self.next_seq - self.next_write > keep {
            let (raw, comp) = match self.ready.remove(&self.next_write) {
                Some(r) => r,
                None => {
                    let (seq, raw, c) = self
                        .rx
                        .recv()
                        .map_err(|_| out_err(io::Error::other("compression worker vanished")))?;
                    self.ready.insert(seq, (raw, c));
                    continue;
                }
            };
            self.next_write += 1;
            let (bytes, word) = match &comp {
                Some(c) => (&c[..], c.len() as u32),
                None => (&raw[..], raw.len() as u32 | DATA_UNCOMPRESSED),
            };
            let at = self.pos;
            self.out.write_all(bytes).map_err(out_err)?;
            self.pos += bytes.len() as u64;
            match self.targets.pop_front() {
                Some(Target::Data { file, index }) => {
                    let f = &mut self.files[file as usize];
                    if f.blocks[..index as usize].iter().all(|&w| w == 0) {
                        f.start = at;
                    }
                    f.blocks[index as usize] = word;
                }
                Some(Target::Fragment) => self.fragments.push(FragmentEntry {
                    start: at,
                    size: word,
                }),
                None => {}
            }
        }
        Ok(())
    }
}

/// A small file read ahead: its bytes and, if asked for, SHA-256.
pub(crate) type Loaded = (Vec<u8>, Option<[u8; 32]>);

/// Whether [`read_small`] hashes what it read (for finding duplicates).
#[derive(Clone, Copy)]
pub(crate) enum Hashing {
    Compute,
    Skip,
}

/// Read a whole host file of at most `SMALL_FILE` bytes and hash it (if asked), for the
/// directory walk's reader thread; a file over that size (or that grew past it) gives
/// `None` and is streamed later by the caller.
/// `len` is the size lstat saw: the buffer is allocated once at that size (plus the byte
/// that detects growth) instead of growing by doubling and copying.
pub(crate) fn read_small(path: &Path, len: u64, hashing: Hashing) -> Option<io::Result<Loaded>> {
    if len > SMALL_FILE {
        return None;
    }
    let mut f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let mut buf = Vec::with_capacity(len as usize + 1);
    match (&mut f).take(SMALL_FILE + 1).read_to_end(&mut buf) {
        Ok(n) if n as u64 > SMALL_FILE => None,
        Ok(_) => {
            let h = matches!(hashing, Hashing::Compute).then(|| Sha256::digest(&buf).into());
            Some(Ok((buf, h)))
        }
        Err(e) => Some(Err(e)),
    }
}

fn hash_stream(r: &mut dyn Read) -> io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finalize().into()))
}
