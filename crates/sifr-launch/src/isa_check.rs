//! The launch-time ISA check of `exec`, `run`, `shell` and `test`: will the program die with
//! "Illegal instruction" on this CPU?
//!
//! Reads the facts that `sifr build` stored in the SIF ([`sifr_isa::SIF_OBJECT_NAME`]) and judges
//! them against [`sifr_isa::HostFacts::detect`]. For `exec` the command is resolved in the facts
//! (links included, then the default `PATH`) and only that program and the libraries it loads
//! are judged; for a runscript or a shell, or a command that is not a recorded program (a
//! script, a file from the host), the image is judged as a whole.
//!
//! Runs on the launch path before namespaces are set up, so it must stay single-threaded and
//! cheap: it never scans (no rayon), it reads one SIF object and parses JSON. Images without
//! stored facts (sandboxes, bare SquashFS, SIFs built elsewhere) are not checked; `sifr
//! inspect --isa` scans those on demand. It never prints: [`check`] hands a [`Finding`] back,
//! and the caller warns or refuses as the [`Policy`] says ([`crate::prepare`] does).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sifr_isa::{HostFacts, ImageFacts, Verdict};

use crate::plan::Action;

/// What to do when the program needs CPU features the host lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Tell the caller (which prints one warning) and start the program anyway.
    #[default]
    Warn,
    /// Refuse to start the program ([`Refused`]).
    Error,
    /// Do not check.
    Off,
}

/// What is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `exec`'s command as given (`python3`, `/opt/app/bin/solver`).
    Command(String),
    /// A runscript, a test script or a shell: no single program can be named.
    WholeImage,
}

impl Subject {
    /// The subject of an action.
    pub fn of(action: &Action) -> Subject {
        match action {
            Action::Exec(argv) => match argv.first() {
                Some(c) => Subject::Command(c.clone()),
                None => Subject::WholeImage,
            },
            _ => Subject::WholeImage,
        }
    }
}

/// A verdict that needs telling, with what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The program judged (`/usr/bin/fast`), or `None` when the whole image was.
    pub program: Option<String>,
    /// Why the image was judged as a whole although a command was given.
    pub unresolved: Option<String>,
    /// The host's x86-64 level, for the message.
    pub host_level: Option<sifr_isa::Level>,
    pub verdict: Verdict,
}

/// The program `command` runs, looked up in the facts: a path is resolved through the image's
/// links; a bare name is searched in Apptainer's default `PATH`, then among executables in a
/// `bin/` or `sbin/` directory of the image when exactly one has that name (a `PATH` set by
/// `%environment`, such as `/opt/conda/bin`, is not known before the container starts).
pub fn find_program<'a>(facts: &'a ImageFacts, command: &str) -> Option<&'a sifr_isa::FileFacts> {
    let exe = |f: &&sifr_isa::FileFacts| f.kind == sifr_isa::FileKind::Executable;
    if command.starts_with('/') {
        return facts.lookup(command).filter(exe);
    }
    if command.contains('/') {
        // Relative to the container's working directory, which is usually on the host.
        return None;
    }
    for dir in crate::env::DEFAULT_PATH.split(':') {
        if let Some(f) = facts.lookup(&format!("{dir}/{command}")).filter(exe) {
            return Some(f);
        }
    }
    let mut found = facts.files.iter().filter(exe).filter(|f| {
        f.path
            .rsplit_once('/')
            .is_some_and(|(d, n)| n == command && (d.ends_with("bin") || d == "bin"))
    });
    match (found.next(), found.next()) {
        (Some(f), None) => Some(f),
        _ => None,
    }
}

