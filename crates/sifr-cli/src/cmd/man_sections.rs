//! The man pages' EXAMPLES, ENVIRONMENT, FILES and SEE ALSO sections, from the same tables the
//! program reads: the examples of `--help` ([`crate::help`]), the settings catalogue, and each
//! command's variable twins of its flags. A page lists what its command reads; the top page
//! `sifr(1)` lists the settings every command reads.

use crate::settings::{CATALOGUE, DEFAULT_CONFIG_FILE, ENV_PREFIXES};

/// Escape text for roff: backslashes, and a leading `.` or `'` that would be a request.
fn esc(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// A `.TP` item: a bold tag and its text.
fn item(out: &mut String, tag: &str, text: &str) {
    out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(tag), esc(text)));
}

/// `SIFR_X, APPTAINER_X, SINGULARITY_X` for each suffix.
fn names(keys: &[&str]) -> String {
    keys.iter()
        .flat_map(|k| ENV_PREFIXES.iter().map(move |p| format!("{p}{k}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The variables the command at `path` reads for its own flags: `(names, what)`.
fn flag_variables(path: &str) -> Vec<(String, String)> {
    let flag = |f: &str| format!("as --{f}");
    match path {
        "exec" | "run" | "shell" | "test" | "instance start" | "instance run" => {
            let mut v: Vec<(String, String)> = super::action_env::all_twins()
                .map(|t| (names(t.keys), format!("{} ({})", t.doc, flag(t.flag))))
                .collect();
            if path.starts_with("instance") {
                v.extend(
                    super::instance::START_TWINS
                        .iter()
                        .map(|(f, keys)| (names(keys), flag(f))),
                );
            }
            v
        }
        "build" => super::pull_build_env::BUILD_TWINS
            .iter()
            .map(|t| (names(t.keys), flag(t.flag)))
            .collect(),
        "pull" => super::pull_build_env::PULL_TWINS
            .iter()
            .map(|t| (names(t.keys), flag(t.flag)))
            .collect(),
        "overlay create" => super::overlay::CREATE_TWINS
            .iter()
            .map(|t| (names(t.keys), flag(t.flag)))
            .collect(),
        "push" => super::push::PUSH_TWINS
            .iter()
            .map(|t| (names(t.keys), flag(t.flag)))
            .collect(),
        // What `verify.rs`, `sign.rs` and `key.rs` read (Apptainer's `EnvKeys` of their flags);
        // verify's from its own table.
        "verify" => super::verify::VERIFY_TWINS
            .iter()
            .chain([("keysdir", &["KEYSDIR"][..])].iter())
            .map(|(f, keys)| (names(keys), flag(f)))
            .collect(),
        "sign" => vec![
            (names(&["SIGN_KEY"]), flag("key")),
            (names(&["KEYSDIR"]), flag("keysdir")),
            (
                "SIFR_KEY_PASSPHRASE".to_string(),
                "the private key's passphrase, instead of asking".to_string(),
            ),
        ],
        p if p.starts_with("key ") => vec![
            (names(&["KEYSDIR"]), flag("keysdir")),
            (
                "SIFR_KEY_PASSPHRASE".to_string(),
                "a passphrase, instead of asking".to_string(),
            ),
        ],
        _ => Vec::new(),
    }
}

/// The files a command reads or writes.
fn files(path: &str) -> Vec<(String, &'static str)> {
    let config = (
        DEFAULT_CONFIG_FILE.to_string(),
        "sifr's settings (TOML); -c/--config or SIFR_CONFIG name another",
    );
    let cache = (
        "~/.apptainer/cache".to_string(),
        "the cache (setting cachedir): blobs, converted images, the build cache",
    );
    let logins = (
        "~/.apptainer/docker-config.json".to_string(),
        "registry logins that `registry login` stores and pulls read (setting configdir)",
    );
    match path.split(' ').next().unwrap_or_default() {
        "" => vec![config, cache, logins],
        "build" | "pull" | "push" | "cache" | "run" | "exec" | "shell" | "test" | "inspect"
        | "run-help" => vec![config, cache, logins],
        "registry" | "remote" => vec![config, logins],
        "key" | "sign" | "verify" => vec![
            config,
            (
                "~/.apptainer/keys/pgp-public, pgp-secret".to_string(),
                "your keyrings, shared with Apptainer (--keysdir or APPTAINER_KEYSDIR move them)",
            ),
            (
                "/etc/sifr/global-pgp-public".to_string(),
                "the global keyring an administrator manages (--global)",
            ),
        ],
        "keyserver" => vec![
            config,
            (
                "~/.apptainer/keyservers.toml".to_string(),
                "the keyservers `keyserver add` configured",
            ),
        ],
        "instance" => vec![
            config,
            (
                "~/.apptainer/instances/sifr".to_string(),
                "the records of running instances (their logs: instances/logs)",
            ),
        ],
        _ => vec![config],
    }
}

/// The EXAMPLES, ENVIRONMENT, FILES and SEE ALSO sections of the page of `cmd` at `path`
/// (`""` for the top page).
pub fn render(cmd: &clap::Command, path: &str) -> String {
    let mut out = String::new();
    let examples = crate::help::examples(path);
    if !examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (line, what) in examples {
            item(&mut out, line, what);
        }
    }
    out.push_str(".SH ENVIRONMENT\n");
    if path.is_empty() {
        out.push_str(
            "Every setting of the configuration file can be given as a variable, under each of \
             the prefixes SIFR_, APPTAINER_ and SINGULARITY_ (strongest first); a flag beats \
             its variable.\n",
        );
        for s in CATALOGUE {
            let mut keys = vec![s.key.to_uppercase()];
            keys.extend(s.also.iter().map(|k| k.to_string()));
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            item(&mut out, &names(&keys), s.doc);
        }
    } else {
        let vars = flag_variables(path);
        if vars.is_empty() {
            out.push_str("Only the settings of \\fBsifr\\fR(1).\n");
        } else {
            out.push_str(
                "The flags' variables, as Apptainer names them (a flag beats its variable), and \
                 the settings of \\fBsifr\\fR(1):\n",
            );
            for (names, what) in vars {
                item(&mut out, &names, &what);
            }
        }
    }
    out.push_str(".SH FILES\n");
    for (file, what) in files(path) {
        item(&mut out, &file, what);
    }
    out.push_str(".SH SEE ALSO\n");
    let page = |p: &str| {
        if p.is_empty() {
            "sifr".to_string()
        } else {
            format!("sifr-{}", p.replace(' ', "-"))
        }
    };
    let mut see: Vec<String> = Vec::new();
    if !path.is_empty() {
        let parent = path.rsplit_once(' ').map_or("", |(p, _)| p);
        see.push(page(parent));
    }
    see.extend(
        cmd.get_subcommands()
            .filter(|s| s.get_name() != "help" && !s.is_hide_set())
            .map(|s| page(format!("{path} {}", s.get_name()).trim())),
    );
    see.push("apptainer".to_string());
    let refs: Vec<String> = see
        .iter()
        .map(|p| format!("\\fB{}\\fR(1)", esc(p)))
        .collect();
    out.push_str(&refs.join(", "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &str) -> String {
        let mut cmd = crate::args::full_command();
        for part in path.split_whitespace() {
            cmd = cmd.find_subcommand(part).unwrap().clone();
        }
        render(&cmd, path)
    }

    #[test]
    fn a_command_page_has_its_examples_variables_files_and_neighbours() {
        let p = page("exec");
        for want in [
            ".SH EXAMPLES",
            "sifr exec \\-\\-nv env.sif nvidia\\-smi",
            ".SH ENVIRONMENT",
            "APPTAINER_CONTAINALL",
            "SINGULARITY_CLEANENV",
            ".SH FILES",
            ".SH SEE ALSO",
            "\\fBsifr\\fR(1)",
        ] {
            assert!(p.contains(want), "{want} missing:\n{p}");
        }
        let p = page("instance start");
        assert!(p.contains("\\fBsifr\\-instance\\fR(1)"), "{p}");
        assert!(p.contains("APPTAINER_PID_FILE"), "{p}");
        let top = page("");
        assert!(top.contains("SIFR_CACHEDIR, APPTAINER_CACHEDIR"), "{top}");
        assert!(top.contains("\\fBsifr\\-exec\\fR(1)"), "{top}");
    }

    #[test]
    fn roff_requests_in_text_are_escaped() {
        assert_eq!(esc(".hidden"), "\\&.hidden");
        assert_eq!(esc("a\\b"), "a\\eb");
    }
}
