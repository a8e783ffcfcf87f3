//! Unit tests of [`super`]: the app's name, its scripts and its environment on a root laid out
//! as Apptainer's build lays apps out (`internal/pkg/build/apps/apps.go`).

use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::envscript::NativeShell;

fn req(name: &str) -> AppRequest {
    AppRequest {
        name: Some(Sourced::flag(name.to_owned())),
    }
}

fn app(name: &str) -> App {
    App::from_request(&req(name)).unwrap().unwrap()
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Two apps as `sifr build` writes them: `foo` with bin, lib, runscript, %appenv and help;
/// `bar` with only its metadata directory.
fn image() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for d in [
        "scif/apps/foo/bin",
        "scif/apps/foo/lib",
        "scif/apps/bar/scif/env",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    write(
        r,
        "scif/apps/foo/scif/env/01-base.sh",
        "#!/bin/sh\n\nSCIF_APPNAME=foo\nSCIF_APPROOT=\"/scif/apps/foo\"\n\
         SCIF_DATA=\"/scif/data\"\nexport SCIF_APPNAME SCIF_APPROOT SCIF_DATA\n",
        0o755,
    );
    write(
        r,
        "scif/apps/foo/scif/env/90-environment.sh",
        "HELLOTHISIS=foo\nexport HELLOTHISIS\nexport SEEN_BIN=$SCIF_APPBIN\n",
        0o755,
    );
    write(
        r,
        "scif/apps/foo/scif/runscript",
        "#!/bin/sh\n\necho foo\n",
        0o755,
    );
    write(r, "scif/apps/foo/scif/runscript.help", "help", 0o644);
    write(r, "scif/apps/foo/scif/labels.json", "{}", 0o644);
    // A directory under /scif/apps without `scif` is no app to list (as `inspect`).
    std::fs::create_dir_all(r.join("scif/apps/notanapp")).unwrap();
    t
}

/// The steps applied natively on `start`, as the launch applies them.
fn apply(steps: Vec<Step>, start: &[(&str, &str)]) -> Vars {
    let mut n = NativeShell::new(Vars::of(start));
    for s in steps {
        match s {
            Step::Builtin(f) => f(&mut n.exported),
            Step::Script(p, text) => n
                .eval(&text.unwrap())
                .unwrap_or_else(|e| panic!("{}: {e:?}", p.display())),
        }
    }
    n.exported
}

#[test]
fn names_are_one_path_component_and_empty_means_none() {
    assert_eq!(App::from_request(&AppRequest::default()), Ok(None));
    assert_eq!(App::from_request(&req("")), Ok(None));
    assert_eq!(app("foo-1.2").name(), "foo-1.2");
    for bad in ["..", ".", "a/b", "/abs", "x\0y"] {
        let e = App::from_request(&req(bad)).unwrap_err();
        assert_eq!(e.name, bad);
        assert!(e.to_string().contains("`--app`"), "{e}");
    }
}

#[test]
fn an_unknown_app_names_the_images_apps() {
    // e2e/actions actionRun and actionExec, ScifTestAppBad: exit 1 (here, the error that has
    // that status).
    let t = image();
    assert_eq!(check(&app("foo"), t.path()), Ok(()));
    let e = check(&app("fakeapp"), t.path()).unwrap_err();
    assert_eq!(
        e,
        AppMissing::Unknown {
            name: "fakeapp".into(),
            apps: vec!["bar".into(), "foo".into()]
        }
    );
    assert_eq!(
        e.to_string(),
        "Could not locate the container application: fakeapp (the image's apps: bar, foo)"
    );
    assert_eq!(e.hint(), "use `--app bar`");
    let empty = tempfile::tempdir().unwrap();
    let e = check(&app("foo"), empty.path()).unwrap_err();
    assert!(
        e.to_string().ends_with("(the image has no SCIF apps)"),
        "{e}"
    );
    assert!(e.hint().contains("without `--app`"));
}

#[test]
fn run_test_and_start_take_the_apps_scripts() {
    let t = image();
    let foo = app("foo");
    assert_eq!(
        script_argv(&foo, &Action::Run(vec!["a".into()]), t.path()),
        Ok(Some(vec![
            "/scif/apps/foo/scif/runscript".into(),
            "a".into()
        ]))
    );
    assert_eq!(
        script_argv(&foo, &Action::InstanceRun(vec![]), t.path()),
        Ok(Some(vec!["/scif/apps/foo/scif/runscript".into()]))
    );
    assert_eq!(
        script_argv(&foo, &Action::Exec(vec!["true".into()]), t.path()),
        Ok(None)
    );
    assert_eq!(script_argv(&foo, &Action::Shell(None), t.path()), Ok(None));
    // Apptainer's action script: "No tests for contained app", exit 1.
    let e = script_argv(&foo, &Action::Test(vec![]), t.path()).unwrap_err();
    assert_eq!(e.to_string(), "no tests for contained app: foo");
    let e = script_argv(&app("bar"), &Action::Run(vec![]), t.path()).unwrap_err();
    assert_eq!(e.to_string(), "no runscript for contained app: bar");
    let e = script_argv(&app("bar"), &Action::Start(vec![]), t.path()).unwrap_err();
    assert_eq!(e.to_string(), "no startscript for contained app: bar");
    // A runscript that is not executable is not run (`test -x`).
    write(t.path(), "scif/apps/bar/scif/runscript", "echo", 0o644);
    assert!(script_argv(&app("bar"), &Action::Run(vec![]), t.path()).is_err());
    // Singularity 2's fallback, kept by Apptainer: the legacy app's `scif/test`.
    write(t.path(), "scif/apps/singularity/scif/test", "echo", 0o755);
    assert_eq!(
        script_argv(&app("bar"), &Action::Run(vec![]), t.path()),
        Ok(Some(vec!["/scif/apps/singularity/scif/test".into()]))
    );
}

#[test]
fn the_apps_environment_is_95_apps_sh_then_its_scripts() {
    let t = image();
    let v = apply(
        env_steps(&app("foo"), t.path()),
        &[("PATH", "/usr/bin:/bin"), ("LD_LIBRARY_PATH", "/opt/lib")],
    );
    assert_eq!(
        v.get("PATH"),
        Some("/scif/apps/foo/bin:/scif/apps/foo:/scif/apps/singularity:/usr/bin:/bin")
    );
    assert_eq!(
        v.get("LD_LIBRARY_PATH"),
        Some("/scif/apps/foo/lib:/opt/lib")
    );
    assert_eq!(v.get("SCIF_APPS"), Some("/scif/apps"));
    assert_eq!(v.get("SCIF_APPROOT"), Some("/scif/apps/foo"));
    assert_eq!(v.get("SCIF_APPNAME"), Some("foo"));
    assert_eq!(v.get("SCIF_DATA"), Some("/scif/data"));
    assert_eq!(v.get("HELLOTHISIS"), Some("foo"));
    // The SCIF variables of the active app come before %appenv, which sees them.
    assert_eq!(v.get("SEEN_BIN"), Some("/scif/apps/foo/bin"));
    assert_eq!(v.get("SCIF_APPLIB"), Some("/scif/apps/foo/lib"));
    assert_eq!(v.get("SCIF_APPRUN"), Some("/scif/apps/foo/scif/runscript"));
    assert_eq!(
        v.get("SCIF_APPENV"),
        Some("/scif/apps/foo/scif/env/90-environment.sh")
    );
    assert_eq!(
        v.get("SCIF_APPHELP"),
        Some("/scif/apps/foo/scif/runscript.help")
    );
    assert_eq!(
        v.get("SCIF_APPLABELS"),
        Some("/scif/apps/foo/scif/labels.json")
    );
    assert_eq!(v.get("SCIF_APPTEST"), None);
    assert_eq!(v.get("SCIF_APPSTART"), None);
}

#[test]
fn an_app_without_bin_or_lib_keeps_the_library_path() {
    let t = image();
    let v = apply(env_steps(&app("bar"), t.path()), &[("PATH", "/bin")]);
    assert_eq!(
        v.get("PATH"),
        Some("/scif/apps/bar:/scif/apps/singularity:/bin")
    );
    assert_eq!(v.get("LD_LIBRARY_PATH"), None);
    assert_eq!(v.get("SCIF_APPROOT"), Some("/scif/apps/bar"));
    assert_eq!(v.get("SCIF_APPRUN"), None);
    // With an empty LD_LIBRARY_PATH, the app's lib alone: no empty entry (docs/compat.md).
    let v = apply(env_steps(&app("foo"), t.path()), &[("PATH", "/bin")]);
    assert_eq!(v.get("LD_LIBRARY_PATH"), Some("/scif/apps/foo/lib"));
}

#[test]
fn the_steps_go_after_95_apps_sh() {
    let p = |names: &[&str]| -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| PathBuf::from(format!("/.singularity.d/env/{n}")))
            .collect()
    };
    assert_eq!(
        env_position(&p(&[
            "01-base.sh",
            "90-environment.sh",
            "94-appsbase.sh",
            "95-apps.sh",
            "99-base.sh"
        ])),
        4
    );
    assert_eq!(env_position(&p(&["01-base.sh", "99-base.sh"])), 1);
    assert_eq!(env_position(&p(&["01-base.sh"])), 1);
    assert_eq!(env_position(&[]), 0);
}