/// Judges `subject` in `facts` against `host`; `None` when there is nothing to tell.
pub fn assess(facts: &ImageFacts, subject: &Subject, host: &HostFacts) -> Option<Finding> {
    if facts.arch.is_some_and(|a| a != host.arch) {
        // An image of another architecture is refused (or emulated) elsewhere.
        return None;
    }
    let (program, unresolved, verdict) = match subject {
        Subject::Command(c) => match find_program(facts, c) {
            Some(p) => (
                Some(format!("/{}", p.path)),
                None,
                sifr_isa::judge(p, &facts.libraries_for(p), host),
            ),
            None => (
                None,
                Some(format!("`{c}` is not a program recorded in the image")),
                sifr_isa::judge_image(facts, host),
            ),
        },
        Subject::WholeImage => (None, None, sifr_isa::judge_image(facts, host)),
    };
    (!verdict.is_ok()).then_some(Finding {
        program,
        unresolved,
        host_level: host.level,
        verdict,
    })
}

/// Files listed in a message before "and N more".
const MAX_FILES: usize = 5;

fn names(fs: &[sifr_isa::Feature]) -> String {
    fs.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
}

impl Finding {
    /// The first line: what lacks what.
    pub fn headline(&self, image: &Path) -> String {
        let host = match self.host_level {
            Some(l) => format!("this host ({l})"),
            None => "this host".into(),
        };
        let missing = if self.verdict.missing_features.is_empty() {
            "a higher ISA level".into()
        } else {
            names(&self.verdict.missing_features)
        };
        match &self.program {
            Some(p) => format!(
                "`{p}` in image `{}` needs CPU features {host} lacks: {missing}",
                image.display()
            ),
            None => format!(
                "programs in image `{}` need CPU features {host} lacks: {missing}",
                image.display()
            ),
        }
    }

    /// The files responsible, one per line (at most [`MAX_FILES`]), then the consequence.
    pub fn details(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(u) = &self.unresolved {
            out.push(format!("{u}, so the image is judged as a whole"));
        }
        let offenders = &self.verdict.offending_files;
        for o in offenders.iter().take(MAX_FILES) {
            let mut line = format!("/{}", o.path);
            if !o.missing.is_empty() {
                let _ = write!(line, ": {}", names(&o.missing));
            }
            if let Some(l) = o.refused_by_loader {
                let _ = write!(line, " (its ISA note says {l}: the loader refuses it)");
            }
            out.push(line);
        }
        if offenders.len() > MAX_FILES {
            out.push(format!(
                "and {} more (see `sifr inspect --isa`)",
                offenders.len() - MAX_FILES
            ));
        }
        out.push(if self.program.is_some() {
            "it will likely die with \"Illegal instruction\" here".into()
        } else {
            "those die with \"Illegal instruction\" if they run here".into()
        });
        out
    }
}

/// The facts `sifr build` stored in the SIF at `path`; `None` when it has none or they are
/// unreadable (a check must never stop a launch on its own account).
pub fn stored_facts(path: &Path) -> Option<ImageFacts> {
    parse_facts(&stored_facts_json(path)?)
}

/// The raw JSON of the stored facts.
fn stored_facts_json(path: &Path) -> Option<Vec<u8>> {
    let sif = sifr_sif::Image::open(path).ok()?;
    read_facts(&sif, facts_object(&sif)?)
}

fn facts_object(sif: &sifr_sif::Image) -> Option<&sifr_sif::Descriptor> {
    sif.descriptors_of(sifr_sif::DataType::GenericJson)
        .find(|d| d.name() == sifr_isa::SIF_OBJECT_NAME)
}

/// Bytes read from the end of the facts object to find its summary.
const SUMMARY_TAIL: u64 = 64 << 10;

/// The version and summary of facts object `d`, read from its two ends only: the facts are
/// written compactly in `ImageFacts` field order, `version` first and `summary` last, so a
/// launch reads a few KiB instead of the whole object (198 KiB, 0.3 ms to read and skip, for
/// a Debian minbase image). `None` when the object does not look like that; the caller then
/// reads it whole.
fn stored_summary(
    sif: &sifr_sif::Image,
    d: &sifr_sif::Descriptor,
) -> Option<(u32, sifr_isa::Summary)> {
    const HEAD: &[u8] = br#"{"version":"#;
    const KEY: &[u8] = br#""summary":"#;
    let mut head = [0u8; 24];
    let n = (head.len() as u64).min(d.size()) as usize;
    sif.read_at(&mut head[..n], d.offset()).ok()?;
    let digits = head[..n].strip_prefix(HEAD)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    let version = std::str::from_utf8(&digits[..end]).ok()?.parse().ok()?;
    let len = d.size().min(SUMMARY_TAIL);
    let mut tail = vec![0u8; len as usize];
    sif.read_at(&mut tail, d.end() - len).ok()?;
    // The key cannot occur inside a JSON string (its quotes would be escaped there), and no
    // object below the top level has one, so its last occurrence is the top level's.
    let at = tail.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let mut values = serde_json::Deserializer::from_slice(&tail[at..]).into_iter();
    let summary = values.next()?.ok()?;
    let rest = &tail[at + values.byte_offset()..];
    (rest.trim_ascii() == b"}").then_some((version, summary))
}

