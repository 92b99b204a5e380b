//! The interop test cases, with the generated blocking and async clients.

use std::time::Duration;

use futures::StreamExt;
use rsgrpc::{Channel, Code, CompressionEncoding, Request, Status};

use crate::testing::test_service_client::{TestServiceBlockingClient, TestServiceClient};
use crate::testing::unimplemented_service_client::{
    UnimplementedServiceBlockingClient, UnimplementedServiceClient,
};
use crate::testing::{
    BoolValue, EchoStatus, Empty, ResponseParameters, SimpleRequest, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest,
};
use crate::{ECHO_INITIAL, ECHO_TRAILING, payload, with_custom_metadata};

/// A failed check, with what was expected.
pub type Outcome = Result<(), String>;

fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok { Ok(()) } else { Err(what()) }
}

fn status(result: Status) -> String {
    format!("unexpected {result}")
}

const REQUEST_SIZES: [i32; 4] = [27182, 8, 1828, 45904];
const RESPONSE_SIZES: [i32; 4] = [31415, 9, 2653, 58979];
const SPECIAL_MESSAGE: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 314_159,
        payload: payload(271_828),
        ..Default::default()
    }
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

fn output_request(sizes: &[i32], compressed: Option<bool>) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size,
                compressed: compressed.and_then(bool_value),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The server_compressed_streaming request: 31415 bytes compressed, then 92653 not.
fn compressed_then_plain() -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size: 31415,
                compressed: bool_value(true),
                ..Default::default()
            },
            ResponseParameters {
                size: 92653,
                compressed: bool_value(false),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn input_request(size: i32, expect_compressed: Option<bool>) -> StreamingInputCallRequest {
    StreamingInputCallRequest {
        payload: payload(size),
        expect_compressed: expect_compressed.and_then(bool_value),
    }
}

fn status_request() -> SimpleRequest {
    SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: "test status message".into(),
        }),
        ..Default::default()
    }
}

fn body_len(p: &Option<crate::testing::Payload>) -> usize {
    p.as_ref().map_or(0, |p| p.body.len())
}

fn expect_code<T>(result: Result<T, Status>, code: Code, message: Option<&str>) -> Outcome {
    match result {
        Ok(_) => Err(format!("expected {code}, the call succeeded")),
        Err(s) if s.code() == code && message.is_none_or(|m| s.message() == m) => Ok(()),
        Err(s) => Err(format!("expected {code} {message:?}, got {s}")),
    }
}

