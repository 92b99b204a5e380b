//! `round_robin`: a connection to every address, kept up in the background; calls rotate
//! over the subchannels that are ready, skipping the others.

use std::time::Instant;

use super::{Balancer, Pick};
use crate::channel::subchannel::Subchannels;

/// The `round_robin` policy.
#[derive(Debug, Default)]
pub(super) struct RoundRobin {
    /// Where the next pick starts looking.
    next: usize,
}

impl<C> Balancer<C> for RoundRobin {
    fn pick(&mut self, subchannels: &mut Subchannels<C>, now: Instant) -> Pick {
        let n = subchannels.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if subchannels.get(i).is_some_and(|s| s.ready().is_some()) {
                self.next = (i + 1) % n;
                return Pick::Ready(i);
            }
        }
        // Nothing ready: connect everything that may be.
        let mut connecting = false;
        for i in 0..n {
            connecting |= subchannels.wake(i, now).connecting();
        }
        if connecting { Pick::Wait } else { Pick::Fail }
    }

    /// Connects to every address.
    fn resolved(&mut self, subchannels: &mut Subchannels<C>, now: Instant) {
        self.next = self.next.checked_rem(subchannels.len()).unwrap_or(0);
        for i in 0..subchannels.len() {
            subchannels.wake(i, now);
        }
    }

    /// Reconnects at once.
    fn idle(&mut self, subchannels: &mut Subchannels<C>, i: usize, now: Instant) {
        subchannels.wake(i, now);
    }

    /// Reconnects at once.
    fn backoff_over(&mut self, subchannels: &mut Subchannels<C>, i: usize, now: Instant) {
        subchannels.wake(i, now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::channel::subchannel::test_list;

    /// The subchannels (their ready connections) that `n` picks go to.
    fn picks(balancer: &mut RoundRobin, subs: &mut Subchannels<usize>, n: usize) -> Vec<usize> {
        let now = Instant::now();
        (0..n)
            .map(|_| match balancer.pick(subs, now) {
                Pick::Ready(i) => *subs.get(i).unwrap().ready().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn rotates_over_the_ready_subchannels_and_skips_the_others() {
        let now = Instant::now();
        let mut subs = test_list("rrr", now);
        let mut balancer = RoundRobin::default();
        assert_eq!(picks(&mut balancer, &mut subs, 7), [0, 1, 2, 0, 1, 2, 0]);
        let mut subs = test_list("rifcr", now);
        let mut balancer = RoundRobin::default();
        assert_eq!(picks(&mut balancer, &mut subs, 5), [0, 4, 0, 4, 0]);
        assert!(
            subs.take_dials().is_empty(),
            "nothing woken while one is ready"
        );
    }

    #[test]
    fn with_nothing_ready_connects_every_address_that_may() {
        let now = Instant::now();
        let mut subs = test_list("ifci", now);
        assert_eq!(RoundRobin::default().pick(&mut subs, now), Pick::Wait);
        assert_eq!(subs.take_dials(), [0, 3]);
        let mut subs = test_list("ff", now);
        assert_eq!(RoundRobin::default().pick(&mut subs, now), Pick::Fail);
        let later = now + Duration::from_secs(10);
        assert_eq!(RoundRobin::default().pick(&mut subs, later), Pick::Wait);
        assert_eq!(subs.take_dials(), [0, 1]);
    }

    #[test]
    fn keeps_every_address_connected() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut balancer = RoundRobin { next: 7 };
        let mut subs = test_list("ircf", now);
        balancer.resolved(&mut subs, now);
        assert_eq!(subs.take_dials(), [0]);
        assert!(balancer.next < 4, "the rotation stays in the list");
        balancer.backoff_over(&mut subs, 3, later);
        assert_eq!(subs.take_dials(), [3]);
        let mut subs = test_list("ii", now);
        balancer.idle(&mut subs, 1, now);
        assert_eq!(subs.take_dials(), [1]);
    }
}
