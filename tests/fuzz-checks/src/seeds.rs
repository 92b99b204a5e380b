//! The seed corpus of each fuzz target: small inputs that reach each outcome and the edge
//! cases (4 GiB length prefixes, compressed flags without an encoding, gzip bombs, timeouts
//! with bad units or too many digits, invalid percent escapes, bad UTF-8, malformed JSON,
//! descriptors the generator must refuse).
//!
//! The checked-in files under `fuzz/corpus/` are exactly what [`all`] returns; the test
//! `tests/corpus.rs` fails on any difference and rewrites them when run with
//! `RSGRPC_WRITE_SEEDS=1`.

use std::io::Write;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    field_descriptor_proto::{Label, Type},
};
use rsgrpc::Code;
use rsgrpc_types::{ErrorDetail, StatusExt};

/// A seed: its file name (`<class>--<what>`) and content.
pub type Seed = (String, Vec<u8>);

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("frame_decoder", frame_decoder()),
        ("gzip", gzip()),
        ("grpc_timeout", grpc_timeout()),
        ("grpc_message", grpc_message()),
        ("metadata", metadata()),
        ("status_details", status_details()),
        ("service_config", service_config()),
        ("codegen", codegen()),
        ("header_block", header_block()),
    ]
}

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> Seed {
    (name.to_owned(), bytes.into())
}

fn frame(flag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn gzipped(plain: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(plain).expect("writing to a Vec");
    gz.finish().expect("writing to a Vec")
}

/// Header of a frame decoder input: flags, chunk length, 16-bit limit.
fn decoder_input(allow_compressed: bool, chunk: u8, max_len: u16, stream: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::from(allow_compressed), chunk];
    v.extend_from_slice(&max_len.to_be_bytes());
    v.extend_from_slice(stream);
    v
}

fn frame_decoder() -> Vec<Seed> {
    let hello = frame(0, b"hello");
    let three: Vec<u8> = [&b"a"[..], b"", b"three"]
        .iter()
        .flat_map(|b| frame(0, b))
        .collect();
    let gz = frame(1, &gzipped(b"compressed hello"));
    let bomb = frame(1, &gzipped(&vec![0; 1 << 20]));
    let mut good_then_bad = hello.clone();
    good_then_bad.extend_from_slice(&[7, 0, 0, 0, 0]);
    vec![
        seed("ok--one-message", decoder_input(false, 0, 1024, &hello)),
        seed(
            "ok--three-messages-bytewise",
            decoder_input(false, 1, 1024, &three),
        ),
        seed(
            "ok--three-messages-in-twos",
            decoder_input(false, 2, 1024, &three),
        ),
        seed("ok--empty-stream", decoder_input(false, 0, 1024, b"")),
        seed(
            "ok--empty-messages-limit-zero",
            decoder_input(false, 3, 0, &[0; 15]),
        ),
        seed("ok--exactly-at-limit", decoder_input(false, 0, 5, &hello)),
        seed(
            "ok--gzip-message-allowed",
            decoder_input(true, 7, 4096, &gz),
        ),
        seed(
            "ok--gzip-bomb-allowed",
            decoder_input(true, 0, 65535, &bomb),
        ),
        seed(
            "ok--garbage-compressed-allowed",
            decoder_input(true, 0, 64, &frame(1, b"not gzip")),
        ),
        seed(
            "partial--truncated-body",
            decoder_input(false, 0, 1024, &hello[..7]),
        ),
        seed(
            "partial--half-prefix",
            decoder_input(false, 0, 1024, &hello[..3]),
        ),
        seed(
            "partial--message-then-half-prefix",
            decoder_input(false, 4, 1024, &[&hello[..], &[0, 0]].concat()),
        ),
        seed(
            "resource_exhausted--4gib-length-prefix",
            decoder_input(false, 0, 4096, &[0, 0xff, 0xff, 0xff, 0xff]),
        ),
        seed(
            "resource_exhausted--4gib-compressed-prefix",
            decoder_input(true, 1, 4096, &[1, 0xff, 0xff, 0xff, 0xff, 0x1f]),
        ),
        seed(
            "resource_exhausted--one-over-limit",
            decoder_input(false, 0, 4, &hello),
        ),
        seed(
            "internal--compressed-flag-without-encoding",
            decoder_input(false, 0, 4096, &gz),
        ),
        seed(
            "internal--invalid-flag",
            decoder_input(true, 0, 4096, &frame(2, b"x")),
        ),
        seed(
            "internal--invalid-flag-after-a-message",
            decoder_input(false, 3, 4096, &good_then_bad),
        ),
    ]
}

