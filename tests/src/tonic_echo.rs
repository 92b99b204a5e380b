//! The echo service as a tonic peer: a tonic server (on its own tokio runtime) and a tonic
//! client, with the stubs tonic's code generator would emit written out by hand.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService,
    UnaryService,
};
use tonic_prost::ProstCodec;

use crate::{EchoRequest, EchoResponse, stream_item};

type TonicStream = Pin<Box<dyn Stream<Item = Result<EchoResponse, tonic::Status>> + Send>>;

/// Echo metadata the way the rsgrpc handlers do.
fn echo_metadata(from: &tonic::metadata::MetadataMap, to: &mut tonic::metadata::MetadataMap) {
    if let Some(v) = from.get("x-echo") {
        to.insert("x-echo", v.clone());
    }
    if let Some(v) = from.get_bin("x-echo-bin") {
        to.insert_bin("x-echo-bin", v.clone());
    }
}

fn fail_status(message: &str) -> Option<tonic::Status> {
    let rest = message.strip_prefix("fail:")?;
    let (code, text) = rest.split_once(':').unwrap_or((rest, ""));
    let code = tonic::Code::from_i32(code.parse().unwrap_or(2));
    Some(tonic::Status::with_details(code, text, "why".into()))
}

/// The echo service implemented on tonic. It accepts gzip, deflate and zstd requests and,
/// when `compress` is set, compresses its responses with it for clients that accept it.
#[derive(Clone, Default)]
pub struct TonicEcho {
    pub compress: Option<tonic::codec::CompressionEncoding>,
}

struct Unary;
impl UnaryService<EchoRequest> for Unary {
    type Response = EchoResponse;
    type Future = BoxFuture<tonic::Response<EchoResponse>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            if let Some(status) = fail_status(&request.get_ref().message) {
                return Err(status);
            }
            let mut response = tonic::Response::new(EchoResponse {
                message: request.get_ref().message.clone(),
                index: 0,
                payload: request.get_ref().payload.clone(),
            });
            echo_metadata(request.metadata(), response.metadata_mut());
            Ok(response)
        })
    }
}

struct ServerStream;
impl ServerStreamingService<EchoRequest> for ServerStream {
    type Response = EchoResponse;
    type ResponseStream = TonicStream;
    type Future = BoxFuture<tonic::Response<TonicStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        Box::pin(async move {
            if let Some(status) = fail_status(&request.get_ref().message) {
                return Err(status);
            }
            let mut metadata = tonic::metadata::MetadataMap::new();
            echo_metadata(request.metadata(), &mut metadata);
            let request = request.into_inner();
            let stream: TonicStream = Box::pin(
                futures::stream::iter(0..request.count).map(move |i| Ok(stream_item(&request, i))),
            );
            let mut response = tonic::Response::new(stream);
            *response.metadata_mut() = metadata;
            Ok(response)
        })
    }
}

struct ClientStream;
impl ClientStreamingService<EchoRequest> for ClientStream {
    type Response = EchoResponse;
    type Future = BoxFuture<tonic::Response<EchoResponse>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<tonic::Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let mut metadata = tonic::metadata::MetadataMap::new();
            echo_metadata(request.metadata(), &mut metadata);
            let mut requests = request.into_inner();
            let mut joined = Vec::new();
            let mut bytes = 0;
            while let Some(r) = requests.message().await? {
                if let Some(status) = fail_status(&r.message) {
                    return Err(status);
                }
                bytes += r.payload.len();
                joined.push(r.message);
            }
            let mut response = tonic::Response::new(EchoResponse {
                message: joined.join(","),
                index: joined.len() as u32,
                payload: bytes.to_string().into_bytes().into(),
            });
            *response.metadata_mut() = metadata;
            Ok(response)
        })
    }
}

struct Bidi;
impl StreamingService<EchoRequest> for Bidi {
    type Response = EchoResponse;
    type ResponseStream = TonicStream;
    type Future = BoxFuture<tonic::Response<TonicStream>, tonic::Status>;
    fn call(&mut self, request: tonic::Request<tonic::Streaming<EchoRequest>>) -> Self::Future {
        Box::pin(async move {
            let mut metadata = tonic::metadata::MetadataMap::new();
            echo_metadata(request.metadata(), &mut metadata);
            let requests = request.into_inner();
            let stream: TonicStream = Box::pin(requests.enumerate().map(|(i, r)| {
                let r = r?;
                if let Some(status) = fail_status(&r.message) {
                    return Err(status);
                }
                Ok(stream_item(&r, i as u32))
            }));
            let mut response = tonic::Response::new(stream);
            *response.metadata_mut() = metadata;
            Ok(response)
        })
    }
}

