//! `scripts/install.sh PREFIX` as a site runs it (issue 25, "install story"): the binary, the
//! `apptainer`/`singularity` links, man pages, completions and an Lmod modulefile, each found
//! by the tool that uses it (Lmod's `module load`, `man -w`, bash's `complete`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install.sh")
}

fn install(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("SIFR_BIN", assert_cmd::cargo::cargo_bin("sifr"))
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `bash -c script` with Lmod's shell functions, if Lmod is installed.
fn with_lmod(script: &str) -> Option<Output> {
    let init = Path::new("/usr/share/lmod/lmod/init/bash");
    if !init.exists() {
        sifr_testkit::skip("Lmod is needed (apt-get install lmod)");
        return None;
    }
    let full = format!("source {}; {script}", init.display());
    Some(Command::new("bash").args(["-c", &full]).output().unwrap())
}

#[test]
fn an_install_puts_everything_where_its_tools_find_it() {
    let t = tempfile::tempdir().unwrap();
    let prefix = t.path().join("opt/sifr");
    let o = install(&["--drop-in", prefix.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    assert!(said.contains("module load sifr/"), "{said}");

    // The links answer as Apptainer, which is what job scripts and tools ask.
    let v = Command::new(prefix.join("bin/apptainer"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        text(&v.stdout).trim(),
        format!(
            "apptainer version {}",
            sifr_cli::identity::APPTAINER_VERSION
        )
    );
    assert!(prefix.join("bin/singularity").exists());

    // One man page per command, found by `man -w` through the module's MANPATH.
    let pages = std::fs::read_dir(prefix.join("share/man/man1"))
        .unwrap()
        .count();
    assert!(pages > 30, "{pages} man pages");
    let exec_page = std::fs::read_to_string(prefix.join("share/man/man1/sifr-exec.1")).unwrap();
    for section in [
        ".SH EXAMPLES",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH SEE ALSO",
    ] {
        assert!(exec_page.contains(section), "sifr-exec.1 lacks {section}");
    }
    let Some(o) = with_lmod(&format!(
        "module use {}; module load sifr && command -v sifr && command -v apptainer && echo \"$MANPATH\"",
        prefix.join("share/modulefiles").display()
    )) else {
        return;
    };
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(
        out.contains(&format!("{}/bin/sifr", prefix.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}/share/man", prefix.display())),
        "{out}"
    );

    // bash completes sifr and its links from the installed file.
    let completion = prefix.join("share/bash-completion/completions");
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source {}/sifr; complete -p sifr apptainer singularity",
                completion.display()
            ),
        ])
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert!(
        out.contains("_sifr sifr") && out.contains("_sifr apptainer"),
        "{out}"
    );
    assert!(
        completion.join("apptainer").exists(),
        "no file for lazy loading"
    );
    assert!(prefix.join("share/zsh/site-functions/_sifr").exists());
    assert!(
        prefix
            .join("share/fish/vendor_completions.d/sifr.fish")
            .exists()
    );

    // Again: the same files, replaced; no staging directory left.
    let o = install(&["--drop-in", prefix.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let left: Vec<_> = std::fs::read_dir(&prefix)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".sifr-install"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn without_drop_in_there_are_no_links_and_a_bad_prefix_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let prefix = t.path().join("p");
    let o = install(&[prefix.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(prefix.join("bin/sifr").exists());
    assert!(!prefix.join("bin/apptainer").exists());

    let file = t.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = install(&[file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("is not a directory"),
        "{}",
        text(&o.stderr)
    );
    let o = install(&["--frobnicate", "x"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("unknown option"),
        "{}",
        text(&o.stderr)
    );
}
