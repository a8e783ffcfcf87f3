//! Property tests: random object sets written with `Creator` read back identically, with the
//! layout invariants of the Go writer; random add/delete/setprim sequences on an image keep
//! those invariants and the objects' bytes.

use std::collections::BTreeMap;
use std::io::{Cursor, Seek, SeekFrom, Write};

use proptest::prelude::*;
use sifr_sif::{
    Arch, CreateOptions, Creator, DataType, DeleteOptions, Error, Extra, FormatType, FsType,
    GO_ZERO_TIME, HashType, Image, Link, MessageType, ObjectInput, PartType, PartitionMeta,
    SbomFormat,
};

#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    data: Vec<u8>,
    name: String,
    group: Option<u32>,
    link: Link,
    alignment: Option<u64>,
    arch: Arch,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..11,
        proptest::collection::vec(any::<u8>(), 0..3000),
        "[a-z.]{0,20}",
        prop_oneof![Just(None), (1u32..5).prop_map(Some)],
        prop_oneof![
            Just(Link::None),
            (1u32..9).prop_map(Link::Object),
            (1u32..4).prop_map(Link::Group)
        ],
        prop_oneof![Just(None), Just(Some(0)), Just(Some(8)), Just(Some(512))],
        proptest::sample::select(Arch::all().collect::<Vec<_>>()),
    )
        .prop_map(|(kind, data, name, group, link, alignment, arch)| Spec {
            kind,
            data,
            name,
            group,
            link,
            alignment,
            arch,
        })
}

