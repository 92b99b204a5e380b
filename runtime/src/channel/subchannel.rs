//! Subchannels: one per resolved address, each with its connection state and its own
//! reconnection backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::{CallOnConnection, ConnStats, Picked};
use super::resolver::Resolution;
use super::{Address, ChannelInner, LoadBalancingPolicy, State, jitter};
use crate::deadline;
use crate::status::Status;

pub(super) struct Subchannel {
    /// Unique over the channel's life, so late news about a replaced subchannel is
    /// recognised.
    pub(super) key: u64,
    pub(super) address: Address,
    pub(super) conn: Conn,
    pub(super) backoff: Duration,
}

pub(super) enum Conn {
    Idle,
    Connecting,
    Ready {
        send: h2::client::SendRequest<Bytes>,
        id: u64,
        stats: Arc<ConnStats>,
    },
    Failed {
        retry_at: Instant,
    },
}

impl ChannelInner {
    /// A connection attempt to subchannel `i` failed (or its connection ended before it
    /// served anything): back off, and reconnect in the background once the backoff is
    /// over (round robin keeps trying every address; pick first only while it has no
    /// connection).
    pub(super) fn attempt_failed(self: &Arc<Self>, state: &mut State, i: usize, status: Status) {
        let sub = &mut state.subchannels[i];
        let delay = jitter(sub.backoff);
        sub.backoff = crate::backoff::grow(sub.backoff, 1.6, self.config.max_backoff);
        let retry_at = deadline::saturating_after(delay);
        sub.conn = Conn::Failed { retry_at };
        let key = sub.key;
        tracing::debug!(target = %self.target, address = %sub.address, %status, ?delay, "connection failed");
        state.last_failure = Some(status);
        let channel = Arc::downgrade(self);
        self.poller.spawn(async move {
            tokio::time::sleep_until(retry_at.into()).await;
            let Some(channel) = channel.upgrade() else {
                return;
            };
            let mut state = channel.lock();
            let needed = channel.config.policy == LoadBalancingPolicy::RoundRobin
                || !state
                    .subchannels
                    .iter()
                    .any(|s| matches!(s.conn, Conn::Ready { .. }));
            if let Some(i) = state.subchannels.iter().position(|s| s.key == key) {
                if needed && !state.closed {
                    let _ = channel.wake_subchannel(&mut state, i, Instant::now());
                }
            }
        });
    }

    /// Forgets a connection that closed or failed; the next pick reconnects, and the
    /// target is resolved again.
    pub(crate) fn lost(self: &Arc<Self>, (key, id): (u64, u64)) {
        let mut state = self.lock();
        let Some(i) = state.subchannels.iter().position(|s| s.key == key) else {
            return;
        };
        let refused_all = match &state.subchannels[i].conn {
            Conn::Ready {
                id: current, stats, ..
            } if *current == id => stats.refused_all(self.config.initial_backoff),
            _ => return,
        };
        if matches!(state.resolution, Resolution::Resolved { .. }) {
            self.start_resolving(&mut state);
        }
        if refused_all {
            // A server that accepts connections only to send them away at once: a failed
            // attempt, so reconnections follow the backoff instead of a tight loop.
            let status = Status::unavailable(format!(
                "{} sent GOAWAY on a new connection before processing any call",
                self.target
            ));
            self.attempt_failed(&mut state, i, status);
        } else {
            state.subchannels[i].conn = Conn::Idle;
            state.subchannels[i].backoff = self.config.initial_backoff;
            if self.config.policy == LoadBalancingPolicy::RoundRobin {
                let _ = self.wake_subchannel(&mut state, i, Instant::now());
            }
        }
        self.notify();
    }
}

/// A ready connection's sender, when the subchannel has one.
pub(super) fn picked(sub: &Subchannel) -> Option<Picked> {
    match &sub.conn {
        Conn::Ready { send, id, stats } => {
            stats.calls.fetch_add(1, Ordering::AcqRel);
            Some(Picked {
                send: send.clone(),
                id: (sub.key, *id),
                guard: CallOnConnection(stats.clone()),
            })
        }
        _ => None,
    }
}
