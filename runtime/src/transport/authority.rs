//! Header blocks rewritten for h2 on Unix-socket connections, where gRPC C-core (Python,
//! C++, Ruby), grpc-java, grpc-swift and grpcurl send the socket's path, raw or
//! percent-encoded, as `:authority`. h2 refuses such an authority as malformed and resets
//! every stream; gRPC servers do not route on `:authority`, so the server drops one that
//! is not a valid authority before h2 sees it.
//!
//! HPACK is stateful, so a block cannot be edited in place: every header block the client
//! sends on the connection is decoded here (keeping the client's dynamic table) and handed
//! to h2 re-encoded as literals without indexing (so h2's table stays empty and in step).
//! Other frames pass through untouched, as bytes, without being buffered whole.
//!
//! ```text
//!  socket ──▶ [preface] ──▶ frame headers ─┬─ HEADERS / CONTINUATION: collect the block,
//!                                           │    decode, drop a bad :authority, re-encode
//!                                           └─ anything else: pass through as it comes
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::hpack::Decoder;

/// The client connection preface.
const PREFACE_LEN: usize = 24;
const HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame h2 accepts by default (we never announce another).
const MAX_FRAME: usize = 16_384;
/// The dynamic table size h2 announces (its default).
const TABLE_SIZE: usize = 4096;

/// Why a connection's header blocks cannot be rewritten: it is closed.
#[derive(Debug)]
pub(crate) struct RewriteError(pub(crate) String);

/// Where the parser is in the client's byte stream.
enum State {
    /// Preface bytes still to pass through.
    Preface(usize),
    /// Waiting for a whole frame header.
    Header,
    /// Payload bytes of a frame that passes through as it is.
    Pass(usize),
    /// Payload bytes of a HEADERS or CONTINUATION frame, collected.
    Collect(usize),
}

/// A header block being collected: its stream, HEADERS flags and priority fields.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: BytesMut,
}

/// Rewrites the header blocks of one connection's incoming byte stream.
pub(crate) struct AuthorityRewrite {
    decoder: Decoder,
    state: State,
    /// Received bytes not yet parsed.
    input: BytesMut,
    /// The frame being parsed: its header and, for header frames, its payload.
    frame: Option<([u8; HEADER_LEN], BytesMut)>,
    block: Option<Block>,
    /// Largest header block (encoded, and decoded) accepted.
    max_block: usize,
}

impl AuthorityRewrite {
    /// A rewriter for a server connection whose decoded header lists may be
    /// `max_header_list_size` bytes (twice that is collected before giving up: h2 then
    /// applies the limit itself).
    pub(crate) fn new(max_header_list_size: u32) -> AuthorityRewrite {
        AuthorityRewrite {
            decoder: Decoder::new(TABLE_SIZE),
            state: State::Preface(PREFACE_LEN),
            input: BytesMut::new(),
            frame: None,
            block: None,
            max_block: (max_header_list_size as usize)
                .saturating_mul(2)
                .max(MAX_FRAME),
        }
    }

