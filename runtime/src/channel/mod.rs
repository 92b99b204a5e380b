//! [`Channel`]: a lazily connected virtual connection to a target — one or more servers
//! behind a name — with TLS, keepalive, name resolution and load balancing.
//!
//! A channel resolves its target into addresses (DNS, an address list, a Unix socket, or
//! a [`Resolver`] of yours) and keeps one *subchannel* per address, each with its own
//! connection and its own reconnection backoff (gRPC's: 1 s, then ×1.6 per failure with
//! ±20 % jitter, at most 120 s, reset once a connection has been of use; a connection is
//! ready only once the server's SETTINGS arrived, and one the server sends away with
//! GOAWAY before processing anything counts as a failed attempt). Calls are placed by the
//! load-balancing policy: `pick_first` (the default) uses the first address in order that
//! connects; `round_robin` connects to all of them and rotates calls over those that are
//! ready. A call never goes to a subchannel that is not ready while another is.
//!
//! ```text
//!   subchannel:                    handshake done
//!    Idle ──(picked)──▶ Connecting ───────────────▶ Ready
//!     ▲                   │   ▲                      │ lost (GOAWAY, reset, EOF,
//!     │          failed   ▼   │ backoff over         │       keepalive timeout)
//!     │             TransientFailure                 │
//!     └───────────────────────────────────────────────┘
//! ```
//!
//! The channel's [`ConnectivityState`] sums its subchannels up. The target is resolved
//! again when a connection is lost, when every address failed, and periodically.
//!
//! Connection state lives with the channel and is changed under one lock; connections are
//! made and driven on the channel's poller thread.

mod balancer;
mod builder;
mod connection;
#[cfg(feature = "http1")]
mod http1;
mod resolver;
mod service_config;
mod subchannel;
mod target;

pub use crate::transport::Address;
pub use balancer::LoadBalancingPolicy;
pub use builder::ChannelBuilder;
pub(crate) use builder::ChannelConfig;
pub(crate) use connection::{CallOnConnection, Picked};
pub use resolver::Resolver;
pub use service_config::ServiceConfig;
pub(crate) use service_config::{MethodConfig, RetryPolicy};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::sync::watch;

use crate::deadline;
use crate::error::Result;
use crate::interceptor::Chain;
use crate::metrics::Metrics;
use crate::runtime;
use crate::status::Status;
use crate::sync::{Condvar, Mutex, MutexGuard};
use balancer::{Balancer, Pick};
use connection::ReadyConnection;
use resolver::{Due, Resolution};
use subchannel::Subchannels;
use target::TargetKind;

/// A channel's connectivity, as gRPC defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectivityState {
    /// Not connected, and not trying to: a call (or [`Channel::connect`]) starts it.
    Idle,
    /// Resolving or connecting.
    Connecting,
    /// At least one connection is ready for calls.
    Ready,
    /// Every address failed; reconnection is backing off. Calls fail at once with
    /// `UNAVAILABLE` unless they wait for ready.
    TransientFailure,
    /// [`Channel::close`] was called.
    Shutdown,
}

/// A virtual connection to a gRPC server, shared by every client built from it.
///
/// `Channel` is cheap to clone (clones share connections) and can be used from any
/// thread, by blocking and async clients alike. It connects on the first call and
/// reconnects, with backoff, after a connection is lost. Dropping the last clone, or
/// [`close`](Self::close), lets the calls in flight finish and closes its connections.
///
/// ```
/// let channel = rsgrpc::Channel::new("http://127.0.0.1:50051").unwrap();
/// let for_another_thread = channel.clone();
/// # drop((channel, for_another_thread));
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<ChannelInner>,
}

pub(crate) struct ChannelInner {
    target: String,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    kind: TargetKind,
    resolver: Option<Arc<dyn Resolver>>,
    pub(crate) config: ChannelConfig,
    service_config: Option<Arc<ServiceConfig>>,
    /// Retry throttling's tokens, when the service config asks for throttling.
    retry_tokens: Mutex<f64>,
    pub(crate) interceptors: Chain,
    pub(crate) metrics: Option<Metrics>,
    #[cfg(feature = "tls")]
    tls: Option<(Arc<tokio_rustls::rustls::ClientConfig>, String)>,
    pub(crate) rt: runtime::Handle,
    pub(crate) poller: tokio::runtime::Handle,
    pub(crate) user_agent: HeaderValue,
    state: Mutex<State>,
    /// Wakes blocking waiters on every change of `state`.
    state_cv: Condvar,
    changed: watch::Sender<u64>,
    next_id: AtomicU64,
}

/// What the channel's lock guards: resolution, subchannels and the policy over them.
struct State {
    closed: bool,
    resolution: Resolution,
    subchannels: Subchannels<ReadyConnection>,
    balancer: Box<dyn Balancer<ReadyConnection>>,
    /// The keepalive time in force (doubled each time a server says `too_many_pings`).
    keepalive_time: Option<Duration>,
    /// Why the last connection attempt failed, for calls that fail fast.
    last_failure: Option<Status>,
}

