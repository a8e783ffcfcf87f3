//! The header: `Keyword: value` lines before the first section, into a typed [`Header`].
//! Holds the tables of keywords and bootstrap agents (which agent reads which keyword).
//! Must not look at sections or substitute build arguments.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::{Error, Warning, closest};
use crate::lex::{Line, col_of};
use crate::model::{Header, Spanned};

/// The bootstrap agent named by `Bootstrap:`: where a stage's root filesystem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bootstrap {
    /// `docker`: an image from an OCI registry (Docker Hub by default).
    Docker,
    /// `docker-archive`: a `docker save` tarball.
    DockerArchive,
    /// `docker-daemon`: an image held by a local Docker daemon.
    DockerDaemon,
    /// `oci`: an OCI image layout directory.
    Oci,
    /// `oci-archive`: a tarred OCI image layout.
    OciArchive,
    /// `localimage`: a SIF, sandbox directory or ext3 image on the host.
    LocalImage,
    /// `library`: a Sylabs-style library.
    Library,
    /// `oras`: a SIF stored in an OCI registry.
    Oras,
    /// `shub`: Singularity Hub (defunct).
    Shub,
    /// `scratch`: an empty root filesystem.
    Scratch,
    /// `busybox`: a busybox binary from `MirrorURL`.
    Busybox,
    /// `debootstrap`: Debian/Ubuntu through host `debootstrap`.
    Debootstrap,
    /// `yum`: RPM distributions through host `yum`.
    Yum,
    /// `dnf`: same agent as `yum`.
    Dnf,
    /// `zypper`: SUSE through host `zypper`.
    Zypper,
    /// `arch`: Arch Linux through host `pacstrap`.
    Arch,
    /// `buildkit`: a Dockerfile built through BuildKit.
    Buildkit,
    /// `dockerfile`: same agent as `buildkit`.
    Dockerfile,
}

/// One row per agent: its name in `Bootstrap:`, and the keywords that agent reads (besides
/// `Bootstrap` and `Stage`, which every agent takes). Taken from what each of Apptainer's
/// conveyor-packers reads out of the header.
const AGENTS: &[(Bootstrap, &str, &[&str])] = &[
    (Bootstrap::Docker, "docker", OCI_KEYWORDS),
    (Bootstrap::DockerArchive, "docker-archive", OCI_KEYWORDS),
    (Bootstrap::DockerDaemon, "docker-daemon", OCI_KEYWORDS),
    (Bootstrap::Oci, "oci", OCI_KEYWORDS),
    (Bootstrap::OciArchive, "oci-archive", OCI_KEYWORDS),
    (
        Bootstrap::LocalImage,
        "localimage",
        &["from", "fingerprints"],
    ),
    (
        Bootstrap::Library,
        "library",
        &["from", "library", "fingerprints"],
    ),
    (Bootstrap::Oras, "oras", &["from"]),
    (Bootstrap::Shub, "shub", &["from"]),
    (Bootstrap::Scratch, "scratch", &[]),
    (Bootstrap::Busybox, "busybox", &["mirrorurl"]),
    (
        Bootstrap::Debootstrap,
        "debootstrap",
        &["osversion", "mirrorurl", "include"],
    ),
    (Bootstrap::Yum, "yum", YUM_KEYWORDS),
    (Bootstrap::Dnf, "dnf", YUM_KEYWORDS),
    (Bootstrap::Zypper, "zypper", ZYPPER_KEYWORDS),
    (Bootstrap::Arch, "arch", &["confurl", "include"]),
    (Bootstrap::Buildkit, "buildkit", BUILDKIT_KEYWORDS),
    (Bootstrap::Dockerfile, "dockerfile", BUILDKIT_KEYWORDS),
];

// `includecmd` is still accepted for the OCI agents although nothing reads it any more.
const OCI_KEYWORDS: &[&str] = &["from", "registry", "namespace", "includecmd"];
const YUM_KEYWORDS: &[&str] = &["osversion", "mirrorurl", "updateurl", "include", "setopt"];
const ZYPPER_KEYWORDS: &[&str] = &[
    "osversion",
    "mirrorurl",
    "updateurl",
    "include",
    "product",
    "user",
    "regcode",
    "productpgp",
    "registerurl",
    "modules",
    "otherurl",
];
const BUILDKIT_KEYWORDS: &[&str] = &["from", "filename", "target", "frontend", "buildargs"];

