//! Docs that stay true (issue 25): every `sifr ...` command line in README.md and docs/ (in
//! shell code blocks and in inline code) parses with sifr's real command line, and every flag
//! named alone in inline code (`` `--flag` ``) is a flag of some sifr command, unless the
//! sentence is about another program (the allow list below names each, with its program).
//!
//! The notation of the docs is read as a reader would: `exec|run|shell` takes the first
//! alternative, `[--opt X]` is written out, `...` is dropped, and a line ends at a shell
//! operator (`|`, `&&`, `;`, `>`) or a `#` comment. Placeholders (`IMAGE`, `env.def`) are
//! ordinary arguments to the parser, which is all this test asks of them.
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use clap::error::ErrorKind;

/// Flags the docs name that belong to other programs (peers, MPI launchers, tools sifr calls),
/// or that Apptainer has and sifr deliberately lacks (each is explained where it is named).
const OTHER_PROGRAMS: &[&str] = &[
    // mpirun / srun / Slurm
    "--mpi",
    "--mca",
    "--ntasks",
    "--nodes",
    "--partition",
    "--ntasks-per-node",
    "--oversubscribe",
    "--bind-to",
    "--map-by",
    "--allow-run-as-root",
    "--export",
    "--host",
    // mksquashfs / unsquashfs / mkfs / debootstrap / tar / cp / gpg / openssl / curl / pip
    "--variant",
    "--include",
    "--exclude",
    "--clamp-mtime",
    "--sort",
    "--mtime",
    "--owner",
    "--group",
    "--numeric-owner",
    "--verify",
    "--armor",
    "--detach-sign",
    "--no-cache-dir",
    "--keyring",
    "--homedir",
    "--batch",
    "--compressed",
    "--insecure",
    "--user",
    "--no-install-recommends",
    "--reflink",
    "--sparse",
    "--preserve",
    "--foreign",
    "--arch",
    "--components",
    "--keyring",
    // cargo / nextest / charliecloud / podman / docker
    "--release",
    "--locked",
    "--workspace",
    "--no-fail-fast",
    "--test",
    "--features",
    "--write-fake-id",
    "--unset-env",
    "--set-env",
    "--storage",
    "--privileged",
    "--rm",
    "--userns-remap",
    "--network",
    // perf, docker build, snakemake, shpc (docs/clients.md)
    "--call-graph",
    "--no-cache",
    "--no-cache-filter",
    "--sdm",
    "--software-deployment-method",
    "--apptainer-prefix",
    "--apptainer-args",
    // Apptainer's, which sifr does without (docs/gpu.md says why)
    "--compat32",
    // an instance's start script's own arguments (docs/runtime.md)
    "--port",
    // scripts/install.sh (docs/cli.md)
    "--drop-in",
    "--modulefiles",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file of docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A place in the docs and what it shows.
struct Found {
    file: String,
    line: usize,
    text: String,
}

/// Split a shell line into words, keeping quoted text whole (quotes removed).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                has = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Strip the optional-part brackets of a word: leading `[`s, and trailing `]`s that close
/// none of the word's own (`HOST[:PORT]` keeps its bracket). Returns the word and how many
/// optional parts it opened (positive) or closed (negative).
fn unbracket(w: &str) -> (&str, i32) {
    let inner = w.trim_start_matches('[');
    let opened = (w.len() - inner.len()) as i32;
    let mut inner = inner;
    let mut closed = 0;
    while inner.ends_with(']') && inner.matches('[').count() < inner.matches(']').count() {
        inner = &inner[..inner.len() - 1];
        closed += 1;
    }
    (inner, opened - closed)
}

/// The argument vectors of the `sifr` commands on one shell line, in the docs' notation.
fn sifr_commands(line: &str) -> Vec<Vec<String>> {
    let line = line
        .trim()
        .trim_start_matches("$ ")
        .trim_start_matches("# ");
    let mut cmds = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    let mut first = true;
    // Inside `[...]`: how deep, and the depth at which the rest of an `a | b` choice is skipped.
    let mut depth = 0;
    let mut skip_from: Option<i32> = None;
    for w in words(line) {
        if depth > 0 && w == "|" {
            skip_from.get_or_insert(depth);
            continue;
        }
        let operator = matches!(
            w.as_str(),
            "|" | "||" | "&&" | ";" | ">" | ">>" | "2>" | "2>&1" | "<" | "&" | "then" | "do"
        ) || w.starts_with('#')
            || w.starts_with("2>")
            || w.starts_with('>');
        if operator {
            cmds.extend(cur.take());
            first = true;
            if w.starts_with('#') {
                break;
            }
            continue;
        }
        let (bare, opened) = unbracket(&w);
        let before = depth;
        depth = (depth + opened).max(0);
        if let Some(d) = skip_from {
            if depth < d {
                skip_from = None;
            }
            if before >= d {
                continue;
            }
        }
        match &mut cur {
            Some(args) => {
                // `-F|--force` and `exec|run` take the first; `--x=a|b` keeps its value's first.
                let w = match bare.split_once('|') {
                    Some((head, _)) => head,
                    None => bare,
                };
                if !w.is_empty() && w != "..." && w != "\u{2026}" && !w.ends_with("...") {
                    args.push(w.to_string());
                }
            }
            None if bare == "sifr" || (first && bare.ends_with("/sifr")) => {
                cur = Some(vec!["sifr".into()])
            }
            None => {}
        }
        first = false;
    }
    cmds.extend(cur);
    cmds
}

/// Inline code spans of a line (between single backticks).
fn spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Every command line (with whether it is a whole one, from a code block) and every flag
/// named alone in inline code.
fn scan() -> (Vec<(Found, bool)>, Vec<Found>) {
    let mut cmds: Vec<(Found, bool)> = Vec::new();
    let mut flags = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut fence: Option<String> = None;
        let mut pending = String::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if let Some(rest) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(rest.trim().to_string()),
                };
                continue;
            }
            match &fence {
                Some(lang) if ["", "sh", "bash", "console", "shell"].contains(&lang.as_str()) => {
                    // Continuation lines join the command they continue.
                    if let Some(head) = line.strip_suffix('\\') {
                        pending.push_str(head);
                        pending.push(' ');
                        continue;
                    }
                    pending.push_str(line);
                    // A synopsis goes on over indented lines of options: `    [--opt X]`.
                    if let Some((last, _)) = cmds.last_mut()
                        && last.line + 1 == n
                        && last.file == file
                        && line.starts_with("  ")
                        && matches!(line.trim_start().chars().next(), Some('[' | '-'))
                    {
                        last.text.push(' ');
                        last.text.push_str(&std::mem::take(&mut pending));
                        last.line = n;
                        continue;
                    }
                    let whole = std::mem::take(&mut pending);
                    if whole.trim_start().starts_with('#') && !whole.contains("# sifr") {
                        continue;
                    }
                    cmds.push((
                        Found {
                            file: file.clone(),
                            line: n,
                            text: whole,
                        },
                        true,
                    ));
                }
                Some(_) => {}
                None => {
                    for span in spans(line) {
                        let found = Found {
                            file: file.clone(),
                            line: n,
                            text: span.to_string(),
                        };
                        if span.starts_with("sifr ") && names_a_command(span) {
                            cmds.push((found, false));
                        } else if span.starts_with("--") {
                            flags.push(found);
                        }
                    }
                }
            }
        }
    }
    (cmds, flags)
}

