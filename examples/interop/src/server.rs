//! `grpc.testing.TestService`, implemented on the generated async and blocking traits.

use futures::StreamExt;
use rsgrpc::{BlockingStreaming, Request, Response, ResponseSink, Status, Streaming};

use crate::testing::{
    Empty, SimpleRequest, SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use crate::{interval, payload, requested_status, with_echo};

/// Answers a unary call as the interop descriptions ask.
fn unary(request: Request<SimpleRequest>) -> Result<Response<SimpleResponse>, Status> {
    let wants_compressed = request.get_ref().expect_compressed.is_some_and(|b| b.value);
    if wants_compressed && !request.message_compressed() {
        return Err(Status::invalid_argument("expected a compressed request"));
    }
    requested_status(request.get_ref().response_status.as_ref())?;
    let compress = request
        .get_ref()
        .response_compressed
        .is_some_and(|b| b.value);
    let mut response = with_echo(
        request.metadata(),
        SimpleResponse {
            payload: payload(request.get_ref().response_size),
            ..Default::default()
        },
    );
    response.set_compression(compress);
    Ok(response)
}

/// Checks one client-stream message; returns its payload size.
fn input_message(message: &StreamingInputCallRequest, compressed: bool) -> Result<i32, Status> {
    if message.expect_compressed.is_some_and(|b| b.value) && !compressed {
        return Err(Status::invalid_argument("expected a compressed message"));
    }
    Ok(message.payload.as_ref().map_or(0, |p| p.body.len() as i32))
}

/// The responses one streaming request asks for: (pause, size, compressed).
fn planned(request: &StreamingOutputCallRequest) -> Vec<(std::time::Duration, i32, bool)> {
    request
        .response_parameters
        .iter()
        .map(|p| {
            (
                interval(p.interval_us),
                p.size,
                p.compressed.is_some_and(|b| b.value),
            )
        })
        .collect()
}

/// The service with blocking handlers.
pub struct BlockingTestService;

impl crate::testing::test_service_server::TestServiceBlocking for BlockingTestService {
    fn empty_call(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(with_echo(request.metadata(), Empty {}))
    }

    fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary(request)
    }

    fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary(request)
    }

    fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        // The echoed metadata, as on every call (gRPC-Web's custom_metadata case reads it
        // from this method).
        let (headers, trailers) = crate::echo_metadata(request.metadata());
        responses.send_headers(headers)?;
        responses.add_trailers(trailers);
        for (pause, size, compressed) in planned(request.get_ref()) {
            std::thread::sleep(pause);
            responses.set_compression(compressed);
            responses.send(StreamingOutputCallResponse {
                payload: payload(size),
            })?;
        }
        requested_status(request.get_ref().response_status.as_ref())
    }

    fn streaming_input_call(
        &self,
        request: Request<BlockingStreaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut requests = request.into_inner();
        let mut total = 0;
        while let Some(message) = requests.recv()? {
            total += input_message(&message, requests.last_message_compressed())?;
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: total,
        }))
    }

    fn full_duplex_call(
        &self,
        request: Request<BlockingStreaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let (headers, trailers) = crate::echo_metadata(request.metadata());
        responses.send_headers(headers)?;
        responses.add_trailers(trailers);
        for message in request.into_inner() {
            let message = message?;
            requested_status(message.response_status.as_ref())?;
            for (pause, size, compressed) in planned(&message) {
                std::thread::sleep(pause);
                responses.set_compression(compressed);
                responses.send(StreamingOutputCallResponse {
                    payload: payload(size),
                })?;
            }
        }
        Ok(())
    }

    fn half_duplex_call(
        &self,
        request: Request<BlockingStreaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        let all: Vec<_> = request.into_inner().collect::<Result<_, _>>()?;
        for message in all {
            for (pause, size, compressed) in planned(&message) {
                std::thread::sleep(pause);
                responses.set_compression(compressed);
                responses.send(StreamingOutputCallResponse {
                    payload: payload(size),
                })?;
            }
        }
        Ok(())
    }

    fn unimplemented_call(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "UnimplementedCall is not implemented",
        ))
    }
}

/// A timer for async handlers that needs no particular executor.
async fn sleep(pause: std::time::Duration) {
    if pause.is_zero() {
        return;
    }
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(pause);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// The service with async handlers.
pub struct AsyncTestService;

type OutputStream = rsgrpc::BoxStream<StreamingOutputCallResponse>;

/// The responses for one request as a stream, each compressed as its parameters ask.
fn output_stream(
    message: StreamingOutputCallRequest,
    switch: Option<rsgrpc::CompressionSwitch>,
) -> OutputStream {
    let plan = planned(&message);
    let status = message.response_status;
    let responses = futures::stream::iter(plan).then(move |(pause, size, compressed)| {
        let switch = switch.clone();
        async move {
            sleep(pause).await;
            if let Some(switch) = &switch {
                switch.set(compressed);
            }
            Ok(StreamingOutputCallResponse {
                payload: payload(size),
            })
        }
    });
    let end = futures::stream::iter(requested_status(status.as_ref()).err().map(Err));
    Box::pin(responses.chain(end))
}

impl crate::testing::test_service_server::TestService for AsyncTestService {
    async fn empty_call(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(with_echo(request.metadata(), Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary(request)
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary(request)
    }

    type StreamingOutputCallStream = OutputStream;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<OutputStream>, Status> {
        let switch = request.compression_switch();
        let metadata = request.metadata().clone();
        Ok(with_echo(
            &metadata,
            output_stream(request.into_inner(), switch),
        ))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut requests = request.into_inner();
        let mut total = 0;
        while let Some(message) = requests.message().await? {
            total += input_message(&message, requests.last_message_compressed())?;
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: total,
        }))
    }

    type FullDuplexCallStream = OutputStream;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<OutputStream>, Status> {
        let metadata = request.metadata().clone();
        let switch = request.compression_switch();
        let responses = request.into_inner().flat_map(move |message| match message {
            Ok(message) => output_stream(message, switch.clone()),
            Err(status) => Box::pin(futures::stream::iter([Err(status)])) as OutputStream,
        });
        Ok(with_echo(&metadata, Box::pin(responses) as OutputStream))
    }

    type HalfDuplexCallStream = OutputStream;

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<OutputStream>, Status> {
        let request_switch = request.compression_switch();
        let all: Vec<_> = request
            .into_inner()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let switch = request_switch;
        let responses = futures::stream::iter(all)
            .flat_map(move |message| output_stream(message, switch.clone()));
        Ok(Response::new(Box::pin(responses) as OutputStream))
    }

    async fn unimplemented_call(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "UnimplementedCall is not implemented",
        ))
    }
}

