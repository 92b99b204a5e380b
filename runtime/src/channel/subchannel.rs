//! Subchannels: one per resolved address, each a small state machine with its own
//! reconnection backoff.
//!
//! Nothing here does I/O or reads the clock. The channel applies these transitions under
//! its lock, passing the time, and then does what they ask: dial the subchannels that
//! started connecting ([`Subchannels::take_dials`]), sleep until a backoff is over.
//!
//! ```text
//!              wake              connected
//!    Idle ─────────────▶ Connecting ────────▶ Ready(C)
//!     ▲                    │   ▲                │  │
//!     │             failed │   │ wake, once     │  │ lost (refused all: sent away by
//!     │                    ▼   │ retry_at is    │  │       GOAWAY(0) before any answer)
//!     │            TransientFailure { retry_at } ◀──┘
//!     │                                         │
//!     └──────── lost (backoff reset) ───────────┘
//! ```
//!
//! `C` is what a ready subchannel holds: the connection's sender in the channel, a plain
//! value in tests.

use std::time::{Duration, Instant};

use super::{Address, ConnectivityState};
use crate::deadline;

/// Each failed attempt multiplies the next delay by this (gRPC's connection backoff).
const MULTIPLIER: f64 = 1.6;
/// Delays are spread by ±20 %, so clients that failed together do not retry together.
const JITTER: f64 = 0.2;

/// gRPC's connection backoff: the first delay, then ×1.6 per failure with ±20 % jitter,
/// at most `max`; reset once a connection has been of use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay before the next attempt, jittered; the one after that grows.
    pub(super) fn next_delay(&mut self) -> Duration {
        let delay = crate::backoff::jitter(self.current, JITTER);
        self.current = crate::backoff::grow(self.current, MULTIPLIER, self.max);
        delay
    }

    /// Back to the first delay.
    pub(super) fn reset(&mut self) {
        self.current = self.initial;
    }
}

/// Where a subchannel's connection is.
#[derive(Debug)]
enum SubchannelState<C> {
    /// Not connected, and not trying to.
    Idle,
    /// An attempt is under way.
    Connecting,
    /// Connected, and ready for calls.
    Ready(C),
    /// The last attempt failed; the next waits until `retry_at`.
    TransientFailure { retry_at: Instant },
}

/// What waking a subchannel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// It was idle, or done backing off: it is connecting now, and the channel dials.
    Started,
    /// It was connecting already.
    Connecting,
    /// It is ready.
    Ready,
    /// It is backing off after a failure.
    BackingOff,
}

impl Wake {
    /// Whether the subchannel is connecting now.
    pub(super) fn connecting(self) -> bool {
        matches!(self, Wake::Started | Wake::Connecting)
    }
}

/// One address of a target and its connection.
#[derive(Debug)]
pub(super) struct Subchannel<C> {
    /// Unique over the channel's life, so late news about a replaced subchannel is
    /// recognised.
    pub(super) key: u64,
    pub(super) address: Address,
    state: SubchannelState<C>,
    backoff: Backoff,
}

impl<C> Subchannel<C> {
    /// An idle subchannel.
    pub(super) fn new(key: u64, address: Address, backoff: Backoff) -> Subchannel<C> {
        Subchannel {
            key,
            address,
            state: SubchannelState::Idle,
            backoff,
        }
    }

    /// Its connection, when it is ready.
    pub(super) fn ready(&self) -> Option<&C> {
        match &self.state {
            SubchannelState::Ready(connection) => Some(connection),
            _ => None,
        }
    }

    /// Its state as gRPC names a channel's.
    pub(super) fn connectivity(&self) -> ConnectivityState {
        match self.state {
            SubchannelState::Idle => ConnectivityState::Idle,
            SubchannelState::Connecting => ConnectivityState::Connecting,
            SubchannelState::Ready(_) => ConnectivityState::Ready,
            SubchannelState::TransientFailure { .. } => ConnectivityState::TransientFailure,
        }
    }

