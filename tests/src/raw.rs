//! HTTP/2 written by hand: frame builders, a minimal HPACK encoder (literals only) and a
//! connection whose reader thread keeps a transcript of what the server sent. For the
//! protocol-abuse tests, which send what a well-behaved library (h2) refuses to send.
//!
//! Everything here is bounded: the transcript keeps counts and at most
//! [`MAX_KEPT`] reset frames, and every wait has a deadline.

use std::io::{Read, Write};

use bytes::Bytes;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// HTTP/2 error codes the tests look for.
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Reset frames kept in a transcript; more are only counted.
pub const MAX_KEPT: usize = 10_000;

/// One frame: header fields and payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 1 << 24, "frame payload too long");
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn ping(data: u64) -> Vec<u8> {
    frame(PING, 0, 0, &data.to_be_bytes())
}

pub fn ping_ack(payload: [u8; 8]) -> Vec<u8> {
    frame(PING, ACK, 0, &payload)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn data(stream: u32, end_stream: bool, payload: &[u8]) -> Vec<u8> {
    frame(
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
        payload,
    )
}

/// A HEADERS frame carrying a whole header block.
pub fn headers(stream: u32, end_stream: bool, block: &[u8]) -> Vec<u8> {
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, block)
}

/// A gRPC message: compression flag, length prefix, bytes.
pub fn grpc_message(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// HPACK integer with an `n`-bit prefix, the prefix's other bits set from `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Appends a literal header field without indexing, new name, no Huffman coding.
pub fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// The header block of a gRPC request to `path`, plus `extra` fields.
pub fn request_block(path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", b"POST");
    hpack_literal(&mut block, ":scheme", b"http");
    hpack_literal(&mut block, ":path", path.as_bytes());
    hpack_literal(&mut block, ":authority", b"localhost");
    hpack_literal(&mut block, "content-type", b"application/grpc");
    hpack_literal(&mut block, "te", b"trailers");
    for (name, value) in extra {
        hpack_literal(&mut block, name, value);
    }
    block
}

/// A GOAWAY the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    pub last_stream: u32,
    pub code: u32,
    pub debug: Vec<u8>,
}

/// What the server sent on a raw connection.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// Frames seen, by type (index = frame type, 10 and above counted together).
    pub counts: [usize; 11],
    pub goaways: Vec<GoAway>,
    /// RST_STREAM frames: stream and error code (the first [`MAX_KEPT`]).
    pub resets: Vec<(u32, u32)>,
    /// Streams that got response HEADERS.
    pub responded: Vec<u32>,
    /// Payloads of the PINGs the server sent (not ACKs; the first [`MAX_KEPT`]).
    pub pings: Vec<[u8; 8]>,
    /// The server closed the connection (or it failed).
    pub closed: bool,
    /// Bytes received in all.
    pub bytes: usize,
    /// Flow-control credit the server granted with WINDOW_UPDATE, by stream (0: the
    /// connection), summed.
    pub credit: std::collections::HashMap<u32, u64>,
    /// The server's SETTINGS_INITIAL_WINDOW_SIZE, once its SETTINGS arrived.
    pub initial_window: Option<u32>,
    /// DATA payload bytes the server sent, summed over streams.
    pub data_bytes: u64,
}

impl Transcript {
    pub fn count(&self, kind: u8) -> usize {
        self.counts[usize::from(kind).min(10)]
    }

    /// The last GOAWAY's error code.
    pub fn goaway_code(&self) -> Option<u32> {
        self.goaways.last().map(|g| g.code)
    }

    pub fn reset_codes(&self, stream: u32) -> Vec<u32> {
        self.resets
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, c)| *c)
            .collect()
    }
}

struct Shared {
    transcript: Mutex<Transcript>,
    changed: Condvar,
}

/// A raw connection: the test writes frames, a thread reads and records the server's.
pub struct RawConn {
    tcp: TcpStream,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl RawConn {
    /// Connects and sends nothing yet.
    pub fn connect_silent(addr: SocketAddr) -> RawConn {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).unwrap();
        let shared = Arc::new(Shared {
            transcript: Mutex::new(Transcript::default()),
            changed: Condvar::new(),
        });
        let mut read_half = tcp.try_clone().unwrap();
        // Nothing the server sends is kept beyond a read buffer and the counts.
        read_half
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let reader_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name("raw-h2-reader".into())
            .spawn(move || read_frames(&mut read_half, &reader_shared))
            .unwrap();
        RawConn {
            tcp,
            shared,
            reader: Some(reader),
        }
    }

