//! Finishing an image: resolve hard links, number inodes, write the inode and directory
//! tables, then the fragment, export, id and xattr tables, the superblock and padding.
//!
//! Table order is the kernel's: it validates each table against the start of the next
//! (xattr last, then ids, export, fragments, directories, inodes), so this order is fixed.
//! Inodes are numbered and written in one post-order walk (a directory's subdirectories,
//! then its other children by name, then the directory), which keeps most entries of a
//! directory header within one inode block and a small inode-number delta.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::compress::Compression;
use super::data::FileData;
use super::error::{Result, WriteError};
use super::meta::{MetaWriter, indexed_table};
use super::tree::{NodeKind, ROOT, Tree};
use super::{Options, Summary, Writer, Xattr};
use crate::format::{
    DIR_HEADER_MAX_ENTRIES, FragmentEntry, INVALID_FRAG, INVALID_TABLE, INVALID_XATTR, InodeHeader,
    METADATA_SIZE, Superblock, flags, inode_ref, inode_type as it, put_u16, put_u32, put_u64,
};

/// Image size is padded to a multiple of this (the kernel's device block size).
const PAD: u64 = 4096;

pub(super) fn finish<W: Write + Seek>(w: Writer<W>) -> Result<Summary> {
    let Writer {
        opts,
        data,
        mut tree,
        xattr_list,
        skipped_xattrs,
        max_mtime,
        ..
    } = w;
    let (comp, bs) = (opts.compression, opts.block_size);
    let (out, pos, fragments, files, stats) = data.into_parts()?;

    let inode_of = resolve_hard_links(&tree)?;
    tree.seal();
    let mut numbering = number_inodes(&tree, &inode_of)?;
    let ids = owner_ids(&tree, &numbering.order)?;
    let tables = InodeWriter {
        tree: &tree,
        files: &files,
        inode_of: &inode_of,
        ids: &ids,
        numbering: &mut numbering,
    }
    .write_inodes(comp, bs);
    let root_ref = tables.refs[ROOT as usize];

    let mut img = ImageOut { out, pos };
    let starts = write_tables(
        &mut img,
        &opts,
        tables,
        &numbering.order,
        &fragments,
        &ids,
        &xattr_list,
    )?;
    let bytes_used = img.pos;
    let padded = bytes_used.div_ceil(PAD) * PAD;
    img.put(&vec![0u8; (padded - bytes_used) as usize])?;

    let options = comp.options_record();
    let sb = Superblock {
        inode_count: numbering.inode_count,
        // With SOURCE_DATE_EPOCH the filesystem is dated by it, as mksquashfs dates it.
        modification_time: opts
            .mtime
            .or(opts.mtime_limit.map(|l| super::clamp_mtime(l, None)))
            .unwrap_or(max_mtime),
        block_size: bs,
        fragment_entry_count: fragments.len() as u32,
        compression_id: comp.id(),
        block_log: bs.trailing_zeros() as u16,
        flags: superblock_flags(&opts, !xattr_list.is_empty(), options.is_some()),
        id_count: ids.len() as u16,
        root_inode_ref: root_ref,
        bytes_used,
        id_table_start: starts.id,
        xattr_id_table_start: starts.xattr_id,
        inode_table_start: starts.inode,
        directory_table_start: starts.directory,
        fragment_table_start: starts.fragment,
        export_table_start: starts.export,
    };
    write_superblock(img.out, &sb, options.as_deref(), padded)?;
    Ok(Summary {
        bytes_used,
        image_size: padded,
        inodes: numbering.inode_count,
        fragments: fragments.len() as u32,
        data: stats,
        skipped_xattrs,
    })
}

