//! Every interop case between rsgrpc and tonic (stubs from tonic's own generator): both of
//! our client flavours against a tonic server, and a tonic client against both of our
//! server flavours.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::codec::CompressionEncoding;

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/tonic/grpc.testing.rs"));
}

use pb::test_service_client::TestServiceClient;
use pb::test_service_server::{TestService, TestServiceServer};

type Out =
    Pin<Box<dyn Stream<Item = Result<pb::StreamingOutputCallResponse, tonic::Status>> + Send>>;

fn payload(size: i32) -> Option<pb::Payload> {
    Some(pb::Payload {
        r#type: 0,
        body: vec![0; size as usize],
    })
}

fn status_of(status: &Option<pb::EchoStatus>) -> Result<(), tonic::Status> {
    match status {
        Some(s) if s.code != 0 => Err(tonic::Status::new(s.code.into(), s.message.clone())),
        _ => Ok(()),
    }
}

fn responses(
    request: pb::StreamingOutputCallRequest,
) -> Vec<Result<pb::StreamingOutputCallResponse, tonic::Status>> {
    let mut out: Vec<_> = request
        .response_parameters
        .iter()
        .map(|p| {
            Ok(pb::StreamingOutputCallResponse {
                payload: payload(p.size),
            })
        })
        .collect();
    if let Err(status) = status_of(&request.response_status) {
        out.push(Err(status));
    }
    out
}

fn echo<T>(
    from: &tonic::metadata::MetadataMap,
    mut response: tonic::Response<T>,
) -> tonic::Response<T> {
    if let Some(v) = from.get("x-grpc-test-echo-initial") {
        response
            .metadata_mut()
            .insert("x-grpc-test-echo-initial", v.clone());
    }
    if let Some(v) = from.get_bin("x-grpc-test-echo-trailing-bin") {
        // tonic sends response metadata as headers; trailers need a trailing stream item,
        // which tonic's unary path cannot add, so the value goes with the headers too.
        response
            .metadata_mut()
            .insert_bin("x-grpc-test-echo-trailing-bin", v.clone());
    }
    response
}

/// TestService on tonic.
struct TonicTestService;

#[tonic::async_trait]
impl TestService for TonicTestService {
    async fn empty_call(
        &self,
        request: tonic::Request<pb::Empty>,
    ) -> Result<tonic::Response<pb::Empty>, tonic::Status> {
        Ok(echo(request.metadata(), tonic::Response::new(pb::Empty {})))
    }

    async fn unary_call(
        &self,
        request: tonic::Request<pb::SimpleRequest>,
    ) -> Result<tonic::Response<pb::SimpleResponse>, tonic::Status> {
        status_of(&request.get_ref().response_status)?;
        let mut response = tonic::Response::new(pb::SimpleResponse {
            payload: payload(request.get_ref().response_size),
            ..Default::default()
        });
        if !request
            .get_ref()
            .response_compressed
            .is_some_and(|b| b.value)
        {
            response
                .extensions_mut()
                .insert(tonic::codec::SingleMessageCompressionOverride::Disable);
        }
        Ok(echo(request.metadata(), response))
    }

    async fn cacheable_unary_call(
        &self,
        request: tonic::Request<pb::SimpleRequest>,
    ) -> Result<tonic::Response<pb::SimpleResponse>, tonic::Status> {
        self.unary_call(request).await
    }

    type StreamingOutputCallStream = Out;

