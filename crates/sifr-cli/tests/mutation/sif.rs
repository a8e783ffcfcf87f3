//! Damage aimed at the SIF container format: the global header's fields and the descriptor
//! table's (offsets and sizes past the end, overlapping objects, huge counts, wrong magic and
//! version, duplicated descriptors), truncation at the format's boundaries, and byte flips in
//! the header and the table. Signed images get flips in their signature objects or in the data
//! the signatures cover.

use super::harness::Rng;

/// The header's fields after the launch script: (name, offset, width).
const HEADER: &[(&str, usize, usize)] = &[
    ("magic", 32, 10),
    ("version", 42, 3),
    ("arch", 45, 3),
    ("free descriptors", 80, 8),
    ("total descriptors", 88, 8),
    ("descriptors offset", 96, 8),
    ("descriptors length", 104, 8),
    ("data offset", 112, 8),
    ("data length", 120, 8),
];

/// A descriptor's fields: (name, offset in the descriptor, width).
const DESCRIPTOR: &[(&str, usize, usize)] = &[
    ("data type", 0, 4),
    ("used", 4, 1),
    ("id", 5, 4),
    ("group", 9, 4),
    ("link", 13, 4),
    ("offset", 17, 8),
    ("size", 25, 8),
    ("size with padding", 33, 8),
    ("name", 73, 128),
    ("partition fs", 201, 4),
    ("partition type", 205, 4),
    ("partition arch", 209, 3),
];

pub const DESCRIPTOR_LEN: usize = 585;
/// The data type of signature objects.
pub const SIGNATURE: i32 = 0x4005;

fn le(b: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    let end = (at + width).min(b.len());
    if at < end {
        v[..end - at].copy_from_slice(&b[at..end]);
    }
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], at: usize, width: usize, v: u64) {
    for (i, byte) in v.to_le_bytes().into_iter().take(width).enumerate() {
        if let Some(x) = b.get_mut(at + i) {
            *x = byte;
        }
    }
}

/// Where each used descriptor starts.
pub fn descriptors(b: &[u8]) -> Vec<usize> {
    let off = le(b, 96, 8) as usize;
    let total = le(b, 88, 8).min(4096) as usize;
    (0..total)
        .map(|i| off + i * DESCRIPTOR_LEN)
        .filter(|&d| d + DESCRIPTOR_LEN <= b.len() && b[d + 4] == 1)
        .collect()
}

/// (data type, offset, size) of the descriptor at `d`.
pub fn object(b: &[u8], d: usize) -> (i32, usize, usize) {
    (
        le(b, d, 4) as u32 as i32,
        le(b, d + 17, 8) as usize,
        le(b, d + 25, 8) as usize,
    )
}

/// A value that tends to break a reader of a `width`-byte field now holding `cur`, in a file
/// of `len` bytes.
fn interesting(rng: &mut Rng, width: usize, cur: u64, len: usize) -> u64 {
    let len = len as u64;
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    };
    let v = match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max >> 1,
        4 => (max >> 1) + 1,
        5 => len,
        6 => len + 1,
        7 => len.saturating_sub(1),
        8 => cur.wrapping_add(1 + rng.below(4096) as u64),
        9 => cur.wrapping_sub(1 + rng.below(4096) as u64),
        10 => 1 << (rng.below(width * 8)),
        _ => rng.below(len as usize + 1) as u64,
    };
    v & max
}

/// Cut `b` at one of the format's boundaries or anywhere.
pub fn truncate(rng: &mut Rng, b: &mut Vec<u8>, marks: &[usize]) -> String {
    let at = if rng.chance(60) && !marks.is_empty() {
        let m = *rng.pick(marks);
        m.saturating_add_signed(rng.below(3) as isize - 1)
    } else {
        rng.below(b.len())
    };
    let at = at.min(b.len().saturating_sub(1));
    b.truncate(at);
    format!("truncated to {at} bytes")
}

/// XOR one to `most` bytes of `b[lo..hi]` (`hi` capped at the end).
pub fn flip_bytes(rng: &mut Rng, b: &mut [u8], lo: usize, hi: usize, most: usize) -> String {
    let n = 1 + rng.below(most);
    let hi = hi.min(b.len());
    if lo >= hi {
        return "nothing to flip".into();
    }
    let mut at = Vec::new();
    for _ in 0..n {
        let i = lo + rng.below(hi - lo);
        b[i] ^= rng.flip();
        at.push(i);
    }
    format!("flipped bytes at {at:?}")
}

