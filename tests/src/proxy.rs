//! A fault-injecting TCP proxy for the tests: it listens on 127.0.0.1, forwards each
//! connection to one upstream address, and, on the first connection after a fault is
//! armed, breaks it in the way asked. It follows the HTTP/2 frames going through (their
//! 9-byte headers only), so faults land at exact places: in the middle of a message, in
//! the middle of a frame header, right after the response headers.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed on accept),
//! one 16 KiB buffer per direction, stalls of at most [`MAX_STALL`]; loopback only.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections proxied at once.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest stall a fault may ask for.
pub const MAX_STALL: Duration = Duration::from_secs(30);

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PREFACE_LEN: usize = 24;

/// Which way bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// How to break the next connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut the connection (both ways) after half the payload of the first DATA frame of
    /// at least 1 KiB going `Direction` (so in the middle of a gRPC message).
    CutMidMessage(Direction),
    /// Cut the connection after 4 of the 9 header bytes of the first DATA frame going
    /// `Direction`.
    CutMidFrameHeader(Direction),
    /// Cut the connection right after the first response HEADERS frame of a stream.
    CutAfterResponseHeaders,
    /// After the first response HEADERS frame, hold what the server sends for this long
    /// (at most [`MAX_STALL`]), then carry on. The way to the server stays open.
    Stall(Duration),
    /// Deliver every byte, both ways, in a write of its own.
    OneByteAtATime,
    /// After the first request DATA frame, close only the way to the server (it reads
    /// end-of-file; the way back stays open until the server closes it).
    HalfCloseRequest,
}

struct Shared {
    upstream: SocketAddr,
    /// The fault for the next connection; taken by it.
    armed: Mutex<Option<Fault>>,
    /// Faults that went off.
    fired: AtomicUsize,
    open: AtomicUsize,
    accepted: AtomicUsize,
    stop: AtomicBool,
    /// Sockets of the live connections, to close them all on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

/// The proxy; dropping it closes the listener and every connection.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (a loopback address).
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy is for loopback only"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(None),
            fired: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || accept(listener, shared))
                .unwrap()
        };
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Breaks the next connection the proxy accepts with `fault`.
    pub fn arm(&self, fault: Fault) {
        *self.shared.armed.lock().unwrap() = Some(fault);
    }

    /// How many faults went off.
    pub fn fired(&self) -> usize {
        self.shared.fired.load(Ordering::Acquire)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Closes every connection now (both ways), as a network failure would.
    pub fn cut_all(&self) {
        for socket in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the acceptor.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut_all();
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            continue;
        }
        let Ok(server) = TcpStream::connect(shared.upstream) else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let fault = shared.armed.lock().unwrap().take();
        {
            let mut sockets = shared.sockets.lock().unwrap();
            // Bounded: the oldest (long closed, on a busy proxy) are forgotten.
            if sockets.len() >= 4 * MAX_CONNECTIONS {
                sockets.drain(..2 * MAX_CONNECTIONS);
            }
            for s in [&client, &server] {
                if let Ok(s) = s.try_clone() {
                    sockets.push(s);
                }
            }
        }
        shared.open.fetch_add(1, Ordering::AcqRel);
        let conn = Arc::new(Conn {
            client,
            server,
            fault,
            stalled: AtomicBool::new(false),
            shared: shared.clone(),
            ended: AtomicUsize::new(0),
        });
        for direction in [Direction::Request, Direction::Response] {
            let conn = conn.clone();
            // Pumps end when their sockets close; the proxy's drop closes them all.
            let _ = std::thread::Builder::new()
                .name("fault-pump".into())
                .spawn(move || conn.pump(direction));
        }
    }
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    fault: Option<Fault>,
    /// The stall of a `Stall` fault has been taken.
    stalled: AtomicBool,
    shared: Arc<Shared>,
    ended: AtomicUsize,
}

/// What the pump does with the bytes it holds.
enum Act {
    /// Forward this many bytes and carry on.
    Forward(usize),
    /// Forward this many bytes, then cut the connection.
    CutAfter(usize),
    /// Forward this many bytes, then close the way to the server.
    HalfCloseAfter(usize),
    /// Forward this many bytes, then stall.
    StallAfter(usize),
}

/// Follows HTTP/2 frame boundaries in one direction.
struct Frames {
    /// Preface bytes still to skip (client to server only).
    preface: usize,
    /// Bytes of the current frame header seen.
    header: [u8; 9],
    header_seen: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    kind: u8,
    stream: u32,
    len: usize,
}

