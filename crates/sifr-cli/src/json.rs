//! sifr's own JSON output (`--json` of commands Apptainer has no JSON for, and of sifr's
//! additions): one format everywhere, pretty-printed with two-space indentation and a final
//! newline. Outputs that Apptainer defines (`inspect --json`, `instance list --json`) keep
//! Apptainer's exact bytes instead, since tools parse them.

use std::io::Write as _;

/// Print `value` on stdout in sifr's JSON format.
pub fn print<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(render(value)?.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `value` in sifr's JSON format.
pub fn render<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}