    /// Takes bytes read from the socket and appends what h2 should read instead to `out`.
    ///
    /// # Errors
    ///
    /// A malformed or oversized header block, or frames out of order inside one: the
    /// connection cannot go on (h2 would have closed it too).
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), RewriteError> {
        self.input.extend_from_slice(data);
        loop {
            match self.state {
                State::Preface(left) => {
                    let n = left.min(self.input.len());
                    out.put_slice(&self.input[..n]);
                    self.input.advance(n);
                    if n < left {
                        self.state = State::Preface(left - n);
                        return Ok(());
                    }
                    self.state = State::Header;
                }
                State::Header => {
                    if self.input.len() < HEADER_LEN {
                        return Ok(());
                    }
                    let mut head = [0u8; HEADER_LEN];
                    head.copy_from_slice(&self.input[..HEADER_LEN]);
                    self.input.advance(HEADER_LEN);
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let kind = head[3];
                    if self.block.is_some() && kind != CONTINUATION {
                        return Err(RewriteError(
                            "a frame other than CONTINUATION inside a header block".into(),
                        ));
                    }
                    if kind == HEADERS || kind == CONTINUATION {
                        if len > self.max_block {
                            return Err(RewriteError("header block too large".into()));
                        }
                        self.frame = Some((head, BytesMut::with_capacity(len)));
                        self.state = State::Collect(len);
                    } else {
                        out.put_slice(&head);
                        self.state = State::Pass(len);
                    }
                }
                State::Pass(left) => {
                    let n = left.min(self.input.len());
                    out.put_slice(&self.input[..n]);
                    self.input.advance(n);
                    if n < left {
                        self.state = State::Pass(left - n);
                        return Ok(());
                    }
                    self.state = State::Header;
                }
                State::Collect(left) => {
                    let n = left.min(self.input.len());
                    let Some((_, payload)) = &mut self.frame else {
                        unreachable!("a frame is being collected")
                    };
                    payload.put_slice(&self.input[..n]);
                    self.input.advance(n);
                    if n < left {
                        self.state = State::Collect(left - n);
                        return Ok(());
                    }
                    self.state = State::Header;
                    let Some((head, payload)) = self.frame.take() else {
                        unreachable!("a frame is being collected")
                    };
                    self.header_frame(head, payload.freeze(), out)?;
                }
            }
        }
    }

    /// A whole HEADERS or CONTINUATION frame.
    fn header_frame(
        &mut self,
        head: [u8; HEADER_LEN],
        mut payload: Bytes,
        out: &mut BytesMut,
    ) -> Result<(), RewriteError> {
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if kind == HEADERS {
            let mut pad = 0;
            if flags & PADDED != 0 {
                if payload.is_empty() {
                    return Err(RewriteError("HEADERS frame too short".into()));
                }
                pad = usize::from(payload[0]);
                payload.advance(1);
            }
            let mut priority = None;
            if flags & PRIORITY != 0 {
                if payload.len() < 5 {
                    return Err(RewriteError("HEADERS frame too short".into()));
                }
                priority = Some(<[u8; 5]>::try_from(&payload[..5]).expect("five bytes"));
                payload.advance(5);
            }
            if pad > payload.len() {
                return Err(RewriteError("HEADERS padding longer than the frame".into()));
            }
            payload.truncate(payload.len() - pad);
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                priority,
                fragment: BytesMut::from(&payload[..]),
            });
        } else {
            let Some(block) = &mut self.block else {
                return Err(RewriteError("CONTINUATION without HEADERS".into()));
            };
            if block.stream != stream {
                return Err(RewriteError("CONTINUATION of another stream".into()));
            }
            if block.fragment.len() + payload.len() > self.max_block {
                return Err(RewriteError("header block too large".into()));
            }
            block.fragment.put_slice(&payload);
        }
        if flags & END_HEADERS != 0 {
            let Some(block) = self.block.take() else {
                unreachable!("a block was started above")
            };
            self.rewrite(block, out)?;
        }
        Ok(())
    }

    /// Decodes a whole block and writes it out again, without an `:authority` h2 would
    /// refuse.
    fn rewrite(&mut self, block: Block, out: &mut BytesMut) -> Result<(), RewriteError> {
        let mut encoded = BytesMut::with_capacity(block.fragment.len() * 2);
        let mut decoded = 0usize;
        let max = self.max_block;
        self.decoder
            .decode(&block.fragment, |name, value| {
                decoded += name.len() + value.len() + 32;
                if decoded > max {
                    return;
                }
                if name == b":authority" && !valid_authority(value) {
                    tracing::debug!(
                        authority = %String::from_utf8_lossy(value),
                        "dropping an :authority that is not one (a Unix socket's path)"
                    );
                    return;
                }
                literal(&mut encoded, name, value);
            })
            .map_err(|e| RewriteError(format!("header block does not decode: {e}")))?;
        if decoded > max {
            return Err(RewriteError("header list too large".into()));
        }
        write_block(&block, encoded.freeze(), out);
        Ok(())
    }
}

/// Whether h2 would accept `value` as an `:authority`.
fn valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// An HPACK literal header field without indexing, new name, no Huffman coding.
fn literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    integer(out, 7, name.len());
    out.put_slice(name);
    integer(out, 7, value.len());
    out.put_slice(value);
}

