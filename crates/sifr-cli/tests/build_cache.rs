//! The build cache, as users meet it: a rebuild after a change runs only the steps from the
//! first changed one, `--no-cache-from` and `--disable-cache` run them anyway, a damaged entry
//! is never used, two builds of one definition at once run `%post` once, `%files from` follows
//! a changed earlier stage, the size limit evicts least recently used entries, and `cache
//! list|clean --type build` see them. As root and as the test user (fakeroot). A registry base
//! is keyed by its tag's digest.
//!
//! Each build's `%post` records a random value in the image, so whether it ran is read from
//! the image, not only from the log.

mod build_case;
mod registries;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Output;

use build_case::{Case, builders, ok};
use sifr_testkit::{As, stderr, stdout};

/// A cache directory of `who`'s own in the fixture.
fn cache_dir(c: &Case, who: As) -> PathBuf {
    let d = c.fx.dir.path().join(format!("cache-{}", who.uid()));
    if !d.exists() {
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    d
}

/// `sifr ARGS` as `who` with the build cache on (`size` MiB) in `who`'s cache directory.
fn build(c: &Case, who: As, size: &str, args: &[&str]) -> Output {
    c.fx.command(build_case::sifr(), who)
        .args(args)
        .env("SIFR_TMPDIR", &c.tmp)
        .env("APPTAINER_CACHEDIR", cache_dir(c, who))
        .env("SIFR_BUILD_CACHE_SIZE", size)
        .output()
        .output
}

/// What `%post` recorded in `sif` (`/post.id`), read with `sifr exec`.
fn post_id(c: &Case, who: As, sif: &str) -> String {
    let o = c.sifr(who, &["exec", sif, "cat", "/post.id"]);
    ok(&o, "exec cat /post.id");
    stdout(&o).trim().to_string()
}

fn entries(c: &Case, who: As) -> Vec<String> {
    let d = cache_dir(c, who).join("build");
    let mut v: Vec<String> = std::fs::read_dir(&d)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

const DEF: &str = "Bootstrap: localimage\nFrom: ../image\n\n\
%files\n    input.txt /opt/input.txt\n\n\
%post\n    cat /proc/sys/kernel/random/uuid > /post.id\n    echo POST-RAN\n\n\
%environment\n    export A=1\n\n\
%runscript\n    echo run-one\n";

fn write_def(c: &Case, name: &str, text: &str) {
    c.write(name, text);
    let input = c.fx.work.join("input.txt");
    if !input.exists() {
        std::fs::write(&input, b"first\n").unwrap();
    }
}

#[test]
fn a_rebuild_runs_only_the_steps_from_the_first_change() {
    let Some(c) = Case::new() else { return };
    for who in builders() {
        std::fs::write(c.fx.work.join("input.txt"), b"first\n").unwrap();
        write_def(&c, "a.def", DEF);
        let cold = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&cold, "cold build");
        assert!(stdout(&cold).contains("POST-RAN"), "{}", stdout(&cold));
        assert!(stderr(&cold).contains("build cache: kept the tree after %post"));
        let id = post_id(&c, who, "a.sif");
        assert_eq!(entries(&c, who).len(), 3, "bootstrap, %files, %post kept");

        // %runscript and %environment are laid out after %post: everything is reused.
        write_def(
            &c,
            "a.def",
            &DEF.replace("run-one", "run-two").replace("A=1", "A=2"),
        );
        let warm = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&warm, "rebuild after a %runscript change");
        assert!(
            stderr(&warm).contains("build cache: reusing bootstrap, %files, %post"),
            "{}",
            stderr(&warm)
        );
        assert!(!stdout(&warm).contains("POST-RAN"), "%post ran again");
        assert_eq!(post_id(&c, who, "a.sif"), id);
        let run = c.sifr(who, &["run", "a.sif"]);
        assert_eq!(stdout(&run), "run-two\n");
        let env = c.sifr(who, &["exec", "a.sif", "sh", "-c", "echo $A"]);
        assert_eq!(stdout(&env), "2\n");

        // Moving %post down the file (its line changes, not its text) changes nothing.
        write_def(
            &c,
            "a.def",
            &DEF.replace("run-one", "run-two")
                .replace("%post", "\n\n%post"),
        );
        let moved = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&moved, "rebuild with %post moved");
        assert_eq!(post_id(&c, who, "a.sif"), id);

        // A %files source's contents: the bootstrap is reused, %files and %post run.
        std::fs::write(c.fx.work.join("input.txt"), b"second\n").unwrap();
        let files = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&files, "rebuild after a %files change");
        assert!(
            stderr(&files).contains("build cache: reusing bootstrap (entry"),
            "{}",
            stderr(&files)
        );
        assert!(stdout(&files).contains("POST-RAN"));
        let id2 = post_id(&c, who, "a.sif");
        assert_ne!(id2, id);
        let input = c.sifr(who, &["exec", "a.sif", "cat", "/opt/input.txt"]);
        assert_eq!(stdout(&input), "second\n");

        // %post's text: %post runs again.
        write_def(
            &c,
            "a.def",
            &DEF.replace("echo POST-RAN", "echo POST-RAN; true"),
        );
        let post = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&post, "rebuild after a %post change");
        assert!(stderr(&post).contains("build cache: reusing bootstrap, %files (entry"));
        assert!(stdout(&post).contains("POST-RAN"));

        // --no-cache-from post: reused up to %files, %post runs and its entry is replaced.
        let before = post_id(&c, who, "a.sif");
        let again = build(
            &c,
            who,
            "1024",
            &["build", "-F", "--no-cache-from", "post", "a.sif", "a.def"],
        );
        ok(&again, "--no-cache-from post");
        assert!(stdout(&again).contains("POST-RAN"));
        let after = post_id(&c, who, "a.sif");
        assert_ne!(after, before);
        let plain = build(&c, who, "1024", &["build", "-F", "a.sif", "a.def"]);
        ok(&plain, "rebuild after --no-cache-from");
        assert_eq!(
            post_id(&c, who, "a.sif"),
            after,
            "the refreshed entry is used"
        );

        // --disable-cache: nothing reused, nothing kept.
        let n = entries(&c, who).len();
        let off = build(
            &c,
            who,
            "1024",
            &["build", "-F", "--disable-cache", "a.sif", "a.def"],
        );
        ok(&off, "--disable-cache");
        assert!(stdout(&off).contains("POST-RAN"));
        assert!(!stderr(&off).contains("build cache"), "{}", stderr(&off));
        assert_eq!(entries(&c, who).len(), n);
        std::fs::remove_file(c.fx.work.join("a.sif")).unwrap();
        c.assert_clean();
    }
}

