//! Inputs other than images: definition files (lines dropped, doubled, swapped, cut, sections
//! left open, binary garbage, huge or broken `{{ arg }}` placeholders), OCI layouts and
//! archives (broken index and manifest JSON, digests that do not match, blobs missing, layers
//! listed many times, tar layers cut short with their digests fixed up so the tar reader sees
//! them), and overlay images (ext3 files cut short, bad superblocks). Also where the upstream
//! fixtures are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::Rng;
use super::sif::{flip_bytes, truncate};

/// Say why part of a suite cannot run here; a failure under `SIFR_TEST_STRICT=1` (or `CI`),
/// as every skip of the test suite ([`sifr_testkit::skip`]).
pub fn skip(why: &str) {
    sifr_testkit::skip(why);
}

/// `../shared/fixtures/SUB` beside the checkout; `None`, saying why, when it is absent (a
/// failure under `SIFR_TEST_STRICT=1`).
pub fn shared_fixture(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    skip(&format!("the shared fixtures are not at {}", dir.display()));
    None
}

/// The valid definition file the cases damage: every section a localimage build reads, a
/// placeholder, and (for some cases) a second stage copying from the first.
pub fn deffile(good: &Path, data: &Path, two_stages: bool) -> String {
    let (good, data) = (good.display(), data.display());
    let first = if two_stages { "Stage: one\n" } else { "" };
    let mut text = format!(
        "Bootstrap: localimage\nFrom: {good}\n{first}\n%arguments\n    greeting=hello\n\n\
         %files\n    {data} /opt/data\n\n%environment\n    export GREETING={{{{ greeting }}}}\n\n\
         %labels\n    Author mutation\n    Version 1\n\n%runscript\n    exec /bin/probe id\n\n\
         %startscript\n    exec /bin/probe id\n\n%help\n    The mutation suite's image.\n"
    );
    if two_stages {
        text.push_str(&format!(
            "\nBootstrap: localimage\nFrom: {good}\nStage: two\n\n%files from one\n    \
             /opt/data /opt/data2\n\n%labels\n    Stage two\n"
        ));
    }
    text
}

/// Sections, some well-formed and some not, to insert as a line.
const SECTIONS: &[&str] = &[
    "%post",
    "%files",
    "%labels",
    "%environment",
    "%runscript",
    "%setup",
    "%arguments",
    "%apprun foo",
    "%appfiles",
    "%",
    "%%",
    "%files from nowhere",
    "%labels extra words",
    "%post -c /no/such/shell",
    "Bootstrap: localimage",
    "Bootstrap: nonsense",
    "From:",
    "Stage: one",
    "Stage:",
    "    /no/such/file /opt/x",
    "    Author",
    "    export X={{",
    "{{ greeting }}",
];

/// Broken and hostile forms of the `{{ greeting }}` placeholder.
fn placeholder(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => "{{".into(),
        1 => "{{ }}".into(),
        2 => "{{ greeting".into(),
        3 => format!("{{{{ {} }}}}", "a".repeat(100_000)),
        4 => "{{ greeting }}".repeat(20_000),
        5 => "{{{{ greeting }}}}".into(),
        6 => "{{ no_such_argument }}".into(),
        _ => "{{ greeting\u{0} }}".into(),
    }
}

