//! Protocol abuse: HTTP/2 that a hostile client writes by hand, against servers of both
//! flavours (blocking and async handlers). Each attack gets the answer the runtime's
//! design notes document (a GOAWAY with its code, a stream error, or a gRPC status),
//! the server does not crash, the process's memory grows by less than a stated bound,
//! and a well-behaved client on another connection keeps getting answers throughout.
//!
//! Every test runs under the leak check (`rsgrpc_tests::leak`): threads, file
//! descriptors and live calls and connections come back to their baseline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prost::Message;
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerBuilder, ServerHandle};
use rsgrpc::{Channel, Request, Response, Runtime, Status};
use rsgrpc_tests::leak::{self, rss};
use rsgrpc_tests::raw::{self, RawConn, Transcript, h2_call};
use rsgrpc_tests::{BIDI, EchoResponse, Probe, UNARY, async_echo, blocking_echo, path, req};

const SVC: &str = "test.Echo";
const MIB: usize = 1 << 20;
const WAIT: Duration = Duration::from_secs(20);

use rsgrpc_tests::{FLAVOURS, Flavour};

/// A client on its own connection that keeps making calls while an attack runs, and
/// must see every one of them succeed.
struct Healthy {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<Status>>>,
    client: Client,
}

impl Healthy {
    /// Starts calling; returns once the first call succeeded.
    fn start(client: Client) -> Healthy {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, ok, client) = (stop.clone(), ok.clone(), client.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                // Bounded: at most this many calls, and the test stops it sooner.
                for i in 0..100_000 {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match healthy_call(&client, i) {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(status) => failures.push(status),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                failures
            })
        };
        let healthy = Healthy {
            stop,
            ok,
            thread: Some(thread),
            client,
        };
        let ok = &healthy.ok;
        assert!(
            leak::eventually_within(WAIT, || ok.load(Ordering::Acquire) > 0),
            "the healthy client never got an answer"
        );
        healthy
    }

    /// Stops calling and checks that every call succeeded, and that one more does.
    fn finish(mut self, attack: &str) {
        let before = self.ok.load(Ordering::Acquire);
        self.stop.store(true, Ordering::Release);
        let failures = self.thread.take().unwrap().join().unwrap();
        assert!(
            failures.is_empty(),
            "{attack}: the healthy connection failed {} calls: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        healthy_call(&self.client, 0).unwrap_or_else(|s| panic!("{attack}: after: {s:?}"));
        assert!(before > 0, "{attack}: no healthy call completed");
    }
}

fn healthy_call(client: &Client, i: usize) -> Result<(), Status> {
    let message = format!("healthy {i}");
    let mut request = Request::new(req(&message));
    request.set_timeout(WAIT);
    let reply: Response<EchoResponse> = client.blocking_unary(path(SVC, UNARY), request)?;
    if reply.get_ref().message != message {
        return Err(Status::internal(format!("wrong echo: {reply:?}")));
    }
    Ok(())
}

/// One attack's set-up: a runtime of its own, a server of one flavour, a healthy client,
/// and the memory before.
struct Arena {
    healthy: Option<Healthy>,
    server: Option<ServerHandle>,
    rt: Option<Runtime>,
    rss_before: usize,
    flavour: Flavour,
}

