//! gRPC for Rust with blocking **and** async stubs over one runtime.
//!
//! rsgrpc serves and calls gRPC services from plain threads and from any async executor
//! alike. A blocking client works in `fn main` with no async runtime, and does not panic
//! when called from inside one; an async client runs on tokio, async-std, smol or
//! `futures::executor::block_on`; both can share one [`Channel`] and its HTTP/2
//! connection. One server hosts blocking and async services side by side on one port.
//!
//! Usually you use generated stubs; underneath they call [`client::Client`] and
//! [`server::ServiceBuilder`], which work without generated code too:
//!
//! ```no_run
//! use rsgrpc::server::{Server, Service};
//! use rsgrpc::{Channel, Request, Response, Status};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct HelloRequest {
//!     #[prost(string, tag = "1")]
//!     name: String,
//! }
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct HelloReply {
//!     #[prost(string, tag = "1")]
//!     message: String,
//! }
//!
//! // A server with one blocking method.
//! let greeter = Service::builder("helloworld.Greeter")
//!     .blocking_unary("SayHello", |req: Request<HelloRequest>| {
//!         let message = format!("Hello {}!", req.get_ref().name);
//!         Ok::<_, Status>(Response::new(HelloReply { message }))
//!     })
//!     .build();
//! let server = Server::builder().add_service(greeter).bind("127.0.0.1:0")?;
//!
//! // A blocking and an async call over one channel.
//! let channel = Channel::new(&format!("http://{}", server.local_addr()))?;
//! let client = rsgrpc::client::Client::new(channel);
//! let request = || Request::new(HelloRequest { name: "world".into() });
//! let reply: Response<HelloReply> =
//!     client.blocking_unary("/helloworld.Greeter/SayHello", request())?;
//! let reply2: Response<HelloReply> = futures::executor::block_on(
//!     client.unary("/helloworld.Greeter/SayHello", request()),
//! )?;
//! assert_eq!(reply.get_ref(), reply2.get_ref());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works
//!
//! [`design`] explains the poller threads, the completion queues and the life of a call;
//! [`from_tonic`] is a guide for those who know tonic.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod call;
pub mod channel;
pub mod client;
mod codec;
mod cq;
mod deadline;
mod error;
mod executor;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;
pub mod interceptor;
pub mod limits;
mod live;
mod metadata;
pub mod metrics;
#[cfg(all(test, shuttle))]
mod models;
mod poller;
mod pool;
mod quota;
mod request;
mod response;
mod role;
mod runtime;
pub mod server;
mod status;
mod sync;
#[cfg(test)]
mod testing;
mod transport;

pub mod design;
pub mod from_tonic;

/// TLS for channels and servers, with rustls (feature `tls`).
#[cfg(feature = "tls")]
pub mod tls {
    pub use crate::transport::tls::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
}

pub use call::cancel::Cancelled;
pub use call::streams::{BlockingStreaming, RequestSender, Streaming};
pub use channel::{Channel, ChannelBuilder};
pub use codec::CompressionEncoding;
pub use error::{Error, Result};
pub use metadata::{MetadataMap, MetadataValue};
pub use request::{
    CompressionSwitch, IntoIterRequest, IntoRequest, IntoStreamingRequest, ParentCall, Request,
};
pub use response::Response;
/// Generates messages and stubs from `.proto` files into the annotated module, at compile
/// time; see [`rsgrpc_macros`](https://docs.rs/rsgrpc-macros) for its arguments. Needs the
/// `macros` feature, which is off by default because it compiles the code generator into
/// every build.
///
/// ```text
/// #[rsgrpc::grpc_service(proto = "proto/helloworld.proto", includes = ["proto"])]
/// pub mod helloworld {}
/// ```
#[cfg(feature = "macros")]
pub use rsgrpc_macros::grpc_service;
pub use runtime::{Runtime, RuntimeBuilder};
pub use server::responder::ResponseSink;
pub use status::{Code, Status, UnknownCode};
pub use transport::UnixCredentials;

/// A boxed stream of responses, convenient as the stream type of an async streaming
/// method: `type ListFeaturesStream = rsgrpc::BoxStream<Feature>;`.
pub type BoxStream<T> =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Includes the code `rsgrpc-codegen` generated in a build script for a protobuf package.
///
/// ```text
/// pub mod helloworld {
///     rsgrpc::include_proto!("helloworld");
/// }
/// ```
#[macro_export]
macro_rules! include_proto {
    ($package:tt) => {
        include!(concat!(env!("OUT_DIR"), concat!("/", $package, ".rs")));
    };
}

/// Includes the encoded `FileDescriptorSet` a build script wrote with
/// `rsgrpc_codegen::Builder::file_descriptor_set_path(OUT_DIR/name.bin)`, as a
/// `&'static [u8; N]`: what a reflection service serves.
///
/// ```text
/// // build.rs
/// let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
/// rsgrpc_codegen::Builder::new()
///     .file_descriptor_set_path(out.join("helloworld_descriptor.bin"))
///     .compile(&["proto/helloworld.proto"], &["proto"])?;
///
/// // src/main.rs
/// const DESCRIPTORS: &[u8] = rsgrpc::include_file_descriptor_set!("helloworld_descriptor");
/// ```
///
/// Without a build script (the protoc plugin, the macro), the code generator's
/// `file_descriptor_set` option puts a `FILE_DESCRIPTOR_SET` constant in each package's
/// code instead.
#[macro_export]
macro_rules! include_file_descriptor_set {
    ($name:tt) => {
        include_bytes!(concat!(env!("OUT_DIR"), concat!("/", $name, ".bin")))
    };
}

/// Internals for the project's own tests: process-wide live counts. Not part of the
/// stable API; only with the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::live::LiveCounts;

    /// Calls and connections live in this process now, over every runtime: what a leak
    /// check compares with its baseline.
    pub fn live() -> LiveCounts {
        crate::live::counts()
    }
}

/// What generated code uses from this crate and others, so a user's crate only depends on
/// `rsgrpc` and `prost`. Not part of the stable API.
///
/// Versioned: code from `rsgrpc-codegen` names `rsgrpc::codegen::v1::...`, so stubs from a
/// generator that does not match this runtime fail to compile with an error naming the
/// version module, not somewhere inside the stubs. Nothing else is in this module.
#[doc(hidden)]
pub mod codegen {
    /// The items version 1 of the generated code uses.
    pub mod v1 {
        pub use crate::server::service::ServiceSettings;
        pub use futures_core::Stream;
        pub use std::future::Future;
        pub use std::sync::Arc;
    }
}