/// Every header keyword Apptainer accepts, lower-case (as matched) and as documented.
/// `otherurl` stands for `OtherURL0`, `OtherURL1`, ...
const KEYWORDS: &[(&str, &str)] = &[
    ("bootstrap", "Bootstrap"),
    ("from", "From"),
    ("stage", "Stage"),
    ("registry", "Registry"),
    ("namespace", "Namespace"),
    ("includecmd", "IncludeCmd"),
    ("fingerprints", "Fingerprints"),
    ("library", "Library"),
    ("mirrorurl", "MirrorURL"),
    ("updateurl", "UpdateURL"),
    ("osversion", "OSVersion"),
    ("include", "Include"),
    ("setopt", "Setopt"),
    ("product", "Product"),
    ("user", "User"),
    ("regcode", "Regcode"),
    ("productpgp", "ProductPGP"),
    ("registerurl", "RegisterURL"),
    ("modules", "Modules"),
    ("otherurl", "OtherURL0"),
    ("confurl", "ConfURL"),
    ("filename", "Filename"),
    ("target", "Target"),
    ("frontend", "Frontend"),
    ("buildargs", "BuildArgs"),
];

pub(crate) const KEYWORDS_DISPLAY: &str = "`Bootstrap`, `From`, `Stage`, `Registry`, `Namespace`, \
    `IncludeCmd`, `Fingerprints`, `Library`, `MirrorURL`, `UpdateURL`, `OSVersion`, `Include`, \
    `Setopt`, `Product`, `User`, `Regcode`, `ProductPGP`, `RegisterURL`, `Modules`, \
    `OtherURL<N>`, `ConfURL`, `Filename`, `Target`, `Frontend`, `BuildArgs`";

pub(crate) const AGENTS_DISPLAY: &str = "`docker`, `docker-archive`, `docker-daemon`, `oci`, \
    `oci-archive`, `localimage`, `library`, `oras`, `shub`, `scratch`, `busybox`, `debootstrap`, \
    `yum`, `dnf`, `zypper`, `arch`, `buildkit`, `dockerfile`";

impl Bootstrap {
    /// All agents, in the order of the table above.
    pub fn all() -> impl Iterator<Item = Bootstrap> {
        AGENTS.iter().map(|a| a.0)
    }

    /// The name as written after `Bootstrap:`.
    pub fn as_str(self) -> &'static str {
        AGENTS.iter().find(|a| a.0 == self).map_or("", |a| a.1)
    }

    /// The agent for a `Bootstrap:` value. Apptainer matches it case-sensitively.
    pub fn from_name(name: &str) -> Option<Bootstrap> {
        AGENTS.iter().find(|a| a.1 == name).map(|a| a.0)
    }

    /// Lower-case header keywords this agent reads (besides `bootstrap` and `stage`).
    pub fn keywords(self) -> &'static [&'static str] {
        AGENTS.iter().find(|a| a.0 == self).map_or(&[], |a| a.2)
    }

    /// Whether the agent cannot work without `From:`.
    pub fn needs_from(self) -> bool {
        use Bootstrap::*;
        matches!(
            self,
            Docker
                | DockerArchive
                | DockerDaemon
                | Oci
                | OciArchive
                | LocalImage
                | Library
                | Oras
                | Shub
        )
    }

    /// The agents that take an image reference from a registry or archive (OCI family).
    pub fn is_oci(self) -> bool {
        use Bootstrap::*;
        matches!(
            self,
            Docker | DockerArchive | DockerDaemon | Oci | OciArchive
        )
    }
}

impl fmt::Display for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Bootstrap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An example `From:` value for an agent, for hints.
pub(crate) fn from_example(agent: &str) -> &'static str {
    match agent {
        "localimage" => "/path/to/image.sif",
        "library" => "library://alpine:latest",
        "oras" => "registry.example.org/image:tag",
        "shub" => "user/image",
        "docker-archive" | "oci-archive" => "/path/to/image.tar",
        "oci" => "/path/to/layout:tag",
        _ => "alpine:3.20",
    }
}

/// A keyword line waiting for its continuation (`value \`).
struct Pending {
    key: String,
    value: String,
    line: usize,
    col: usize,
    value_col: usize,
}

