//! Thin entry points into private parsers, for the fuzz targets in `fuzz/` and the tests
//! that replay their seed corpus on stable. Not part of the API: no stability promise.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::Status;
use crate::codec::{CompressionEncoding, FrameDecoder};

/// One received message as the framing decoder splits it: the compressed flag and the body.
pub type DecodedFrame = (bool, Bytes);

/// What the framing decoder made of a byte stream.
#[derive(Debug)]
pub struct DecodedFrames {
    /// The whole messages, in order, up to the first error.
    pub frames: Vec<DecodedFrame>,
    /// The error that stopped decoding, if any.
    pub error: Option<Status>,
    /// Whether bytes of an unfinished message remain (without an error).
    pub partial: bool,
}

/// Feeds `chunks`, in order, to a framing decoder with receive limit `max_len` (that
/// accepts compressed messages when `allow_compressed`), stopping at the first error.
pub fn decode_frames(chunks: &[&[u8]], max_len: usize, allow_compressed: bool) -> DecodedFrames {
    let mut decoder = FrameDecoder::new(max_len);
    if allow_compressed {
        decoder.allow_compressed();
    }
    let mut out = Vec::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(status) = decoder.push(Bytes::copy_from_slice(chunk), &mut out) {
            error = Some(status);
            break;
        }
    }
    DecodedFrames {
        frames: out.into_iter().map(|f| (f.compressed, f.body)).collect(),
        partial: error.is_none() && decoder.has_partial(),
        error,
    }
}

/// Decompresses a gzip message body, producing at most `max_len` bytes.
///
/// # Errors
///
/// As the runtime's receive path: `RESOURCE_EXHAUSTED` past the limit, `INTERNAL` for a
/// body that is not gzip.
pub fn decompress_gzip(body: &[u8], max_len: usize) -> Result<Bytes, Status> {
    crate::codec::decompress(CompressionEncoding::Gzip, body, max_len)
}

/// Parses a `grpc-timeout` value; `None` when it is malformed.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    crate::deadline::parse_timeout(value)
}

/// Encodes a timeout as a `grpc-timeout` value.
pub fn encode_timeout(timeout: Duration) -> String {
    crate::deadline::encode_timeout(timeout)
}

/// Percent-encodes a status message for `grpc-message`.
pub fn encode_message(message: &str) -> String {
    crate::status::encode_message(message)
}

/// Decodes a received `grpc-message` value.
pub fn decode_message(raw: &[u8]) -> String {
    crate::status::decode_message(raw)
}

/// Base64-encodes a binary metadata value as sent.
pub fn encode_binary(value: &[u8]) -> String {
    // Base64 is ASCII, so the header value is always text.
    String::from_utf8_lossy(crate::metadata::encode_binary(value).as_bytes()).into_owned()
}

/// Decodes a received binary metadata value (padded or unpadded base64).
///
/// # Errors
///
/// When it is not base64, with the decoder's reason.
pub fn decode_binary(raw: &[u8]) -> Result<Bytes, String> {
    crate::metadata::decode_binary(raw).map_err(|e| e.to_string())
}

/// Builds received headers from raw name/value pairs, skipping the pairs `http` would not
/// accept off the wire either (h2 refuses those before the runtime sees them).
pub fn headers(pairs: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// The status a client reads from received trailers; `None` without `grpc-status`.
pub fn status_from_headers(headers: &HeaderMap) -> Option<Status> {
    Status::from_headers(headers)
}

/// The metadata a handler or client sees in received headers.
pub fn metadata_from_headers(headers: &HeaderMap) -> crate::MetadataMap {
    crate::MetadataMap::from_headers(headers)
}

/// The trailers a server sends for `status`.
pub fn status_to_headers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::new();
    status.write_headers(&mut headers);
    headers
}

/// One header block's fields, as name-value pairs.
pub type HeaderFields = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes header blocks sent one after another on one connection (so sharing the HPACK
/// dynamic table) by a peer allowed a table of `table_size` bytes: the fields of each
/// block up to the first that does not decode, and why that one does not (`truncated`,
/// `overflow`, `bad_index`, `bad_size_update` or `huffman`).
pub fn decode_header_blocks(
    blocks: &[&[u8]],
    table_size: usize,
) -> (Vec<HeaderFields>, Option<&'static str>) {
    use crate::transport::hpack::{Decoder, HpackError};
    let mut decoder = Decoder::new(table_size);
    let mut out = Vec::new();
    for block in blocks {
        let mut fields = Vec::new();
        let result = decoder.decode(block, |name, value| {
            fields.push((name.to_vec(), value.to_vec()));
        });
        if let Err(e) = result {
            let class = match e {
                HpackError::Truncated => "truncated",
                HpackError::Overflow => "overflow",
                HpackError::BadIndex(_) => "bad_index",
                HpackError::BadSizeUpdate => "bad_size_update",
                HpackError::Huffman => "huffman",
            };
            return (out, Some(class));
        }
        out.push(fields);
    }
    (out, None)
}
