//! `sifr verify`, `sifr sign` and `sifr key` on the upstream signed fixtures and on images sifr
//! signs, judged by independent implementations: `gpg --verify` checks sifr's clear-signed
//! image metadata, `openssl` the signatures in sifr's DSSE envelopes. Expectations from
//! Apptainer's `e2e/verify/verify.go`, `e2e/sign/sign.go` and `e2e/key/key.go`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sifr_testkit::{TestCommand, TestOutput, have, run_ok, skip};

struct Env {
    tmp: tempfile::TempDir,
    fixtures: PathBuf,
}

impl Env {
    fn new() -> Option<Env> {
        let fixtures = sifr_testkit::sif_fixtures()?;
        Some(Env {
            tmp: tempfile::tempdir().unwrap(),
            fixtures,
        })
    }

    fn keys(&self) -> PathBuf {
        self.tmp.path().join("keys")
    }

    fn sifr(&self, args: &[&str]) -> TestCommand {
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .without_caller_settings()
            .env("APPTAINER_KEYSDIR", self.keys())
            .env("APPTAINER_CONFIGDIR", self.tmp.path().join("config"))
            .env_remove("SIFR_KEY_PASSPHRASE")
            .args(args)
    }

    fn image(&self, name: &str) -> String {
        self.fixtures
            .join("images")
            .join(name)
            .display()
            .to_string()
    }

    fn key_file(&self, name: &str) -> String {
        self.fixtures.join("keys").join(name).display().to_string()
    }

    /// A copy of a fixture image in the temporary directory.
    fn copy(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::copy(self.fixtures.join("images").join(name), &p).unwrap();
        p
    }

    fn import_upstream_key(&self) {
        self.sifr(&["key", "import", &self.key_file("pgp-public.asc")])
            .output()
            .assert_success();
    }
}

fn failed(o: &TestOutput) {
    assert!(
        !o.status.success(),
        "expected a failure\nstdout:\n{}\nstderr:\n{}",
        o.stdout_text(),
        o.stderr_text()
    );
}

fn flip_byte(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x01;
    fs::write(path, b).unwrap();
}

#[test]
fn upstream_pgp_images_verify_with_the_imported_key_and_fail_without_it() {
    let Some(e) = Env::new() else { return };
    // No key yet: the signer is unknown (e2e/verify: "verify with no key").
    let o = e
        .sifr(&["verify", "--local", &e.image("one-group-signed-pgp.sif")])
        .output();
    failed(&o);
    o.assert_stderr_contains("not in the keyring");
    e.import_upstream_key();
    for (name, extra) in [
        ("one-group-signed-pgp.sif", &[][..]),
        ("two-groups-signed-pgp.sif", &[][..]),
        ("one-group-signed-legacy.sif", &["--legacy-insecure"][..]),
        (
            "one-group-signed-legacy-all.sif",
            &["--legacy-insecure", "--all"][..],
        ),
        (
            "one-group-signed-legacy-group.sif",
            &["--legacy-insecure", "-g", "1"][..],
        ),
        ("two-groups-signed-legacy.sif", &["--legacy-insecure"][..]),
        // Signed object by object, 1 and 2 only (so `--all` fails for object 3, as upstream).
        (
            "two-groups-signed-legacy-all.sif",
            &["--legacy-insecure", "--sif-id", "1"][..],
        ),
        (
            "two-groups-signed-legacy-group.sif",
            &["--legacy-insecure", "--group-id", "1"][..],
        ),
    ] {
        let mut args = vec!["verify"];
        args.extend_from_slice(extra);
        let img = e.image(name);
        args.push(&img);
        let o = e.sifr(&args).output();
        o.assert_success();
        let out = o.stdout_text();
        assert!(
            out.contains("[LOCAL]            Signing entity: Unit Test <unit@test.com>"),
            "{name}: {out}"
        );
        assert!(
            out.contains("Fingerprint: 12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84"),
            "{name}: {out}"
        );
        assert!(
            out.contains("Objects verified:\nID  |GROUP   |LINK    |TYPE\n"),
            "{name}: {out}"
        );
    }
    let o = e
        .sifr(&[
            "verify",
            "--legacy-insecure",
            "--all",
            &e.image("two-groups-signed-legacy-all.sif"),
        ])
        .output();
    failed(&o);
    o.assert_stderr_contains("signature not found for object 3");
    // A legacy image without --legacy-insecure fails with a hint.
    let o = e
        .sifr(&["verify", &e.image("one-group-signed-legacy-group.sif")])
        .output();
    failed(&o);
    o.assert_stderr_contains("--legacy-insecure");
}

