//! Checks made before a build starts, so that a definition file that cannot build fails in a
//! second instead of after minutes of bootstrapping (issue 25, "fail fast"): an agent sifr
//! cannot build, a base image path that does not exist, a `%files` source that matches
//! nothing, and a `debootstrap` stage that an unprivileged build without subordinate ids
//! would run into `Cannot change ownership` 40 s later. `sifr deffile check` reports them as
//! errors with the file's line; `sifr build` refuses to start.
//!
//! Sources are looked for where the build looks (`context`, the build's working directory),
//! with the build's own glob. A missing `%files` source in a stage whose `%setup` might make
//! it is only a warning.
//!
//! The registry of each `Bootstrap: docker` base is asked once, with a short timeout
//! ([`check_registries`], the network's part, called apart from [`check`]).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sifr_deffile::{Bootstrap, Definition, Stage};
use sifr_oci::Reference;
use sifr_oci::client::Client;
use sifr_oci::client::reach::Unreachable;

/// One thing that stops (or, `fatal: false`, may stop) the build, at a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    pub line: usize,
    pub message: String,
    pub hint: Option<String>,
    /// `false`: reported as a warning, the build goes on.
    pub fatal: bool,
    /// A missing path that exists relative to the definition file's directory: a build run
    /// from there would find it (`deffile check` run from elsewhere only warns).
    pub beside_def: bool,
}

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent sifr does not build.
    Agent,
    /// A `From:` path that does not exist.
    BaseImage,
    /// A `%files` source that matches nothing.
    Files,
    /// An unprivileged build that needs subordinate ids it does not have (it may still be
    /// built as root, which `deffile check` cannot know).
    Subids,
    /// A base image's registry that does not answer.
    Registry,
}

/// What the checks need to know of the build that would run.
pub struct Facts<'a> {
    /// Where relative `%files` sources and `From:` paths are read (the build's cwd).
    pub context: &'a Path,
    /// The definition file's directory, where a missing relative path is looked for too, for
    /// the hint.
    pub def_dir: Option<&'a Path>,
    /// `Some(reason)` when the build would run unprivileged with only root mapped in its user
    /// namespace (no subordinate ids): package installs by debootstrap cannot change owners.
    pub only_root: Option<&'a str>,
}

/// The agents `sifr build` builds from (the others parse, as in Apptainer, and are refused
/// here with a hint).
fn builds(agent: Bootstrap) -> bool {
    matches!(
        agent,
        Bootstrap::Scratch
            | Bootstrap::LocalImage
            | Bootstrap::Debootstrap
            | Bootstrap::Docker
            | Bootstrap::Oci
            | Bootstrap::OciArchive
            | Bootstrap::DockerArchive
    )
}

/// What to use instead of an agent sifr does not build.
fn instead(agent: Bootstrap) -> String {
    let via = match agent {
        Bootstrap::Library | Bootstrap::Oras | Bootstrap::Shub => {
            "pull the image first (`sifr pull base.sif URI`) and use `Bootstrap: localimage` with \
             `From: base.sif`"
        }
        Bootstrap::DockerDaemon => {
            "save the image (`docker save IMAGE -o base.tar`) and use `Bootstrap: docker-archive` \
             with `From: base.tar`"
        }
        Bootstrap::Buildkit | Bootstrap::Dockerfile => {
            "build the Dockerfile with docker or podman, save it and use `Bootstrap: \
             docker-archive`"
        }
        _ => {
            "start from the distribution's registry image (`Bootstrap: docker`, e.g. `From: \
             rockylinux:9`) and install packages in `%post`"
        }
    };
    format!(
        "sifr builds from docker, docker-archive, oci, oci-archive, localimage, debootstrap and \
         scratch; {via}"
    )
}

/// Whether relative `path` exists beside the definition file (and the hint that says so).
fn beside(facts: &Facts<'_>, path: &str) -> Option<String> {
    let dir = facts.def_dir?;
    if Path::new(path).is_absolute() || dir == facts.context {
        return None;
    }
    super::files::glob(&dir.join(path))
        .is_ok_and(|found| !found.is_empty())
        .then(|| {
            format!(
                "`{path}` is beside the definition file: run `sifr build` from `{}`",
                dir.display()
            )
        })
}

/// Every problem of `def` that is certain before anything runs.
pub fn check(def: &Definition, facts: &Facts<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    for stage in &def.stages {
        check_agent(stage, facts, &mut out);
        check_files(stage, facts, &mut out);
    }
    out
}