impl Arena {
    fn new(flavour: Flavour, configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Arena {
        let rt = Runtime::builder()
            .thread_name_prefix("abuse")
            .build()
            .unwrap();
        let probe = Probe::new();
        let service = match flavour {
            Flavour::Blocking => blocking_echo(SVC, probe),
            Flavour::Async => async_echo(SVC, probe),
        };
        let server = configure(Server::builder().runtime(&rt).add_service(service))
            .bind("127.0.0.1:0")
            .unwrap();
        let channel = Channel::builder(format!("http://{}", server.local_addr()))
            .runtime(&rt)
            .connect_lazy()
            .unwrap();
        let healthy = Healthy::start(Client::new(channel));
        Arena {
            healthy: Some(healthy),
            server: Some(server),
            rt: Some(rt),
            rss_before: rss(),
            flavour,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    fn server(&self) -> &ServerHandle {
        self.server.as_ref().unwrap()
    }

    /// Checks the healthy client, the memory bound and that the server's calls and
    /// connections (the healthy one aside) are gone; then stops everything.
    fn finish(mut self, attack: &str, rss_bound: usize) {
        let attack = format!("{attack} ({:?} handlers)", self.flavour);
        let grown = rss().saturating_sub(self.rss_before);
        assert!(
            grown < rss_bound,
            "{attack}: memory grew by {} MiB (bound {} MiB)",
            grown / MIB,
            rss_bound / MIB
        );
        self.healthy.take().unwrap().finish(&attack);
        let server = self.server.as_ref().unwrap();
        assert!(
            leak::eventually_within(WAIT, || server.active_calls() == 0
                && server.open_connections() <= 1),
            "{attack}: {} calls and {} connections left",
            server.active_calls(),
            server.open_connections()
        );
        drop(self.server.take());
        drop(self.rt.take());
    }
}

fn goaway_of(t: &Transcript) -> (u32, String) {
    let g = t
        .goaways
        .last()
        .unwrap_or_else(|| panic!("no GOAWAY; transcript: {t:?}"));
    (g.code, String::from_utf8_lossy(&g.debug).into_owned())
}

fn unary_block() -> Vec<u8> {
    raw::request_block(&format!("/{SVC}/{UNARY}"), &[])
}

fn encoded(message: &str) -> Vec<u8> {
    raw::grpc_message(false, &req(message).encode_to_vec())
}

// ---------------------------------------------------------------------------------------
// Frame floods: the connection is told ENHANCE_YOUR_CALM and closed.

#[test]
fn rapid_reset_is_told_to_calm_down() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        let block = unary_block();
        let pairs = (0..2000u32).flat_map(|i| {
            let stream = 2 * i + 1;
            [
                raw::headers(stream, false, &block),
                raw::rst_stream(stream, raw::CANCEL),
            ]
        });
        conn.send_many(pairs);
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open: {t:?}");
        let (code, debug) = goaway_of(&t);
        assert_eq!(code, raw::ENHANCE_YOUR_CALM, "{debug}");
        assert_eq!(debug, "too_many_resets");
        drop(conn);
        arena.finish("rapid reset", 64 * MIB);
    }
}

#[test]
fn a_continuation_flood_is_told_to_calm_down() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        // A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION
        // frames each carrying one more small header.
        let mut first = unary_block();
        raw::hpack_literal(&mut first, "x-flood-0", b"v");
        let mut frames = vec![raw::frame(raw::HEADERS, 0, 1, &first)];
        for i in 1..10_000 {
            let mut block = Vec::new();
            raw::hpack_literal(&mut block, &format!("x-flood-{i}"), b"v");
            frames.push(raw::frame(raw::CONTINUATION, 0, 1, &block));
        }
        conn.send_many(frames);
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open");
        let (code, debug) = goaway_of(&t);
        assert_eq!(code, raw::ENHANCE_YOUR_CALM, "{debug}");
        assert_eq!(debug, "too_many_continuations");
        drop(conn);
        arena.finish("CONTINUATION flood", 64 * MIB);
    }
}

#[test]
fn a_ping_flood_earns_too_many_pings() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        conn.send_many((0..100_000u64).map(raw::ping));
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open");
        let (code, debug) = goaway_of(&t);
        assert_eq!(code, raw::ENHANCE_YOUR_CALM);
        assert_eq!(debug, "too_many_pings");
        // The policy allows two strikes: a handful of acknowledgements, not 100,000.
        assert!(t.count(raw::PING) < 100, "{} PING ACKs", t.count(raw::PING));
        drop(conn);
        arena.finish("PING flood", 64 * MIB);
    }
}

