//! A hand-driven HTTP/2 peer over an in-memory pipe, for transcript tests: it writes
//! frames built byte by byte (headers encoded with HPACK) and reads back every frame the
//! other end sends, in order, so a test states the exchange frame by frame.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a test waits for a frame before it fails: generous, since it bounds a hang,
/// not a speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// One received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Bytes,
}

impl Frame {
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The settings of a SETTINGS frame, as (identifier, value).
    pub(crate) fn settings(&self) -> Vec<(u16, u32)> {
        assert_eq!(self.kind, SETTINGS, "{self:?}");
        self.payload
            .chunks(6)
            .map(|s| {
                (
                    u16::from_be_bytes([s[0], s[1]]),
                    u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                )
            })
            .collect()
    }

    /// The 31-bit value of a WINDOW_UPDATE, or the error code of a RST_STREAM.
    pub(crate) fn value(&self) -> u32 {
        assert!(matches!(self.kind, WINDOW_UPDATE | RST_STREAM), "{self:?}");
        u32::from_be_bytes(self.payload[..4].try_into().unwrap()) & 0x7fff_ffff
    }
}

/// A frame's bytes.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A SETTINGS frame with these (identifier, value) pairs.
pub(crate) fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// A gRPC message: the five-byte prefix, then `body`.
pub(crate) fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A gRPC message carrying `text` (a protobuf `string`, as the tests' calls send).
pub(crate) fn message(text: &str) -> Vec<u8> {
    grpc_message(&prost::Message::encode_to_vec(&text.to_owned()))
}

/// The next frame of a call: skips connection upkeep and window updates.
pub(crate) async fn next_call_frame(peer: &mut Peer) -> Frame {
    loop {
        let frame = peer.next_on_streams().await.expect("a frame");
        if frame.kind != WINDOW_UPDATE {
            return frame;
        }
    }
}

/// The end of the pipe a test drives.
pub(crate) struct Peer {
    io: DuplexStream,
    read: BytesMut,
    encoder: loona_hpack::Encoder<'static>,
    decoder: loona_hpack::Decoder<'static>,
}

impl Peer {
    pub(crate) fn new(io: DuplexStream) -> Peer {
        Peer {
            io,
            read: BytesMut::new(),
            encoder: loona_hpack::Encoder::new(),
            decoder: loona_hpack::Decoder::new(),
        }
    }

    /// Reads a client's connection preface (the test is the server).
    pub(crate) async fn read_preface(&mut self) {
        let mut preface = [0; PREFACE.len()];
        tokio::time::timeout(PATIENCE, self.io.read_exact(&mut preface))
            .await
            .expect("a preface within the test's patience")
            .expect("the pipe reads");
        assert_eq!(preface, PREFACE);
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        tokio::time::timeout(PATIENCE, self.io.write_all(bytes))
            .await
            .expect("the other end reads")
            .expect("the pipe is open");
    }

    /// Sends a header block in one HEADERS frame.
    pub(crate) async fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end: bool) {
        let block = self
            .encoder
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let flags = END_HEADERS | if end { END_STREAM } else { 0 };
        self.write(&frame(HEADERS, flags, stream, &block)).await;
    }

    /// The fields of a received header block.
    pub(crate) fn decode(&mut self, frame: &Frame) -> Vec<(String, String)> {
        assert_eq!(frame.kind, HEADERS, "{frame:?}");
        assert!(
            frame.has(END_HEADERS),
            "one frame per header block: {frame:?}"
        );
        self.decoder
            .decode(&frame.payload)
            .expect("a valid header block")
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    /// The next frame, or `None` once the other end closed the pipe.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.read.len() >= 9 {
                let len =
                    u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + len {
                    let kind = self.read[3];
                    let flags = self.read[4];
                    let stream =
                        u32::from_be_bytes(self.read[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    self.read.advance(9);
                    let payload = self.read.split_to(len).freeze();
                    return Some(Frame {
                        kind,
                        flags,
                        stream,
                        payload,
                    });
                }
            }
            let read = tokio::time::timeout(PATIENCE, self.io.read_buf(&mut self.read))
                .await
                .expect("a frame or the end of the pipe within the test's patience")
                .expect("the pipe reads");
            if read == 0 {
                return None;
            }
        }
    }

    /// The next frame that is not connection upkeep (SETTINGS and their ACKs, connection
    /// WINDOW_UPDATEs), which a test of a call's frames skips.
    pub(crate) async fn next_on_streams(&mut self) -> Option<Frame> {
        loop {
            let frame = self.next().await?;
            let upkeep =
                frame.kind == SETTINGS || (frame.kind == WINDOW_UPDATE && frame.stream == 0);
            if !upkeep {
                return Some(frame);
            }
        }
    }
}

/// The value of `name` among `fields`.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