/// One mutation of a definition file's bytes; returns what it did.
pub fn mutate_deffile(rng: &mut Rng, text: &str, good: &Path) -> (Vec<u8>, String) {
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    let n = lines.len();
    let i = rng.below(n);
    let what = match rng.below(11) {
        0 => {
            lines.remove(i);
            format!("line {} dropped", i + 1)
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
            format!("line {} doubled", i + 1)
        }
        2 => {
            let j = rng.below(n);
            lines.swap(i, j);
            format!("lines {} and {} swapped", i + 1, j + 1)
        }
        3 => {
            let len = 1 + rng.below(64);
            lines[i] = (0..len).map(|_| rng.next() as u8).collect();
            format!("line {} replaced by {len} random bytes", i + 1)
        }
        4 => {
            let s = *rng.pick(SECTIONS);
            let at = if rng.chance(30) { n } else { i };
            lines.insert(at, s.as_bytes().to_vec());
            format!("`{s}` inserted at line {}", at + 1)
        }
        5 => {
            let p = placeholder(rng);
            let what = format!("the placeholder replaced by {} bytes", p.len());
            let t = text.replace("{{ greeting }}", &p);
            return (t.into_bytes(), what);
        }
        6 => {
            let from = good.display().to_string();
            // Not `/`: a localimage from a directory is copied whole, the host's root too.
            let to = *rng.pick(&[
                "",
                "/no/such.sif",
                "/dev/zero",
                "/etc/hostname",
                "/proc/self/mem",
            ]);
            let t = text.replace(&from, to);
            return (t.into_bytes(), format!("`From: {to}`"));
        }
        7 => {
            // Many labels: parsing must stay linear (issue 24, item 5).
            let at = lines.iter().position(|l| l == b"%labels").unwrap_or(n);
            let k = 20_000 + rng.below(30_000);
            for j in 0..k {
                lines.insert(at + 1, format!("    L{j} v").into_bytes());
            }
            format!("{k} labels")
        }
        8 => {
            let long = vec![b'x'; 1 << 20];
            lines.insert(i, long);
            format!("a 1 MiB line at line {}", i + 1)
        }
        9 => {
            let mut b = lines.join(&b"\r\n"[..]);
            let what = flip_bytes(rng, &mut b, 0, usize::MAX, 3);
            return (b, format!("CRLF line ends, {what}"));
        }
        _ => {
            let mut b = lines.join(&b"\n"[..]);
            let what = truncate(rng, &mut b, &[]);
            return (b, what);
        }
    };
    let mut b = lines.join(&b"\n"[..]);
    b.push(b'\n');
    (b, what)
}

/// An OCI image's parts before they are laid out: layers (tar), config, media types.
pub struct OciBase {
    pub layers: Vec<Vec<u8>>,
    pub arch: String,
}

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A reproducible tar of `dir` (sorted, owned by root, dated 1970).
pub fn tar_of(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar of {}", dir.display());
    out.stdout
}

fn digest(b: &[u8]) -> String {
    sifr_oci::Digest::of(b).to_string()
}

fn desc(media: &str, b: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
        digest(b),
        b.len()
    )
}

/// Cut or flip a tar (a layer, or a whole archive).
fn damage_tar(rng: &mut Rng, b: &mut Vec<u8>) -> String {
    if rng.chance(50) {
        let marks: Vec<usize> = (0..b.len()).step_by(512).take(64).collect();
        truncate(rng, b, &marks)
    } else {
        // Tar headers are the first 512 bytes of each member; the first ones matter most.
        let hi = b.len().min(4096);
        flip_bytes(rng, b, 0, hi, 4)
    }
}

/// Damage to one part of a JSON text.
fn damage_json(rng: &mut Rng, json: &str) -> (String, String) {
    let b = json.as_bytes();
    match rng.below(5) {
        0 => {
            let at = rng.below(b.len());
            (
                String::from_utf8_lossy(&b[..at]).into(),
                format!("cut at {at}"),
            )
        }
        1 => ("[]".into(), "an array".into()),
        2 => ("null".into(), "null".into()),
        3 => {
            let mut v = b.to_vec();
            let what = flip_bytes(rng, &mut v, 0, usize::MAX, 3);
            (String::from_utf8_lossy(&v).into(), what)
        }
        _ => {
            let big = r#""size":-1"#;
            let t = regex_free_replace_sizes(json, big);
            (t, "sizes -1".into())
        }
    }
}

