//! The `/.singularity.d` layout: exact file lists, modes, link targets and contents (insta
//! snapshots in `tests/snapshots/`; accept a change with `INSTA_UPDATE=always INSTA_FORCE_PASS=1`
//! and review the diff), shebang rules and label merging.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use sifr_build::layout::{
    self, BaseOptions, BuildTime, MetadataOptions, insert_metadata, inspect, sections, write_base,
};

fn parse(text: &str) -> sifr_deffile::Definition {
    sifr_deffile::parse(text, &sifr_deffile::Options::default()).expect("test definition parses")
}

fn opts() -> MetadataOptions {
    let mut o = MetadataOptions::new(BuildTime::utc(1_787_062_365), "amd64");
    o.version = "sifr-test".to_owned();
    o
}

/// Every entry under `dir`, sorted, one per line: kind, mode, path, and link target or size.
fn manifest(root: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = md.mode() & 0o7777;
            if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.push(format!("l {rel} -> {}", t.display()));
            } else if md.is_dir() {
                out.push(format!("d {mode:04o} {rel}/"));
                walk(root, &p, out);
            } else {
                out.push(format!("f {mode:04o} {rel} ({} bytes)", md.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.join("\n") + "\n"
}

/// The manifest followed by the contents of every regular file under the given subtrees.
fn dump(root: &Path, subtrees: &[&str]) -> String {
    let mut s = manifest(root);
    let mut files = Vec::new();
    fn collect(p: &Path, files: &mut Vec<PathBuf>) {
        if !p.exists() {
            return;
        }
        let md = fs::symlink_metadata(p).unwrap();
        if md.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                collect(&e.unwrap().path(), files);
            }
        } else if md.is_file() {
            files.push(p.to_owned());
        }
    }
    for t in subtrees {
        collect(&root.join(t), &mut files);
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        s.push_str(&format!(
            "\n===== {rel} =====\n{}",
            fs::read_to_string(&f).unwrap()
        ));
    }
    s
}

/// `text` matches the snapshot `name` and ends with exactly `newlines_at_end` newlines (insta
/// compares with trailing newlines trimmed; the golden files this replaced pinned them too).
fn assert_layout_snapshot(name: &str, text: &str, newlines_at_end: usize) {
    let trailing = text.len() - text.trim_end_matches('\n').len();
    assert_eq!(trailing, newlines_at_end, "{name}: newlines at the end");
    insta::assert_snapshot!(name, text);
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn base_skeleton() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_base(root, BaseOptions::default()).unwrap();
    assert_layout_snapshot("base", &dump(root, &[".singularity.d"]), 1);
    // Idempotent.
    let before = manifest(root);
    write_base(root, BaseOptions::default()).unwrap();
    assert_eq!(manifest(root), before);
    assert_eq!(fs::read(root.join("etc/hosts")).unwrap(), b"");
    assert_eq!(mode(&root.join("etc/resolv.conf")), 0o644);
}

const FULL: &str = r#"Bootstrap: docker
From: alpine:3.20

%help
    Says hello.

%environment
    export GREETING=hello

%runscript -c /bin/bash # a comment
    echo "$GREETING" "$@"

%startscript
#!/bin/bash -l
    exec sleep infinity

%test
    test -n "$GREETING"

%labels
    Maintainer someone <a@b.example>
    org.label-schema.build-date mine

%apprun foo
    echo foo

%appenv foo
    export FOO=1

%applabels foo
    Colour blue

%apphelp foo
    Foo help.

%appinstall foo
    touch installed
"#;

