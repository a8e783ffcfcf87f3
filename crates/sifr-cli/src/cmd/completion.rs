//! `sifr completion SHELL`: a completion script generated from the clap definitions.

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionArgs) -> anyhow::Result<u8> {
    let mut cmd = crate::args::full_command();
    let name = invoked_name();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(crate::exit::OK)
}

/// The name the user invoked us by (`sifr`, `apptainer` or `singularity`), so completions
/// attach to the command the user actually types.
pub fn invoked_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .filter(|n| crate::ALIASES.contains(n))
        .unwrap_or("sifr")
        .to_string()
}