#[test]
fn a_damaged_entry_is_never_used() {
    let Some(c) = Case::new() else { return };
    for who in builders() {
        write_def(&c, "d.def", &DEF.replace("run-one", "damaged"));
        ok(
            &build(&c, who, "1024", &["build", "-F", "d.sif", "d.def"]),
            "cold build",
        );
        let id = post_id(&c, who, "d.sif");
        // The newest entry is %post's: flip one byte in its middle.
        let dir = cache_dir(&c, who).join("build");
        let newest = entries(&c, who)
            .into_iter()
            .max_by_key(|e| std::fs::metadata(dir.join(e)).unwrap().modified().unwrap())
            .unwrap();
        let p = dir.join(&newest);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let o = build(&c, who, "1024", &["build", "-F", "d.sif", "d.def"]);
        ok(&o, "build over a damaged entry");
        assert!(
            stderr(&o).contains(&format!("{newest}` is damaged")),
            "the warning names the entry: {}",
            stderr(&o)
        );
        assert!(stdout(&o).contains("POST-RAN"), "%post runs again");
        assert_ne!(post_id(&c, who, "d.sif"), id);
        std::fs::remove_file(c.fx.work.join("d.sif")).unwrap();
        c.assert_clean();
    }
}

#[test]
fn two_builds_of_one_definition_at_once_run_post_once() {
    let Some(c) = Case::new() else { return };
    for who in builders() {
        // %post appends to a host file through a bind, so every run of it is counted.
        let count = c.fx.dir.path().join(format!("count-{}", who.uid()));
        std::fs::create_dir(&count).unwrap();
        std::fs::set_permissions(&count, std::fs::Permissions::from_mode(0o777)).unwrap();
        c.write(
            "twice.def",
            "Bootstrap: localimage\nFrom: ../image\n\n%post\n    sleep 2\n    echo ran >> /count/runs\n",
        );
        let _ = std::fs::create_dir(c.fx.image.join("count"));
        let bind = format!("{}:/count", count.display());
        let start = |out: &str| {
            c.fx.command(build_case::sifr(), who)
                .args(["build", "-F", "-B", &bind, out, "twice.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .env("APPTAINER_CACHEDIR", cache_dir(&c, who))
                .env("SIFR_BUILD_CACHE_SIZE", "1024")
                .command()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start("t1.sif"), start("t2.sif"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        ok(&a, "first build");
        ok(&b, "second build");
        let runs = std::fs::read_to_string(count.join("runs")).unwrap();
        assert_eq!(runs, "ran\n", "%post ran {} times", runs.lines().count());
        let waited = [&a, &b]
            .iter()
            .any(|o| stderr(o).contains("another build is running the same step"));
        assert!(waited, "{}\n{}", stderr(&a), stderr(&b));
        for f in ["t1.sif", "t2.sif"] {
            std::fs::remove_file(c.fx.work.join(f)).unwrap();
        }
        c.assert_clean();
    }
}

#[test]
fn files_from_an_earlier_stage_follow_that_stages_changes() {
    let Some(c) = Case::new() else { return };
    let def = |v: &str| {
        format!(
            "Bootstrap: localimage\nFrom: ../image\nStage: one\n\n%post\n    echo {v} > /v\n\n\
             Bootstrap: localimage\nFrom: ../image\nStage: two\n\n%files from one\n    /v /v\n"
        )
    };
    for who in builders() {
        c.write("m.def", &def("first"));
        ok(
            &build(&c, who, "1024", &["build", "-F", "m.sif", "m.def"]),
            "cold build",
        );
        let warm = build(&c, who, "1024", &["build", "-F", "m.sif", "m.def"]);
        ok(&warm, "unchanged rebuild");
        assert!(
            !stderr(&warm).contains("running %post"),
            "{}",
            stderr(&warm)
        );
        c.write("m.def", &def("second"));
        let o = build(&c, who, "1024", &["build", "-F", "m.sif", "m.def"]);
        ok(&o, "rebuild after stage one's %post changed");
        let v = c.sifr(who, &["exec", "m.sif", "cat", "/v"]);
        assert_eq!(stdout(&v), "second\n", "stage two copied a stale /v");
        std::fs::remove_file(c.fx.work.join("m.sif")).unwrap();
        c.assert_clean();
    }
}

#[test]
fn the_size_limit_evicts_least_recently_used_entries_and_clean_removes_them() {
    let Some(c) = Case::new() else { return };
    let who = As::Root;
    write_def(&c, "e1.def", &DEF.replace("run-one", "e1"));
    write_def(
        &c,
        "e2.def",
        &DEF.replace("echo POST-RAN", "echo POST-RAN two"),
    );
    // Each entry is about the base image's size (busybox, ~1 MiB): a 3 MiB limit holds one
    // build's three entries, not two builds'.
    ok(
        &build(&c, who, "3", &["build", "-F", "e.sif", "e1.def"]),
        "first build",
    );
    let first = entries(&c, who);
    assert_eq!(first.len(), 3);
    let o = build(&c, who, "3", &["build", "-F", "e.sif", "e2.def"]);
    ok(&o, "second build");
    assert!(stderr(&o).contains("least recently used"), "{}", stderr(&o));
    let now = entries(&c, who);
    assert!(
        now.iter().any(|e| !first.contains(e)),
        "the second build's entries are kept: {now:?}"
    );
    let total: u64 = now
        .iter()
        .map(|e| {
            std::fs::metadata(cache_dir(&c, who).join("build").join(e))
                .unwrap()
                .len()
        })
        .sum();
    // The build keeps what it stands on (its bootstrap is the first's, reused), and no more
    // than that beyond the limit.
    assert!(now.len() <= 3, "{now:?} ({total} bytes)");

    let list = build(&c, who, "3", &["cache", "list", "--type", "build"]);
    ok(&list, "cache list");
    assert!(
        stdout(&list).starts_with(&format!("There are {} build step(s)", now.len())),
        "{}",
        stdout(&list)
    );
    let clean = build(&c, who, "3", &["cache", "clean", "-f", "--type", "build"]);
    ok(&clean, "cache clean");
    assert!(entries(&c, who).is_empty());
    let left: Vec<_> = std::fs::read_dir(cache_dir(&c, who).join("build"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "clean left {left:?}");
    // SIFR_BUILD_CACHE_SIZE=0 turns the cache off.
    let off = build(&c, who, "0", &["build", "-F", "e.sif", "e1.def"]);
    ok(&off, "build with the cache off");
    assert!(entries(&c, who).is_empty());
    std::fs::remove_file(c.fx.work.join("e.sif")).unwrap();
    c.assert_clean();
}

/// A registry base is keyed by the digest its tag names now: the same tag pushed again with
/// another manifest is a new base, and the bootstrap runs again.
#[test]
fn a_moved_registry_tag_is_a_new_base() {
    let Some((t, layout)) = registries::setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !sifr_testkit::is_root() && sifr_testkit::userns_available().is_err() {
        sifr_testkit::skip("%post needs root or user namespaces");
        return;
    }
    let d = t.path();
    let reg = registries::registry_with_test_image(d, &layout);
    let cache = d.join("cache");
    std::fs::write(
        d.join("app.def"),
        format!(
            "Bootstrap: docker\nRegistry: {}\nNamespace: test\nFrom: img:v1\n\n%post\n    cat /etc/hello > /etc/post\n",
            reg.host()
        ),
    )
    .unwrap();
    let build = || {
        registries::run_ok(registries::sifr_in(
            d,
            &cache,
            &["build", "-F", "--nohttps", "app.sif", "app.def"],
        ))
    };
    let cold = build();
    assert!(
        stderr(&cold).contains("bootstrap: docker"),
        "{}",
        stderr(&cold)
    );
    let warm = build();
    assert!(
        stderr(&warm).contains("build cache: reusing bootstrap, %post"),
        "{}",
        stderr(&warm)
    );
    // The host's image alone (no index) under the same tag: another manifest digest.
    registries::run_ok(
        std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/test/img:v1", reg.host())),
    );
    let moved = build();
    assert!(
        stderr(&moved).contains("bootstrap: docker"),
        "the moved tag's image was not fetched: {}",
        stderr(&moved)
    );
    assert!(!stderr(&moved).contains("reusing"), "{}", stderr(&moved));
}