/// Step 1: for every node, the node holding its inode (itself, or a hard link's final
/// target, followed at most 64 links deep).
fn resolve_hard_links(tree: &Tree) -> Result<Vec<u32>> {
    let mut inode_of: Vec<u32> = (0..tree.nodes.len() as u32).collect();
    for (id, node) in tree.nodes.iter().enumerate() {
        let NodeKind::HardLink(target) = &node.kind else {
            continue;
        };
        let mut t = tree.lookup(target);
        let mut hops = 0;
        while let Some(ti) = t {
            match &tree.nodes[ti as usize].kind {
                NodeKind::HardLink(next) if hops < 64 => {
                    t = tree.lookup(next);
                    hops += 1;
                }
                _ => break,
            }
        }
        let target_path = PathBuf::from(OsStr::from_bytes(target));
        match t.map(|t| (t, &tree.nodes[t as usize].kind)) {
            Some((_, NodeKind::Dir(_))) => {
                return Err(WriteError::HardLinkToDirectory {
                    path: tree.path_of(id as u32),
                    target: target_path,
                });
            }
            Some((t, k)) if !matches!(k, NodeKind::HardLink(_)) => inode_of[id] = t,
            _ => {
                return Err(WriteError::HardLinkTargetMissing {
                    path: tree.path_of(id as u32),
                    target: target_path,
                });
            }
        }
    }
    Ok(inode_of)
}

/// The post-order walk's results: the order inodes are numbered and written in.
struct Numbering {
    /// Inode-holding nodes in inode-number order.
    order: Vec<u32>,
    /// Node -> inode number (1-based; 0 for nodes that hold no inode).
    number: Vec<u32>,
    /// Node -> how many directory entries name its inode.
    nlink: Vec<u32>,
    /// Directory -> its children sorted by name; each is taken when its listing is written.
    children_of: HashMap<u32, Vec<u32>>,
    inode_count: u32,
}

fn is_dir(tree: &Tree, id: u32) -> bool {
    matches!(tree.nodes[id as usize].kind, NodeKind::Dir(_))
}

/// Step 2: number inodes in post-order (subdirectories, then the other children by name,
/// then the directory itself) and count links.
fn number_inodes(tree: &Tree, inode_of: &[u32]) -> Result<Numbering> {
    let n = tree.nodes.len();
    let mut order: Vec<u32> = Vec::new();
    let mut placed = vec![false; n];
    let mut nlink = vec![0u32; n];
    let mut children_of: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut stack: Vec<(u32, usize)> = vec![(ROOT, 0)];
    children_of.insert(ROOT, tree.sorted_children(ROOT));
    while let Some(&mut (dir, ref mut i)) = stack.last_mut() {
        let kids = &children_of[&dir];
        if let Some(j) = (*i..kids.len()).find(|&j| is_dir(tree, kids[j])) {
            *i = j + 1;
            let sub = kids[j];
            children_of.insert(sub, tree.sorted_children(sub));
            stack.push((sub, 0));
            continue;
        }
        stack.pop();
        for &c in &children_of[&dir] {
            let ino = inode_of[c as usize];
            nlink[ino as usize] += 1;
            if !is_dir(tree, ino) && !placed[ino as usize] {
                placed[ino as usize] = true;
                order.push(ino);
            }
        }
        order.push(dir);
    }
    if order.len() >= u32::MAX as usize {
        return Err(WriteError::TooManyInodes);
    }
    let inode_count = order.len() as u32;
    let mut number = vec![0u32; n];
    for (i, &id) in order.iter().enumerate() {
        number[id as usize] = i as u32 + 1;
    }
    Ok(Numbering {
        order,
        number,
        nlink,
        children_of,
        inode_count,
    })
}

/// Step 3: the owner id table, sorted so it does not depend on walk order.
fn owner_ids(tree: &Tree, order: &[u32]) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = order
        .iter()
        .flat_map(|&i| [tree.nodes[i as usize].uid, tree.nodes[i as usize].gid])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > 1 << 16 {
        return Err(WriteError::TooManyIds { count: ids.len() });
    }
    Ok(ids)
}

/// The inode and directory tables, still in memory, and each node's inode reference.
struct InodeTables {
    inodes: MetaWriter,
    dirs: MetaWriter,
    refs: Vec<u64>,
}

/// Step 4: encodes every inode (and every directory's listing) in inode-number order.
struct InodeWriter<'a> {
    tree: &'a Tree,
    files: &'a [FileData],
    inode_of: &'a [u32],
    ids: &'a [u32],
    numbering: &'a mut Numbering,
}