/// A gzip input: 24-bit limit, then the body.
fn gzip_input(max_len: u32, body: &[u8]) -> Vec<u8> {
    let mut v = max_len.to_be_bytes()[1..].to_vec();
    v.extend_from_slice(body);
    v
}

fn gzip() -> Vec<Seed> {
    let hello = gzipped(b"hello, hello, hello");
    let mut bad_crc = hello.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    let mut bad_len = hello.clone();
    let at = bad_len.len() - 1;
    bad_len[at] ^= 0x01;
    // 4 MiB of zeros in about 4 KiB: a small gzip bomb.
    let bomb = gzipped(&vec![0; 4 << 20]);
    let mut two_members = hello.clone();
    two_members.extend_from_slice(&gzipped(b"second member"));
    vec![
        seed("ok--hello", gzip_input(1024, &hello)),
        seed("ok--exactly-at-limit", gzip_input(19, &hello)),
        seed("ok--empty-message", gzip_input(0, &gzipped(b""))),
        seed("ok--two-members", gzip_input(1024, &two_members)),
        seed("resource_exhausted--one-over-limit", gzip_input(18, &hello)),
        seed("resource_exhausted--limit-zero", gzip_input(0, &hello)),
        seed(
            "resource_exhausted--bomb-4mib-of-zeros",
            gzip_input(1 << 20, &bomb),
        ),
        seed("internal--not-gzip", gzip_input(1024, b"not gzip at all")),
        seed(
            "internal--truncated",
            gzip_input(1024, &hello[..hello.len() / 2]),
        ),
        seed("internal--header-only", gzip_input(1024, &hello[..10])),
        seed("internal--bad-crc", gzip_input(1024, &bad_crc)),
        seed("internal--bad-length", gzip_input(1024, &bad_len)),
        seed(
            "internal--deflate-without-gzip-header",
            gzip_input(1024, &hello[10..]),
        ),
    ]
}

fn grpc_timeout() -> Vec<Seed> {
    let mut long = vec![0xff; 8];
    long.extend_from_slice(&999_999_999u32.to_be_bytes());
    vec![
        seed("ok--one-second", "1S"),
        seed("ok--largest", "99999999H"),
        seed("ok--zero-nanoseconds", "0n"),
        seed("ok--leading-zeros", "00000001m"),
        seed("ok--microseconds", "250u"),
        seed("ok--minutes", "90M"),
        seed("malformed--nine-digits", "100000000S"),
        seed("malformed--unknown-unit", "10x"),
        seed("malformed--lowercase-hour", "1h"),
        seed("malformed--unit-only", "S"),
        seed("malformed--digits-only", "100"),
        seed("malformed--empty", ""),
        seed("malformed--negative", "-1S"),
        seed("malformed--plus-sign", "+1S"),
        seed("malformed--space", " 1S"),
        seed("malformed--decimal", "1.5S"),
        seed("malformed--non-ascii-digits", "\u{0661}\u{0662}S"),
        seed("malformed--duration-bytes-max", long),
        seed("malformed--duration-bytes-zero", vec![0; 12]),
    ]
}

fn grpc_message() -> Vec<Seed> {
    vec![
        seed("unchanged--plain", "a plain message"),
        seed("unchanged--empty", ""),
        seed("unchanged--invalid-escape", "100%zz done"),
        seed("unchanged--truncated-escape", "abc%"),
        seed("unchanged--half-escape", "abc%4"),
        seed("unchanged--raw-utf8", "caf\u{e9}"),
        seed("decoded--space", "a%20b"),
        seed("decoded--escaped-utf8", "caf%C3%A9"),
        seed("decoded--escaped-percent", "100%25"),
        seed("decoded--escaped-nul", "a%00b"),
        seed("decoded--escaped-bad-utf8", "%ff%fe"),
        seed("decoded--raw-bad-utf8", vec![b'a', 0xff, b'b']),
        seed("decoded--lowercase-hex", "%e2%9c%93"),
        seed("decoded--overlong-utf8", "%C0%AF"),
        seed("decoded--lone-surrogate", "%ED%A0%80"),
    ]
}

