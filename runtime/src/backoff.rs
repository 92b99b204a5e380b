//! Backoff and jitter arithmetic, in one place and saturating at the extremes: a delay
//! of `Duration::MAX` (a natural way to say "never"), a factor of `1e300` from a service
//! config or a NaN never panic, they give `Duration::MAX` or zero.

use std::time::Duration;

/// A number in `[0, 1)`.
///
/// Every `RandomState` is keyed afresh (random keys per thread, advanced on each
/// `RandomState::new`), so hashing a counter with a new one gives a new value each call.
/// Enough to spread delays apart; not for anything that must be unpredictable.
pub(crate) fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `delay × factor`: `Duration::MAX` when the product is too large (or infinite), zero
/// when the factor is zero, negative or NaN.
pub(crate) fn scale(delay: Duration, factor: f64) -> Duration {
    if factor.is_nan() || factor <= 0.0 {
        return Duration::ZERO;
    }
    let secs = delay.as_secs_f64() * factor;
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `delay` spread by `±spread` (a fraction: 0.2 for ±20 %), so that peers that started
/// or failed together do not act together again.
pub(crate) fn jitter(delay: Duration, spread: f64) -> Duration {
    scale(delay, 1.0 - spread + 2.0 * spread * unit_random())
}

/// A delay drawn uniformly from `[0, delay)`, as gRPC's retry backoff.
pub(crate) fn uniform(delay: Duration) -> Duration {
    scale(delay, unit_random())
}

/// The next backoff after `current`: `current × multiplier`, at most `max`.
pub(crate) fn grow(current: Duration, multiplier: f64, max: Duration) -> Duration {
    scale(current, multiplier).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_random_stays_in_range_and_varies() {
        let values: Vec<f64> = (0..1000).map(|_| unit_random()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let distinct: std::collections::HashSet<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 990, "{} distinct values", distinct.len());
        // Spread over the range, not bunched: both halves are well used.
        let low = values.iter().filter(|v| **v < 0.5).count();
        assert!((300..700).contains(&low), "{low} of 1000 below 0.5");
    }

    #[test]
    fn scaling_saturates_instead_of_panicking() {
        assert_eq!(scale(Duration::MAX, 1.6), Duration::MAX);
        assert_eq!(scale(Duration::MAX, 0.9), Duration::MAX.mul_f64(0.9));
        assert_eq!(scale(Duration::from_secs(1), 1e300), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(1), f64::INFINITY), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(1), f64::NAN), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(1), -2.0), Duration::ZERO);
        assert_eq!(scale(Duration::ZERO, 1e300), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(2), 1.5), Duration::from_secs(3));
        assert_eq!(
            grow(Duration::from_secs(100), 1e300, Duration::from_secs(120)),
            Duration::from_secs(120)
        );
        assert_eq!(grow(Duration::MAX, 2.0, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(10), 0.2);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
            let u = uniform(Duration::from_secs(10));
            assert!(u < Duration::from_secs(10), "{u:?}");
        }
        assert!(jitter(Duration::MAX, 0.1) >= Duration::MAX.mul_f64(0.89));
        assert!(uniform(Duration::MAX) <= Duration::MAX);
    }
}
