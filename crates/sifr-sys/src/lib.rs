//! `sys`: thin typed wrappers over the Linux system calls the runtime needs: namespaces, id maps,
//! mounts (the new mount API and the classic one), network namespaces, `pivot_root`, fork/exec, waiting, signal
//! forwarding, `no_new_privs`, loop devices, forked servers, fd-relative tree removal and host
//! user/group lookups, and ext2/ext3 images through libext2fs (loaded at run time).
//!
//! This is the only crate of the workspace that contains `unsafe` code (rule in
//! `docs/architecture.md`, "One binary, a few libraries": `sys` is the only crate with
//! `unsafe`). Every `unsafe` block carries a `SAFETY:` comment. rustix is used first; `libc` only
//! where rustix has no wrapper (`fork`, `execve`, `sigaction`, `sigprocmask`, `mount_setattr`,
//! `getpwuid_r`, `localtime_r`).
//!
//! What it must not do: decide policy (which mounts, which namespaces, which environment). That
//! is `launch`'s job; this crate performs exactly the operation it is asked for and reports the
//! failing path or id in its error. It never prints.
#![allow(unsafe_code)]

pub mod caps;
pub mod cgroup;
pub mod error;
pub mod ext2fs;
pub mod fs;
pub mod ipc;
pub mod loopdev;
pub mod mount;
pub mod net;
pub mod ns;
pub mod process;
pub mod remove;
pub mod signal;
pub mod threads;
pub mod time;
pub mod tty;
pub mod user;
pub mod uts;

pub use error::{Error, Result};