/// One structural mutation of a SIF; returns what it did.
pub fn mutate(rng: &mut Rng, b: &mut Vec<u8>) -> String {
    let len = b.len();
    let descs = descriptors(b);
    let data_off = le(b, 112, 8) as usize;
    match rng.below(7) {
        0 => {
            let &(name, at, width) = rng.pick(HEADER);
            if width > 8 || name == "version" || name == "arch" {
                let what = flip_bytes(rng, b, at, at + width, 1);
                return format!("header {name}: {what}");
            }
            let v = interesting(rng, width, le(b, at, width), len);
            put(b, at, width, v);
            format!("header {name} = {v:#x}")
        }
        1 | 2 if !descs.is_empty() => {
            let d = *rng.pick(&descs);
            let &(name, at, width) = rng.pick(DESCRIPTOR);
            if width > 8 {
                // A name with no terminating NUL, or garbage in it.
                let fill = rng.flip();
                for x in &mut b[d + at..d + at + width] {
                    *x = fill;
                }
                return format!("descriptor at {d}: {name} filled with {fill:#x}");
            }
            let v = interesting(rng, width, le(b, d + at, width), len);
            put(b, d + at, width, v);
            format!("descriptor at {d}: {name} = {v:#x}")
        }
        3 if descs.len() >= 2 => {
            // Two objects over the same bytes, or one object inside another.
            let (i, j) = (rng.below(descs.len()), rng.below(descs.len()));
            let (src, dst) = (descs[i], descs[j]);
            let off = le(b, src + 17, 8) + rng.below(2) as u64 * 7;
            put(b, dst + 17, 8, off);
            if rng.chance(50) {
                let size = le(b, src + 25, 8);
                put(b, dst + 25, 8, size);
            }
            format!("descriptor at {dst} overlaps the one at {src} (offset {off:#x})")
        }
        4 if descs.len() >= 2 => {
            // The same ID twice: a copy of one descriptor over another.
            let (src, dst) = (descs[0], descs[1 + rng.below(descs.len() - 1)]);
            let copy = b[src..src + DESCRIPTOR_LEN].to_vec();
            b[dst..dst + DESCRIPTOR_LEN].copy_from_slice(&copy);
            format!("descriptor at {dst} is a copy of the one at {src}")
        }
        5 => {
            let mut marks = vec![0, 32, 64, 128, 4096, data_off];
            for &d in &descs {
                let (_, off, size) = object(b, d);
                marks.extend([d, d + DESCRIPTOR_LEN / 2, off, off + size / 2, off + size]);
            }
            truncate(rng, b, &marks)
        }
        _ => {
            let what = flip_bytes(rng, b, 0, data_off.min(len), 8);
            format!("header and descriptors: {what}")
        }
    }
}

/// Damage to a signed SIF: its signature objects' bytes or descriptors, or the data they
/// sign.
pub fn mutate_signed(rng: &mut Rng, b: &mut Vec<u8>) -> String {
    let descs = descriptors(b);
    let (sigs, data): (Vec<usize>, Vec<usize>) =
        descs.iter().partition(|&&d| object(b, d).0 == SIGNATURE);
    match rng.below(5) {
        0 | 1 if !sigs.is_empty() => {
            let d = *rng.pick(&sigs);
            let (_, off, size) = object(b, d);
            let what = flip_bytes(rng, b, off, off + size.max(1), 4);
            format!("signature object at {off}: {what}")
        }
        2 if !data.is_empty() => {
            let d = *rng.pick(&data);
            let (_, off, size) = object(b, d);
            let what = flip_bytes(rng, b, off, off + size.max(1), 1);
            format!("signed object at {off}: {what}")
        }
        3 if !sigs.is_empty() => {
            // The signature's link, hash type or signing entity.
            let d = *rng.pick(&sigs);
            let (name, at, width) =
                *rng.pick(&[("link", 13, 4), ("hash type", 201, 4), ("entity", 205, 8)]);
            let v = interesting(rng, width, le(b, d + at, width), b.len());
            put(b, d + at, width, v);
            format!("signature descriptor at {d}: {name} = {v:#x}")
        }
        _ => mutate(rng, b),
    }
}
