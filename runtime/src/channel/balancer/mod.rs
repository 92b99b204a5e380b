//! Load balancing: which subchannel a call goes to, and which ones connect.

use std::sync::Arc;
use std::time::Instant;

use super::connection::Picked;
use super::resolver::Resolution;
use super::subchannel::{Conn, picked};
use super::{ChannelInner, State};
use crate::status::Status;

/// How calls are spread over a target's addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalancingPolicy {
    /// All calls on the first address, in the resolver's order, that connects (default).
    #[default]
    PickFirst,
    /// A connection to every address; calls rotate over those that are ready.
    RoundRobin,
}

pub(super) enum Pick {
    Ready(Picked),
    Wait,
    Fail(Status),
}

impl ChannelInner {
    /// Picks a ready connection by the policy, starting resolution and connections as
    /// needed.
    pub(super) fn pick(self: &Arc<Self>, state: &mut State) -> Pick {
        if state.closed {
            return Pick::Fail(self.closed_status());
        }
        let now = Instant::now();
        match &state.resolution {
            Resolution::NotStarted => self.start_resolving(state),
            Resolution::Resolved { at }
                if now.saturating_duration_since(*at) >= self.config.resolve_interval =>
            {
                self.start_resolving(state);
            }
            Resolution::Failed { retry_at, status } => {
                if now >= *retry_at {
                    self.start_resolving(state);
                } else if state.subchannels.is_empty() {
                    return Pick::Fail(status.clone());
                }
            }
            Resolution::Resolving | Resolution::Resolved { .. } => {}
        }
        if state.subchannels.is_empty() {
            return Pick::Wait;
        }
        match self.config.policy {
            LoadBalancingPolicy::RoundRobin => {
                let n = state.subchannels.len();
                for step in 0..n {
                    let i = (state.next + step) % n;
                    if let Some(picked) = picked(&state.subchannels[i]) {
                        state.next = (i + 1) % n;
                        return Pick::Ready(picked);
                    }
                }
                // Nothing ready: connect everything that may be.
                let mut connecting = false;
                for i in 0..n {
                    connecting |= self.wake_subchannel(state, i, now);
                }
                if connecting {
                    Pick::Wait
                } else {
                    Pick::Fail(self.failure(state))
                }
            }
            LoadBalancingPolicy::PickFirst => {
                if let Some(picked) = state.subchannels.iter().find_map(picked) {
                    return Pick::Ready(picked);
                }
                // The first address that is not backing off, in order.
                for i in 0..state.subchannels.len() {
                    if self.wake_subchannel(state, i, now) {
                        return Pick::Wait;
                    }
                }
                Pick::Fail(self.failure(state))
            }
        }
    }

    /// Starts connecting subchannel `i` if it is idle or its backoff is over; returns
    /// whether it is connecting now.
    pub(super) fn wake_subchannel(
        self: &Arc<Self>,
        state: &mut State,
        i: usize,
        now: Instant,
    ) -> bool {
        match state.subchannels[i].conn {
            Conn::Connecting => true,
            Conn::Ready { .. } => false,
            Conn::Failed { retry_at } if now < retry_at => false,
            Conn::Idle | Conn::Failed { .. } => {
                self.start_connecting(state, i);
                true
            }
        }
    }

    /// Every address failed: resolve again (the servers may have moved), and report why.
    fn failure(self: &Arc<Self>, state: &mut State) -> Status {
        if matches!(state.resolution, Resolution::Resolved { .. }) {
            self.start_resolving(state);
        }
        state.last_failure.clone().unwrap_or_else(|| {
            Status::unavailable(format!("no connection to {} is ready", self.target))
        })
    }
}
