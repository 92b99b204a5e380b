//! A short soak (the full one is `rsgrpc-bench soak`, see README): unary calls and
//! streams with cancellations, both handler flavours, through one channel and through
//! short-lived channels. No failures, memory flat after warm-up, and threads, file
//! descriptors and live calls and connections back to where they were.

use rsgrpc_tests::soak::{self, Size};

#[test]
fn a_short_soak_fails_nothing_and_leaks_nothing() {
    let _leaks = rsgrpc_tests::leak::check();
    let size = Size {
        unary: 40_000,
        streams: 2_000,
        channels: 200,
        threads: 4,
    };
    let report = soak::run(size, false);
    eprintln!("{report}");
    assert_eq!(report.failures, 0, "{report}");
    assert_eq!(report.channels, size.channels, "{report}");
    assert_eq!(report.streams, size.streams + size.channels, "{report}");
    assert!(report.cancelled >= size.streams / 4, "{report}");
    let per_channel = (size.unary / 10 / size.channels).max(1);
    assert_eq!(
        report.unary,
        size.unary - size.unary / 10 + per_channel * size.channels,
        "{report}"
    );
    let leaks = report.before.leaks_in(&report.after);
    assert!(leaks.is_empty(), "leaked: {leaks:?}\n{report}");
    assert!(report.rss_drift() < 10_000_000, "{report}");
}
