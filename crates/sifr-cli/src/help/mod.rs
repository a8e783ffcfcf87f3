//! Examples for every command's `--help` (and the man pages' EXAMPLES), drawn from how
//! researchers and admins use Apptainer: one table, keyed by the command's path
//! (`"instance start"`). A unit test parses every example with the real command line and
//! checks that every command has two to four. The table itself is in `table`.

mod table;

use table::EXAMPLES;

/// The examples of the command at `path` (`"exec"`, `"instance start"`).
pub fn examples(path: &str) -> &'static [(&'static str, &'static str)] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, e)| e)
}

/// The examples as `--help` ends with them.
fn render(examples: &[(&str, &str)]) -> String {
    let mut out = String::from("Examples:\n");
    for (line, what) in examples {
        out.push_str(&format!("  $ {line}\n      {what}\n"));
    }
    out.trim_end().to_string()
}

/// `cmd` (a top-level command) and its subcommands with their examples after the help.
pub fn decorate(cmd: clap::Command) -> clap::Command {
    let name = cmd.get_name().to_string();
    let mut cmd = with_examples(cmd, &name);
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        let path = format!("{name} {sub}");
        cmd = cmd.mut_subcommand(&sub, |s| with_examples(s, &path));
    }
    cmd
}

fn with_examples(cmd: clap::Command, path: &str) -> clap::Command {
    match examples(path) {
        [] => cmd,
        e => cmd.after_help(render(e)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// Every command path of the full tree, `help` left out.
    fn paths(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{prefix}{}", s.get_name());
            out.push(path.clone());
            paths(s, &format!("{path} "), out);
        }
    }

    #[test]
    fn every_command_has_two_to_four_examples_and_every_example_is_for_a_command() {
        let mut all = Vec::new();
        paths(&crate::args::full_command(), "", &mut all);
        for p in &all {
            let n = examples(p).len();
            assert!((2..=4).contains(&n), "`{p}` has {n} examples");
        }
        for (p, _) in EXAMPLES {
            assert!(all.iter().any(|a| a == p), "examples for no command: `{p}`");
        }
    }

    #[test]
    fn every_example_parses() {
        for (path, list) in EXAMPLES {
            for (line, _) in *list {
                // Up to a shell operator; `srun`/`apptainer` stand for sifr.
                let words: Vec<&str> = line
                    .split_whitespace()
                    .take_while(|w| !matches!(*w, ">" | "|"))
                    .collect();
                let at = words
                    .iter()
                    .position(|w| matches!(*w, "sifr" | "apptainer"))
                    .unwrap_or_else(|| panic!("`{line}` runs no sifr"));
                let argv = &words[at..];
                if let Err(e) = crate::args::Cli::try_parse_from(argv) {
                    panic!("`{path}` example `{line}` does not parse: {e}");
                }
            }
        }
    }

    #[test]
    fn help_ends_with_the_examples() {
        let mut cmd = crate::args::full_command();
        let help = cmd
            .find_subcommand_mut("instance")
            .unwrap()
            .find_subcommand_mut("start")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            help.trim_end()
                .ends_with("arguments go to the start script"),
            "{help}"
        );
        assert!(help.contains("  $ sifr exec instance://db1 ps"), "{help}");
    }
}
