//! `inspect --isa --partition NAME`: the kinds of node of a Slurm partition and their CPUs, so
//! that an image is judged on the login node against the compute nodes it will run on.
//!
//! Nodes come from `sinfo` (`%N|%f`: each node and its available features) and are grouped by
//! their feature tags. A group's CPU is the best CPU, level or feature its tags name
//! ([`sifr_isa::cpus::from_tags`]); a group whose tags name none is asked directly: its
//! `/proc/cpuinfo` through `srun --immediate` on one of its nodes (where the site allows a
//! short job). What cannot be learnt is said, never guessed.

use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use sifr_isa::HostFacts;

/// Nodes with the same feature tags, and what their CPU is.
#[derive(Debug)]
pub struct NodeKind {
    pub nodes: Vec<String>,
    /// The tags as Slurm lists them (`(null)` when none).
    pub tags: String,
    pub facts: Result<HostFacts, String>,
    /// Where the CPU came from: `features` or `cpuinfo of NODE`.
    pub source: String,
}

impl NodeKind {
    /// `Nodes a,b [tags] (from ...)`.
    pub fn label(&self) -> String {
        let nodes = if self.nodes.len() > 4 {
            format!(
                "{},... ({} nodes)",
                self.nodes[..3].join(","),
                self.nodes.len()
            )
        } else {
            self.nodes.join(",")
        };
        let tags = match self.tags.as_str() {
            "" | "(null)" => "no features",
            t => t,
        };
        format!("Nodes {nodes} [{tags}] ({})", self.source)
    }
}

/// `sinfo`'s lines `NODE|FEATURES` grouped by features, in first-seen order.
pub fn group(sinfo: &str) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for line in sinfo.lines() {
        let Some((node, tags)) = line.trim().split_once('|') else {
            continue;
        };
        let tags = tags.trim().to_string();
        match groups.iter_mut().find(|(t, _)| *t == tags) {
            Some((_, nodes)) if !nodes.iter().any(|n| n == node) => nodes.push(node.to_string()),
            Some(_) => {}
            None => groups.push((tags, vec![node.to_string()])),
        }
    }
    groups
}

/// The kinds of node of `partition`.
pub fn node_kinds(partition: &str) -> anyhow::Result<Vec<NodeKind>> {
    let out = Command::new("sinfo")
        .args(["--noheader", "--Node", "--partition", partition, "--format", "%N|%f"])
        .output()
        .map_err(|e| {
            anyhow::Error::new(crate::report::Hinted::new(
                format!("cannot run Slurm's `sinfo` ({e})"),
                "run this on a node of the cluster (a login node), where Slurm's commands are on PATH",
            ))
        })?;
    if !out.status.success() {
        anyhow::bail!(
            "`sinfo --partition {partition}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let groups = group(&text);
    if groups.is_empty() {
        return Err(crate::report::Hinted::new(
            format!("Slurm partition `{partition}` has no nodes"),
            "list the partitions with `sinfo --summarize`",
        )
        .into());
    }
    Ok(groups
        .into_iter()
        .map(|(tags, nodes)| {
            let from_tags = sifr_isa::cpus::from_tags(tags.split(','));
            match from_tags {
                Some(f) => NodeKind {
                    nodes,
                    tags,
                    facts: Ok(f),
                    source: "from its features".into(),
                },
                None => {
                    let node = nodes[0].clone();
                    let facts = cpuinfo_of(partition, &node);
                    NodeKind {
                        nodes,
                        tags,
                        facts,
                        source: format!("cpuinfo of {node}"),
                    }
                }
            }
        })
        .collect())
}

/// How long a node is given to start the short job that reads its CPU.
const SRUN_WAIT: Duration = Duration::from_secs(10);

/// A node's CPU from its `/proc/cpuinfo`, read by a one-task job that starts at once or not
/// at all (`--immediate`).
fn cpuinfo_of(partition: &str, node: &str) -> Result<HostFacts, String> {
    let out = Command::new("srun")
        .args([
            "--partition",
            partition,
            "--nodelist",
            node,
            "--nodes=1",
            "--ntasks=1",
            "--quiet",
            &format!("--immediate={}", SRUN_WAIT.as_secs()),
            "cat",
            "/proc/cpuinfo",
        ])
        .output()
        .context("cannot run Slurm's `srun`")
        .map_err(|e| format!("unknown: no CPU in its features, and {e:#}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().last().unwrap_or("").trim().to_string();
        return Err(format!(
            "unknown: no CPU in its features, and no job could read its /proc/cpuinfo ({why}); \
             ask the site to tag the nodes (Features=skylake-avx512,...), or use --target"
        ));
    }
    sifr_isa::cpus::from_cpuinfo(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| "unknown: its /proc/cpuinfo lists no CPU flags".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_grouped_by_their_tags_once_each() {
        let g = group("n1|haswell,ib\nn2|haswell,ib\nn3|(null)\nn1|haswell,ib\nbad line\n");
        assert_eq!(
            g,
            vec![
                (
                    "haswell,ib".to_string(),
                    vec!["n1".to_string(), "n2".to_string()]
                ),
                ("(null)".to_string(), vec!["n3".to_string()]),
            ]
        );
    }

    #[test]
    fn a_label_names_a_few_nodes_and_counts_the_rest() {
        let k = NodeKind {
            nodes: (1..=6).map(|i| format!("n{i}")).collect(),
            tags: "zen3".into(),
            facts: Err("x".into()),
            source: "from its features".into(),
        };
        assert_eq!(
            k.label(),
            "Nodes n1,n2,n3,... (6 nodes) [zen3] (from its features)"
        );
    }
}
