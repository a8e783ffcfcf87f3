//! Where a command is looked up before it is executed: `execvp`'s `PATH` search, done ahead
//! of the fork so the child only tries the candidates.

use std::path::{Path, PathBuf};

/// `execvp`'s search, done before the fork: a name with `/` is used as is, otherwise every
/// PATH directory is tried in order by the child.
pub(crate) fn command_candidates(cmd: &str, path: &str) -> Vec<PathBuf> {
    if cmd.contains('/') {
        return vec![PathBuf::from(cmd)];
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_search_follows_path_order_and_keeps_slashes() {
        assert_eq!(
            command_candidates("python3", "/opt/py/bin::/usr/bin"),
            vec![
                PathBuf::from("/opt/py/bin/python3"),
                PathBuf::from("/usr/bin/python3")
            ]
        );
        assert_eq!(
            command_candidates("./run.sh", "/usr/bin"),
            vec![PathBuf::from("./run.sh")]
        );
    }
}
