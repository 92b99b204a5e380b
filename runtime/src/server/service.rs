//! [`Service`]: a named set of method handlers, blocking or async, built from typed
//! closures by [`ServiceBuilder`]. Generated servers build one of these; so can hand-written
//! code.
//!
//! Each builder method wraps a typed handler into the runtime's erased form. The wrapper
//! decodes requests and encodes responses on the handler's own thread (worker pool or
//! executor), catches panics (the call fails with `UNKNOWN`), and always sends a final
//! status.

use std::future::Future;
use std::sync::Arc;

use futures_core::Stream;
use prost::Message;

use bytes::Bytes;

use super::handler::{run_async, run_blocking, send_single, send_stream};
use super::responder::{Responder, ResponseSink};
use crate::call::cancel::CallContext;
use crate::call::receiver::Receiver;
use crate::call::streams::{BlockingStreaming, Streaming};
use crate::codec::{self, CompressionEncoding, Frame};
use crate::executor::BoxFuture;
use crate::interceptor::{Chain, Interceptor};
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::quota::Charge;
use crate::request::Request;
use crate::response::Response;
use crate::status::Status;

/// One server call as handed to a handler wrapper.
pub(crate) struct ServerCall {
    /// The method's path and what observes its calls.
    pub(crate) site: Arc<Site>,
    pub(crate) metadata: MetadataMap,
    pub(crate) context: Arc<CallContext>,
    pub(crate) requests: Requests,
    pub(crate) responder: Arc<Responder>,
}

/// A call's request: the one message of a unary or server-streaming call, received whole
/// before the handler starts, or the stream of a client- or bidi-streaming call.
pub(crate) enum Requests {
    Single {
        frame: Frame,
        /// What the message holds, charged to its connection's memory quota until it is
        /// decoded.
        charge: Charge,
        /// The client's `grpc-encoding`, for a compressed message.
        encoding: Option<CompressionEncoding>,
        /// Largest message accepted after decompression.
        max_len: usize,
    },
    Stream(Box<Receiver>),
}

impl Requests {
    /// The single request's plain body and whether it arrived compressed.
    fn single(self) -> Result<(Bytes, bool), Status> {
        match self {
            Requests::Single {
                frame,
                charge,
                encoding,
                max_len,
            } => {
                // Decoding follows at once; the handler's message is its own memory.
                drop(charge);
                if !frame.compressed {
                    return Ok((frame.body, false));
                }
                let encoding = encoding.ok_or_else(|| {
                    Status::internal(
                        "received a compressed message, but the client sent no grpc-encoding",
                    )
                })?;
                Ok((codec::decompress(encoding, &frame.body, max_len)?, true))
            }
            Requests::Stream(_) => Err(Status::internal(
                "a streaming request was handed to a method that takes one message",
            )),
        }
    }

    /// The request stream of a client- or bidi-streaming call.
    fn stream(self) -> Result<Receiver, Status> {
        match self {
            Requests::Stream(receiver) => Ok(*receiver),
            Requests::Single { .. } => Err(Status::internal(
                "a single request was handed to a streaming method",
            )),
        }
    }
}

/// A method handler with its types erased.
#[derive(Clone)]
pub(crate) struct Handler {
    /// Whether the method takes one request message (unary, server-streaming): the
    /// handler then starts only once that message has arrived whole.
    pub(crate) single_request: bool,
    /// Whether the method is unary: its handler never waits on the client (it has its
    /// request whole and answers in one go), unlike the streaming kinds, whose handlers
    /// may wait for requests or for room to send responses as long as the client likes.
    pub(crate) unary: bool,
    pub(crate) run: Run,
    /// Its service's settings, which override the server's.
    pub(crate) settings: ServiceSettings,
    /// Set when the server starts.
    pub(crate) site: Arc<Site>,
}

/// A method as its calls are observed: its path, its interceptors (the server's, then
/// the service's) and the server's metrics.
#[derive(Debug, Default)]
pub(crate) struct Site {
    pub(crate) path: Arc<str>,
    pub(crate) interceptors: Chain,
    pub(crate) metrics: Option<Metrics>,
}