#[test]
fn full_definition() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let def = parse(FULL);
    let stage = def.image_stage().unwrap();
    write_base(root, BaseOptions::default()).unwrap();
    sections::write_apps(root, stage).unwrap();
    insert_metadata(root, stage, &def.substituted, &opts()).unwrap();
    assert_layout_snapshot("full", &dump(root, &[".singularity.d", "scif"]), 2);
    let meta = inspect(root).unwrap();
    assert_layout_snapshot("full_inspect_json", &(meta.to_json_pretty() + "\n"), 1);
    assert_layout_snapshot("full_inspect_compact_json", &meta.to_json(), 0);
    assert_layout_snapshot("full_post_sh", &sections::apps_post_script(stage), 1);

    let sd = root.join(".singularity.d");
    assert_eq!(
        fs::read_to_string(sd.join("runscript")).unwrap(),
        "#!/bin/sh -c /bin/bash \n\n    echo \"$GREETING\" \"$@\"\n\n\n"
    );
    assert_eq!(
        fs::read_to_string(sd.join("startscript")).unwrap(),
        "#!/bin/bash -l\n\n    exec sleep infinity\n\n\n"
    );
    for f in ["runscript", "startscript", "test", "env/90-environment.sh"] {
        assert_eq!(mode(&sd.join(f)), 0o755, "{f}");
    }
    for f in ["labels.json", "Singularity", "runscript.help"] {
        assert_eq!(mode(&sd.join(f)), 0o644, "{f}");
    }
    assert_eq!(fs::read_to_string(sd.join("Singularity")).unwrap(), FULL);
    assert_eq!(
        fs::read_link(root.join("environment")).unwrap(),
        Path::new(".singularity.d/env/90-environment.sh")
    );
    let labels = &meta.attributes.labels;
    assert_eq!(labels["Maintainer"], "someone <a@b.example>");
    // A build label is not replaced by %labels without --force.
    assert_eq!(
        labels["org.label-schema.build-date"],
        "Tuesday_18_August_2026_14:12:45_UTC"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2026-08-18T14:12:45Z"
    );
    assert_eq!(
        labels["org.label-schema.usage.singularity.deffile.from"],
        "alpine:3.20"
    );
    assert_eq!(
        labels["org.label-schema.usage.singularity.deffile.bootstrap"],
        "docker"
    );
    assert_eq!(
        labels["org.label-schema.usage"],
        "/.singularity.d/runscript.help"
    );
    assert_eq!(labels["org.label-schema.build-arch"], "amd64");
    // Go escapes < > & in JSON.
    let raw = fs::read_to_string(sd.join("labels.json")).unwrap();
    assert!(raw.contains("\t\"Maintainer\": \"someone \\u003ca@b.example\\u003e\",\n"));
    assert!(raw.starts_with("{\n\t\"") && raw.ends_with("\"\n}"));
}

#[test]
fn shebang_rules() {
    let cases = [
        ("%runscript\n    echo hi\n", "#!/bin/sh\n\n    echo hi\n\n"),
        (
            "%runscript\n#!/bin/bash\necho hi\n",
            "#!/bin/bash\n\necho hi\n\n",
        ),
        (
            "%runscript\n\n  #!/usr/bin/env python3  \nprint(1)\n",
            "#!/usr/bin/env python3\n\nprint(1)\n\n",
        ),
        ("%runscript -e\necho hi\n", "#!/bin/sh -e\n\necho hi\n\n"),
        (
            "%runscript --login # why\n#!/bin/bash\necho\n",
            "#!/bin/bash --login \n\necho\n\n",
        ),
    ];
    for (text, want) in cases {
        let def = parse(&format!("Bootstrap: scratch\n\n{text}"));
        let s = def.image_stage().unwrap().runscript.as_ref().unwrap();
        assert_eq!(sections::shebang_script(s), want, "for {text:?}");
    }
}

#[test]
fn label_merge_and_force() {
    for force in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_base(root, BaseOptions::default()).unwrap();
        fs::write(
            root.join(".singularity.d/labels.json"),
            r#"{"maintainer":"base","org.label-schema.schema-version":"0.9","keep":"k"}"#,
        )
        .unwrap();
        fs::write(
            root.join(".build.labels"),
            "# from %post\nmaintainer post\nPOST yes\n",
        )
        .unwrap();
        let def = parse(
            "Bootstrap: scratch\n%labels\nmaintainer def\nFRESH v\norg.label-schema.schema-version 2\n",
        );
        let mut o = opts();
        o.force = force;
        o.variant = Some("v8".to_owned());
        insert_metadata(root, def.image_stage().unwrap(), &def.substituted, &o).unwrap();
        sections::write_apps(root, def.image_stage().unwrap()).unwrap();
        let appsbase = root.join(".singularity.d/env/94-appsbase.sh");
        assert_eq!(fs::read(&appsbase).unwrap(), b"", "empty without apps");
        assert_eq!(mode(&appsbase), 0o755);
        let m = inspect(root).unwrap().attributes.labels;
        assert!(!root.join(".build.labels").exists());
        assert_eq!(m["keep"], "k");
        assert_eq!(m["POST"], "yes");
        assert_eq!(m["FRESH"], "v");
        assert_eq!(m["org.opencontainers.image.variant"], "v8");
        if force {
            assert_eq!(m["maintainer"], "def");
            assert_eq!(m["org.label-schema.schema-version"], "2");
        } else {
            assert_eq!(m["maintainer"], "post");
            assert_eq!(m["org.label-schema.schema-version"], "1.0");
        }
    }
}

