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

use super::error::{Result, WriteError};
use super::meta::{MetaWriter, indexed_table};
use super::tree::{NodeKind, ROOT, Tree};
use super::{Summary, Writer};
use crate::format::{
    DIR_HEADER_MAX_ENTRIES, INVALID_FRAG, INVALID_TABLE, INVALID_XATTR, InodeHeader, METADATA_SIZE,
    Superblock, flags, inode_ref, inode_type as it, put_u16, put_u32, put_u64,
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
    let comp = opts.compression;
    let bs = opts.block_size;
    let (mut out, mut pos, fragments, files, stats) = data.into_parts()?;
    let out_err = WriteError::Output;

    // 1. Hard links -> the node holding the inode; link counts.
    let n = tree.nodes.len();
    let mut inode_of: Vec<u32> = (0..n as u32).collect();
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
    tree.seal();

    // 2. Post-order: the order inodes are numbered and written in.
    let mut order: Vec<u32> = Vec::new();
    let mut placed = vec![false; n];
    let mut nlink = vec![0u32; n];
    let mut children_of: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut stack: Vec<(u32, usize)> = vec![(ROOT, 0)];
    children_of.insert(ROOT, tree.sorted_children(ROOT));
    while let Some(&mut (dir, ref mut i)) = stack.last_mut() {
        let kids = &children_of[&dir];
        if let Some(j) = (*i..kids.len())
            .find(|&j| matches!(tree.nodes[kids[j] as usize].kind, NodeKind::Dir(_)))
        {
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
            if !matches!(tree.nodes[ino as usize].kind, NodeKind::Dir(_)) && !placed[ino as usize] {
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

    // 3. Owner ids, sorted so the table does not depend on walk order.
    let mut ids: Vec<u32> = order
        .iter()
        .flat_map(|&i| [tree.nodes[i as usize].uid, tree.nodes[i as usize].gid])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > 1 << 16 {
        return Err(WriteError::TooManyIds { count: ids.len() });
    }
    let id_idx = |v: u32| ids.binary_search(&v).unwrap_or(0) as u16;

    // 4. Inode and directory tables.
    let mut inodes = MetaWriter::new(comp, bs);
    let mut dirs = MetaWriter::new(comp, bs);
    let mut refs = vec![0u64; n];
    let mut buf = Vec::with_capacity(256);
    for &id in &order {
        let node = &tree.nodes[id as usize];
        let mut ext_needed = node.xattr != INVALID_XATTR;
        buf.clear();
        let header = |t: u16| InodeHeader {
            inode_type: t,
            permissions: node.mode,
            uid_idx: id_idx(node.uid),
            gid_idx: id_idx(node.gid),
            mtime: node.mtime,
            inode_number: number[id as usize],
        };
        let links = nlink[id as usize].max(1);
        ext_needed |= links > 1 && !matches!(node.kind, NodeKind::Dir(_));
        match &node.kind {
            NodeKind::Dir(_) => {
                let kids = children_of.remove(&id).unwrap_or_default();
                let listing = write_listing(&tree, &kids, &inode_of, &refs, &number, &mut dirs);
                let subdirs = kids
                    .iter()
                    .filter(|&&c| matches!(tree.nodes[c as usize].kind, NodeKind::Dir(_)))
                    .count() as u32;
                let parent = if id == ROOT {
                    inode_count + 1
                } else {
                    number[node.parent as usize]
                };
                let size = listing.size + 3;
                if ext_needed || size > 0xFFFF || !listing.index.is_empty() {
                    header(it::EXT_DIR).write_to(&mut buf);
                    put_u32(&mut buf, 2 + subdirs);
                    put_u32(&mut buf, size);
                    put_u32(&mut buf, listing.block as u32);
                    put_u32(&mut buf, parent);
                    put_u16(&mut buf, listing.index_count);
                    put_u16(&mut buf, listing.offset);
                    put_u32(&mut buf, node.xattr);
                    buf.extend_from_slice(&listing.index);
                } else {
                    header(it::DIR).write_to(&mut buf);
                    put_u32(&mut buf, listing.block as u32);
                    put_u32(&mut buf, 2 + subdirs);
                    put_u16(&mut buf, size as u16);
                    put_u16(&mut buf, listing.offset);
                    put_u32(&mut buf, parent);
                }
            }
            NodeKind::File(f) => {
                let f = &files[*f as usize];
                let (frag, frag_off) = f.fragment.unwrap_or((INVALID_FRAG, 0));
                if ext_needed
                    || f.sparse > 0
                    || f.start > u64::from(u32::MAX)
                    || f.size > u64::from(u32::MAX)
                {
                    header(it::EXT_FILE).write_to(&mut buf);
                    put_u64(&mut buf, f.start);
                    put_u64(&mut buf, f.size);
                    put_u64(&mut buf, f.sparse);
                    put_u32(&mut buf, links);
                    put_u32(&mut buf, frag);
                    put_u32(&mut buf, frag_off);
                    put_u32(&mut buf, node.xattr);
                } else {
                    header(it::FILE).write_to(&mut buf);
                    put_u32(&mut buf, f.start as u32);
                    put_u32(&mut buf, frag);
                    put_u32(&mut buf, frag_off);
                    put_u32(&mut buf, f.size as u32);
                }
                for &b in &f.blocks {
                    put_u32(&mut buf, b);
                }
            }
            NodeKind::Symlink(target) => {
                header(if ext_needed {
                    it::EXT_SYMLINK
                } else {
                    it::SYMLINK
                })
                .write_to(&mut buf);
                put_u32(&mut buf, links);
                put_u32(&mut buf, target.len() as u32);
                buf.extend_from_slice(target);
                if ext_needed {
                    put_u32(&mut buf, node.xattr);
                }
            }
            NodeKind::BlockDev(rdev) | NodeKind::CharDev(rdev) => {
                let basic = if matches!(node.kind, NodeKind::BlockDev(_)) {
                    it::BLKDEV
                } else {
                    it::CHRDEV
                };
                header(if ext_needed {
                    basic + it::EXTENDED_OFFSET
                } else {
                    basic
                })
                .write_to(&mut buf);
                put_u32(&mut buf, links);
                put_u32(&mut buf, *rdev);
                if ext_needed {
                    put_u32(&mut buf, node.xattr);
                }
            }
            NodeKind::Fifo | NodeKind::Socket | NodeKind::HardLink(_) => {
                let basic = if matches!(node.kind, NodeKind::Socket) {
                    it::SOCKET
                } else {
                    it::FIFO
                };
                header(if ext_needed {
                    basic + it::EXTENDED_OFFSET
                } else {
                    basic
                })
                .write_to(&mut buf);
                put_u32(&mut buf, links);
                if ext_needed {
                    put_u32(&mut buf, node.xattr);
                }
            }
        }
        let (blk, off) = inodes.position();
        refs[id as usize] = inode_ref(blk, off);
        inodes.write(&buf);
    }
    let root_ref = refs[ROOT as usize];

    // 5. Tables, in the kernel's order.
    let mut write = |bytes: &[u8], pos: &mut u64| -> Result<u64> {
        let at = *pos;
        out.write_all(bytes).map_err(out_err)?;
        *pos += bytes.len() as u64;
        Ok(at)
    };
    let (ib, _) = inodes.finish();
    let inode_table_start = write(&ib, &mut pos)?;
    drop(ib);
    let (db, _) = dirs.finish();
    let directory_table_start = write(&db, &mut pos)?;
    drop(db);

    let mut recs = Vec::with_capacity(fragments.len() * 16);
    for f in &fragments {
        put_u64(&mut recs, f.start);
        put_u32(&mut recs, f.size);
        put_u32(&mut recs, 0);
    }
    let (t, at) = indexed_table(comp, bs, &recs, pos);
    let fragment_table_start = write(&t, &mut pos)? + at as u64;

    let export_table_start = if opts.exportable {
        let mut recs = Vec::with_capacity(order.len() * 8);
        for &id in &order {
            put_u64(&mut recs, refs[id as usize]);
        }
        let (t, at) = indexed_table(comp, bs, &recs, pos);
        write(&t, &mut pos)? + at as u64
    } else {
        INVALID_TABLE
    };

    let mut recs = Vec::with_capacity(ids.len() * 4);
    for &i in &ids {
        put_u32(&mut recs, i);
    }
    let (t, at) = indexed_table(comp, bs, &recs, pos);
    let id_table_start = write(&t, &mut pos)? + at as u64;

    let xattr_id_table_start = if xattr_list.is_empty() {
        INVALID_TABLE
    } else {
        let mut kv = MetaWriter::new(comp, bs);
        let mut id_recs = Vec::with_capacity(xattr_list.len() * 16);
        for set in &xattr_list {
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
        let (kvb, _) = kv.finish();
        let kv_start = write(&kvb, &mut pos)?;
        let mut idm = MetaWriter::new(comp, bs);
        idm.write(&id_recs);
        let (idb, starts) = idm.finish();
        let ids_at = write(&idb, &mut pos)?;
        let mut hdr = Vec::new();
        put_u64(&mut hdr, kv_start);
        put_u32(&mut hdr, xattr_list.len() as u32);
        put_u32(&mut hdr, 0);
        for s in starts {
            put_u64(&mut hdr, ids_at + s);
        }
        write(&hdr, &mut pos)?
    };

    let bytes_used = pos;
    let padded = bytes_used.div_ceil(PAD) * PAD;
    write(&vec![0u8; (padded - bytes_used) as usize], &mut pos)?;

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
    if xattr_list.is_empty() {
        fl |= flags::NO_XATTRS;
    }
    let options = comp.options_record();
    if options.is_some() {
        fl |= flags::COMPRESSOR_OPTIONS;
    }
    let sb = Superblock {
        inode_count,
        modification_time: opts.mtime.unwrap_or(max_mtime),
        block_size: bs,
        fragment_entry_count: fragments.len() as u32,
        compression_id: comp.id(),
        block_log: bs.trailing_zeros() as u16,
        flags: fl,
        id_count: ids.len() as u16,
        root_inode_ref: root_ref,
        bytes_used,
        id_table_start,
        xattr_id_table_start,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        export_table_start,
    };
    out.seek(SeekFrom::Start(0)).map_err(out_err)?;
    out.write_all(&sb.to_bytes()).map_err(out_err)?;
    if let Some(o) = options {
        // Compressor options are one metadata block, always stored uncompressed.
        out.write_all(&(o.len() as u16 | crate::format::METADATA_UNCOMPRESSED).to_le_bytes())
            .map_err(out_err)?;
        out.write_all(&o).map_err(out_err)?;
    }
    out.seek(SeekFrom::Start(padded)).map_err(out_err)?;
    out.flush().map_err(out_err)?;
    Ok(Summary {
        bytes_used,
        image_size: padded,
        inodes: inode_count,
        fragments: fragments.len() as u32,
        data: stats,
        skipped_xattrs,
    })
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