/// Parse the header lines of one stage.
pub(crate) fn parse(lines: &[Line<'_>], warnings: &mut Vec<Warning>) -> Result<Header, Error> {
    let mut header = Header::default();
    let mut first_keyword: Option<(usize, usize)> = None;
    let mut pending: Option<Pending> = None;
    for line in lines {
        let trimmed = line.text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            // A blank or comment line ends a continuation.
            if let Some(p) = pending.take() {
                set(&mut header, p, warnings)?;
            }
            continue;
        }
        // `#` starts a comment anywhere in a header line, as in Apptainer.
        let code = trimmed.split('#').next().unwrap_or("");
        let indent = line.text.len() - line.text.trim_start().len();
        let mut entry = match pending.take() {
            Some(mut p) => {
                p.value.push_str(code.trim());
                p
            }
            None => {
                let Some((key, value)) = code.split_once(':') else {
                    return Err(Error::HeaderNoColon {
                        line: line.no,
                        col: col_of(line.text, indent),
                        text: trimmed.to_owned(),
                    });
                };
                let value_byte = indent + key.len() + 1 + (value.len() - value.trim_start().len());
                let key = key.trim().to_lowercase();
                let col = col_of(line.text, indent);
                // `From alpine:3.20`: the colon found is inside the value.
                if key
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w != key && check_keyword(w, 0, 0).is_ok())
                {
                    return Err(Error::HeaderNoColon {
                        line: line.no,
                        col,
                        text: trimmed.to_owned(),
                    });
                }
                check_keyword(&key, line.no, col)?;
                first_keyword.get_or_insert((line.no, col));
                Pending {
                    key,
                    value: value.trim().to_owned(),
                    line: line.no,
                    col,
                    value_col: col_of(line.text, value_byte),
                }
            }
        };
        if let Some(v) = entry.value.strip_suffix('\\') {
            let mut v = v.to_owned();
            // `\n\` at the end of a line keeps a newline in the value (used for PGP keys).
            if let Some(w) = v.strip_suffix("\\n") {
                v = format!("{w}\n");
            }
            entry.value = v;
            pending = Some(entry);
            continue;
        }
        set(&mut header, entry, warnings)?;
    }
    if let Some(p) = pending.take() {
        set(&mut header, p, warnings)?;
    }
    validate(&header, first_keyword, warnings)?;
    Ok(header)
}

fn check_keyword(key: &str, line: usize, col: usize) -> Result<(), Error> {
    if KEYWORDS.iter().any(|k| k.0 == key && k.0 != "otherurl") || other_url_index(key).is_some() {
        return Ok(());
    }
    let suggestion = closest(key, KEYWORDS.iter().map(|k| k.0))
        .and_then(|s| KEYWORDS.iter().find(|k| k.0 == s).map(|k| k.1.to_owned()));
    Err(Error::UnknownKeyword {
        line,
        col,
        keyword: key.to_owned(),
        suggestion,
    })
}

