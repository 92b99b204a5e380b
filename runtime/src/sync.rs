//! The primitives of the runtime's hand-offs: a mutex and a condition variable without
//! poisoning, atomics, threads and thread-locals.
//!
//! The critical sections of the runtime only move queue entries and counters and never
//! call user code, so a lock whose holder panicked is still consistent: [`Mutex::lock`]
//! returns the guard either way instead of a `Result`.
//!
//! Under `--cfg shuttle` (tests only) every item here is shuttle's model of it, so the
//! model-checking tests of the completion queue, the executor and the worker pool explore
//! the interleavings of their threads (CHECKS.md). Statics that live across tests (the
//! reaper's queue) stay on `std`.

#[cfg(all(test, shuttle))]
use shuttle::sync as imp;
#[cfg(not(all(test, shuttle)))]
use std::sync as imp;

#[cfg(all(test, shuttle))]
pub(crate) use shuttle::{thread, thread_local};
#[cfg(not(all(test, shuttle)))]
pub(crate) use std::{thread, thread_local};

pub(crate) use imp::{Arc, MutexGuard, Weak, atomic};

use std::time::Duration;

/// A mutual-exclusion lock whose guard is returned even if a holder panicked.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(imp::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Mutex<T> {
        Mutex(imp::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(imp::PoisonError::into_inner)
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0
            .get_mut()
            .unwrap_or_else(imp::PoisonError::into_inner)
    }
}

/// A condition variable for [`Mutex`], without poisoning.
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

impl Condvar {
    pub(crate) const fn new() -> Condvar {
        Condvar(imp::Condvar::new())
    }

    /// Releases the lock, waits for a notification (or a spurious wake-up), and locks
    /// again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(imp::PoisonError::into_inner)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; also says whether it timed out.
    /// (Shuttle's model never times out: paths that need a timeout are left to the
    /// ordinary tests.)
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (guard, result) = self
            .0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(imp::PoisonError::into_inner);
        (guard, result.timed_out())
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_locks() {
        let mutex = Arc::new(Mutex::new(1));
        let holder = mutex.clone();
        let panicked = thread::spawn(move || {
            let mut guard = holder.lock();
            *guard = 2;
            panic!("poisons the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(*mutex.lock(), 2);
        let condvar = Condvar::new();
        let (guard, timed_out) = condvar.wait_timeout(mutex.lock(), Duration::from_millis(1));
        assert!(timed_out);
        assert_eq!(*guard, 2);
    }
}
