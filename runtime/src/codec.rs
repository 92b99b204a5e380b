//! Message framing and the protobuf codec.
//!
//! Each message on the wire is a five-byte prefix (a compressed flag, then the length as a
//! big-endian `u32`) followed by the encoded message. Encoding and decoding of message
//! bodies happens on the caller's or handler's thread; the poller only splits frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::status::Status;

/// Length of the message prefix.
pub(crate) const PREFIX_LEN: usize = 5;

/// Encodes a message with its prefix, ready to be sent as-is.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` when the message is larger than `max_len` or than a prefix can
/// describe.
pub(crate) fn encode<M: Message>(message: &M, max_len: usize) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    if len > max_len || u32::try_from(len).is_err() {
        return Err(Status::resource_exhausted(format!(
            "message of {len} bytes is larger than the send limit of {max_len} bytes"
        )));
    }
    let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("failed to encode message: {e}")))?;
    Ok(buf.freeze())
}

/// Decodes a message body (without its prefix).
///
/// # Errors
///
/// `INTERNAL` when the bytes are not a valid encoding of `M`.
pub(crate) fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(|e| {
        Status::internal(format!("failed to decode {}: {e}", short_type_name::<M>())).with_source(e)
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Splits a byte stream into message bodies.
///
/// The length prefix is checked against the receive limit before any room for the body is
/// reserved, so an oversized message is refused after five bytes.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    buf: BytesMut,
    max_len: usize,
    /// The prefix of the message being assembled, once read.
    current: Option<usize>,
}

impl FrameDecoder {
    pub(crate) fn new(max_len: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            max_len,
            current: None,
        }
    }

    /// Feeds received bytes; complete messages are appended to `out`.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` for a message over the limit; `INTERNAL` for a compressed
    /// message (no compression was negotiated) or an invalid flag byte.
    pub(crate) fn push(&mut self, mut chunk: Bytes, out: &mut Vec<Bytes>) -> Result<(), Status> {
        // Fast path: whole messages straight out of the received chunk, without copying.
        if self.buf.is_empty() && self.current.is_none() {
            while chunk.len() >= PREFIX_LEN {
                let len = self.read_prefix(&chunk[..PREFIX_LEN])?;
                if chunk.len() < PREFIX_LEN + len {
                    break;
                }
                chunk.advance(PREFIX_LEN);
                out.push(chunk.split_to(len));
            }
            if chunk.is_empty() {
                return Ok(());
            }
        }
        self.buf.extend_from_slice(&chunk);
        loop {
            let len = match self.current {
                Some(len) => len,
                None => {
                    if self.buf.len() < PREFIX_LEN {
                        return Ok(());
                    }
                    let len = self.read_prefix(&self.buf[..PREFIX_LEN])?;
                    self.buf.advance(PREFIX_LEN);
                    self.current = Some(len);
                    len
                }
            };
            if self.buf.len() < len {
                self.buf.reserve(len - self.buf.len());
                return Ok(());
            }
            self.current = None;
            out.push(self.buf.split_to(len).freeze());
        }
    }

    fn read_prefix(&self, prefix: &[u8]) -> Result<usize, Status> {
        let flag = prefix[0];
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        match flag {
            0 => {}
            1 => {
                return Err(Status::internal(
                    "received a compressed message, but no grpc-encoding was negotiated",
                ));
            }
            other => {
                return Err(Status::internal(format!(
                    "received a message with invalid compressed flag {other}"
                )));
            }
        }
        if len > self.max_len {
            return Err(Status::resource_exhausted(format!(
                "received message of {len} bytes is larger than the limit of {} bytes",
                self.max_len
            )));
        }
        Ok(len)
    }

    /// Whether a message was cut off mid-way (bytes received but not a whole message).
    pub(crate) fn has_partial(&self) -> bool {
        self.current.is_some() || !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_messages_across_any_chunking() {
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 7]).collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        for chunk_len in [1, 2, 3, 5, 7, 64, wire.len()] {
            let mut dec = FrameDecoder::new(1024);
            let mut out = Vec::new();
            for chunk in wire.chunks(chunk_len) {
                dec.push(Bytes::copy_from_slice(chunk), &mut out).unwrap();
            }
            assert!(!dec.has_partial());
            let got: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, bodies, "chunk length {chunk_len}");
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let mut dec = FrameDecoder::new(10);
        let mut out = Vec::new();
        let prefix = [0, 0xff, 0xff, 0xff, 0xff];
        let err = dec
            .push(Bytes::copy_from_slice(&prefix), &mut out)
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(dec.buf.capacity() < 1024);
    }

    #[test]
    fn compressed_flag_without_encoding_is_internal() {
        let mut dec = FrameDecoder::new(10);
        let err = dec
            .push(Bytes::from_static(&[1, 0, 0, 0, 0]), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        let err = FrameDecoder::new(10)
            .push(Bytes::from_static(&[7, 0, 0, 0, 0]), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[test]
    fn truncated_message_is_reported_as_partial() {
        let mut dec = FrameDecoder::new(10);
        let mut out = Vec::new();
        dec.push(Bytes::from_static(&[0, 0, 0, 0, 3, 1]), &mut out)
            .unwrap();
        assert!(out.is_empty());
        assert!(dec.has_partial());
    }

    #[test]
    fn encode_respects_the_send_limit() {
        let msg = prost_types_like::Blob { data: vec![1; 100] };
        assert_eq!(
            encode(&msg, 10).unwrap_err().code(),
            Code::ResourceExhausted
        );
        let framed = encode(&msg, 1000).unwrap();
        let mut out = Vec::new();
        FrameDecoder::new(1000).push(framed, &mut out).unwrap();
        let back: prost_types_like::Blob = decode(out.pop().unwrap()).unwrap();
        assert_eq!(back, msg);
    }

    mod prost_types_like {
        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct Blob {
            #[prost(bytes = "vec", tag = "1")]
            pub(crate) data: Vec<u8>,
        }
    }
}
