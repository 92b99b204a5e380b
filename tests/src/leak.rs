//! A leak check around a test, as grpc-go's `leakcheck`: the process's threads and open
//! file descriptors, and the runtime's live calls and connections
//! ([`rsgrpc::internals::live`]), must come back to what they were before the test
//! within a bounded wait, or the test fails naming what leaked.
//!
//! The check measures the whole process, so tests under it run one at a time:
//! [`check`] takes a process-wide lock that the returned guard holds. That is sound only
//! when every test of the binary holds it (a test outside it could open sockets and
//! threads while another is measured), so a binary uses it in all of its tests or none.
//! Threads the test harness starts for the tests waiting for their turn are told apart by
//! their names (the binary's own `--list`), and process-wide threads started once (the
//! global runtime's, rsgrpc's reaper) are not counted.
//!
//! ```no_run
//! # #[allow(dead_code)]
//! // In a `#[test]` function:
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

/// The names the test harness gives its threads in this binary: each test runs on a
/// thread named after it, as the kernel keeps it (15 bytes). They come and go as tests
/// wait for their turn, so they are not counted.
///
/// Only a test binary knows them: [`check`] asks it (`--list`) once; elsewhere (the soak
/// command) the set stays empty.
static HARNESS: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();

fn harness_thread_names() -> &'static std::collections::HashSet<String> {
    HARNESS.get_or_init(|| {
        let list = std::env::current_exe().ok().and_then(|exe| {
            std::process::Command::new(exe)
                .args(["--list", "--format", "terse"])
                .output()
                .ok()
        });
        let list = list.map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
        list.unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_suffix(": test"))
            .map(|name| truncate_comm(name).to_owned())
            .collect()
    })
}

/// What the kernel keeps of a thread name: 15 bytes.
fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The names of this process's threads, except the test harness's (named after the
/// tests, which may be waiting for their turn) and rsgrpc's process-wide reaper thread
/// (started once, on first use).
///
/// Threads a test spawns without a name inherit its thread's name and so are not seen;
/// every thread rsgrpc starts has a name.
pub fn thread_names() -> Vec<String> {
    let empty = std::collections::HashSet::new();
    let harness = HARNESS.get().unwrap_or(&empty);
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| !harness.contains(name) && !process_wide(name))
        .collect()
}

/// Threads that live as long as the process, started on first use: rsgrpc's reaper, the
/// worker pools of the default-prefix runtimes (the global runtime's pool grows with load
/// and keeps idle workers for a minute; a leaked runtime of a test still shows as its
/// poller and executor threads, which are counted), and smol's global executor and
/// reactor (tests on smol).
fn process_wide(name: &str) -> bool {
    name == "rsgrpc-reaper"
        || name.starts_with("rsgrpc-worker")
        || name.starts_with("smol-")
        || name == "async-io"
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
    /// Fails the test, naming what leaked, unless what the process holds comes back to
    /// this snapshot within [`SETTLE`].
    pub fn assert_back(&self) {
        let settled = eventually_within(SETTLE, || self.leaks_in(&Snapshot::take()).is_empty());
        if !settled {
            panic!("leaked: {}", self.leaks_in(&Snapshot::take()).join("; "));
        }
    }

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
    check_after(|| {})
}

/// As [`check`], but runs `warm_up` (under the lock, before the baseline) to start
/// process-wide things that live on after the test, such as another library's global
/// executor.
pub fn check_after(warm_up: impl FnOnce()) -> LeakCheck {
    static LOCK: Mutex<()> = Mutex::new(());
    let serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    harness_thread_names();
    // The global runtime is process-wide: started on first use, never stopped. Its
    // threads and file descriptors belong in the baseline.
    let _ = rsgrpc::Runtime::global();
    warm_up();
    // A thread just started carries its parent's name until it names itself: let the
    // threads started above settle (bounded) before counting them.
    let mut last = thread_names();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = thread_names();
        if now == last {
            break;
        }
        last = now;
    }
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