fn check_agent(stage: &Stage, facts: &Facts<'_>, out: &mut Vec<Problem>) {
    let h = &stage.header;
    let Some(agent) = &h.bootstrap else {
        return;
    };
    if !builds(agent.value) {
        out.push(Problem {
            kind: Kind::Agent,
            beside_def: false,
            line: agent.line,
            message: format!("sifr cannot build from `Bootstrap: {}`", agent.value),
            hint: Some(instead(agent.value)),
            fatal: true,
        });
        return;
    }
    let from = h.from.as_ref();
    match (agent.value, from) {
        (
            Bootstrap::LocalImage
            | Bootstrap::Oci
            | Bootstrap::OciArchive
            | Bootstrap::DockerArchive,
            Some(from),
        ) => {
            let text = from.value.trim();
            // `oci` and the archives take `PATH:TAG`; a localimage path is taken whole.
            let path = match text.rsplit_once(':') {
                Some((p, t))
                    if agent.value != Bootstrap::LocalImage
                        && !t.contains('/')
                        && !p.is_empty() =>
                {
                    p
                }
                _ => text,
            };
            let full = facts.context.join(path);
            if !full.exists() {
                let found = beside(facts, path);
                out.push(Problem {
                    kind: Kind::BaseImage,
                    line: from.line,
                    message: format!(
                        "the base image `{path}` does not exist (looked for `{}`)",
                        full.display()
                    ),
                    beside_def: found.is_some(),
                    hint: Some(found.unwrap_or_else(|| {
                        "a relative `From:` path is read from the directory `sifr build` runs in"
                            .into()
                    })),
                    fatal: true,
                });
            }
        }
        (Bootstrap::Debootstrap, _) => {
            if let Some(reason) = facts.only_root {
                out.push(Problem {
                    kind: Kind::Subids,
                    beside_def: false,
                    line: agent.line,
                    message: format!(
                        "`Bootstrap: debootstrap` cannot work in an unprivileged build by this user: \
                         only root is mapped in its user namespace ({reason}), and installing Debian's \
                         packages changes their owners"
                    ),
                    hint: Some(
                        "ask an administrator for a subordinate id range (`usermod \
                         --add-subuids 100000-165535 --add-subgids 100000-165535 USER`) and to \
                         install `uidmap`, build as root, or start from `Bootstrap: docker` \
                         (`From: debian:12`)"
                            .into(),
                    ),
                    fatal: true,
                });
            }
        }
        _ => {}
    }
}

fn check_files(stage: &Stage, facts: &Facts<'_>, out: &mut Vec<Problem>) {
    let setup_may_make_it = stage
        .setup
        .as_ref()
        .is_some_and(|s| !s.body.trim().is_empty());
    for group in stage.files.iter().filter(|g| g.from.is_none()) {
        for e in &group.entries {
            let full = if Path::new(&e.src).is_absolute() {
                Path::new(&e.src).to_path_buf()
            } else {
                facts.context.join(&e.src)
            };
            if super::files::glob(&full).is_ok_and(|found| !found.is_empty()) {
                continue;
            }
            let found = beside(facts, &e.src);
            out.push(Problem {
                kind: Kind::Files,
                line: e.line,
                message: format!(
                    "%files: no file matches `{}` (looked for `{}`)",
                    e.src,
                    full.display()
                ),
                beside_def: found.is_some(),
                hint: Some(match found {
                    Some(h) => h,
                    None if setup_may_make_it => {
                        "unless `%setup` creates it, the build will fail when it copies the files"
                            .into()
                    }
                    None => {
                        "relative sources are read from the directory `sifr build` runs in".into()
                    }
                }),
                fatal: !setup_may_make_it,
            });
        }
    }
}

/// The registry images the build pulls, with the line naming each: every `Bootstrap: docker`
/// stage's `From:` (after `Registry:`/`Namespace:`, as the build composes it). Other
/// registry agents (`oras`, `library`) are refused by [`check`] before this matters.
pub fn registry_bases(def: &Definition) -> Vec<(usize, Reference)> {
    let text = |v: &Option<sifr_deffile::Spanned<String>>| v.as_ref().map(|s| s.value.clone());
    def.stages
        .iter()
        .filter_map(|stage| {
            let h = &stage.header;
            if h.bootstrap.as_ref().map(|b| b.value) != Some(Bootstrap::Docker) {
                return None;
            }
            let from = h.from.as_ref()?;
            let r = Reference::from_header(
                &from.value,
                text(&h.registry).as_deref(),
                text(&h.namespace).as_deref(),
            )
            .ok()?;
            Some((from.line, r))
        })
        .collect()
}

