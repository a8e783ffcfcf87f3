//! Progress of a pull's layer downloads (issue 25, "progress"): with stderr in a file (a Slurm
//! log), `sifr pull` prints plain `INFO:` lines at an interval (made short here with
//! `SIFR_PROGRESS_INTERVAL`), each with a bar of all the bytes and the layers still coming,
//! named by place and digest; no terminal control codes; `-q` prints none. Against Debian's
//! `docker-registry` on 127.0.0.1; starts no container. Skips, saying why, when a tool is
//! missing (`apt-get install docker-registry skopeo busybox-static`).

mod registries;

use std::path::Path;

use registries::{registry_with_test_image, setup, sifr_in};

/// `sifr [GLOBAL] pull --nohttps TARGET SRC` with stderr in `log`; its status.
fn pull_logged(d: &Path, global: &[&str], target: &str, src: &str, log: &Path) -> bool {
    let mut args = global.to_vec();
    args.extend(["pull", "--nohttps", target, src]);
    let mut cmd = sifr_in(d, &d.join(format!("cache-{target}")), &args);
    cmd.env("SIFR_PROGRESS_INTERVAL", "0")
        .stderr(std::fs::File::create(log).unwrap());
    cmd.status().unwrap().success()
}

#[test]
fn a_pull_logged_to_a_file_prints_plain_lines_naming_the_layers_coming() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let src = format!("docker://{}/test/img:v1", reg.host());

    let log = d.join("pull.log");
    assert!(pull_logged(d, &[], "a.sif", &src, &log));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("INFO:    downloading layers: ["))
        .collect();
    assert!(!lines.is_empty(), "no progress lines: {text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("; layer ") && l.contains("/3 sha256:") && l.contains(" MiB")),
        "no line names a layer coming: {text}"
    );
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");

    // A definition's `Bootstrap: docker` base reports on the bootstrap step's line.
    std::fs::write(
        d.join("b.def"),
        format!(
            "Bootstrap: docker\nRegistry: {}\nFrom: test/img:v1\n",
            reg.host()
        ),
    )
    .unwrap();
    let blog = d.join("build.log");
    let mut cmd = sifr_in(
        d,
        &d.join("cache-build"),
        &["build", "--nohttps", "c.sif", "b.def"],
    );
    cmd.env("SIFR_PROGRESS_INTERVAL", "0")
        .stderr(std::fs::File::create(&blog).unwrap());
    let ok = cmd.status().unwrap().success();
    let text = std::fs::read_to_string(&blog).unwrap();
    assert!(ok, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("INFO:    bootstrap: ") && l.contains(" layers; layer ")),
        "no layer progress in the build's log: {text}"
    );

    let quiet = d.join("quiet.log");
    assert!(pull_logged(d, &["-q"], "b.sif", &src, &quiet));
    let text = std::fs::read_to_string(&quiet).unwrap();
    assert!(!text.contains("downloading layers"), "{text}");
}