/// Every `"size":N` in `json` replaced by `with`.
fn regex_free_replace_sizes(json: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = json;
    while let Some(at) = rest.find(r#""size":"#) {
        out.push_str(&rest[..at]);
        out.push_str(with);
        rest = &rest[at + 7..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A damaged (or, without `damage`, a valid) OCI layout: path (relative to the layout) ->
/// bytes, and what was done.
pub fn oci_layout(
    rng: &mut Rng,
    base: &OciBase,
    damage: bool,
) -> (BTreeMap<String, Vec<u8>>, String) {
    let mut layers = base.layers.clone();
    let mut what = Vec::new();
    let stage = if damage { rng.below(9) } else { usize::MAX };
    if stage == 0 {
        // A layer cut short or garbled, its digest fixed up: the tar reader must see it.
        let i = rng.below(layers.len());
        what.push(format!("layer {i}: {}", damage_tar(rng, &mut layers[i])));
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", digest(l)))
        .collect();
    let mut config = format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Entrypoint":["/bin/probe"],"Cmd":["id"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        base.arch,
        diff_ids.join(",")
    );
    if stage == 1 {
        let (c, w) = damage_json(rng, &config);
        config = c;
        what.push(format!("config: {w}"));
    }
    let mut layer_descs: Vec<String> = layers.iter().map(|l| desc(LAYER, l)).collect();
    if stage == 2 {
        // The same layer listed many times (issue 24, item 5: merged once).
        let k = 500 + rng.below(1500);
        let one = layer_descs[0].clone();
        layer_descs = vec![one; k];
        what.push(format!("the first layer listed {k} times"));
    }
    if stage == 3 {
        layer_descs.clear();
        what.push("no layers".into());
    }
    let mut manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{},"layers":[{}]}}"#,
        desc(CONFIG, config.as_bytes()),
        layer_descs.join(",")
    );
    if stage == 4 {
        let (m, w) = damage_json(rng, &manifest);
        manifest = m;
        what.push(format!("manifest: {w}"));
    }
    let mut index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MANIFEST}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        digest(manifest.as_bytes()),
        manifest.len()
    );
    if stage == 5 {
        let (x, w) = damage_json(rng, &index);
        index = x;
        what.push(format!("index.json: {w}"));
    }
    let mut files = BTreeMap::new();
    let blob = |b: &[u8]| format!("blobs/sha256/{}", sifr_oci::Digest::of(b).hex());
    for l in &layers {
        files.insert(blob(l), l.clone());
    }
    files.insert(blob(config.as_bytes()), config.into_bytes());
    files.insert(blob(manifest.as_bytes()), manifest.into_bytes());
    files.insert("index.json".into(), index.into_bytes());
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    match stage {
        6 => {
            // A blob whose bytes no longer match its digest.
            let names: Vec<String> = files
                .keys()
                .filter(|k| k.starts_with("blobs/"))
                .cloned()
                .collect();
            let name = rng.pick(&names).clone();
            let b = files.get_mut(&name).unwrap();
            let w = flip_bytes(rng, b, 0, usize::MAX, 1);
            what.push(format!("{name} no longer matches its digest ({w})"));
        }
        7 => {
            let names: Vec<String> = files.keys().cloned().collect();
            let name = rng.pick(&names).clone();
            files.remove(&name);
            what.push(format!("{name} missing"));
        }
        8 => {
            files.insert(
                "oci-layout".into(),
                b"{\"imageLayoutVersion\":\"9\"".to_vec(),
            );
            what.push("oci-layout broken".into());
        }
        _ => {}
    }
    (files, what.join(", "))
}

/// Write a layout's files under `dir`.
pub fn write_layout(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
}

/// An `oci-archive:` of a layout (damaged through the layout, or as a tar).
pub fn oci_archive(rng: &mut Rng, base: &OciBase, dir: &Path, damage: bool) -> (PathBuf, String) {
    let through_layout = damage && rng.chance(70);
    let (files, mut what) = oci_layout(rng, base, through_layout);
    let layout = dir.join("layout-src");
    write_layout(&layout, &files);
    let mut tar = tar_of(&layout);
    std::fs::remove_dir_all(&layout).unwrap();
    if damage && (!through_layout || rng.chance(20)) {
        let w = damage_tar(rng, &mut tar);
        what = if what.is_empty() {
            format!("archive: {w}")
        } else {
            format!("{what}, archive: {w}")
        };
    }
    let p = dir.join("image.tar");
    std::fs::write(&p, tar).unwrap();
    (p, what)
}

/// A 1 MiB ext3 filesystem image (`mkfs.ext3`), or `None` when e2fsprogs is missing (then
/// the upstream fixture's).
pub fn ext3_image(dir: &Path) -> Option<Vec<u8>> {
    let p = dir.join("overlay.ext3");
    if sifr_testkit::have("mkfs.ext3") {
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1 << 20).unwrap();
        sifr_testkit::run_ok(Command::new("mkfs.ext3").args(["-q", "-F"]).arg(&p));
        return std::fs::read(&p).ok();
    }
    let fixture = shared_fixture("sif/input")?.join("root.ext3");
    std::fs::read(fixture).ok()
}

/// Damage to an ext3 image: cut short, its superblock's magic or fields, or zeroed.
pub fn mutate_ext3(rng: &mut Rng, b: &mut Vec<u8>) -> String {
    const SB: usize = 1024;
    match rng.below(4) {
        0 => truncate(rng, b, &[0, 512, SB, SB + 512, 2048, 4096, 8192]),
        1 => {
            b[SB + 56] ^= rng.flip();
            "superblock magic damaged".into()
        }
        2 => flip_bytes(rng, b, SB, SB + 1024, 6),
        _ => {
            for x in &mut b[..4096] {
                *x = 0;
            }
            "first 4 KiB zeroed".into()
        }
    }
}