/// Builds the input; partitions are never PrimSys here (at most one is allowed).
fn input(s: &Spec) -> ObjectInput {
    let d = s.data.clone();
    let mut o = match s.kind {
        0 => ObjectInput::deffile(d),
        1 => ObjectInput::env_var(d),
        2 => ObjectInput::labels(d),
        3 => ObjectInput::partition(
            PartitionMeta {
                fs: FsType::Squash,
                part: PartType::Data,
                arch: s.arch,
            },
            d,
        ),
        4 => ObjectInput::signature(HashType::Sha384, Some([7; 20]), d),
        5 => ObjectInput::generic_json("x", d),
        6 => ObjectInput::generic("y", d),
        7 => ObjectInput::crypto_message(FormatType::Pem, MessageType::RsaOaep, d),
        8 => ObjectInput::sbom(SbomFormat::SpdxJson, d),
        9 => ObjectInput::oci_root_index(d),
        _ => ObjectInput::oci_blob(d),
    };
    o = o.name(&s.name);
    o = match s.group {
        None => o.no_group(),
        Some(g) => o.group(g),
    };
    o = match s.link {
        Link::None => o,
        Link::Object(id) => o.link_object(id),
        Link::Group(g) => o.link_group(g),
    };
    if let Some(a) = s.alignment {
        o = o.alignment(a);
    }
    o
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Layout invariants every image written by this crate (or Go) satisfies.
fn check_layout(img: &Image<Vec<u8>>, compacted: bool) {
    let h = img.header();
    let used: Vec<_> = img.descriptors().collect();
    assert_eq!(h.descriptors_free, h.descriptors_total - used.len() as i64);
    for (slot, d) in img.slots().iter().enumerate() {
        if d.used {
            assert_eq!(d.id() as usize, slot + 1, "ID = slot + 1");
        } else {
            assert_eq!(d, &sifr_sif::Descriptor::free(), "free slots are zero");
        }
    }
    let end = used
        .iter()
        .map(|d| d.end())
        .max()
        .unwrap_or(h.data_offset as u64);
    if compacted {
        assert_eq!(h.data_offset as u64 + h.data_size as u64, end);
    } else {
        assert!(h.data_offset as u64 + h.data_size as u64 >= end);
    }
    match img.primary_partition() {
        Some(p) => assert_eq!(h.arch(), p.partition().unwrap().arch),
        None => assert_eq!(h.arch(), Arch::Unknown),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn created_objects_read_back_identically(specs in proptest::collection::vec(spec(), 0..12), prim in any::<Option<u8>>()) {
        let mut c = Creator::new(Cursor::new(Vec::new()), CreateOptions::deterministic()).unwrap();
        let mut want = Vec::new();
        for s in &specs {
            c.add(input(s)).unwrap();
            want.push(s.clone());
        }
        // Optionally stream a primary partition with seeks inside the sink.
        if let Some(n) = prim {
            let meta = PartitionMeta { fs: FsType::Squash, part: PartType::PrimSys, arch: Arch::Arm64 };
            let body: Vec<u8> = (0..u32::from(n) * 37).map(|i| i as u8).collect();
            let b2 = body.clone();
            c.add_partition_with::<Error>("root", meta, |sink| {
                // A placeholder as long as the head it stands for (the body may be shorter than 4).
                sink.write_all(&[0u8; 4][..b2.len().min(4)]).map_err(Error::Source)?;
                sink.write_all(&b2[b2.len().min(4)..]).map_err(Error::Source)?;
                sink.seek(SeekFrom::Start(0)).map_err(Error::Source)?;
                sink.write_all(&b2[..b2.len().min(4)]).map_err(Error::Source)?;
                Ok(())
            }).unwrap();
            want.push(Spec { kind: 99, data: body, name: "root".into(), group: Some(1), link: Link::None, alignment: None, arch: Arch::Arm64 });
        }
        let bytes = c.finish().unwrap().into_inner();
        let img = Image::from_store(bytes.clone()).unwrap();
        check_layout(&img, true);
        let used: Vec<_> = img.descriptors().cloned().collect();
        prop_assert_eq!(used.len(), want.len());
        let end = used.iter().map(|d| d.end()).max().unwrap_or(32176);
        prop_assert_eq!(bytes.len() as u64, end.max(32176), "file ends at the last object");
        let mut prev_end = 32176u64;
        for (d, s) in used.iter().zip(&want) {
            prop_assert_eq!(img.read_object(d.id()).unwrap(), s.data.clone());
            prop_assert_eq!(d.name(), s.name.clone());
            prop_assert_eq!(d.group(), s.group);
            prop_assert_eq!(d.link(), s.link);
            prop_assert_eq!(d.created_at, GO_ZERO_TIME);
            let align = s.alignment.unwrap_or(if d.data_type() == DataType::Partition { 4096 } else { 0 });
            prop_assert!(d.offset() >= prev_end);
            if align > 1 { prop_assert_eq!(d.offset() % align, 0); }
            prop_assert!(d.offset() - prev_end < align.max(1));
            prop_assert_eq!(d.size_with_padding as u64, d.end() - prev_end);
            prev_end = d.end();
            match (s.kind, d.extra()) {
                (9 | 10, Extra::OciDigest(h)) => prop_assert_eq!(h, sha256(&s.data)),
                (3, Extra::Partition(p)) => prop_assert_eq!(p.arch, s.arch),
                (99, Extra::Partition(p)) => prop_assert_eq!(img.header().arch(), p.arch),
                (4, Extra::Signature(sig)) => prop_assert_eq!(sig.fingerprint, Some([7; 20])),
                (_, e) => prop_assert!(matches!(e, Extra::None | Extra::CryptoMessage { .. } | Extra::Sbom(_)), "{:?}", e),
            }
        }
    }

    #[test]
    fn edit_sequences_keep_invariants(ops in proptest::collection::vec((0u8..4, spec(), 1u32..10, any::<bool>()), 1..25)) {
        let opts = CreateOptions { descriptors: 8, ..CreateOptions::deterministic() };
        let mut store = Creator::new(Cursor::new(Vec::new()), opts).unwrap().finish().unwrap().into_inner();
        let mut model: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (op, s, id, flag) in ops {
            let mut img = Image::from_store(store).unwrap();
            match op {
                0 | 1 => {
                    // Half of the partitions added are system partitions, candidates for setprim.
                    let mut obj = input(&s);
                    if s.kind == 3 && flag {
                        obj = ObjectInput::partition(PartitionMeta { fs: FsType::Raw, part: PartType::System, arch: s.arch }, s.data.clone());
                    }
                    let free = img.slots().iter().position(|d| !d.used);
                    match img.add_object(obj, None) {
                        Ok(new) => {
                            prop_assert_eq!(Some(new as usize - 1), free, "first free slot");
                            model.insert(new, s.data.clone());
                        }
                        Err(Error::NoFreeDescriptor { .. }) => prop_assert!(free.is_none()),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                2 => {
                    let r = img.delete_object(id, DeleteOptions { zero: flag, compact: !flag, time: None });
                    prop_assert_eq!(r.is_ok(), model.remove(&id).is_some());
                }
                _ => {
                    let was = img.descriptor(id).ok().and_then(|d| d.partition());
                    let r = img.set_primary(id, None);
                    match was {
                        Some(p) if matches!(p.part, PartType::System | PartType::PrimSys) => {
                            prop_assert!(r.is_ok());
                            prop_assert_eq!(img.header().arch(), p.arch);
                        }
                        _ => prop_assert!(
                            matches!(
                                r,
                                Err(Error::ObjectNotFound { .. }
                                    | Error::NotPartition { .. }
                                    | Error::NotSystemPartition { .. })
                            ),
                            "{:?}",
                            r
                        ),
                    }
                }
            }
            store = img.into_store();
            let img = Image::from_store(store.clone()).unwrap();
            check_layout(&img, false);
            prop_assert!(img.descriptors().filter(|d| d.is_partition_of(PartType::PrimSys)).count() <= 1);
            let ids: Vec<u32> = img.descriptors().map(|d| d.id()).collect();
            prop_assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
            for (id, data) in &model {
                prop_assert_eq!(&img.read_object(*id).unwrap(), data);
            }
            store = img.into_store();
        }
    }
}

#[test]
fn second_primary_partition_is_refused() {
    let meta = PartitionMeta {
        fs: FsType::Squash,
        part: PartType::PrimSys,
        arch: Arch::Amd64,
    };
    let mut c = Creator::new(Cursor::new(Vec::new()), CreateOptions::deterministic()).unwrap();
    c.add(ObjectInput::partition(meta, vec![1])).unwrap();
    let err = c.add(ObjectInput::partition(meta, vec![2])).unwrap_err();
    assert!(
        matches!(err, Error::PrimaryPartitionExists { id: 1 }),
        "{err}"
    );
    let bad = PartitionMeta {
        arch: Arch::Unknown,
        ..meta
    };
    assert!(matches!(
        c.add(ObjectInput::partition(bad, vec![])),
        Err(Error::UnknownArch { .. })
    ));
    assert!(matches!(
        c.add(ObjectInput::deffile(vec![]).name(&"n".repeat(129))),
        Err(Error::NameTooLong { len: 129 })
    ));
    assert!(matches!(
        c.add(ObjectInput::deffile(vec![]).group(0)),
        Err(Error::InvalidGroupId { value: 0 })
    ));
}

#[test]
fn capacity_and_launch_script_limits() {
    let opts = CreateOptions {
        descriptors: 1,
        ..CreateOptions::deterministic()
    };
    let mut c = Creator::new(Cursor::new(Vec::new()), opts).unwrap();
    c.add(ObjectInput::deffile(vec![1])).unwrap();
    assert!(matches!(
        c.add(ObjectInput::deffile(vec![1])),
        Err(Error::NoFreeDescriptor { total: 1 })
    ));
    let opts = CreateOptions {
        launch_script: vec![b'#'; 32],
        ..CreateOptions::default()
    };
    assert!(matches!(
        Creator::new(Cursor::new(Vec::new()), opts),
        Err(Error::LaunchScriptTooLong { len: 32 })
    ));
}

#[test]
fn apptainer_options_give_random_id_and_current_time() {
    let bytes = Creator::new(Cursor::new(Vec::new()), CreateOptions::apptainer())
        .unwrap()
        .finish()
        .unwrap()
        .into_inner();
    let img = Image::from_store(bytes).unwrap();
    let h = img.header();
    assert_eq!(h.launch_script(), sifr_sif::APPTAINER_LAUNCH_SCRIPT);
    assert!(!h.id_is_nil());
    assert!(h.created_at > 1_700_000_000);
    assert!(!h.is_deterministic());
}

#[test]
fn compaction_truncates_after_the_last_live_object() {
    let mut c = Creator::new(Cursor::new(Vec::new()), CreateOptions::deterministic()).unwrap();
    c.add(ObjectInput::deffile(vec![1; 10])).unwrap();
    c.add(ObjectInput::generic("big", vec![2; 5000])).unwrap();
    let mut img = Image::from_store(c.finish().unwrap().into_inner()).unwrap();
    img.delete_object(
        2,
        DeleteOptions {
            zero: false,
            compact: false,
            time: None,
        },
    )
    .unwrap();
    assert_eq!(
        img.header().data_size,
        5010,
        "no compaction keeps the data size"
    );
    assert_eq!(
        img.header().modified_at,
        GO_ZERO_TIME,
        "deterministic images stay deterministic"
    );
    let mut img = Image::from_store(img.into_store()).unwrap();
    img.add_object(ObjectInput::generic("b", vec![3; 5]), Some(42))
        .unwrap();
    assert_eq!(
        img.descriptor(2).unwrap().offset(),
        32186,
        "placed after the furthest live object"
    );
    assert_eq!(img.descriptor(2).unwrap().created_at, 42);
    img.delete_object(
        2,
        DeleteOptions {
            zero: true,
            compact: true,
            time: Some(7),
        },
    )
    .unwrap();
    assert_eq!(img.header().data_size, 10);
    assert_eq!(img.header().modified_at, 7);
    assert_eq!(img.into_store().len(), 32186);
}

#[test]
fn partition_streams_into_a_file_and_reads_back_through_the_sink() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s.sif");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let mut c = Creator::new(file, CreateOptions::apptainer()).unwrap();
    c.add(ObjectInput::deffile(b"Bootstrap: scratch\n".to_vec()))
        .unwrap();
    let meta = PartitionMeta {
        fs: FsType::Squash,
        part: PartType::PrimSys,
        arch: Arch::Amd64,
    };
    let id = c
        .add_partition_with::<Error>("", meta, |sink| {
            assert_eq!(sink.image_offset(), 32768);
            sink.write_all(b"....0123456789").map_err(Error::Source)?;
            sink.seek(SeekFrom::Start(4)).map_err(Error::Source)?;
            let mut back = Vec::new();
            sink.read_to_end(&mut back).map_err(Error::Source)?;
            assert_eq!(back, b"0123456789");
            sink.seek(SeekFrom::Start(0)).map_err(Error::Source)?;
            sink.write_all(b"hsqs").map_err(Error::Source)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(id, 2);
    c.finish().unwrap();
    let img = Image::open(&path).unwrap();
    let p = img.primary_partition().unwrap();
    assert_eq!((p.offset(), p.size()), (32768, 14));
    assert_eq!(img.header().arch(), Arch::Amd64);
    assert_eq!(img.read_object(2).unwrap(), b"hsqs0123456789");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32768 + 14);
}

#[test]
fn empty_aligned_object_past_the_end_still_opens() {
    let mut img = Image::from_store(
        Creator::new(Cursor::new(Vec::new()), CreateOptions::deterministic())
            .unwrap()
            .finish()
            .unwrap()
            .into_inner(),
    )
    .unwrap();
    let meta = PartitionMeta {
        fs: FsType::Raw,
        part: PartType::Data,
        arch: Arch::Amd64,
    };
    img.add_object(ObjectInput::partition(meta, Vec::new()), None)
        .unwrap();
    let img = Image::from_store(img.into_store()).unwrap();
    assert_eq!(img.descriptor(1).unwrap().offset(), 32768);
    assert!(img.read_object(1).unwrap().is_empty());
}