/// A service's own settings, overriding the server's for the service's methods: what
/// [`ServiceBuilder`]'s setters and those of generated server types record.
///
/// Reached as `rsgrpc::codegen::ServiceSettings` by generated code; not part of the stable
/// API.
#[derive(Clone, Debug, Default)]
pub struct ServiceSettings {
    /// Overrides [`ServerBuilder::max_receive_message_size`](super::ServerBuilder::max_receive_message_size).
    pub(crate) max_receive_message_size: Option<usize>,
    /// Overrides [`ServerBuilder::max_send_message_size`](super::ServerBuilder::max_send_message_size).
    pub(crate) max_send_message_size: Option<usize>,
    /// Overrides [`ServerBuilder::send_compressed`](super::ServerBuilder::send_compressed).
    pub(crate) send_compression: Option<CompressionEncoding>,
    /// Run after the server's.
    pub(crate) interceptors: Chain,
}

impl ServiceSettings {
    /// Adds an interceptor, run after those added before.
    #[must_use]
    pub fn interceptor(self, interceptor: impl Interceptor) -> Self {
        ServiceSettings {
            interceptors: self.interceptors.with(Arc::new(interceptor)),
            ..self
        }
    }

    /// Sets the largest request message accepted.
    #[must_use]
    pub fn max_receive_message_size(self, bytes: usize) -> Self {
        ServiceSettings {
            max_receive_message_size: Some(bytes),
            ..self
        }
    }

    /// Sets the largest response message sent.
    #[must_use]
    pub fn max_send_message_size(self, bytes: usize) -> Self {
        ServiceSettings {
            max_send_message_size: Some(bytes),
            ..self
        }
    }

    /// Sets the compression of responses, for clients that accept it.
    #[must_use]
    pub fn send_compressed(self, encoding: CompressionEncoding) -> Self {
        ServiceSettings {
            send_compression: Some(encoding),
            ..self
        }
    }
}

/// How a handler runs.
#[derive(Clone)]
pub(crate) enum Run {
    /// On the blocking worker pool.
    Blocking(Arc<dyn Fn(ServerCall) + Send + Sync>),
    /// As a future on the executor (or the spawn hook). Building the future runs no user
    /// code; polling it does.
    Async(Arc<dyn Fn(ServerCall) -> BoxFuture + Send + Sync>),
}

/// A gRPC service: its full name (`package.Service`) and its methods' handlers.
///
/// Blocking and async methods may be mixed in one service, and a server hosts any mix of
/// services.
///
/// ```
/// use rsgrpc::server::Service;
/// use rsgrpc::{Request, Response, Status};
///
/// # #[derive(Clone, PartialEq, prost::Message)] struct Ping { #[prost(string, tag = "1")] text: String }
/// let service: Service = Service::builder("test.Echo")
///     .blocking_unary("Echo", |req: Request<Ping>| -> Result<Response<Ping>, Status> {
///         Ok(Response::new(req.into_inner()))
///     })
///     .unary("EchoAsync", |req: Request<Ping>| async move {
///         Ok::<_, Status>(Response::new(req.into_inner()))
///     })
///     .build();
/// assert_eq!(service.name(), "test.Echo");
/// ```
pub struct Service {
    pub(crate) name: String,
    pub(crate) methods: Vec<(String, Handler)>,
    settings: ServiceSettings,
}

impl Service {
    /// A builder for the service named `name` (`package.Service`).
    pub fn builder(name: impl Into<String>) -> ServiceBuilder {
        ServiceBuilder {
            service: Service {
                name: name.into(),
                methods: Vec::new(),
                settings: ServiceSettings::default(),
            },
        }
    }

    /// The full service name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field(
                "methods",
                &self.methods.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            )
            .field("settings", &self.settings)
            .finish()
    }
}

/// Adds typed method handlers to a [`Service`], and sets the service's own limits and
/// compression.
///
/// Method names are the short names from the `.proto` (`SayHello`). Async handlers return
/// `Send` futures and run on the runtime's executor (or the server's spawn hook); blocking
/// handlers run on the worker pool.
///
/// [`max_receive_message_size`](Self::max_receive_message_size),
/// [`max_send_message_size`](Self::max_send_message_size) and
/// [`send_compressed`](Self::send_compressed) apply to every method of the service, in
/// place of the server's settings of the same names; other services on the server keep
/// the server's.
#[must_use = "a builder does nothing until build is called"]
pub struct ServiceBuilder {
    service: Service,
}