/// Inline code that shows sifr's output rather than a command line.
const OUTPUTS: &[&str] = &["sifr version "];

/// Whether inline `sifr WORD ...` names a command (`sifr exec IMG`), not a label (`sifr FUSE`)
/// or output.
fn names_a_command(span: &str) -> bool {
    let Some(second) = span.split_whitespace().nth(1) else {
        return false;
    };
    if OUTPUTS.iter().any(|o| span.starts_with(o)) {
        return false;
    }
    second.starts_with('-')
        || sifr_cli::args::full_command()
            .get_subcommands()
            .any(|c| c.get_name() == second || c.get_all_aliases().any(|a| a == second))
}

/// Whether a value the parser refused is a placeholder (`N`, `LEVEL`, `SECONDS`).
fn placeholder(e: &clap::Error) -> bool {
    use clap::error::{ContextKind, ContextValue};
    match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
        }
        _ => false,
    }
}

/// Parse as sifr does: clap's parse, then the check sifr makes of the action commands, whose
/// image operand takes hyphens (`exec --no-such img` must not pass with `--no-such` as the
/// image; `cmd::action::split_operands`).
fn parse(argv: &[String]) -> Result<(), clap::Error> {
    sifr_cli::args::Cli::try_parse_from(argv)?;
    let cmd = sifr_cli::args::full_command();
    let mut matches = cmd.clone().try_get_matches_from(argv)?;
    let mut leaf = cmd;
    while let Some((name, sub)) = matches.remove_subcommand() {
        leaf = leaf.find_subcommand(&name).cloned().unwrap();
        matches = sub;
    }
    let mut positionals: Vec<&clap::Arg> = leaf.get_positionals().collect();
    positionals.sort_by_key(|a| a.get_index());
    for arg in positionals {
        let Ok(Some(mut raw)) = matches.try_get_raw(arg.get_id().as_str()) else {
            continue;
        };
        if let Some(first) = raw.next().and_then(|v| v.to_str())
            && first.starts_with('-')
            && first.len() > 1
        {
            return Err(leaf.clone().error(
                ErrorKind::UnknownArgument,
                format!("unknown flag `{first}`"),
            ));
        }
        break;
    }
    Ok(())
}

