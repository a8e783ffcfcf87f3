//! Unit tests of `inspect`'s selection and text, on metadata shaped like Apptainer's
//! `e2e/testdata/inspector_container.def` (apps `hello` and `world`), following
//! `cmd/internal/cli/inspect.go`.

use std::collections::BTreeMap;

use super::*;

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the image's files hold.
fn full() -> InspectMetadata {
    let mut a = Attributes {
        labels: map(&[("E2E", "AWESOME"), ("MAINTAINER", "someone")]),
        deffile: "bootstrap: oras".into(),
        runscript: "#!/bin/sh\n\ncat /.singularity.d/runscript.help".into(),
        startscript: "#!/bin/sh\n\nexec \"$@\"".into(),
        test: "#!/bin/sh\n\nls /".into(),
        helpfile: "This is a e2e test container".into(),
        environment: map(&[
            (
                "/.singularity.d/env/91-environment.sh",
                "export hello=\"world\"",
            ),
            (
                "/.singularity.d/env/90-environment.sh",
                "export test=\"testing\"",
            ),
        ]),
        ..Attributes::default()
    };
    a.apps.insert(
        "hello".into(),
        AppAttributes {
            labels: map(&[("HELLOTHISIS", "hello")]),
            runscript: "#!/bin/sh\n\necho \"hello\"".into(),
            helpfile: "This is the help for hello!".into(),
            environment: map(&[(
                "/scif/apps/hello/scif/env/90-environment.sh",
                "HELLOTHISIS=hello\nexport HELLOTHISIS",
            )]),
            ..AppAttributes::default()
        },
    );
    a.apps.insert(
        "world".into(),
        AppAttributes {
            runscript: "#!/bin/sh\n\necho \"world\"".into(),
            ..AppAttributes::default()
        },
    );
    InspectMetadata { attributes: a }
}

fn tree() -> Source {
    Source::Tree {
        meta: full(),
        sif: false,
        deffile_object: None,
    }
}

fn stored(has_deffile_object: bool) -> Source {
    Source::Stored {
        meta: full(),
        has_deffile_object,
    }
}

fn sel(want: Want, source: &Source) -> (Want, Selected) {
    let want = want.resolve();
    let s = select(&want, source);
    (want, s)
}

#[test]
fn labels_are_the_default_and_other_flags_replace_them() {
    for source in [tree(), stored(true)] {
        let (w, s) = sel(Want::default(), &source);
        assert_eq!(
            render(&s.meta, &w),
            "E2E: AWESOME\nMAINTAINER: someone\n",
            "{source:?}"
        );
        let (w, s) = sel(
            Want {
                runscript: true,
                ..Want::default()
            },
            &source,
        );
        assert_eq!(
            render(&s.meta, &w),
            "#!/bin/sh\n\ncat /.singularity.d/runscript.help\n"
        );
        // --list-apps alone prints the names only (e2e/inspect "list apps").
        let (w, s) = sel(
            Want {
                list_apps: true,
                ..Want::default()
            },
            &source,
        );
        assert_eq!(render(&s.meta, &w), "hello\nworld\n");
    }
}

#[test]
fn text_order_is_deffile_scripts_help_environment_labels() {
    let (w, s) = sel(
        Want {
            labels: true,
            deffile: true,
            runscript: true,
            environment: true,
            helpfile: true,
            ..Want::default()
        },
        &tree(),
    );
    assert_eq!(
        render(&s.meta, &w),
        "bootstrap: oras\n\
         #!/bin/sh\n\ncat /.singularity.d/runscript.help\n\
         This is a e2e test container\n\
         === /.singularity.d/env/90-environment.sh ===\nexport test=\"testing\"\n\n\
         === /.singularity.d/env/91-environment.sh ===\nexport hello=\"world\"\n\n\
         E2E: AWESOME\nMAINTAINER: someone\n"
    );
}

