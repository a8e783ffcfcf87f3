//! Prints sifr's command line as a table for `scripts/flag-coverage`: one line per flag,
//! `command<TAB>long<TAB>short<TAB>other long names<TAB>other short names<TAB>variables`, where
//! `command` is the path of subcommands (`instance start`) or `GLOBAL` for the flags before the
//! command, and `variables` the suffixes of the environment variables that set the flag (the
//! action flags' twins, and the settings named after a flag), comma-separated.
//! Hidden flags and aliases are listed too: a script may use them.
#![allow(clippy::print_stdout)]

/// The variable suffixes that set the flag of these long `names`: its twin's keys, or the
/// setting of that name (`--nv` is the `nv` setting, read from `APPTAINER_NV`; `--authfile` the
/// `auth_file` one) with its other names.
fn variables(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = sifr_cli::cmd::action_env::all_twins()
        .filter(|t| names.contains(&t.flag))
        .flat_map(|t| t.keys.iter().map(|k| k.to_string()))
        .collect();
    let plain = |s: &str| s.replace(['-', '_'], "");
    for d in sifr_cli::settings::CATALOGUE
        .iter()
        .filter(|d| names.iter().any(|n| plain(n) == plain(d.key)))
    {
        out.push(d.key.to_ascii_uppercase());
        out.extend(d.also.iter().map(|a| a.to_string()));
    }
    out
}

fn walk(cmd: &clap::Command, path: &str) {
    let name = if path.is_empty() { "GLOBAL" } else { path };
    for a in cmd.get_arguments() {
        let Some(long) = a.get_long() else {
            if let Some(short) = a.get_short() {
                println!("{name}\t\t{short}\t\t");
            }
            continue;
        };
        if long == "help" {
            continue;
        }
        let longs: Vec<&str> = a.get_all_aliases().unwrap_or_default();
        let shorts: Vec<String> = a
            .get_all_short_aliases()
            .unwrap_or_default()
            .iter()
            .map(char::to_string)
            .collect();
        println!(
            "{name}\t{long}\t{}\t{}\t{}\t{}",
            a.get_short().map(String::from).unwrap_or_default(),
            longs.join(","),
            shorts.join(","),
            if path == "shell" && long == "shell" {
                sifr_cli::cmd::action::SHELL_KEYS.join(",")
            } else if let Some((_, keys)) = sifr_cli::cmd::instance::START_TWINS
                .iter()
                .find(|(f, _)| path.starts_with("instance ") && *f == long)
            {
                keys.join(",")
            } else {
                variables(&[&[long][..], &longs].concat()).join(",")
            }
        );
    }
    for sub in cmd.get_subcommands() {
        let p = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        // Print the command even without flags, so that a command with none counts as present.
        println!("{p}\t\t\t\t");
        walk(sub, &p);
    }
}

fn main() {
    walk(&sifr_cli::args::full_command(), "");
}
