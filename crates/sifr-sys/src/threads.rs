//! The thread count of the calling process, and the one check that it has a single thread,
//! made before each step the kernel or `fork` allows only then: creating or joining a user
//! namespace (the kernel refuses with `EINVAL`), and a `fork` whose child runs ordinary code
//! (another thread could hold a lock, malloc's or stdio's, that the child would inherit held).
//!
//! Depends on nothing else in `sys` but its error type, so `ns` and `process` both use it
//! without depending on each other.

use crate::error::{Error, Result, err};

/// The number of threads of the calling process, from `/proc/self/status`.
pub fn thread_count() -> Result<usize> {
    // Room for the whole file up front: procfs reports a size of 0, for which `read_to_string`
    // would start with 32-byte reads and grow (eight reads for this file, on every launch).
    let mut status = String::with_capacity(4096);
    std::fs::File::open("/proc/self/status")
        .and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut status))
        .map_err(err("read", "/proc/self/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::new(
                "parse",
                "/proc/self/status",
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            )
        })
}

/// How long a thread that was just joined may still be counted.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// `Ok` when the calling process has exactly one thread; otherwise the error `threaded` makes
/// of the thread count (each caller names its own step). A failure to read the count is
/// returned as it is.
///
/// A thread that another has just joined can still be counted for a moment: the kernel wakes
/// the joiner when it clears the thread's id, early in the thread's exit, and removes it from
/// the count (`Threads:`) later. The environment interpreter's workers, joined just before
/// the container's init is forked, hit that window under load; so a count above one is
/// read again, for at most [`EXIT_GRACE`], before it is an error.
pub(crate) fn ensure_single_threaded<E: From<Error>>(
    threaded: impl FnOnce(usize) -> E,
) -> std::result::Result<(), E> {
    let start = std::time::Instant::now();
    loop {
        let threads = thread_count()?;
        if threads == 1 {
            return Ok(());
        }
        if start.elapsed() >= EXIT_GRACE {
            return Err(threaded(threads));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}