#[test]
fn a_changed_partition_byte_fails_and_names_the_object() {
    let Some(e) = Env::new() else { return };
    e.import_upstream_key();
    let p = e.copy("two-groups-signed-pgp.sif");
    flip_byte(&p, 40960 + 1000); // object 3, group 2
    let o = e.sifr(&["verify", p.to_str().unwrap()]).output();
    failed(&o);
    o.assert_stderr_contains("data object integrity compromised: 3");
    assert!(
        o.stdout_text()
            .contains("Error encountered during signature verification")
    );
    // --json still prints the document, with DataCheck false for the changed object.
    let o = e.sifr(&["verify", "--json", p.to_str().unwrap()]).output();
    failed(&o);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout_text()).unwrap();
    assert_eq!(doc["Signatures"], 2);
    let keys = doc["SignerKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[2]["Signer"]["DataCheck"], false);
    assert_eq!(
        keys[0]["Signer"]["Fingerprint"],
        "12045c8c0b1004d058de4beda20c27ee7ff7ba84"
    );
    // A legacy object signature too.
    let p = e.copy("one-group-signed-legacy.sif");
    flip_byte(&p, 36864 + 2);
    let o = e
        .sifr(&["verify", "--legacy-insecure", p.to_str().unwrap()])
        .output();
    failed(&o);
    o.assert_stderr_contains("data object integrity compromised: 2");
}

