//! Randomly changed signed images: verifying them never panics, and a changed byte in a signed
//! object's data is always caught (the verdict fails). Deterministic (a fixed seed), so a
//! failure reproduces.

use std::fs;
use std::path::Path;

use sifr_sif::{DataType, Image};
use sifr_sign::verify::{Keys, Options, verify};
use sifr_sign::{dsse, openpgp};
use sifr_testkit::Rng;

fn keys(f: &Path) -> Keys {
    let asc = fs::read(f.join("keys/pgp-public.asc")).unwrap();
    let pem = fs::read_to_string(f.join("keys/ed25519-public.pem")).unwrap();
    Keys {
        pgp: Some(openpgp::read_public_keys(&asc).unwrap()),
        dsse: Some(vec![dsse::PublicKey::from_pem(&pem).unwrap()]),
    }
}

#[test]
fn changed_bytes_never_panic_and_signed_data_changes_always_fail() {
    let Some(f) = sifr_testkit::sif_fixtures() else {
        return;
    };
    let k = keys(&f);
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = fs::read_dir(f.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("-signed-"))
        .collect();
    names.sort();
    let mut rng = Rng::new(23);
    let mut caught = 0;
    for i in 0..400 {
        let src = rng.pick(&names);
        let mut b = fs::read(src).unwrap();
        let original = Image::open(src).unwrap();
        // Half the time a byte of some object's data, else anywhere in the file.
        let at = if rng.chance(50) {
            let ds: Vec<_> = original.descriptors().filter(|d| d.size() > 0).collect();
            let d = rng.pick(&ds);
            d.offset() as usize + rng.below(d.size() as usize)
        } else {
            rng.below(b.len())
        };
        b[at] ^= rng.flip() | 1;
        let p = dir.path().join(format!("m{i}.sif"));
        fs::write(&p, &b).unwrap();
        let Ok(image) = Image::open(&p) else { continue };
        let legacy = src.to_string_lossy().contains("legacy");
        let opts = Options {
            legacy,
            all: legacy,
            ..Options::default()
        };
        let Ok(results) = verify(&image, &k, &opts) else {
            continue;
        };
        let ok = !results.is_empty() && results.iter().all(|r| r.ok());
        // A byte of a signed data object (not a signature) must be caught.
        let in_signed_data = original.descriptors().any(|d| {
            d.data_type() != DataType::Signature
                && (d.offset()..d.end()).contains(&(at as u64))
                && results
                    .iter()
                    .any(|r| r.verified.contains(&d.id) || r.failure.is_some())
        });
        if in_signed_data {
            assert!(
                !ok,
                "{}: byte {at} changed, yet verified: {results:#?}",
                src.display()
            );
            caught += 1;
        }
    }
    assert!(caught > 50, "only {caught} changes landed in signed data");
}
