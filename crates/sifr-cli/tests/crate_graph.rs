//! The crate graph drawn in docs/architecture.md is the one the manifests declare: every arrow
//! of its mermaid picture is a dependency of a `crates/*/Cargo.toml` (dotted: a dev-dependency),
//! and every dependency between workspace crates is an arrow. A new edge therefore lands with
//! its line in the map, in the same commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An edge between two workspace packages: (from, to, dev-only).
type Edge = (String, String, bool);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The edges the manifests declare. A dependency that is both normal and dev counts as normal.
fn declared() -> BTreeSet<Edge> {
    let mut edges = BTreeSet::new();
    let crates = repo().join("crates");
    for entry in std::fs::read_dir(&crates).expect("crates/ is readable") {
        let manifest = entry.expect("a crates/ entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let name = doc["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_owned();
        let normal = sifr_deps(&doc, "dependencies");
        for dep in &normal {
            edges.insert((name.clone(), dep.clone(), false));
        }
        for dep in sifr_deps(&doc, "dev-dependencies").difference(&normal) {
            edges.insert((name.clone(), dep.clone(), true));
        }
    }
    edges
}

fn sifr_deps(doc: &toml::Table, table: &str) -> BTreeSet<String> {
    doc.get(table)
        .and_then(|t| t.as_table())
        .map(|t| {
            t.keys()
                .filter(|k| k.starts_with("sifr-"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The edges of the first ```mermaid block of docs/architecture.md. Nodes are declared as
/// `id[sifr-name]` at their first use; later uses name the id alone.
fn drawn() -> BTreeSet<Edge> {
    let path = repo().join("docs/architecture.md");
    let text = std::fs::read_to_string(&path).expect("docs/architecture.md is readable");
    let block = text
        .split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```mermaid block");
    let mut names = BTreeMap::new();
    let mut node = |token: &str| -> String {
        match token.split_once('[') {
            Some((id, label)) => {
                let label = label.trim_end_matches(']').to_owned();
                names.insert(id.to_owned(), label.clone());
                label
            }
            None => names
                .get(token)
                .cloned()
                .unwrap_or_else(|| panic!("mermaid node `{token}` is used before it is named")),
        }
    };
    let mut edges = BTreeSet::new();
    for line in block.lines().map(str::trim).filter(|l| l.contains("->")) {
        let (arrow, dev) = if line.contains("-.->") {
            ("-.->", true)
        } else {
            ("-->", false)
        };
        let (from, to) = line.split_once(arrow).expect("an arrow");
        let from = node(from.trim());
        let to = node(to.trim());
        edges.insert((from, to, dev));
    }
    edges
}

#[test]
fn the_map_draws_exactly_the_declared_crate_graph() {
    let declared = declared();
    let drawn = drawn();
    let missing: Vec<_> = declared.difference(&drawn).collect();
    let stale: Vec<_> = drawn.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's crate graph is out of date\n  \
         declared in Cargo.toml but not drawn: {missing:?}\n  drawn but not declared: {stale:?}"
    );
}

#[test]
fn only_the_cli_depends_on_the_cli_and_testkit_stays_a_dev_dependency() {
    for (from, to, dev) in declared() {
        assert_ne!(to, "sifr-cli", "{from} depends on sifr-cli");
        if to == "sifr-testkit" {
            assert!(dev, "{from} has sifr-testkit as a normal dependency");
        }
    }
}
