//! A leak check around a test, as grpc-go's `leakcheck`: the process's threads and open
//! file descriptors, and the runtime's live calls and connections
//! ([`rsgrpc::internals::live`]), must come back to what they were before the test
//! within a bounded wait, or the test fails naming what leaked.
//!
//! The check measures the whole process, so tests under it run one at a time:
//! [`check`] takes a process-wide lock that the returned guard holds.
//!
//! ```ignore
//! #[test]
//! fn something() {
//!     let _leaks = rsgrpc_tests::leak::check();
//!     // ... the test, with its own runtime, dropped before the end ...
//! } // the guard checks here
//! ```

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rsgrpc::internals::{LiveCounts, live};

/// How long leaked-looking things may take to go away (threads exit and sockets close
/// asynchronously after their owners are dropped).
pub const SETTLE: Duration = Duration::from_secs(20);

/// The open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What the open file descriptors are (`socket:[…]`, `anon_inode:[eventfd]`, …).
pub fn fd_kinds() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

/// The names of this process's threads, except the test harness's (named after the
/// tests, which may be waiting for their turn) and rsgrpc's process-wide reaper thread
/// (started once, on first use).
pub fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| {
            let test_thread = name.contains('_') && !name.contains('-');
            !test_thread && name != "rsgrpc-reaper" && name != "main"
        })
        .collect()
}

/// Resident set size of this process, in bytes.
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Waits up to `timeout` for `check`; false if it never held.
pub fn eventually_within(timeout: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// What the process held at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub fds: usize,
    pub threads: usize,
    pub live: LiveCounts,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot {
            fds: open_fds(),
            threads: thread_names().len(),
            live: live(),
        }
    }

    /// What in `now` exceeds `self`, in words; empty when nothing does.
    pub fn leaks_in(&self, now: &Snapshot) -> Vec<String> {
        let mut leaks = Vec::new();
        if now.fds > self.fds {
            leaks.push(format!(
                "{} file descriptors (baseline {}): {:?}",
                now.fds,
                self.fds,
                fd_kinds()
            ));
        }
        if now.threads > self.threads {
            leaks.push(format!(
                "{} threads (baseline {}): {:?}",
                now.threads,
                self.threads,
                thread_names()
            ));
        }
        let (b, n) = (self.live, now.live);
        for (what, before, after) in [
            ("client calls", b.client_calls, n.client_calls),
            (
                "client connections",
                b.client_connections,
                n.client_connections,
            ),
            ("server calls", b.server_calls, n.server_calls),
            (
                "server connections",
                b.server_connections,
                n.server_connections,
            ),
        ] {
            if after > before {
                leaks.push(format!("{after} live {what} (baseline {before})"));
            }
        }
        leaks
    }
}

/// Holds the process-wide test lock and the baseline; checks on drop.
#[must_use = "the check runs when the guard is dropped"]
pub struct LeakCheck {
    baseline: Snapshot,
    _serial: MutexGuard<'static, ()>,
}

/// Takes the process-wide test lock and the baseline. Dropping the guard waits (up to
/// [`SETTLE`]) for everything to come back to the baseline and panics, naming what
/// leaked, if it does not — unless the test is already failing.
pub fn check() -> LeakCheck {
    static LOCK: Mutex<()> = Mutex::new(());
    let serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    LeakCheck {
        baseline: Snapshot::take(),
        _serial: serial,
    }
}

impl LeakCheck {
    pub fn baseline(&self) -> &Snapshot {
        &self.baseline
    }

    /// What is still held beyond the baseline after waiting up to `timeout`.
    pub fn leaks_after(&self, timeout: Duration) -> Vec<String> {
        let settled = eventually_within(timeout, || {
            self.baseline.leaks_in(&Snapshot::take()).is_empty()
        });
        if settled {
            Vec::new()
        } else {
            self.baseline.leaks_in(&Snapshot::take())
        }
    }
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let leaks = self.leaks_after(SETTLE);
        assert!(leaks.is_empty(), "leaked: {}", leaks.join("; "));
    }
}