#[test]
fn dsse_images_verify_with_their_pem_keys_only() {
    let Some(e) = Env::new() else { return };
    for name in ["one-group-signed-dsse.sif", "two-groups-signed-dsse.sif"] {
        for key in ["ed25519-public.pem", "rsa-public.pem"] {
            e.sifr(&["verify", "--key", &e.key_file(key), &e.image(name)])
                .output()
                .assert_success();
        }
        // The environment twin (APPTAINER_VERIFY_KEY) works as the flag.
        e.sifr(&["verify", &e.image(name)])
            .env("APPTAINER_VERIFY_KEY", e.key_file("rsa-public.pem"))
            .output()
            .assert_success();
        let o = e
            .sifr(&[
                "verify",
                "--key",
                &e.key_file("ecdsa-public.pem"),
                &e.image(name),
            ])
            .output();
        failed(&o);
        o.assert_stderr_contains("verify envelope failed");
    }
    let p = e.copy("one-group-signed-dsse.sif");
    flip_byte(&p, 36864 + 7);
    let o = e
        .sifr(&[
            "verify",
            "--key",
            &e.key_file("ed25519-public.pem"),
            p.to_str().unwrap(),
        ])
        .output();
    failed(&o);
    o.assert_stderr_contains("data object integrity compromised: 2");
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--no-tty"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_new_pair_signs_images_that_sifr_and_gpg_verify() {
    let Some(e) = Env::new() else { return };
    e.sifr(&[
        "key",
        "newpair",
        "--name",
        "Sifr CI",
        "--email",
        "ci@example.org",
        "--comment",
        "test",
        "--password",
        "s3cret",
        "--bit-length",
        "2048",
    ])
    .output()
    .assert_success();
    let list = e.sifr(&["key", "list", "--secret"]).output();
    list.assert_success();
    assert!(
        list.stdout_text()
            .contains("User:              Sifr CI (test) <ci@example.org>")
    );
    // Apptainer's keyring files, owner-only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(e.keys().join("pgp-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let img = e.copy("two-groups.sif");
    let img_s = img.to_str().unwrap();
    // A wrong passphrase signs nothing.
    let o = e
        .sifr(&["sign", "--keyidx", "0", img_s])
        .env("SIFR_KEY_PASSPHRASE", "nope")
        .output();
    failed(&o);
    o.assert_stderr_contains("wrong password");
    e.sifr(&["sign", "--keyidx", "0", img_s])
        .env("SIFR_KEY_PASSPHRASE", "s3cret")
        .output()
        .assert_success();
    let o = e.sifr(&["verify", img_s]).output();
    o.assert_success();
    assert!(
        o.stdout_text()
            .contains("Signing entity: Sifr CI (test) <ci@example.org>")
    );
    let o = e.sifr(&["verify", "--sif-id", "3", img_s]).output();
    o.assert_success();
    assert!(o.stdout_text().contains("3   |2       |NONE    |FS\n"));

    // gpg judges the signature objects (4 and 5) with the exported public key.
    if !have("gpg") {
        skip("gpg not installed (scripts/deps.sh installs gnupg)");
        return;
    }
    let exported = e.tmp.path().join("pub.asc");
    e.sifr(&["key", "export", "--armor", exported.to_str().unwrap()])
        .output()
        .assert_success();
    let home = e.tmp.path().join("gnupg");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let o = gpg(&home, &["--import", exported.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for id in ["4", "5"] {
        let o = e.sifr(&["sif", "dump", id, img_s]).output();
        o.assert_success();
        let msg = e.tmp.path().join(format!("sig{id}.asc"));
        fs::write(&msg, o.stdout_text()).unwrap();
        let v = gpg(&home, &["--verify", msg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&v.stderr);
        assert!(
            v.status.success()
                && err.contains("Good signature from \"Sifr CI (test) <ci@example.org>\""),
            "{err}"
        );
        // The signed text is the image metadata JSON.
        let out = gpg(&home, &["--decrypt", msg.to_str().unwrap()]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["version"], 1);
        // ... and a changed byte of it breaks gpg's check too.
        let bad = o.stdout_text().replace("\"version\":1", "\"version\":2");
        fs::write(&msg, bad).unwrap();
        assert!(
            !gpg(&home, &["--verify", msg.to_str().unwrap()])
                .status
                .success()
        );
    }

    // Export the secret key, remove both, import it back: it signs again.
    let secret = e.tmp.path().join("secret.asc");
    e.sifr(&[
        "key",
        "export",
        "--secret",
        "--armor",
        secret.to_str().unwrap(),
    ])
    .env("SIFR_KEY_PASSPHRASE", "s3cret")
    .output()
    .assert_success();
    let fp = list
        .stdout_text()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Fingerprint:")
                .map(|f| f.trim().to_string())
        })
        .unwrap();
    e.sifr(&["key", "remove", "--both", &fp])
        .output()
        .assert_success();
    assert!(
        !e.sifr(&["key", "list"])
            .output()
            .stdout_text()
            .contains(&fp)
    );
    e.sifr(&["key", "import", secret.to_str().unwrap()])
        .env("SIFR_KEY_PASSPHRASE", "s3cret")
        .output()
        .assert_success();
    assert!(
        e.sifr(&["key", "list", "--secret"])
            .output()
            .stdout_text()
            .contains(&fp)
    );
}

/// Verifies one signature of a DSSE envelope with openssl.
fn openssl_verifies(dir: &Path, public_pem: &Path, kind: &str, envelope: &[u8]) -> bool {
    let env: serde_json::Value = serde_json::from_slice(envelope).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload_type = env["payloadType"].as_str().unwrap();
    let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
    let mut pae = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&payload);
    let sig = b64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let (pae_file, sig_file) = (dir.join("pae"), dir.join("sig"));
    fs::write(&pae_file, pae).unwrap();
    fs::write(&sig_file, sig).unwrap();
    let mut cmd = Command::new("openssl");
    if kind == "ed25519" {
        cmd.args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
            .arg(public_pem)
            .arg("-in")
            .arg(&pae_file)
            .arg("-sigfile")
            .arg(&sig_file);
    } else {
        cmd.args(["dgst", "-sha256", "-verify"])
            .arg(public_pem)
            .arg("-signature")
            .arg(&sig_file)
            .arg(&pae_file);
    }
    cmd.output().unwrap().status.success()
}

