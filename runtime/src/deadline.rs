//! Deadlines on the wire: the `grpc-timeout` header.
//!
//! The value is at most eight ASCII digits followed by a unit: `H` hours, `M` minutes,
//! `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds. Deadlines are kept as
//! [`Instant`](std::time::Instant)s (monotonic), never as wall-clock times.

use std::time::Duration;

/// Header carrying the call's remaining time.
pub(crate) const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value the eight digits can carry.
const MAX_DIGITS_VALUE: u128 = 99_999_999;

/// Encodes a timeout with the finest unit whose value fits in eight digits, rounding up so
/// the peer never sees a shorter deadline than ours.
pub(crate) fn encode_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, unit) in units {
        let value = nanos.div_ceil(per_unit);
        if value <= MAX_DIGITS_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX_DIGITS_VALUE}H")
}

/// The instant `timeout` from now; `None` (no deadline) when that is so far ahead that the
/// clock cannot represent it, as with `Duration::MAX`.
pub(crate) fn deadline_after(timeout: Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}

/// The instant `delay` from now, or a century from now when that is further ahead.
pub(crate) fn saturating_after(delay: Duration) -> std::time::Instant {
    saturating_add(std::time::Instant::now(), delay)
}

/// The instant `delay` after `from`, or a century after it when that is further ahead.
pub(crate) fn saturating_add(from: std::time::Instant, delay: Duration) -> std::time::Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    from.checked_add(delay.min(CENTURY))
        .or_else(|| from.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(from)
}

/// Parses a `grpc-timeout` value; `None` when it is malformed.
pub(crate) fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let timeout = match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    };
    Some(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_finest_fitting_unit() {
        assert_eq!(encode_timeout(Duration::from_nanos(5)), "5n");
        assert_eq!(encode_timeout(Duration::from_millis(50)), "50000000n");
        assert_eq!(encode_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(encode_timeout(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
        assert_eq!(encode_timeout(Duration::ZERO), "0n");
        assert_eq!(encode_timeout(Duration::MAX), "99999999H");
    }

    #[test]
    fn encoding_never_shortens_and_round_trips_closely() {
        // A deterministic spread of durations from nanoseconds to years.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = Duration::from_nanos(x >> (x % 40));
            let encoded = encode_timeout(t);
            assert!(encoded.len() <= 9, "{encoded}");
            let back = parse_timeout(encoded.as_bytes()).unwrap();
            assert!(back >= t, "{t:?} -> {encoded} -> {back:?}");
            // A coarser unit is only used once the value in it is at least 100 000, so
            // rounding up to one unit adds at most 0.001 %.
            assert!(
                back - t <= t / 100_000 + Duration::from_nanos(1),
                "{t:?} {back:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "S",
            "1",
            "123456789S",
            "1x",
            "-1S",
            "1.5S",
            " 1S",
            "１S",
        ] {
            assert_eq!(parse_timeout(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(
            parse_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
    }
}
