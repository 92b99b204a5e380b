//! Resolution: a target's name turned into addresses, by DNS, from the target itself or by
//! a [`Resolver`] of the user's, as a job on the worker pool; and [`Resolution`], the
//! sans-IO state that says when to resolve again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::subchannel::{Backoff, Subchannel};
use super::target::TargetKind;
use super::{Address, ChannelInner, ConnectivityState, State};
use crate::deadline;
use crate::status::Status;

/// Turns a target into addresses: implement it to find servers in a service registry.
///
/// ```
/// use rsgrpc::channel::{Address, Resolver};
///
/// struct Fixed(Vec<std::net::SocketAddr>);
///
/// impl Resolver for Fixed {
///     fn resolve(&self) -> Result<Vec<Address>, rsgrpc::Status> {
///         Ok(self.0.iter().copied().map(Address::from).collect())
///     }
/// }
///
/// let channel = rsgrpc::Channel::builder("registry:///my-service")
///     .resolver(Fixed(vec!["127.0.0.1:50051".parse().unwrap()]))
///     .connect_lazy()
///     .unwrap();
/// # drop(channel);
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses behind the target, in order of preference.
    ///
    /// Called on a worker-pool thread of the channel's runtime (never a poller thread),
    /// so it may block; called again when a connection is lost, when every address
    /// failed, and every [`resolve_interval`](super::ChannelBuilder::resolve_interval).
    ///
    /// # Errors
    ///
    /// A status (usually `UNAVAILABLE`) that calls fail with while no address is known.
    fn resolve(&self) -> std::result::Result<Vec<Address>, Status>;
}

/// Where the resolution of a channel's target is, and the backoff between failed ones.
#[derive(Debug)]
pub(super) struct Resolution {
    stage: Stage,
    backoff: Backoff,
}

#[derive(Debug)]
enum Stage {
    NotStarted,
    Resolving,
    Resolved { at: Instant },
    Failed { retry_at: Instant, status: Status },
}

/// What a pick does about resolution.
#[derive(Debug)]
pub(super) enum Due {
    /// Resolve (again) now.
    Start,
    /// Fail the call with this: the last resolution failed, it is too early to try again,
    /// and no address is known.
    Fail(Status),
    /// Nothing.
    Nothing,
}

impl Resolution {
    pub(super) fn new(backoff: Backoff) -> Resolution {
        Resolution {
            stage: Stage::NotStarted,
            backoff,
        }
    }

    /// What a pick at `now` does: resolve on first use, once `interval` has passed since
    /// the last resolution, and once a failed one's backoff is over.
    pub(super) fn due(&self, now: Instant, interval: Duration, no_address: bool) -> Due {
        match &self.stage {
            Stage::NotStarted => Due::Start,
            Stage::Resolved { at } if now.saturating_duration_since(*at) >= interval => Due::Start,
            Stage::Failed { retry_at, .. } if now >= *retry_at => Due::Start,
            Stage::Failed { status, .. } if no_address => Due::Fail(status.clone()),
            Stage::Failed { .. } | Stage::Resolving | Stage::Resolved { .. } => Due::Nothing,
        }
    }

    pub(super) fn started(&mut self) {
        self.stage = Stage::Resolving;
    }

    /// Addresses arrived: the backoff starts over.
    pub(super) fn succeeded(&mut self, now: Instant) {
        self.backoff.reset();
        self.stage = Stage::Resolved { at: now };
    }

    /// The resolution failed: back off. Returns the delay before the next one.
    pub(super) fn failed(&mut self, status: Status, now: Instant) -> Duration {
        let delay = self.backoff.next_delay();
        self.stage = Stage::Failed {
            retry_at: deadline::saturating_add(now, delay),
            status,
        };
        delay
    }

    /// Whether the last resolution succeeded and no other is under way.
    pub(super) fn is_resolved(&self) -> bool {
        matches!(self.stage, Stage::Resolved { .. })
    }

    /// Why the last resolution failed, if it did.
    pub(super) fn failure(&self) -> Option<&Status> {
        match &self.stage {
            Stage::Failed { status, .. } => Some(status),
            _ => None,
        }
    }

    /// When a failed resolution may be tried again.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        match self.stage {
            Stage::Failed { retry_at, .. } => Some(retry_at),
            _ => None,
        }
    }

    /// The channel's connectivity while it knows no address.
    pub(super) fn connectivity(&self) -> ConnectivityState {
        match self.stage {
            Stage::Resolving => ConnectivityState::Connecting,
            Stage::Failed { .. } => ConnectivityState::TransientFailure,
            Stage::NotStarted | Stage::Resolved { .. } => ConnectivityState::Idle,
        }
    }
}

/// A DNS name's addresses, each once, in the order `getaddrinfo` gives them. Blocks.
fn lookup_dns(host: &str, port: u16) -> Result<Vec<Address>, Status> {
    use std::net::ToSocketAddrs;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Status::unavailable(format!("cannot resolve {host}: {e}")))?;
    let mut seen = Vec::new();
    for addr in addrs.map(Address::Tcp) {
        if !seen.contains(&addr) {
            seen.push(addr);
        }
    }
    Ok(seen)
}

