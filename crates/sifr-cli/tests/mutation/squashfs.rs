//! Damage aimed at SquashFS 4.0: the superblock's fields and table offsets, lookup tables
//! (ids, fragments, exports) whose pointers aim at themselves or at the superblock, tables laid
//! over each other, directory cycles (a listing whose entry is its own directory, the root, or
//! a directory where a file was), and flips and cuts inside the inode and directory tables.
//! The base is uncompressed (`-noI -noD -noF -noX`), so every flip lands on a field rather
//! than in a compressed stream; a gzip base gets flips in its compressed metadata.

use std::path::Path;

use super::harness::Rng;
use super::sif::{flip_bytes, truncate};

/// The superblock's fields: (name, offset, width).
const SUPERBLOCK: &[(&str, usize, usize)] = &[
    ("magic", 0, 4),
    ("inode count", 4, 4),
    ("block size", 12, 4),
    ("fragment count", 16, 4),
    ("compressor", 20, 2),
    ("block log", 22, 2),
    ("flags", 24, 2),
    ("id count", 26, 2),
    ("major version", 28, 2),
    ("minor version", 30, 2),
    ("root inode", 32, 8),
    ("bytes used", 40, 8),
    ("id table", 48, 8),
    ("xattr table", 56, 8),
    ("inode table", 64, 8),
    ("directory table", 72, 8),
    ("fragment table", 80, 8),
    ("export table", 88, 8),
];

/// The tables whose superblock field points at a list of metadata-block pointers.
const LOOKUP_TABLES: &[(&str, usize)] = &[
    ("id table", 48),
    ("fragment table", 80),
    ("export table", 88),
];

fn get(b: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&b[at..at + width]);
    u64::from_le_bytes(v)
}

