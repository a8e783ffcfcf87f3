//! `LD_LIBRARY_PATH` with host GPU libraries, in Apptainer 1.5's order: the container's own
//! library directories come first, so the host's `libGLX.so.0` (built for a newer glibc) cannot
//! shadow the image's; `/.singularity.d/libs` then `/.singularity.d/libs32` come after them.
//!
//! Apptainer asks the container's `/sbin/ldconfig -Nv` for those directories; sifr reads the
//! same sources itself ([`default_dirs`]: the container's `/etc/ld.so.conf` with its `include`s,
//! then glibc's built-in directories), so no process is started and images without `ldconfig`
//! get the same answer. [`apply`] is pure; [`default_dirs`] reads the container's files and
//! must be called inside the container, after `pivot_root`.

use std::path::{Path, PathBuf};

use crate::gpu::{LIBS_DIR, LIBS32_DIR};
use crate::vars::Vars;

/// What the container holds, as [`apply`] needs it.
pub struct LibFacts<'a> {
    /// `/.singularity.d/libs` is not empty (host libraries were bound).
    pub libs: bool,
    /// `/.singularity.d/libs32` is not empty.
    pub libs32: bool,
    /// The container's default library directories, computed only when needed.
    pub defaults: &'a dyn Fn() -> Vec<String>,
}

impl LibFacts<'_> {
    /// Look inside the container (call after `pivot_root`).
    pub fn non_empty(dir: &str) -> bool {
        std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
    }
}

/// Apptainer's steps after the image's scripts and the user's overrides:
/// 1. `LD_LIBRARY_PATH` is set but does not name `/.singularity.d/libs` (the user set it, or
///    an image without the stock `99-base.sh`), or host libraries were bound there: it is
///    appended, as Apptainer appends it after the user's values;
/// 2. when `LD_LIBRARY_PATH` is exactly `/.singularity.d/libs` (nobody else set it) and that
///    directory is not empty, or `PREPEND_`/`APPEND_LD_LIBRARY_PATH` is set, the container's
///    default directories are put in front;
/// 3. a non-empty `/.singularity.d/libs32` is appended;
/// 4. `PREPEND_LD_LIBRARY_PATH` and `APPEND_LD_LIBRARY_PATH` are applied (to force the host
///    libraries first: `PREPEND_LD_LIBRARY_PATH=/.singularity.d/libs`).
pub fn apply(env: &mut Vars, facts: &LibFacts) {
    let mut ld = env.get("LD_LIBRARY_PATH").unwrap_or_default().to_string();
    // Apptainer appends the directory after the user's values too (`--env
    // LD_LIBRARY_PATH=/foo` gives `/foo:/.singularity.d/libs`: e2e `TestCustomLdLibraryPath`).
    if (facts.libs || !ld.is_empty()) && !ld.split(':').any(|d| d == LIBS_DIR) {
        ld = join(&ld, LIBS_DIR);
    }
    let pre = env
        .get("PREPEND_LD_LIBRARY_PATH")
        .unwrap_or_default()
        .to_string();
    let app = env
        .get("APPEND_LD_LIBRARY_PATH")
        .unwrap_or_default()
        .to_string();
    if ld == LIBS_DIR && (facts.libs || !pre.is_empty() || !app.is_empty()) {
        let dirs = (facts.defaults)();
        if !dirs.is_empty() {
            ld = format!("{}:{ld}", dirs.join(":"));
        }
    }
    if facts.libs32 {
        ld = join(&ld, LIBS32_DIR);
    }
    if !ld.is_empty() {
        if !pre.is_empty() {
            ld = format!("{pre}:{ld}");
        }
        if !app.is_empty() {
            ld = format!("{ld}:{app}");
        }
        env.set("LD_LIBRARY_PATH", &ld);
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}:{b}")
    }
}

/// The directories glibc's `ldconfig -Nv` would list for the tree at `root` (`/` inside the
/// container): those of `etc/ld.so.conf` in order (with `include` globs expanded), then the
/// built-in ones (the multiarch pair and `/lib`, `/usr/lib` on Debian-style trees, else
/// `/lib64`, `/usr/lib64` on 64-bit hosts); only existing directories, each once (a directory
/// reached twice, as `/lib` and `/usr/lib` after the `/usr` merge, keeps its first name).
pub fn default_dirs(root: &Path) -> Vec<String> {
    let mut listed = Vec::new();
    conf_dirs(root, Path::new("/etc/ld.so.conf"), 0, &mut listed);
    let triplet = multiarch_triplet();
    let multi = [format!("/lib/{triplet}"), format!("/usr/lib/{triplet}")];
    if multi.iter().any(|d| inside(root, d).is_dir()) {
        listed.extend(multi);
        listed.extend(["/lib".to_string(), "/usr/lib".to_string()]);
    } else if cfg!(target_pointer_width = "64") {
        listed.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
    } else {
        listed.extend(["/lib".to_string(), "/usr/lib".to_string()]);
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for d in listed {
        let Ok(real) = std::fs::canonicalize(inside(root, &d)) else {
            continue;
        };
        if real.is_dir() && !seen.contains(&real) {
            seen.push(real);
            out.push(d);
        }
    }
    out
}

/// Debian's multiarch name for this machine (`x86_64-linux-gnu`, `aarch64-linux-gnu`, ...).
fn multiarch_triplet() -> String {
    let arch = match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        "x86" => "i386",
        a => a,
    };
    format!("{arch}-linux-gnu")
}

