//! Processes: starting commands, forking helpers, the PID-1 init, waiting, and the calling
//! process's own attributes and standard descriptors.
//!
//! One submodule per operation, all re-exported here so callers keep writing
//! `sifr_sys::process::X`:
//! - `spawn`: [`ExecSpec`] and [`spawn`], the posix_spawn-style start of a command
//!   (`clone(CLONE_VM | CLONE_VFORK)`), whose child runs only async-signal-safe calls;
//! - `init`: [`spawn_init`], the init (PID 1) of a new PID namespace that starts the command,
//!   forwards signals and reaps;
//! - `fork`: [`fork_server`], [`fork_child`], [`fork_tied_child`] and [`spawn_daemon`], forks
//!   whose child runs ordinary Rust code, sound because the caller is checked to be
//!   single-threaded first; [`tie_to_caller`] for a `std` command that must die with sifr;
//! - `driver`: [`spawn_with_fd3`], a FUSE program started with its `/dev/fuse` descriptor as
//!   fd 3, in another root when asked (`--fusemount`);
//! - `child`: [`Child`], [`ExitStatus`], waiting and signalling;
//! - `fds`: pipes, redirections of the standard descriptors, [`close_fds_except`], [`notify`];
//! - `attrs`: the caller's ids, groups, name, priority, CPU affinity, working directory,
//!   process group and `no_new_privs`.
//!
//! Runs after the namespace change, in the container's mount namespace; a child inherits the
//! namespaces, the cwd and `no_new_privs` of the caller.

mod attrs;
mod child;
mod driver;
mod fds;
mod fork;
mod init;
mod spawn;

pub use attrs::{
    chdir, cpu_count, groups, ids, own_process_group, set_idle_priority, set_name,
    set_no_new_privs, set_umask, unpin,
};
pub use child::{Child, ExecFailed, ExitStatus, send_signal, terminate, wait_pid};
pub use driver::{FUSE_FD, spawn_with_fd3};
pub use fds::{
    close_fds_except, notify, pipe, read_until, redirect_stderr, redirect_stdout, stdin_from_null,
};
pub(crate) use fork::fork_checked;
pub use fork::{
    ForkServerError, fork_child, fork_server, fork_tied_child, spawn_daemon, tie_to_caller,
};
pub use init::spawn_init;
pub use spawn::{ExecSpec, NulError, SpawnOptions, spawn};
