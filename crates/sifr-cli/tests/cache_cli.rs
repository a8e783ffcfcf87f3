//! `sifr cache list|clean` on a cache made in a temporary `APPTAINER_CACHEDIR`: blobs stored
//! through `sifr_oci::cache::BlobCache` (as a pull stores them) and a `net` container file (as
//! Apptainer leaves one), checked against Apptainer's e2e tests in `e2e/cache/cache.go`
//! (`testNoninteractiveCacheCmds`, `testInteractiveCacheCmds`, `testMultipleArch`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use sifr_oci::Digest;
use sifr_oci::cache::BlobCache;
use sifr_testkit::{TestCommand, TestOutput};

/// A cache root holding two blobs (one written 40 days ago) and one `net` file.
struct Cache {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    young: Digest,
    old: Digest,
    net: PathBuf,
}

const DAY: u64 = 86_400;

fn cache() -> Cache {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cache");
    let blobs = BlobCache::new(&root);
    let young = Digest::of(b"young layer");
    let old = Digest::of(b"old layer");
    blobs.put(&young, b"young layer").unwrap();
    let p = blobs.put(&old, b"old layer").unwrap();
    let forty_days_ago = SystemTime::now() - Duration::from_secs(40 * DAY);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(forty_days_ago)
        .unwrap();
    let net = root.join("net").join("a1b2c3");
    std::fs::create_dir_all(net.parent().unwrap()).unwrap();
    std::fs::write(&net, vec![0u8; 4096]).unwrap();
    Cache {
        _tmp: tmp,
        root,
        young,
        old,
        net,
    }
}

impl Cache {
    fn sifr(&self, args: &[&str]) -> TestCommand {
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .without_caller_settings()
            .env("APPTAINER_CACHEDIR", &self.root)
            .arg("cache")
            .args(args)
    }

    fn run(&self, args: &[&str]) -> TestOutput {
        self.sifr(args).output()
    }

    /// Run with `input` on stdin (the answer to the question).
    fn answer(&self, args: &[&str], input: &str) -> TestOutput {
        let mut c = self.sifr(args).command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        TestOutput {
            output: child.wait_with_output().unwrap(),
            command: format!("{c:?} <<< {input:?}"),
        }
    }

    fn has(&self, d: &Digest) -> bool {
        BlobCache::new(&self.root).get(d).is_some()
    }
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    BlobCache::new(root).path(d)
}

#[test]
fn list_summarises_and_verbose_lists_each_entry() {
    let c = cache();
    // e2e/cache testNoninteractiveCacheCmds "list type": `--type net`.
    let out = c.run(&["list", "--type", "net"]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "There are 1 container file(s) using 4.00 KiB of space\nTotal space used: 4.00 KiB\n"
    );
    let out = c.run(&["list"]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "There are 1 container file(s) using 4.00 KiB and 2 oci blob file(s) using 0.02 KiB of \
         space\nTotal space used: 4.02 KiB\n"
    );
    // -T takes a comma-separated list.
    let out = c.run(&["list", "-T", "blob,net"]);
    assert!(
        out.stdout_text()
            .starts_with("There are 1 container file(s)"),
        "{}",
        out.stdout_text()
    );
    // e2e/cache testNoninteractiveCacheCmds "list verbose": the table's header names NAME.
    let out = c.run(&["list", "--verbose"]);
    out.assert_success();
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "NAME                     DATE CREATED           SIZE             TYPE",
        "{text}"
    );
    let mut blob_rows: Vec<&str> = lines[1..3].to_vec();
    blob_rows.sort();
    let mut want: Vec<String> = [c.old.hex(), c.young.hex()]
        .iter()
        .map(|h| h[..22].to_string())
        .collect();
    want.sort();
    for (row, name) in blob_rows.iter().zip(&want) {
        assert!(row.starts_with(&format!("{name}   ")), "{row}");
        assert!(row.ends_with(" blob"), "{row}");
    }
    assert!(lines[3].starts_with("a1b2c3 "), "{text}");
    assert!(lines[3].contains(" 4.00 KiB "), "{text}");
    assert!(lines[3].ends_with(" net"), "{text}");
    assert_eq!(lines[4], "", "{text}");
    // -v is --verbose.
    assert_eq!(c.run(&["list", "-v"]).stdout_text(), text);
}

#[test]
fn list_json_gives_the_totals_per_type_and_every_entry() {
    let c = cache();
    let out = c.run(&["list", "--json"]);
    out.assert_success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v["types"]["blob"]["count"], 2, "{v}");
    assert_eq!(v["types"]["net"]["bytes"], 4096, "{v}");
    assert_eq!(v["total_bytes"], 4096 + 20, "{v}");
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"a1b2c3") && names.contains(&c.old.hex().as_str()),
        "{v}"
    );
    // sifr's JSON format: two-space indentation, a final newline.
    assert!(
        out.stdout_text().starts_with("{\n  \""),
        "{}",
        out.stdout_text()
    );
    assert!(out.stdout_text().ends_with("}\n"));
    // `--type` narrows it as it narrows the text.
    let v: serde_json::Value =
        serde_json::from_str(&c.run(&["list", "--json", "-T", "net"]).stdout_text()).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn list_ignores_words_after_it() {
    // e2e/cache testMultipleArch "list cache": `cache list all` succeeds.
    let c = cache();
    let out = c.run(&["list", "all"]);
    out.assert_success();
    assert!(
        out.stdout_text()
            .starts_with("There are 1 container file(s)")
    );
}

