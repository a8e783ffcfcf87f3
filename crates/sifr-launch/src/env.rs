//! The container's environment, with Apptainer's precedence (lowest to highest):
//!
//! 1. the runtime's seed: default `PATH`, `HOME` = home destination, `APPTAINER_CONTAINER`,
//!    `APPTAINER_NAME`, `APPTAINER_ENVIRONMENT`, `APPTAINER_BIND` (the `-B` destinations),
//!    `APPTAINER_APPNAME` (`--app`) and their `SINGULARITY_*` twins;
//! 2. the image's `/.singularity.d/env/*.sh`, in lexical order ([`crate::envscript`]), with
//!    the `--app` app's environment in place of `95-apps.sh` ([`crate::apps`]);
//! 3. `SINGULARITYENV_*`, then `APPTAINERENV_*`, then `--env-file` variables, then `--env K=V`
//!    (values are evaluated as the body of a double-quoted bash string, in the interpreter the
//!    scripts ran in, so `$VAR` refers to what the image set and `$(id -u)` runs in the
//!    container; `--no-eval` takes them literally);
//!    then `LD_LIBRARY_PATH` gets the container's directories before the host GPU libraries
//!    ([`crate::libpath`]);
//! 4. `PATH` edits: `…ENV_PATH` replaces it, then `PREPEND_PATH`/`APPEND_PATH`;
//! 5. host variables not set by now are restored (all of them, unless `--cleanenv`), except
//!    `PATH`, `HOME`, `LD_LIBRARY_PATH`, `APPTAINER_*`/`SINGULARITY_*` and the `…ENV_*` ones;
//!    a variable the image set to the empty string is removed;
//! 6. `PS1` defaults to `Apptainer> `, and `PROMPT_COMMAND` re-asserts it after bash's rc files
//!    (Apptainer's action script); `PATH` gets the default if it ended up unset.
//!
//! [`plan`] is pure (host facts in, [`EnvPlan`] out). [`finish`] computes the final list from a
//! plan and the environment left by the image's scripts; it is also pure. Nothing here runs
//! across a namespace change; the scripts are read by [`crate::exec`] inside the container.

use std::path::Path;

pub use crate::plan::types::EnvPlan;
use crate::plan::types::{HostFacts, Options};
pub use crate::vars::{DEFAULT_PATH, Vars};

/// Host variables never forwarded into the container, by exact name.
pub const BLOCKED: &[(&str, &str)] = &[
    (
        "PATH",
        "the container's PATH comes from the image (edit it with APPTAINERENV_*PATH)",
    ),
    ("HOME", "set to the home destination"),
    (
        "LD_LIBRARY_PATH",
        "host libraries would break the image's ones",
    ),
];

/// Host variables never forwarded, by prefix.
pub const BLOCKED_PREFIXES: &[&str] = &[
    "APPTAINER_",
    "SINGULARITY_",
    "APPTAINERENV_",
    "SINGULARITYENV_",
];

/// Host variables kept under `--cleanenv`.
pub const CLEANENV_KEEP: &[&str] = &[
    "TERM",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "ftp_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
];