#[test]
fn a_settings_flood_is_answered_without_growing() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        // 100,000 SETTINGS frames, each with a value, then a call on the same connection.
        let sent = conn.send_many((0..100_000u32).map(|i| raw::settings(&[(0x4, 65_535 + i % 7)])));
        assert_eq!(sent, 100_000);
        let mut frames = vec![raw::headers(1, false, &unary_block())];
        frames.push(raw::data(1, true, &encoded("after settings")));
        conn.send_many(frames);
        // Each SETTINGS is acknowledged (h2 acknowledges one before reading the next, so
        // they cannot pile up), and the call is answered.
        let t = conn.wait_for(WAIT, |t| t.responded.contains(&1) || t.closed);
        assert!(t.responded.contains(&1), "the call was not answered: {t:?}");
        let t = conn.wait_for(WAIT, |t| t.count(raw::SETTINGS) > 100_000 || t.closed);
        assert!(
            t.count(raw::SETTINGS) > 100_000,
            "{} SETTINGS frames",
            t.count(raw::SETTINGS)
        );
        assert!(t.goaways.is_empty(), "{:?}", t.goaways);
        drop(conn);
        arena.finish("SETTINGS flood", 64 * MIB);
    }
}

#[test]
fn empty_data_frames_are_told_to_calm_down() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        let mut frames = vec![raw::headers(
            1,
            false,
            &raw::request_block(&format!("/{SVC}/{BIDI}"), &[]),
        )];
        frames.extend((0..1000).map(|_| raw::data(1, false, &[])));
        conn.send_many(frames);
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open");
        let (code, debug) = goaway_of(&t);
        assert_eq!(code, raw::ENHANCE_YOUR_CALM);
        assert_eq!(debug, "too_many_data_frames");
        drop(conn);
        arena.finish("empty DATA frames", 64 * MIB);
    }
}

#[test]
fn stream_errors_by_the_thousand_are_told_to_calm_down() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        // Requests without :method are malformed (RFC 9113 §8.3.1): each is a stream
        // error, PROTOCOL_ERROR, that h2 answers itself and counts as a local reset.
        // (h2 takes a missing :path for "/", so that would not do.)
        let mut block = Vec::new();
        raw::hpack_literal(&mut block, ":scheme", b"http");
        raw::hpack_literal(&mut block, ":path", format!("/{SVC}/{UNARY}").as_bytes());
        raw::hpack_literal(&mut block, "content-type", b"application/grpc");
        conn.send_many((0..2000u32).map(|i| raw::headers(2 * i + 1, true, &block)));
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open");
        // Within one burst h2 counts a stream it reset as open until that RST_STREAM is
        // written, so after the first 256 (the stream limit) the rest are refused
        // instead; either is a local reset and counts towards the GOAWAY.
        assert!(
            t.resets
                .iter()
                .all(|(_, code)| *code == raw::PROTOCOL_ERROR || *code == raw::REFUSED_STREAM),
            "{} resets, first {:?}, frames {:?}, goaways {:?}",
            t.resets.len(),
            &t.resets[..t.resets.len().min(5)],
            t.counts,
            t.goaways
        );
        assert!(t.resets.len() >= 500, "{} resets", t.resets.len());
        let (code, debug) = goaway_of(&t);
        assert_eq!(code, raw::ENHANCE_YOUR_CALM);
        assert_eq!(debug, "too_many_internal_resets");
        drop(conn);
        arena.finish("stream errors", 64 * MIB);
    }
}

// ---------------------------------------------------------------------------------------
// Limits: refused streams, handshake timeout, header blocks.

#[test]
fn streams_over_the_advertised_limit_are_refused() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b.max_concurrent_streams(8));
        let mut conn = RawConn::connect(arena.addr());
        // Twelve calls that wait for cancellation hold their streams open.
        let block = unary_block();
        let frames = (0..12u32).flat_map(|i| {
            let stream = 2 * i + 1;
            [
                raw::headers(stream, false, &block),
                raw::data(stream, true, &encoded(&format!("wait-cancel:limit{i}"))),
            ]
        });
        conn.send_many(frames);
        let t = conn.wait_for(WAIT, |t| t.resets.len() >= 4);
        let refused: Vec<u32> = t
            .resets
            .iter()
            .filter(|(_, c)| *c == raw::REFUSED_STREAM)
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(refused, vec![17, 19, 21, 23], "{t:?}");
        assert!(
            leak::eventually_within(WAIT, || arena.server().active_calls() == 8),
            "{} calls",
            arena.server().active_calls()
        );
        // The connection is not closed for it.
        assert!(t.goaways.is_empty() && !t.closed, "{t:?}");
        drop(conn);
        arena.finish("streams over the limit", 64 * MIB);
    }
}

