//! Gather [`HostFacts`]: ids, the host user database entry, groups, the current directory, the
//! environment. Reads the host; must run before any namespace change (NSS lookups answer for
//! the host only there) and never prints.

use std::path::{Path, PathBuf};

use crate::plan::types::{HostFacts, UserInfo};

/// Look everything up for the calling process. `env` is the host environment to use (the
/// caller passes `std::env::vars()`, or a controlled list in tests).
pub fn gather(env: Vec<(String, String)>) -> std::io::Result<HostFacts> {
    let (uid, gid) = sifr_sys::process::ids();
    let user = sifr_sys::user::user_by_uid(uid).map(|u| UserInfo {
        name: u.name,
        gecos: u.gecos,
        home: PathBuf::from(u.home),
        shell: u.shell,
    });
    let group_name = sifr_sys::user::group_name(gid);
    let groups = sifr_sys::process::groups()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| sifr_sys::user::group_name(g).map(|n| (g, n)))
        .collect();
    let physical = std::env::current_dir()?;
    // Prefer the logical $PWD (what the user typed, symlinks kept) when it is the same directory.
    let cwd = env
        .iter()
        .find(|(k, _)| k == "PWD")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|p| p.is_absolute() && same_dir(p, &physical))
        .unwrap_or(physical);
    Ok(HostFacts {
        uid,
        gid,
        groups,
        group_name,
        user,
        cwd,
        env,
        privileged: uid == 0 && sifr_sys::ns::in_initial_user_namespace(),
        var_tmp_is_tmp: same_dir(Path::new("/var/tmp"), Path::new("/tmp")),
        gpu: Vec::new(),
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Whether this process runs in the host's initial user namespace (false under fakeroot).
pub fn in_initial_user_namespace() -> bool {
    sifr_sys::ns::in_initial_user_namespace()
}