/// Build the environment rules from options and host facts.
pub fn plan(opts: &Options, host: &HostFacts, image: &Path, home_dst: &Path) -> EnvPlan {
    let mut p = EnvPlan::default();
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.seed = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), home_dst.display().to_string()),
    ];
    let bind = opts
        .bind_dsts
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for prefix in ["APPTAINER", "SINGULARITY"] {
        if !bind.is_empty() {
            p.seed.push((format!("{prefix}_BIND"), bind.clone()));
        }
        p.seed
            .push((format!("{prefix}_CONTAINER"), image.display().to_string()));
        p.seed.push((format!("{prefix}_NAME"), name.clone()));
        p.seed.push((
            format!("{prefix}_ENVIRONMENT"),
            "/.singularity.d/env/91-environment.sh".into(),
        ));
        // `--app`: the image's scripts and the command see the app's name ([`crate::apps`]).
        if let Some(app) = &opts.app {
            p.seed
                .push((format!("{prefix}_APPNAME"), app.name().to_owned()));
        }
    }

    // SINGULARITYENV_ first so APPTAINERENV_ wins, then --env on top.
    let mut overrides: Vec<(String, String)> = Vec::new();
    for prefix in ["SINGULARITYENV_", "APPTAINERENV_"] {
        for (k, v) in &host.env {
            if let Some(name) = k.strip_prefix(prefix)
                && !name.is_empty()
            {
                overrides.push((name.into(), v.clone()));
            }
        }
    }
    // `--env-file` variables replace `APPTAINERENV_` ones, `--env` replaces both (Apptainer
    // turns the first two into `APPTAINERENV_` variables, skipping names `--env` sets).
    overrides.extend(opts.env_file.iter().cloned());
    overrides.extend(opts.env.iter().cloned());
    for (k, v) in overrides {
        match k.as_str() {
            "PATH" => p.path_set = Some(v),
            "PREPEND_PATH" => p.path_prepend = Some(v),
            "APPEND_PATH" => p.path_append = Some(v),
            // Refused by Apptainer too (its `alwaysOmitKeys`): HOME is the home destination,
            // the others are the runtime's own.
            "HOME"
            | "APPTAINER_SHELL"
            | "APPTAINER_APPNAME"
            | "SINGULARITY_SHELL"
            | "SINGULARITY_APPNAME" => tracing::warn!(
                "Overriding {k} environment variable with APPTAINERENV_{k} is not permitted"
            ),
            _ => {
                p.overrides.retain(|(n, _)| *n != k);
                p.overrides.push((k, v));
            }
        }
    }

    for (k, v) in &host.env {
        let blocked = BLOCKED.iter().any(|(n, _)| n == k)
            || BLOCKED_PREFIXES.iter().any(|pre| k.starts_with(pre))
            || opts.no_env.contains(k);
        if blocked {
            continue;
        }
        // With a GPU flag, the GPU selection of the scheduler survives `--cleanenv` (sifr's
        // choice: Apptainer drops it, and the job then sees every GPU of the node).
        let gpu_keep = host
            .gpu
            .iter()
            .any(|g| g.vendor.env_names().contains(&k.as_str()));
        if opts.cleanenv && !CLEANENV_KEEP.contains(&k.as_str()) && !gpu_keep {
            continue;
        }
        p.host.push((k.clone(), v.clone()));
    }
    // What GPU discovery derived (`CUDA_VISIBLE_DEVICES` from `NVIDIA_VISIBLE_DEVICES`), as if
    // the host had set it.
    for (k, v) in host.gpu.iter().flat_map(|g| &g.env) {
        if !p.host.iter().any(|(n, _)| n == k) {
            p.host.push((k.clone(), v.clone()));
        }
    }
    if opts.cleanenv {
        p.host.push(("LANG".into(), "C".into()));
    }
    p.no_eval = opts.no_eval;
    p
}