impl<B> Service<http::Request<B>> for TonicEcho
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let compress = self.compress;
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<EchoResponse, EchoRequest>::default())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Deflate)
                .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
            if let Some(encoding) = compress {
                grpc = grpc.send_compressed(encoding);
            }
            let response = match method.as_str() {
                crate::UNARY => grpc.unary(Unary, request).await,
                crate::SERVER_STREAM => grpc.server_streaming(ServerStream, request).await,
                crate::CLIENT_STREAM => grpc.client_streaming(ClientStream, request).await,
                crate::BIDI => grpc.streaming(Bidi, request).await,
                _ => tonic::Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

impl NamedService for TonicEcho {
    const NAME: &'static str = "test.Echo";
}

/// A tonic server for `test.Echo` on 127.0.0.1 with an OS-chosen port, running on its own
/// tokio runtime until the returned guard is dropped.
pub struct TonicServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TonicServer {
    pub fn start() -> TonicServer {
        TonicServer::start_with_workers(2)
    }

    /// A server whose tokio runtime has `workers` worker threads, or is a current-thread
    /// runtime when `workers` is 0.
    pub fn start_with_workers(workers: usize) -> TonicServer {
        TonicServer::start_with(workers, None)
    }

    /// As [`start_with_workers`](Self::start_with_workers), over TLS when given a
    /// certificate chain and key (PEM).
    pub fn start_with(workers: usize, tls: Option<(String, String)>) -> TonicServer {
        TonicServer::start_compressing(workers, tls, tonic::codec::CompressionEncoding::Gzip)
    }

    /// As [`start_with`](Self::start_with), compressing responses with `encoding` for
    /// clients that accept it.
    pub fn start_compressing(
        workers: usize,
        tls: Option<(String, String)>,
        encoding: tonic::codec::CompressionEncoding,
    ) -> TonicServer {
        TonicServer::start_service(
            workers,
            tls,
            TonicEcho {
                compress: Some(encoding),
            },
        )
    }

    /// As [`start_with`](Self::start_with), with responses never compressed (tonic's
    /// default, and the other servers' in the benchmark).
    pub fn start_uncompressed(workers: usize, tls: Option<(String, String)>) -> TonicServer {
        TonicServer::start_service(workers, tls, TonicEcho { compress: None })
    }

    fn start_service(
        workers: usize,
        tls: Option<(String, String)>,
        service: TonicEcho,
    ) -> TonicServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = if workers == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .unwrap()
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                // Accepted sockets get TCP_NODELAY, as tonic's own `TcpIncoming` sets.
                let incoming =
                    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
                        accepted.inspect(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        })
                    });
                let mut builder = tonic::transport::Server::builder();
                if let Some((cert, key)) = tls {
                    builder = builder
                        .tls_config(
                            tonic::transport::ServerTlsConfig::new()
                                .identity(tonic::transport::Identity::from_pem(cert, key)),
                        )
                        .unwrap();
                }
                builder
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        TonicServer {
            addr: addr_rx.recv().unwrap(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

impl Drop for TonicServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A tonic client for `test.Echo` at `path_prefix` (`/test.Echo`).
#[derive(Clone)]
pub struct TonicClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    service: String,
}

impl TonicClient {
    pub async fn connect(addr: SocketAddr, service: &str) -> TonicClient {
        TonicClient::connect_with(addr, service, None).await
    }

    /// A client over TLS when given a CA (PEM) to trust; the server's certificate must
    /// name `localhost`.
    pub async fn connect_with(addr: SocketAddr, service: &str, ca: Option<String>) -> TonicClient {
        let endpoint = match ca {
            None => tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap(),
            Some(ca) => tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .domain_name("localhost"),
                )
                .unwrap(),
        };
        let channel = endpoint.connect().await.unwrap();
        TonicClient {
            grpc: tonic::client::Grpc::new(channel),
            service: service.to_owned(),
        }
    }

    /// The same client, compressing requests with gzip and accepting gzip responses.
    pub fn gzip(self) -> TonicClient {
        self.compressed(tonic::codec::CompressionEncoding::Gzip)
    }

    /// The same client, compressing requests with `encoding` and accepting responses
    /// compressed with it.
    pub fn compressed(mut self, encoding: tonic::codec::CompressionEncoding) -> TonicClient {
        self.grpc = self
            .grpc
            .send_compressed(encoding)
            .accept_compressed(encoding);
        self
    }

    fn path(&self, method: &str) -> http::uri::PathAndQuery {
        format!("/{}/{method}", self.service).parse().unwrap()
    }

    pub async fn unary(
        &mut self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoResponse>, tonic::Status> {
        self.grpc.ready().await.unwrap();
        let path = self.path(crate::UNARY);
        self.grpc.unary(request, path, ProstCodec::default()).await
    }

    pub async fn server_stream(
        &mut self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<tonic::Streaming<EchoResponse>>, tonic::Status> {
        self.grpc.ready().await.unwrap();
        let path = self.path(crate::SERVER_STREAM);
        self.grpc
            .server_streaming(request, path, ProstCodec::default())
            .await
    }

    pub async fn client_stream(
        &mut self,
        request: tonic::Request<impl Stream<Item = EchoRequest> + Send + 'static>,
    ) -> Result<tonic::Response<EchoResponse>, tonic::Status> {
        self.grpc.ready().await.unwrap();
        let path = self.path(crate::CLIENT_STREAM);
        self.grpc
            .client_streaming(request, path, ProstCodec::default())
            .await
    }

    pub async fn bidi(
        &mut self,
        request: tonic::Request<impl Stream<Item = EchoRequest> + Send + 'static>,
    ) -> Result<tonic::Response<tonic::Streaming<EchoResponse>>, tonic::Status> {
        self.grpc.ready().await.unwrap();
        let path = self.path(crate::BIDI);
        self.grpc
            .streaming(request, path, ProstCodec::default())
            .await
    }
}
