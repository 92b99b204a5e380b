//! The server: blocking and async services side by side on one port.
//!
//! ```no_run
//! use rsgrpc::server::{Server, Service};
//! use rsgrpc::{Request, Response, Status};
//! use std::time::Duration;
//!
//! # #[derive(Clone, PartialEq, prost::Message)] struct Ping {}
//! let echo = Service::builder("test.Echo")
//!     .blocking_unary("Echo", |req: Request<Ping>| -> Result<Response<Ping>, Status> {
//!         Ok(Response::new(req.into_inner()))
//!     })
//!     .build();
//! let server = Server::builder().add_service(echo).bind("127.0.0.1:0")?;
//! println!("listening on {}", server.local_addr());
//! // ... later: let in-flight calls finish for up to 5 s, then cancel the rest.
//! server.shutdown(Duration::from_secs(5)).wait();
//! # Ok::<(), rsgrpc::Error>(())
//! ```
//!
//! Connections, their HTTP/2 state and every socket read and write live on the runtime's
//! poller threads. Blocking handlers run on its worker pool, async handlers on its executor
//! or on a spawn hook of yours ([`ServerBuilder::spawn_with`]).
//!
//! The files follow a call's way in: `builder` binds, `accept` admits a connection,
//! `connection` drives it, `dispatch` checks, routes and admits each new stream, `stream`
//! carries one call on the poller, `service` holds the methods, `handler` runs one, and
//! `responder` sends what the handler returns; `shared` holds what they all count
//! against, `handle` the running server. `web` is what gRPC-Web calls do differently, and
//! `http1` brings HTTP/1.1 connections to the same path.

mod accept;
mod builder;
mod connection;
mod dispatch;
mod handle;
mod handler;
#[cfg(feature = "http1")]
mod http1;
pub(crate) mod responder;
pub(crate) mod service;
mod shared;
mod stream;
#[cfg(test)]
mod transcript;
mod web;

use std::time::Duration;

use crate::codec::CompressionEncoding;
pub use crate::executor::BoxFuture;
use crate::limits;
use crate::transport::SocketOptions;
use crate::transport::frames::PingPolicy;
pub use builder::ServerBuilder;
pub use handle::{ServerHandle, Shutdown};
pub use service::{Service, ServiceBuilder};
pub(crate) use shared::{CallGuard, ConnectionGuard, Phase, ServerShared};
pub use web::GrpcWeb;

/// Entry point: [`Server::builder`].
#[derive(Debug)]
pub struct Server {
    _private: (),
}

impl Server {
    /// A builder with default limits and no services.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }
}

/// Limits and timeouts of a server. Defaults are safe for a server exposed to untrusted
/// clients.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) max_receive_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_header_list_size: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) initial_stream_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_pending_accept_reset_streams: usize,
    pub(crate) max_local_error_reset_streams: usize,
    pub(crate) send_compression: Option<CompressionEncoding>,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_connections: usize,
    /// Pings sent to clients quiet for this long (none by default).
    pub(crate) keepalive_time: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
    /// How often clients may ping (gRPC's keepalive enforcement).
    pub(crate) ping_policy: PingPolicy,
    pub(crate) max_connection_idle: Option<Duration>,
    pub(crate) max_connection_age: Option<Duration>,
    pub(crate) max_connection_age_grace: Option<Duration>,
    pub(crate) socket: SocketOptions,
    /// Bytes all connections may make the server hold.
    pub(crate) memory_quota: usize,
    /// Bytes one connection may make the server hold.
    pub(crate) connection_memory_quota: usize,
    /// Blocking handlers one connection may have running or queued (default: a quarter
    /// of the runtime's `max_blocking_threads`).
    pub(crate) max_blocking_handlers_per_connection: Option<usize>,
    /// gRPC-Web requests are served (and CORS answered) as this says.
    pub(crate) web: Option<std::sync::Arc<GrpcWeb>>,
    /// HTTP/1.1 connections are accepted beside HTTP/2 ones.
    #[cfg(feature = "http1")]
    pub(crate) accept_http1: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_receive_message_size: limits::DEFAULT_MAX_RECEIVE_MESSAGE_SIZE,
            max_send_message_size: usize::MAX,
            max_concurrent_streams: limits::DEFAULT_MAX_CONCURRENT_STREAMS,
            max_header_list_size: limits::DEFAULT_MAX_HEADER_LIST_SIZE,
            handshake_timeout: limits::DEFAULT_HANDSHAKE_TIMEOUT,
            initial_stream_window_size: limits::DEFAULT_STREAM_WINDOW,
            initial_connection_window_size: limits::DEFAULT_CONNECTION_WINDOW,
            max_pending_accept_reset_streams: limits::DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: limits::DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS,
            send_compression: None,
            max_concurrent_calls: limits::DEFAULT_MAX_CONCURRENT_CALLS,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            keepalive_time: None,
            keepalive_timeout: limits::DEFAULT_KEEPALIVE_TIMEOUT,
            ping_policy: PingPolicy {
                min_time: limits::DEFAULT_PING_MIN_TIME,
                permit_without_calls: false,
            },
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            socket: SocketOptions::default(),
            memory_quota: limits::DEFAULT_MEMORY_QUOTA,
            connection_memory_quota: limits::DEFAULT_CONNECTION_MEMORY_QUOTA,
            max_blocking_handlers_per_connection: None,
            web: None,
            #[cfg(feature = "http1")]
            accept_http1: false,
        }
    }
}
