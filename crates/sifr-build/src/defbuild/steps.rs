//! A stage's steps up to its metadata, through the build cache (`cache`, `cachekey`).
//!
//! The steps, in Apptainer's order: the bootstrap (with the `/.singularity.d` skeleton and the
//! OCI config laid out), the SCIF apps (their layout and `%appfiles`), `%files from` earlier
//! stages, `%setup`, `%files` from the host, `%post` (with each app's `%appinstall` after it). The bootstrap and each of the three sections a stage has
//! end at a checkpoint: the tree there is kept in the cache under the key of everything up to
//! it. A build restores the latest checkpoint it has a key and an entry for (no later than
//! `--no-cache-from` allows) and runs the steps after it, storing each checkpoint it reaches.
//!
//! A checkpoint is claimed (its lock taken) before the steps leading to it run, so a second
//! build of the same definition waits for the first and restores its entry instead of running
//! the same `%post` beside it. The cache never fails a build: an entry that cannot be read,
//! written or locked is warned about and the steps run.

use std::path::Path;

use sifr_deffile::{Bootstrap, Stage};

use sifr_launch::error::one_line;

use super::cache::{BuildCache, CacheError, Claim, EntryMeta};
use super::cachekey::{self, Chain};
use super::{DefBuildError, DefBuildOptions, bootstrap, check_interrupt, files, files_error};
use super::{remove_tree, script};
use crate::layout::{self, LayoutError};
use crate::ociconfig;

/// The steps that end at a checkpoint, in order; `--no-cache-from` names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Checkpoint {
    Bootstrap,
    Setup,
    Files,
    Post,
}

impl Checkpoint {
    pub const ALL: [Checkpoint; 4] = [
        Checkpoint::Bootstrap,
        Checkpoint::Setup,
        Checkpoint::Files,
        Checkpoint::Post,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Checkpoint::Bootstrap => "bootstrap",
            Checkpoint::Setup => "%setup",
            Checkpoint::Files => "%files",
            Checkpoint::Post => "%post",
        }
    }

    /// `bootstrap`, `setup`, `files`, `post`, with or without the `%`.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let t = text.trim().trim_start_matches('%').to_ascii_lowercase();
        Checkpoint::ALL
            .into_iter()
            .find(|c| c.name().trim_start_matches('%') == t)
    }
}

/// The build cache settings of a build.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The cache root (`APPTAINER_CACHEDIR`); entries go to its `build/`.
    pub root: std::path::PathBuf,
    /// Bytes the entries may take together.
    pub max_bytes: u64,
    /// `--no-cache-from`: this checkpoint and later ones are run again (and stored anew).
    pub no_cache_from: Option<Checkpoint>,
    /// What else reaches the sections and is not in the options (the fakeroot mode).
    pub salt: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Bootstrap,
    Apps,
    FilesFrom,
    Setup,
    Files,
    Post,
}

struct Planned {
    op: Op,
    /// The key after this op; `None` when the chain could not be keyed (uncacheable).
    key: Option<String>,
    checkpoint: Option<Checkpoint>,
}

/// An earlier stage: its name, root and final key (for `%files from` it).
pub(super) struct Earlier {
    pub name: Option<String>,
    pub rootfs: std::path::PathBuf,
    pub key: Option<String>,
}

/// What the steps produced besides the tree.
pub(super) struct Done {
    pub meta: EntryMeta,
    /// The stage's final key (for later stages' `%files from`), when cacheable.
    pub key: Option<String>,
}

pub(super) struct Stepper<'a> {
    pub stage: &'a Stage,
    pub label: &'a str,
    pub rootfs: &'a Path,
    pub work: &'a Path,
    pub earlier: &'a [Earlier],
    pub opts: &'a DefBuildOptions,
    /// `--update`: the root starts as a copy of the existing sandbox (never cached).
    pub update: bool,
}

fn nonempty(s: &Option<sifr_deffile::Script>) -> bool {
    s.as_ref().is_some_and(|s| !s.body.trim().is_empty())
}

