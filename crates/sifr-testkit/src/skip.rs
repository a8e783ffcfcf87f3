//! Saying why a test (or part of one) did not run, and failing instead where it must run.
//!
//! A test that lacks a tool, a fixture or a privilege calls [`skip`]: on a developer's machine
//! it prints `skipped: REASON` and the test returns early; under [`strict`] (CI: `.ci/run` sets
//! `SIFR_TEST_STRICT=1`) it panics, so a CI machine that lacks something reports red instead of
//! green-having-tested-less. What CI must have is installed by `scripts/deps.sh`.
//!
//! A test whose premise depends on the machine itself, and would not hold on CI's machine either
//! (this CPU already runs every instruction of an image, the host is not x86-64, no GPU), calls
//! [`not_here`], which only prints. Each caller says in a comment why installing something could
//! not make the test run.

use std::ffi::OsStr;
use std::fmt::Display;

/// The variable that turns [`skip`] into a failure; `.ci/run` sets it to `1`.
pub const STRICT_VAR: &str = "SIFR_TEST_STRICT";

/// Whether a skip is a failure: `SIFR_TEST_STRICT=1`, or `CI` set to anything non-empty (the
/// variable most CI services set, which some tests honoured before `SIFR_TEST_STRICT`).
pub fn strict() -> bool {
    strict_given(
        std::env::var_os(STRICT_VAR).as_deref(),
        std::env::var_os("CI").as_deref(),
    )
}

/// [`strict`] from the two variables' values.
fn strict_given(strict_var: Option<&OsStr>, ci: Option<&OsStr>) -> bool {
    strict_var.is_some_and(|v| v == "1") || ci.is_some_and(|v| !v.is_empty())
}

/// The test cannot run here for want of something CI has (a tool, a fixture, root, user
/// namespaces): prints `skipped: REASON`; under [`strict`] panics saying so. The caller
/// returns right after.
#[track_caller]
pub fn skip(reason: impl Display) {
    skip_given(strict(), &reason);
}

/// [`skip`] with the strictness given.
#[track_caller]
fn skip_given(strict: bool, reason: &dyn Display) {
    eprintln!("skipped: {reason}");
    if strict {
        panic!("{}", strict_failure(reason));
    }
}

/// The panic message of a skip under [`strict`].
fn strict_failure(reason: &dyn Display) -> String {
    format!(
        "this test could not run: {reason}. With {STRICT_VAR}=1 (set by .ci/run) or CI set, a \
         test that cannot run fails: the machine must have what the tests need (scripts/deps.sh \
         installs it; run it as root)"
    )
}

/// The test's premise does not hold on this machine, and would not on CI's either (the CPU,
/// the architecture, the hardware): prints `not applicable here: REASON` and never fails. The
/// caller returns right after, and says in a comment why nothing installable would change it.
pub fn not_here(reason: impl Display) {
    eprintln!("not applicable here: {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_is_decided_by_sifr_test_strict_or_a_non_empty_ci() {
        fn s(v: &str) -> Option<&OsStr> {
            Some(OsStr::new(v))
        }
        assert!(!strict_given(None, None));
        assert!(strict_given(s("1"), None));
        assert!(!strict_given(s("0"), None), "only 1 turns it on");
        assert!(!strict_given(s(""), None));
        assert!(strict_given(None, s("true")));
        assert!(!strict_given(None, s("")), "an empty CI is not CI");
        assert!(strict_given(s("0"), s("1")), "CI alone is enough");
    }

    #[test]
    fn a_skip_outside_strict_mode_returns() {
        skip_given(false, &"no frobnicator");
    }

    #[test]
    fn a_skip_in_strict_mode_fails_saying_why_and_what_to_install() {
        let err = std::panic::catch_unwind(|| skip_given(true, &"frob not installed"))
            .expect_err("a strict skip panics");
        let msg = err.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("could not run: frob not installed"), "{msg}");
        assert!(msg.contains("SIFR_TEST_STRICT=1"), "{msg}");
        assert!(msg.contains(".ci/run"), "{msg}");
        assert!(msg.contains("scripts/deps.sh"), "{msg}");
    }

    #[test]
    fn not_here_never_fails() {
        // Whatever the variables say: it is not a skip CI could fix.
        not_here("this CPU runs everything");
    }
}