/// Where a pick placed a call.
enum Placed {
    Ready(Picked),
    Wait,
    Fail(Status),
}

impl Channel {
    /// A channel to `target` on the global runtime, with default settings. Nothing is
    /// connected until the first call.
    ///
    /// `target` is `host:port`, `http://host:port`, `dns:///host:port`,
    /// `ipv4:addr:port,...`, `ipv6:[addr]:port,...` or `unix:/path` (and `https://`
    /// with a TLS configuration).
    ///
    /// # Errors
    ///
    /// When the target cannot be parsed or its scheme is not supported.
    pub fn new(target: &str) -> Result<Channel> {
        Channel::builder(target).connect_lazy()
    }

    /// A builder to configure the channel before it is created.
    pub fn builder(target: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder::new(target.into())
    }

    /// The target this channel was created for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Closes the channel, for this handle and every clone: new calls fail with
    /// `UNAVAILABLE`, calls in flight finish, and then the connections are closed.
    ///
    /// Dropping the last clone of a channel does the same.
    pub fn close(&self) {
        let mut state = self.inner.lock();
        state.closed = true;
        let subchannels = std::mem::take(&mut state.subchannels);
        self.inner.notify();
        drop(state);
        // The connections' senders go here (outside the lock): once the calls in flight
        // are done, h2 closes the connections.
        drop(subchannels);
    }

    /// The channel's connectivity now; with `try_to_connect`, an idle channel starts
    /// connecting.
    pub fn state(&self, try_to_connect: bool) -> ConnectivityState {
        let mut state = self.inner.lock();
        if try_to_connect && !state.closed {
            // A pick starts resolution and connection; a call would do the same.
            let _ = self.inner.pick(&mut state);
        }
        self.inner.connectivity(&state)
    }

    /// Connects now rather than on the first call, blocking the calling thread until the
    /// channel is ready.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` with the reason when every address failed, the channel was closed,
    /// or it was not ready within `timeout`.
    pub fn connect_blocking(&self, timeout: Duration) -> std::result::Result<(), Status> {
        let deadline = deadline::saturating_after(timeout);
        loop {
            let now = self.state(true);
            if let Some(done) = self.inner.connect_outcome(now) {
                return done;
            }
            if !self.wait_for_state_change(now, deadline.saturating_duration_since(Instant::now()))
            {
                return Err(Status::unavailable(format!(
                    "the channel to {} was not ready within {timeout:?}",
                    self.inner.target
                )));
            }
        }
    }

    /// Connects now rather than on the first call; completes once the channel is ready.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` with the reason when every address failed or the channel was closed.
    pub async fn connect(&self) -> std::result::Result<(), Status> {
        loop {
            let now = self.state(true);
            if let Some(done) = self.inner.connect_outcome(now) {
                return done;
            }
            self.state_changed(now).await;
        }
    }

    /// Blocks until the connectivity state differs from `last`, or `timeout` passes;
    /// returns whether it changed.
    pub fn wait_for_state_change(&self, last: ConnectivityState, timeout: Duration) -> bool {
        let deadline = deadline::saturating_after(timeout);
        let wait = || {
            let mut state = self.inner.lock();
            loop {
                if self.inner.connectivity(&state) != last {
                    return true;
                }
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                state = self.inner.state_cv.wait_timeout(state, deadline - now).0;
            }
        };
        crate::executor::blocking_region(wait)
    }