/// An HPACK integer with an `n`-bit prefix (the prefix's other bits zero).
fn integer(out: &mut BytesMut, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.put_u8(value as u8);
        return;
    }
    out.put_u8(max as u8);
    value -= max;
    while value >= 128 {
        out.put_u8((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.put_u8(value as u8);
}

/// Writes a re-encoded block as HEADERS (and CONTINUATION frames when it does not fit in
/// one frame).
fn write_block(block: &Block, mut encoded: Bytes, out: &mut BytesMut) {
    let prio_len = if block.priority.is_some() { 5 } else { 0 };
    let mut first = true;
    loop {
        let room = if first {
            MAX_FRAME - prio_len
        } else {
            MAX_FRAME
        };
        let chunk = encoded.split_to(room.min(encoded.len()));
        let last = encoded.is_empty();
        let (kind, mut flags) = if first {
            let mut flags = 0;
            if block.end_stream {
                flags |= END_STREAM;
            }
            if block.priority.is_some() {
                flags |= PRIORITY;
            }
            (HEADERS, flags)
        } else {
            (CONTINUATION, 0)
        };
        if last {
            flags |= END_HEADERS;
        }
        let len = chunk.len() + if first { prio_len } else { 0 };
        out.put_slice(&(len as u32).to_be_bytes()[1..]);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(block.stream);
        if first {
            if let Some(priority) = &block.priority {
                out.put_slice(priority);
            }
        }
        out.put_slice(&chunk);
        if last {
            return;
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::test_peer::frame;

    /// Splits h2-bound bytes into frames (after the preface).
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut at = PREFACE_LEN;
        let mut out = Vec::new();
        while at < bytes.len() {
            let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
            let stream = u32::from_be_bytes(bytes[at + 5..at + 9].try_into().unwrap());
            out.push((
                bytes[at + 3],
                bytes[at + 4],
                stream,
                bytes[at + 9..at + 9 + len].to_vec(),
            ));
            at += 9 + len;
        }
        out
    }

    fn block(headers: &[(&[u8], &[u8])], indexing: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        for (name, value) in headers {
            // With incremental indexing (0x40) or without (0x00), new name.
            out.put_u8(if indexing { 0x40 } else { 0 });
            integer(&mut out, 7, name.len());
            out.put_slice(name);
            integer(&mut out, 7, value.len());
            out.put_slice(value);
        }
        out.to_vec()
    }

    fn decode(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        loona_hpack::Decoder::new().decode(block).unwrap()
    }

    #[test]
    fn a_socket_path_authority_is_dropped_and_the_rest_kept_across_blocks() {
        let mut rewrite = AuthorityRewrite::new(16 * 1024);
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend(frame(0x4, 0, 0, &[]));
        // The first request indexes its fields; the second refers to them by index
        // (62 = the newest dynamic entry, 63 the one before): the rewriter must have kept
        // the client's table.
        let first = block(&[(b":authority", b"%2Ftmp%2Fs.sock"), (b"x-a", b"1")], true);
        wire.extend(frame(HEADERS, END_HEADERS, 1, &first));
        wire.extend(frame(0x0, END_STREAM, 1, b"data"));
        wire.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &[0x80 | 62, 0x80 | 63],
        ));
        // A raw path, split over HEADERS and CONTINUATION, with padding.
        let third = block(
            &[(b":authority", b"/tmp/s.sock"), (b":path", b"/a/B")],
            false,
        );
        let (one, two) = third.split_at(5);
        let mut padded = vec![3];
        padded.extend_from_slice(one);
        padded.extend_from_slice(&[0, 0, 0]);
        wire.extend(frame(HEADERS, PADDED, 5, &padded));
        wire.extend(frame(CONTINUATION, END_HEADERS, 5, two));
        // Fed in small pieces, as reads may come.
        let mut out = BytesMut::new();
        for piece in wire.chunks(7) {
            rewrite.feed(piece, &mut out).unwrap();
        }
        let got = frames(&out);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0].0, 0x4);
        assert_eq!(decode(&got[1].3), vec![(b"x-a".to_vec(), b"1".to_vec())]);
        assert_eq!(
            (got[2].0, got[2].1, &got[2].3[..]),
            (0x0, END_STREAM, &b"data"[..])
        );
        assert_eq!(got[3].1, END_HEADERS | END_STREAM);
        assert_eq!(decode(&got[3].3), vec![(b"x-a".to_vec(), b"1".to_vec())]);
        assert_eq!((got[4].0, got[4].1, got[4].2), (HEADERS, END_HEADERS, 5));
        assert_eq!(
            decode(&got[4].3),
            vec![(b":path".to_vec(), b"/a/B".to_vec())]
        );
    }

    #[test]
    fn a_valid_authority_is_kept() {
        let mut rewrite = AuthorityRewrite::new(16 * 1024);
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &block(&[(b":authority", b"localhost:50051")], false),
        ));
        let mut out = BytesMut::new();
        rewrite.feed(&wire, &mut out).unwrap();
        let got = frames(&out);
        assert_eq!(
            decode(&got[0].3),
            vec![(b":authority".to_vec(), b"localhost:50051".to_vec())]
        );
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let mut rewrite = AuthorityRewrite::new(64 * 1024);
        let big = vec![b'v'; 20_000];
        let encoded = block(&[(b"x-big", &big)], false);
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let (one, two) = encoded.split_at(MAX_FRAME);
        wire.extend(frame(HEADERS, 0, 1, one));
        wire.extend(frame(CONTINUATION, END_HEADERS, 1, two));
        let mut out = BytesMut::new();
        rewrite.feed(&wire, &mut out).unwrap();
        let got = frames(&out);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1), (HEADERS, 0));
        assert_eq!((got[1].0, got[1].1), (CONTINUATION, END_HEADERS));
        let whole: Vec<u8> = got.iter().flat_map(|f| f.3.clone()).collect();
        assert_eq!(decode(&whole), vec![(b"x-big".to_vec(), big)]);
    }

    #[test]
    fn broken_blocks_end_the_connection() {
        for wire in [
            // A frame other than CONTINUATION inside a block.
            [frame(HEADERS, 0, 1, &[0x82]), frame(0x0, 0, 1, b"x")].concat(),
            // A block that does not decode (an index past every table).
            frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f]),
            // Oversized.
            frame(HEADERS, END_HEADERS, 1, &vec![0; 40_000]),
        ] {
            let mut rewrite = AuthorityRewrite::new(8 * 1024);
            let mut out = BytesMut::new();
            let mut all = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            all.extend(wire);
            assert!(rewrite.feed(&all, &mut out).is_err());
        }
    }
}
