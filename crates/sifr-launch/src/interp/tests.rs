//! The interpreter session on the host (no container): sourcing in order, injected values,
//! syntax errors, timeouts, and the thread rule.

use super::*;

fn seed() -> Vars {
    Vars(vec![
        ("PATH".into(), crate::vars::DEFAULT_PATH.into()),
        ("HOME".into(), "/home/u".into()),
    ])
}

fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn functions_and_plain_variables_carry_from_one_script_to_the_next() {
    let d = tempfile::tempdir().unwrap();
    let a = script(
        d.path(),
        "90-environment.sh",
        "hidden=from-90\nactivate() { local p=\"$1\"; export ENV_PREFIX=/opt/$p; PATH=/opt/$p/bin:$PATH; }\n",
    );
    let b = script(
        d.path(),
        "91-environment.sh",
        "activate env1\nexport SEEN=\"$hidden\"\n",
    );
    let mut s = Session::new(&seed(), None).unwrap();
    s.source(&a).unwrap();
    s.source(&b).unwrap();
    let v = s.exported();
    assert_eq!(v.get("ENV_PREFIX"), Some("/opt/env1"));
    assert_eq!(v.get("SEEN"), Some("from-90"));
    assert_eq!(
        v.get("PATH"),
        Some(format!("/opt/env1/bin:{}", crate::vars::DEFAULT_PATH).as_str())
    );
    // Plain variables stay in the shell; the interpreter's own exports are not reported.
    assert_eq!(v.get("hidden"), None);
    for own in ["SHLVL", "OLDPWD", "PWD"] {
        assert_eq!(v.get(own), None, "{own} leaked: {v:?}");
    }
    // The given variables keep their order, new ones follow.
    assert_eq!(v.0[0].0, "PATH");
    assert_eq!(v.0[1].0, "HOME");
}

#[test]
fn injected_values_are_evaluated_as_double_quoted_bodies() {
    // e2e/env/env.go apptainerEnvEval: `$UID` and `$(id -u)` evaluated, `\$UID` literal,
    // quotes kept as characters.
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let mut s = Session::new(&seed(), None).unwrap();
    for (value, want) in [
        ("$UID", uid.clone()),
        ("\"$UID\"", format!("\"{uid}\"")),
        ("'$UID'", format!("'{uid}'")),
        ("\\$UID", "$UID".to_string()),
        ("$(id -u)", uid.clone()),
        ("'$(id -u)'", format!("'{uid}'")),
        ("\\$(id -u)", "$(id -u)".to_string()),
        ("/foo/bar/\\$LIB/baz.so", "/foo/bar/$LIB/baz.so".to_string()),
        ("$HOME/x", "/home/u/x".to_string()),
    ] {
        assert_eq!(s.export_evaluated("WHO", value).unwrap(), want, "{value}");
    }
    assert_eq!(s.exported().get("WHO"), Some("/home/u/x"));
}

#[test]
fn a_value_that_is_no_valid_string_is_taken_literally() {
    let mut s = Session::new(&seed(), None).unwrap();
    assert_eq!(
        s.export_evaluated("X", "ends with \\").unwrap(),
        "ends with \\"
    );
}

#[test]
fn a_script_that_does_not_parse_is_skipped_whole_and_the_next_one_runs() {
    let d = tempfile::tempdir().unwrap();
    let bad = script(
        d.path(),
        "90-environment.sh",
        "export A=1\nif [ -n x ]; then\n  export B=2\nfi fi\n",
    );
    let good = script(d.path(), "91-environment.sh", "export C=3\n");
    let text = std::fs::read_to_string(&bad).unwrap();
    let mut s = Session::new(&seed(), None).unwrap();
    let err = s.shell.parse_string(text.as_str()).unwrap_err();
    let msg = syntax_error(&bad, &text, &err);
    assert!(
        msg.contains("90-environment.sh: line 4: syntax error"),
        "{msg}"
    );
    assert!(msg.contains("4 | fi fi"), "{msg}");
    s.source(&bad).unwrap();
    s.source(&good).unwrap();
    let v = s.exported();
    assert_eq!((v.get("A"), v.get("C")), (None, Some("3")));
}

#[test]
fn a_failing_command_does_not_stop_the_script() {
    let d = tempfile::tempdir().unwrap();
    let p = script(
        d.path(),
        "90-environment.sh",
        "export A=1\nno-such-command-sifr x\nfalse\nexport B=$?\n",
    );
    let mut s = Session::new(&seed(), None).unwrap();
    s.source(&p).unwrap();
    let v = s.exported();
    assert_eq!((v.get("A"), v.get("B")), (Some("1"), Some("1")));
}

#[test]
fn a_script_past_the_timeout_is_killed_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let p = script(d.path(), "91-slow.sh", "sleep 5\nexport DONE=1\n");
    let mut s = Session::new(&seed(), Some(Duration::from_millis(300))).unwrap();
    let t0 = std::time::Instant::now();
    let e = s.source(&p).unwrap_err();
    assert!(matches!(e, InterpError::Timeout(t) if t == Duration::from_millis(300)));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn builtin_scripts_apply_to_the_session() {
    let mut s = Session::new(&seed(), None).unwrap();
    s.apply(|v| {
        v.set("LD_LIBRARY_PATH", "/.singularity.d/libs");
        v.remove("HOME");
    });
    let v = s.exported();
    assert_eq!(v.get("LD_LIBRARY_PATH"), Some("/.singularity.d/libs"));
    assert_eq!(v.get("HOME"), None);
}

#[test]
fn no_thread_outlives_the_session() {
    // Threads are counted per process. nextest gives each test one; `cargo test` runs tests as
    // threads of one process, so there the test runs again alone in a child process.
    const CHILD: &str = "SIFR_THREAD_COUNT_CHILD";
    if std::env::var_os("NEXTEST_RUN_ID").is_none() && std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "interp::tests::no_thread_outlives_the_session",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // A builtin in a pipeline runs on the runtime's workers.
    let p = script(
        d.path(),
        "90-environment.sh",
        "export P=$(echo a | while read x; do echo \"$x$x\"; done)\n",
    );
    let before = threads();
    let mut s = Session::new(&seed(), None).unwrap();
    s.source(&p).unwrap();
    assert_eq!(s.exported().get("P"), Some("aa"));
    drop(s);
    assert_eq!(threads(), before);
}

#[test]
fn exported_functions_stay_out_of_the_commands_environment() {
    let d = tempfile::tempdir().unwrap();
    let p = script(
        d.path(),
        "90-environment.sh",
        "module() { echo m; }\nexport -f module\nexport KEPT=1\n",
    );
    let mut s = Session::new(&seed(), None).unwrap();
    s.source(&p).unwrap();
    // bash would pass the function on; Apptainer's getallenv does not.
    assert!(s.exported().get("BASH_FUNC_module%%").is_some());
    let env = s.environment();
    assert_eq!(env.get("BASH_FUNC_module%%"), None);
    assert_eq!(env.get("KEPT"), Some("1"));
}
