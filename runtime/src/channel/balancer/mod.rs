//! Load balancing, split as grpc-go splits it: a policy (a [`Balancer`]) decides which
//! subchannels connect and which ready one takes each call; the channel owns the
//! subchannels, resolves, dials and drives connections.
//!
//! A policy is sans-IO: it sees the subchannel list and the time, and asks for a
//! connection by waking a subchannel ([`Subchannels::wake`]); the channel dials what was
//! woken once the policy returns. Its methods run under the channel's lock, so picking
//! needs no snapshot of the list (grpc-go's `Picker` is the [`pick`](Balancer::pick)
//! method here).
//!
//! A new policy is a new file in this directory: a type implementing [`Balancer`], a
//! variant of [`LoadBalancingPolicy`] and its arm in [`build`] (and its name in
//! `service_config.rs`).

mod pick_first;
mod round_robin;

use std::time::Instant;

use super::ConnectivityState;
use super::subchannel::Subchannels;

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

/// What a policy decided for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pick {
    /// The call goes to the subchannel at this index, which is ready.
    Ready(usize),
    /// Nothing is ready, but something is connecting: the call waits.
    Wait,
    /// Nothing is ready or connecting (every address is backing off): the call fails,
    /// unless it waits for ready.
    Fail,
}

/// A load-balancing policy over a channel's subchannels, whose ready ones hold a `C`.
///
/// A call never goes to a subchannel that is not ready while another is; beyond that the
/// policy chooses. The channel calls these methods with its lock held, and dials the
/// subchannels they woke once they return.
pub(super) trait Balancer<C>: Send {
    /// Chooses the ready subchannel for a call. When none is ready, wakes those the policy
    /// wants connected, and says whether the call waits or fails.
    fn pick(&mut self, subchannels: &mut Subchannels<C>, now: Instant) -> Pick;

    /// A resolution replaced the list; subchannels of addresses that stayed kept their
    /// state. The list is not empty.
    fn resolved(&mut self, subchannels: &mut Subchannels<C>, now: Instant);

    /// Subchannel `i` lost a connection that had been of use, and is idle again.
    fn idle(&mut self, subchannels: &mut Subchannels<C>, i: usize, now: Instant);

    /// Subchannel `i` failed, and its backoff is over; no call asked for it.
    fn backoff_over(&mut self, subchannels: &mut Subchannels<C>, i: usize, now: Instant);

    /// The channel's connectivity: by default gRPC's sum of the subchannels' (see
    /// [`aggregate`]).
    fn connectivity(&self, subchannels: &Subchannels<C>) -> ConnectivityState {
        aggregate(subchannels)
    }
}

/// The balancer for a policy.
pub(super) fn build<C>(policy: LoadBalancingPolicy) -> Box<dyn Balancer<C>> {
    match policy {
        LoadBalancingPolicy::PickFirst => Box::new(pick_first::PickFirst),
        LoadBalancingPolicy::RoundRobin => Box::new(round_robin::RoundRobin::default()),
    }
}

/// The state of a channel with these subchannels: ready if any is, else connecting if any
/// is, else in transient failure if any is, else idle.
pub(super) fn aggregate<C>(subchannels: &Subchannels<C>) -> ConnectivityState {
    let mut any_connecting = false;
    let mut any_failed = false;
    for sub in subchannels.iter() {
        match sub.connectivity() {
            ConnectivityState::Ready => return ConnectivityState::Ready,
            ConnectivityState::Connecting => any_connecting = true,
            ConnectivityState::TransientFailure => any_failed = true,
            ConnectivityState::Idle | ConnectivityState::Shutdown => {}
        }
    }
    if any_connecting {
        ConnectivityState::Connecting
    } else if any_failed {
        ConnectivityState::TransientFailure
    } else {
        ConnectivityState::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::super::subchannel::test_list;
    use super::*;

    #[test]
    fn the_channel_state_sums_the_subchannels_up() {
        let now = Instant::now();
        for (states, expected) in [
            ("", ConnectivityState::Idle),
            ("ii", ConnectivityState::Idle),
            ("if", ConnectivityState::TransientFailure),
            ("fcf", ConnectivityState::Connecting),
            ("fcr", ConnectivityState::Ready),
            ("rii", ConnectivityState::Ready),
        ] {
            let subs = test_list(states, now);
            assert_eq!(aggregate(&subs), expected, "{states}");
            for policy in [
                LoadBalancingPolicy::PickFirst,
                LoadBalancingPolicy::RoundRobin,
            ] {
                assert_eq!(build(policy).connectivity(&subs), expected, "{states}");
            }
        }
    }
}