/// A server for the interop service with the given flavour (`async` or `blocking`),
/// compressing responses for clients that accept gzip when a request asks for it; it also
/// serves health and reflection, as [`serve_with_health`] says.
///
/// # Errors
///
/// An unknown flavour, or a failure to bind.
pub fn serve(
    addr: &str,
    flavour: &str,
) -> Result<rsgrpc::server::ServerHandle, Box<dyn std::error::Error>> {
    serve_with(&ServeOptions {
        addr: addr.to_owned(),
        flavour: flavour.to_owned(),
        ..ServeOptions::default()
    })
    .map(|(server, _health)| server)
}

/// Where and how `interop-server` serves.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `host:port` to bind (unless `socket` is set).
    pub addr: String,
    /// `async` or `blocking`.
    pub flavour: String,
    /// A Unix socket path to bind instead of `addr`.
    pub socket: Option<std::path::PathBuf>,
    /// Certificate chain and key PEM files: serve over TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// What responses asked to be compressed are compressed with, for clients that accept
    /// it (gzip when `None`).
    pub compression: Option<rsgrpc::CompressionEncoding>,
    /// Serve gRPC-Web too, over HTTP/1.1 and HTTP/2, with these CORS settings
    /// (`interop-server --grpc_web true` gives [`web_config`]).
    pub grpc_web: Option<rsgrpc::server::GrpcWeb>,
}

/// The interop server's gRPC-Web settings: any origin may call, send the interop cases'
/// metadata and read the status and the echoed metadata.
pub fn web_config() -> rsgrpc::server::GrpcWeb {
    const METADATA: [&str; 2] = ["x-grpc-test-echo-initial", "x-grpc-test-echo-trailing-bin"];
    rsgrpc::server::GrpcWeb::new()
        .allow_any_origin()
        .allow_headers(METADATA)
        .expose_headers(METADATA)
}

/// The interop service in the given flavour, as `options` say, next to the standard
/// health service (`grpc.health.v1`, reporting `SERVING` for the whole server and for
/// `grpc.testing.TestService`) and reflection (`grpc.reflection.v1` and `v1alpha`) over
/// the interop protos and the health proto, so that standard tools can query it. Health
/// and reflection are async services on the runtime's executor whatever the flavour.
/// Returns the health reporter with the server.
///
/// # Errors
///
/// A bad flavour, unreadable or unusable TLS files, or a failure to bind.
pub fn serve_with(
    options: &ServeOptions,
) -> Result<(rsgrpc::server::ServerHandle, rsgrpc_health::HealthReporter), Box<dyn std::error::Error>>
{
    use crate::testing::test_service_server::{
        SERVICE_NAME, TestServiceBlockingServer, TestServiceServer,
    };
    let builder = rsgrpc::server::Server::builder().send_compressed(
        options
            .compression
            .unwrap_or(rsgrpc::CompressionEncoding::Gzip),
    );
    let builder = match options.flavour.as_str() {
        "async" => builder.add_service(TestServiceServer::new(AsyncTestService)),
        "blocking" => builder.add_service(TestServiceBlockingServer::new(BlockingTestService)),
        other => return Err(format!("--flavour is async or blocking, not {other:?}").into()),
    };
    let builder = match &options.grpc_web {
        Some(web) => builder.grpc_web(web.clone()).accept_http1(true),
        None => builder,
    };
    let builder = match &options.tls {
        Some((cert, key)) => {
            let identity =
                rsgrpc::tls::Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?)?;
            builder.tls_config(rsgrpc::tls::ServerTlsConfig::new(identity))
        }
        None => builder,
    };
    let (health, health_service) = rsgrpc_health::health_service();
    health.set_serving(SERVICE_NAME);
    let reflection = rsgrpc_reflection::ReflectionService::builder()
        .register_encoded_file_descriptor_set(crate::DESCRIPTORS)
        .register_encoded_file_descriptor_set(rsgrpc_health::pb::FILE_DESCRIPTOR_SET)
        .build()?;
    let builder = builder
        .add_service(health_service)
        .add_service(reflection.v1())
        .add_service(reflection.v1alpha());
    let server = match &options.socket {
        Some(path) => builder.bind_unix(path)?,
        None => builder.bind(options.addr.as_str())?,
    };
    Ok((server, health))
}

/// As [`serve`], with the health reporter.
///
/// # Errors
///
/// As [`serve_with`].
pub fn serve_with_health(
    addr: &str,
    flavour: &str,
) -> Result<(rsgrpc::server::ServerHandle, rsgrpc_health::HealthReporter), Box<dyn std::error::Error>>
{
    serve_with(&ServeOptions {
        addr: addr.to_owned(),
        flavour: flavour.to_owned(),
        ..ServeOptions::default()
    })
}