impl ChannelInner {
    pub(super) fn start_resolving(self: &Arc<Self>, state: &mut State) {
        state.resolution.started();
        let channel = Arc::downgrade(self);
        type Lookup = Box<dyn FnOnce() -> Result<Vec<Address>, Status> + Send>;
        let lookup: Lookup = match (&self.resolver, &self.kind) {
            (Some(resolver), _) => {
                let resolver = resolver.clone();
                Box::new(move || resolver.resolve())
            }
            (None, TargetKind::Static(addresses)) => {
                let addresses = addresses.clone();
                // Applied from a task, as the lock is held here.
                self.poller.spawn(async move {
                    if let Some(channel) = channel.upgrade() {
                        channel.resolved(Ok(addresses));
                    }
                });
                return;
            }
            (None, TargetKind::Dns { host, port }) => {
                let (host, port) = (host.clone(), *port);
                Box::new(move || lookup_dns(&host, port))
            }
        };
        // A user's resolver and getaddrinfo may block: a job on the worker pool, never on
        // a poller (which must not block, nor start threads).
        let Some(permit) = self.rt.workers.try_reserve() else {
            self.resolution_failed(
                state,
                Status::unavailable(format!(
                    "cannot resolve {}: the worker pool is full",
                    self.target
                )),
            );
            return;
        };
        self.rt
            .workers
            .enqueue(std::iter::once(permit.bind(Box::new(move || {
                let result = lookup();
                if let Some(channel) = channel.upgrade() {
                    channel.resolved(result);
                }
            }))));
    }

    /// Applies a resolution: subchannels for addresses that stay keep their connections.
    pub(super) fn resolved(self: &Arc<Self>, result: Result<Vec<Address>, Status>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let addresses = match result {
            Ok(addresses) if !addresses.is_empty() => addresses,
            Ok(_) => {
                self.resolution_failed(
                    &mut state,
                    Status::unavailable(format!("{} resolved to no address", self.target)),
                );
                return;
            }
            Err(status) => {
                self.resolution_failed(&mut state, status);
                return;
            }
        };
        tracing::debug!(target = %self.target, ?addresses, "resolved");
        let now = Instant::now();
        state.resolution.succeeded(now);
        let backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        let gone = state.subchannels.update(addresses, |address| {
            Subchannel::new(
                self.next_id.fetch_add(1, Ordering::Relaxed),
                address,
                backoff,
            )
        });
        let State {
            subchannels,
            balancer,
            ..
        } = &mut *state;
        balancer.resolved(subchannels, now);
        self.dial_woken(&mut state);
        self.notify();
        drop(state);
        // Connections to addresses that went away close once their calls are done.
        drop(gone);
    }

    fn resolution_failed(self: &Arc<Self>, state: &mut State, status: Status) {
        tracing::debug!(target = %self.target, %status, "resolution failed");
        state.resolution.failed(status.clone(), Instant::now());
        if state.subchannels.is_empty() {
            state.last_failure = Some(status);
        }
        self.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::subchannel::test_backoff;

    const INTERVAL: Duration = Duration::from_secs(300);

    #[test]
    fn resolves_on_first_use_and_again_after_the_interval() {
        let now = Instant::now();
        let mut resolution = Resolution::new(test_backoff());
        assert!(matches!(resolution.due(now, INTERVAL, true), Due::Start));
        assert_eq!(resolution.connectivity(), ConnectivityState::Idle);
        resolution.started();
        assert!(
            matches!(resolution.due(now, INTERVAL, true), Due::Nothing),
            "under way"
        );
        assert_eq!(resolution.connectivity(), ConnectivityState::Connecting);
        resolution.succeeded(now);
        assert!(resolution.is_resolved());
        assert!(matches!(
            resolution.due(now + INTERVAL / 2, INTERVAL, false),
            Due::Nothing
        ));
        assert!(matches!(
            resolution.due(now + INTERVAL, INTERVAL, false),
            Due::Start
        ));
    }

    #[test]
    fn a_failed_resolution_fails_calls_until_its_backoff_is_over() {
        let now = Instant::now();
        let mut resolution = Resolution::new(test_backoff());
        resolution.started();
        let status = Status::unavailable("no such host");
        let delay = resolution.failed(status.clone(), now);
        assert!(delay <= Duration::from_millis(1200), "{delay:?}");
        assert_eq!(resolution.retry_at(), Some(now + delay));
        assert_eq!(
            resolution.failure().map(Status::message),
            Some("no such host")
        );
        assert_eq!(
            resolution.connectivity(),
            ConnectivityState::TransientFailure
        );
        let early = now + delay / 2;
        match resolution.due(early, INTERVAL, true) {
            Due::Fail(failed) => assert_eq!(failed.message(), "no such host"),
            other => panic!("{other:?}"),
        }
        // With addresses from before, calls go on using them.
        assert!(matches!(
            resolution.due(early, INTERVAL, false),
            Due::Nothing
        ));
        assert!(matches!(
            resolution.due(now + delay, INTERVAL, true),
            Due::Start
        ));
    }

    #[test]
    fn resolution_backoff_grows_and_resets_on_success() {
        let now = Instant::now();
        let mut resolution = Resolution::new(test_backoff());
        let status = Status::unavailable("down");
        resolution.failed(status.clone(), now);
        let second = resolution.failed(status.clone(), now);
        assert!(second >= Duration::from_millis(1280), "{second:?}");
        resolution.succeeded(now);
        assert!(resolution.failure().is_none());
        let after_success = resolution.failed(status, now);
        assert!(
            after_success <= Duration::from_millis(1200),
            "{after_success:?}"
        );
    }
}
