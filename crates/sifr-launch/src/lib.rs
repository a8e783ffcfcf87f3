//! `launch`: the sifr runtime.
//!
//! One request in: the CLI fills a [`Request`] with what the user asked for, and [`prepare`]
//! types it, reads the host, opens and judges the image ([`isa_check`]) and plans the launch,
//! which [`Prepared::run`] executes.
//!
//! Parse, then plan, then execute: [`host::gather`] reads the host, [`plan::build`] turns
//! options + image + host facts into a [`plan::LaunchPlan`] (plain data, unit-tested without
//! privileges), and [`exec::run`] applies a plan through `sys`: namespaces, mounts,
//! `pivot_root`, environment, fork/exec/wait.
//!
//! Images: sandbox directories, SIF files and bare SquashFS files ([`image`] says which and how
//! to attach them: loop device as root, FUSE or extraction otherwise). GPU support ([`gpu`]) is a
//! plan contributor; overlays and instances are later ones. This crate never prints; warnings go through
//! `tracing` and errors are returned.
//!
//! Layers: the plan's data ([`plan::types`]) depends on nothing but [`bind`], [`nomount`] and
//! [`cgroup`]'s limits; the contributors ([`gpu`], [`env`](mod@env)) and the builder ([`plan`])
//! on the data; the launch's lower steps (`assemble`, `attach`, [`share`]) report in [`error`]'s types; only [`exec`]
//! puts them together.

pub mod apps;
mod assemble;
mod attach;
pub mod bind;
pub mod buildrun;
pub mod cgroup;
mod cmdpath;
pub mod env;
pub mod envfile;
pub mod envscript;
pub mod error;
pub mod exec;
pub mod fakeroot;
pub mod fusemount;
pub mod gpu;
pub mod host;
pub mod identity;
pub mod image;
pub mod interp;
pub mod isa_check;
pub mod libpath;
pub mod mounts;
pub mod net;
pub mod nomount;
pub mod overlay;
mod overlay_mount;
pub mod plan;
mod prefetch;
pub mod prepare;
pub mod privs;
pub mod request;
pub mod scratch;
pub mod share;
pub mod vars;

pub use error::{AttachError, ExecError, ShareError};
pub use exec::{run, run_image};
pub use plan::{Action, HostFacts, LaunchPlan, Options, build};
pub use prepare::{Prepared, plan_in_container, prepare};
pub use request::{Origin, Request, RequestError, Sourced};
