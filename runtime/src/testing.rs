//! Helpers for the crate's unit tests.

use std::time::{Duration, Instant};

/// Whether `check` holds within a generous bound, polled every 5 ms: for what settles
/// asynchronously (a thread gone, a worker started), never a timing.
pub(crate) fn eventually(check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
