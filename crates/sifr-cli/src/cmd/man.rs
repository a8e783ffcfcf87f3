//! `sifr man [--output DIR]`: roff man pages generated from the clap definitions, so they
//! never drift from `--help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (`sifr.1`, `sifr-build.1`, ...) into this directory.
    /// Without it, the top-level page goes to stdout.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &ManArgs) -> anyhow::Result<u8> {
    let cmd = crate::args::full_command();
    match &args.output {
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&page_text(&cmd, "sifr", "")?)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory `{}`", dir.display()))?;
            write_pages(&cmd, "sifr", "", dir)?;
        }
    }
    Ok(crate::exit::OK)
}

/// The page of `cmd` (command path `path`, `""` for the top) and of its subcommands.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    path: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let page = dir.join(format!("{name}.1"));
    let buf = page_text(cmd, name, path)?;
    std::fs::write(&page, buf).with_context(|| format!("cannot write `{}`", page.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        write_pages(
            sub,
            &format!("{name}-{}", sub.get_name()),
            sub_path.trim_start(),
            dir,
        )?;
    }
    Ok(())
}

/// One page: clap_mangen's sections (without its EXTRA section, which would repeat the
/// `--help` examples as plain text), then EXAMPLES, ENVIRONMENT, FILES and SEE ALSO.
fn page_text(cmd: &clap::Command, name: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let bare = cmd
        .clone()
        .name(name.to_string())
        .after_help("")
        .after_long_help("");
    clap_mangen::Man::new(bare).render(&mut buf)?;
    buf.extend(super::man_sections::render(cmd, path).into_bytes());
    Ok(buf)
}
