//! What each fuzz target in `fuzz/` checks, one function per target, so that libFuzzer
//! (nightly, `cargo fuzz run`) and the seed replay test (`cargo test`, stable) run the same
//! code.
//!
//! Each function takes the fuzzer's bytes, runs them through the parser under test, panics
//! when an invariant does not hold (a fuzzer finding) and otherwise returns the class of
//! outcome, such as `"ok"` or `"resource_exhausted"`. Seed files are named
//! `<class>--<what>`, and the replay test checks each seed still lands in its class.
//!
//! [`seeds`] makes the checked-in seed corpus, `fuzz/corpus/<target>/`.

use std::time::Duration;

use rsgrpc::fuzzing;
use rsgrpc::{Code, MetadataMap, Status};
use rsgrpc_types::StatusExt;

pub mod seeds;

/// A fuzz target's check: the class of outcome of one input; panics on a finding.
pub type Check = fn(&[u8]) -> &'static str;

/// The fuzz targets, by name (the directory of their seeds under `fuzz/corpus/`), with
/// their checks.
pub const TARGETS: &[(&str, Check)] = &[
    ("frame_decoder", frame_decoder),
    ("gzip", gzip),
    ("grpc_timeout", grpc_timeout),
    ("grpc_message", grpc_message),
    ("metadata", metadata),
    ("status_details", status_details),
    ("service_config", service_config),
    ("codegen", codegen),
    ("header_block", header_block),
];

/// The class of a status code: its name in snake case.
fn class(code: Code) -> &'static str {
    match code {
        Code::Internal => "internal",
        Code::ResourceExhausted => "resource_exhausted",
        other => panic!("unexpected status code {other:?}"),
    }
}

/// A `u32` from up to four bytes, big-endian.
fn be_u32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0, |n, b| (n << 8) | u32::from(*b))
}

/// The message framing decoder.
///
/// Input: a flags byte (bit 0: compressed messages allowed), a chunk length byte (0: one
/// chunk), two bytes of receive limit (big-endian), then the received stream.
///
/// Checks: the outcome is the same however the stream is cut into chunks; every message
/// is within the limit; errors are `INTERNAL` or `RESOURCE_EXHAUSTED`; compressed
/// messages appear only when allowed, and decompress within the limit or fail cleanly.
/// Class: `ok`, `partial` (a message cut off), or the error's code.
pub fn frame_decoder(data: &[u8]) -> &'static str {
    if data.len() < 4 {
        return "short";
    }
    let allow_compressed = data[0] & 1 == 1;
    let chunk = usize::from(data[1]);
    let max_len = be_u32(&data[2..4]) as usize;
    let stream = &data[4..];

    let whole = fuzzing::decode_frames(&[stream], max_len, allow_compressed);
    let cut: Vec<&[u8]> = if chunk == 0 {
        vec![stream]
    } else {
        stream.chunks(chunk).collect()
    };
    let chunked = fuzzing::decode_frames(&cut, max_len, allow_compressed);
    let ones: Vec<&[u8]> = stream.chunks(1).collect();
    let bytewise = fuzzing::decode_frames(&ones, max_len, allow_compressed);
    for other in [&chunked, &bytewise] {
        assert_eq!(whole.frames, other.frames, "frames depend on chunking");
        assert_eq!(
            whole.error.as_ref().map(Status::code),
            other.error.as_ref().map(Status::code),
            "error depends on chunking"
        );
        assert_eq!(whole.partial, other.partial, "partial depends on chunking");
    }
    let mut framed_len = 0;
    for (compressed, body) in &whole.frames {
        assert!(body.len() <= max_len, "message over the limit was accepted");
        assert!(
            allow_compressed || !compressed,
            "compressed without encoding"
        );
        framed_len += 5 + body.len();
        if *compressed {
            match fuzzing::decompress_gzip(body, max_len) {
                Ok(plain) => assert!(plain.len() <= max_len),
                Err(status) => {
                    class(status.code());
                }
            }
        }
    }
    assert!(framed_len <= stream.len());
    match (&whole.error, whole.partial) {
        (Some(status), _) => class(status.code()),
        (None, true) => {
            assert!(framed_len < stream.len(), "partial with every byte framed");
            "partial"
        }
        (None, false) => {
            assert_eq!(framed_len, stream.len(), "bytes lost without an error");
            "ok"
        }
    }
}