fn read_facts(sif: &sifr_sif::Image, d: &sifr_sif::Descriptor) -> Option<Vec<u8>> {
    match sif.read_object(d.id()) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::debug!("cannot read `{}`: {e}", sifr_isa::SIF_OBJECT_NAME);
            None
        }
    }
}

fn parse_facts(bytes: &[u8]) -> Option<ImageFacts> {
    match serde_json::from_slice::<ImageFacts>(bytes) {
        Ok(f) if f.version <= sifr_isa::FACTS_VERSION => Some(f),
        Ok(f) => {
            tracing::debug!("ISA facts version {} is newer than this sifr's", f.version);
            None
        }
        Err(e) => {
            tracing::debug!("cannot parse `{}`: {e}", sifr_isa::SIF_OBJECT_NAME);
            None
        }
    }
}

/// The stored facts of the SIF at `path` when some program in it may need what `host` lacks;
/// `None` when the image needs nothing `host` does not have (the usual case), or has no facts.
/// The summary alone decides that, read from the end of the object ([`stored_summary`]) or,
/// failing that, by skipping the per-file part of the JSON without building it: what a
/// launch saves (0.85 ms for a Debian minbase image).
fn facts_worth_judging(path: &Path, host: &HostFacts) -> Option<ImageFacts> {
    #[derive(serde::Deserialize)]
    struct Head {
        version: u32,
        summary: sifr_isa::Summary,
    }
    let sif = sifr_sif::Image::open(path).ok()?;
    let d = facts_object(&sif)?;
    if let Some((version, summary)) = stored_summary(&sif, d)
        && version <= sifr_isa::FACTS_VERSION
        && !may_lack(&summary, host)
    {
        return None;
    }
    let bytes = read_facts(&sif, d)?;
    if let Ok(head) = serde_json::from_slice::<Head>(&bytes)
        && head.version <= sifr_isa::FACTS_VERSION
        && !may_lack(&head.summary, host)
    {
        return None;
    }
    parse_facts(&bytes)
}

/// Whether `host` may lack something a file of the image needs. Every file's requirements (the
/// features of its ISA note's level included) are in the summary's union: when the host has
/// all of them, no file can miss a feature or be refused by the loader. Features the host's
/// detection does not know count as lacking.
fn may_lack(summary: &sifr_isa::Summary, host: &HostFacts) -> bool {
    let present = host.present();
    !summary
        .required_features
        .iter()
        .all(|f| present.contains(*f))
}

/// The finding of the check before a launch of `image`, unless `policy` is off, the image is
/// not a SIF, or the SIF holds no facts or none that `action`'s program lacks on this host.
pub fn check(image: &crate::image::Image, action: &Action, policy: Policy) -> Option<Finding> {
    if policy == Policy::Off || image.format != crate::image::Format::Sif {
        return None;
    }
    let host = HostFacts::detect();
    let Some(facts) = facts_worth_judging(&image.path, &host) else {
        tracing::debug!(
            "`{}` needs nothing this host lacks, or holds no ISA facts",
            image.path.display()
        );
        return None;
    };
    assess(&facts, &Subject::of(action), &host)
}

/// A launch refused in [`Policy::Error`] mode: the finding, as one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct Refused {
    pub image: PathBuf,
    pub finding: Finding,
}

