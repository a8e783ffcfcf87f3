//! Test-only helpers shared by the integration tests of sifr's crates; used only as a
//! dev-dependency, never by a library or the binary.
//!
//! - [`TestCommand`]: a command builder with named options (who runs it, environment, working
//!   directory, a launcher to wrap it in) whose [`TestOutput`] carries assertion helpers.
//! - [`Fixture`]: a sandbox image made at test time around the static probe binary
//!   (`probe/probe.c`), with host directories for binds.
//! - [`identity`]: root and the unprivileged test user, and whether user namespaces are on.
//! - [`host`]: checks that a launch left nothing behind on the host (mounts, processes).
//! - [`registry`] and [`http`]: Debian's `docker-registry` run for a test, and the request head
//!   reader of the in-process fake servers.
//! - [`tools`]: external programs the tests shell out to (`mksquashfs`, `gcc`, ...).
//! - [`skip`](mod@skip): a test that cannot run here says why, and fails under
//!   `SIFR_TEST_STRICT=1` (CI) unless its premise is the machine's own ([`not_here`]).
//!
//! Tests say why they skip on stdout/stderr, which libtest shows with the test, so printing is
//! allowed here as it is in the test binaries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod command;
pub mod fixture;
pub mod host;
pub mod http;
pub mod identity;
pub mod registry;
pub mod rng;
pub mod skip;
pub mod tools;

pub use command::{
    NO_BUILD_CACHE, NO_REGISTRY_CHECK, TestCommand, TestOutput, remove_caller_settings, stderr,
    stdout,
};
pub use fixture::{Fixture, build_probe, probe_source, sif_fixtures};
pub use host::{
    assert_sigterm_reaches_probe, host_mount_count, host_mounts_mentioning, processes_mentioning,
    root_mount, settled,
};
pub use identity::{
    As, TEST_USER, command_as, identities, is_root, runnable_identities, userns_available,
};
pub use rng::Rng;
pub use skip::{not_here, skip, strict};
pub use tools::{have, missing, mksquashfs, run_ok, vector_loop_c, x86_64_gcc};