/// gzip decompression with a limit.
///
/// Input: three bytes of limit (big-endian), then the compressed body.
///
/// Checks: output never exceeds the limit; errors are `INTERNAL` (not gzip) or
/// `RESOURCE_EXHAUSTED` (over the limit); the limit is exact: the same body decompresses
/// with the limit set to its output's length, and is refused one byte below it.
/// Class: `ok` or the error's code.
pub fn gzip(data: &[u8]) -> &'static str {
    if data.len() < 3 {
        return "short";
    }
    let max_len = be_u32(&data[..3]) as usize;
    let body = &data[3..];
    match fuzzing::decompress_gzip(body, max_len) {
        Ok(plain) => {
            assert!(plain.len() <= max_len, "output over the limit");
            let exact = fuzzing::decompress_gzip(body, plain.len())
                .expect("fits a limit of its own length");
            assert_eq!(exact, plain);
            if let Some(below) = plain.len().checked_sub(1) {
                let err = fuzzing::decompress_gzip(body, below).expect_err("one byte over");
                assert_eq!(err.code(), Code::ResourceExhausted);
            }
            "ok"
        }
        Err(status) => class(status.code()),
    }
}

/// `grpc-timeout` parsing and encoding.
///
/// Input: the header value. Checks: a value parses only when it is one to eight ASCII
/// digits and a unit; what parses encodes to a value that parses to at least as long, at
/// most one unit step longer; when the input is long enough, its first twelve bytes as a
/// duration also encode to a valid value that is not shorter, by under 0.001 % (up to the
/// format's largest).
/// Class: `ok` or `malformed`.
pub fn grpc_timeout(data: &[u8]) -> &'static str {
    if data.len() >= 12 {
        let secs = u64::from(be_u32(&data[..4])) << 32 | u64::from(be_u32(&data[4..8]));
        let nanos = be_u32(&data[8..12]) % 1_000_000_000;
        check_encoding(Duration::new(secs, nanos));
    }
    let Some(timeout) = fuzzing::parse_timeout(data) else {
        return "malformed";
    };
    let (unit, digits) = data.split_last().expect("parsed from nothing");
    assert!(b"HMSmun".contains(unit), "parsed with unit {unit}");
    assert!((1..=8).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit));
    check_encoding(timeout);
    "ok"
}

fn check_encoding(timeout: Duration) {
    const LARGEST: Duration = Duration::from_secs(99_999_999 * 3600);
    let encoded = fuzzing::encode_timeout(timeout);
    assert!(
        encoded.len() <= 9,
        "{encoded:?} is longer than eight digits and a unit"
    );
    let back = fuzzing::parse_timeout(encoded.as_bytes())
        .unwrap_or_else(|| panic!("{timeout:?} encoded to unparsable {encoded:?}"));
    if timeout >= LARGEST {
        assert_eq!(back, LARGEST);
    } else {
        assert!(
            back >= timeout,
            "{timeout:?} encoded shorter, as {encoded:?}"
        );
        // Rounding up is by less than one unit of the chosen scale, and a coarser scale
        // is used only once the value in it is at least 100 000, so under 0.001 %.
        let slack = timeout / 100_000 + Duration::from_nanos(1);
        assert!(
            back - timeout <= slack,
            "{timeout:?} encoded as {encoded:?}, {back:?}"
        );
    }
}

/// `grpc-message` percent-encoding.
///
/// Input: a received `grpc-message` value. Checks: decoding never fails; decoding what
/// the encoder makes of any text gives the text back; the encoder emits only visible
/// ASCII. Class: `unchanged` (decoded to the same bytes) or `decoded`.
pub fn grpc_message(data: &[u8]) -> &'static str {
    let decoded = fuzzing::decode_message(data);
    for text in [decoded.as_str(), &String::from_utf8_lossy(data)] {
        let encoded = fuzzing::encode_message(text);
        assert!(
            encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "encoded {text:?} to {encoded:?}"
        );
        assert_eq!(fuzzing::decode_message(encoded.as_bytes()), text);
    }
    if decoded.as_bytes() == data {
        "unchanged"
    } else {
        "decoded"
    }
}

