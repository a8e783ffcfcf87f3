//! The upstream signed images in `shared/fixtures/sif` verify with the keys that signed them,
//! fail with other keys and after one byte of a partition changes; images sifr signs verify.
//! (Expectations from the SIF library's `pkg/integrity` verify tests and Apptainer's
//! `e2e/verify` and `e2e/sign`.)

use std::fs;
use std::path::{Path, PathBuf};

use sifr_sif::{Image, Link};
use sifr_sign::verify::{Failure, Keys, Options, SignatureResult, verify};
use sifr_sign::{dsse, metadata, openpgp, sign};

fn fixtures() -> Option<PathBuf> {
    sifr_testkit::sif_fixtures()
}

fn pgp_keys(f: &Path) -> Keys {
    let asc = fs::read(f.join("keys/pgp-public.asc")).unwrap();
    Keys {
        pgp: Some(openpgp::read_public_keys(&asc).unwrap()),
        dsse: None,
    }
}

fn pem_keys(f: &Path, names: &[&str]) -> Keys {
    Keys {
        pgp: None,
        dsse: Some(
            names
                .iter()
                .map(|n| {
                    let pem = fs::read_to_string(f.join(format!("keys/{n}-public.pem"))).unwrap();
                    dsse::PublicKey::from_pem(&pem).unwrap()
                })
                .collect(),
        ),
    }
}

fn run(path: &Path, keys: &Keys, opts: &Options) -> Vec<SignatureResult> {
    let image = Image::open(path).unwrap();
    verify(&image, keys, opts).unwrap()
}

fn all_ok(r: &[SignatureResult]) -> bool {
    !r.is_empty() && r.iter().all(|r| r.ok())
}

fn legacy(all: bool, groups: &[u32]) -> Options {
    Options {
        legacy: true,
        all,
        groups: groups.to_vec(),
        ..Options::default()
    }
}

/// (image, options, objects expected verified)
fn pgp_cases() -> Vec<(&'static str, Options, Vec<u32>)> {
    vec![
        ("one-group-signed-pgp.sif", Options::default(), vec![1, 2]),
        (
            "two-groups-signed-pgp.sif",
            Options::default(),
            vec![1, 2, 3],
        ),
        ("one-group-signed-legacy.sif", legacy(false, &[]), vec![2]),
        (
            "one-group-signed-legacy-all.sif",
            legacy(true, &[]),
            vec![1, 2],
        ),
        (
            "one-group-signed-legacy-group.sif",
            legacy(false, &[1]),
            vec![1, 2],
        ),
        ("two-groups-signed-legacy.sif", legacy(false, &[]), vec![2]),
        (
            "two-groups-signed-legacy-all.sif",
            legacy(false, &[]),
            vec![2],
        ),
        (
            "two-groups-signed-legacy-group.sif",
            legacy(false, &[1]),
            vec![1, 2],
        ),
    ]
}

#[test]
fn every_pgp_signed_fixture_verifies_with_its_key() {
    let Some(f) = fixtures() else { return };
    let keys = pgp_keys(&f);
    for (name, opts, want) in pgp_cases() {
        let r = run(&f.join("images").join(name), &keys, &opts);
        assert!(all_ok(&r), "{name}: {r:#?}");
        let mut got: Vec<u32> = r.iter().flat_map(|r| r.verified.clone()).collect();
        got.sort_unstable();
        assert_eq!(got, want, "{name}");
        for x in &r {
            let Some(sifr_sign::verify::Signer::Pgp(info)) = &x.signer else {
                panic!("{name}: no PGP signer in {x:?}");
            };
            assert_eq!(info.fingerprint, "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84");
        }
    }
}

#[test]
fn legacy_signatures_are_not_accepted_without_asking() {
    let Some(f) = fixtures() else { return };
    let r = run(
        &f.join("images/one-group-signed-legacy-group.sif"),
        &pgp_keys(&f),
        &Options::default(),
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].failure, Some(Failure::NoGroupSignature(1)));
}

