//! `launch`: the sifr runtime.
//!
//! Parse, then plan, then execute: [`host::gather`] reads the host, [`plan::build`] turns
//! options + image + host facts into a [`plan::LaunchPlan`] (plain data, unit-tested without
//! privileges), and [`exec::run`] applies a plan through `sys`: namespaces, mounts,
//! `pivot_root`, environment, fork/exec/wait.
//!
//! Scope today: sandbox (directory) images only; SIF and squashfs images, overlays, GPU and
//! instances are later plan contributors. This crate never prints; warnings go through
//! `tracing` and errors are returned.

mod assemble;
pub mod bind;
pub mod env;
pub mod envscript;
pub mod exec;
pub mod host;
pub mod identity;
pub mod plan;

pub use exec::{ExecError, run};
pub use plan::{Action, HostFacts, LaunchPlan, Options, build};