fn set(b: &mut [u8], at: usize, width: usize, v: u64) {
    if at + width <= b.len() {
        b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// Where a directory listing with a single entry is, and what it may be aimed at.
#[derive(Debug, Clone)]
pub struct Listing {
    /// What the listing is (`loop`'s, `loop/child`'s).
    pub name: &'static str,
    /// Offset of its header (count, start block, inode number) in the image.
    pub header: usize,
}

/// A directory's inode: (reference, number).
pub type Target = (&'static str, u64, u32);

/// A valid uncompressed image and what its cycles need.
pub struct Base {
    pub plain: Vec<u8>,
    pub gzip: Vec<u8>,
    pub listings: Vec<Listing>,
    pub targets: Vec<Target>,
}

impl Base {
    /// Pack `tree` (which holds `loop/child/f`) twice, and find the listings of `loop` (one
    /// entry, `child`) and `loop/child` (one entry, `f`) in the uncompressed directory table.
    pub fn new(tree: &Path, dir: &Path) -> Base {
        let plain_path = dir.join("plain.sqfs");
        sifr_testkit::mksquashfs(tree, &plain_path, &["-noI", "-noD", "-noF", "-noX"]);
        let gzip_path = dir.join("gzip.sqfs");
        sifr_testkit::mksquashfs(tree, &gzip_path, &["-comp", "gzip"]);
        let plain = std::fs::read(&plain_path).unwrap();
        let gzip = std::fs::read(&gzip_path).unwrap();
        let a = sifr_squashfs::read::Archive::open(std::fs::File::open(&plain_path).unwrap(), 0)
            .unwrap();
        let inode = |p: &str| a.lookup(p).unwrap().unwrap_or_else(|| panic!("no {p}"));
        let (root, lp, child) = (a.root().unwrap(), inode("loop"), inode("loop/child"));
        let table = get(&plain, 72, 8) as usize;
        // A one-entry listing: header (12 bytes), entry (8 bytes), then the name.
        let header_of = |name: &[u8]| {
            let at = plain[table..]
                .windows(name.len())
                .position(|w| w == name)
                .unwrap_or_else(|| panic!("no {name:?} in the directory table"));
            table + at - 8 - 12
        };
        Base {
            listings: vec![
                Listing {
                    name: "loop",
                    header: header_of(b"child"),
                },
                Listing {
                    name: "loop/child",
                    header: header_of(b"f\0"),
                },
            ],
            targets: vec![
                ("/", root.inode_ref, root.number),
                ("loop", lp.inode_ref, lp.number),
                ("loop/child", child.inode_ref, child.number),
            ],
            plain,
            gzip,
        }
    }
}

/// A value that tends to break a reader of a `width`-byte field now holding `cur`.
fn interesting(rng: &mut Rng, b: &[u8], width: usize, cur: u64) -> u64 {
    let len = b.len() as u64;
    let tables: Vec<u64> = (48..96).step_by(8).map(|at| get(b, at, 8)).collect();
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    };
    let v = match rng.below(11) {
        0 => 0,
        1 => max,
        2 => max >> 1,
        3 => len,
        4 => len + 1,
        5 => *rng.pick(&tables),
        6 => cur.wrapping_add(1 + rng.below(64) as u64),
        7 => cur.wrapping_sub(1 + rng.below(64) as u64),
        8 => 1 << rng.below(width * 8),
        9 => cur ^ (1 << rng.below(width * 8)),
        _ => rng.below(b.len()) as u64,
    };
    v & max
}

/// One mutation of the uncompressed base (or, one time in four, of the gzip one); returns the
/// damaged image and what was done.
pub fn mutate(rng: &mut Rng, base: &Base) -> (Vec<u8>, String) {
    if rng.chance(25) {
        let mut b = base.gzip.clone();
        let lo = get(&b, 64, 8) as usize;
        let hi = b.len();
        let what = flip_bytes(rng, &mut b, lo, hi, 6);
        return (b, format!("gzip metadata: {what}"));
    }
    let mut b = base.plain.clone();
    let what = match rng.below(8) {
        0 | 1 => {
            let &(name, at, width) = rng.pick(SUPERBLOCK);
            let v = interesting(rng, &b, width, get(&b, at, width));
            set(&mut b, at, width, v);
            format!("superblock {name} = {v:#x}")
        }
        2 => {
            // A lookup table whose first pointer aims at the list itself (the "metadata block"
            // is then the pointer's own bytes), at the superblock, or past the end.
            let &(name, field) = rng.pick(LOOKUP_TABLES);
            let list = get(&b, field, 8) as usize;
            if list.checked_add(8).is_none_or(|end| end > b.len()) {
                return (b, format!("{name} absent: unchanged"));
            }
            let to = match rng.below(4) {
                0 => list as u64,
                1 => (list as u64).wrapping_sub(2),
                2 => 0,
                _ => b.len() as u64,
            };
            set(&mut b, list, 8, to);
            format!("{name}'s pointer at {list} = {to:#x} (itself: {list:#x})")
        }
        3 => {
            // Two tables over the same bytes.
            let tables = &SUPERBLOCK[12..];
            let (a, c) = (*rng.pick(tables), *rng.pick(tables));
            let v = get(&b, c.1, 8);
            set(&mut b, a.1, 8, v);
            format!("superblock {} = the {} ({v:#x})", a.0, c.0)
        }
        4 | 5 => {
            // A directory cycle: a one-entry listing aimed at a directory (its own, an
            // ancestor, the root), the entry keeping its name and type.
            let l = rng.pick(&base.listings).clone();
            let &(to, inode_ref, number) = rng.pick(&base.targets);
            set(&mut b, l.header + 4, 4, inode_ref >> 16);
            set(&mut b, l.header + 8, 4, u64::from(number));
            set(&mut b, l.header + 12, 2, inode_ref & 0xffff);
            set(&mut b, l.header + 14, 2, 0);
            format!("the entry in `{}` points at the directory `{to}`", l.name)
        }
        6 => {
            let (lo, hi) = (get(&b, 64, 8) as usize, get(&b, 80, 8) as usize);
            let what = flip_bytes(rng, &mut b, lo, hi.max(lo + 1), 4);
            format!("inode and directory tables: {what}")
        }
        _ => {
            let marks: Vec<usize> = (48..96)
                .step_by(8)
                .map(|at| get(&b, at, 8) as usize)
                .chain([96, get(&b, 40, 8) as usize])
                .collect();
            truncate(rng, &mut b, &marks)
        }
    };
    (b, what)
}