#[test]
fn app_selects_that_app_fields_from_either_source() {
    // e2e/inspect "label app hello", "help app hello", "env app hello", "runscript app world".
    for source in [tree(), stored(true)] {
        let app = |flag: fn(&mut Want), name: &str| {
            let mut w = Want {
                app: Some(name.into()),
                json: true,
                ..Want::default()
            };
            flag(&mut w);
            sel(w, &source).1.meta.attributes
        };
        let a = app(|_| {}, "hello");
        assert_eq!(a.apps["hello"].labels["HELLOTHISIS"], "hello");
        assert!(a.labels.is_empty(), "the image's own labels are not read");
        assert_eq!(a.apps.len(), 1, "other apps dropped");
        let a = app(|w| w.helpfile = true, "hello");
        assert_eq!(a.apps["hello"].helpfile, "This is the help for hello!");
        let a = app(|w| w.environment = true, "hello");
        assert_eq!(
            a.apps["hello"].environment["/scif/apps/hello/scif/env/90-environment.sh"],
            "HELLOTHISIS=hello\nexport HELLOTHISIS"
        );
        let a = app(|w| w.runscript = true, "world");
        assert_eq!(a.apps["world"].runscript, "#!/bin/sh\n\necho \"world\"");
        assert!(a.apps["world"].labels.is_empty(), "only what was asked");
        // An app the image lacks gives nothing.
        let a = app(|w| w.runscript = true, "nope");
        assert!(a.apps.is_empty() && a.runscript.is_empty(), "{a:?}");
    }
    // In text, an app's field stands in for the image's empty one.
    let w = Want {
        app: Some("hello".into()),
        runscript: true,
        environment: true,
        ..Want::default()
    }
    .resolve();
    let s = select(&w, &tree());
    assert_eq!(
        render(&s.meta, &w),
        "#!/bin/sh\n\necho \"hello\"\n\
         === /scif/apps/hello/scif/env/90-environment.sh ===\n\
         HELLOTHISIS=hello\nexport HELLOTHISIS\n\n"
    );
}

#[test]
fn all_is_json_with_everything_and_ignores_app() {
    for source in [tree(), stored(true)] {
        let (w, s) = sel(
            Want {
                all: true,
                app: Some("hello".into()),
                ..Want::default()
            },
            &source,
        );
        assert!(w.json && w.app.is_none());
        assert_eq!(s.meta, full(), "{source:?}");
        assert!(s.warnings.is_empty());
        let text = render(&s.meta, &w);
        assert!(text.starts_with("{\n\t\"data\": {\n\t\t\"attributes\": {\n\t\t\t\"apps\": {"));
        assert!(
            text.ends_with("\n\t},\n\t\"type\": \"container\"\n}\n"),
            "{text}"
        );
    }
}

#[test]
fn list_apps_in_json_names_apps_and_copies_stored_ones_whole() {
    let w = Want {
        list_apps: true,
        json: true,
        ..Want::default()
    }
    .resolve();
    // From the files: names only.
    let t = select(&w, &tree()).meta.attributes;
    assert_eq!(t.apps.keys().collect::<Vec<_>>(), ["hello", "world"]);
    assert_eq!(t.apps["hello"], AppAttributes::default());
    // From the stored object: Apptainer copies the apps as stored.
    let s = select(&w, &stored(true)).meta.attributes;
    assert_eq!(s.apps, full().attributes.apps);
    assert!(
        s.labels.is_empty(),
        "--list-apps turns the default labels off"
    );
}

#[test]
fn deffile_follows_the_sif_definition_object() {
    let w = Want {
        deffile: true,
        ..Want::default()
    }
    .resolve();
    // A SIF without a definition object: Apptainer warns, and with stored metadata finds none.
    let s = select(&w, &stored(false));
    assert_eq!(s.warnings, [NO_DEFFILE_OBJECT]);
    assert_eq!(s.meta.attributes.deffile, "");
    // Without stored metadata it reads the image's file after the warning.
    let s = select(
        &w,
        &Source::Tree {
            meta: full(),
            sif: true,
            deffile_object: None,
        },
    );
    assert_eq!(s.warnings, [NO_DEFFILE_OBJECT]);
    assert_eq!(s.meta.attributes.deffile, "bootstrap: oras");
    // A definition object is printed as stored, trailing newline and all.
    let s = select(
        &w,
        &Source::Tree {
            meta: full(),
            sif: true,
            deffile_object: Some("bootstrap: oras\n".into()),
        },
    );
    assert!(s.warnings.is_empty());
    assert_eq!(render(&s.meta, &w), "bootstrap: oras\n\n");
    // A sandbox: its file, no warning.
    let s = select(&w, &tree());
    assert!(s.warnings.is_empty());
    assert_eq!(render(&s.meta, &w), "bootstrap: oras\n");
}
