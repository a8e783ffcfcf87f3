//! Prints sifr's command line as a table for `scripts/flag-coverage`: one line per flag,
//! `command<TAB>long<TAB>short<TAB>other long names<TAB>other short names`, where `command` is
//! the path of subcommands (`instance start`) or `GLOBAL` for the flags before the command.
//! Hidden flags and aliases are listed too: a script may use them.
#![allow(clippy::print_stdout)]

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
            "{name}\t{long}\t{}\t{}\t{}",
            a.get_short().map(String::from).unwrap_or_default(),
            longs.join(","),
            shorts.join(",")
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
