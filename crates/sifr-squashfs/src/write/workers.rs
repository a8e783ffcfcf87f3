//! The compression workers: a rayon pool whose threads have all exited once it is dropped.
//!
//! Dropping a rayon pool only tells its threads to stop; they exit a moment later. A definition
//! build packs trees between its sections (a registry base's layers, the build cache's entries)
//! and then forks `%post`'s container, which needs the process single-threaded again (the
//! fork checks it). So dropping [`Workers`] waits for every thread's exit handler.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a drop waits for the threads before giving up (a stuck worker is a bug; the
/// fork's own check then reports the threads).
const EXIT_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Workers {
    pool: Option<rayon::ThreadPool>,
    /// Threads not yet exited.
    live: Arc<(Mutex<usize>, Condvar)>,
}

impl Workers {
    pub(crate) fn new(
        threads: usize,
        name: &'static str,
    ) -> Result<Workers, rayon::ThreadPoolBuildError> {
        let live = Arc::new((Mutex::new(threads), Condvar::new()));
        let on_exit = Arc::clone(&live);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{name}-{i}"))
            .exit_handler(move |_| {
                let (count, cv) = &*on_exit;
                if let Ok(mut n) = count.lock() {
                    *n = n.saturating_sub(1);
                    cv.notify_all();
                }
            })
            .build()?;
        Ok(Workers {
            pool: Some(pool),
            live,
        })
    }

    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(p) = &self.pool {
            p.spawn(job);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        drop(self.pool.take());
        let (count, cv) = &*self.live;
        let deadline = Instant::now() + EXIT_WAIT;
        let Ok(mut n) = count.lock() else { return };
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match cv.wait_timeout(n, left) {
                Ok((g, _)) => n = g,
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of this process whose name starts with `prefix`.
    fn named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    #[test]
    fn no_worker_thread_outlives_the_drop() {
        for _ in 0..20 {
            let w = Workers::new(4, "wk-drop-test").unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            for i in 0..16 {
                let tx = tx.clone();
                w.spawn(move || {
                    let _ = tx.send(i);
                });
            }
            drop(tx);
            assert_eq!(rx.iter().count(), 16);
            let live = Arc::clone(&w.live);
            drop(w);
            // Every thread has run its exit handler when the drop returns...
            assert_eq!(
                *live.0.lock().unwrap(),
                0,
                "the drop returned before the threads ended"
            );
            // ...and the kernel drops them from the count within the fork check's grace.
            let start = Instant::now();
            while named("wk-drop-test") > 0 {
                assert!(
                    start.elapsed() < Duration::from_millis(200),
                    "a worker thread is still there"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