impl InodeWriter<'_> {
    fn write_inodes(mut self, comp: Compression, bs: u32) -> InodeTables {
        let mut t = InodeTables {
            inodes: MetaWriter::new(comp, bs),
            dirs: MetaWriter::new(comp, bs),
            refs: vec![0u64; self.tree.nodes.len()],
        };
        let mut buf = Vec::with_capacity(256);
        for k in 0..self.numbering.order.len() {
            let id = self.numbering.order[k];
            buf.clear();
            self.encode(id, &mut t, &mut buf);
            let (blk, off) = t.inodes.position();
            t.refs[id as usize] = inode_ref(blk, off);
            t.inodes.write(&buf);
        }
        t
    }

    fn id_idx(&self, v: u32) -> u16 {
        self.ids.binary_search(&v).unwrap_or(0) as u16
    }

    fn header(&self, id: u32, inode_type: u16) -> InodeHeader {
        let node = &self.tree.nodes[id as usize];
        InodeHeader {
            inode_type,
            permissions: node.mode,
            uid_idx: self.id_idx(node.uid),
            gid_idx: self.id_idx(node.gid),
            mtime: node.mtime,
            inode_number: self.numbering.number[id as usize],
        }
    }

    /// One inode into `buf`; the extended form only where a field needs it.
    fn encode(&mut self, id: u32, t: &mut InodeTables, buf: &mut Vec<u8>) {
        let tree = self.tree;
        let node = &tree.nodes[id as usize];
        let links = self.numbering.nlink[id as usize].max(1);
        let ext_needed =
            node.xattr != INVALID_XATTR || (links > 1 && !matches!(node.kind, NodeKind::Dir(_)));
        let small = |basic: u16, rdev: Option<u32>| SmallInode {
            basic,
            ext_needed,
            links,
            rdev,
            xattr: node.xattr,
        };
        match &node.kind {
            NodeKind::Dir(_) => self.encode_dir(id, ext_needed, t, buf),
            NodeKind::File(f) => {
                self.encode_file(id, &self.files[*f as usize], ext_needed, links, buf)
            }
            NodeKind::Symlink(target) => {
                self.header(
                    id,
                    if ext_needed {
                        it::EXT_SYMLINK
                    } else {
                        it::SYMLINK
                    },
                )
                .write_to(buf);
                put_u32(buf, links);
                put_u32(buf, target.len() as u32);
                buf.extend_from_slice(target);
                if ext_needed {
                    put_u32(buf, node.xattr);
                }
            }
            NodeKind::BlockDev(rdev) => {
                small(it::BLKDEV, Some(*rdev)).encode(self.header(id, 0), buf)
            }
            NodeKind::CharDev(rdev) => {
                small(it::CHRDEV, Some(*rdev)).encode(self.header(id, 0), buf)
            }
            NodeKind::Socket => small(it::SOCKET, None).encode(self.header(id, 0), buf),
            NodeKind::Fifo | NodeKind::HardLink(_) => {
                small(it::FIFO, None).encode(self.header(id, 0), buf)
            }
        }
    }

    fn encode_dir(&mut self, id: u32, ext_needed: bool, t: &mut InodeTables, buf: &mut Vec<u8>) {
        let tree = self.tree;
        let node = &tree.nodes[id as usize];
        let kids = self.numbering.children_of.remove(&id).unwrap_or_default();
        let listing = write_listing(
            tree,
            &kids,
            self.inode_of,
            &t.refs,
            &self.numbering.number,
            &mut t.dirs,
        );
        let subdirs = kids.iter().filter(|&&c| is_dir(tree, c)).count() as u32;
        let parent = if id == ROOT {
            self.numbering.inode_count + 1
        } else {
            self.numbering.number[node.parent as usize]
        };
        let size = listing.size + 3;
        if ext_needed || size > 0xFFFF || !listing.index.is_empty() {
            self.header(id, it::EXT_DIR).write_to(buf);
            put_u32(buf, 2 + subdirs);
            put_u32(buf, size);
            put_u32(buf, listing.block as u32);
            put_u32(buf, parent);
            put_u16(buf, listing.index_count);
            put_u16(buf, listing.offset);
            put_u32(buf, node.xattr);
            buf.extend_from_slice(&listing.index);
        } else {
            self.header(id, it::DIR).write_to(buf);
            put_u32(buf, listing.block as u32);
            put_u32(buf, 2 + subdirs);
            put_u16(buf, size as u16);
            put_u16(buf, listing.offset);
            put_u32(buf, parent);
        }
    }

    fn encode_file(&self, id: u32, f: &FileData, ext_needed: bool, links: u32, buf: &mut Vec<u8>) {
        let (frag, frag_off) = f.fragment.unwrap_or((INVALID_FRAG, 0));
        if ext_needed
            || f.sparse > 0
            || f.start > u64::from(u32::MAX)
            || f.size > u64::from(u32::MAX)
        {
            self.header(id, it::EXT_FILE).write_to(buf);
            put_u64(buf, f.start);
            put_u64(buf, f.size);
            put_u64(buf, f.sparse);
            put_u32(buf, links);
            put_u32(buf, frag);
            put_u32(buf, frag_off);
            put_u32(buf, self.tree.nodes[id as usize].xattr);
        } else {
            self.header(id, it::FILE).write_to(buf);
            put_u32(buf, f.start as u32);
            put_u32(buf, frag);
            put_u32(buf, frag_off);
            put_u32(buf, f.size as u32);
        }
        for &b in &f.blocks {
            put_u32(buf, b);
        }
    }
}