/// Runs one case with the blocking clients.
pub fn run_blocking(case: &str, channel: &Channel) -> Outcome {
    let client = TestServiceBlockingClient::new(channel.clone());
    match case {
        "empty_unary" => {
            client.empty_call(Empty {}).map_err(status)?;
            Ok(())
        }
        "large_unary" => {
            let reply = client
                .unary_call(large_request())
                .map_err(status)?
                .into_inner();
            check(body_len(&reply.payload) == 314_159, || {
                "wrong payload size".into()
            })
        }
        "client_compressed_unary" => {
            let probe = SimpleRequest {
                expect_compressed: bool_value(true),
                ..large_request()
            };
            probe_compression_check(client.unary_call(probe.clone()).map(drop))?;
            let mut compressed = Request::new(probe);
            compressed.set_send_compressed(CompressionEncoding::Gzip);
            client.unary_call(compressed).map_err(status)?;
            let plain = SimpleRequest {
                expect_compressed: bool_value(false),
                ..large_request()
            };
            client.unary_call(plain).map_err(status)?;
            Ok(())
        }
        "server_compressed_unary" => {
            for compressed in [true, false] {
                let request = SimpleRequest {
                    response_compressed: bool_value(compressed),
                    ..large_request()
                };
                let reply = client.unary_call(request).map_err(status)?;
                // The spec: a response asked to be compressed must arrive compressed, one
                // asked not to be must not.
                check(reply.message_compressed() == compressed, || {
                    format!("response compressed: {}", reply.message_compressed())
                })?;
                check(body_len(&reply.get_ref().payload) == 314_159, || {
                    "wrong payload size".into()
                })?;
            }
            Ok(())
        }
        "client_streaming" => {
            let requests = REQUEST_SIZES.map(|s| input_request(s, None));
            let reply = client
                .streaming_input_call(requests)
                .map_err(status)?
                .into_inner();
            check(reply.aggregated_payload_size == 74922, || {
                format!("aggregated {}", reply.aggregated_payload_size)
            })
        }
        "client_compressed_streaming" => {
            // Probe: a message claiming compression that is not compressed is refused.
            let result = client.streaming_input_call([input_request(27182, Some(true))]);
            probe_compression_check(result.map(drop))?;
            let mut request = Request::new(());
            request.set_send_compressed(CompressionEncoding::Gzip);
            // The generated blocking method takes an iterator; switching compression between
            // messages needs the sender handle, which the generic client offers.
            let (mut sender, mut replies) = rsgrpc::client::Client::new(channel.clone())
                .blocking_bidi_streaming::<StreamingInputCallRequest, StreamingInputCallResponse>(
                    "/grpc.testing.TestService/StreamingInputCall",
                    request,
                )
                .map_err(status)?;
            sender
                .send(input_request(27182, Some(true)))
                .map_err(status)?;
            sender.set_compression(false);
            sender
                .send(input_request(45904, Some(false)))
                .map_err(status)?;
            sender.finish();
            let reply = replies.recv().map_err(status)?.ok_or("no response")?;
            check(reply.aggregated_payload_size == 73086, || {
                format!("aggregated {}", reply.aggregated_payload_size)
            })
        }
        "server_streaming" => {
            let mut stream = client
                .streaming_output_call(output_request(&RESPONSE_SIZES, None))
                .map_err(status)?
                .into_inner();
            let mut sizes = Vec::new();
            while let Some(reply) = stream.recv().map_err(status)? {
                sizes.push(body_len(&reply.payload) as i32);
            }
            check(sizes == RESPONSE_SIZES, || format!("sizes {sizes:?}"))
        }
        "server_compressed_streaming" => {
            let request = compressed_then_plain();
            let mut stream = client
                .streaming_output_call(request)
                .map_err(status)?
                .into_inner();
            let mut seen = Vec::new();
            while let Some(reply) = stream.recv().map_err(status)? {
                seen.push((body_len(&reply.payload), stream.last_message_compressed()));
            }
            check(seen == [(31415, true), (92653, false)], || {
                format!("got {seen:?}")
            })
        }
        "ping_pong" => {
            let (mut sender, mut replies) = client.full_duplex_call().map_err(status)?;
            for (req, resp) in REQUEST_SIZES.iter().zip(RESPONSE_SIZES) {
                let mut request = output_request(&[resp], None);
                request.payload = payload(*req);
                sender.send(request).map_err(status)?;
                let reply = replies
                    .recv()
                    .map_err(status)?
                    .ok_or("stream ended early")?;
                check(body_len(&reply.payload) == resp as usize, || {
                    "wrong size".into()
                })?;
            }
            sender.finish();
            check(replies.recv().map_err(status)?.is_none(), || {
                "extra response".into()
            })
        }
        "empty_stream" => {
            let (sender, mut replies) = client.full_duplex_call().map_err(status)?;
            sender.finish();
            check(replies.recv().map_err(status)?.is_none(), || {
                "unexpected response".into()
            })
        }
        "timeout_on_sleeping_server" => {
            let mut request = Request::new(());
            request.set_timeout(Duration::from_millis(1));
            let (mut sender, mut replies) =
                client.full_duplex_call_with(request).map_err(status)?;
            let mut message = output_request(&[31415], None);
            message.payload = payload(27182);
            let _ = sender.send(message);
            // Read until the call ends; it must end with DEADLINE_EXCEEDED.
            loop {
                match replies.recv() {
                    Ok(Some(_)) => continue,
                    result => return expect_code(result, Code::DeadlineExceeded, None),
                }
            }
        }
        "cancel_after_begin" => {
            let (mut sender, replies) = client.full_duplex_call().map_err(status)?;
            drop(replies); // cancels the call
            sends_fail_with_cancelled(&mut sender)
        }
        "cancel_after_first_response" => {
            let (mut sender, mut replies) = client.full_duplex_call().map_err(status)?;
            let mut message = output_request(&[31415], None);
            message.payload = payload(27182);
            sender.send(message).map_err(status)?;
            replies.recv().map_err(status)?.ok_or("no first response")?;
            drop(replies);
            sends_fail_with_cancelled(&mut sender)
        }
        "status_code_and_message" => {
            let result = client.unary_call(status_request());
            expect_code(result, Code::Unknown, Some("test status message"))?;
            let (mut sender, mut replies) = client.full_duplex_call().map_err(status)?;
            let mut message = output_request(&[], None);
            message.response_status = status_request().response_status;
            sender.send(message).map_err(status)?;
            sender.finish();
            expect_code(replies.recv(), Code::Unknown, Some("test status message"))
        }
        "special_status_message" => {
            let mut request = status_request();
            request.response_status = Some(EchoStatus {
                code: 2,
                message: SPECIAL_MESSAGE.into(),
            });
            expect_code(
                client.unary_call(request),
                Code::Unknown,
                Some(SPECIAL_MESSAGE),
            )
        }
        "unimplemented_method" => expect_code(
            client.unimplemented_call(Empty {}),
            Code::Unimplemented,
            None,
        ),
        "unimplemented_service" => {
            let other = UnimplementedServiceBlockingClient::new(channel.clone());
            expect_code(
                other.unimplemented_call(Empty {}),
                Code::Unimplemented,
                None,
            )
        }
        "custom_metadata" => {
            let reply = client
                .unary_call(with_custom_metadata(large_request()))
                .map_err(status)?;
            check_custom_metadata(reply.metadata(), reply.trailers())?;
            let (mut sender, mut replies) = client
                .full_duplex_call_with(with_custom_metadata(()))
                .map_err(status)?;
            let mut message = output_request(&[314_159], None);
            message.payload = payload(271_828);
            sender.send(message).map_err(status)?;
            sender.finish();
            while replies.recv().map_err(status)?.is_some() {}
            let headers = replies.headers().map_err(status)?.clone();
            let trailers = replies.trailers().cloned().unwrap_or_default();
            check_custom_metadata(&headers, &trailers)
        }
        other => Err(format!("unknown test case {other:?}")),
    }
}