#[test]
fn every_dsse_fixture_verifies_with_either_of_its_keys() {
    let Some(f) = fixtures() else { return };
    for name in ["one-group-signed-dsse.sif", "two-groups-signed-dsse.sif"] {
        for key in ["ed25519", "rsa"] {
            let r = run(
                &f.join("images").join(name),
                &pem_keys(&f, &[key]),
                &Options::default(),
            );
            assert!(all_ok(&r), "{name} with {key}: {r:#?}");
        }
    }
}

#[test]
fn a_different_key_fails() {
    let Some(f) = fixtures() else { return };
    // A PGP key that did not sign.
    let other = openpgp::generate(&openpgp::NewPair {
        name: "Other".into(),
        email: "o@example.org".into(),
        comment: String::new(),
        password: String::new(),
        bits: 2048,
    })
    .unwrap();
    let keys = Keys {
        pgp: Some(vec![other.to_public_key()]),
        dsse: None,
    };
    for (name, opts, _) in pgp_cases() {
        let r = run(&f.join("images").join(name), &keys, &opts);
        assert!(r.iter().all(|r| !r.ok()), "{name}: {r:#?}");
        let why = r[0].failure.as_ref().unwrap().to_string();
        assert!(why.contains("not in the keyring"), "{name}: {why}");
    }
    // The ECDSA key signed neither DSSE image.
    for name in ["one-group-signed-dsse.sif", "two-groups-signed-dsse.sif"] {
        let r = run(
            &f.join("images").join(name),
            &pem_keys(&f, &["ecdsa"]),
            &Options::default(),
        );
        assert!(r.iter().all(|r| !r.ok()), "{name}: {r:#?}");
        // And PGP keys do not open a DSSE envelope.
        let r = run(
            &f.join("images").join(name),
            &pgp_keys(&f),
            &Options::default(),
        );
        assert_eq!(r[0].failure, Some(Failure::NoDsseKey));
    }
}

/// Copies `name` into `dir` with one byte of object `id`'s data flipped.
fn tampered(f: &Path, dir: &Path, name: &str, id: u32) -> PathBuf {
    let src = f.join("images").join(name);
    let dst = dir.join(name);
    let mut bytes = fs::read(&src).unwrap();
    let d = Image::open(&src).unwrap().descriptor(id).unwrap().clone();
    let at = (d.offset() + d.size() / 2) as usize;
    bytes[at] ^= 0x01;
    fs::write(&dst, bytes).unwrap();
    dst
}

#[test]
fn one_changed_byte_of_a_partition_fails_and_names_the_object() {
    let Some(f) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pgp = pgp_keys(&f);
    for (name, keys, id) in [
        ("one-group-signed-pgp.sif", pgp.clone(), 2),
        ("two-groups-signed-pgp.sif", pgp.clone(), 3),
        ("one-group-signed-dsse.sif", pem_keys(&f, &["ed25519"]), 2),
        ("two-groups-signed-dsse.sif", pem_keys(&f, &["rsa"]), 3),
    ] {
        let p = tampered(&f, dir.path(), name, id);
        let r = run(&p, &keys, &Options::default());
        let failures: Vec<_> = r.iter().filter_map(|r| r.failure.clone()).collect();
        assert_eq!(
            failures,
            vec![Failure::ObjectIntegrity(id)],
            "{name}: {r:#?}"
        );
    }
    for (name, opts) in [
        ("one-group-signed-legacy.sif", legacy(false, &[])),
        ("one-group-signed-legacy-all.sif", legacy(true, &[])),
        ("two-groups-signed-legacy.sif", legacy(false, &[])),
    ] {
        let p = tampered(&f, dir.path(), name, 2);
        let r = run(&p, &pgp, &opts);
        assert!(
            r.iter()
                .any(|r| r.failure == Some(Failure::ObjectIntegrity(2))),
            "{name}: {r:#?}"
        );
    }
    let p = tampered(&f, dir.path(), "one-group-signed-legacy-group.sif", 2);
    let r = run(&p, &pgp, &legacy(false, &[1]));
    assert_eq!(r[0].failure, Some(Failure::GroupIntegrity(vec![1, 2])));
}