/// Whether each base image's registry answers one short request (within `timeout`; each
/// registry asked once). An unreachable registry stops the build, unless the base is pinned
/// by digest: its bootstrap key then needs no request, so the build cache may hold the stage
/// and the build get by without the registry (a warning; the build fails at the pull if not).
pub fn check_registries(def: &Definition, client: &Client, timeout: Duration) -> Vec<Problem> {
    let mut asked: HashMap<String, Result<u16, Unreachable>> = HashMap::new();
    let mut out = Vec::new();
    for (line, r) in registry_bases(def) {
        let answer = asked
            .entry(r.registry.clone())
            .or_insert_with(|| client.reach(&r, timeout));
        let Err(e) = answer else { continue };
        let e = Unreachable {
            reference: r.to_string(),
            ..e.clone()
        };
        let pinned = r.digest.is_some();
        let hint = if pinned {
            format!(
                "{}; the base is pinned by digest, so a build whose bootstrap is in the build \
                 cache does not need the registry",
                e.hint()
            )
        } else {
            e.hint()
        };
        out.push(Problem {
            kind: Kind::Registry,
            line,
            message: e.to_string(),
            hint: Some(hint),
            fatal: !pinned,
            beside_def: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Definition {
        sifr_deffile::parse(text, &sifr_deffile::Options::default()).unwrap()
    }

    fn problems(text: &str, context: &Path, only_root: Option<&str>) -> Vec<Problem> {
        check(
            &parse(text),
            &Facts {
                context,
                def_dir: None,
                only_root,
            },
        )
    }

    #[test]
    fn agents_sifr_cannot_build_are_named_with_what_to_use_instead() {
        let t = tempfile::tempdir().unwrap();
        for (agent, says) in [
            ("library", "sifr pull"),
            ("yum", "Bootstrap: docker"),
            ("docker-daemon", "docker save"),
        ] {
            let p = problems(&format!("Bootstrap: {agent}\nFrom: x\n"), t.path(), None);
            assert_eq!(p.len(), 1, "{agent}: {p:?}");
            assert_eq!(p[0].line, 1);
            assert!(p[0].fatal);
            assert!(p[0].message.contains(agent), "{p:?}");
            assert!(p[0].hint.as_deref().unwrap().contains(says), "{p:?}");
        }
        assert!(problems("Bootstrap: docker\nFrom: debian:12\n", t.path(), None).is_empty());
    }

    #[test]
    fn missing_files_sources_and_base_images_are_found_where_the_build_looks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("here.txt"), "x").unwrap();
        std::fs::create_dir(t.path().join("layout")).unwrap();
        let def = "Bootstrap: localimage\nFrom: base.sif\n\n%files\n    here.txt /opt/\n    \
                   *.txt /opt/\n    gone.txt /opt/\n";
        let p = problems(def, t.path(), None);
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 7], "{p:?}");
        assert!(p[0].message.contains("base.sif"));
        assert!(p[1].message.contains("gone.txt"));
        // `oci` paths drop their tag.
        assert!(problems("Bootstrap: oci\nFrom: layout:v1\n", t.path(), None).is_empty());
        // `%files from` is the parser's business, not a host path.
        let def = "Bootstrap: scratch\nStage: a\n\nBootstrap: scratch\n%files from a\n    /x /y\n";
        assert!(problems(def, t.path(), None).is_empty());
    }

    #[test]
    fn a_path_beside_the_definition_file_says_where_to_build_from() {
        let t = tempfile::tempdir().unwrap();
        let def_dir = t.path().join("example");
        std::fs::create_dir(&def_dir).unwrap();
        std::fs::write(def_dir.join("hello.c"), "x").unwrap();
        let def = parse("Bootstrap: scratch\n%files\n    hello.c /\n    nowhere.c /\n");
        let p = check(
            &def,
            &Facts {
                context: t.path(),
                def_dir: Some(&def_dir),
                only_root: None,
            },
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].beside_def
                && p[0]
                    .hint
                    .as_deref()
                    .unwrap()
                    .contains("run `sifr build` from")
        );
        assert!(!p[1].beside_def);
    }

    #[test]
    fn a_source_setup_may_make_is_a_warning() {
        let t = tempfile::tempdir().unwrap();
        let def = "Bootstrap: scratch\n%setup\n    touch made.txt\n%files\n    made.txt /\n";
        let p = problems(def, t.path(), None);
        assert_eq!(p.len(), 1);
        assert!(!p[0].fatal);
    }

    #[test]
    fn debootstrap_without_subordinate_ids_is_refused_before_it_runs() {
        let t = tempfile::tempdir().unwrap();
        let def = "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://m/debian\n";
        assert!(problems(def, t.path(), None).is_empty());
        let p = problems(def, t.path(), Some("no range"));
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("no range"));
        assert!(p[0].hint.as_deref().unwrap().contains("subuids"));
    }

    #[test]
    fn registry_bases_are_composed_as_the_build_composes_them() {
        let def = parse(
            "Bootstrap: docker\nFrom: app:1\nRegistry: reg.example:5000\nNamespace: team\nStage: \
             a\n\nBootstrap: scratch\n\nBootstrap: docker\nFrom: debian@sha256:\
             0000000000000000000000000000000000000000000000000000000000000000\n",
        );
        let bases = registry_bases(&def);
        assert_eq!(bases.len(), 2, "{bases:?}");
        assert_eq!(bases[0].0, 2);
        assert_eq!(bases[0].1.to_string(), "reg.example:5000/team/app:1");
        assert_eq!(bases[1].0, 10);
        assert!(bases[1].1.digest.is_some());
    }
}
