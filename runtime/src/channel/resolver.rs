//! Resolution: a target's name turned into addresses, by DNS, from the target itself or by
//! a [`Resolver`] of the user's, as a job on the worker pool.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::subchannel::{Conn, Subchannel};
use super::target::TargetKind;
use super::{Address, ChannelInner, LoadBalancingPolicy, State, jitter};
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

pub(super) enum Resolution {
    NotStarted,
    Resolving,
    Resolved { at: Instant },
    Failed { retry_at: Instant, status: Status },
}

impl ChannelInner {
    pub(super) fn start_resolving(self: &Arc<Self>, state: &mut State) {
        state.resolution = Resolution::Resolving;
        let channel = Arc::downgrade(self);
        type Lookup = Box<dyn FnOnce() -> std::result::Result<Vec<Address>, Status> + Send>;
        let lookup: Lookup = match (&self.resolver, &self.kind) {
            (Some(resolver), _) => {
                let resolver = resolver.clone();
                Box::new(move || resolver.resolve())
            }
            (None, TargetKind::Static(addresses)) => {
                let addresses = addresses.iter().cloned().map(Address::from).collect();
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
                Box::new(move || {
                    use std::net::ToSocketAddrs;
                    let addrs = (host.as_str(), port)
                        .to_socket_addrs()
                        .map_err(|e| Status::unavailable(format!("cannot resolve {host}: {e}")))?;
                    let mut seen = Vec::new();
                    for addr in addrs.map(Address::Tcp) {
                        if !seen.contains(&addr) {
                            seen.push(addr);
                        }
                    }
                    Ok(seen)
                })
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
    pub(super) fn resolved(self: &Arc<Self>, result: std::result::Result<Vec<Address>, Status>) {
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
        state.resolve_backoff = self.config.initial_backoff;
        state.resolution = Resolution::Resolved { at: Instant::now() };
        let mut old = std::mem::take(&mut state.subchannels);
        for address in addresses {
            let sub = match old.iter().position(|s| s.address == address) {
                Some(i) => old.swap_remove(i),
                None => Subchannel {
                    key: self.next_id.fetch_add(1, Ordering::Relaxed),
                    address,
                    conn: Conn::Idle,
                    backoff: self.config.initial_backoff,
                },
            };
            state.subchannels.push(sub);
        }
        state.next %= state.subchannels.len();
        if self.config.policy == LoadBalancingPolicy::RoundRobin {
            // Round robin keeps a connection to every address.
            let now = Instant::now();
            for i in 0..state.subchannels.len() {
                let _ = self.wake_subchannel(&mut state, i, now);
            }
        }
        self.notify();
        drop(state);
        // Connections to addresses that went away close once their calls are done.
        drop(old);
    }

    fn resolution_failed(self: &Arc<Self>, state: &mut State, status: Status) {
        tracing::debug!(target = %self.target, %status, "resolution failed");
        let delay = jitter(state.resolve_backoff);
        state.resolve_backoff =
            crate::backoff::grow(state.resolve_backoff, 1.6, self.config.max_backoff);
        state.resolution = Resolution::Failed {
            retry_at: deadline::saturating_after(delay),
            status: status.clone(),
        };
        if state.subchannels.is_empty() {
            state.last_failure = Some(status);
        }
        self.notify();
    }
}