/// Received metadata and status trailers, and metadata set through the API.
///
/// Input: up to five fields separated by zero bytes: `grpc-status`, `grpc-message` and
/// `grpc-status-details-bin` values, then a metadata key and value.
///
/// Checks: a status is read whenever `grpc-status` is a valid header value, with the code
/// it names or `UNKNOWN`; writing that status and reading it back keeps code, message and
/// details; the key and value, if the API accepts them, read back the same, as text or as
/// binary; received metadata never includes the protocol's own headers.
/// Class: the status code in snake case, or `no_status`.
pub fn metadata(data: &[u8]) -> &'static str {
    let mut fields = data.split(|b| *b == 0);
    let mut next = || fields.next().unwrap_or_default();
    let (status, message, details, key, value) = (next(), next(), next(), next(), next());

    let headers = fuzzing::headers(&[
        (b"grpc-status", status),
        (b"grpc-message", message),
        (b"grpc-status-details-bin", details),
        (key, value),
    ]);
    let received = fuzzing::metadata_from_headers(&headers);
    for (name, _) in received.iter() {
        assert!(
            !matches!(
                name,
                "grpc-status" | "grpc-message" | "grpc-status-details-bin"
            ),
            "{name} reached the metadata"
        );
    }
    let outcome = match fuzzing::status_from_headers(&headers) {
        None => {
            assert!(!headers.contains_key("grpc-status"));
            "no_status"
        }
        Some(read) => {
            let again = fuzzing::status_from_headers(&fuzzing::status_to_headers(&read))
                .expect("written status has grpc-status");
            assert_eq!(again.code(), read.code());
            assert_eq!(again.message(), read.message());
            assert_eq!(again.details(), read.details());
            code_name(read.code())
        }
    };

    if let (Ok(key), Ok(text)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
        let mut md = MetadataMap::new();
        if md.insert(key, text).is_ok() {
            assert_eq!(md.get(key), Some(text));
        }
        let mut md = MetadataMap::new();
        if md.insert_bin(key, value).is_ok() {
            assert_eq!(md.get_bin(key).as_deref(), Some(value));
        }
    }
    if let Ok(bytes) = fuzzing::decode_binary(value) {
        let encoded = fuzzing::encode_binary(&bytes);
        assert_eq!(fuzzing::decode_binary(encoded.as_bytes()), Ok(bytes));
    }
    outcome
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
        _ => "other",
    }
}

/// Rich error details (`grpc-status-details-bin`, a `google.rpc.Status`).
///
/// Input: the details bytes. Checks: reading them never panics; typed details that decode
/// survive being sent again (encoded into a status, through its trailers, read back).
/// Class: `none` (empty), `details`, `not_status` (not a `google.rpc.Status`) or
/// `bad_detail` (a known detail type that does not decode).
pub fn status_details(data: &[u8]) -> &'static str {
    let status = Status::with_details(Code::Internal, "details", data.to_vec().into());
    let through = fuzzing::status_from_headers(&fuzzing::status_to_headers(&status))
        .expect("written status has grpc-status");
    assert_eq!(through.details(), status.details());
    let Ok(rpc) = status.rpc_status() else {
        return "not_status";
    };
    match status.error_details() {
        Ok(details) => {
            let Some(rpc) = rpc else {
                assert!(data.is_empty());
                return "none";
            };
            let resent = Status::with_error_details(Code::Internal, rpc.message, details.clone());
            let back = fuzzing::status_from_headers(&fuzzing::status_to_headers(&resent))
                .expect("written status has grpc-status");
            assert_eq!(back.error_details().expect("re-encoded details"), details);
            "details"
        }
        Err(_) => "bad_detail",
    }
}