impl Conn {
    fn pump(&self, direction: Direction) {
        let (mut from, mut to) = match direction {
            Direction::Request => (&self.client, &self.server),
            Direction::Response => (&self.server, &self.client),
        };
        let mut frames = Frames {
            preface: if direction == Direction::Request {
                PREFACE_LEN
            } else {
                0
            },
            header: [0; 9],
            header_seen: 0,
            payload_left: 0,
            kind: 0,
            stream: 0,
            len: 0,
        };
        let mut fault = self.fault;
        let one_byte = fault == Some(Fault::OneByteAtATime);
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut at = 0;
            while at < n {
                let act = match fault {
                    Some(f) => frames.next_act(f, direction, &buf[at..n]),
                    None => Act::Forward(n - at),
                };
                let (len, then) = match act {
                    Act::Forward(len) => (len, None),
                    Act::CutAfter(len) => (len, Some(Act::CutAfter(0))),
                    Act::HalfCloseAfter(len) => (len, Some(Act::HalfCloseAfter(0))),
                    Act::StallAfter(len) => (len, Some(Act::StallAfter(0))),
                };
                let chunk = &buf[at..at + len];
                let written = if one_byte {
                    chunk.chunks(1).try_for_each(|b| to.write_all(b))
                } else {
                    to.write_all(chunk)
                };
                if written.is_err() {
                    break 'read;
                }
                frames.advance(chunk);
                at += len;
                match then {
                    None => {}
                    Some(Act::CutAfter(_)) => {
                        self.shared.fired.fetch_add(1, Ordering::AcqRel);
                        let _ = self.client.shutdown(Shutdown::Both);
                        let _ = self.server.shutdown(Shutdown::Both);
                        break 'read;
                    }
                    Some(Act::HalfCloseAfter(_)) => {
                        self.shared.fired.fetch_add(1, Ordering::AcqRel);
                        let _ = self.server.shutdown(Shutdown::Write);
                        fault = None;
                    }
                    Some(Act::StallAfter(_)) => {
                        if let Some(Fault::Stall(d)) = fault
                            && !self.stalled.swap(true, Ordering::AcqRel)
                        {
                            self.shared.fired.fetch_add(1, Ordering::AcqRel);
                            std::thread::sleep(d.min(MAX_STALL));
                        }
                        fault = None;
                    }
                    Some(Act::Forward(_)) => unreachable!(),
                }
            }
        }
        // One direction ended: the other ends too once both have (a half close leaves the
        // other way open until its own end).
        if self.fault != Some(Fault::HalfCloseRequest) || direction == Direction::Response {
            let _ = to.shutdown(Shutdown::Write);
        }
        if self.ended.fetch_add(1, Ordering::AcqRel) == 1 {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Frames {
    /// What to do with `bytes` (the next ones in this direction) under `fault`.
    fn next_act(&self, fault: Fault, direction: Direction, bytes: &[u8]) -> Act {
        let n = bytes.len();
        if self.preface > 0 {
            return Act::Forward(self.preface.min(n));
        }
        if self.payload_left == 0 {
            // At or in a frame header; a payload is handled on its own below.
            if self.header_seen == 0 && n >= 9 {
                let kind = bytes[3];
                let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
                if fault == Fault::CutMidFrameHeader(direction)
                    && kind == DATA
                    && stream & 0x7fff_ffff != 0
                {
                    return Act::CutAfter(4);
                }
            }
            return Act::Forward((9 - self.header_seen).min(n));
        }
        let on_stream = self.stream != 0;
        if fault == Fault::CutMidMessage(direction) && self.kind == DATA && on_stream {
            // The first DATA frame of at least 1 KiB: cut at half its payload.
            let (half, passed) = (self.len / 2, self.len - self.payload_left);
            if self.len >= 1024 && passed < half {
                return Act::CutAfter((half - passed).min(n));
            }
        }
        let len = self.payload_left.min(n);
        if len < self.payload_left || !on_stream {
            return Act::Forward(len);
        }
        // The rest of a stream's frame is here: faults that go off at the end of one.
        match (fault, direction, self.kind) {
            (Fault::CutAfterResponseHeaders, Direction::Response, HEADERS) => Act::CutAfter(len),
            (Fault::Stall(_), Direction::Response, HEADERS) => Act::StallAfter(len),
            (Fault::HalfCloseRequest, Direction::Request, DATA) => Act::HalfCloseAfter(len),
            _ => Act::Forward(len),
        }
    }

    /// Notes that `bytes` went through.
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface > 0 {
                let k = self.preface.min(bytes.len());
                self.preface -= k;
                bytes = &bytes[k..];
            } else if self.payload_left > 0 {
                let k = self.payload_left.min(bytes.len());
                self.payload_left -= k;
                bytes = &bytes[k..];
            } else {
                let k = (9 - self.header_seen).min(bytes.len());
                self.header[self.header_seen..self.header_seen + k].copy_from_slice(&bytes[..k]);
                self.header_seen += k;
                bytes = &bytes[k..];
                if self.header_seen == 9 {
                    let h = self.header;
                    self.len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    self.kind = h[3];
                    self.stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                    self.payload_left = self.len;
                    self.header_seen = 0;
                }
            }
        }
    }
}
