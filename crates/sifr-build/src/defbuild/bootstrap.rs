//! Bootstrap sources: fill an empty root filesystem directory from a stage's header.
//!
//! - `scratch`: nothing (the base skeleton comes next, from `layout::write_base`);
//! - `localimage`: a sandbox directory is copied (`cp -a`, owners, modes, links and xattrs
//!   kept); a SIF or bare SquashFS image is extracted by our reader;
//! - `debootstrap`: the host's `debootstrap --variant=minbase`, with the mirror read from the
//!   host's apt sources when the header names none (no mirror host is written in the code);
//! - `docker` (with `Registry:`/`Namespace:`), `oci`, `oci-archive`, `docker-archive`: the
//!   image fetched by `crate::pull::fetch` (a registry image through the blob cache), its
//!   layers merged newest-first with whiteouts into a SquashFS file in the build's work
//!   directory, then extracted for `%post`; the image config is returned for the caller to lay
//!   out (environment, runscript, labels).
//!
//! A definition build needs a directory for `%post` to change, so here (unlike `sifr pull`)
//! the merged tree is extracted. Going through a work-directory SquashFS (fast lz4) rather than
//! extracting each layer keeps whiteouts and hard links in one tested place, the merger.
//! Nothing here prints; tools' output goes to a log file whose tail is quoted on failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_deffile::{Bootstrap, Stage};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("`Bootstrap: {agent}` is not supported yet")]
    Unsupported { agent: String },
    #[error("`Bootstrap: {agent}` needs a `{keyword}:` header")]
    Missing {
        agent: &'static str,
        keyword: &'static str,
    },
    #[error("cannot open base image `{path}`")]
    Image {
        path: PathBuf,
        #[source]
        source: sifr_launch::image::ImageError,
    },
    #[error("cannot extract base image `{path}`")]
    Extract {
        path: PathBuf,
        #[source]
        source: sifr_squashfs::read::Error,
    },
    #[error("cannot run `{tool}`")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    /// `log` is in the build's work directory, which is removed: the message quotes its end.
    #[error("`{command}` failed ({status}); the end of its output:\n{tail}")]
    Tool {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("no Debian mirror in the host's apt sources; set `MirrorURL:` in the definition")]
    NoMirror,
    #[error("invalid image reference `{from}`")]
    Reference {
        from: String,
        #[source]
        source: sifr_oci::reference::ReferenceError,
    },
    #[error("cannot fetch base image `{from}`")]
    Fetch {
        from: String,
        #[source]
        source: Box<crate::pull::PullError>,
    },
    #[error("cannot merge the layers of `{from}`")]
    Merge {
        from: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Overlay(#[from] crate::overlay_apply::ApplyError),
    #[error("cannot write `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BootstrapError {
    pub fn hint(&self) -> Option<String> {
        match self {
            BootstrapError::Spawn { tool, .. } if tool == "debootstrap" => {
                Some("install it with `apt-get install debootstrap`".into())
            }
            BootstrapError::Fetch { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// What a bootstrap brought besides files.
#[derive(Debug, Default)]
pub struct Bootstrapped {
    /// The OCI image config (raw JSON and parsed), for OCI sources.
    pub oci_config: Option<(Vec<u8>, sifr_oci::manifest::ImageConfig)>,
    /// `(name, digest)` of the base image, for `org.opencontainers.image.base.*`.
    pub base: Option<(String, String)>,
}

/// Fill `rootfs` (which does not exist yet) for `stage`. `work` is a scratch directory for
/// logs and intermediate files; `context` resolves relative `From:` paths.
/// `registry` serves `Bootstrap: docker`.
pub fn bootstrap(
    stage: &Stage,
    rootfs: &Path,
    work: &Path,
    context: &Path,
    registry: Option<&crate::pull::RegistryAccess>,
    progress: Option<&super::StepProgress>,
    log: &mut dyn FnMut(&str),
) -> Result<Bootstrapped, BootstrapError> {
    let h = &stage.header;
    let agent = h.bootstrap.as_ref().map(|b| b.value);
    let from = |agent: &'static str| {
        h.from
            .as_ref()
            .map(|f| f.value.trim().to_string())
            .ok_or(BootstrapError::Missing {
                agent,
                keyword: "From",
            })
    };
    let mkroot = || {
        make_root(rootfs).map_err(|source| BootstrapError::Io {
            path: rootfs.to_path_buf(),
            source,
        })
    };
    match agent {
        Some(Bootstrap::Scratch) | None => {
            mkroot()?;
            Ok(Bootstrapped::default())
        }
        Some(Bootstrap::LocalImage) => {
            let from = context.join(from("localimage")?);
            local_image(&from, rootfs, work)?;
            apply_overlay_partition(&from, rootfs, log)?;
            Ok(Bootstrapped::default())
        }
        Some(Bootstrap::Debootstrap) => {
            mkroot()?;
            debootstrap(stage, rootfs, work, progress)?;
            Ok(Bootstrapped::default())
        }
        Some(Bootstrap::Docker) => {
            let from = from("docker")?;
            let text =
                |v: &Option<sifr_deffile::Spanned<String>>| v.as_ref().map(|s| s.value.clone());
            let r = sifr_oci::Reference::from_header(
                &from,
                text(&h.registry).as_deref(),
                text(&h.namespace).as_deref(),
            )
            .map_err(|source| BootstrapError::Reference {
                from: from.clone(),
                source,
            })?;
            let source = sifr_oci::ImageSource::Registry(r);
            oci_image(&source, &from, rootfs, work, registry, progress)
        }
        Some(b @ (Bootstrap::Oci | Bootstrap::OciArchive | Bootstrap::DockerArchive)) => {
            let from = from("oci")?;
            let source = local_source(b, &from, context);
            oci_image(&source, &from, rootfs, work, registry, None)
        }
        Some(other) => Err(BootstrapError::Unsupported {
            agent: other.to_string(),
        }),
    }
}

/// `--update`: the root file system starts as a copy of the existing sandbox `target`, the
/// way Apptainer's update packs the destination into the bundle instead of bootstrapping.
pub fn existing_sandbox(
    target: &Path,
    rootfs: &Path,
    work: &Path,
) -> Result<Bootstrapped, BootstrapError> {
    local_image(target, rootfs, work)?;
    Ok(Bootstrapped::default())
}

/// Run `cmd` with its output in `log`. With `progress`, the log's `I:` lines (debootstrap's
/// account of what it does) are handed on as they come, polled five times a second, and an
/// empty text ends the step.
fn run_logged(
    mut cmd: Command,
    tool: &str,
    log: &Path,
    progress: Option<&super::StepProgress>,
) -> Result<(), BootstrapError> {
    let io = |source| BootstrapError::Io {
        path: log.to_path_buf(),
        source,
    };
    let out = File::create(log).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let shown = format!("{cmd:?}").replace('"', "");
    use std::os::unix::process::CommandExt as _;
    // Its own process group (for the build's signal handler) keeps it out of a kill of the
    // build's group: tied, it dies with the build (a `cp` of a large base sandbox ran on).
    sifr_launch::buildrun::tie_to_build(&mut cmd);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| BootstrapError::Spawn {
            tool: tool.into(),
            source,
        })?;
    sifr_launch::buildrun::set_step_group(child.id());
    let status = match progress {
        None => child.wait(),
        Some(p) => {
            let status = follow(&mut child, log, p);
            (p.0)("");
            status
        }
    };
    sifr_launch::buildrun::set_step_group(0);
    let status = status.map_err(|source| BootstrapError::Spawn {
        tool: tool.into(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail = tail_lines(&text, 15);
    Err(BootstrapError::Tool {
        command: shown,
        status: status.to_string(),
        log: log.to_path_buf(),
        tail,
    })
}

/// Wait for `child`, handing each new `I:` line of `log` to `progress`.
fn follow(
    child: &mut std::process::Child,
    log: &Path,
    progress: &super::StepProgress,
) -> std::io::Result<std::process::ExitStatus> {
    use std::io::{Read as _, Seek as _};
    let mut file = File::open(log).ok();
    let mut at = 0u64;
    let mut partial = String::new();
    loop {
        let done = child.try_wait()?;
        if let Some(f) = file.as_mut() {
            let mut buf = Vec::new();
            if f.seek(std::io::SeekFrom::Start(at)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                at += buf.len() as u64;
                partial.push_str(&String::from_utf8_lossy(&buf));
                while let Some(nl) = partial.find('\n') {
                    let line: String = partial.drain(..=nl).collect();
                    if let Some(what) = line.trim_end().strip_prefix("I: ") {
                        (progress.0)(what);
                    }
                }
            }
        }
        if let Some(st) = done {
            return Ok(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The stage's root directory, mode 0755 as Apptainer makes it (not the build's umask 0002).
fn make_root(rootfs: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(rootfs)
}

fn local_image(from: &Path, rootfs: &Path, work: &Path) -> Result<(), BootstrapError> {
    let image = sifr_launch::image::open(from).map_err(|source| BootstrapError::Image {
        path: from.to_path_buf(),
        source,
    })?;
    if let sifr_launch::image::Format::Sandbox = image.format {
        make_root(rootfs).map_err(|source| BootstrapError::Io {
            path: rootfs.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new("cp");
        cmd.arg("-a")
            .arg("--reflink=auto")
            .arg(image.path.join("."))
            .arg(rootfs);
        run_logged(cmd, "cp", &work.join("localimage.log"), None)?;
        if !sifr_launch::host::in_initial_user_namespace() {
            reown_unmapped(rootfs);
        }
        return Ok(());
    }
    let extract_err = |source| BootstrapError::Extract {
        path: from.to_path_buf(),
        source,
    };
    let file = File::open(&image.path).map_err(|source| BootstrapError::Io {
        path: image.path.clone(),
        source,
    })?;
    let archive = sifr_squashfs::read::Archive::open(file, image.offset).map_err(extract_err)?;
    archive
        .extract_to(rootfs, &sifr_squashfs::read::ExtractOptions::default())
        .map_err(extract_err)?;
    Ok(())
}

/// A SIF base image's ext3 overlay partition (what `overlay create IMAGE.sif` added and
/// `exec --writable` filled) applied over the extracted root, so the new image holds the
/// user's changes (`crate::overlay_apply`; Apptainer drops them).
fn apply_overlay_partition(
    from: &Path,
    rootfs: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(), BootstrapError> {
    if std::fs::metadata(from).is_ok_and(|m| m.is_dir()) || !is_sif(from) {
        return Ok(());
    }
    let Some(offset) = crate::overlay_apply::ext3_partition(from)? else {
        return Ok(());
    };
    log(&format!(
        "applying the overlay partition of `{}`",
        from.display()
    ));
    crate::overlay_apply::apply(from, offset, rootfs)?;
    Ok(())
}

/// Whether `path` starts as a SIF does (its magic at byte 32).
fn is_sif(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 41];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[32..41] == b"SIF_MAGIC")
}

/// In a fakeroot user namespace, files whose host owner has no mapping (a base sandbox made by
/// the real root) show as the overflow id (65534), and `cp -a` would keep that id, which maps
/// to one of the user's subordinate ids: the copy would belong to neither root inside nor the
/// user outside. They are root's files in the image, so they become root's (owner 0, that is,
/// the user on the host). A file really owned by `nobody` in the base image becomes root's
/// too; no tool can tell the two apart from inside the namespace.
fn reown_unmapped(root: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let read_id = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(65534)
    };
    let (ou, og) = (
        read_id("/proc/sys/kernel/overflowuid"),
        read_id("/proc/sys/kernel/overflowgid"),
    );
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.uid() == ou || md.gid() == og {
            let uid = (md.uid() == ou).then_some(0);
            let gid = (md.gid() == og).then_some(0);
            if let Err(e) = std::os::unix::fs::lchown(&p, uid, gid) {
                tracing::warn!("cannot give `{}` to root: {e}", p.display());
            }
        }
        if md.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
}

/// The first non-security `deb` URI of the host's apt sources (deb822 `.sources` files first,
/// then one-line `sources.list` files).
pub fn host_mirror() -> Option<String> {
    let mut deb822: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    deb822.sort();
    for p in deb822
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
    {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for para in text.split("\n\n") {
            let field = |name: &str| {
                para.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let enabled = field("Enabled:").is_none_or(|v| v != "no");
            let deb = field("Types:").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
            if let (true, true, Some(uris)) = (enabled, deb, field("URIs:"))
                && let Some(u) = uris.split_whitespace().find(|u| !u.contains("security"))
            {
                return Some(u.to_string());
            }
        }
    }
    let mut lists = vec![PathBuf::from("/etc/apt/sources.list")];
    lists.extend(
        deb822
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "list")),
    );
    for p in lists {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for l in text.lines() {
            let mut w = l.split_whitespace();
            if w.next() != Some("deb") {
                continue;
            }
            if let Some(u) = w.find(|x| !x.starts_with('['))
                && !u.contains("security")
            {
                return Some(u.to_string());
            }
        }
    }
    None
}

fn debootstrap(
    stage: &Stage,
    rootfs: &Path,
    work: &Path,
    progress: Option<&super::StepProgress>,
) -> Result<(), BootstrapError> {
    let h = &stage.header;
    let suite = h
        .os_version
        .as_ref()
        .map(|v| v.value.trim().to_string())
        .ok_or(BootstrapError::Missing {
            agent: "debootstrap",
            keyword: "OSVersion",
        })?;
    let mirror = match &h.mirror_url {
        Some(m) => m.value.trim().to_string(),
        None => host_mirror().ok_or(BootstrapError::NoMirror)?,
    };
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase");
    let include = h.include_list();
    if !include.is_empty() {
        cmd.arg(format!("--include={}", include.join(",")));
    }
    cmd.arg(&suite).arg(rootfs).arg(&mirror);
    // In a user namespace (fakeroot) device nodes cannot be made; debootstrap's container mode
    // binds the host's instead of failing its `mknod` check. The runtime binds /dev anyway.
    if !sifr_launch::host::in_initial_user_namespace() {
        cmd.env("container", "lxc");
    }
    run_logged(cmd, "debootstrap", &work.join("debootstrap.log"), progress).map_err(|e| match e {
        // debootstrap's own summary says only "see debootstrap.log"; that file is inside the
        // root, which the build removes, so quote it.
        BootstrapError::Tool {
            command,
            status,
            log,
            tail,
        } => {
            let inner = std::fs::read_to_string(rootfs.join("debootstrap/debootstrap.log"))
                .map(|t| {
                    format!(
                        "\n-- the end of debootstrap/debootstrap.log in the root:\n{}",
                        tail_lines(&t, 20)
                    )
                })
                .unwrap_or_default();
            BootstrapError::Tool {
                command,
                status,
                log,
                tail: format!("{tail}{inner}"),
            }
        }
        other => other,
    })
}

/// `oci:`, `oci-archive:` or `docker-archive:` source of a `From:` value, relative to `context`.
fn local_source(agent: Bootstrap, from: &str, context: &Path) -> sifr_oci::ImageSource {
    let (path, tag) = match from.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, Some(t.to_string())),
        _ => (from, None),
    };
    let path = context.join(path);
    match agent {
        Bootstrap::Oci => sifr_oci::ImageSource::OciLayout { path, tag },
        Bootstrap::OciArchive => sifr_oci::ImageSource::OciArchive { path, tag },
        _ => sifr_oci::ImageSource::DockerArchive {
            path,
            reference: tag,
        },
    }
}

fn oci_image(
    source: &sifr_oci::ImageSource,
    from: &str,
    rootfs: &Path,
    work: &Path,
    registry: Option<&crate::pull::RegistryAccess>,
    progress: Option<&super::StepProgress>,
) -> Result<Bootstrapped, BootstrapError> {
    let platform = registry
        .map(|r| r.client.options().platform.clone())
        .unwrap_or_else(sifr_oci::manifest::Platform::host);
    // Per layer: bytes on disk and size, for the step's line (from the download threads).
    let layers = std::sync::Mutex::new(Vec::<(u64, u64)>::new());
    let on = |e: sifr_oci::client::PullEvent<'_>| {
        let Some(p) = progress else { return };
        let mut st = layers.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            sifr_oci::client::PullEvent::Resolved { layers, .. } => *st = vec![(0, 0); layers],
            sifr_oci::client::PullEvent::Bytes {
                index,
                digest,
                done,
                size,
            } => {
                if let Some(slot) = st.get_mut(index) {
                    *slot = (done, size);
                }
                let (all, total) = st.iter().fold((0, 0), |(d, t), l| (d + l.0, t + l.1));
                let mib = |b: u64| b as f64 / 1048576.0;
                let digest = digest.to_string();
                (p.0)(&format!(
                    "{:.1}/{:.1} MiB of {} layers; layer {}/{} {} {:.1}/{:.1} MiB",
                    mib(all),
                    mib(total),
                    st.len(),
                    index + 1,
                    st.len(),
                    digest.get(..19).unwrap_or(&digest),
                    mib(done),
                    mib(size)
                ));
            }
            _ => {}
        }
    };
    let image = crate::pull::fetch(source, from, registry, &platform, &on);
    if let Some(p) = progress {
        (p.0)("");
    }
    let image = image.map_err(|source| BootstrapError::Fetch {
        from: from.to_string(),
        source: Box::new(source),
    })?;
    let sqfs = work.join("layers.squashfs");
    let io = |source| BootstrapError::Io {
        path: sqfs.clone(),
        source,
    };
    let merge_err = |source: Box<dyn std::error::Error + Send + Sync>| BootstrapError::Merge {
        from: from.to_string(),
        source,
    };
    {
        let file = File::create(&sqfs).map_err(io)?;
        let mut writer = sifr_squashfs::Writer::new(
            std::io::BufWriter::new(file),
            sifr_squashfs::Options {
                compression: sifr_squashfs::Compression::Lz4,
                ..sifr_squashfs::Options::default()
            },
        )
        .map_err(|e| merge_err(Box::new(e)))?;
        let layers = sifr_oci::merge::newest_occurrences(&image.layers);
        let mut sink = sifr_oci::merge::SquashfsSink::new(&mut writer);
        sifr_oci::merge::merge(
            &layers,
            &mut sink,
            &sifr_oci::merge::MergeOptions::default(),
        )
        .map_err(|e| merge_err(Box::new(e)))?;
        writer.finish().map_err(|e| merge_err(Box::new(e)))?;
    }
    let file = File::open(&sqfs).map_err(io)?;
    let extract_err = |source| BootstrapError::Extract {
        path: sqfs.clone(),
        source,
    };
    let archive = sifr_squashfs::read::Archive::open(file, 0).map_err(extract_err)?;
    archive
        .extract_to(rootfs, &sifr_squashfs::read::ExtractOptions::default())
        .map_err(extract_err)?;
    drop(archive);
    let _ = std::fs::remove_file(&sqfs);
    let base = image
        .digest
        .as_ref()
        .map(|d| (from.to_string(), d.to_string()));
    Ok(Bootstrapped {
        oci_config: Some((image.config_bytes.clone(), image.config.clone())),
        base,
    })
}