/// The HPACK decoder (header blocks of one connection, sharing the dynamic table).
///
/// Input: a byte of table size (times 32 bytes), then blocks, each a 16-bit big-endian
/// length and that many bytes (the last may be short). Checks, differentially against
/// loona-hpack (an independent decoder, up to the first block over 1 KiB, since its
/// Huffman decoding is slow): while both decode a block, they give the same
/// fields; ours refuses only what the RFC lets it (a size update after a field, an integer
/// longer than any block could need) where loona accepts, and accepts only a block ending
/// in a size update where loona refuses it; the fields of a decoded block, written again
/// as literals, decode to themselves on a fresh connection. Class: `ok`, or the error
/// that stopped decoding (`truncated`, `overflow`, `bad_index`, `bad_size_update`,
/// `huffman`).
pub fn header_block(data: &[u8]) -> &'static str {
    let Some((&size, mut rest)) = data.split_first() else {
        return "ok";
    };
    let table_size = usize::from(size) * 32;
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(be_u32(&rest[..rest.len().min(2)]) as u16).min(rest.len());
        let body = &rest[rest.len().min(2)..];
        let len = len.min(body.len());
        blocks.push(&body[..len]);
        rest = &body[len..];
    }
    let (decoded, error) = fuzzing::decode_header_blocks(&blocks, table_size);
    let mut theirs = loona_hpack::Decoder::new();
    theirs.set_max_allowed_table_size(table_size);
    theirs.set_max_table_size(table_size);
    for (i, block) in blocks.iter().enumerate() {
        if block.len() > LOONA_MAX {
            // loona-hpack builds its Huffman table for every string it decodes: a long
            // block of short strings would take the fuzzer's time. The comparison stops
            // here (the tables may differ after a block one decoder did not see).
            break;
        }
        let loona = theirs.decode(block);
        match (decoded.get(i), loona) {
            (Some(ours), Ok(loona)) => assert_eq!(ours, &loona, "block {i}"),
            (Some(_), Err(e)) => {
                assert!(
                    matches!(e, loona_hpack::decoder::DecoderError::SizeUpdateAtEnd),
                    "block {i}: we decoded what loona refuses: {e:?}"
                );
                break;
            }
            (None, Ok(_)) => {
                assert!(
                    matches!(error, Some("bad_size_update" | "overflow")),
                    "block {i}: loona decoded what we refuse ({error:?})"
                );
                break;
            }
            (None, Err(_)) => break,
        }
    }
    for fields in &decoded {
        let mut literals = Vec::new();
        for (name, value) in fields {
            literals.push(0);
            hpack_integer(&mut literals, name.len());
            literals.extend_from_slice(name);
            hpack_integer(&mut literals, value.len());
            literals.extend_from_slice(value);
        }
        let (again, error) = fuzzing::decode_header_blocks(&[&literals], 0);
        assert_eq!(error, None, "literals of decoded fields");
        assert_eq!(&again[0], fields);
    }
    error.unwrap_or("ok")
}

/// The longest block `header_block` compares with loona-hpack.
const LOONA_MAX: usize = 1024;

/// An HPACK integer with a 7-bit prefix (a string length).
fn hpack_integer(out: &mut Vec<u8>, mut value: usize) {
    if value < 127 {
        out.push(value as u8);
        return;
    }
    out.push(127);
    value -= 127;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The service-config JSON parser.
///
/// Input: the JSON text (not UTF-8: skipped, as the API takes `&str`). Checks: never
/// panics, and an error says what is wrong. Class: `ok`, `invalid` or `not_utf8`.
pub fn service_config(data: &[u8]) -> &'static str {
    let Ok(text) = std::str::from_utf8(data) else {
        return "not_utf8";
    };
    match rsgrpc::channel::ServiceConfig::from_json(text) {
        Ok(_) => "ok",
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty error");
            "invalid"
        }
    }
}

/// The code generator on an arbitrary `FileDescriptorSet`.
///
/// Input: an encoded `FileDescriptorSet`; code is generated for all its files. Checks: it
/// never panics; generated files parse as Rust; errors have a message. Class:
/// `not_descriptor` (the bytes do not decode), `generated` or `error`.
pub fn codegen(data: &[u8]) -> &'static str {
    use prost::Message;
    let Ok(set) = prost_types::FileDescriptorSet::decode(data) else {
        return "not_descriptor";
    };
    let mut names: Vec<String> = set.file.iter().map(|f| f.name().to_owned()).collect();
    names.sort();
    names.dedup();
    match rsgrpc_codegen::Builder::new().generate(&set, &names) {
        Ok(files) => {
            for file in files {
                if let Err(e) = syn::parse_file(&file.content) {
                    panic!(
                        "generated {} does not parse: {e}\n{}",
                        file.name, file.content
                    );
                }
            }
            "generated"
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty error");
            "error"
        }
    }
}
