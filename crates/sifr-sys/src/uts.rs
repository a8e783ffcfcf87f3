//! The UTS namespace's host name: `sethostname(2)`.
//!
//! Runs after the namespace change: the caller must already be in a new UTS namespace (created
//! with [`crate::ns::unshare`]), or it would rename the host. Must not: choose the name (that is
//! the plan's job) or touch `/etc/hostname` (a plan mount does).

use crate::error::{Result, err};

/// Set the host name of the current UTS namespace to `name`.
pub fn set_hostname(name: &str) -> Result<()> {
    rustix::system::sethostname(name.as_bytes()).map_err(err("set the host name to", name))
}
