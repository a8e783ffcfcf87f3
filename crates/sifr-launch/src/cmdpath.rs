//! Where a command is looked up before it is executed: `execvp`'s `PATH` search, done ahead
//! of the fork so the child only tries the candidates, and its rule for a file the kernel
//! cannot execute (no `#!`, not a program), which `/bin/sh` runs instead.

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

/// The shell that runs a file the kernel refuses with `ENOEXEC`.
const SHELL: &str = "/bin/sh";

/// `execvp`'s `ENOEXEC` rule, which Apptainer applies too (it runs `/bin/sh ARGV...` when the
/// `execve` of its action fails so), judged before the fork: when the first candidate that is
/// an executable file is neither an ELF program nor a `#!` script (a shell script without its
/// first line, as SCIF apps' `%appinstall` often writes them), the command becomes
/// `/bin/sh CANDIDATE ARGS...`. `None` when the candidates run as they are, or when `root`
/// (the container's `/`) has no `/bin/sh`.
pub(crate) fn shell_fallback(
    candidates: &[PathBuf],
    argv: &[String],
    root: &Path,
) -> Option<(Vec<PathBuf>, Vec<String>)> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    // A relative candidate (`./run.sh`) is the working directory's.
    let at = |p: &Path| match p.strip_prefix("/") {
        Ok(rel) => root.join(rel),
        Err(_) => p.to_path_buf(),
    };
    let found = candidates.iter().find(|c| {
        std::fs::metadata(at(c)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })?;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(at(found)).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let head = &head[..n];
    if head.starts_with(b"#!") || head == b"\x7fELF" || !at(Path::new(SHELL)).is_file() {
        return None;
    }
    let mut shell_argv = vec![SHELL.to_owned(), found.to_string_lossy().into_owned()];
    shell_argv.extend(argv.iter().skip(1).cloned());
    Some((vec![PathBuf::from(SHELL)], shell_argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_first_line_runs_under_sh() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("app")).unwrap();
        let file = |rel: &str, bytes: &[u8], mode: u32| {
            std::fs::write(r.join(rel), bytes).unwrap();
            std::fs::set_permissions(r.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        file("bin/sh", b"\x7fELF...", 0o755);
        file("app/plain.sh", b"echo $X\n", 0o755);
        file("app/bang.sh", b"#!/bin/sh\necho\n", 0o755);
        file("app/prog", b"\x7fELF\x02\x01", 0o755);
        file("app/noexec.sh", b"echo\n", 0o644);
        let argv = |c: &str| vec![c.to_owned(), "a".to_owned()];
        let cands = command_candidates("plain.sh", "/nope:/app");
        assert_eq!(
            shell_fallback(&cands, &argv("plain.sh"), r),
            Some((
                vec![PathBuf::from("/bin/sh")],
                vec!["/bin/sh".into(), "/app/plain.sh".into(), "a".into()]
            ))
        );
        for c in [
            "/app/bang.sh",
            "/app/prog",
            "/app/noexec.sh",
            "/app/missing",
        ] {
            assert_eq!(
                shell_fallback(&[PathBuf::from(c)], &argv(c), r),
                None,
                "{c}"
            );
        }
        std::fs::remove_file(r.join("bin/sh")).unwrap();
        assert_eq!(shell_fallback(&cands, &argv("plain.sh"), r), None);
    }

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