#[test]
fn pem_keys_sign_dsse_envelopes_that_openssl_verifies() {
    let Some(e) = Env::new() else { return };
    if !have("openssl") {
        skip("openssl not installed (scripts/deps.sh installs it)");
        return;
    }
    for (kind, genargs) in [
        ("ed25519", &["-algorithm", "ed25519"][..]),
        (
            "rsa",
            &["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "ecdsa",
            &["-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
    ] {
        let dir = e.tmp.path().join(kind);
        fs::create_dir(&dir).unwrap();
        let (private, public) = (dir.join("key.pem"), dir.join("pub.pem"));
        run_ok(
            Command::new("openssl")
                .arg("genpkey")
                .args(genargs)
                .arg("-out")
                .arg(&private),
        );
        run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&private)
                .arg("-out")
                .arg(&public),
        );
        let img = dir.join("img.sif");
        fs::copy(e.fixtures.join("images/one-group.sif"), &img).unwrap();
        let img_s = img.to_str().unwrap();
        e.sifr(&["sign", "--key", private.to_str().unwrap(), img_s])
            .output()
            .assert_success();
        e.sifr(&["verify", "--key", public.to_str().unwrap(), img_s])
            .output()
            .assert_success();
        let envelope = e.sifr(&["sif", "dump", "3", img_s]).output();
        envelope.assert_success();
        assert!(
            openssl_verifies(&dir, &public, kind, envelope.stdout_text().as_bytes()),
            "{kind}: openssl rejects sifr's envelope"
        );
        // A key that did not sign fails.
        let o = e
            .sifr(&["verify", "--key", &e.key_file("ecdsa-public.pem"), img_s])
            .output();
        failed(&o);
    }
}

/// `sifr exec` under an activated ECL (`ecl.toml` beside the config file): images that break
/// the rules are refused before any container starts (Apptainer's `e2e/ecl` refusals). The
/// images that pass would start a container, which this file does not do; the library's
/// `tests/ecl.rs` covers those verdicts.
#[test]
fn exec_refuses_unsigned_and_foreign_signed_images_under_the_ecl() {
    let Some(e) = Env::new() else { return };
    let conf = e.tmp.path().join("etc");
    fs::create_dir(&conf).unwrap();
    fs::write(conf.join("sifr.toml"), "").unwrap();
    let fp = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";
    let ecl = |mode: &str, key: &str| {
        fs::write(
            conf.join("ecl.toml"),
            format!(
                "activated = true\n[[execgroup]]\ntagname = \"site\"\nmode = \"{mode}\"\ndirpath = \"\"\nkeyfp = [\"{key}\"]\n"
            ),
        )
        .unwrap();
    };
    // The administrator's global keyring holds the signer's key.
    let config = conf.join("sifr.toml");
    let global = |args: &[&str]| {
        let mut a = vec!["-c", config.to_str().unwrap()];
        a.extend_from_slice(args);
        e.sifr(&a).output()
    };
    fs::copy(
        e.fixtures.join("keys/pgp-public.asc"),
        conf.join("global-pgp-public"),
    )
    .unwrap();
    assert!(
        global(&["key", "list", "--global"])
            .stdout_text()
            .contains(fp)
    );

    ecl("whitelist", fp);
    let o = global(&["exec", &e.image("one-group.sif"), "true"]);
    failed(&o);
    o.assert_stderr_contains("while checking container image with ECL");
    o.assert_stderr_contains("signature not found for object group 1");
    ecl("whitelist", "0123456789ABCDEF0123456789ABCDEF01234567");
    let o = global(&["exec", &e.image("two-groups-signed-pgp.sif"), "true"]);
    failed(&o);
    o.assert_stderr_contains("not signed by the key(s) execgroup `site` requires");
    ecl("blacklist", fp);
    let o = global(&["run", &e.image("one-group-signed-pgp.sif")]);
    failed(&o);
    o.assert_stderr_contains("signed by a key execgroup `site` forbids");
    let bad = e.copy("one-group-signed-pgp.sif");
    flip_byte(&bad, 36864 + 9);
    ecl("whitelist", fp);
    let o = global(&["exec", bad.to_str().unwrap(), "true"]);
    failed(&o);
    o.assert_stderr_contains("data object integrity compromised: 2");
    // An invalid file is an error too.
    ecl("greylist", fp);
    let o = global(&["exec", &e.image("one-group.sif"), "true"]);
    failed(&o);
    o.assert_stderr_contains("while validating ECL configuration");
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

/// `verify --certificate` with a root, an intermediate and code-signing leaves made by
/// openssl (Apptainer's `e2e/verify` certificate cases): the chain must reach the given roots,
/// and the leaf must allow code signing.
#[test]
fn certificate_chains_are_checked_and_their_leaf_key_verifies() {
    let Some(e) = Env::new() else { return };
    if !have("openssl") {
        skip("openssl not installed (scripts/deps.sh installs it)");
        return;
    }
    let d = e.tmp.path().join("pki");
    fs::create_dir(&d).unwrap();
    fs::write(
        d.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n",
    )
    .unwrap();
    fs::write(
        d.join("sign.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=codeSigning\n",
    )
    .unwrap();
    fs::write(
        d.join("tls.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for name in ["root", "other"] {
        let (k, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        let mut a = vec!["req", "-x509"];
        a.extend_from_slice(&ec);
        a.extend_from_slice(&[
            "-keyout",
            &k,
            "-out",
            &pem,
            "-subj",
            &subj,
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&d, &a);
    }
    // root -> int -> leaf (code signing, RSA) and tls (server auth only).
    let issue = |name: &str, ca: &str, ext: &str, key: &[&str]| {
        let mut a = vec!["req"];
        a.extend_from_slice(key);
        let (k, csr, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        a.extend_from_slice(&["-keyout", &k, "-out", &csr, "-subj", &subj]);
        openssl(&d, &a);
        openssl(
            &d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "30",
                "-extfile",
                ext,
            ],
        );
    };
    issue("int", "root", "ca.ext", &ec);
    let rsa = ["-newkey", "rsa:2048", "-nodes"];
    issue("leaf", "int", "sign.ext", &rsa);
    issue("tls", "int", "tls.ext", &rsa);
    let p = |n: &str| d.join(n).display().to_string();

    let img = e.copy("one-group.sif");
    let img_s = img.to_str().unwrap();
    e.sifr(&["sign", "--key", &p("leaf.key"), img_s])
        .output()
        .assert_success();
    let verify = |extra: &[&str]| {
        let mut a = vec!["verify"];
        a.extend_from_slice(extra);
        a.push(img_s);
        e.sifr(&a).output()
    };
    verify(&[
        "--certificate",
        &p("leaf.pem"),
        "--certificate-intermediates",
        &p("int.pem"),
        "--certificate-roots",
        &p("root.pem"),
    ])
    .assert_success();
    // The variables work as the flags.
    e.sifr(&["verify", img_s])
        .env("APPTAINER_VERIFY_CERTIFICATE", p("leaf.pem"))
        .env("APPTAINER_VERIFY_INTERMEDIATES", p("int.pem"))
        .env("APPTAINER_VERIFY_ROOTS", p("root.pem"))
        .output()
        .assert_success();
    // No intermediate, or another root: the chain does not close.
    let o = verify(&[
        "--certificate",
        &p("leaf.pem"),
        "--certificate-roots",
        &p("root.pem"),
    ]);
    failed(&o);
    o.assert_stderr_contains("unknown authority");
    let o = verify(&[
        "--certificate",
        &p("leaf.pem"),
        "--certificate-intermediates",
        &p("int.pem"),
        "--certificate-roots",
        &p("other.pem"),
    ]);
    failed(&o);
    o.assert_stderr_contains("unknown authority");
    // A certificate for TLS servers does not sign code.
    let o = verify(&[
        "--certificate",
        &p("tls.pem"),
        "--certificate-intermediates",
        &p("int.pem"),
        "--certificate-roots",
        &p("root.pem"),
    ]);
    failed(&o);
    o.assert_stderr_contains("does not allow code signing");
    // A valid chain whose leaf did not sign the image.
    let img2 = e.tmp.path().join("by-tls.sif");
    fs::copy(e.fixtures.join("images/one-group.sif"), &img2).unwrap();
    e.sifr(&["sign", "--key", &p("tls.key"), img2.to_str().unwrap()])
        .output()
        .assert_success();
    let o = e
        .sifr(&[
            "verify",
            "--certificate",
            &p("leaf.pem"),
            "--certificate-intermediates",
            &p("int.pem"),
            "--certificate-roots",
            &p("root.pem"),
            img2.to_str().unwrap(),
        ])
        .output();
    failed(&o);
    o.assert_stderr_contains("verify envelope failed");
}

/// A hostile image's "signature" of 17 MiB is refused by its size, never read into memory
/// (found by the review of the signing code).
#[test]
fn an_oversized_signature_object_is_refused_without_reading_it() {
    let Some(env) = Env::new() else { return };
    env.import_upstream_key();
    let img = env.copy("one-group-signed-pgp.sif");
    let big = env.tmp.path().join("big.sig");
    fs::write(&big, vec![b'A'; 17 << 20]).unwrap();
    let (i, b) = (img.to_str().unwrap(), big.to_str().unwrap());
    env.sifr(&[
        "sif",
        "add",
        "--datatype",
        "5",
        "--signhash",
        "1",
        "--signentity",
        "8883491F4268F173C6E5DC49EDECE4F3F38D871E",
        "--link",
        "4026531841",
        i,
        b,
    ])
    .output()
    .assert_success();
    let o = env.sifr(&["verify", i]).output();
    failed(&o);
    assert!(
        o.stderr_text().contains("more than a signature can be")
            || o.stdout_text().contains("more than a signature can be"),
        "{}\n{}",
        o.stdout_text(),
        o.stderr_text()
    );
}