/// A metadata input: its fields joined with zero bytes.
fn fields(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

fn metadata() -> Vec<Seed> {
    vec![
        seed("ok--status-ok", fields(&[b"0"])),
        seed(
            "not_found--message-and-metadata",
            fields(&[b"5", b"not%20here", b"", b"x-trace", b"abc"]),
        ),
        seed(
            "internal--details-and-binary-metadata",
            fields(&[b"13", b"boom", b"CAUSBGJvb20", b"x-blob-bin", b"AAEC"]),
        ),
        seed(
            "internal--details-not-base64",
            fields(&[b"13", b"boom", b"!!not base64!!"]),
        ),
        seed("unknown--code-out-of-range", fields(&[b"17"])),
        seed("unknown--negative-code", fields(&[b"-1"])),
        seed(
            "unknown--code-overflows",
            fields(&[b"99999999999999999999"]),
        ),
        seed("unknown--empty-code", fields(&[b"", b"why"])),
        seed("unknown--obs-text-code", fields(&[b"\x80\xff"])),
        seed("cancelled--spaces-around-code", fields(&[b" 1 "])),
        seed("no_status--invalid-header-value", fields(&[b"0\n"])),
        seed(
            "unavailable--bad-utf8-message",
            fields(&[b"14", b"%ff\xfe", b""]),
        ),
        seed(
            "ok--reserved-key",
            fields(&[b"0", b"", b"", b"grpc-timeout", b"1S"]),
        ),
        seed(
            "ok--uppercase-key",
            fields(&[b"0", b"", b"", b"X-Key", b"v"]),
        ),
        seed(
            "ok--binary-value-unpadded",
            fields(&[b"0", b"", b"", b"k-bin", b"YQ"]),
        ),
        seed(
            "ok--binary-value-bad-padding",
            fields(&[b"0", b"", b"", b"k-bin", b"YQ="]),
        ),
        seed(
            "ok--nonprintable-value",
            fields(&[b"0", b"", b"", b"key", b"a\x7fb"]),
        ),
    ]
}

fn status_details() -> Vec<Seed> {
    let rich = rsgrpc::Status::with_error_details(
        Code::ResourceExhausted,
        "slow down",
        [
            ErrorDetail::RetryInfo(rsgrpc_types::RetryInfo {
                retry_delay: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 5,
                }),
            }),
            ErrorDetail::ResourceInfo(rsgrpc_types::ResourceInfo {
                resource_type: "table".into(),
                resource_name: "t1".into(),
                owner: "me".into(),
                description: "busy".into(),
            }),
        ],
    );
    let any = |type_url: &str, value: Vec<u8>| rsgrpc_types::pb::Status {
        code: 3,
        message: "m".into(),
        details: vec![prost_types::Any {
            type_url: type_url.into(),
            value,
        }],
    };
    let retry = "type.googleapis.com/google.rpc.RetryInfo";
    vec![
        seed("none--empty", ""),
        seed("details--rich", rich.details().to_vec()),
        seed(
            "details--no-details",
            rsgrpc_types::pb::Status {
                code: 5,
                message: "gone".into(),
                details: vec![],
            }
            .encode_to_vec(),
        ),
        seed(
            "details--unknown-type-kept",
            any("example.com/my.Detail", vec![1, 2, 3]).encode_to_vec(),
        ),
        seed(
            "details--other-host",
            any("example.com/google.rpc.Help", vec![]).encode_to_vec(),
        ),
        seed(
            "bad_detail--known-type-bad-value",
            any(retry, vec![0xff, 0xff]).encode_to_vec(),
        ),
        seed(
            "bad_detail--duration-truncated",
            any(retry, vec![0x0a, 0x05, 0x08]).encode_to_vec(),
        ),
        seed("not_status--garbage", vec![0xff; 16]),
        seed("not_status--truncated-length", vec![0x12, 0x7f, 0x01]),
        seed("not_status--wrong-wire-type", vec![0x0b]),
    ]
}