    /// When a backing-off subchannel may be tried again.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        match self.state {
            SubchannelState::TransientFailure { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// Starts connecting if idle or done backing off (see [`Subchannels::wake`]).
    fn wake(&mut self, now: Instant) -> Wake {
        match self.state {
            SubchannelState::Connecting => Wake::Connecting,
            SubchannelState::Ready(_) => Wake::Ready,
            SubchannelState::TransientFailure { retry_at } if now < retry_at => Wake::BackingOff,
            SubchannelState::Idle | SubchannelState::TransientFailure { .. } => {
                self.state = SubchannelState::Connecting;
                Wake::Started
            }
        }
    }

    /// The attempt succeeded. The backoff stays as it is until the connection has been
    /// of use (see [`lost`](Self::lost)): a server that accepts and at once sends the
    /// connection away must not be reconnected to in a tight loop.
    pub(super) fn connected(&mut self, connection: C) {
        self.state = SubchannelState::Ready(connection);
    }

    /// The attempt failed: back off. Returns the delay before the next attempt.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        let delay = self.backoff.next_delay();
        self.state = SubchannelState::TransientFailure {
            retry_at: deadline::saturating_add(now, delay),
        };
        delay
    }

    /// The connection ended. One that was refused all along (see [`refused_all`]) counts
    /// as a failed attempt and backs off (the delay is returned); any other leaves the
    /// subchannel idle with its backoff reset.
    pub(super) fn lost(&mut self, refused_all: bool, now: Instant) -> Option<Duration> {
        if refused_all {
            return Some(self.failed(now));
        }
        self.state = SubchannelState::Idle;
        self.backoff.reset();
        None
    }
}

/// Whether a connection that ended was sent away before it was of any use: a GOAWAY said
/// no stream of it was processed (last-stream-id 0), no call on it got a response, and it
/// lived less than `within`. That is what a server does that accepts only to refuse, and
/// it counts as a failed attempt. A connection that just drops is not judged: it may have
/// been a network fault under calls the server was serving.
pub(super) fn refused_all(
    served: bool,
    age: Duration,
    goaway_last_stream: Option<u32>,
    within: Duration,
) -> bool {
    !served && age < within && goaway_last_stream == Some(0)
}

/// A channel's subchannels, in the resolver's order, and the dials their transitions
/// asked for.
#[derive(Debug)]
pub(super) struct Subchannels<C> {
    list: Vec<Subchannel<C>>,
    /// Subchannels that started connecting, by index, for the channel to dial.
    dials: Vec<usize>,
}

impl<C> Default for Subchannels<C> {
    fn default() -> Self {
        Subchannels {
            list: Vec::new(),
            dials: Vec::new(),
        }
    }
}

impl<C> Subchannels<C> {
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Subchannel<C>> {
        self.list.iter()
    }

    pub(super) fn get(&self, i: usize) -> Option<&Subchannel<C>> {
        self.list.get(i)
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut Subchannel<C>> {
        self.list.get_mut(i)
    }

    /// The index of the subchannel with this key, if it is still there.
    pub(super) fn position(&self, key: u64) -> Option<usize> {
        self.list.iter().position(|s| s.key == key)
    }

    /// Whether any subchannel is ready.
    pub(super) fn any_ready(&self) -> bool {
        self.list.iter().any(|s| s.ready().is_some())
    }

    /// Starts connecting subchannel `i` if it is idle or done backing off; the channel
    /// dials it after the policy is done (see [`take_dials`](Self::take_dials)).
    pub(super) fn wake(&mut self, i: usize, now: Instant) -> Wake {
        let Some(sub) = self.list.get_mut(i) else {
            return Wake::BackingOff;
        };
        let wake = sub.wake(now);
        if wake == Wake::Started {
            self.dials.push(i);
        }
        wake
    }

    /// The subchannels that started connecting since the last call, by index.
    pub(super) fn take_dials(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dials)
    }