impl ServiceBuilder {
    /// Largest request message this service accepts, overriding the server's
    /// [`max_receive_message_size`](super::ServerBuilder::max_receive_message_size)
    /// (default 4 MiB). A larger one fails the call with `RESOURCE_EXHAUSTED` after its
    /// five-byte prefix, before anything is buffered; a compressed one, also when it
    /// decompresses to more.
    ///
    /// ```
    /// use rsgrpc::server::Service;
    /// use rsgrpc::{CompressionEncoding, Request, Response, Status};
    ///
    /// # #[derive(Clone, PartialEq, prost::Message)] struct Blob { #[prost(bytes = "vec", tag = "1")] data: Vec<u8> }
    /// let uploads = Service::builder("test.Uploads")
    ///     .blocking_unary("Put", |req: Request<Blob>| -> Result<Response<Blob>, Status> {
    ///         Ok(Response::new(req.into_inner()))
    ///     })
    ///     .max_receive_message_size(64 * 1024 * 1024)
    ///     .max_send_message_size(1024)
    ///     .send_compressed(CompressionEncoding::Gzip)
    ///     .build();
    /// # drop(uploads);
    /// ```
    pub fn max_receive_message_size(mut self, bytes: usize) -> Self {
        self.service.settings = self.service.settings.max_receive_message_size(bytes);
        self
    }

    /// Largest response message this service sends, overriding the server's
    /// [`max_send_message_size`](super::ServerBuilder::max_send_message_size) (default:
    /// unlimited); a larger one fails the call with `RESOURCE_EXHAUSTED`.
    pub fn max_send_message_size(mut self, bytes: usize) -> Self {
        self.service.settings = self.service.settings.max_send_message_size(bytes);
        self
    }

