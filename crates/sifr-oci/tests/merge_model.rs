//! The newest-first merge agrees with the obvious model — extract every layer oldest-first
//! into an in-memory tree, each layer's whiteouts before its entries — on thousands of
//! random small images (seeded, so a failure reproduces; the message prints the layers).

mod common;

use std::collections::BTreeMap;

use common::{E, tar};
use sifr_oci::merge::EntryKind;

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Dir,
    File(String),
    Sym(String),
}

#[derive(Clone, Debug)]
enum Op {
    File(String, String),
    Dir(String),
    Sym(String),
    Whiteout(String),
    Opaque(String),
    /// Hard link at the first path to the second (a file existing when the link is made).
    Link(String, String),
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_path(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3);
    (0..depth)
        .map(|_| ["a", "b", "c"][rng.below(3) as usize])
        .collect::<Vec<_>>()
        .join("/")
}

fn ancestors(p: &str) -> Vec<String> {
    let parts: Vec<&str> = p.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn is_below(p: &str, dir: &str) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
}

/// Ops for one layer that an honest tool could produce: no path twice, nothing below a
/// non-directory of the same layer.
fn random_layer(rng: &mut Rng, id: usize, below: &[Vec<Op>]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut used: Vec<(String, bool)> = Vec::new(); // (path, is_dir)
    for n in 0..rng.below(7) {
        let p = random_path(rng);
        let op = match rng.below(10) {
            0..=3 => Op::File(p.clone(), format!("L{id}.{n}")),
            4..=5 => Op::Dir(p.clone()),
            6 => Op::Sym(p.clone()),
            7..=8 => Op::Whiteout(p.clone()),
            _ => Op::Opaque(p.clone()),
        };
        // The path the tar entry itself has, and whether it is a directory.
        let (entry, entry_dir) = match &op {
            Op::Whiteout(p) => (wh_path(p), false),
            Op::Opaque(p) => (format!("{p}/.wh..wh..opq"), false),
            Op::Dir(p) => (p.clone(), true),
            _ => (p.clone(), false),
        };
        let conflict = used.iter().any(|(u, udir)| {
            *u == entry || (!udir && is_below(&entry, u)) || (!entry_dir && is_below(u, &entry))
        }) || matches!(&op, Op::Whiteout(_) | Op::Opaque(_))
            && used.iter().any(|(u, _)| u == &p || is_below(u, &p));
        if conflict {
            continue;
        }
        used.push((entry, entry_dir));
        ops.push(op);
    }
    // Hard links to files that exist once this layer's other entries are in place.
    let mut with_layer = below.to_vec();
    with_layer.push(ops.clone());
    let state = model(&with_layer);
    let files: Vec<String> = state
        .iter()
        .filter(|(_, n)| matches!(n, Node::File(_)))
        .map(|(p, _)| p.clone())
        .collect();
    for _ in 0..rng.below(3) {
        if files.is_empty() {
            break;
        }
        let target = files[rng.below(files.len() as u64) as usize].clone();
        let p = random_path(rng);
        let conflict = p == target
            || used
                .iter()
                .any(|(u, udir)| *u == p || (!udir && is_below(&p, u)) || is_below(u, &p))
            || state
                .iter()
                .any(|(f, n)| is_below(f, &p) || (*n != Node::Dir && is_below(&p, f)));
        if conflict {
            continue;
        }
        used.push((p.clone(), false));
        ops.push(Op::Link(p, target));
    }
    ops
}

fn wh_path(p: &str) -> String {
    match p.rsplit_once('/') {
        Some((d, n)) => format!("{d}/.wh.{n}"),
        None => format!(".wh.{p}"),
    }
}

fn to_tar(ops: &[Op]) -> Vec<u8> {
    let whs: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::Whiteout(p) => wh_path(p),
            Op::Opaque(p) => format!("{p}/.wh..wh..opq"),
            _ => String::new(),
        })
        .collect();
    let entries: Vec<E> = ops
        .iter()
        .zip(&whs)
        .map(|(op, wh)| match op {
            Op::File(p, c) => E::File(p, c.as_bytes()),
            Op::Dir(p) => E::Dir(p),
            Op::Sym(p) => E::Sym(p, "target"),
            Op::Link(p, t) => E::Link(p, t),
            Op::Whiteout(_) | Op::Opaque(_) => E::File(wh, b""),
        })
        .collect();
    tar(&entries)
}

/// Extraction, oldest layer first.
fn model(layers: &[Vec<Op>]) -> BTreeMap<String, Node> {
    let mut t: BTreeMap<String, Node> = BTreeMap::new();
    let remove_below = |t: &mut BTreeMap<String, Node>, d: &str| t.retain(|k, _| !is_below(k, d));
    for ops in layers {
        for op in ops {
            match op {
                Op::Whiteout(p) => {
                    t.remove(p);
                    remove_below(&mut t, p);
                }
                Op::Opaque(p) => remove_below(&mut t, p),
                _ => {}
            }
        }
        for op in ops {
            let (p, node) = match op {
                Op::File(p, c) => (p, Node::File(c.clone())),
                Op::Link(p, target) => (
                    p,
                    t.get(target)
                        .cloned()
                        .expect("generator picks existing files"),
                ),
                Op::Dir(p) => (p, Node::Dir),
                Op::Sym(p) => (p, Node::Sym("target".into())),
                _ => continue,
            };
            for a in ancestors(p) {
                if t.get(&a) != Some(&Node::Dir) {
                    t.insert(a, Node::Dir);
                }
            }
            if node != Node::Dir || t.get(p) != Some(&Node::Dir) {
                remove_below(&mut t, p);
            }
            t.insert(p.clone(), node);
        }
    }
    t
}

#[test]
fn newest_first_merge_matches_oldest_first_extraction() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for case in 0..5000 {
        let n_layers = 1 + rng.below(4) as usize;
        let mut layers: Vec<Vec<Op>> = Vec::new();
        for i in 0..n_layers {
            let l = random_layer(&mut rng, i, &layers);
            layers.push(l);
        }
        let want = model(&layers);
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| to_tar(l)).collect();
        let (sink, r) = common::merge_layers(&tars, &sifr_oci::merge::MergeOptions::default());
        if let Err(e) = r {
            panic!("case {case}: {e} ({e:?}); layers (base first) {layers:?}");
        }
        common::assert_inside_root(&sink);
        let mut got: BTreeMap<String, Node> = BTreeMap::new();
        for (path, e) in &sink.entries {
            let p = String::from_utf8(path.as_bytes().to_vec()).unwrap();
            for a in ancestors(&p) {
                got.entry(a).or_insert(Node::Dir);
            }
            let node = match &e.kind {
                EntryKind::Directory => Node::Dir,
                EntryKind::File { .. } => Node::File(String::from_utf8(e.data.clone()).unwrap()),
                EntryKind::Symlink(t) => Node::Sym(String::from_utf8(t.clone()).unwrap()),
                EntryKind::HardLink(t) => {
                    let mut t = t.clone();
                    loop {
                        match &sink.entries[&t].kind {
                            EntryKind::HardLink(next) => t = next.clone(),
                            EntryKind::File { .. } => {
                                break Node::File(
                                    String::from_utf8(sink.entries[&t].data.clone()).unwrap(),
                                );
                            }
                            other => panic!("case {case}: link to {other:?}"),
                        }
                    }
                }
                other => panic!("unexpected {other:?}"),
            };
            got.insert(p, node);
        }
        assert_eq!(got, want, "case {case}: layers (base first) {layers:#?}");
    }
}