    /// The earliest time a backing-off subchannel may be tried again.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.list.iter().filter_map(Subchannel::retry_at).min()
    }

    /// Replaces the list with a new resolution's addresses, in their order: an address
    /// that stays keeps its subchannel (its connection, state and backoff), a new one gets
    /// an idle subchannel from `new`. Returns the subchannels of the addresses that went
    /// away; dropping them closes their connections once their calls are done.
    pub(super) fn update(
        &mut self,
        addresses: Vec<Address>,
        mut new: impl FnMut(Address) -> Subchannel<C>,
    ) -> Vec<Subchannel<C>> {
        let mut old = std::mem::take(&mut self.list);
        for address in addresses {
            let sub = match old.iter().position(|s| s.address == address) {
                Some(i) => old.swap_remove(i),
                None => new(address),
            };
            self.list.push(sub);
        }
        self.dials.clear();
        old
    }
}

/// Subchannels in the given states, for the policies' tests: `i` idle, `c` connecting,
/// `r` ready (holding its index), `f` backing off until `now + 1 s` or so, over by
/// `now + 10 s`.
#[cfg(test)]
pub(super) fn test_list(states: &str, now: Instant) -> Subchannels<usize> {
    let mut subs = Subchannels::default();
    let addresses = (0..states.len())
        .map(|i| Address::Tcp(([127, 0, 0, 1], 1000 + i as u16).into()))
        .collect();
    let mut key = 0;
    subs.update(addresses, |address| {
        key += 1;
        Subchannel::new(key, address, test_backoff())
    });
    for (i, state) in states.chars().enumerate() {
        match state {
            'i' => {}
            'c' => assert_eq!(subs.wake(i, now), Wake::Started),
            'r' => {
                subs.wake(i, now);
                subs.list[i].connected(i);
            }
            'f' => {
                subs.wake(i, now);
                subs.list[i].failed(now);
            }
            other => panic!("unknown state {other:?}"),
        }
    }
    subs.take_dials();
    subs
}