    /// Compresses this service's responses with `encoding` for clients that accept it,
    /// whatever the server's [`send_compressed`](super::ServerBuilder::send_compressed)
    /// says. Compressed requests are accepted either way.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.service.settings = self.service.settings.send_compressed(encoding);
        self
    }

    /// Runs `interceptor` around every call to this service, after the server's
    /// interceptors and those added to the service before (see
    /// [`interceptor`](crate::interceptor) for the order). It runs on the handler's
    /// thread, before the handler and around its end.
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.service.settings = self.service.settings.interceptor(interceptor);
        self
    }

    /// Replaces all of the service's own settings; for generated server types.
    #[doc(hidden)]
    pub fn settings(mut self, settings: ServiceSettings) -> Self {
        self.service.settings = settings;
        self
    }

    fn add(mut self, method: &str, handler: Handler) -> Self {
        self.service.methods.push((method.to_owned(), handler));
        self
    }

    fn add_async<F>(self, method: &str, single_request: bool, unary: bool, f: F) -> Self
    where
        F: Fn(ServerCall) -> BoxFuture + Send + Sync + 'static,
    {
        let run = Run::Async(Arc::new(f));
        self.add(
            method,
            Handler {
                single_request,
                unary,
                run,
                settings: ServiceSettings::default(),
                site: Arc::default(),
            },
        )
    }

    fn add_blocking<F>(self, method: &str, single_request: bool, unary: bool, f: F) -> Self
    where
        F: Fn(ServerCall) + Send + Sync + 'static,
    {
        let run = Run::Blocking(Arc::new(f));
        self.add(
            method,
            Handler {
                single_request,
                unary,
                run,
                settings: ServiceSettings::default(),
                site: Arc::default(),
            },
        )
    }

    /// An async unary method.
    pub fn unary<Req, Resp, F, Fut>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + Send + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.add_async(method, true, true, move |call| {
            let handler = handler.clone();
            run_async(
                call,
                move |requests, metadata, context, responder| async move {
                    let (body, compressed) = requests.single()?;
                    let request =
                        Request::from_server(metadata, codec::decode(body)?, context, compressed);
                    send_single(&responder, handler(request).await?)
                },
            )
        })
    }

    /// An async server-streaming method: one request, a stream of responses.
    pub fn server_streaming<Req, Resp, F, Fut, S>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + Send + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<S>, Status>> + Send + 'static,
        S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.add_async(method, true, false, move |call| {
            let handler = handler.clone();
            run_async(
                call,
                move |requests, metadata, context, responder| async move {
                    let (body, compressed) = requests.single()?;
                    let request =
                        Request::from_server(metadata, codec::decode(body)?, context, compressed);
                    send_stream(&responder, handler(request).await?).await
                },
            )
        })
    }

    /// An async client-streaming method: a stream of requests, one response.
    pub fn client_streaming<Req, Resp, F, Fut>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + Send + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.add_async(method, false, false, move |call| {
            let handler = handler.clone();
            run_async(
                call,
                move |requests, metadata, context, responder| async move {
                    let requests = Streaming::new(requests.stream()?);
                    let request = Request::from_server(metadata, requests, context, false);
                    send_single(&responder, handler(request).await?)
                },
            )
        })
    }

    /// An async bidirectional-streaming method.
    pub fn bidi_streaming<Req, Resp, F, Fut, S>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + Send + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<S>, Status>> + Send + 'static,
        S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.add_async(method, false, false, move |call| {
            let handler = handler.clone();
            run_async(
                call,
                move |requests, metadata, context, responder| async move {
                    let requests = Streaming::new(requests.stream()?);
                    let request = Request::from_server(metadata, requests, context, false);
                    send_stream(&responder, handler(request).await?).await
                },
            )
        })
    }

    /// A blocking unary method.
    pub fn blocking_unary<Req, Resp, F>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Req>) -> Result<Response<Resp>, Status> + Send + Sync + 'static,
    {
        self.add_blocking(method, true, true, move |call| {
            run_blocking(call, |requests, metadata, context, responder| {
                let (body, compressed) = requests.single()?;
                let request =
                    Request::from_server(metadata, codec::decode(body)?, context, compressed);
                send_single(responder, handler(request)?)
            })
        })
    }

    /// A blocking server-streaming method: the handler sends responses through a
    /// [`ResponseSink`] and returns the final status.
    pub fn blocking_server_streaming<Req, Resp, F>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(Request<Req>, ResponseSink<Resp>) -> Result<(), Status> + Send + Sync + 'static,
    {
        self.add_blocking(method, true, false, move |call| {
            run_blocking(call, |requests, metadata, context, responder| {
                let (body, compressed) = requests.single()?;
                let request =
                    Request::from_server(metadata, codec::decode(body)?, context, compressed);
                handler(request, ResponseSink::new(responder.clone()))
            })
        })
    }

    /// A blocking client-streaming method: requests arrive as an iterator.
    pub fn blocking_client_streaming<Req, Resp, F>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(Request<BlockingStreaming<Req>>) -> Result<Response<Resp>, Status>
            + Send
            + Sync
            + 'static,
    {
        self.add_blocking(method, false, false, move |call| {
            run_blocking(call, |requests, metadata, context, responder| {
                let requests = BlockingStreaming::new(requests.stream()?);
                let request = Request::from_server(metadata, requests, context, false);
                send_single(responder, handler(request)?)
            })
        })
    }

    /// A blocking bidirectional-streaming method: requests arrive as an iterator,
    /// responses go through a [`ResponseSink`].
    pub fn blocking_bidi_streaming<Req, Resp, F>(self, method: &str, handler: F) -> Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(Request<BlockingStreaming<Req>>, ResponseSink<Resp>) -> Result<(), Status>
            + Send
            + Sync
            + 'static,
    {
        self.add_blocking(method, false, false, move |call| {
            run_blocking(call, |requests, metadata, context, responder| {
                let requests = BlockingStreaming::new(requests.stream()?);
                let request = Request::from_server(metadata, requests, context, false);
                handler(request, ResponseSink::new(responder.clone()))
            })
        })
    }

    /// The finished service.
    pub fn build(mut self) -> Service {
        for (_, handler) in &mut self.service.methods {
            handler.settings = self.service.settings.clone();
        }
        self.service
    }
}
