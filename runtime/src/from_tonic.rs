//! Coming from tonic: what is the same, what differs, and where things are.
//!
//! This module has no items; it is documentation. Its examples compile (they are doc
//! tests); those that would need a server to run are `no_run`.
//!
//! # Generated code
//!
//! `rsgrpc_codegen::compile_protos` in `build.rs` (pure Rust, no protoc), the
//! `#[grpc_service]` attribute, or `protoc --rsgrpc_out` all give, for
//! `service Greeter`, a module `greeter_client` with `GreeterClient` (async) and
//! `GreeterBlockingClient`, and a module `greeter_server` with the traits `Greeter`
//! (async, like tonic's) and `GreeterBlocking`, served by `GreeterServer::new(impl)` and
//! `GreeterBlockingServer::new(impl)`. A generated service is wholly async or wholly
//! blocking; a server hosts any mix of them, and [`ServiceBuilder`] mixes both kinds of
//! method in one service when you need that.
//!
//! # Where handlers run
//!
//! Network I/O runs on rsgrpc's poller threads, never your code. Async handlers run on
//! rsgrpc's executor; if the server was built inside a tokio runtime
//! (`#[tokio::main]`, `#[tokio::test]`, multi-thread or current-thread), they are polled
//! with that runtime entered, so `tokio::time::sleep`, `tokio::spawn`, tokio channels
//! with timeouts and tokio I/O work as in tonic. Without tokio (`fn main`, smol,
//! `futures::executor::block_on`) they run on the same executor without it. Blocking
//! handlers run on a worker pool. An async handler may call a library built on the
//! *blocking* client: the executor puts a spare thread in its place while it waits, so
//! neither the executor nor your tokio runtime is starved.
//! [`ServerBuilder::spawn_with`] hands async handlers to an executor of your choice
//! instead.
//!
//! ```no_run
//! use rsgrpc::server::{Server, Service};
//! use rsgrpc::{Request, Response, Status};
//! # #[derive(Clone, PartialEq, prost::Message)] struct Key { #[prost(string, tag = "1")] name: String }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let kv = Service::builder("kv.Store")
//!         .unary("Get", |request: Request<Key>| async move {
//!             // tokio inside a handler, as with tonic.
//!             tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!             Ok::<_, Status>(Response::new(request.into_inner()))
//!         })
//!         .build();
//!     let server = Server::builder().add_service(kv).bind("127.0.0.1:50051")?;
//!     // ... serve until told to stop (tokio::signal::ctrl_c().await, say), then:
//!     server.shutdown(std::time::Duration::from_secs(5)).await;
//!     Ok(())
//! }
//! ```
//!
//! # Clients
//!
//! Client methods take `&self` (tonic's take `&mut self`); clone a client or share it
//! between tasks and threads. [`Channel::new`] (or [`ChannelBuilder::connect_lazy`])
//! connects on the first call, like tonic's `connect_lazy`; [`Channel::connect`]`.await`
//! and [`Channel::connect_blocking`] connect now and report why they could not. Both
//! client flavours share one channel and its connection. Defaults for every call —
//! a timeout, wait-for-ready — are set on the channel
//! ([`ChannelBuilder::timeout`], [`ChannelBuilder::wait_for_ready`]) or on one client
//! ([`Client::timeout`], [`Client::wait_for_ready`]), or come from a gRPC service config
//! ([`ChannelBuilder::service_config`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use rsgrpc::client::Client;
//! use rsgrpc::{Channel, Request, Response};
//! # #[derive(Clone, PartialEq, prost::Message)] struct Key { #[prost(string, tag = "1")] name: String }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let channel = Channel::builder("http://127.0.0.1:50051")
//!     .timeout(Duration::from_secs(5))
//!     .connect_lazy()?;
//! channel.connect().await?; // optional: fail now rather than on the first call
//! let client = Client::new(channel.clone()).wait_for_ready(true);
//! let reply: Response<Key> = client
//!     .unary("/kv.Store/Get", Request::new(Key { name: "a".into() }))
//!     .await?;
//! // The same channel from blocking code, for example a CLI's `fn main`:
//! let reply: Response<Key> =
//!     Client::new(channel).blocking_unary("/kv.Store/Get", Request::new(Key::default()))?;
//! # let _ = reply; Ok(()) }
//! ```
//!
//! # Streams
//!
//! | | async | blocking |
//! |---|---|---|
//! | responses a client receives | [`Streaming`]: a `futures_core::Stream`, and `message().await` | [`BlockingStreaming`]: an `Iterator`, and `recv()` |
//! | requests a client sends | any `Stream` of messages | any `IntoIterator`, or the [`RequestSender`] of a bidi call |
//! | requests a handler receives | [`Streaming`] | [`BlockingStreaming`] |
//! | responses a handler sends | return any `Stream` of `Result<T, Status>` ([`BoxStream`] is handy) | send through a [`ResponseSink`], return the status |
//!
//! ```no_run
//! use rsgrpc::server::Service;
//! use rsgrpc::{BoxStream, Request, Response, ResponseSink, Status};
//! # #[derive(Clone, PartialEq, prost::Message)] struct Event { #[prost(uint32, tag = "1")] n: u32 }
//!
//! let events = Service::builder("kv.Events")
//!     .server_streaming("Watch", |_request: Request<Event>| async move {
//!         let stream: BoxStream<Event> =
//!             Box::pin(futures::stream::iter((0..3).map(|n| Ok(Event { n }))));
//!         Ok::<_, Status>(Response::new(stream))
//!     })
//!     .blocking_server_streaming("WatchBlocking", |_request: Request<Event>, mut sink: ResponseSink<Event>| {
//!         for n in 0..3 {
//!             sink.send(Event { n })?; // waits while the client is slow to read
//!         }
//!         Ok(())
//!     })
//!     .build();
//! # drop(events);
//! ```
//!
//! # Interceptors instead of tower layers
//!
//! There is no tower stack: an [`Interceptor`](crate::interceptor::Interceptor) sees every
//! call on a channel, client, server or service — its request metadata before the call
//! (and may refuse it), its response headers and its end — on the caller's or handler's
//! thread. [`interceptor::from_fn`](crate::interceptor::from_fn) is tonic's
//! `interceptor(fn)`.
//!
//! ```no_run
//! use rsgrpc::{Status, interceptor};
//!
//! let auth = interceptor::from_fn(|_call, metadata| {
//!     match metadata.get("authorization") {
//!         Some(token) if token == "Bearer let-me-in" => Ok(()),
//!         _ => Err(Status::unauthenticated("no valid token")),
//!     }
//! });
//! let server = rsgrpc::server::Server::builder().interceptor(auth);
//! # drop(server);
//! ```
//!
//! # Status and metadata
//!
//! [`Status`] has tonic's constructors (`Status::not_found(msg)`, ...), `code()`,
//! `message()`, `details()` and `metadata()`; [`Code`] converts from wire integers without
//! folding unknown ones into another code. Request and response metadata are
//! [`MetadataMap`]s (`-bin` keys hold binary values: `insert_bin`, `get_bin`).
//!
//! # TLS with a self-signed certificate
//!
//! Feature `tls` (rustls). rustls refuses a CA certificate used as the server's own
//! certificate: make a CA, then a server certificate it signs for the name the client
//! connects to (with openssl, the CA needs `basicConstraints=CA:TRUE` and the server
//! certificate `CA:FALSE`). With rcgen:
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
//! use rsgrpc::tls::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
//!
//! let ca_key = KeyPair::generate()?;
//! let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
//! ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! let ca = ca_params.self_signed(&ca_key)?;
//! let issuer = Issuer::new(ca_params, ca_key);
//! let server_key = KeyPair::generate()?;
//! let server_cert = CertificateParams::new(vec!["localhost".to_owned()])?
//!     .signed_by(&server_key, &issuer)?;
//!
//! let identity = Identity::from_pem(server_cert.pem(), server_key.serialize_pem())?;
//! let server = rsgrpc::server::Server::builder()
//!     .tls_config(ServerTlsConfig::new(identity))
//!     .bind("127.0.0.1:50051")?;
//! let trust = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem())?);
//! let channel = rsgrpc::Channel::builder("https://localhost:50051")
//!     .tls_config(trust)
//!     .connect_lazy()?;
//! # drop((server, channel)); Ok(()) }
//! ```
//!
//! # Health and reflection
//!
//! The crates `rsgrpc-health` (grpc.health.v1, with `Check` and `Watch`) and
//! `rsgrpc-reflection` (v1 and v1alpha, for grpcurl and friends) are services like any
//! other: add them to the server with `add_service`. Reflection serves the descriptors a
//! build script writes with `file_descriptor_set_path` (see
//! [`include_file_descriptor_set!`](crate::include_file_descriptor_set)).
//!
//! # Sizes, limits and compression
//!
//! tonic's `max_decoding_message_size` and `max_encoding_message_size` are
//! `max_receive_message_size` and `max_send_message_size` here, on channels, clients,
//! servers and services alike. The server also bounds what a peer can make it hold
//! (memory quotas, connection and call limits): see [`design`](crate::design).
//!
//! [`ServiceBuilder`]: crate::server::ServiceBuilder
//! [`ServerBuilder::spawn_with`]: crate::server::ServerBuilder::spawn_with
//! [`Channel::new`]: crate::Channel::new
//! [`Channel::connect`]: crate::Channel::connect
//! [`Channel::connect_blocking`]: crate::Channel::connect_blocking
//! [`ChannelBuilder::connect_lazy`]: crate::ChannelBuilder::connect_lazy
//! [`ChannelBuilder::timeout`]: crate::ChannelBuilder::timeout
//! [`ChannelBuilder::wait_for_ready`]: crate::ChannelBuilder::wait_for_ready
//! [`ChannelBuilder::service_config`]: crate::ChannelBuilder::service_config
//! [`Client::timeout`]: crate::client::Client::timeout
//! [`Client::wait_for_ready`]: crate::client::Client::wait_for_ready
//! [`Streaming`]: crate::Streaming
//! [`BlockingStreaming`]: crate::BlockingStreaming
//! [`RequestSender`]: crate::RequestSender
//! [`ResponseSink`]: crate::ResponseSink
//! [`BoxStream`]: crate::BoxStream
//! [`Status`]: crate::Status
//! [`Code`]: crate::Code
//! [`MetadataMap`]: crate::MetadataMap