fn service_config() -> Vec<Seed> {
    let full = r#"{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "echo.Echo", "method": "Unary"}, {"service": "a.B"}],
    "timeout": "1.5s",
    "waitForReady": true,
    "maxRequestMessageBytes": 1024,
    "retryPolicy": {
      "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 4]
    }
  }],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
}"#;
    // Deep, escaped and odd JSON where the config takes anything: the configuration of a
    // load-balancing policy this implementation does not know, skipped for the next. The
    // parser (serde_json) accepts 127 levels of nesting: three around the policy's
    // configuration, and 124 in it at most.
    let nested = |depth: usize| {
        format!(
            r#"{{"loadBalancingConfig": [{{"some_future_policy": {}0{}}}, {{"pick_first": {{}}}}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let at_limit = nested(124);
    let deep = nested(125);
    vec![
        seed("ok--full", full),
        seed("ok--empty-object", "{}"),
        seed(
            "ok--escapes-and-unknown-keys",
            r#"{"loadBalancingConfig": [{"x\u00e9\n\"": [1e3, -0.5, null, false]}, {"round_robin": {}}]}"#,
        ),
        seed("ok--deep-unknown-value", at_limit),
        seed("invalid--deep-nesting", deep),
        seed("invalid--not-json", "service config"),
        seed("invalid--empty", ""),
        seed("invalid--top-level-array", "[]"),
        seed("invalid--trailing-comma", r#"{"methodConfig": [],}"#),
        seed("invalid--unterminated-string", r#"{"methodConfig"#),
        seed("invalid--bad-escape", r#"{"\u12"}"#),
        // A lone surrogate escape is no character: RFC 8259 leaves its meaning open and
        // I-JSON (RFC 7493) forbids it. serde_json refuses it (the parser before it put
        // U+FFFD in its place), so the whole config is refused.
        seed(
            "invalid--lone-surrogate",
            r#"{"loadBalancingConfig": [{"\ud800": 1}, {"pick_first": {}}]}"#,
        ),
        seed("invalid--unknown-field", r#"{"unknownKey": [0]}"#),
        seed(
            "invalid--hedging",
            r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.1s"}}]}"#,
        ),
        seed(
            "invalid--huge-number",
            r#"{"retryThrottling": {"maxTokens": 1e999, "tokenRatio": 1}}"#,
        ),
        seed(
            "invalid--duration-without-unit",
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1.5", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": [14]}}]}"#,
        ),
        seed(
            "invalid--huge-duration",
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "99999999999999999999s", "backoffMultiplier": 2, "retryableStatusCodes": [14]}}]}"#,
        ),
        seed(
            "invalid--one-attempt",
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
        ),
        seed(
            "invalid--unknown-code",
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["NOPE"]}}]}"#,
        ),
        seed("invalid--trailing-text", "{} {}"),
        seed(
            "not_utf8--latin1",
            vec![b'{', b'"', 0xe9, b'"', b':', b'1', b'}'],
        ),
    ]
}

fn field(name: &str, number: i32, ty: Type, type_name: Option<&str>) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(Into::into),
        json_name: None,
        ..Default::default()
    }
}

fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.into()),
        field: fields,
        ..Default::default()
    }
}

fn method(
    name: &str,
    input: &str,
    output: &str,
    client: bool,
    server: bool,
) -> MethodDescriptorProto {
    MethodDescriptorProto {
        name: Some(name.into()),
        input_type: Some(input.into()),
        output_type: Some(output.into()),
        client_streaming: Some(client),
        server_streaming: Some(server),
        ..Default::default()
    }
}