/// gRPC's default backoff: 1 s, at most 120 s.
#[cfg(test)]
pub(super) fn test_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(delay: Duration, around: Duration) -> bool {
        delay >= around.mul_f64(1.0 - JITTER) && delay <= around.mul_f64(1.0 + JITTER)
    }

    fn subchannel() -> Subchannel<&'static str> {
        Subchannel::new(1, Address::Tcp(([127, 0, 0, 1], 1).into()), test_backoff())
    }

    #[test]
    fn backoff_grows_by_1_6_up_to_its_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        for expected in [1.0, 1.6, 2.56, 4.096, 5.0, 5.0] {
            let delay = backoff.next_delay();
            assert!(
                within(delay, Duration::from_secs_f64(expected)),
                "{delay:?}"
            );
        }
        backoff.reset();
        assert_eq!(
            backoff,
            Backoff::new(Duration::from_secs(1), Duration::from_secs(5))
        );
        // Saturates rather than overflowing.
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        huge.next_delay();
        assert!(huge.next_delay() >= Duration::MAX.mul_f64(0.79));
    }

    #[test]
    fn a_subchannel_connects_when_woken_and_is_ready_once_connected() {
        let now = Instant::now();
        let mut sub = subchannel();
        assert_eq!(sub.connectivity(), ConnectivityState::Idle);
        assert_eq!(sub.wake(now), Wake::Started);
        assert_eq!(sub.connectivity(), ConnectivityState::Connecting);
        assert_eq!(sub.wake(now), Wake::Connecting, "one attempt at a time");
        sub.connected("conn");
        assert_eq!(sub.ready(), Some(&"conn"));
        assert_eq!(sub.wake(now), Wake::Ready);
        assert_eq!(sub.connectivity(), ConnectivityState::Ready);
    }

    #[test]
    fn a_failed_attempt_backs_off_longer_each_time() {
        let now = Instant::now();
        let mut sub = subchannel();
        sub.wake(now);
        let first = sub.failed(now);
        assert!(within(first, Duration::from_secs(1)), "{first:?}");
        assert_eq!(sub.retry_at(), Some(now + first));
        assert_eq!(sub.connectivity(), ConnectivityState::TransientFailure);
        // Not before the backoff is over.
        assert_eq!(sub.wake(now + first / 2), Wake::BackingOff);
        assert_eq!(sub.wake(now + first), Wake::Started);
        let second = sub.failed(now);
        assert!(within(second, Duration::from_secs_f64(1.6)), "{second:?}");
    }

    #[test]
    fn a_lost_connection_leaves_the_subchannel_idle_with_its_backoff_reset() {
        let now = Instant::now();
        let mut sub = subchannel();
        sub.wake(now);
        sub.failed(now);
        sub.wake(now + Duration::from_secs(2));
        sub.failed(now);
        sub.wake(now + Duration::from_secs(5));
        sub.connected("conn");
        assert_eq!(sub.lost(false, now), None);
        assert_eq!(sub.connectivity(), ConnectivityState::Idle);
        assert_eq!(sub.backoff, test_backoff());
    }

    #[test]
    fn a_connection_refused_all_along_counts_as_a_failed_attempt() {
        let now = Instant::now();
        let mut sub = subchannel();
        sub.wake(now);
        sub.connected("conn");
        let delay = sub.lost(true, now).expect("backs off");
        assert!(within(delay, Duration::from_secs(1)), "{delay:?}");
        assert_eq!(sub.connectivity(), ConnectivityState::TransientFailure);
        // The next refusal waits longer: no tight loop against such a server.
        sub.wake(now + delay);
        sub.connected("again");
        let next = sub.lost(true, now).expect("backs off");
        assert!(within(next, Duration::from_secs_f64(1.6)), "{next:?}");
    }

    #[test]
    fn refused_all_means_goaway_0_young_and_unanswered() {
        let second = Duration::from_secs(1);
        let young = Duration::from_millis(10);
        assert!(refused_all(false, young, Some(0), second));
        // Answered a call, lived long, processed a stream, or just dropped: not refused.
        assert!(!refused_all(true, young, Some(0), second));
        assert!(!refused_all(false, second, Some(0), second));
        assert!(!refused_all(false, young, Some(1), second));
        assert!(!refused_all(false, young, None, second));
    }

    #[test]
    fn waking_records_the_dials_to_make() {
        let now = Instant::now();
        let mut subs = test_list("ifcr", now);
        assert!(subs.take_dials().is_empty());
        let woken: Vec<Wake> = (0..4).map(|i| subs.wake(i, now)).collect();
        assert_eq!(
            woken,
            [
                Wake::Started,
                Wake::BackingOff,
                Wake::Connecting,
                Wake::Ready
            ]
        );
        assert_eq!(subs.wake(9, now), Wake::BackingOff, "out of range");
        assert_eq!(subs.take_dials(), [0]);
        assert!(subs.take_dials().is_empty(), "taken once");
        let later = now + Duration::from_secs(10);
        assert_eq!(subs.next_retry(), subs.get(1).unwrap().retry_at());
        assert_eq!(subs.wake(1, later), Wake::Started);
        assert_eq!(subs.take_dials(), [1]);
        assert_eq!(subs.next_retry(), None);
    }

    #[test]
    fn re_resolution_keeps_the_subchannels_of_addresses_that_stay() {
        let now = Instant::now();
        let mut subs = test_list("rfi", now);
        let address = |i: usize| subs.get(i).unwrap().address.clone();
        let (kept_ready, kept_failed, gone) = (address(0), address(1), address(2));
        let new = Address::Unix("/tmp/new.sock".into());
        let mut made = Vec::new();
        let removed = subs.update(
            vec![new.clone(), kept_failed.clone(), kept_ready.clone()],
            |address| {
                made.push(address.clone());
                Subchannel::new(100, address, test_backoff())
            },
        );
        assert_eq!(made.len(), 1);
        assert_eq!(made[0], new);
        assert_eq!(
            removed.iter().map(|s| &s.address).collect::<Vec<_>>(),
            [&gone]
        );
        let order: Vec<_> = subs.iter().map(|s| (s.key, s.address.clone())).collect();
        assert_eq!(order, [(100, new), (2, kept_failed), (1, kept_ready)]);
        assert_eq!(subs.get(0).unwrap().connectivity(), ConnectivityState::Idle);
        assert!(
            subs.get(1).unwrap().retry_at().is_some(),
            "still backing off"
        );
        assert_eq!(subs.get(2).unwrap().ready(), Some(&0), "same connection");
    }
}