/// Devices, fifos and sockets: a link count, a device number for devices, and in the
/// extended form an xattr index.
struct SmallInode {
    basic: u16,
    ext_needed: bool,
    links: u32,
    rdev: Option<u32>,
    xattr: u32,
}

impl SmallInode {
    /// `header` carries everything but the type, which is filled in here.
    fn encode(&self, mut header: InodeHeader, buf: &mut Vec<u8>) {
        header.inode_type = if self.ext_needed {
            self.basic + it::EXTENDED_OFFSET
        } else {
            self.basic
        };
        header.write_to(buf);
        put_u32(buf, self.links);
        if let Some(rdev) = self.rdev {
            put_u32(buf, rdev);
        }
        if self.ext_needed {
            put_u32(buf, self.xattr);
        }
    }
}

/// The image output past the data, and where the next byte lands.
struct ImageOut<O: Write> {
    out: O,
    pos: u64,
}

impl<O: Write> ImageOut<O> {
    /// Appends `bytes`; returns where they start.
    fn put(&mut self, bytes: &[u8]) -> Result<u64> {
        let at = self.pos;
        self.out.write_all(bytes).map_err(WriteError::Output)?;
        self.pos += bytes.len() as u64;
        Ok(at)
    }

    /// Appends a table of fixed-size records behind its block index; returns the index's start.
    fn put_indexed(&mut self, comp: Compression, bs: u32, records: &[u8]) -> Result<u64> {
        let (t, at) = indexed_table(comp, bs, records, self.pos);
        Ok(self.put(&t)? + at as u64)
    }
}

/// Where each table starts, for the superblock.
struct TableStarts {
    inode: u64,
    directory: u64,
    fragment: u64,
    export: u64,
    id: u64,
    xattr_id: u64,
}