#[test]
fn computed_metadata_is_byte_identical_to_what_upstream_signed() {
    let Some(f) = fixtures() else { return };
    let path = f.join("images/two-groups-signed-pgp.sif");
    let image = Image::open(&path).unwrap();
    for (sig, group) in [(4, 1), (5, 2)] {
        let data = image.read_object(sig).unwrap();
        let m = openpgp::parse_clearsigned(&data).unwrap();
        let signed = openpgp::clearsigned_plaintext(&m);
        let ids: Vec<_> = image
            .descriptors()
            .filter(|d| d.group() == Some(group))
            .collect();
        let md = metadata::ImageMetadata::compute(&image, group, &ids, metadata::Algorithm::Sha256)
            .unwrap();
        assert_eq!(
            String::from_utf8(md.to_json()).unwrap(),
            String::from_utf8(signed).unwrap()
        );
    }
}

#[test]
fn dsse_key_ids_are_the_keys_openssh_fingerprints() {
    let Some(f) = fixtures() else { return };
    // The fixture envelopes name their signers so; the ECDSA value is `ssh-keygen -l`'s.
    for (name, want) in [
        (
            "ed25519",
            "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs",
        ),
        ("rsa", "SHA256:BhCwr7qZulYcOMSl2Jt2DuYHxHNnN6th4NdMqR/PGa4"),
        (
            "ecdsa",
            "SHA256:13cNV0A11AxgIQYCvlDmJlRi0CjRtjnYF47RzrMhlaU",
        ),
    ] {
        let pem = fs::read_to_string(f.join(format!("keys/{name}-public.pem"))).unwrap();
        assert_eq!(dsse::PublicKey::from_pem(&pem).unwrap().key_id(), want);
    }
}

#[test]
fn images_sifr_signs_verify_and_fail_after_tampering() {
    let Some(f) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = openpgp::generate(&openpgp::NewPair {
        name: "Signer".into(),
        email: "s@example.org".into(),
        comment: String::new(),
        password: "secret".into(),
        bits: 2048,
    })
    .unwrap();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let ed_pub = dsse::PublicKey::Ed25519(ed.verifying_key());
    let cases: Vec<(sign::SigningKey, Keys)> = vec![
        (
            sign::SigningKey::Pgp {
                key: Box::new(secret.clone()),
                password: "secret".into(),
            },
            Keys {
                pgp: Some(vec![secret.to_public_key()]),
                dsse: None,
            },
        ),
        (
            sign::SigningKey::Dsse(vec![dsse::PrivateKey::Ed25519(ed)]),
            Keys {
                pgp: None,
                dsse: Some(vec![ed_pub]),
            },
        ),
    ];
    for (i, (key, keys)) in cases.into_iter().enumerate() {
        let p = dir.path().join(format!("signed-{i}.sif"));
        fs::copy(f.join("images/two-groups.sif"), &p).unwrap();
        let signed = sign::sign_path(&p, &key, &sign::Options::default()).unwrap();
        assert_eq!(signed.len(), 2);
        assert_eq!(signed[0].objects, vec![1, 2]);
        let image = Image::open(&p).unwrap();
        let d = image.descriptor(signed[1].signature).unwrap();
        assert_eq!(d.link(), Link::Group(2));
        assert_eq!(d.group(), None);
        drop(image);
        let r = run(&p, &keys, &Options::default());
        assert!(all_ok(&r), "{r:#?}");
        // Tamper with object 3 (group 2).
        let mut bytes = fs::read(&p).unwrap();
        bytes[40960 + 100] ^= 0xff;
        fs::write(&p, bytes).unwrap();
        let r = run(&p, &keys, &Options::default());
        let failures: Vec<_> = r.iter().filter_map(|r| r.failure.clone()).collect();
        assert_eq!(failures, vec![Failure::ObjectIntegrity(3)]);
    }
    // A wrong password does not sign.
    let p = dir.path().join("wrong.sif");
    fs::copy(f.join("images/one-group.sif"), &p).unwrap();
    let key = sign::SigningKey::Pgp {
        key: Box::new(secret),
        password: "nope".into(),
    };
    assert!(sign::sign_path(&p, &key, &sign::Options::default()).is_err());
}
