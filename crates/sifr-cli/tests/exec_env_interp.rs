//! Environment scripts with bash syntax, end to end as root and as the test user, on images with
//! no shell at all and with busybox's ash as `/bin/sh` (issue 21): the same `%environment`
//! (`source` of a bashrc with a conda-style function, arrays, `[[ ]]`, `$UID`) gives the same
//! environment, because sifr evaluates it itself. Also: a script that does not parse is named
//! with its line and skipped, a failing command warns and the launch goes on.

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

const BASHRC: &str = r#"# a bashrc in the style `conda init bash` leaves
__setup="$(printf 'export HOOKED=%s' yes)"
eval "$__setup"
unset __setup
activate() {
    local name="${1:?name}"
    case "$name" in
        base) return 0 ;;
        *) export ENV_PREFIX="/opt/envs/$name"; PATH="$ENV_PREFIX/bin:$PATH" ;;
    esac
}
declare -a parts=(alpha "beta gamma")
[[ ${#parts[@]} -eq 2 && ${parts[1]} == beta* ]] && export ARRAY_OK=yes
"#;

const ENVIRONMENT: &str =
    "source /opt/etc/bashrc\nactivate singularityenv\nexport ME=\"$UID:${HOSTNAME:+host}\"\n";

fn run(fx: &Fixture, who: As, args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .output()
}

fn env_of(fx: &Fixture, who: As) -> (Vec<String>, String) {
    let o = run(
        fx,
        who,
        &["exec", fx.image.to_str().unwrap(), "probe", "env"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = stdout(&o).lines().map(str::to_string).collect();
    (lines, stderr(&o))
}

fn write_env(fx: &Fixture, environment: &str) {
    std::fs::create_dir_all(fx.image.join("opt/etc")).unwrap();
    std::fs::write(fx.image.join("opt/etc/bashrc"), BASHRC).unwrap();
    std::fs::write(
        fx.image.join(".singularity.d/env/90-environment.sh"),
        environment,
    )
    .unwrap();
}

fn uid_of(who: As) -> u32 {
    match who {
        As::Root => 0,
        As::User { uid, .. } => uid,
    }
}

#[test]
fn the_same_bash_environment_with_busybox_and_without_any_shell() {
    let fx = Fixture::new();
    write_env(&fx, ENVIRONMENT);
    let shells: &[&str] = if fx.has_shell {
        &["busybox", "none"]
    } else {
        // CI installs busybox-static (scripts/deps.sh): there a missing one is a failure.
        sifr_testkit::skip(
            "the busybox variant: no busybox on this host (apt-get install busybox-static)",
        );
        &["none"]
    };
    for shell in shells {
        if *shell == "none" {
            let _ = std::fs::remove_file(fx.image.join("bin/sh"));
            let _ = std::fs::remove_file(fx.image.join("bin/busybox"));
        }
        for who in identities() {
            let (env, err) = env_of(&fx, who);
            let has = |kv: &str| env.iter().any(|l| l == kv);
            for kv in [
                "HOOKED=yes",
                "ENV_PREFIX=/opt/envs/singularityenv",
                "ARRAY_OK=yes",
                &format!("ME={}:host", uid_of(who)),
            ] {
                assert!(has(kv), "{shell}/{who:?}: no {kv} in {env:?}\n{err}");
            }
            let path = env.iter().find(|l| l.starts_with("PATH=")).unwrap();
            assert!(
                path.starts_with("PATH=/opt/envs/singularityenv/bin:/usr/local/sbin:"),
                "{shell}/{who:?}: {path}"
            );
            assert!(!err.contains("WARNING"), "{shell}/{who:?}: {err}");
        }
    }
}

#[test]
fn a_broken_script_is_named_with_its_line_and_the_launch_goes_on() {
    let fx = Fixture::new();
    write_env(
        &fx,
        "export BEFORE=1\nif [ -n x ]; then\n  export B=2\nfi fi\n",
    );
    std::fs::write(
        fx.image.join(".singularity.d/env/92-after.sh"),
        "no-such-command-sifr arg\nexport AFTER=ok\n",
    )
    .unwrap();
    for who in identities() {
        let (env, err) = env_of(&fx, who);
        assert!(
            err.contains("/.singularity.d/env/90-environment.sh: line 4: syntax error")
                && err.contains("4 | fi fi"),
            "{err}"
        );
        assert!(
            err.contains("92-after.sh: line 1") && err.contains("no-such-command-sifr"),
            "{err}"
        );
        assert!(env.iter().any(|l| l == "AFTER=ok"), "{env:?}");
        // Skipped whole, as Apptainer's interpreter skips a script it cannot parse.
        assert!(!env.iter().any(|l| l.starts_with("BEFORE=")), "{env:?}");
    }
}