/// Every long flag and alias of every sifr command.
fn known_flags() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for a in cmd.get_arguments() {
            out.extend(
                a.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
            out.extend(
                a.get_all_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&sifr_cli::args::full_command(), &mut out);
    out.insert("--help".into());
    out.insert("--version".into());
    out
}

#[test]
fn every_documented_sifr_command_line_parses() {
    let (cmds, _) = scan();
    let mut bad = Vec::new();
    let mut checked = 0;
    for (found, whole) in &cmds {
        for argv in sifr_commands(&found.text) {
            checked += 1;
            let Err(e) = parse(&argv) else {
                continue;
            };
            let fine = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => true,
                ErrorKind::InvalidValue | ErrorKind::ValueValidation => placeholder(&e),
                // Prose names a command without its arguments (`sifr build` packs ...).
                ErrorKind::MissingRequiredArgument
                | ErrorKind::MissingSubcommand
                | ErrorKind::WrongNumberOfValues
                | ErrorKind::TooFewValues => !whole,
                _ => false,
            };
            if !fine {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                bad.push(format!(
                    "{}:{}: `{}`: {first}",
                    found.file,
                    found.line,
                    argv.join(" ")
                ));
            }
        }
    }
    println!("{checked} command lines checked");
    assert!(
        checked > 150,
        "only {checked} command lines found: the scan is broken"
    );
    assert!(
        bad.is_empty(),
        "{} documented command lines do not parse:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_flag_named_in_the_docs_is_a_sifr_flag() {
    let (_, flags) = scan();
    let known = known_flags();
    assert!(known.len() > 100, "the flag walk is broken: {known:?}");
    println!(
        "{} flags named alone, {} sifr flags",
        flags.len(),
        known.len()
    );
    let mut bad = Vec::new();
    for f in &flags {
        // `--flag`, `--flag VALUE`, `--flag=VALUE`, `--flag/-f`, `--a`/`--b`.
        let name: String = f
            .text
            .split(|c: char| c.is_whitespace() || c == '=' || c == '/' || c == '[')
            .next()
            .unwrap_or_default()
            .to_string();
        if name.len() <= 2 || known.contains(&name) || OTHER_PROGRAMS.contains(&name.as_str()) {
            continue;
        }
        bad.push(format!("{}:{}: `{}`", f.file, f.line, f.text));
    }
    assert!(
        bad.is_empty(),
        "{} flags named in the docs are not sifr flags (a flag of another program goes in \
         OTHER_PROGRAMS with its program):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_notation_is_read_as_a_reader_would() {
    let got = sifr_commands("$ sifr exec|run [--cleanenv] img.sif cat /etc/os-release | head -1");
    assert_eq!(
        got,
        vec![vec![
            "sifr",
            "exec",
            "--cleanenv",
            "img.sif",
            "cat",
            "/etc/os-release"
        ]]
    );
    let got = sifr_commands("SIFR_X=1 mpirun -n 2 sifr exec \"a b.sif\" ./app ... # ranks");
    assert_eq!(got, vec![vec!["sifr", "exec", "a b.sif", "./app"]]);
    assert!(sifr_commands("echo sifrs are fine").is_empty());
    // A flag that does not exist fails the parse: the test can fail.
    let argv = sifr_commands("sifr exec --no-such-flag img.sif true").remove(0);
    assert!(parse(&argv).is_err());
    let argv = sifr_commands("sifr build --no-such-flag a.sif b.def").remove(0);
    assert!(parse(&argv).is_err());
    let argv = sifr_commands("sifr exec -c img.sif ls -l").remove(0);
    assert!(parse(&argv).is_ok());
}

#[test]
fn the_flag_walk_reaches_every_command() {
    let known = known_flags();
    for f in [
        "--writable-tmpfs",
        "--no-cache-from",
        "--nv",
        "--apply-cgroups",
        "--days",
    ] {
        assert!(known.contains(f), "{f} missing from {known:?}");
    }
}