impl Stepper<'_> {
    /// The ops this stage has, keyed when the cache is on and the sources can be identified.
    fn plan(&self, log: &mut dyn FnMut(&str)) -> Vec<Planned> {
        let st = self.stage;
        let apps_post = layout::sections::apps_post_script(st);
        let mut ops = vec![(Op::Bootstrap, Some(Checkpoint::Bootstrap))];
        ops.push((Op::Apps, None));
        ops.push((Op::FilesFrom, None));
        if nonempty(&st.setup) {
            ops.push((Op::Setup, Some(Checkpoint::Setup)));
        }
        let host_files = st
            .files
            .iter()
            .any(|g| g.from.is_none() && !g.entries.is_empty());
        if host_files {
            ops.push((Op::Files, Some(Checkpoint::Files)));
        }
        if nonempty(&st.post) || !apps_post.is_empty() {
            ops.push((Op::Post, Some(Checkpoint::Post)));
        }
        let mut chain = match self.opts.cache.as_ref().filter(|_| !self.update) {
            Some(c) => self.source_identity(log).map(|id| {
                let mut ch = Chain::start(self.salt(c).as_bytes());
                ch.part("header", &cachekey::json_without_lines(&st.header));
                ch.part("source", &id);
                ch
            }),
            None => None,
        };
        let mut out = Vec::new();
        for (op, checkpoint) in ops {
            if let Some(ch) = chain.as_mut()
                && !self.key_op(op, ch, &apps_post, log)
            {
                chain = None;
            }
            out.push(Planned {
                op,
                key: chain.as_ref().map(Chain::key),
                checkpoint,
            });
        }
        out
    }

    fn salt(&self, c: &CacheOptions) -> String {
        let o = self.opts;
        format!("{}\n{:?}\n{:?}\n{:?}", c.salt, o.binds, o.gpu, o.post_env)
    }

    /// Add `op`'s inputs to the chain; false when they cannot be known (a `%files` source that
    /// cannot be read, an earlier stage built without the cache): the chain stops there.
    fn key_op(&self, op: Op, ch: &mut Chain, apps_post: &str, log: &mut dyn FnMut(&str)) -> bool {
        let st = self.stage;
        match op {
            Op::Bootstrap => {}
            Op::Apps => {
                ch.part("apps", &cachekey::json_without_lines(&st.apps));
                let entries = st
                    .apps
                    .iter()
                    .flat_map(|a| a.files.iter().map(move |e| (e, Some(a.name.as_str()))));
                if !self.key_host_files(entries, ch, log) {
                    return false;
                }
            }
            Op::FilesFrom => {
                for g in st.files.iter().filter(|g| g.from.is_some()) {
                    let name = g.from.as_deref().unwrap_or_default();
                    let Some(e) = self.find_earlier(name) else {
                        return false;
                    };
                    let Some(k) = e.key.as_deref() else {
                        return false;
                    };
                    ch.part("from", k.as_bytes());
                    ch.part("entries", &cachekey::json_without_lines(&g.entries));
                }
            }
            Op::Setup => ch.part("setup", &cachekey::json_without_lines(&st.setup)),
            Op::Files => {
                let entries = st
                    .files
                    .iter()
                    .filter(|g| g.from.is_none())
                    .flat_map(|g| g.entries.iter())
                    .map(|e| (e, None));
                if !self.key_host_files(entries, ch, log) {
                    return false;
                }
            }
            Op::Post => {
                ch.part("post", &cachekey::json_without_lines(&st.post));
                ch.part("apps-post", apps_post.as_bytes());
            }
        }
        true
    }

    /// Add host files to be copied (`%files` entries, or an app's `%appfiles` with its name)
    /// to the chain: each entry and the content of what it matches; false when a source
    /// cannot be read.
    fn key_host_files<'e>(
        &self,
        entries: impl Iterator<Item = (&'e sifr_deffile::FilesEntry, Option<&'e str>)>,
        ch: &mut Chain,
        log: &mut dyn FnMut(&str),
    ) -> bool {
        for (e, app) in entries {
            ch.part("entry", &cachekey::json_without_lines(e));
            ch.part("app", app.unwrap_or_default().as_bytes());
            let full = if Path::new(&e.src).is_absolute() {
                std::path::PathBuf::from(&e.src)
            } else {
                self.opts.context.join(&e.src)
            };
            let Ok(found) = files::glob(&full) else {
                return false;
            };
            for src in found {
                ch.part("source", src.as_os_str().as_encoded_bytes());
                if let Err(err) = cachekey::copied_content(&src, ch) {
                    log(&format!(
                        "build cache: not used past the host files: cannot read `{}`: {err}",
                        src.display()
                    ));
                    return false;
                }
            }
        }
        true
    }

    /// The bootstrap source beyond the header's text; `None` when it cannot be identified.
    fn source_identity(&self, log: &mut dyn FnMut(&str)) -> Option<Vec<u8>> {
        let h = &self.stage.header;
        let from = h.from.as_ref().map(|f| f.value.trim().to_string());
        let text = |v: &Option<sifr_deffile::Spanned<String>>| v.as_ref().map(|s| s.value.clone());
        let mut say = |why: String| {
            log(&format!("build cache: not used for this stage: {why}"));
            None
        };
        match h.bootstrap.as_ref().map(|b| b.value) {
            None | Some(Bootstrap::Scratch) => Some(Vec::new()),
            Some(Bootstrap::Debootstrap) => {
                let mirror = text(&h.mirror_url).or_else(bootstrap::host_mirror);
                Some(mirror.unwrap_or_default().into_bytes())
            }
            Some(Bootstrap::Docker) => {
                let from = from?;
                let Some(reg) = self.opts.registry.as_deref() else {
                    return say("no registry client".into());
                };
                let r = sifr_oci::Reference::from_header(
                    &from,
                    text(&h.registry).as_deref(),
                    text(&h.namespace).as_deref(),
                )
                .ok()?;
                match reg.client.manifest_digest(&r) {
                    Ok(d) => Some(format!("{d} {:?}", reg.client.options().platform).into_bytes()),
                    Err(e) => say(format!("cannot look up `{from}`: {e}")),
                }
            }
            Some(Bootstrap::LocalImage | Bootstrap::Oci | Bootstrap::OciArchive)
            | Some(Bootstrap::DockerArchive) => {
                let from = from?;
                let full = self.opts.context.join(&from);
                // `oci:` sources may end in `:tag`; the path is what comes before it.
                let path = if full.exists() {
                    full
                } else {
                    match from.rsplit_once(':') {
                        Some((p, _)) => self.opts.context.join(p),
                        None => full,
                    }
                };
                match cachekey::local_identity(&path) {
                    Ok(id) => Some(id),
                    Err(e) => say(format!("cannot read `{}`: {e}", path.display())),
                }
            }
            Some(_) => None,
        }
    }

    fn find_earlier(&self, name: &str) -> Option<&Earlier> {
        self.earlier
            .iter()
            .rev()
            .find(|e| e.name.as_deref() == Some(name))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.earlier.get(i)))
    }

    /// Run the stage's steps up to its metadata, through the cache.
    pub fn run(
        &self,
        log: &mut dyn FnMut(&str),
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<Done, DefBuildError> {
        let plan = self.plan(log);
        let copts = self.opts.cache.as_ref().filter(|_| !self.update);
        let cache = copts.map(|c| BuildCache::new(&c.root, c.max_bytes, self.opts.threads));
        let may_restore = |c: Checkpoint| copts.and_then(|o| o.no_cache_from).is_none_or(|n| c < n);
        let mut meta = EntryMeta::default();
        // The last op whose result the root holds.
        let mut done: Option<usize> = None;
        let mut refused: Vec<String> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        loop {
            let next = done.map_or(0, |d| d + 1);
            if next == plan.len() {
                break;
            }
            // The furthest entry beyond what the root holds.
            let best = cache.as_ref().and_then(|c| {
                plan.iter()
                    .enumerate()
                    .skip(next)
                    .rev()
                    .find(|(_, p)| {
                        p.checkpoint.is_some_and(may_restore)
                            && p.key
                                .as_ref()
                                .is_some_and(|k| !refused.contains(k) && c.has(k))
                    })
                    .map(|(i, p)| (c, i, p.key.clone().unwrap_or_default()))
            });
            if let Some((c, i, key)) = best {
                if self.rootfs.exists() {
                    remove_tree(self.rootfs);
                }
                match c.restore(&key, self.rootfs) {
                    Ok(m) => {
                        let steps: Vec<&str> = plan[..=i]
                            .iter()
                            .filter_map(|p| p.checkpoint.map(Checkpoint::name))
                            .collect();
                        log(&format!(
                            "build cache: reusing {} (entry {})",
                            steps.join(", "),
                            &key[..12]
                        ));
                        meta = m;
                        done = Some(i);
                        kept.push(key);
                    }
                    Err(e) => {
                        tracing::warn!("{}; running its steps again", one_line(&e));
                        refused.push(key);
                        if self.rootfs.exists() {
                            remove_tree(self.rootfs);
                        }
                        done = None;
                    }
                }
                continue;
            }
            // The steps up to the next checkpoint (or the end), under its claim.
            let end = plan
                .iter()
                .enumerate()
                .skip(next)
                .find(|(_, p)| p.checkpoint.is_some())
                .map_or(plan.len() - 1, |(i, _)| i);
            let claim = match (&cache, &plan[end].key) {
                (Some(c), Some(k)) if plan[end].checkpoint.is_some() => {
                    let reuse =
                        plan[end].checkpoint.is_some_and(may_restore) && !refused.contains(k);
                    let step = plan[end].checkpoint.map_or("", Checkpoint::name);
                    match self.claim(c, k, step, reuse, log) {
                        Ok(Some(claim)) => Some(claim),
                        // Another build stored it meanwhile: restore it instead.
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("build cache: {}", one_line(&e));
                            None
                        }
                    }
                }
                _ => None,
            };
            for (j, p) in plan.iter().enumerate().take(end + 1).skip(next) {
                check_interrupt()?;
                self.run_op(p.op, &mut meta, log, on_output)?;
                done = Some(j);
            }
            if let (Some(c), Some(claim)) = (&cache, claim) {
                let step = plan[end].checkpoint.map_or("", Checkpoint::name);
                meta.step = step.to_string();
                match c.store(&claim, self.rootfs, &meta) {
                    Ok(size) => {
                        log(&format!(
                            "build cache: kept the tree after {step} ({:.1} MiB, entry {})",
                            size as f64 / 1048576.0,
                            &claim.key()[..12]
                        ));
                        kept.push(claim.key().to_string());
                        let keep: Vec<&str> = kept.iter().map(String::as_str).collect();
                        match c.evict(&keep) {
                            Ok(gone) if !gone.is_empty() => log(&format!(
                                "build cache: removed {} least recently used entr{} to stay within its size limit",
                                gone.len(),
                                if gone.len() == 1 { "y" } else { "ies" }
                            )),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("build cache: {}", one_line(&e)),
                        }
                    }
                    Err(e) => tracing::warn!("build cache: {}", one_line(&e)),
                }
            }
        }
        let key = plan.last().and_then(|p| p.key.clone()).map(|k| {
            let mut ch = Chain::start(k.as_bytes());
            ch.part("stage", &cachekey::json_without_lines(self.stage));
            ch.key()
        });
        Ok(Done { meta, key })
    }

    /// Claim `key`; when another build holds it, say so and wait for it. `Ok(None)`: the entry
    /// is there now and may be reused (restore it).
    fn claim(
        &self,
        c: &BuildCache,
        key: &str,
        step: &str,
        reuse: bool,
        log: &mut dyn FnMut(&str),
    ) -> Result<Option<Claim>, CacheError> {
        let claim = match c.try_claim(key)? {
            Some(claim) => claim,
            None => {
                log(&format!(
                    "build cache: another build is running the same step ({}); waiting for it",
                    step
                ));
                c.claim(key)?
            }
        };
        // It may have been stored while this build looked or waited.
        Ok((!(reuse && c.has(key))).then_some(claim))
    }

    fn run_op(
        &self,
        op: Op,
        meta: &mut EntryMeta,
        log: &mut dyn FnMut(&str),
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DefBuildError> {
        let (st, label, rootfs, opts) = (self.stage, self.label, self.rootfs, self.opts);
        let layout_err = |source: LayoutError| DefBuildError::Layout {
            stage: label.to_string(),
            source,
        };
        let run = script::Runner {
            stage: label,
            rootfs,
            work: self.work,
            opts,
            hint: opts.post_failure_hint.clone(),
        };
        match op {
            Op::Bootstrap => {
                let agent = st
                    .header
                    .bootstrap
                    .as_ref()
                    .map(|b| b.value.to_string())
                    .unwrap_or_else(|| "scratch".into());
                let boot = if self.update {
                    log(&format!(
                        "building into existing container: {}",
                        opts.target.display()
                    ));
                    bootstrap::existing_sandbox(&opts.target, rootfs, self.work)
                } else {
                    log(&format!("bootstrap: {agent}"));
                    bootstrap::bootstrap(
                        st,
                        rootfs,
                        self.work,
                        &opts.context,
                        opts.registry.as_deref(),
                        opts.step_progress.as_ref(),
                        log,
                    )
                }
                .map_err(|source| DefBuildError::Bootstrap {
                    stage: label.to_string(),
                    source: Box::new(source),
                })?;
                let localimage = self.update
                    || matches!(
                        st.header.bootstrap.as_ref().map(|b| b.value),
                        Some(Bootstrap::LocalImage)
                    );
                layout::write_base(
                    rootfs,
                    layout::BaseOptions {
                        overwrite: !localimage,
                    },
                )
                .map_err(layout_err)?;
                if let Some((_, config)) = &boot.oci_config {
                    ociconfig::write(rootfs, config).map_err(layout_err)?;
                }
                meta.oci_config = boot
                    .oci_config
                    .map(|(raw, _)| String::from_utf8_lossy(&raw).into_owned());
                meta.base = boot.base;
            }
            Op::Apps => {
                if !st.apps.is_empty() {
                    layout::sections::write_apps(rootfs, st).map_err(layout_err)?;
                }
                // `%appfiles`, into each app's directory, before `%setup` and `%files` as
                // Apptainer copies them (with the apps, right after the bootstrap).
                for app in &st.apps {
                    if !app.files.is_empty() {
                        log(&format!("copying the files of app `{}`", app.name));
                    }
                    for e in &app.files {
                        let dst = format!(
                            "/scif/apps/{}/{}",
                            app.name,
                            e.dst.as_deref().unwrap_or(&e.src).trim_start_matches('/')
                        );
                        files::copy_from_host(&opts.context, &e.src, Some(&dst), rootfs)
                            .map_err(files_error(label, e))?;
                    }
                }
            }
            Op::FilesFrom => {
                for group in st.files.iter().filter(|g| g.from.is_some()) {
                    let name = group.from.as_deref().unwrap_or_default();
                    let from_root =
                        self.find_earlier(name)
                            .ok_or_else(|| DefBuildError::Files {
                                stage: label.to_string(),
                                line: group.line,
                                src: name.to_string(),
                                source: files::CopyError::NoMatch {
                                    pattern: format!("stage {name}"),
                                },
                            })?;
                    log(&format!("copying files from stage `{name}`"));
                    for e in &group.entries {
                        files::copy_from_stage(&from_root.rootfs, &e.src, e.dst.as_deref(), rootfs)
                            .map_err(files_error(label, e))?;
                    }
                }
            }
            Op::Setup => {
                if let Some(setup) = st.setup.as_ref() {
                    log("running %setup on the host");
                    run.host_setup(setup, on_output)?;
                }
            }
            Op::Files => {
                for group in st.files.iter().filter(|g| g.from.is_none()) {
                    log("copying files from the host");
                    for e in &group.entries {
                        files::copy_from_host(&opts.context, &e.src, e.dst.as_deref(), rootfs)
                            .map_err(files_error(label, e))?;
                    }
                }
            }
            Op::Post => {
                log("running %post in the container");
                let apps_post = layout::sections::apps_post_script(st);
                run.post(st.post.as_ref(), &apps_post, on_output)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_parse_as_users_write_them() {
        assert_eq!(Checkpoint::parse("post"), Some(Checkpoint::Post));
        assert_eq!(Checkpoint::parse("%post"), Some(Checkpoint::Post));
        assert_eq!(Checkpoint::parse("%Files"), Some(Checkpoint::Files));
        assert_eq!(Checkpoint::parse("bootstrap"), Some(Checkpoint::Bootstrap));
        assert_eq!(Checkpoint::parse("setup"), Some(Checkpoint::Setup));
        assert_eq!(Checkpoint::parse("runscript"), None);
        assert!(Checkpoint::Bootstrap < Checkpoint::Post);
    }
}