#[test]
fn clean_force_empties_the_cache() {
    // e2e/cache testNoninteractiveCacheCmds "clean force".
    let c = cache();
    let out = c.run(&["clean", "--force"]);
    out.assert_success();
    assert!(!c.has(&c.young) && !c.has(&c.old) && !c.net.exists());
    let err = out.stderr_text();
    assert!(
        err.contains(&format!(
            "INFO:    Removing blob cache entry: {}",
            c.young.hex()
        )),
        "{err}"
    );
    assert!(
        err.contains("INFO:    Removing net cache entry: a1b2c3"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "INFO:    No cached files to remove at {}",
            c.root.join("library").display()
        )),
        "{err}"
    );
    assert_eq!(
        c.run(&["list"]).stdout_text(),
        "There are 0 container file(s) using 0.00 KiB and 0 oci blob file(s) using 0.00 KiB of \
         space\nTotal space used: 0.00 KiB\n"
    );
    // A second clean finds nothing and still succeeds.
    c.run(&["clean", "-f"])
        .assert_success()
        .assert_stderr_contains(&format!(
            "No cached files to remove at {}",
            c.root.join("blob").display()
        ));
}

#[test]
fn clean_days_removes_only_older_entries() {
    // e2e/cache "clean force days beyond age" (the fresh image stays) and "clean force days
    // within age" (`--days 0` removes it).
    let c = cache();
    c.run(&["clean", "--force", "--days", "30"])
        .assert_success();
    assert!(c.has(&c.young), "younger than 30 days: kept");
    assert!(!c.has(&c.old), "40 days old: removed");
    assert!(c.net.exists());
    c.run(&["clean", "-f", "-D", "0"]).assert_success();
    assert!(!c.has(&c.young) && !c.net.exists());
}

#[test]
fn dry_run_removes_nothing_and_asks_nothing() {
    // e2e/cache testInteractiveCacheCmds "clean dry-run confirmed": no question, cache intact.
    let c = cache();
    let out = c.run(&["clean", "--dry-run"]);
    out.assert_success();
    assert_eq!(
        out.stdout_text(),
        "User requested a dry run. Not actually deleting any data!\n"
    );
    out.assert_stderr_contains(&format!("Removing blob cache entry: {}", c.old.hex()));
    assert!(c.has(&c.young) && c.has(&c.old) && c.net.exists());
    assert!(blob_path(&c.root, &c.old).exists());
    // -n is --dry-run, and combines with --type.
    let out = c.run(&["clean", "-n", "-T", "net"]);
    out.assert_success();
    assert!(!out.stderr_text().contains("blob cache entry"));
    assert!(c.net.exists());
}

#[test]
fn clean_asks_and_only_y_cleans() {
    // e2e/cache testInteractiveCacheCmds "clean normal confirmed" / "not confirmed".
    let c = cache();
    let out = c.answer(&["clean"], "n\n");
    out.assert_success();
    assert!(
        out.stdout_text()
            .ends_with("Do you want to continue? [y/N] "),
        "{}",
        out.stdout_text()
    );
    out.assert_stderr_contains("INFO:    Handle cleanup canceled");
    assert!(c.has(&c.young) && c.net.exists());

    let out = c.answer(&["clean"], "y\n");
    out.assert_success();
    assert!(!c.has(&c.young) && !c.has(&c.old) && !c.net.exists());
}

#[test]
fn clean_type_cleans_that_type_only() {
    // e2e/cache testInteractiveCacheCmds "clean type confirmed" / "not confirmed".
    let c = cache();
    c.answer(&["clean", "--type", "net"], "n\n")
        .assert_success();
    assert!(c.net.exists());
    c.answer(&["clean", "--type", "net"], "y\n")
        .assert_success();
    assert!(!c.net.exists(), "net entry removed");
    assert!(c.has(&c.young) && c.has(&c.old), "blobs kept");
    c.run(&["clean", "-f", "-T", "blob"]).assert_success();
    assert!(!c.has(&c.young) && !c.has(&c.old));
}

#[test]
fn clean_days_after_confirmation() {
    // e2e/cache testInteractiveCacheCmds "clean days beyond age" / "clean days within age".
    let c = cache();
    c.answer(&["clean", "--days", "30"], "y\n").assert_success();
    assert!(c.has(&c.young) && !c.has(&c.old));
    c.answer(&["clean", "--days", "0"], "y\n").assert_success();
    assert!(!c.has(&c.young));
}

#[test]
fn no_answer_is_an_error_and_cleans_nothing() {
    // Apptainer reads a whole line; stdin that ends first fails the command.
    let c = cache();
    let out = c.answer(&["clean"], "");
    out.assert_code(i32::from(sifr_cli::exit::FAILURE));
    out.assert_stderr_contains("could not read user's input");
    assert!(c.has(&c.young) && c.net.exists());
}

#[test]
fn help_names_the_commands_as_apptainer_does() {
    // e2e/cache testNoninteractiveCacheCmds "clean help" and "list help".
    let c = cache();
    let out = c.run(&["clean", "--help"]);
    out.assert_success();
    assert!(
        out.stdout_text()
            .contains("Clean your local Apptainer cache"),
        "{}",
        out.stdout_text()
    );
    let out = c.run(&["list", "--help"]);
    out.assert_success();
    assert!(
        out.stdout_text()
            .contains("List your local Apptainer cache")
    );
}