/// After the receiving side was dropped, the call ends as cancelled; the sender reports
/// CANCELLED once the poller has reset the stream (a few sends may still be queued before).
fn sends_fail_with_cancelled(
    sender: &mut rsgrpc::RequestSender<StreamingOutputCallRequest>,
) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sent = sender.send(output_request(&[1], None));
        if sent.is_err() || std::time::Instant::now() > deadline {
            return expect_code(sent, Code::Cancelled, None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The feature probe of the client-compression cases: an uncompressed message that claims
/// to be compressed. A server that checks answers INVALID_ARGUMENT; one whose framework
/// cannot see compression (grpcio's Python servicers) answers OK, and the case then only
/// checks that compressed requests succeed. Any other failure fails the case.
fn probe_compression_check(probe: Result<(), Status>) -> Outcome {
    match probe {
        Ok(()) => Ok(()),
        Err(s) if s.code() == Code::InvalidArgument => Ok(()),
        Err(s) => Err(format!("feature probe: {s}")),
    }
}

fn check_custom_metadata(headers: &rsgrpc::MetadataMap, trailers: &rsgrpc::MetadataMap) -> Outcome {
    check(
        headers.get(ECHO_INITIAL) == Some("test_initial_metadata_value"),
        || format!("initial metadata {headers:?}"),
    )?;
    check(
        trailers.get_bin(ECHO_TRAILING).as_deref() == Some(&[0xab, 0xab, 0xab][..]),
        || format!("trailing metadata {trailers:?}"),
    )
}

/// Runs one case with the async clients.
pub async fn run_async(case: &str, channel: &Channel) -> Outcome {
    let client = TestServiceClient::new(channel.clone());
    match case {
        "empty_unary" => {
            client.empty_call(Empty {}).await.map_err(status)?;
            Ok(())
        }
        "large_unary" => {
            let reply = client
                .unary_call(large_request())
                .await
                .map_err(status)?
                .into_inner();
            check(body_len(&reply.payload) == 314_159, || {
                "wrong payload size".into()
            })
        }
        "client_compressed_unary" => {
            let probe = SimpleRequest {
                expect_compressed: bool_value(true),
                ..large_request()
            };
            probe_compression_check(client.unary_call(probe.clone()).await.map(drop))?;
            let mut compressed = Request::new(probe);
            compressed.set_send_compressed(CompressionEncoding::Gzip);
            client.unary_call(compressed).await.map_err(status)?;
            Ok(())
        }
        "server_compressed_unary" => {
            for compressed in [true, false] {
                let request = SimpleRequest {
                    response_compressed: bool_value(compressed),
                    ..large_request()
                };
                let reply = client.unary_call(request).await.map_err(status)?;
                check(reply.message_compressed() == compressed, || {
                    format!("response compressed: {}", reply.message_compressed())
                })?;
                check(body_len(&reply.get_ref().payload) == 314_159, || {
                    "wrong payload size".into()
                })?;
            }
            Ok(())
        }
        "client_streaming" => {
            let requests = futures::stream::iter(REQUEST_SIZES.map(|s| input_request(s, None)));
            let reply = client
                .streaming_input_call(requests)
                .await
                .map_err(status)?
                .into_inner();
            check(reply.aggregated_payload_size == 74922, || {
                format!("aggregated {}", reply.aggregated_payload_size)
            })
        }
        "client_compressed_streaming" => {
            // An async request stream is compressed as a whole.
            let probe = futures::stream::iter([input_request(27182, Some(true))]);
            probe_compression_check(client.streaming_input_call(probe).await.map(drop))?;
            let mut request = Request::new(futures::stream::iter([
                input_request(27182, Some(true)),
                input_request(45904, Some(true)),
            ]));
            request.set_send_compressed(CompressionEncoding::Gzip);
            let reply = client
                .streaming_input_call(request)
                .await
                .map_err(status)?
                .into_inner();
            check(reply.aggregated_payload_size == 73086, || {
                format!("aggregated {}", reply.aggregated_payload_size)
            })
        }
        "server_streaming" => {
            let mut stream = client
                .streaming_output_call(output_request(&RESPONSE_SIZES, None))
                .await
                .map_err(status)?
                .into_inner();
            let mut sizes = Vec::new();
            while let Some(reply) = stream.message().await.map_err(status)? {
                sizes.push(body_len(&reply.payload) as i32);
            }
            check(sizes == RESPONSE_SIZES, || format!("sizes {sizes:?}"))
        }
        "server_compressed_streaming" => {
            let mut stream = client
                .streaming_output_call(compressed_then_plain())
                .await
                .map_err(status)?
                .into_inner();
            let mut seen = Vec::new();
            while let Some(reply) = stream.message().await.map_err(status)? {
                seen.push((body_len(&reply.payload), stream.last_message_compressed()));
            }
            check(seen == [(31415, true), (92653, false)], || {
                format!("got {seen:?}")
            })
        }
        "ping_pong" => {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            let first = {
                let mut r = output_request(&[RESPONSE_SIZES[0]], None);
                r.payload = payload(REQUEST_SIZES[0]);
                r
            };
            tx.unbounded_send(first).map_err(|e| e.to_string())?;
            let mut replies = client
                .full_duplex_call(rx)
                .await
                .map_err(status)?
                .into_inner();
            for i in 0..4 {
                let reply = replies
                    .message()
                    .await
                    .map_err(status)?
                    .ok_or("stream ended")?;
                check(
                    body_len(&reply.payload) == RESPONSE_SIZES[i] as usize,
                    || "wrong size".into(),
                )?;
                if i < 3 {
                    let mut next = output_request(&[RESPONSE_SIZES[i + 1]], None);
                    next.payload = payload(REQUEST_SIZES[i + 1]);
                    tx.unbounded_send(next).map_err(|e| e.to_string())?;
                }
            }
            drop(tx);
            check(replies.message().await.map_err(status)?.is_none(), || {
                "extra".into()
            })
        }
        "empty_stream" => {
            let mut replies = client
                .full_duplex_call(futures::stream::empty())
                .await
                .map_err(status)?
                .into_inner();
            check(replies.message().await.map_err(status)?.is_none(), || {
                "response".into()
            })
        }
        "timeout_on_sleeping_server" => {
            let mut message = output_request(&[31415], None);
            message.payload = payload(27182);
            let mut request =
                Request::new(futures::stream::iter([message]).chain(futures::stream::pending()));
            request.set_timeout(Duration::from_millis(1));
            match client.full_duplex_call(request).await {
                Err(s) => expect_code::<()>(Err(s), Code::DeadlineExceeded, None),
                Ok(response) => {
                    let mut replies = response.into_inner();
                    loop {
                        match replies.message().await {
                            Ok(Some(_)) => continue,
                            result => return expect_code(result, Code::DeadlineExceeded, None),
                        }
                    }
                }
            }
        }
        "cancel_after_begin" | "cancel_after_first_response" => {
            // An async call is cancelled by dropping it; the server sees RST_STREAM(CANCEL).
            // The blocking flavour checks the CANCELLED status a sender then reports.
            let (tx, rx) = futures::channel::mpsc::unbounded();
            let mut message = output_request(&[31415], None);
            message.payload = payload(27182);
            tx.unbounded_send(message).map_err(|e| e.to_string())?;
            let mut replies = client
                .full_duplex_call(rx)
                .await
                .map_err(status)?
                .into_inner();
            if case == "cancel_after_first_response" {
                replies
                    .message()
                    .await
                    .map_err(status)?
                    .ok_or("no first response")?;
            }
            drop(replies);
            Ok(())
        }
        "status_code_and_message" | "special_status_message" => {
            let mut request = status_request();
            let text = if case == "special_status_message" {
                SPECIAL_MESSAGE
            } else {
                "test status message"
            };
            request.response_status = Some(EchoStatus {
                code: 2,
                message: text.into(),
            });
            expect_code(client.unary_call(request).await, Code::Unknown, Some(text))
        }
        "unimplemented_method" => expect_code(
            client.unimplemented_call(Empty {}).await,
            Code::Unimplemented,
            None,
        ),
        "unimplemented_service" => {
            let other = UnimplementedServiceClient::new(channel.clone());
            expect_code(
                other.unimplemented_call(Empty {}).await,
                Code::Unimplemented,
                None,
            )
        }
        "custom_metadata" => {
            let reply = client
                .unary_call(with_custom_metadata(large_request()))
                .await
                .map_err(status)?;
            check_custom_metadata(reply.metadata(), reply.trailers())
        }
        other => Err(format!("unknown test case {other:?}")),
    }
}