#[test]
fn silent_connections_and_half_prefaces_are_closed_after_the_handshake_timeout() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b.handshake_timeout(Duration::from_millis(500)));
        let started = Instant::now();
        let mut conns = Vec::new();
        for i in 0..30 {
            let mut conn = RawConn::connect_silent(arena.addr());
            match i % 3 {
                0 => {}
                1 => conn.send(&raw::PREFACE[..10]).unwrap(),
                // The whole preface but no SETTINGS.
                _ => conn.send(raw::PREFACE).unwrap(),
            }
            conns.push(conn);
        }
        for conn in &conns {
            let t = conn.wait_closed(WAIT);
            assert!(t.closed, "a connection was kept open: {t:?}");
        }
        // Generous: the timeout is half a second, on a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        assert!(
            leak::eventually_within(WAIT, || arena.server().open_connections() == 1),
            "{} connections open",
            arena.server().open_connections()
        );
        drop(conns);
        arena.finish("silent connections", 64 * MIB);
    }
}

#[test]
fn oversized_header_blocks_are_refused() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        // 20 KiB, over the 16 KiB limit: the stream is refused with HTTP 431 (h2's answer
        // to a header list it would not decode), the connection lives on.
        let mut conn = RawConn::connect(arena.addr());
        let big = vec![b'a'; 20 * 1024];
        let block = raw::request_block(&format!("/{SVC}/{UNARY}"), &[("x-big", &big)]);
        let mut frames = vec![raw::frame(raw::HEADERS, 0, 1, &block[..16 * 1024])];
        frames.push(raw::frame(
            raw::CONTINUATION,
            raw::END_HEADERS,
            1,
            &block[16 * 1024..],
        ));
        // Then a normal call on the same connection.
        frames.push(raw::headers(3, false, &unary_block()));
        frames.push(raw::data(3, true, &encoded("after big headers")));
        conn.send_many(frames);
        let t = conn.wait_for(WAIT, |t| t.responded.contains(&3) || t.closed);
        assert!(
            t.responded.contains(&3),
            "the next call was not answered: {t:?}"
        );
        assert!(t.goaways.is_empty(), "{:?}", t.goaways);
        assert!(
            t.responded.contains(&1) || !t.reset_codes(1).is_empty(),
            "the oversized request got no answer: {t:?}"
        );
        drop(conn);

        // 1 MiB: far beyond anything h2 would buffer; the connection is closed.
        let mut conn = RawConn::connect(arena.addr());
        let huge = vec![b'b'; MIB];
        let block = raw::request_block(&format!("/{SVC}/{UNARY}"), &[("x-huge", &huge)]);
        let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
        let last = chunks.len() - 1;
        let frames = chunks.iter().enumerate().map(|(i, chunk)| {
            let flags = if i == last { raw::END_HEADERS } else { 0 };
            let kind = if i == 0 {
                raw::HEADERS
            } else {
                raw::CONTINUATION
            };
            raw::frame(kind, flags, 1, chunk)
        });
        conn.send_many(frames);
        let t = conn.wait_closed(WAIT);
        assert!(t.closed, "the connection stayed open");
        let (code, debug) = goaway_of(&t);
        assert!(
            code == raw::ENHANCE_YOUR_CALM || code == raw::COMPRESSION_ERROR,
            "{code:#x} {debug}"
        );
        drop(conn);
        arena.finish("oversized header blocks", 64 * MIB);
    }
}

// ---------------------------------------------------------------------------------------
// Flow control and stream state.

