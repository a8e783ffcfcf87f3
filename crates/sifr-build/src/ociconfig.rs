//! An OCI image config laid out as Apptainer lays it out for `Bootstrap: oci*` (reference
//! section 3.3): `ENV` in `/.singularity.d/env/10-docker2singularity.sh` (PATH literally,
//! every other variable only where the host did not set it: `X="${X:-value}"`), a runscript
//! with Docker's rule that arguments replace `CMD` after `ENTRYPOINT`, and the image's labels
//! in `labels.json`.
//!
//! Shared by `defbuild` (`Bootstrap: oci*`) and `pull` (an OCI image straight into a SIF), so
//! neither of the two depends on the other for it.
//!
//! Writes go through the confined-root helpers of `layout`; nothing here follows a symlink.

use std::path::Path;

use crate::layout::{self, LayoutError};

/// Single-quote `s` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Escape `s` for use inside double quotes.
fn dquote_body(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `10-docker2singularity.sh` text for `ENV` entries (`K=V`).
pub(crate) fn env_script(env: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for kv in env {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if k == "PATH" {
            s.push_str(&format!("export PATH=\"{}\"\n", dquote_body(v)));
        } else {
            s.push_str(&format!("export {k}=\"${{{k}:-{}}}\"\n", dquote_body(v)));
        }
    }
    s
}

/// The runscript for `ENTRYPOINT` and `CMD`.
pub(crate) fn runscript(entrypoint: &[String], cmd: &[String]) -> String {
    let words = |w: &[String]| w.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" ");
    let mut s = String::from(
        "#!/bin/sh\n# From the OCI image config: ENTRYPOINT, then the arguments given to `run`,\n\
         # or CMD when there are none (Docker's rule).\n",
    );
    if !cmd.is_empty() {
        s.push_str(&format!(
            "if [ \"$#\" -eq 0 ]; then\n    set -- {}\nfi\n",
            words(cmd)
        ));
    } else if entrypoint.is_empty() {
        s.push_str("if [ \"$#\" -eq 0 ]; then\n    set -- /bin/sh\nfi\n");
    }
    if entrypoint.is_empty() {
        s.push_str("exec \"$@\"\n");
    } else {
        s.push_str(&format!("exec {} \"$@\"\n", words(entrypoint)));
    }
    s
}

/// Write the environment, runscript and labels of `config` into `root`.
pub(crate) fn write(
    root: &Path,
    config: &sifr_oci::manifest::ImageConfig,
) -> Result<(), LayoutError> {
    let c = config.config.clone().unwrap_or_default();
    let env = c.env.unwrap_or_default();
    let entrypoint = c.entrypoint.unwrap_or_default();
    let cmd = c.cmd.unwrap_or_default();
    layout::write_file(
        root,
        ".singularity.d/env/10-docker2singularity.sh",
        env_script(&env).as_bytes(),
        0o755,
    )?;
    layout::write_file(
        root,
        ".singularity.d/runscript",
        runscript(&entrypoint, &cmd).as_bytes(),
        0o755,
    )?;
    if let Some(labels) = c.labels.filter(|l| !l.is_empty()) {
        let json = serde_json::to_string_pretty(&labels).unwrap_or_else(|_| "{}".into());
        layout::write_file(root, ".singularity.d/labels.json", json.as_bytes(), 0o644)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keeps_host_values_except_path() {
        let s = env_script(&[
            "PATH=/opt/conda/bin:/usr/bin".into(),
            "LANG=C.UTF-8".into(),
            "Q=a\"b$c".into(),
            "bad name=x".into(),
        ]);
        assert!(s.contains("export PATH=\"/opt/conda/bin:/usr/bin\"\n"));
        assert!(s.contains("export LANG=\"${LANG:-C.UTF-8}\"\n"));
        assert!(s.contains("export Q=\"${Q:-a\\\"b\\$c}\"\n"));
        assert!(!s.contains("bad name"));
    }

    #[test]
    fn arguments_replace_cmd_after_the_entrypoint() {
        let r = runscript(&["/entry.sh".into()], &["bash".into(), "-l".into()]);
        assert!(r.contains("set -- 'bash' '-l'"));
        assert!(r.ends_with("exec '/entry.sh' \"$@\"\n"));
        let r = runscript(&[], &[]);
        assert!(r.contains("set -- /bin/sh") && r.ends_with("exec \"$@\"\n"));
    }

    #[test]
    fn the_runscript_runs_entrypoint_and_cmd_in_a_real_shell() {
        let r = runscript(&["echo".into(), "it's".into()], &["default".into()]);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &r, "sh"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's default\n");
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &r, "sh", "given"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's given\n");
    }
}