    /// Connects and sends the preface, an empty SETTINGS and an ACK of the server's.
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::connect_with(addr, &[])
    }

    /// As [`connect`](Self::connect), announcing `pairs` in our SETTINGS (for example
    /// `(0x4, 0)`: a stream window of zero, a client that never reads).
    pub fn connect_with(addr: SocketAddr, pairs: &[(u16, u32)]) -> RawConn {
        let mut conn = RawConn::connect_silent(addr);
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(pairs));
        conn.send(&hello).expect("send the preface");
        // The server's SETTINGS come first; acknowledge them once they are here.
        conn.wait_for(Duration::from_secs(20), |t| {
            t.count(SETTINGS) > 0 || t.closed
        });
        conn.send(&settings_ack()).expect("acknowledge settings");
        conn
    }

    /// Writes bytes; an error once the server has closed.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes)
    }

    /// Writes many frames, batched into large writes; stops at the first error (the
    /// server closed) and returns how many were written.
    pub fn send_many(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) -> usize {
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut n = 0;
        let mut in_batch = 0;
        for frame in frames {
            batch.extend_from_slice(&frame);
            in_batch += 1;
            if batch.len() >= 64 * 1024 {
                if self.tcp.write_all(&batch).is_err() {
                    return n;
                }
                n += in_batch;
                in_batch = 0;
                batch.clear();
            }
        }
        if !batch.is_empty() && self.tcp.write_all(&batch).is_ok() {
            n += in_batch;
        }
        n
    }

    /// Closes our sending side.
    pub fn shutdown_write(&self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }

    /// A copy of the transcript so far.
    pub fn transcript(&self) -> Transcript {
        self.shared.transcript.lock().unwrap().clone()
    }

    /// Waits until `check` holds for the transcript, or `timeout`; returns a copy.
    pub fn wait_for(&self, timeout: Duration, check: impl Fn(&Transcript) -> bool) -> Transcript {
        let deadline = Instant::now() + timeout;
        let mut t = self.shared.transcript.lock().unwrap();
        while !check(&t) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            t = self
                .shared
                .changed
                .wait_timeout(t, deadline - now)
                .unwrap()
                .0;
        }
        t.clone()
    }

    /// Waits until the server closes the connection (up to `timeout`).
    pub fn wait_closed(&self, timeout: Duration) -> Transcript {
        self.wait_for(timeout, |t| t.closed)
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_frames(tcp: &mut TcpStream, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut t = shared.transcript.lock().unwrap();
        t.bytes += n;
        let mut at = 0;
        while buf.len() - at >= 9 {
            let head = &buf[at..at + 9];
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            if buf.len() - at < 9 + len {
                break;
            }
            let kind = head[3];
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let payload = &buf[at + 9..at + 9 + len];
            t.counts[usize::from(kind).min(10)] += 1;
            match kind {
                GOAWAY if len >= 8 => t.goaways.push(GoAway {
                    last_stream: u32::from_be_bytes(payload[0..4].try_into().unwrap())
                        & 0x7fff_ffff,
                    code: u32::from_be_bytes(payload[4..8].try_into().unwrap()),
                    debug: payload[8..].to_vec(),
                }),
                RST_STREAM if len == 4 && t.resets.len() < MAX_KEPT => {
                    let code = u32::from_be_bytes(payload.try_into().unwrap());
                    t.resets.push((stream, code));
                }
                HEADERS if t.responded.len() < MAX_KEPT => t.responded.push(stream),
                PING if len == 8 && head[4] & ACK == 0 && t.pings.len() < MAX_KEPT => {
                    t.pings.push(payload.try_into().unwrap());
                }
                WINDOW_UPDATE if len == 4 => {
                    let increment = u32::from_be_bytes(payload.try_into().unwrap()) & 0x7fff_ffff;
                    *t.credit.entry(stream).or_default() += u64::from(increment);
                }
                SETTINGS if head[4] & ACK == 0 => {
                    for setting in payload.chunks_exact(6) {
                        if setting[..2] == [0, 4] {
                            t.initial_window =
                                Some(u32::from_be_bytes(setting[2..6].try_into().unwrap()));
                        }
                    }
                    t.initial_window.get_or_insert(65_535);
                }
                DATA => t.data_bytes += len as u64,
                _ => {}
            }
            at += 9 + len;
        }
        buf.drain(..at);
        drop(t);
        shared.changed.notify_all();
    }
    shared.transcript.lock().unwrap().closed = true;
    shared.changed.notify_all();
}

/// Opens an h2 connection, sends headers (plus `extra`) and `body` (ending the stream if
/// `end`), and returns the call's `grpc-status` and `grpc-message`.
pub async fn h2_call(
    addr: SocketAddr,
    method: &str,
    extra: &[(&str, &str)],
    body: Bytes,
    end: bool,
) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::post(format!("http://{addr}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    for (k, v) in extra {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut ready = send.ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    stream.reserve_capacity(body.len());
    stream.send_data(body, end).unwrap();
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { break };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.ok().flatten();
    let field = |name: &str| {
        trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    drop(stream);
    (field("grpc-status"), field("grpc-message"))
}