#[test]
fn window_update_overflow_is_a_flow_control_error() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        // On a stream: the stream is reset.
        let mut conn = RawConn::connect(arena.addr());
        let block = raw::request_block(&format!("/{SVC}/{BIDI}"), &[]);
        conn.send_many([
            raw::headers(1, false, &block),
            raw::window_update(1, 0x7fff_ffff),
            raw::window_update(1, 0x7fff_ffff),
        ]);
        let t = conn.wait_for(WAIT, |t| !t.reset_codes(1).is_empty() || t.closed);
        assert_eq!(t.reset_codes(1), vec![raw::FLOW_CONTROL_ERROR], "{t:?}");
        // On the connection: GOAWAY.
        conn.send_many([
            raw::window_update(0, 0x7fff_ffff),
            raw::window_update(0, 0x7fff_ffff),
        ]);
        let t = conn.wait_closed(WAIT);
        let (code, _) = goaway_of(&t);
        assert_eq!(code, raw::FLOW_CONTROL_ERROR);
        drop(conn);
        arena.finish("window update overflow", 64 * MIB);
    }
}

#[test]
fn data_on_a_closed_stream_is_a_stream_closed_error() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let mut conn = RawConn::connect(arena.addr());
        conn.send_many([
            raw::headers(1, false, &unary_block()),
            raw::data(1, true, &encoded("closed after this")),
        ]);
        let t = conn.wait_for(WAIT, |t| t.count(raw::HEADERS) >= 2 || t.closed);
        assert!(
            t.responded.iter().filter(|s| **s == 1).count() >= 2,
            "{t:?}"
        );
        // The stream is closed both ways now; more DATA on it is an error.
        conn.send_many([raw::data(1, false, &encoded("too late"))]);
        let t = conn.wait_for(WAIT, |t| !t.reset_codes(1).is_empty() || t.closed);
        let stream_closed = t.reset_codes(1) == vec![raw::STREAM_CLOSED];
        let goaway = t.goaways.last().map(|g| g.code) == Some(raw::STREAM_CLOSED);
        assert!(stream_closed || goaway, "{t:?}");
        drop(conn);
        arena.finish("DATA on a closed stream", 64 * MIB);
    }
}

// ---------------------------------------------------------------------------------------
// gRPC-level abuse, over h2.

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("abuse-tokio")
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_four_gib_length_prefix_is_refused_before_anything_is_buffered() {
    let _leaks = leak::check();
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let tokio = tokio_rt();
        for method in [UNARY, BIDI] {
            // The prefix says 4 GiB - 1; 64 KiB of it follow, and the stream stays open.
            let mut body = vec![0, 0xff, 0xff, 0xff, 0xff];
            body.extend(std::iter::repeat_n(7u8, 64 * 1024));
            let (status, message) = tokio.block_on(h2_call(
                arena.addr(),
                &format!("/{SVC}/{method}"),
                &[],
                body.into(),
                false,
            ));
            assert_eq!(status, "8", "{method}: {message}");
            assert!(message.contains("4294967295"), "{method}: {message}");
        }
        drop(tokio);
        arena.finish("4 GiB length prefix", 32 * MIB);
    }
}