/// Step 5: every table, in the kernel's order.
fn write_tables<O: Write>(
    img: &mut ImageOut<O>,
    opts: &Options,
    tables: InodeTables,
    order: &[u32],
    fragments: &[FragmentEntry],
    ids: &[u32],
    xattr_list: &[Vec<(u16, Xattr)>],
) -> Result<TableStarts> {
    let (comp, bs) = (opts.compression, opts.block_size);
    let InodeTables { inodes, dirs, refs } = tables;
    let inode = img.put(&inodes.finish().0)?;
    let directory = img.put(&dirs.finish().0)?;

    let mut recs = Vec::with_capacity(fragments.len() * 16);
    for f in fragments {
        put_u64(&mut recs, f.start);
        put_u32(&mut recs, f.size);
        put_u32(&mut recs, 0);
    }
    let fragment = img.put_indexed(comp, bs, &recs)?;

    let export = if opts.exportable {
        let mut recs = Vec::with_capacity(order.len() * 8);
        for &id in order {
            put_u64(&mut recs, refs[id as usize]);
        }
        img.put_indexed(comp, bs, &recs)?
    } else {
        INVALID_TABLE
    };

    let mut recs = Vec::with_capacity(ids.len() * 4);
    for &i in ids {
        put_u32(&mut recs, i);
    }
    let id = img.put_indexed(comp, bs, &recs)?;

    let xattr_id = if xattr_list.is_empty() {
        INVALID_TABLE
    } else {
        write_xattr_tables(img, comp, bs, xattr_list)?
    };
    Ok(TableStarts {
        inode,
        directory,
        fragment,
        export,
        id,
        xattr_id,
    })
}

/// The xattr key/value blocks, the id table pointing into them and its header; returns the
/// header's start.
fn write_xattr_tables<O: Write>(
    img: &mut ImageOut<O>,
    comp: Compression,
    bs: u32,
    xattr_list: &[Vec<(u16, Xattr)>],
) -> Result<u64> {
    let mut kv = MetaWriter::new(comp, bs);
    let mut id_recs = Vec::with_capacity(xattr_list.len() * 16);
    for set in xattr_list {
        let (blk, off) = kv.position();
        // `size` is what listxattr returns plus the values: readers (squashfuse) size
        // buffers from it, so it must match squashfs-tools' accounting exactly.
        let mut listed = 0u32;
        for (t, x) in set {
            let prefix = match *t {
                crate::format::xattr_type::USER => 5,
                crate::format::xattr_type::TRUSTED => 8,
                _ => 9,
            };
            listed += prefix + x.name.len() as u32 + 1 + x.value.len() as u32;
            let mut e = Vec::with_capacity(8 + x.name.len() + x.value.len());
            put_u16(&mut e, *t);
            put_u16(&mut e, x.name.len() as u16);
            e.extend_from_slice(&x.name);
            put_u32(&mut e, x.value.len() as u32);
            e.extend_from_slice(&x.value);
            kv.write(&e);
        }
        put_u64(&mut id_recs, inode_ref(blk, off));
        put_u32(&mut id_recs, set.len() as u32);
        put_u32(&mut id_recs, listed);
    }
    let kv_start = img.put(&kv.finish().0)?;
    let mut idm = MetaWriter::new(comp, bs);
    idm.write(&id_recs);
    let (idb, starts) = idm.finish();
    let ids_at = img.put(&idb)?;
    let mut hdr = Vec::new();
    put_u64(&mut hdr, kv_start);
    put_u32(&mut hdr, xattr_list.len() as u32);
    put_u32(&mut hdr, 0);
    for s in starts {
        put_u64(&mut hdr, ids_at + s);
    }
    img.put(&hdr)
}

fn superblock_flags(opts: &Options, has_xattrs: bool, has_comp_options: bool) -> u16 {
    let mut fl = 0u16;
    if opts.dedup {
        fl |= flags::DUPLICATES;
    }
    if opts.exportable {
        fl |= flags::EXPORTABLE;
    }
    if !opts.fragments {
        fl |= flags::NO_FRAGMENTS;
    }
    if opts.tail_packing && opts.fragments {
        fl |= flags::ALWAYS_FRAGMENTS;
    }
    if !has_xattrs {
        fl |= flags::NO_XATTRS;
    }
    if has_comp_options {
        fl |= flags::COMPRESSOR_OPTIONS;
    }
    fl
}

/// Step 6: the superblock and compressor options at the start, then the cursor at the
/// padded end so a caller appending to the output lands after the image.
fn write_superblock<O: Write + Seek>(
    mut out: O,
    sb: &Superblock,
    options: Option<&[u8]>,
    padded: u64,
) -> Result<()> {
    let out_err = WriteError::Output;
    out.seek(SeekFrom::Start(0)).map_err(out_err)?;
    out.write_all(&sb.to_bytes()).map_err(out_err)?;
    if let Some(o) = options {
        // Compressor options are one metadata block, always stored uncompressed.
        out.write_all(&(o.len() as u16 | crate::format::METADATA_UNCOMPRESSED).to_le_bytes())
            .map_err(out_err)?;
        out.write_all(o).map_err(out_err)?;
    }
    out.seek(SeekFrom::Start(padded)).map_err(out_err)?;
    out.flush().map_err(out_err)?;
    Ok(())
}

