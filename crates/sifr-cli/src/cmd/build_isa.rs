//! What `sifr build` says of the CPUs an image will need, once the SIF is written: one line
//! with the level (and the files that set it), and with `--target-isa LEVEL` a judgement of
//! the image against that level: a warning naming the programs that need more, or, with
//! `--isa-check error`, a failed build whose image is removed. The facts are the ones the
//! pack stored in the image (`sifr_isa::SIF_OBJECT_NAME`), so nothing is scanned twice.

use std::fmt::Write as _;
use std::path::Path;

use sifr_isa::{FileFacts, ImageFacts, Level};

use super::isa_check::IsaCheck;
use crate::settings::Settings;

/// How many files a line names.
const SHOWN: usize = 3;

fn feature_names(f: &FileFacts) -> String {
    let v: Vec<&str> = f.needs.features.iter().map(|f| f.name()).collect();
    v.join(", ")
}

/// `x86-64-v3 (/bin/v: AVX, AVX2; ...)`: the highest level and the files that need it.
pub fn needs_line(facts: &ImageFacts) -> String {
    let arch = facts.arch.map_or("unknown", |a| a.go_name());
    let s = &facts.summary;
    let top = s.max_level;
    let worst: Vec<&FileFacts> = facts
        .files
        .iter()
        .filter(|f| !f.needs.features.is_empty() && (top.is_none() || f.needs.level == top))
        .collect();
    let mut o = match top {
        Some(l) if l > Level::V1 || !worst.is_empty() => format!("the image needs {l}"),
        Some(l) => format!("the image runs on any {arch} CPU ({l})"),
        None if worst.is_empty() => format!("the image runs on any {arch} CPU"),
        None => format!("the image needs {arch} CPUs with {}", {
            let v: Vec<&str> = s.required_features.iter().map(|f| f.name()).collect();
            v.join(", ")
        }),
    };
    if !worst.is_empty() {
        let named: Vec<String> = worst
            .iter()
            .take(SHOWN)
            .map(|f| format!("/{}: {}", f.path, feature_names(f)))
            .collect();
        let more = worst.len().saturating_sub(SHOWN);
        let _ = write!(o, " ({}", named.join("; "));
        if more > 0 {
            let _ = write!(o, "; {more} more");
        }
        o.push(')');
    }
    o
}

/// After the SIF `target` was written: the line, and the judgement against `target_isa`.
/// With `--isa-check error` and programs beyond the target, the image is removed and the
/// build fails.
pub fn after_build(
    target: &Path,
    target_isa: Option<sifr_isa::target::TargetIsa>,
    check: Option<IsaCheck>,
    settings: &Settings,
) -> anyhow::Result<()> {
    let Some(facts) = sifr_launch::isa_check::stored_facts(target) else {
        return Ok(());
    };
    let loud = !settings.quiet && !settings.silent;
    if loud {
        eprintln!("INFO:    CPU: {}", needs_line(&facts));
    }
    let Some(t) = target_isa else {
        return Ok(());
    };
    let mode = check.unwrap_or(settings.isa_check);
    if mode == IsaCheck::Off || facts.arch.is_some_and(|a| a != t.arch()) {
        return Ok(());
    }
    let Ok(cpu) = sifr_isa::cpus::named(t.name()) else {
        return Ok(());
    };
    let v = sifr_isa::judge_image(&facts, &cpu);
    if v.is_ok() {
        return Ok(());
    }
    let files: Vec<String> = v
        .offending_files
        .iter()
        .map(|f| {
            let missing: Vec<&str> = f.missing.iter().map(|m| m.name()).collect();
            format!("/{}: {}", f.path, missing.join(", "))
        })
        .collect();
    let headline = format!(
        "{} program{} in `{}` need{} more than --target-isa {t}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        target.display(),
        if files.len() == 1 { "s" } else { "" },
    );
    let hint = format!(
        "they were built for another CPU (a base image's, or flags that override the exported \
         CFLAGS); find them with `sifr inspect --isa --target {t} IMAGE`"
    );
    if mode == IsaCheck::Error {
        let _ = std::fs::remove_file(target);
        return Err(crate::report::Hinted::new(
            format!(
                "{headline}, so the image was removed (--isa-check error): {}",
                files.join("; ")
            ),
            hint,
        )
        .into());
    }
    if loud {
        eprintln!("WARNING: {headline}:");
        for f in files.iter().take(10) {
            eprintln!("         {f}");
        }
        if files.len() > 10 {
            eprintln!("         and {} more", files.len() - 10);
        }
        eprintln!("         {hint}");
    }
    Ok(())
}
