//! Apptainer's own end-to-end expectations, run against sifr: a table of command lines from
//! Apptainer v1.5.3's `e2e/` suite (env, actions, inspect, run-help, instance, cache, version,
//! imgbuild), each naming the Apptainer test it comes from, run through a link named
//! `apptainer` as root and as the unprivileged test user. Rows that need the network, setuid or a terminal, or a
//! feature another issue owns (`--no-eval`), are in the table marked pending and listed, not
//! run. See docs/compat.md, "Apptainer e2e conformance".
//!
//! The images are built once per run with sifr itself from definition files (`Bootstrap:
//! localimage` on the probe-and-busybox sandbox of `sifr-testkit`), so no network is needed:
//! `{busybox}` (busybox with every applet linked), `{img}` (Apptainer's `e2e/testdata/Apptainer`
//! test image: its %environment, %runscript, %startscript, %test and symlinks), `{inspect}`
//! (`e2e/testdata/inspector_container.def`) with its squashfs partition `{inspect_sqfs}` and
//! sandbox `{inspect_dir}`, `{legacy}` (a sandbox with only a legacy `/environment`),
//! `{rootsandbox}` (root's sandbox of `{img}` with a mode-0777 `/perm`) and `{sandbox}` (a
//! sandbox of `{img}` owned by whoever runs the row).
//!
//! Other placeholders: `{tmp}` (a fresh directory per row, owned by the identity, holding the
//! row's files), `{ws}` (the identity's workspace, shared by its rows in table order), `{home}`,
//! `{user}`, `{uid}`, `{hostname}`.
//!
//! `SIFR_E2E_FILTER=TEXT|TEXT...` runs only the rows whose name contains one of the TEXTs. The test fails after
//! running every row, listing each failing row with its Apptainer name and identity.
#![allow(clippy::print_stdout)]

#[path = "apptainer_e2e/rows_actions.rs"]
mod rows_actions;
#[path = "apptainer_e2e/rows_binds.rs"]
mod rows_binds;
#[path = "apptainer_e2e/rows_build.rs"]
mod rows_build;
#[path = "apptainer_e2e/rows_env.rs"]
mod rows_env;
#[path = "apptainer_e2e/rows_other.rs"]
mod rows_other;
#[path = "apptainer_e2e/setup.rs"]
mod setup;
#[path = "apptainer_e2e/table.rs"]
mod table;

use table::{Row, Who};

/// Every row, in the order they run (instance and build rows depend on earlier ones).
fn all_rows() -> Vec<Row> {
    let mut v = Vec::new();
    v.extend(rows_other::version());
    v.extend(rows_env::rows());
    v.extend(rows_actions::rows());
    v.extend(rows_other::inspect());
    v.extend(rows_other::runhelp());
    v.extend(rows_other::cache());
    v.extend(rows_build::rows());
    v.extend(rows_other::instance());
    v
}

#[test]
fn the_table_names_each_apptainer_test_once_per_row() {
    let rows = all_rows();
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(
            r.name.starts_with("e2e/"),
            "{}: not an Apptainer name",
            r.name
        );
        let who = match r.who {
            Who::Both => "both",
            Who::Root => "root",
            Who::User => "user",
        };
        assert!(
            seen.insert((r.name.clone(), who)),
            "{} appears twice",
            r.name
        );
    }
}

#[test]
fn apptainer_e2e_rows_pass_as_root_and_as_a_user() {
    let filter = std::env::var("SIFR_E2E_FILTER").ok();
    let rows: Vec<Row> = all_rows()
        .into_iter()
        .filter(|r| {
            filter
                .as_ref()
                .is_none_or(|f| f.split('|').any(|f| r.name.contains(f)))
        })
        .collect();
    let Some(images) = setup::Images::build() else {
        return;
    };
    let mut failures = Vec::new();
    let mut ran = 0;
    for who in sifr_testkit::runnable_identities() {
        let ctx = images.for_identity(who);
        for (i, r) in rows.iter().enumerate() {
            if r.pending.is_some() || !ctx.runs(r.who) {
                continue;
            }
            ran += 1;
            if let Some(why) = ctx.run(i, r) {
                failures.push(format!("[{}] {}: {why}", ctx.label(), r.name));
            }
        }
        ctx.clean_up();
    }
    let pending: Vec<&Row> = rows.iter().filter(|r| r.pending.is_some()).collect();
    println!(
        "\n{} row runs, {} failed, {} rows pending:",
        ran,
        failures.len(),
        pending.len()
    );
    for r in &pending {
        println!(
            "  pending: {} ({})",
            r.name,
            r.pending.as_deref().unwrap_or("")
        );
    }
    for r in rows.iter().filter(|r| r.adapted.is_some()) {
        println!(
            "  adapted: {} ({})",
            r.name,
            r.adapted.as_deref().unwrap_or("")
        );
    }
    if !failures.is_empty() {
        println!("\nFAILING ROWS:");
        for f in &failures {
            println!("{f}");
        }
        panic!(
            "{} of {ran} Apptainer e2e row runs failed (listed above)",
            failures.len()
        );
    }
}