/// 100 MiB of zeros, gzipped: about 100 KiB (deflate cannot shrink anything more than
/// about 1,000 times, so the "10 KiB to 100 MiB" is not possible in one gzip
/// member, and a decoder must not accept more than one).
///
/// Compressing 100 MiB takes minutes in a debug build, so the bomb is assembled: with a
/// full flush after each MiB the compressor starts afresh, so every MiB after the first
/// compresses to the same bytes, which are repeated.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        use flate2::{Compress, Compression, FlushCompress};
        let zeros = vec![0u8; MIB];
        let mut z = Compress::new(Compression::best(), false);
        let mut deflate = |flush| {
            let before = z.total_in();
            let mut out = Vec::with_capacity(64 * 1024);
            z.compress_vec(&zeros, &mut out, flush).unwrap();
            assert_eq!(z.total_in() - before, MIB as u64, "a MiB did not fit");
            out
        };
        let first = deflate(FlushCompress::Full);
        let middle = deflate(FlushCompress::Full);
        assert_eq!(middle, deflate(FlushCompress::Full), "a flushed MiB varies");
        // The first, 98 like the middle one and the last: 100 MiB.
        let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        bomb.extend(&first);
        for _ in 0..98 {
            bomb.extend(&middle);
        }
        bomb.extend(deflate(FlushCompress::Finish));
        // Finish may need more room than one call had; drain the rest.
        loop {
            let mut more = Vec::with_capacity(64 * 1024);
            let status = z
                .compress_vec(&[], &mut more, FlushCompress::Finish)
                .unwrap();
            bomb.extend(more);
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        for _ in 0..100 {
            crc.update(&zeros);
        }
        bomb.extend(crc.sum().to_le_bytes());
        bomb.extend(((100 * MIB) as u32).to_le_bytes());
        bomb
    })
}

#[test]
fn the_gzip_bomb_inflates_to_100_mib() {
    // The bomb is real: a plain gzip decoder inflates it to 100 MiB of zeros.
    use std::io::Read;
    let mut inflated = 0usize;
    let mut decoder = flate2::read::GzDecoder::new(gzip_bomb());
    let mut buf = vec![0u8; MIB];
    loop {
        let n = decoder.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|b| *b == 0));
        inflated += n;
    }
    assert_eq!(inflated, 100 * MIB);
}

#[test]
fn a_gzip_bomb_is_refused_at_the_receive_limit() {
    let _leaks = leak::check();
    let bomb = gzip_bomb();
    assert!(bomb.len() < 200 * 1024, "{} bytes", bomb.len());
    for flavour in FLAVOURS {
        let arena = Arena::new(flavour, |b| b);
        let tokio = tokio_rt();
        for method in [UNARY, BIDI] {
            let body = raw::grpc_message(true, bomb);
            let (status, message) = tokio.block_on(h2_call(
                arena.addr(),
                &format!("/{SVC}/{method}"),
                &[("grpc-encoding", "gzip")],
                body.into(),
                // A unary request is complete (and so decoded) only at its end.
                true,
            ));
            // RESOURCE_EXHAUSTED, having inflated at most the 4 MiB limit.
            assert_eq!(status, "8", "{method}: {message}");
        }
        drop(tokio);
        // Inflating the bomb whole would take 100 MiB at least.
        arena.finish("gzip bomb", 48 * MIB);
    }
}

#[test]
fn a_healthy_connection_is_not_disturbed_by_all_of_it_at_once() {
    let _leaks = leak::check();
    let arena = Arena::new(Flavour::Async, |b| {
        b.handshake_timeout(Duration::from_secs(2))
    });
    let addr = arena.addr();
    let attackers: Vec<JoinHandle<Transcript>> = (0..4)
        .map(|kind| {
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(addr);
                let block = unary_block();
                match kind {
                    0 => {
                        conn.send_many((0..2000u32).flat_map(|i| {
                            [
                                raw::headers(2 * i + 1, false, &block),
                                raw::rst_stream(2 * i + 1, raw::CANCEL),
                            ]
                        }));
                    }
                    1 => {
                        conn.send_many((0..100_000u64).map(raw::ping));
                    }
                    2 => {
                        let mut frames = vec![raw::headers(
                            1,
                            false,
                            &raw::request_block(&format!("/{SVC}/{BIDI}"), &[]),
                        )];
                        frames.extend((0..1000).map(|_| raw::data(1, false, &[])));
                        conn.send_many(frames);
                    }
                    _ => {
                        conn.send_many([
                            raw::window_update(0, 0x7fff_ffff),
                            raw::window_update(0, 0x7fff_ffff),
                        ]);
                    }
                }
                conn.wait_closed(WAIT)
            })
        })
        .collect();
    for attacker in attackers {
        let t = attacker.join().unwrap();
        assert!(t.closed && !t.goaways.is_empty(), "{t:?}");
    }
    arena.finish("all at once", 64 * MIB);
}
