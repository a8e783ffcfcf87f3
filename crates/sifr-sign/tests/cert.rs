//! X.509 chains for `verify --certificate`, made with openssl: accepted under their root, not
//! under another, not outside their validity period (Go's `x509.Verify` rules).

use std::path::Path;
use std::process::Command;

use sifr_sign::cert::{self, CertError};
use sifr_testkit::{have, run_ok, skip};

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

fn load(dir: &Path, name: &str) -> Vec<sifr_sign::x509::Certificate> {
    cert::load_pem(&std::fs::read(dir.join(name)).unwrap(), name).unwrap()
}

#[test]
fn a_leaf_verifies_under_its_root_and_only_while_valid() {
    if !have("openssl") {
        skip("openssl not installed (scripts/deps.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("leaf.ext"), "extendedKeyUsage=codeSigning\n").unwrap();
    for name in ["root", "other"] {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ed25519",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "3",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ],
        );
    }
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=leaf",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    let leaf = load(d, "leaf.pem").remove(0);
    let root = load(d, "root.pem");
    let other = load(d, "other.pem");
    let key = cert::verify_chain(&leaf, &[], &root, None).unwrap();
    assert_eq!(key.kind(), "ECDSA P-384");
    assert!(matches!(
        cert::verify_chain(&leaf, &[], &other, None),
        Err(CertError::UnknownAuthority { .. })
    ));
    // The root given as an intermediate does not make it trusted.
    assert!(cert::verify_chain(&leaf, &root, &other, None).is_err());
    let in_ten_days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 86_400;
    assert!(matches!(
        cert::verify_chain(&leaf, &[], &root, Some(in_ten_days)),
        Err(CertError::Validity { .. })
    ));
    assert!(matches!(
        cert::verify_chain(&leaf, &[], &root, Some(0)),
        Err(CertError::Validity { .. })
    ));
}
