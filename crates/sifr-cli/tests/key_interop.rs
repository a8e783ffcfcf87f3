//! Keys move between sifr and GnuPG both ways: gpg imports the secret keyring `key newpair`
//! writes (with its passphrase), and a key gpg made, imported with `key import`, signs images
//! whose signatures gpg accepts. (Apptainer's `e2e/key` imports GnuPG-exported keys too.)

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use sifr_testkit::{TestCommand, have, skip};

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
        .args(args)
        .output()
        .unwrap()
}

/// Stops the gpg-agent that secret-key operations start in `GNUPGHOME`, so none outlives the
/// test.
struct AgentGuard(std::path::PathBuf);

impl Drop for AgentGuard {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.0)
            .args(["--kill", "all"])
            .status();
    }
}

fn sifr(keys: &Path, args: &[&str]) -> TestCommand {
    TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
        .without_caller_settings()
        .env("APPTAINER_KEYSDIR", keys)
        .env_remove("SIFR_KEY_PASSPHRASE")
        .args(args)
}

#[test]
fn keys_move_between_sifr_and_gnupg() {
    let Some(fixtures) = sifr_testkit::sif_fixtures() else {
        return;
    };
    if !have("gpg") {
        skip("gpg not installed (scripts/deps.sh installs gnupg)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let home = t.join("gnupg");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let _agent = AgentGuard(home.clone());

    // sifr -> gpg: the secret keyring file itself.
    let ours = t.join("ours");
    sifr(
        &ours,
        &[
            "key",
            "newpair",
            "-N",
            "Ours",
            "-E",
            "o@example.org",
            "-C",
            "",
            "-P",
            "pw",
            "-b",
            "2048",
        ],
    )
    .output()
    .assert_success();
    let o = gpg(
        &home,
        &[
            "--passphrase",
            "pw",
            "--import",
            ours.join("pgp-secret").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("secret keys imported: 1"),
        "{err}"
    );

    // gpg -> sifr: a key gpg generated, exported in binary form.
    let o = gpg(
        &home,
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            "Theirs <t@example.org>",
            "rsa2048",
            "sign",
            "never",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = gpg(
        &home,
        &["--passphrase", "", "--export-secret-keys", "Theirs"],
    );
    assert!(o.status.success() && !o.stdout.is_empty());
    let exported = t.join("theirs.gpg");
    fs::write(&exported, &o.stdout).unwrap();
    let theirs = t.join("theirs");
    let o = sifr(&theirs, &["key", "import", exported.to_str().unwrap()]).output();
    o.assert_success();
    assert!(
        o.stdout_text()
            .contains("successfully added to the private keyring")
    );
    let img = t.join("img.sif");
    fs::copy(fixtures.join("images/one-group.sif"), &img).unwrap();
    sifr(&theirs, &["sign", img.to_str().unwrap()])
        .output()
        .assert_success();
    let o = sifr(&theirs, &["verify", img.to_str().unwrap()]).output();
    o.assert_success();
    assert!(
        o.stdout_text()
            .contains("Signing entity: Theirs <t@example.org>")
    );
    let sig = sifr(&theirs, &["sif", "dump", "3", img.to_str().unwrap()]).output();
    let msg = t.join("sig.asc");
    fs::write(&msg, sig.stdout_text()).unwrap();
    let v = gpg(&home, &["--verify", msg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(
        v.status.success() && err.contains("Good signature from \"Theirs <t@example.org>\""),
        "{err}"
    );
}
