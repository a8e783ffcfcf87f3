//! GPU device nodes and the selection of GPUs by `NVIDIA_VISIBLE_DEVICES`.
//!
//! [`Selection::parse`] and [`select_nvidia`] are pure; [`list_dev`] reads a directory of the
//! host (normally `/dev`). Nothing here mounts: the plan binds what is chosen, and only under
//! `--contain`, where `/dev` is minimal (the full host `/dev` shows every node otherwise).

use std::path::{Path, PathBuf};

/// Which NVIDIA GPUs a launch asks for, from `NVIDIA_VISIBLE_DEVICES` (the variable the NVIDIA
/// container runtime reads, so job scripts written for Docker keep their meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Unset or `all`: every GPU.
    All,
    /// `none`, `void` or empty: no GPU node, the driver's control nodes and libraries only.
    None,
    /// A comma-separated list of GPU indices (`/dev/nvidia<N>` minors).
    Indices(Vec<u32>),
    /// UUIDs or MIG names: resolving them needs the driver itself (NVML); every GPU is given,
    /// with a warning, rather than guessing.
    Unresolved(String),
}

impl Selection {
    pub fn parse(value: Option<&str>) -> Selection {
        let Some(v) = value.map(str::trim) else {
            return Selection::All;
        };
        match v {
            "all" => Selection::All,
            "" | "none" | "void" => Selection::None,
            _ => {
                let parsed: Option<Vec<u32>> =
                    v.split(',').map(|s| s.trim().parse::<u32>().ok()).collect();
                match parsed {
                    Some(mut ids) => {
                        ids.dedup();
                        Selection::Indices(ids)
                    }
                    None => Selection::Unresolved(v.to_string()),
                }
            }
        }
    }
}

/// The entries of `dir` whose names start with `prefix`, sorted (nodes and directories alike).
pub fn list_dev(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// The GPU index of an NVIDIA node name (`nvidia3` -> 3); `None` for control nodes
/// (`nvidiactl`, `nvidia-uvm`, `nvidia-modeset`, `nvidia-caps/`).
pub fn gpu_index(node: &Path) -> Option<u32> {
    node.file_name()?
        .to_str()?
        .strip_prefix("nvidia")?
        .parse()
        .ok()
}

/// Keep the control nodes and the selected GPU nodes of `nodes`; also say which selected
/// indices have no node.
pub fn select_nvidia(nodes: &[PathBuf], sel: &Selection) -> (Vec<PathBuf>, Vec<u32>) {
    let keep = |n: &PathBuf| match (gpu_index(n), sel) {
        (None, _) => true,
        (Some(_), Selection::All | Selection::Unresolved(_)) => true,
        (Some(_), Selection::None) => false,
        (Some(i), Selection::Indices(ids)) => ids.contains(&i),
    };
    let chosen: Vec<PathBuf> = nodes.iter().filter(|n| keep(n)).cloned().collect();
    let missing = match sel {
        Selection::Indices(ids) => ids
            .iter()
            .copied()
            .filter(|i| !nodes.iter().any(|n| gpu_index(n) == Some(*i)))
            .collect(),
        _ => Vec::new(),
    };
    (chosen, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_visible_devices_values() {
        assert_eq!(Selection::parse(None), Selection::All);
        assert_eq!(Selection::parse(Some("all")), Selection::All);
        assert_eq!(Selection::parse(Some("none")), Selection::None);
        assert_eq!(Selection::parse(Some("")), Selection::None);
        assert_eq!(
            Selection::parse(Some("2, 0")),
            Selection::Indices(vec![2, 0])
        );
        assert_eq!(
            Selection::parse(Some("GPU-8e1c")),
            Selection::Unresolved("GPU-8e1c".into())
        );
    }

    #[test]
    fn selection_keeps_control_nodes_and_chosen_gpus() {
        let nodes: Vec<PathBuf> = [
            "/dev/nvidia-caps",
            "/dev/nvidia-modeset",
            "/dev/nvidia-uvm",
            "/dev/nvidia0",
            "/dev/nvidia1",
            "/dev/nvidiactl",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let (c, missing) = select_nvidia(&nodes, &Selection::Indices(vec![1, 7]));
        assert_eq!(
            c,
            [
                "/dev/nvidia-caps",
                "/dev/nvidia-modeset",
                "/dev/nvidia-uvm",
                "/dev/nvidia1",
                "/dev/nvidiactl"
            ]
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
        );
        assert_eq!(missing, vec![7]);
        let (c, _) = select_nvidia(&nodes, &Selection::None);
        assert!(c.iter().all(|n| gpu_index(n).is_none()));
        assert_eq!(select_nvidia(&nodes, &Selection::All).0, nodes);
    }
}
