//! gRPC-Web's wire format, the same for server and client: its content types, the
//! trailers sent as the body's last frame (flag `0x80`), and the base64 text form
//! (`application/grpc-web-text`), decoded in four-character groups so that a body may be
//! several padded base64 runs one after another (as servers flush it message by message).
//!
//! The protocol is gRPC's own messages in an HTTP body that has no trailers
//! (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md>).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::status::Status;

pub(crate) use crate::codec::TRAILERS_FLAG;

/// Content type of binary gRPC-Web responses.
pub(crate) const CONTENT_TYPE: &str = "application/grpc-web+proto";
/// Content type of base64 text gRPC-Web responses.
pub(crate) const CONTENT_TYPE_TEXT: &str = "application/grpc-web-text+proto";

/// The form of a gRPC-Web body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// `application/grpc-web[+proto]`: bytes as in native gRPC.
    Binary,
    /// `application/grpc-web-text[+proto]`: the same bytes, base64.
    Text,
}

impl Form {
    /// The gRPC-Web form of a `content-type`, or `None` when it is not gRPC-Web's
    /// (`application/grpc-web`, `-text`, each optionally with `+proto` or parameters).
    pub(crate) fn of(content_type: Option<&HeaderValue>) -> Option<Form> {
        let value = content_type?.as_bytes();
        let rest = value.strip_prefix(b"application/grpc-web")?;
        let (form, rest) = match rest.strip_prefix(b"-text") {
            Some(rest) => (Form::Text, rest),
            None => (Form::Binary, rest),
        };
        let subtype_ok = rest.is_empty()
            || rest.starts_with(b";")
            || rest == b"+proto"
            || rest.starts_with(b"+proto;");
        subtype_ok.then_some(form)
    }

    /// The response content type of this form.
    pub(crate) fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Form::Binary => CONTENT_TYPE,
            Form::Text => CONTENT_TYPE_TEXT,
        })
    }
}

/// The trailers frame: `0x80`, the block's length, then each field as `name: value\r\n`
/// (names in lower case, as HTTP/2 has them).
pub(crate) fn trailers_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = BytesMut::new();
    for (name, value) in trailers {
        block.put_slice(name.as_str().as_bytes());
        block.put_slice(b": ");
        block.put_slice(value.as_bytes());
        block.put_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(TRAILERS_FLAG);
    frame.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
    frame.put_slice(&block);
    frame.freeze()
}

