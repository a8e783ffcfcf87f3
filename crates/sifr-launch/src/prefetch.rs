//! What a FUSE server looks up and reads ahead for a launch ([`sifr_squashfs::fuse::Prefetch`]):
//! the paths the launch itself looks up and the files it reads before its command starts, then
//! what nearly every command maps first. Over a fresh FUSE mount each lookup and each block is
//! otherwise a request the launch waits for.

use std::path::PathBuf;

use crate::cmdpath::command_candidates;
use crate::image::Attach;
use crate::plan::types::{Action, LaunchPlan};
use crate::vars::DEFAULT_PATH;

/// What the FUSE server of an image it attaches looks up and reads ahead: the launch's own
/// [`first_lookups`] and the command's [`first_reads`]. Nothing for any other attachment.
pub(crate) fn fuse_prefetch(how: &Attach, plan: &LaunchPlan) -> sifr_squashfs::fuse::Prefetch {
    match how {
        Attach::Fuse => {
            let (files, lookups) = first_lookups(plan);
            sifr_squashfs::fuse::Prefetch {
                files: [files, first_reads(&plan.action)].concat(),
                lookups,
            }
        }
        _ => sifr_squashfs::fuse::Prefetch::default(),
    }
}

/// What the launch itself reads and looks up in the image before the command starts: the
/// `/etc/passwd` and `/etc/group` it rewrites (read), then every mount point (missing ones
/// too: the kernel caches the miss before the launch makes the point in its session layer),
/// the working directory, and the `/.singularity.d` directories read for the environment
/// (looked up). Over a fresh FUSE mount each is otherwise a request per path component that
/// the launch waits for, and a block to decode for the two files.
fn first_lookups(plan: &LaunchPlan) -> (Vec<Vec<PathBuf>>, Vec<PathBuf>) {
    let reads = ["/etc/passwd", "/etc/group"].map(PathBuf::from);
    let mut seen: std::collections::HashSet<PathBuf> = reads.iter().cloned().collect();
    let lookups = plan
        .mounts
        .iter()
        .map(|m| m.dst.clone())
        .chain([plan.cwd.path.clone()])
        .chain(
            [
                "/.singularity.d/env",
                "/.singularity.d/libs",
                "/.singularity.d/libs32",
            ]
            .map(PathBuf::from),
        )
        .filter(|p| p.is_absolute() && seen.insert(p.clone()))
        .collect();
    (reads.into_iter().map(|p| vec![p]).collect(), lookups)
}

/// What the command of `action` reads first, for a FUSE server to decode before it is asked
/// ([`sifr_squashfs::fuse::Options::prefetch`]): the command itself (each default `PATH`
/// candidate, or the shell that runs the image's scripts), then the dynamic loader of this
/// host's architecture in the places distributions put them (an image for another
/// architecture is refused before it gets here), the two files it opens first
/// (`/etc/ld.so.preload`, usually missing, and `/etc/ld.so.cache`), and the C library.
/// Nearly every command maps those first; over a fresh FUSE mount, each lookup and each block
/// is otherwise a request the command waits for.
fn first_reads(action: &Action) -> Vec<Vec<PathBuf>> {
    let command = match action {
        Action::Exec(argv) => argv
            .first()
            .map(|c| command_candidates(c, DEFAULT_PATH))
            .unwrap_or_default(),
        Action::Shell(_) => vec!["/bin/bash".into(), "/bin/sh".into()],
        Action::Run(_) | Action::Test(_) | Action::Start(_) => vec!["/bin/sh".into()],
    };
    let (loaders, libcs): (&[&str], &[&str]) = match std::env::consts::ARCH {
        "x86_64" => (
            &["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1"],
            &[
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/libc.so.6",
                "/usr/lib/libc.so.6",
            ],
        ),
        "aarch64" => (
            &["/lib/ld-linux-aarch64.so.1", "/lib/ld-musl-aarch64.so.1"],
            &[
                "/lib/aarch64-linux-gnu/libc.so.6",
                "/lib64/libc.so.6",
                "/usr/lib/libc.so.6",
            ],
        ),
        "powerpc64" => (
            &["/lib64/ld64.so.2"],
            &["/lib/powerpc64le-linux-gnu/libc.so.6", "/lib64/libc.so.6"],
        ),
        _ => (&[], &[]),
    };
    let paths = |l: &[&str]| l.iter().map(PathBuf::from).collect::<Vec<_>>();
    let loader_files = if loaders.is_empty() {
        Vec::new()
    } else {
        vec![paths(&["/etc/ld.so.preload"]), paths(&["/etc/ld.so.cache"])]
    };
    [
        vec![command, paths(loaders)],
        loader_files,
        vec![paths(libcs)],
    ]
    .concat()
    .into_iter()
    .filter(|alternatives| !alternatives.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_reads_its_command_then_the_loader_and_libc_ahead() {
        let reads = first_reads(&Action::Exec(vec!["true".into(), "--help".into()]));
        assert_eq!(reads[0], command_candidates("true", DEFAULT_PATH));
        assert!(reads[0].contains(&PathBuf::from("/usr/bin/true")));
        let reads = first_reads(&Action::Exec(vec!["/opt/app".into()]));
        assert_eq!(reads[0], vec![PathBuf::from("/opt/app")]);
        let reads = first_reads(&Action::Run(vec![]));
        assert_eq!(reads[0], vec![PathBuf::from("/bin/sh")]);
        let reads = first_reads(&Action::Shell(None));
        assert_eq!(reads[0][0], PathBuf::from("/bin/bash"));
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(reads.len(), 5);
            assert!(reads[1].contains(&PathBuf::from("/lib64/ld-linux-x86-64.so.2")));
            assert_eq!(reads[2], vec![PathBuf::from("/etc/ld.so.preload")]);
            assert_eq!(reads[3], vec![PathBuf::from("/etc/ld.so.cache")]);
            assert!(reads[4].contains(&PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")));
            assert!(reads[4].contains(&PathBuf::from("/lib64/libc.so.6")));
        }
        // No command, no empty group.
        let reads = first_reads(&Action::Exec(vec![]));
        assert!(reads.iter().all(|alternatives| !alternatives.is_empty()));
    }
}