    /// Completes when the connectivity state differs from `last`, with the new state.
    pub async fn state_changed(&self, last: ConnectivityState) -> ConnectivityState {
        let mut changed = self.inner.changed.subscribe();
        loop {
            {
                let state = self.inner.lock();
                changed.borrow_and_update();
                let now = self.inner.connectivity(&state);
                if now != last {
                    return now;
                }
            }
            // The sender lives in `inner`, which we hold: this cannot fail.
            let _ = changed.changed().await;
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        // The last owner may be a call task finishing on a poller after every handle was
        // dropped: the user's resolver and interceptors are dropped off it, as a server's
        // handlers are.
        let resolver = self.resolver.take();
        let interceptors = std::mem::take(&mut self.interceptors);
        if resolver.is_some() || !interceptors.is_empty() {
            crate::role::drop_off_poller((resolver, interceptors));
        }
    }
}

impl ChannelInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Publishes a state change to waiting calls; called with the state lock held.
    fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
        self.state_cv.notify_all();
    }

    fn connectivity(&self, state: &State) -> ConnectivityState {
        if state.closed {
            ConnectivityState::Shutdown
        } else if state.subchannels.is_empty() {
            // Resolution matters only while there is no address yet: with some, a
            // background re-resolution does not change what calls see.
            state.resolution.connectivity()
        } else {
            state.balancer.connectivity(&state.subchannels)
        }
    }

    /// What `connect` makes of a connectivity state: done (`Some`) or keep waiting.
    fn connect_outcome(&self, now: ConnectivityState) -> Option<std::result::Result<(), Status>> {
        match now {
            ConnectivityState::Ready => Some(Ok(())),
            ConnectivityState::Shutdown => Some(Err(self.closed_status())),
            ConnectivityState::TransientFailure => Some(Err(self
                .lock()
                .last_failure
                .clone()
                .unwrap_or_else(|| Status::unavailable("failed to connect")))),
            ConnectivityState::Idle | ConnectivityState::Connecting => None,
        }
    }

    /// Why the last connection attempt (or resolution) failed, while no connection is
    /// ready.
    pub(crate) fn last_failure(&self) -> Option<Status> {
        let state = self.lock();
        if self.connectivity(&state) == ConnectivityState::Ready {
            return None;
        }
        state
            .last_failure
            .clone()
            .or_else(|| state.resolution.failure().cloned())
    }

    /// The service config's entry for a method path.
    pub(crate) fn method_config(&self, path: &str) -> Option<&MethodConfig> {
        self.service_config.as_ref()?.method(path)
    }

    /// The retry policy for a method path, from the service config.
    pub(crate) fn retry_policy(&self, path: &str) -> Option<RetryPolicy> {
        self.service_config.as_ref()?.retry_policy(path).cloned()
    }

    /// Accounts a call's outcome in retry throttling (gRPC's token bucket: a failure with
    /// a retryable code costs a token, a success gives back `tokenRatio`); returns
    /// whether retries are allowed now (more than half the tokens left).
    pub(crate) fn throttle(&self, code: Option<crate::Code>, policy: Option<&RetryPolicy>) -> bool {
        let Some(throttling) = self.service_config.as_ref().and_then(|c| c.throttling) else {
            return true;
        };
        let mut tokens = self.retry_tokens.lock();
        match code {
            Some(crate::Code::Ok) => {
                *tokens = (*tokens + throttling.token_ratio).min(throttling.max_tokens);
            }
            Some(code) if policy.is_some_and(|p| p.codes.contains(&code)) => {
                *tokens = (*tokens - 1.0).max(0.0);
            }
            _ => {}
        }
        *tokens > throttling.max_tokens / 2.0
    }

    fn closed_status(&self) -> Status {
        Status::unavailable(format!("the channel to {} was closed", self.target))
    }

    /// Places a call by the policy, starting resolution and connections as needed.
    fn pick(self: &Arc<Self>, state: &mut State) -> Placed {
        if state.closed {
            return Placed::Fail(self.closed_status());
        }
        let now = Instant::now();
        let no_address = state.subchannels.is_empty();
        match state
            .resolution
            .due(now, self.config.resolve_interval, no_address)
        {
            Due::Start => self.start_resolving(state),
            Due::Fail(status) => return Placed::Fail(status),
            Due::Nothing => {}
        }
        if state.subchannels.is_empty() {
            return Placed::Wait;
        }
        let pick = state.balancer.pick(&mut state.subchannels, now);
        self.dial_woken(state);
        match pick {
            Pick::Ready(i) => match state.subchannels.get(i) {
                Some(sub) => match sub.ready() {
                    Some(ready) => Placed::Ready(ready.picked(sub.key)),
                    None => Placed::Wait,
                },
                None => Placed::Wait,
            },
            Pick::Wait => Placed::Wait,
            Pick::Fail => Placed::Fail(self.failure(state)),
        }
    }

    /// Dials the subchannels the policy woke.
    fn dial_woken(self: &Arc<Self>, state: &mut State) {
        for i in state.subchannels.take_dials() {
            self.start_connecting(state, i);
        }
    }

    /// Every address failed: resolve again (the servers may have moved), and report why.
    fn failure(self: &Arc<Self>, state: &mut State) -> Status {
        if state.resolution.is_resolved() {
            self.start_resolving(state);
        }
        state.last_failure.clone().unwrap_or_else(|| {
            Status::unavailable(format!("no connection to {} is ready", self.target))
        })
    }

    /// A connection ready for a new stream. Runs on the channel's poller.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> std::result::Result<Picked, Status> {
        let mut changed = self.changed.subscribe();
        loop {
            let mut sleep_until = None;
            {
                let mut state = self.lock();
                changed.borrow_and_update();
                match self.pick(&mut state) {
                    Placed::Ready(picked) => return Ok(picked),
                    Placed::Wait => {}
                    Placed::Fail(status) if state.closed || !wait_for_ready => {
                        return Err(status);
                    }
                    Placed::Fail(_) => sleep_until = next_retry(&state),
                }
            }
            match sleep_until {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = changed.changed() => {}
                    }
                }
                // The sender lives in `self`, so this cannot fail while we hold it.
                None => {
                    let _ = changed.changed().await;
                }
            }
        }
    }
}

/// The earliest time a backing-off subchannel or resolution may be tried again.
fn next_retry(state: &State) -> Option<Instant> {
    let subchannels = state.subchannels.next_retry();
    subchannels
        .into_iter()
        .chain(state.resolution.retry_at())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_targets_need_a_tls_configuration() {
        let err = Channel::new("https://example.com").unwrap_err();
        assert!(err.is_invalid_target(), "{err}");
    }
}