    async fn streaming_output_call(
        &self,
        request: tonic::Request<pb::StreamingOutputCallRequest>,
    ) -> Result<tonic::Response<Out>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(
            responses(request.into_inner()),
        ))))
    }

    async fn streaming_input_call(
        &self,
        request: tonic::Request<tonic::Streaming<pb::StreamingInputCallRequest>>,
    ) -> Result<tonic::Response<pb::StreamingInputCallResponse>, tonic::Status> {
        let mut requests = request.into_inner();
        let mut total = 0;
        while let Some(r) = requests.message().await? {
            total += r.payload.map_or(0, |p| p.body.len() as i32);
        }
        Ok(tonic::Response::new(pb::StreamingInputCallResponse {
            aggregated_payload_size: total,
        }))
    }

    type FullDuplexCallStream = Out;

    async fn full_duplex_call(
        &self,
        request: tonic::Request<tonic::Streaming<pb::StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Out>, tonic::Status> {
        let metadata = request.metadata().clone();
        let out = request.into_inner().flat_map(|r| match r {
            Ok(r) => futures::stream::iter(responses(r)),
            Err(status) => futures::stream::iter(vec![Err(status)]),
        });
        Ok(echo(&metadata, tonic::Response::new(Box::pin(out) as Out)))
    }

    type HalfDuplexCallStream = Out;

    async fn half_duplex_call(
        &self,
        request: tonic::Request<tonic::Streaming<pb::StreamingOutputCallRequest>>,
    ) -> Result<tonic::Response<Out>, tonic::Status> {
        let all: Vec<_> = request.into_inner().collect().await;
        let out: Vec<_> = all
            .into_iter()
            .flat_map(|r| match r {
                Ok(r) => responses(r),
                Err(status) => vec![Err(status)],
            })
            .collect();
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(out))))
    }

    async fn unimplemented_call(
        &self,
        _: tonic::Request<pb::Empty>,
    ) -> Result<tonic::Response<pb::Empty>, tonic::Status> {
        Err(tonic::Status::unimplemented("not implemented"))
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn all_cases_from_our_clients_against_a_tonic_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = tokio_rt();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TestServiceServer::new(TonicTestService)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|tcp| {
            let _ = tcp.set_nodelay(true);
        })
    });
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    let channel = rsgrpc::Channel::new(&format!("http://{addr}")).unwrap();
    let mut failures = Vec::new();
    for case in interop::CASES {
        let blocking = interop::client::run_blocking(case, &channel);
        let asynchronous = futures::executor::block_on(interop::client::run_async(case, &channel));
        for (flavour, outcome) in [("blocking", blocking), ("async", asynchronous)] {
            match outcome {
                Ok(()) => {}
                // tonic can switch compression off only for a single-message response,
                // not per message of a stream: it compresses both responses of this case.
                Err(why)
                    if *case == "server_compressed_streaming"
                        && why == "got [(31415, true), (92653, true)]" => {}
                // tonic's unary and server-streaming handlers cannot set trailing metadata,
                // so this server cannot echo x-grpc-test-echo-trailing-bin in trailers (the
                // initial metadata half of the case is checked first and passed).
                Err(why) if *case == "custom_metadata" && why.starts_with("trailing metadata") => {}
                Err(why) => failures.push(format!("{case} ({flavour} client): {why}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The cases, written with tonic's generated client.
async fn tonic_case(
    case: &str,
    client: &mut TestServiceClient<tonic::transport::Channel>,
) -> Result<(), String> {
    let large = || pb::SimpleRequest {
        response_size: 314_159,
        payload: payload(271_828),
        ..Default::default()
    };
    let err = |e: tonic::Status| format!("unexpected {e:?}");
    let expect = |r: Result<(), tonic::Status>, code: tonic::Code| match r {
        Err(s) if s.code() == code => Ok(()),
        other => Err(format!("expected {code:?}, got {other:?}")),
    };
    let output = |sizes: &[i32]| pb::StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| pb::ResponseParameters {
                size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    match case {
        "empty_unary" => client.empty_call(pb::Empty {}).await.map(drop).map_err(err),
        "large_unary" | "server_compressed_unary" | "client_compressed_unary" => {
            let reply = client.unary_call(large()).await.map_err(err)?.into_inner();
            (reply.payload.map_or(0, |p| p.body.len()) == 314_159)
                .then_some(())
                .ok_or_else(|| "wrong size".into())
        }
        "client_streaming" | "client_compressed_streaming" => {
            let reqs = [27182, 8, 1828, 45904].map(|s| pb::StreamingInputCallRequest {
                payload: payload(s),
                expect_compressed: None,
            });
            let reply = client
                .streaming_input_call(futures::stream::iter(reqs))
                .await
                .map_err(err)?
                .into_inner();
            (reply.aggregated_payload_size == 74922)
                .then_some(())
                .ok_or_else(|| format!("{}", reply.aggregated_payload_size))
        }
        "server_streaming" | "server_compressed_streaming" => {
            let sizes = [31415, 9, 2653, 58979];
            let mut stream = client
                .streaming_output_call(output(&sizes))
                .await
                .map_err(err)?
                .into_inner();
            let mut got = Vec::new();
            while let Some(r) = stream.message().await.map_err(err)? {
                got.push(r.payload.map_or(0, |p| p.body.len() as i32));
            }
            (got == sizes)
                .then_some(())
                .ok_or_else(|| format!("{got:?}"))
        }
        "ping_pong" | "empty_stream" | "cancel_after_first_response" => {
            let (tx, rx) = futures::channel::mpsc::unbounded();
            let rounds: &[(i32, i32)] = match case {
                "ping_pong" => &[(27182, 31415), (8, 9), (1828, 2653), (45904, 58979)],
                "cancel_after_first_response" => &[(27182, 31415)],
                _ => &[],
            };
            let mut replies = client.full_duplex_call(rx).await.map_err(err)?.into_inner();
            for &(req, resp) in rounds {
                let mut message = output(&[resp]);
                message.payload = payload(req);
                tx.unbounded_send(message).map_err(|e| e.to_string())?;
                let reply = replies.message().await.map_err(err)?.ok_or("ended early")?;
                if reply.payload.map_or(0, |p| p.body.len() as i32) != resp {
                    return Err("wrong size".into());
                }
            }
            if case == "cancel_after_first_response" {
                drop(replies); // tonic cancels by dropping the response stream
                return Ok(());
            }
            drop(tx);
            replies
                .message()
                .await
                .map_err(err)?
                .map_or(Ok(()), |_| Err("extra response".into()))
        }
        "timeout_on_sleeping_server" => {
            let mut message = output(&[31415]);
            message.payload = payload(27182);
            let mut request = tonic::Request::new(
                futures::stream::iter([message]).chain(futures::stream::pending()),
            );
            request.set_timeout(Duration::from_millis(1));
            let result = match client.full_duplex_call(request).await {
                Ok(r) => {
                    let mut s = r.into_inner();
                    loop {
                        match s.message().await {
                            Ok(Some(_)) => continue,
                            Ok(None) => break Ok(()),
                            Err(e) => break Err(e),
                        }
                    }
                }
                Err(e) => Err(e),
            };
            // tonic reports its own expired timer as CANCELLED "Timeout expired".
            match result {
                Err(s) if s.code() == tonic::Code::DeadlineExceeded => Ok(()),
                Err(s)
                    if s.code() == tonic::Code::Cancelled
                        && s.message().contains("Timeout expired") =>
                {
                    Ok(())
                }
                other => Err(format!("expected a deadline, got {other:?}")),
            }
        }
        "cancel_after_begin" => {
            let call = client
                .streaming_input_call(futures::stream::pending::<pb::StreamingInputCallRequest>());
            let timed_out = tokio::time::timeout(Duration::from_millis(50), call)
                .await
                .is_err();
            timed_out
                .then_some(())
                .ok_or_else(|| "the call ended by itself".into())
        }
        "status_code_and_message" | "special_status_message" => {
            let message = if case == "special_status_message" {
                "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
            } else {
                "test status message"
            };
            let request = pb::SimpleRequest {
                response_status: Some(pb::EchoStatus {
                    code: 2,
                    message: message.into(),
                }),
                ..Default::default()
            };
            match client.unary_call(request).await {
                Err(s) if s.code() == tonic::Code::Unknown && s.message() == message => Ok(()),
                other => Err(format!("got {other:?}")),
            }
        }
        "unimplemented_method" => expect(
            client.unimplemented_call(pb::Empty {}).await.map(drop),
            tonic::Code::Unimplemented,
        ),
        "unimplemented_service" => Ok(()), // checked below with the other service's client
        "custom_metadata" => {
            let mut request = tonic::Request::new(large());
            request.metadata_mut().insert(
                "x-grpc-test-echo-initial",
                "test_initial_metadata_value".parse().unwrap(),
            );
            request.metadata_mut().insert_bin(
                "x-grpc-test-echo-trailing-bin",
                tonic::metadata::MetadataValue::from_bytes(&[0xab, 0xab, 0xab]),
            );
            let reply = client.unary_call(request).await.map_err(err)?;
            (reply
                .metadata()
                .get("x-grpc-test-echo-initial")
                .map(|v| v.as_bytes())
                == Some(&b"test_initial_metadata_value"[..]))
            .then_some(())
            .ok_or_else(|| format!("{:?}", reply.metadata()))
        }
        other => Err(format!("unknown case {other}")),
    }
}

#[test]
fn all_cases_from_a_tonic_client_against_our_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    let rt = tokio_rt();
    for flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", flavour).unwrap();
        let failures = rt.block_on(async {
            let endpoint = format!("http://{}", server.local_addr());
            let mut client = TestServiceClient::connect(endpoint.clone())
                .await
                .unwrap()
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
            let mut failures = Vec::new();
            for case in interop::CASES {
                if let Err(why) = tonic_case(case, &mut client).await {
                    failures.push(format!("{case}: {why}"));
                }
            }
            let mut other =
                pb::unimplemented_service_client::UnimplementedServiceClient::connect(endpoint)
                    .await
                    .unwrap();
            match other.unimplemented_call(pb::Empty {}).await {
                Err(s) if s.code() == tonic::Code::Unimplemented => {}
                r => failures.push(format!("unimplemented_service: {r:?}")),
            }
            failures
        });
        assert!(
            failures.is_empty(),
            "tonic client against our {flavour} server:\n{}",
            failures.join("\n")
        );
    }
}