fn inside(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

/// Append the directories of the conf file `file` (a path in `root`), following `include`.
fn conf_dirs(root: &Path, file: &Path, depth: usize, out: &mut Vec<String>) {
    // ldconfig has no limit, but a loop of includes must not hang a container start.
    if depth > 8 {
        return;
    }
    let Ok(text) = std::fs::read_to_string(inside(root, &file.to_string_lossy())) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(pattern) = line.strip_prefix("include") {
            let pattern = pattern.trim();
            if pattern.is_empty() {
                continue;
            }
            let pattern = if pattern.starts_with('/') {
                PathBuf::from(pattern)
            } else {
                file.parent().unwrap_or(Path::new("/")).join(pattern)
            };
            for f in glob(root, &pattern) {
                conf_dirs(root, &f, depth + 1, out);
            }
        } else if line.starts_with('/') {
            // Old syntax `DIR=TYPE`; several directories may share a line.
            for d in line.split([' ', '\t', ',', ':']).filter(|d| !d.is_empty()) {
                let d = d.split('=').next().unwrap_or(d).trim_end_matches('/');
                out.push(if d.is_empty() { "/".into() } else { d.into() });
            }
        }
    }
}

/// Expand a `*`/`?` pattern in the last component of `pattern` (the form `include` lines use),
/// sorted as `glob(3)` sorts.
fn glob(root: &Path, pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let mut out: Vec<PathBuf> = match std::fs::read_dir(inside(root, &dir.to_string_lossy())) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && wildcard(name.as_bytes(), n.as_bytes()))
            .map(|n| dir.join(n))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(p: &[(&str, &str)]) -> Vars {
        Vars::of(p)
    }

    /// Facts for a container whose library directories named in `filled` (`"libs"`,
    /// `"libs32"`) hold files.
    fn facts(filled: &[&str]) -> LibFacts<'static> {
        LibFacts {
            libs: filled.contains(&"libs"),
            libs32: filled.contains(&"libs32"),
            defaults: &|| vec!["/usr/local/lib".into(), "/lib/x86_64-linux-gnu".into()],
        }
    }

    #[test]
    fn container_directories_come_before_the_host_libraries() {
        let mut env = vars(&[("LD_LIBRARY_PATH", LIBS_DIR)]);
        apply(&mut env, &facts(&["libs", "libs32"]));
        assert_eq!(
            env.get("LD_LIBRARY_PATH"),
            Some(
                "/usr/local/lib:/lib/x86_64-linux-gnu:/.singularity.d/libs:/.singularity.d/libs32"
            )
        );
    }

    #[test]
    fn an_image_value_is_kept_and_the_libraries_follow_it() {
        let mut env = vars(&[("LD_LIBRARY_PATH", "/opt/x:/.singularity.d/libs")]);
        apply(&mut env, &facts(&["libs"]));
        assert_eq!(
            env.get("LD_LIBRARY_PATH"),
            Some("/opt/x:/.singularity.d/libs")
        );
        // An image without 99-base.sh: the libraries are still found.
        let mut env = vars(&[]);
        apply(&mut env, &facts(&["libs"]));
        assert_eq!(
            env.get("LD_LIBRARY_PATH"),
            Some("/usr/local/lib:/lib/x86_64-linux-gnu:/.singularity.d/libs")
        );
    }

    #[test]
    fn without_gpu_libraries_nothing_changes_unless_asked() {
        let mut env = vars(&[("LD_LIBRARY_PATH", LIBS_DIR)]);
        apply(&mut env, &facts(&[]));
        assert_eq!(env.get("LD_LIBRARY_PATH"), Some(LIBS_DIR));
        let mut env = vars(&[
            ("LD_LIBRARY_PATH", LIBS_DIR),
            ("PREPEND_LD_LIBRARY_PATH", LIBS_DIR),
            ("APPEND_LD_LIBRARY_PATH", "/end"),
        ]);
        apply(&mut env, &facts(&[]));
        assert_eq!(
            env.get("LD_LIBRARY_PATH"),
            Some(
                "/.singularity.d/libs:/usr/local/lib:/lib/x86_64-linux-gnu:/.singularity.d/libs:/end"
            )
        );
        let mut env = vars(&[]);
        apply(&mut env, &facts(&[]));
        assert_eq!(env.get("LD_LIBRARY_PATH"), None);
    }

    #[test]
    fn default_dirs_follow_ld_so_conf_then_the_builtin_ones_once_each() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let triplet = multiarch_triplet();
        for d in [
            "etc/ld.so.conf.d",
            "usr/local/lib",
            "opt/cuda/lib64",
            &format!("usr/lib/{triplet}"),
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        // The /usr merge: /lib is a link to usr/lib.
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf"),
            "include /etc/ld.so.conf.d/*.conf\n/missing\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf.d/libc.conf"),
            "# libc default\n/usr/local/lib\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/cuda.conf"), "/opt/cuda/lib64\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/loop.conf"), "include loop.conf\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/skip.txt"), "/usr\n").unwrap();
        assert_eq!(
            default_dirs(r),
            vec![
                "/opt/cuda/lib64".to_string(),
                "/usr/local/lib".to_string(),
                format!("/lib/{triplet}"),
                "/lib".to_string(),
            ]
        );
    }
}