/// Reads a trailers frame's block (without its prefix) back into fields.
///
/// # Errors
///
/// `INTERNAL` for a line without a colon or a name or value HTTP does not allow.
pub(crate) fn parse_trailers(block: &[u8]) -> Result<HeaderMap, Status> {
    let mut trailers = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let bad = || {
            Status::internal(format!(
                "malformed grpc-web trailer {:?}",
                String::from_utf8_lossy(line)
            ))
        };
        let colon = line.iter().position(|b| *b == b':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(line[..colon].trim_ascii()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).map_err(|_| bad())?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

/// Encodes bytes of a text-form body: each piece is padded base64 of its own, so nothing
/// waits for the next piece (a reader decodes four characters at a time).
pub(crate) fn encode_text(bytes: &[u8]) -> Bytes {
    Bytes::from(STANDARD.encode(bytes))
}

/// Decodes a text-form body as it arrives, in whole four-character groups; a group
/// with padding ends one base64 run, and another may follow it.
#[derive(Debug, Default)]
pub(crate) struct TextDecoder {
    /// Up to three characters of a group not yet complete.
    carry: Vec<u8>,
}

impl TextDecoder {
    /// The bytes of the complete groups of what arrived so far.
    ///
    /// # Errors
    ///
    /// `INTERNAL` for characters that are not base64.
    pub(crate) fn decode(&mut self, chunk: &[u8]) -> Result<Bytes, Status> {
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(chunk);
        let whole = input.len() - input.len() % 4;
        self.carry = input.split_off(whole);
        let mut out = Vec::with_capacity(whole / 4 * 3);
        for run in input.split_inclusive(|b| *b == b'=') {
            // A run ends at its padding; a second `=` of the same group comes alone.
            if run == b"=" {
                continue;
            }
            let mut padded = run.strip_suffix(b"=").unwrap_or(run).to_vec();
            while padded.len() % 4 != 0 {
                padded.push(b'=');
            }
            STANDARD.decode_vec(&padded, &mut out).map_err(|e| {
                Status::internal(format!("a grpc-web-text body is not base64: {e}"))
            })?;
        }
        Ok(out.into())
    }

    /// Characters of an incomplete group left (at the end of the body: it was cut short).
    pub(crate) fn carried(&self) -> usize {
        self.carry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_recognised() {
        let of = |v: &'static str| Form::of(Some(&HeaderValue::from_static(v)));
        assert_eq!(of("application/grpc-web"), Some(Form::Binary));
        assert_eq!(of("application/grpc-web+proto"), Some(Form::Binary));
        assert_eq!(of("application/grpc-web-text"), Some(Form::Text));
        assert_eq!(of("application/grpc-web-text+proto"), Some(Form::Text));
        assert_eq!(of("application/grpc-web;charset=utf-8"), Some(Form::Binary));
        assert_eq!(of("application/grpc-web+json"), None);
        assert_eq!(of("application/grpc"), None);
        assert_eq!(of("application/grpc-webx"), None);
        assert_eq!(Form::of(None), None);
    }

    #[test]
    fn trailers_round_trip() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("3"));
        trailers.insert("grpc-message", HeaderValue::from_static("bad%20thing"));
        trailers.append("x-bin", HeaderValue::from_static("AAEC"));
        let frame = trailers_frame(&trailers);
        assert_eq!(frame[0], TRAILERS_FLAG);
        let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 5);
        assert_eq!(
            &frame[5..],
            b"grpc-status: 3\r\ngrpc-message: bad%20thing\r\nx-bin: AAEC\r\n"
        );
        assert_eq!(parse_trailers(&frame[5..]).unwrap(), trailers);
        // Other implementations' spacing and line ends.
        let back = parse_trailers(b"Grpc-Status:0\nx-a:  b \r\n").unwrap();
        assert_eq!(back.get("grpc-status").unwrap(), "0");
        assert_eq!(back.get("x-a").unwrap(), "b");
        assert_eq!(
            parse_trailers(b"no colon here\r\n").unwrap_err().code(),
            crate::status::Code::Internal
        );
    }

    #[test]
    fn text_decodes_padded_runs_split_anywhere() {
        // Three messages' worth of runs, each padded differently, as a server that
        // flushes per message sends them.
        let pieces: [&[u8]; 3] = [b"\x00\x00\x00\x00\x01A", b"\x00\x00\x00\x00\x02BC", b"xyz"];
        let body: Vec<u8> = pieces
            .iter()
            .flat_map(|p| encode_text(p).to_vec())
            .collect();
        let expected: Vec<u8> = pieces.concat();
        for split in 1..body.len() {
            let mut decoder = TextDecoder::default();
            let mut out = decoder.decode(&body[..split]).unwrap().to_vec();
            out.extend_from_slice(&decoder.decode(&body[split..]).unwrap());
            assert_eq!(decoder.carried(), 0);
            assert_eq!(out, expected, "split at {split}");
        }
        // One character at a time.
        let mut decoder = TextDecoder::default();
        let mut out = Vec::new();
        for b in &body {
            out.extend_from_slice(&decoder.decode(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(out, expected);
        let mut decoder = TextDecoder::default();
        decoder.decode(b"QUJD" as &[u8]).unwrap();
        decoder.decode(b"QU" as &[u8]).unwrap();
        assert_eq!(decoder.carried(), 2);
        assert!(TextDecoder::default().decode(b"!!!!").is_err());
    }
}
