//! Unit tests of the frame watch: pings, SETTINGS, GOAWAY as they pass by.

use super::*;
use crate::transport::test_peer::frame;

#[test]
fn frames_are_followed_across_any_split() {
    let mut wire = PREFACE.to_vec();
    wire.extend(frame(0x4, 0, 0, &[0; 6]));
    wire.extend(frame(HEADERS, 4, 1, &[1, 2, 3]));
    wire.extend(frame(PING, 0, 0, &[9; 8]));
    wire.extend(frame(PING, ACK, 0, &[9; 8]));
    wire.extend(frame(DATA, 1, 1, &[7; 300]));
    let mut goaway_payload = vec![0, 0, 0, 1, 0, 0, 0, 0xb];
    goaway_payload.extend_from_slice(b"too_many_pings");
    wire.extend(frame(GOAWAY, 0, 0, &goaway_payload));
    for split in [1, 2, 5, 9, 10, 64, wire.len()] {
        let mut parser = FrameParser::new(true);
        let mut kinds = Vec::new();
        let mut goaways = Vec::new();
        for chunk in wire.chunks(split) {
            parser.feed(
                chunk,
                &mut |f| kinds.push((f.kind, f.flags, f.stream)),
                &mut |p| goaways.push(p),
            );
        }
        assert_eq!(
            kinds,
            vec![
                (0x4, 0, 0),
                (HEADERS, 4, 1),
                (PING, 0, 0),
                (PING, ACK, 0),
                (DATA, 1, 1),
                (GOAWAY, 0, 0)
            ],
            "split {split}"
        );
        assert_eq!(goaways.len(), 1);
        assert_eq!(&goaways[0][8..], b"too_many_pings");
        assert!(parser.at_boundary());
    }
}

#[test]
fn pings_past_the_strikes_violate_the_policy() {
    let watch = Watch::new(Some(PingPolicy {
        min_time: std::time::Duration::from_secs(60),
        permit_without_calls: false,
    }));
    watch.set_open_calls(1);
    for _ in 0..3 {
        watch.ping_received();
        assert!(!watch.violated.load(Ordering::Acquire));
    }
    watch.ping_received();
    assert!(watch.violated.load(Ordering::Acquire));

    // Data sent in between resets the strikes.
    let watch = Watch::new(Some(PingPolicy {
        min_time: std::time::Duration::from_secs(60),
        permit_without_calls: true,
    }));
    for _ in 0..10 {
        watch.lock().reset_strikes = true;
        watch.ping_received();
    }
    assert!(!watch.violated.load(Ordering::Acquire));
}

#[test]
fn a_goaway_frame_encodes_its_debug_data() {
    let frame = goaway_frame(5, ENHANCE_YOUR_CALM, b"too_many_pings");
    let mut parser = FrameParser::new(false);
    let mut got = None;
    parser.feed(&frame, &mut |_| {}, &mut |p| got = Some(p));
    let payload = got.unwrap();
    assert_eq!(&payload[..4], &5u32.to_be_bytes());
    assert_eq!(&payload[4..8], &ENHANCE_YOUR_CALM.to_be_bytes());
    assert_eq!(&payload[8..], b"too_many_pings");
}