/// One proto3 file in package `pkg`, with messages `Req` and `Resp` and one service.
fn file(methods: Vec<MethodDescriptorProto>) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("pkg.proto".into()),
        package: Some("pkg".into()),
        syntax: Some("proto3".into()),
        message_type: vec![
            message("Req", vec![field("name", 1, Type::String, None)]),
            message(
                "Resp",
                vec![field("req", 1, Type::Message, Some(".pkg.Req"))],
            ),
        ],
        service: vec![ServiceDescriptorProto {
            name: Some("Svc".into()),
            method: methods,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn set(files: Vec<FileDescriptorProto>) -> Vec<u8> {
    FileDescriptorSet { file: files }.encode_to_vec()
}

/// A `.proto` from the repository (its path from the workspace root), parsed, without
/// source info so the seed stays small.
fn parsed(dir: &str, proto: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join(dir);
    let mut set = rsgrpc_codegen::Builder::new()
        .parse(&[dir.join(proto)], &[&dir])
        .unwrap_or_else(|e| panic!("parsing {proto}: {e}"));
    for file in &mut set.file {
        file.source_code_info = None;
    }
    set.encode_to_vec()
}

fn codegen() -> Vec<Seed> {
    let all_kinds = vec![
        method("Unary", ".pkg.Req", ".pkg.Resp", false, false),
        method("ServerStream", ".pkg.Req", ".pkg.Resp", false, true),
        method("ClientStream", ".pkg.Req", ".pkg.Resp", true, false),
        method("Bidi", ".pkg.Req", ".pkg.Resp", true, true),
    ];
    let mut keyword_names = file(vec![method("type", ".pkg.Req", ".pkg.Resp", false, false)]);
    keyword_names.service[0].name = Some("Self".into());
    let mut colliding_enum = file(vec![]);
    colliding_enum.enum_type = vec![EnumDescriptorProto {
        name: Some("Color".into()),
        value: vec![
            EnumValueDescriptorProto {
                name: Some("COLOR_RED".into()),
                number: Some(0),
                ..Default::default()
            },
            EnumValueDescriptorProto {
                name: Some("RED".into()),
                number: Some(1),
                ..Default::default()
            },
        ],
        ..Default::default()
    }];
    let mut no_package = file(vec![method("Unary", ".Req", ".Resp", false, false)]);
    no_package.package = None;
    no_package.message_type[1].field[0].type_name = Some(".Req".into());
    let mut bad_package = file(vec![]);
    bad_package.package = Some("a..b".into());
    let mut unnamed = file(vec![]);
    unnamed.name = None;
    let mut unknown_syntax = file(vec![]);
    unknown_syntax.syntax = Some("proto4".into());
    let mut editions = file(vec![]);
    editions.syntax = Some("editions".into());
    let mut bad_message_name = file(vec![]);
    bad_message_name.message_type[0].name = Some("Req-1".into());
    bad_message_name.message_type[1].field[0].type_name = Some(".pkg.Req-1".into());
    vec![
        seed(
            "generated--helloworld",
            parsed("examples/proto/helloworld", "helloworld.proto"),
        ),
        seed(
            "generated--routeguide",
            parsed("examples/proto/routeguide", "route_guide.proto"),
        ),
        seed("generated--all-four-kinds", set(vec![file(all_kinds)])),
        seed("generated--no-package", set(vec![no_package])),
        seed("generated--empty-set", set(vec![])),
        seed("generated--keyword-names", set(vec![keyword_names])),
        seed(
            "error--unknown-input-type",
            set(vec![file(vec![method(
                "M",
                ".pkg.Nope",
                ".pkg.Resp",
                false,
                false,
            )])]),
        ),
        seed(
            "error--duplicate-methods",
            set(vec![file(vec![
                method("M", ".pkg.Req", ".pkg.Resp", false, false),
                method("M", ".pkg.Req", ".pkg.Resp", false, false),
            ])]),
        ),
        seed(
            "error--methods-with-one-rust-name",
            set(vec![file(vec![
                method("GetThing", ".pkg.Req", ".pkg.Resp", false, false),
                method("get_thing", ".pkg.Req", ".pkg.Resp", false, false),
            ])]),
        ),
        seed("error--enum-variants-collide", set(vec![colliding_enum])),
        seed("error--empty-package-segment", set(vec![bad_package])),
        seed(
            "error--duplicate-file",
            set(vec![file(vec![]), file(vec![])]),
        ),
        seed("error--unnamed-file", set(vec![unnamed])),
        seed("error--unknown-syntax", set(vec![unknown_syntax])),
        seed("error--editions-syntax", set(vec![editions])),
        seed(
            "error--empty-method-name",
            set(vec![file(vec![method(
                "",
                ".pkg.Req",
                ".pkg.Resp",
                false,
                false,
            )])]),
        ),
        seed(
            "error--message-name-not-identifier",
            set(vec![bad_message_name]),
        ),
        seed("not_descriptor--garbage", vec![0xff; 12]),
        seed(
            "not_descriptor--truncated",
            set(vec![file(vec![])])[..20].to_vec(),
        ),
    ]
}

/// A header-block input: table size (in units of 32 bytes), then each block with its 16-bit
/// length.
fn blocks(table_units: u8, blocks: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![table_units];
    for block in blocks {
        v.extend_from_slice(&(block.len() as u16).to_be_bytes());
        v.extend_from_slice(block);
    }
    v
}

fn header_block() -> Vec<Seed> {
    // RFC 7541, C.3 and C.4: three requests on one connection, as literals and
    // Huffman-coded.
    let c3: [&[u8]; 3] = [
        b"\x82\x86\x84\x41\x0fwww.example.com",
        b"\x82\x86\x84\xbe\x58\x08no-cache",
        b"\x82\x87\x85\xbf\x40\x0acustom-key\x0ccustom-value",
    ];
    let c4: [&[u8]; 3] = [
        b"\x82\x86\x84\x41\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff",
        b"\x82\x86\x84\xbe\x58\x86\xa8\xeb\x10\x64\x9c\xbf",
        b"\x82\x87\x85\xbf\x40\x88\x25\xa8\x49\xe9\x5b\xa9\x7d\x7f\x89\x25\xa8\x49\xe9\x5b\xb8\xe8\xb4\xbf",
    ];
    // A gRPC request as a client sends it, with a Unix socket's path as :authority.
    let grpc = b"\x83\x86\x44\x0d/pkg.Svc/Call\x41\x0f%2Ftmp%2Fs.sock\x5f\x10application/grpc\x40\x02te\x08trailers\x40\x0cgrpc-timeout\x051000m";
    // Many one-character Huffman strings: each costs the decoder a table look-up.
    let huffman_many: Vec<u8> = [0x01u8, 0x81, 0x1f].repeat(2000);
    vec![
        seed("ok--empty", Vec::new()),
        seed("ok--rfc-requests-literal", blocks(128, &c3)),
        seed("ok--rfc-requests-huffman", blocks(128, &c4)),
        seed(
            "ok--grpc-request-twice",
            blocks(128, &[grpc, b"\x83\x86\xc2\xc1\xc0\xbf\xbe"]),
        ),
        seed("ok--tiny-table-evicts", blocks(2, &c3[..2])),
        seed("ok--no-table", blocks(0, &[b"\x40\x01a\x01b\x82"])),
        seed(
            "ok--size-update-then-field",
            blocks(128, &[b"\x20\x3f\xe1\x1f\x82"]),
        ),
        seed("ok--many-huffman-strings", blocks(128, &[&huffman_many])),
        seed("bad_index--zero", blocks(128, &[b"\x80"])),
        seed("bad_index--past-the-tables", blocks(128, &[b"\xbe"])),
        seed("bad_index--evicted-entry", blocks(2, &c3)),
        seed(
            "bad_size_update--after-a-field",
            blocks(128, &[b"\x82\x20"]),
        ),
        seed(
            "bad_size_update--over-the-allowed",
            blocks(1, &[b"\x3f\x02"]),
        ),
        seed("truncated--string", blocks(128, &[b"\x40\x05ab"])),
        seed("truncated--integer", blocks(128, &[b"\xff"])),
        seed(
            "overflow--five-continuation-bytes",
            blocks(128, &[b"\xff\x80\x80\x80\x80\x01"]),
        ),
        seed("huffman--eos", blocks(128, &[b"\x04\x84\xff\xff\xff\xff"])),
        seed("huffman--long-padding", blocks(128, &[b"\x04\x81\xff"])),
    ]
}