impl Refused {
    /// The headline, then the files responsible, indented; the last detail predicts the
    /// crash, which a refusal prevents, so it is left out.
    fn message(&self) -> String {
        let head = self.finding.headline(&self.image);
        let details = self.finding.details();
        let files = &details[..details.len() - 1];
        format!("{head}\n  {}", files.join("\n  "))
    }

    pub fn hint(&self) -> &'static str {
        "run it on a node with these features, rebuild the image for this node's level \
         (see docs/isa.md), or start it anyway with `--isa-check=warn`"
    }
}

#[cfg(test)]
mod tests {
    //! The "older node" cases, pinned with fake hosts: programs compiled with gcc for each
    //! level, with and without the ISA note, judged against a v2 and a v3 (AVX2, no AVX-512)
    //! CPU whatever this machine has.
    use super::*;
    use sifr_isa::{Arch, Feature, FeatureSet, Level};
    use std::process::Command;

    fn host(level: Level) -> HostFacts {
        let all: FeatureSet = Feature::ALL.iter().copied().collect();
        HostFacts::from_features(Arch::Amd64, FeatureSet::of_level(level), all)
    }

    /// An image tree with `usr/bin/prog-vN` and `usr/bin/prog-vN-note` (`-mneeded`), and a
    /// link `bin -> usr/bin`; `None` (with the reason printed) without gcc or off x86-64.
    fn image() -> Option<(tempfile::TempDir, ImageFacts)> {
        if !sifr_testkit::x86_64_gcc("gcc compiles for the host, which is not x86-64") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("prog.c");
        let program = r#"printf("%f %lld %s\n", c[argc], la[argc], argv[0]);"#;
        std::fs::write(&src, sifr_testkit::vector_loop_c(program)).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        for v in 2..=4 {
            for note in [false, true] {
                let name = format!("prog-v{v}{}", if note { "-note" } else { "" });
                let mut c = Command::new("gcc");
                c.args(["-O2", &format!("-march=x86-64-v{v}"), "-o"])
                    .arg(root.join("usr/bin").join(&name))
                    .arg(&src);
                if note {
                    c.arg("-mneeded");
                }
                let o = c.output().unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        }
        let facts = ImageFacts::scan(&root).unwrap();
        Some((dir, facts))
    }

    fn flagged(facts: &ImageFacts, host: &HostFacts) -> Vec<String> {
        let mut out = Vec::new();
        for v in 2..=4 {
            for suffix in ["", "-note"] {
                let cmd = format!("prog-v{v}{suffix}");
                if assess(facts, &Subject::Command(cmd.clone()), host).is_some() {
                    out.push(cmd);
                }
            }
        }
        out
    }

    #[test]
    fn on_an_avx2_host_only_the_v4_programs_are_flagged() {
        let Some((_dir, facts)) = image() else { return };
        assert_eq!(
            flagged(&facts, &host(Level::V3)),
            ["prog-v4", "prog-v4-note"]
        );
        let f = assess(
            &facts,
            &Subject::Command("/bin/prog-v4".into()),
            &host(Level::V3),
        )
        .unwrap();
        assert_eq!(f.program.as_deref(), Some("/usr/bin/prog-v4"));
        assert!(f.verdict.missing_features.contains(&Feature::Avx512f));
        let head = f.headline(Path::new("img.sif"));
        assert!(
            head.starts_with(
                "`/usr/bin/prog-v4` in image `img.sif` needs CPU features this host (x86-64-v3) lacks: "
            ),
            "{head}"
        );
        assert!(head.contains("AVX512F"), "{head}");
        // With the note, the loader's refusal is named too.
        let f = assess(
            &facts,
            &Subject::Command("prog-v4-note".into()),
            &host(Level::V3),
        )
        .unwrap();
        let d = f.details().join("\n");
        assert!(d.contains("its ISA note says x86-64-v4"), "{d}");
    }

    #[test]
    fn on_a_v2_host_the_v3_and_v4_programs_are_flagged_and_v2_is_not() {
        let Some((_dir, facts)) = image() else { return };
        assert_eq!(
            flagged(&facts, &host(Level::V2)),
            ["prog-v3", "prog-v3-note", "prog-v4", "prog-v4-note"]
        );
        assert!(flagged(&facts, &host(Level::V4)).is_empty());
    }

    #[test]
    fn the_summary_shortcut_never_hides_a_finding() {
        let Some((_dir, facts)) = image() else { return };
        for level in [Level::V1, Level::V2, Level::V3, Level::V4] {
            let h = host(level);
            let found = assess(&facts, &Subject::WholeImage, &h).is_some();
            assert_eq!(may_lack(&facts.summary, &h), found, "{level:?}");
        }
        // Unknown to the host's detection counts as lacking.
        let mut unknown = host(Level::V4);
        unknown.unknown = std::mem::take(&mut unknown.features);
        assert!(may_lack(&facts.summary, &unknown));
    }

    /// A SIF holding `json` as its facts object.
    fn sif_with_facts(dir: &Path, name: &str, json: Vec<u8>) -> sifr_sif::Image {
        let path = dir.join(name);
        sifr_sif::create_at_path(
            &path,
            sifr_sif::CreateOptions::default(),
            vec![sifr_sif::ObjectInput::generic_json(
                sifr_isa::SIF_OBJECT_NAME,
                json,
            )],
        )
        .unwrap();
        sifr_sif::Image::open(&path).unwrap()
    }

    #[test]
    fn the_summary_is_read_from_the_end_of_the_facts_as_builds_store_them() {
        let Some((dir, facts)) = image() else { return };
        let want = Some((facts.version, facts.summary.clone()));
        let sif = sif_with_facts(dir.path(), "compact.sif", facts.to_json().into_bytes());
        assert_eq!(stored_summary(&sif, facts_object(&sif).unwrap()), want);
        // Per-file facts far longer than the tail that is read.
        let mut long = facts.clone();
        let file = long.files[0].clone();
        long.files = (0..2000).map(|_| file.clone()).collect();
        let sif = sif_with_facts(dir.path(), "long.sif", long.to_json().into_bytes());
        assert!(facts_object(&sif).unwrap().size() > 2 * SUMMARY_TAIL);
        assert_eq!(stored_summary(&sif, facts_object(&sif).unwrap()), want);
        // Any other shape (here: pretty-printed) is left to the full parse.
        let pretty = serde_json::to_vec_pretty(&facts).unwrap();
        let sif = sif_with_facts(dir.path(), "pretty.sif", pretty);
        assert_eq!(stored_summary(&sif, facts_object(&sif).unwrap()), None);
        // The decision is the full parse's: v4 programs on a v3 host are judged, whatever
        // the shape; on a v4 host, nothing is.
        for name in ["compact.sif", "long.sif", "pretty.sif"] {
            let path = dir.path().join(name);
            assert!(
                facts_worth_judging(&path, &host(Level::V3)).is_some(),
                "{name}"
            );
            assert!(
                facts_worth_judging(&path, &host(Level::V4)).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_runscript_judges_the_whole_image_and_names_its_files() {
        let Some((_dir, facts)) = image() else { return };
        let f = assess(&facts, &Subject::WholeImage, &host(Level::V3)).unwrap();
        assert_eq!(f.program, None);
        let d = f.details();
        assert!(d[0].starts_with("/usr/bin/prog-v4"), "{d:?}");
        assert!(d[1].starts_with("/usr/bin/prog-v4-note"), "{d:?}");
        assert_eq!(d.len(), 3, "{d:?}");
        // An unknown command falls back to the whole image and says so.
        let f = assess(
            &facts,
            &Subject::Command("./script.sh".into()),
            &host(Level::V3),
        )
        .unwrap();
        assert!(f.details()[0].contains("`./script.sh` is not a program recorded"));
        assert!(assess(&facts, &Subject::WholeImage, &host(Level::V4)).is_none());
    }

    #[test]
    fn images_of_another_architecture_are_not_judged_here() {
        let Some((_dir, mut facts)) = image() else {
            return;
        };
        facts.arch = Some(Arch::Arm64);
        assert!(assess(&facts, &Subject::WholeImage, &host(Level::V1)).is_none());
    }
}
