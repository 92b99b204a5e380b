//! Cancellation and the rest of what a server call carries besides its messages: the
//! [`CallContext`] handlers read, the [`CancelState`] the poller sets when the client
//! resets the call, its deadline passes or the server stops, and the watches that wake
//! whoever waits for it ([`Cancelled`], outgoing calls made on the call's behalf).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::status::Status;
use crate::sync::{Mutex, MutexGuard};

/// What the server knows about a call besides its messages.
#[derive(Debug)]
pub(crate) struct CallContext {
    /// Who is at the other end of the connection.
    pub(crate) peer: Arc<crate::transport::PeerInfo>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: Arc<CancelState>,
    /// Whether responses are compressed, shared with the call's responder.
    pub(crate) compress: Arc<AtomicBool>,
}

impl CallContext {
    /// Why a handler must not start any more: its call was cancelled, or its deadline
    /// passed while it waited for a thread.
    pub(crate) fn ended(&self) -> Option<Status> {
        if self.cancel.is_cancelled() {
            return Some(
                self.cancel
                    .reason()
                    .cloned()
                    .unwrap_or_else(|| Status::cancelled("the call was cancelled")),
            );
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Status::deadline_exceeded(
                "deadline exceeded before the handler started",
            ));
        }
        None
    }
}

/// The cancellation flag of a server call, set by the poller and read by handlers.
#[derive(Debug, Default)]
pub(crate) struct CancelState {
    cancelled: AtomicBool,
    /// Why the runtime ended the call, when it knows (deadline, client reset, shutdown):
    /// what the call's observers are told.
    reason: std::sync::OnceLock<Status>,
    /// Who waits for the cancellation, by key; entries leave with their watch, so the
    /// list holds only live watchers.
    wakers: Mutex<Wakers>,
}

#[derive(Debug, Default)]
struct Wakers {
    next_key: u64,
    waiting: Vec<(u64, Waker)>,
}

impl CancelState {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn wakers(&self) -> MutexGuard<'_, Wakers> {
        self.wakers.lock()
    }

    /// Cancels the call for `reason`, unless it already was.
    pub(crate) fn cancel_because(&self, reason: &Status) {
        if !self.is_cancelled() {
            let _ = self.reason.set(reason.clone());
        }
        self.cancel();
    }

    /// Why the call was cancelled, when that is known.
    pub(crate) fn reason(&self) -> Option<&Status> {
        self.reason.get()
    }

    pub(crate) fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiting = std::mem::take(&mut self.wakers().waiting);
        for (_, waker) in waiting {
            waker.wake();
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.wakers().waiting.len()
    }
}

/// One waiter on a [`CancelState`]; dropping it withdraws its waker.
#[derive(Debug)]
pub(crate) struct CancelWatch {
    state: Arc<CancelState>,
    key: Option<u64>,
}

impl CancelWatch {
    pub(crate) fn new(state: Arc<CancelState>) -> CancelWatch {
        CancelWatch { state, key: None }
    }

    /// Ready once the call is cancelled.
    pub(crate) fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.is_cancelled() {
            return Poll::Ready(());
        }
        let mut wakers = self.state.wakers();
        if self.state.is_cancelled() {
            return Poll::Ready(());
        }
        let Wakers { next_key, waiting } = &mut *wakers;
        let slot = self
            .key
            .and_then(|key| waiting.iter_mut().find(|(k, _)| *k == key));
        match slot {
            Some((_, waker)) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                let key = *next_key;
                *next_key += 1;
                waiting.push((key, cx.waker().clone()));
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.state.wakers().waiting.retain(|(k, _)| *k != key);
        }
    }
}

/// Completes when a server call is cancelled; see [`Request::cancelled`](crate::Request::cancelled).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Cancelled {
    watch: Option<CancelWatch>,
}

impl Cancelled {
    /// Completes when `watch` sees the call cancelled; never, without one.
    pub(crate) fn new(watch: Option<CancelWatch>) -> Cancelled {
        Cancelled { watch }
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.watch {
            Some(watch) => watch.poll_cancelled(cx),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn watchers_leave_the_list_when_dropped() {
        let state = Arc::new(CancelState::default());
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        // Many short-lived watchers (one per outgoing call, say) leave nothing behind.
        for _ in 0..1000 {
            let mut watch = CancelWatch::new(state.clone());
            assert!(watch.poll_cancelled(&mut cx).is_pending());
            assert!(watch.poll_cancelled(&mut cx).is_pending());
            assert_eq!(state.waiting(), 1);
        }
        assert_eq!(state.waiting(), 0);

        let mut first = CancelWatch::new(state.clone());
        let mut second = CancelWatch::new(state.clone());
        assert!(first.poll_cancelled(&mut cx).is_pending());
        assert!(second.poll_cancelled(&mut cx).is_pending());
        assert_eq!(state.waiting(), 2);
        state.cancel();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert_eq!(state.waiting(), 0);
        assert!(first.poll_cancelled(&mut cx).is_ready());
        assert!(second.poll_cancelled(&mut cx).is_ready());
    }
}