/// Where a directory's listing was written and the index for its extended inode.
struct Listing {
    block: u64,
    offset: u16,
    size: u32,
    /// Encoded index entries and how many there are.
    index: Vec<u8>,
    index_count: u16,
}

/// Write one directory's entries as header-led runs. A run ends at 256 entries, when the
/// next child's inode lives in another inode block, when its number is out of i16 reach
/// of the run's base, or when the run would continue into the next metadata block; every
/// run starting in a new metadata block gets an index entry so lookups can skip ahead.
fn write_listing(
    tree: &Tree,
    kids: &[u32],
    inode_of: &[u32],
    refs: &[u64],
    number: &[u32],
    dirs: &mut MetaWriter,
) -> Listing {
    let (block, offset) = dirs.position();
    let start_total = dirs.total();
    let mut index = Vec::new();
    let mut index_count = 0u16;
    let mut last_indexed_block = start_total / METADATA_SIZE as u64;
    let mut i = 0;
    while i < kids.len() {
        let first = inode_of[kids[i] as usize] as usize;
        let run_block = refs[first] >> 16;
        let base = number[first];
        let header_at = dirs.total();
        let header_pos = dirs.position();
        // Measure the run before writing its header.
        let mut j = i;
        let mut at = header_at + 12;
        while j < kids.len() && j - i < DIR_HEADER_MAX_ENTRIES {
            let ino = inode_of[kids[j] as usize] as usize;
            let delta = i64::from(number[ino]) - i64::from(base);
            if refs[ino] >> 16 != run_block
                || !(-32768..=32767).contains(&delta)
                || (j > i && at / METADATA_SIZE as u64 != header_at / METADATA_SIZE as u64)
            {
                break;
            }
            at += 8 + tree.nodes[kids[j] as usize].name.len() as u64;
            j += 1;
        }
        if header_at / METADATA_SIZE as u64 != last_indexed_block {
            last_indexed_block = header_at / METADATA_SIZE as u64;
            let name = &tree.nodes[kids[i] as usize].name;
            index_count += 1;
            put_u32(&mut index, (header_at - start_total) as u32);
            put_u32(&mut index, header_pos.0 as u32);
            put_u32(&mut index, name.len() as u32 - 1);
            index.extend_from_slice(name);
        }
        let mut run = Vec::with_capacity((at - header_at) as usize);
        put_u32(&mut run, (j - i - 1) as u32);
        put_u32(&mut run, run_block as u32);
        put_u32(&mut run, base);
        for &k in &kids[i..j] {
            let ino = inode_of[k as usize] as usize;
            let node = &tree.nodes[k as usize];
            put_u16(&mut run, (refs[ino] & 0xFFFF) as u16);
            put_u16(
                &mut run,
                (i64::from(number[ino]) - i64::from(base)) as i16 as u16,
            );
            put_u16(&mut run, basic_type(&tree.nodes[ino].kind));
            put_u16(&mut run, node.name.len() as u16 - 1);
            run.extend_from_slice(&node.name);
        }
        dirs.write(&run);
        i = j;
    }
    Listing {
        block,
        offset,
        size: (dirs.total() - start_total) as u32,
        index,
        index_count,
    }
}

fn basic_type(k: &NodeKind) -> u16 {
    match k {
        NodeKind::Dir(_) => it::DIR,
        NodeKind::File(_) => it::FILE,
        NodeKind::Symlink(_) => it::SYMLINK,
        NodeKind::BlockDev(_) => it::BLKDEV,
        NodeKind::CharDev(_) => it::CHRDEV,
        NodeKind::Socket => it::SOCKET,
        NodeKind::Fifo | NodeKind::HardLink(_) => it::FIFO,
    }
}
