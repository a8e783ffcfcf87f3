//! A corpus of corrupted images generated here (truncated, bad magic/version, absurd descriptor
//! counts, objects past EOF, overlapping, negative or overflowing fields, random byte flips):
//! opening gives a typed error or a consistent image, never a panic, and never an allocation
//! sized by a claimed number (a claim of 2^31 descriptors or an `i64::MAX` object would abort
//! the test process if it were allocated).

use std::io::Cursor;

use proptest::prelude::*;
use sifr_sif::render::{header_text, info_text, list_text};
use sifr_sif::{
    Arch, CreateOptions, Creator, Error, FsType, Image, ObjectInput, PartType, PartitionMeta,
};

fn base() -> Vec<u8> {
    let mut c = Creator::new(Cursor::new(Vec::new()), CreateOptions::deterministic()).unwrap();
    c.add(ObjectInput::generic_json("data.json", b"{}".to_vec()))
        .unwrap();
    let meta = PartitionMeta {
        fs: FsType::Squash,
        part: PartType::PrimSys,
        arch: Arch::Amd64,
    };
    c.add(ObjectInput::partition(meta, vec![0x68; 5000]))
        .unwrap();
    c.finish().unwrap().into_inner()
}

const D0: usize = 4096; // first descriptor
const D1: usize = 4096 + 585; // second descriptor

fn put_i64(b: &mut [u8], off: usize, v: i64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn open(b: Vec<u8>) -> Result<Image<Vec<u8>>, Error> {
    Image::from_store(b)
}

/// Everything a reader might do with an opened image.
fn exercise(img: &Image<Vec<u8>>) {
    let _ = header_text(img.header());
    let _ = list_text(img);
    let ids: Vec<u32> = img.descriptors().map(|d| d.id()).collect();
    for id in ids {
        let _ = info_text(img, id);
        let data = img.read_object(id).unwrap();
        assert!(data.len() <= img.store().len());
    }
    let _ = img.primary_partition();
}

#[test]
fn the_base_image_is_valid() {
    exercise(&open(base()).unwrap());
}

#[test]
fn every_truncation_is_an_error() {
    let b = base();
    for len in [
        0,
        1,
        10,
        127,
        128,
        129,
        4095,
        4096,
        4700,
        32175,
        32176,
        32178,
        36000,
        b.len() - 1,
    ] {
        let r = open(b[..len].to_vec());
        assert!(
            matches!(
                r,
                Err(Error::TooSmall { .. }
                    | Error::DescriptorTableOutOfRange { .. }
                    | Error::ObjectOutOfRange { .. })
            ),
            "truncated to {len}: {:?}",
            r.err()
        );
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = base();
    b[32] = b'X';
    assert!(matches!(open(b), Err(Error::BadMagic { .. })));
    let mut b = base();
    b[43] = b'2';
    let e = open(b).unwrap_err();
    assert!(matches!(e, Error::BadVersion { .. }));
    assert!(e.to_string().contains("`02`"), "{e}");
}

#[test]
fn absurd_descriptor_counts_and_offsets() {
    for total in [1i64 << 31, i64::MAX, -1, i64::MIN, u32::MAX as i64, 60] {
        let mut b = base();
        put_i64(&mut b, 88, total);
        let e = open(b).unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadHeaderField { .. } | Error::DescriptorTableOutOfRange { .. }
            ),
            "total {total}: {e}"
        );
    }
    for off in [-1i64, 0, 127, i64::MAX, i64::MAX - 10, 1 << 40] {
        let mut b = base();
        put_i64(&mut b, 96, off);
        assert!(
            matches!(open(b), Err(Error::DescriptorTableOutOfRange { .. })),
            "offset {off}"
        );
    }
    let mut b = base();
    put_i64(&mut b, 104, 585);
    assert!(matches!(
        open(b),
        Err(Error::BadHeaderField {
            field: "descriptors size",
            ..
        })
    ));
    let mut b = base();
    put_i64(&mut b, 80, 49);
    assert!(matches!(
        open(b),
        Err(Error::BadHeaderField {
            field: "descriptors free",
            ..
        })
    ));
    let mut b = base();
    put_i64(&mut b, 112, i64::MAX);
    assert!(matches!(
        open(b),
        Err(Error::BadHeaderField {
            field: "data offset",
            ..
        })
    ));
}

#[test]
fn objects_out_of_range() {
    let cases: &[(usize, i64)] = &[
        (17, 1 << 40),      // offset past EOF
        (17, -5),           // negative offset
        (25, i64::MAX),     // size absurd
        (25, -1),           // negative size
        (17, i64::MAX - 1), // offset + size overflows
        (17, 100),          // inside the header/descriptor table
    ];
    for &(field, v) in cases {
        let mut b = base();
        put_i64(&mut b, D1 + field, v);
        let e = open(b).unwrap_err();
        assert!(
            matches!(e, Error::ObjectOutOfRange { id: 2, .. }),
            "field {field} = {v}: {e}"
        );
        assert!(e.to_string().contains("object `2`"), "{e}");
    }
}

#[test]
fn overlapping_and_duplicate_objects() {
    let mut b = base();
    put_i64(&mut b, D1 + 17, 32176); // partition moved onto the JSON object
    assert!(matches!(open(b), Err(Error::ObjectsOverlap { .. })));
    let mut b = base();
    put_u32(&mut b, D1 + 5, 1);
    assert!(matches!(open(b), Err(Error::DuplicateId { id: 1 })));
}

#[test]
fn unknown_codes_are_reported_not_fatal() {
    let mut b = base();
    put_u32(&mut b, D0, 0x4999); // unknown data type
    put_u32(&mut b, D1 + 201, 77); // unknown fs type
    b[D1 + 201 + 8] = b'9';
    let img = open(b).unwrap();
    let list = list_text(&img);
    assert!(list.contains("|Unknown\n"), "{list}");
    assert!(list.contains("FS (Unknown/*System/unknown)"), "{list}");
    exercise(&img);
}

#[test]
fn editing_a_missing_object_is_a_typed_error() {
    let mut img = open(base()).unwrap();
    assert!(matches!(
        img.delete_object(9, Default::default()),
        Err(Error::ObjectNotFound { id: 9 })
    ));
    assert!(matches!(
        img.set_primary(1, None),
        Err(Error::NotPartition { id: 1 })
    ));
    assert!(matches!(
        img.read_object(0),
        Err(Error::ObjectNotFound { id: 0 })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_corruption_never_panics(
        flips in proptest::collection::vec((0usize..6000, any::<u8>()), 1..12),
        cut in proptest::option::of(0usize..40000),
    ) {
        let mut b = base();
        for (pos, v) in flips {
            // Bias towards the header and the two used descriptors.
            let pos = if pos < 128 { pos } else { D0 + (pos - 128) % (2 * 585) };
            b[pos] = v;
        }
        if let Some(c) = cut { b.truncate(c.min(b.len())); }
        if let Ok(mut img) = open(b) {
            exercise(&img);
            let id = img.descriptors().next().map(|d| d.id());
            if let Some(id) = id {
                let _ = img.set_primary(id, None);
                let _ = img.delete_object(id, sifr_sif::DeleteOptions { zero: true, compact: true, time: None });
            }
        }
    }
}