/// Steps 3 to 6: from the environment the image's scripts left to the final one. `libs` says
/// what the container's library directories hold, for `LD_LIBRARY_PATH` ([`crate::libpath`]).
pub fn finish(plan: &EnvPlan, after_scripts: Vars, libs: &crate::libpath::LibFacts) -> Vars {
    let mut env = after_scripts;
    // The values as the interpreter evaluated them (or literal, `--no-eval`): see
    // `crate::exec`'s `image_environment`.
    for (k, v) in &plan.overrides {
        env.set(k, v);
    }
    crate::libpath::apply(&mut env, libs);
    if let Some(p) = &plan.path_set {
        env.set("PATH", p);
    }
    let cur = env.get("PATH").unwrap_or(DEFAULT_PATH).to_string();
    let mut path = cur;
    if let Some(pre) = &plan.path_prepend {
        path = format!("{pre}:{path}");
    }
    if let Some(app) = &plan.path_append {
        path = format!("{path}:{app}");
    }
    env.set("PATH", &path);
    // A variable set to "" by the image (or an override) is removed, and the host's value of it
    // is not restored (Apptainer's rule).
    let emptied: Vec<String> = env
        .0
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    env.0.retain(|(_, v)| !v.is_empty());
    for (k, v) in &plan.host {
        if env.get(k).is_none() && !emptied.contains(k) {
            env.set(k, v);
        }
    }
    if env.get("PS1").is_none() {
        env.set("PS1", "Apptainer> ");
    }
    // As Apptainer's action script: bash's rc files of a `shell` may set their own PS1, so
    // PROMPT_COMMAND puts the container's back before the first prompt (and then removes itself).
    let ps1 = env.get("PS1").unwrap_or_default().to_string();
    let prompt = match env.get("PROMPT_COMMAND") {
        None => format!("PS1=\"{ps1}\"; unset PROMPT_COMMAND"),
        Some(pc) => format!(
            "{pc}; PROMPT_COMMAND=\"${{PROMPT_COMMAND%%; PROMPT_COMMAND=*}}\"; PS1=\"{ps1}\""
        ),
    };
    env.set("PROMPT_COMMAND", &prompt);
    if env.get("PATH").is_none() {
        env.set("PATH", DEFAULT_PATH);
    }
    env
}

impl EnvPlan {
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (k, v) in &self.seed {
            let _ = writeln!(s, "env seed {k}={v}");
        }
        for (k, v) in &self.overrides {
            let _ = writeln!(s, "env override {k}={v}");
        }
        for (n, v) in [
            ("set", &self.path_set),
            ("prepend", &self.path_prepend),
            ("append", &self.path_append),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "env path-{n} {v}");
            }
        }
        let names: Vec<&str> = self.host.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(s, "env host {}", names.join(" "));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_libs() -> crate::libpath::LibFacts<'static> {
        crate::libpath::LibFacts {
            libs: false,
            libs32: false,
            defaults: &Vec::new,
        }
    }

    fn v(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn image_empty_value_unsets_and_blocks_host_restore() {
        let plan = EnvPlan {
            host: v(&[("A", "host"), ("B", "host")]),
            ..EnvPlan::default()
        };
        let out = finish(&plan, Vars(v(&[("A", ""), ("PATH", "/bin")])), &no_libs());
        assert_eq!(out.get("A"), None);
        assert_eq!(out.get("B"), Some("host"));
    }

    #[test]
    fn path_edits_apply_after_the_image() {
        let plan = EnvPlan {
            path_set: Some("/set:/img".into()),
            path_prepend: Some("/pre".into()),
            path_append: Some("/app".into()),
            ..EnvPlan::default()
        };
        let out = finish(&plan, Vars(v(&[("PATH", "/img")])), &no_libs());
        assert_eq!(out.get("PATH"), Some("/pre:/set:/img:/app"));
    }

    #[test]
    fn ps1_defaults_and_prompt_command_reasserts_it_after_bashrc() {
        let out = finish(
            &EnvPlan::default(),
            Vars(v(&[("PATH", "/bin")])),
            &no_libs(),
        );
        assert_eq!(out.get("PS1"), Some("Apptainer> "));
        assert_eq!(
            out.get("PROMPT_COMMAND"),
            Some("PS1=\"Apptainer> \"; unset PROMPT_COMMAND")
        );
        // A host PROMPT_COMMAND is kept and runs first; an image's PS1 wins over the default.
        let plan = EnvPlan {
            host: v(&[("PROMPT_COMMAND", "history -a")]),
            ..EnvPlan::default()
        };
        let out = finish(&plan, Vars(v(&[("PS1", "img> ")])), &no_libs());
        assert_eq!(out.get("PS1"), Some("img> "));
        assert_eq!(
            out.get("PROMPT_COMMAND"),
            Some(
                "history -a; PROMPT_COMMAND=\"${PROMPT_COMMAND%%; PROMPT_COMMAND=*}\"; PS1=\"img> \""
            )
        );
    }
}
