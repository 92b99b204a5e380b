//! `pick_first`: every call goes to the first address, in the resolver's order, that
//! connects. Connections start when a call needs one, one address at a time: the next
//! address is tried only while the ones before it are backing off.

use std::time::Instant;

use super::{Balancer, Pick};
use crate::channel::subchannel::Subchannels;

/// The `pick_first` policy. It keeps no state: the list's order is its preference.
#[derive(Debug, Default)]
pub(super) struct PickFirst;

impl<C> Balancer<C> for PickFirst {
    fn pick(&mut self, subchannels: &mut Subchannels<C>, now: Instant) -> Pick {
        if let Some(i) = subchannels.iter().position(|s| s.ready().is_some()) {
            return Pick::Ready(i);
        }
        // The first address that is not backing off, in order.
        for i in 0..subchannels.len() {
            if subchannels.wake(i, now).connecting() {
                return Pick::Wait;
            }
        }
        Pick::Fail
    }

    /// Nothing connects before a call asks.
    fn resolved(&mut self, _: &mut Subchannels<C>, _: Instant) {}

    /// The next call reconnects.
    fn idle(&mut self, _: &mut Subchannels<C>, _: usize, _: Instant) {}

    /// Reconnects only while no address is ready.
    fn backoff_over(&mut self, subchannels: &mut Subchannels<C>, i: usize, now: Instant) {
        if !subchannels.any_ready() {
            subchannels.wake(i, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::channel::subchannel::test_list;

    fn pick(states: &str) -> (Pick, Vec<usize>) {
        let now = Instant::now();
        let mut subs = test_list(states, now);
        let pick = PickFirst.pick(&mut subs, now);
        (pick, subs.take_dials())
    }

    #[test]
    fn picks_the_first_ready_address_in_order() {
        assert_eq!(pick("rr"), (Pick::Ready(0), vec![]));
        assert_eq!(
            pick("irr"),
            (Pick::Ready(1), vec![]),
            "ready first, not first"
        );
        assert_eq!(pick("fcr"), (Pick::Ready(2), vec![]));
    }

    #[test]
    fn connects_one_address_at_a_time_in_order() {
        assert_eq!(pick("ii"), (Pick::Wait, vec![0]));
        assert_eq!(pick("ci"), (Pick::Wait, vec![]), "waits for the attempt");
        // The first is backing off: the next one is woken.
        assert_eq!(pick("fii"), (Pick::Wait, vec![1]));
        assert_eq!(pick("ffc"), (Pick::Wait, vec![]));
        // Every address backing off: the call fails.
        assert_eq!(pick("ff"), (Pick::Fail, vec![]));
    }

    #[test]
    fn an_address_done_backing_off_is_tried_again_first() {
        let now = Instant::now();
        let mut subs = test_list("fi", now);
        let later = now + Duration::from_secs(10);
        assert_eq!(PickFirst.pick(&mut subs, later), Pick::Wait);
        assert_eq!(subs.take_dials(), [0]);
    }

    #[test]
    fn reconnects_in_the_background_only_without_a_ready_address() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut subs = test_list("ff", now);
        PickFirst.backoff_over(&mut subs, 1, later);
        assert_eq!(subs.take_dials(), [1]);
        let mut subs = test_list("fr", now);
        PickFirst.backoff_over(&mut subs, 0, later);
        assert!(subs.take_dials().is_empty());
    }

    #[test]
    fn connects_nothing_until_a_call_asks() {
        let now = Instant::now();
        let mut subs = test_list("iii", now);
        PickFirst.resolved(&mut subs, now);
        PickFirst.idle(&mut subs, 1, now);
        assert!(subs.take_dials().is_empty());
    }
}