#[test]
fn update_keeps_header_labels_and_moves_old_definition() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_base(root, BaseOptions::default()).unwrap();
    let first = parse("Bootstrap: docker\nFrom: a\n%environment\nexport A=1\n");
    insert_metadata(
        root,
        first.image_stage().unwrap(),
        &first.substituted,
        &opts(),
    )
    .unwrap();
    let second = parse("Bootstrap: localimage\nFrom: x.sif\n%environment\nexport B=2\n");
    let mut o = opts();
    o.update = true;
    insert_metadata(root, second.image_stage().unwrap(), &second.substituted, &o).unwrap();
    let sd = root.join(".singularity.d");
    assert_eq!(
        fs::read_to_string(sd.join("bootstrap_history/Apptainer0")).unwrap(),
        first.substituted
    );
    assert_eq!(
        fs::read_to_string(sd.join("Singularity")).unwrap(),
        second.substituted
    );
    let labels = inspect(root).unwrap().attributes.labels;
    // From the first build; the update did not rewrite the header labels.
    assert_eq!(
        labels["org.label-schema.usage.singularity.deffile.from"],
        "a"
    );
    let env = fs::read_to_string(sd.join("env/90-environment.sh")).unwrap();
    assert!(env.ends_with("\nexport A=1\n\n\nexport B=2\n\n"), "{env:?}");
    // A third build adds Apptainer1.
    insert_metadata(root, second.image_stage().unwrap(), &second.substituted, &o).unwrap();
    assert!(sd.join("bootstrap_history/Apptainer1").is_file());
}

#[test]
fn existing_files_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join(".singularity.d")).unwrap();
    fs::write(
        root.join(".singularity.d/runscript"),
        "#!/bin/sh\necho mine\n",
    )
    .unwrap();
    fs::set_permissions(
        root.join(".singularity.d/runscript"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    symlink("elsewhere", root.join("singularity")).unwrap();
    fs::write(root.join("environment"), "a real file").unwrap();
    fs::create_dir_all(root.join("var")).unwrap();
    symlink("/tmp", root.join("var/tmp")).unwrap();

    write_base(root, BaseOptions { overwrite: false }).unwrap();
    let rs = root.join(".singularity.d/runscript");
    assert_eq!(fs::read_to_string(&rs).unwrap(), "#!/bin/sh\necho mine\n");
    assert_eq!(mode(&rs), 0o755);
    assert_eq!(
        fs::read_link(root.join("singularity")).unwrap(),
        Path::new(".singularity.d/runscript")
    );
    assert_eq!(
        fs::read_to_string(root.join("environment")).unwrap(),
        "a real file"
    );
    assert_eq!(
        fs::read_link(root.join("var/tmp")).unwrap(),
        Path::new("/tmp")
    );

    write_base(root, BaseOptions { overwrite: true }).unwrap();
    assert_eq!(
        fs::read_to_string(&rs).unwrap(),
        layout::scripts::DEFAULT_RUNSCRIPT
    );
}

#[test]
fn bad_app_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let def = parse("Bootstrap: scratch\n%apprun ..\necho\n");
    let err = sections::write_apps(tmp.path(), def.image_stage().unwrap());
    assert!(
        matches!(&err, Err(layout::LayoutError::BadAppName { name }) if name == ".."),
        "{err:?}"
    );
}