/// `otherurl7` -> 7.
fn other_url_index(key: &str) -> Option<u32> {
    let digits = key.strip_prefix("otherurl")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn set(header: &mut Header, p: Pending, warnings: &mut Vec<Warning>) -> Result<(), Error> {
    let spanned = Spanned {
        value: p.value.clone(),
        line: p.line,
        col: p.value_col,
    };
    if let Some(i) = other_url_index(&p.key) {
        header.other_urls.retain(|(j, _)| *j != i);
        header.other_urls.push((i, spanned));
        header.other_urls.sort_by_key(|(j, _)| *j);
        return Ok(());
    }
    if p.key == "bootstrap" {
        let Some(agent) = Bootstrap::from_name(&p.value) else {
            let lower = p.value.to_lowercase();
            let suggestion = Bootstrap::from_name(&lower)
                .map(|b| b.as_str().to_owned())
                .or_else(|| closest(&lower, AGENTS.iter().map(|a| a.1)));
            return Err(Error::UnknownBootstrap {
                line: p.line,
                col: p.value_col,
                value: p.value,
                suggestion,
            });
        };
        if header.bootstrap.is_some() {
            warn_twice(warnings, &p);
        }
        header.bootstrap = Some(Spanned {
            value: agent,
            line: p.line,
            col: p.value_col,
        });
        return Ok(());
    }
    let slot = match p.key.as_str() {
        "from" => &mut header.from,
        "stage" => &mut header.stage,
        "registry" => &mut header.registry,
        "namespace" => &mut header.namespace,
        "includecmd" => &mut header.include_cmd,
        "fingerprints" => &mut header.fingerprints,
        "library" => &mut header.library,
        "mirrorurl" => &mut header.mirror_url,
        "updateurl" => &mut header.update_url,
        "osversion" => &mut header.os_version,
        "include" => &mut header.include,
        "setopt" => &mut header.setopt,
        "product" => &mut header.product,
        "user" => &mut header.user,
        "regcode" => &mut header.regcode,
        "productpgp" => &mut header.product_pgp,
        "registerurl" => &mut header.register_url,
        "modules" => &mut header.modules,
        "confurl" => &mut header.conf_url,
        "filename" => &mut header.filename,
        "target" => &mut header.target,
        "frontend" => &mut header.frontend,
        "buildargs" => &mut header.build_args,
        // check_keyword let nothing else through.
        _ => return Ok(()),
    };
    if slot.is_some() {
        warn_twice(warnings, &p);
    }
    *slot = Some(spanned);
    Ok(())
}

fn warn_twice(warnings: &mut Vec<Warning>, p: &Pending) {
    warnings.push(Warning {
        line: p.line,
        col: p.col,
        message: format!(
            "header keyword `{}` is given twice; the last value wins",
            display_name(&p.key)
        ),
    });
}

/// A keyword as documented (`MirrorURL`), from its lower-case form.
fn display_name(key: &str) -> &str {
    KEYWORDS.iter().find(|k| k.0 == key).map_or(key, |k| k.1)
}

/// Checks that need the whole header: a `Bootstrap:` exists, the agent has what it needs, and
/// keywords the agent ignores are reported (Apptainer accepts them silently, so only a warning).
fn validate(
    header: &Header,
    first_keyword: Option<(usize, usize)>,
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    let Some((line, col)) = first_keyword else {
        return Ok(());
    };
    let Some(agent) = &header.bootstrap else {
        return Err(Error::MissingBootstrap { line, col });
    };
    if agent.value.needs_from() && header.from.is_none() {
        return Err(Error::MissingFrom {
            line: agent.line,
            col: agent.col,
            agent: agent.value.as_str().to_owned(),
        });
    }
    let used = agent.value.keywords();
    for (key, field) in present_fields(header) {
        if key != "bootstrap" && key != "stage" && !used.contains(&key) {
            warnings.push(Warning {
                line: field.line,
                col: field.col,
                message: format!(
                    "header keyword `{}` is not used by `Bootstrap: {}`",
                    display_name(key),
                    agent.value
                ),
            });
        }
    }
    Ok(())
}

fn present_fields(h: &Header) -> Vec<(&'static str, &Spanned<String>)> {
    let mut out = h.keyword_values();
    out.extend(h.other_urls.iter().map(|(_, v)| ("otherurl", v)));
    out.sort_by_key(|(_, v)| v.line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::lines;

    fn hdr(text: &str) -> Result<(Header, Vec<Warning>), Error> {
        let mut w = Vec::new();
        parse(&lines(text, 1), &mut w).map(|h| (h, w))
    }

    #[test]
    fn keywords_are_case_insensitive_and_comments_stripped() {
        let (h, w) = hdr("BootStrap: docker # c\nFROM: alpine:3\n").unwrap();
        assert_eq!(h.bootstrap.unwrap().value, Bootstrap::Docker);
        assert_eq!(h.from.unwrap().value, "alpine:3");
        assert!(w.is_empty());
    }

    #[test]
    fn continuation_joins_lines_and_keeps_escaped_newlines() {
        let (h, _) = hdr("Bootstrap: zypper\nProductPGP: a\\n\\\n  b\\\n  c\n").unwrap();
        assert_eq!(h.product_pgp.unwrap().value, "a\nbc");
    }

    #[test]
    fn unknown_keyword_suggests_the_closest() {
        let e = hdr("Bootstrap: docker\nFrm: x\n").unwrap_err();
        assert_eq!(e.hint().unwrap(), "did you mean `From`?");
        assert_eq!(e.location(), Some((2, 1)));
    }

    #[test]
    fn other_urls_are_numbered() {
        let (h, _) = hdr("Bootstrap: zypper\nOtherURL1: b\nOtherURL0: a\n").unwrap();
        assert_eq!(h.other_urls.len(), 2);
        assert_eq!(h.other_urls[0].0, 0);
    }

    #[test]
    fn agent_ignored_keyword_is_a_warning() {
        let (_, w) = hdr("Bootstrap: docker\nFrom: a\nOSVersion: 9\n").unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("`OSVersion`"));
    }
}
