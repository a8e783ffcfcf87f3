//! The execution control list on the upstream fixtures: Apptainer's `ecl.toml` semantics
//! (`internal/pkg/syecl` and its tests: whitelist, whitestrict, blacklist, dirpath groups,
//! legacy mode, unvalidated signers).

use std::fs;
use std::path::{Path, PathBuf};

use sifr_sif::Image;
use sifr_sign::ecl::{EclConfig, EclError};
use sifr_sign::{SignedPublicKey, openpgp};

const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";
const OTHER: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

fn keys(f: &Path) -> Vec<SignedPublicKey> {
    openpgp::read_public_keys(&fs::read(f.join("keys/pgp-public.asc")).unwrap()).unwrap()
}

fn config(text: &str) -> EclConfig {
    EclConfig::parse(text, Path::new("ecl.toml")).unwrap()
}

fn group(mode: &str, fps: &[&str], dir: &str) -> String {
    let list: Vec<String> = fps.iter().map(|f| format!("\"{f}\"")).collect();
    format!(
        "activated = true\n[[execgroup]]\ntagname = \"g\"\nmode = \"{mode}\"\ndirpath = \"{dir}\"\nkeyfp = [{}]\n",
        list.join(", ")
    )
}

fn check(c: &EclConfig, path: &Path, k: &[SignedPublicKey]) -> Result<(), EclError> {
    let image = Image::open(path).unwrap();
    c.check(&fs::canonicalize(path).unwrap(), &image, k)
}

fn img(f: &Path, name: &str) -> PathBuf {
    f.join("images").join(name)
}

#[test]
fn modes_decide_by_the_signers() {
    let Some(f) = sifr_testkit::sif_fixtures() else {
        return;
    };
    let k = keys(&f);
    let signed = img(&f, "two-groups-signed-pgp.sif");
    assert_eq!(
        check(&config(&group("whitelist", &[OTHER, FP], "")), &signed, &k),
        Ok(())
    );
    assert_eq!(
        check(&config(&group("whitelist", &[OTHER], "")), &signed, &k),
        Err(EclError::NotSignedByRequired { group: "g".into() })
    );
    assert_eq!(
        check(&config(&group("whitestrict", &[FP], "")), &signed, &k),
        Ok(())
    );
    assert!(
        check(
            &config(&group("whitestrict", &[FP, OTHER], "")),
            &signed,
            &k
        )
        .is_err()
    );
    assert_eq!(
        check(&config(&group("blacklist", &[FP], "")), &signed, &k),
        Err(EclError::SignedByForbidden { group: "g".into() })
    );
    assert_eq!(
        check(&config(&group("blacklist", &[OTHER], "")), &signed, &k),
        Ok(())
    );
    // Fingerprints compare without regard to case.
    let lower = FP.to_lowercase();
    assert_eq!(
        check(&config(&group("whitelist", &[&lower], "")), &signed, &k),
        Ok(())
    );
}

#[test]
fn unsigned_tampered_and_unverifiable_images_are_refused() {
    let Some(f) = sifr_testkit::sif_fixtures() else {
        return;
    };
    let k = keys(&f);
    let c = config(&group("whitelist", &[FP], ""));
    let e = check(&c, &img(&f, "one-group.sif"), &k).unwrap_err();
    assert!(
        matches!(e, EclError::NotValid(ref m) if m.contains("signature not found")),
        "{e}"
    );
    // Without the key in the global keyring the signer is unvalidated.
    assert_eq!(
        check(&c, &img(&f, "one-group-signed-pgp.sif"), &[]),
        Err(EclError::NotSignedByRequired { group: "g".into() })
    );
    // ... while a blacklist still sees who signed.
    let b = config(&group("blacklist", &[FP], ""));
    assert!(check(&b, &img(&f, "one-group-signed-pgp.sif"), &[]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.sif");
    let mut bytes = fs::read(img(&f, "one-group-signed-pgp.sif")).unwrap();
    bytes[36864 + 9] ^= 1;
    fs::write(&p, bytes).unwrap();
    let e = check(&c, &p, &k).unwrap_err();
    assert!(
        matches!(e, EclError::NotValid(ref m) if m.contains("integrity compromised: 2")),
        "{e}"
    );
    // Not activated: anything runs.
    let off =
        config(&group("whitelist", &[FP], "").replace("activated = true", "activated = false"));
    assert_eq!(check(&off, &img(&f, "one-group.sif"), &k), Ok(()));
}

#[test]
fn groups_are_chosen_by_directory_and_legacy_mode_reads_old_signatures() {
    let Some(f) = sifr_testkit::sif_fixtures() else {
        return;
    };
    let k = keys(&f);
    let images = fs::canonicalize(f.join("images")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = fs::canonicalize(dir.path()).unwrap();
    let text = format!(
        "{}\n[[execgroup]]\ntagname = \"tmp\"\nmode = \"blacklist\"\ndirpath = \"{}\"\nkeyfp = [\"{FP}\"]\n",
        group("whitelist", &[FP], images.to_str().unwrap()),
        elsewhere.display()
    );
    let c = config(&text);
    let signed = img(&f, "one-group-signed-pgp.sif");
    assert_eq!(check(&c, &signed, &k), Ok(()));
    let copy = elsewhere.join("x.sif");
    fs::copy(&signed, &copy).unwrap();
    assert_eq!(
        check(&c, &copy, &k),
        Err(EclError::SignedByForbidden {
            group: "tmp".into()
        })
    );
    let other = tempfile::tempdir().unwrap();
    let p = other.path().join("y.sif");
    fs::copy(&signed, &p).unwrap();
    assert!(matches!(check(&c, &p, &k), Err(EclError::NoGroup { .. })));

    let legacy = config(&format!(
        "legacyinsecure = true\n{}",
        group("whitelist", &[FP], "")
    ));
    assert_eq!(
        check(&legacy, &img(&f, "one-group-signed-legacy.sif"), &k),
        Ok(())
    );
    assert!(
        check(
            &config(&group("whitelist", &[FP], "")),
            &img(&f, "one-group-signed-legacy.sif"),
            &k
        )
        .is_err()
    );
}

#[test]
fn invalid_files_are_refused_with_the_reason() {
    for (text, want) in [
        (group("greylist", &[FP], ""), "the mode field"),
        (group("whitelist", &["ABC"], ""), "40 chars hex"),
        (
            format!(
                "{}{}",
                group("whitelist", &[FP], ""),
                group("blacklist", &[FP], "").replace("activated = true\n", "")
            ),
            "only appear in one execgroup",
        ),
        (group("whitelist", &[FP], "/nonexistent-ecl-dir"), "dirpath"),
        // An empty whitestrict list would pass images whose only fault is an unknown signer.
        (
            group("whitestrict", &[], ""),
            "at least one key fingerprint",
        ),
        (group("whitelist", &[], ""), "at least one key fingerprint"),
        ("activated = yes".to_string(), "ecl.toml"),
    ] {
        let e = EclConfig::parse(&text, Path::new("ecl.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
}
