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
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory `{}`", dir.display()))?;
            write_pages(&cmd, "sifr", dir)?;
        }
    }
    Ok(crate::exit::OK)
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let page = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string())).render(&mut buf)?;
    std::fs::write(&page, buf).with_context(|| format!("cannot write `{}`", page.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
