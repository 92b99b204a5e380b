//! The generic client: every RPC kind, in async and blocking form, over a [`Channel`].
//!
//! Generated clients wrap a [`Client`] and call one of its methods per RPC; the methods
//! are public so that a service can also be called without generated code.
//!
//! Every call goes through the same path: the request is encoded on the caller's thread,
//! the call is handed to the channel's poller thread, and the caller waits on the call's
//! completion queue, parking its thread (blocking methods) or registering its waker (async
//! methods). Async request streams are pumped on the runtime's executor, never on the
//! poller.

mod attempt;
mod call;

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{CONTENT_TYPE, HeaderValue, TE, USER_AGENT};
use http::uri::PathAndQuery;
use prost::Message;
use tracing::Instrument;

use crate::call::chunks::{ChunkPool, queue_message};
use crate::call::events::Outbound;
use crate::call::observed::Observed;
use crate::call::receiver::{Block, Receiver};
use crate::call::streams::{BlockingStreaming, RequestSender, Streaming};
use crate::channel::Channel;
use crate::codec::{self, CompressionEncoding};
use crate::cq::{self, Producer};
use crate::deadline;
use crate::executor::BoxFuture;
use crate::interceptor::{Chain, Interceptor};
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::request::{CallOptions, Request};
use crate::response::Response;
use crate::status::Status;
use crate::transport::frames::End;

/// A generic gRPC client over a [`Channel`].
///
/// `path` arguments are the full method path, `/package.Service/Method`.
///
/// A client may set its own message size limits and compression, which apply to the calls
/// made through it and override the channel's; clients sharing a channel do not see each
/// other's settings.
///
/// ```no_run
/// # #[derive(Clone, PartialEq, prost::Message)] struct HelloRequest {}
/// # #[derive(Clone, PartialEq, prost::Message)] struct HelloReply {}
/// let client = rsgrpc::client::Client::new(rsgrpc::Channel::new("http://127.0.0.1:50051")?);
/// let reply: rsgrpc::Response<HelloReply> = client.blocking_unary(
///     "/helloworld.Greeter/SayHello",
///     rsgrpc::Request::new(HelloRequest {}),
/// )?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    /// Overrides the channel's `max_send_message_size`.
    max_send_message_size: Option<usize>,
    /// Overrides the channel's `max_receive_message_size`.
    max_receive_message_size: Option<usize>,
    /// Overrides the channel's `send_compressed`.
    send_compression: Option<CompressionEncoding>,
    /// Overrides the channel's default timeout.
    timeout: Option<std::time::Duration>,
    /// Overrides the channel's default wait-for-ready.
    wait_for_ready: Option<bool>,
    /// Run after the channel's.
    interceptors: Chain,
}

/// What a started call hands back to its caller.
struct Started {
    rx: Receiver,
    ops: Producer<Outbound>,
    pool: ChunkPool,
    /// How this call's requests are compressed.
    compression: Option<CompressionEncoding>,
    /// Counts the requests sent.
    metrics: Option<Metrics>,
}

impl Client {
    /// A client sending its calls on `channel`.
    pub fn new(channel: Channel) -> Client {
        Client {
            channel,
            max_send_message_size: None,
            max_receive_message_size: None,
            send_compression: None,
            timeout: None,
            wait_for_ready: None,
            interceptors: Chain::default(),
        }
    }

    /// Runs `interceptor` around every call made through this client, after the
    /// channel's interceptors and those added to the client before (see
    /// [`interceptor`](crate::interceptor) for the order). Other clients on the same
    /// channel do not run it.
    ///
    /// ```no_run
    /// use rsgrpc::interceptor;
    ///
    /// let channel = rsgrpc::Channel::new("http://127.0.0.1:50051")?;
    /// let client = rsgrpc::client::Client::new(channel).with_interceptor(interceptor::from_fn(
    ///     |_call, metadata| {
    ///         metadata
    ///             .insert("authorization", "Bearer let-me-in")
    ///             .map_err(|e| rsgrpc::Status::internal(e.to_string()))
    ///     },
    /// ));
    /// # Ok::<(), rsgrpc::Error>(())
    /// ```
    #[must_use]
    pub fn with_interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors = self.interceptors.with(Arc::new(interceptor));
        self
    }

    /// The channel this client uses.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Largest request message this client sends, overriding the channel's
    /// [`max_send_message_size`](crate::ChannelBuilder::max_send_message_size); a larger
    /// one fails the call with `RESOURCE_EXHAUSTED` before anything of it is sent.
    ///
    /// ```no_run
    /// let channel = rsgrpc::Channel::new("http://127.0.0.1:50051")?;
    /// let client = rsgrpc::client::Client::new(channel)
    ///     .max_send_message_size(64 * 1024)
    ///     .max_receive_message_size(16 * 1024 * 1024)
    ///     .send_compressed(rsgrpc::CompressionEncoding::Gzip);
    /// # Ok::<(), rsgrpc::Error>(())
    /// ```
    #[must_use]
    pub fn max_send_message_size(mut self, bytes: usize) -> Self {
        self.max_send_message_size = Some(bytes);
        self
    }

    /// Largest response message this client accepts, overriding the channel's
    /// [`max_receive_message_size`](crate::ChannelBuilder::max_receive_message_size)
    /// (default 4 MiB); a larger one fails the call with `RESOURCE_EXHAUSTED` without
    /// being buffered. For a compressed message, the limit applies to both its compressed
    /// and its decompressed size.
    #[must_use]
    pub fn max_receive_message_size(mut self, bytes: usize) -> Self {
        self.max_receive_message_size = Some(bytes);
        self
    }

    /// Compresses the request messages of this client's calls with `encoding`, whatever
    /// the channel's [`send_compressed`](crate::ChannelBuilder::send_compressed) says. A
    /// request's own choice ([`Request::set_send_compressed`],
    /// [`Request::set_send_uncompressed`]) still takes precedence. Compressed responses are
    /// always accepted.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.send_compression = Some(encoding);
        self
    }

    /// A timeout for this client's calls that do not set their own
    /// ([`Request::set_timeout`]), overriding the channel's
    /// [`timeout`](crate::ChannelBuilder::timeout). A service config's `timeout` for the
    /// method still caps it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let channel = rsgrpc::Channel::new("http://127.0.0.1:50051")?;
    /// let client = rsgrpc::client::Client::new(channel)
    ///     .timeout(Duration::from_secs(5))
    ///     .wait_for_ready(true);
    /// # Ok::<(), rsgrpc::Error>(())
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Whether this client's calls wait for a ready connection (until their deadline)
    /// instead of failing at once with `UNAVAILABLE` when the channel cannot connect,
    /// unless a call says otherwise ([`Request::set_wait_for_ready`]); overrides the
    /// channel's [`wait_for_ready`](crate::ChannelBuilder::wait_for_ready) and the service
    /// config's `waitForReady`.
    #[must_use]
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = Some(wait);
        self
    }

    /// The largest request message of a call to `path`: this client's limit (or the
    /// channel's), lowered by the service config's `maxRequestMessageBytes`.
    fn max_send(&self, path: &str) -> usize {
        let inner = &self.channel.inner;
        let limit = self
            .max_send_message_size
            .unwrap_or(inner.config.max_send_message_size);
        match inner.method_config(path).and_then(|m| m.max_request_bytes) {
            Some(config) => limit.min(config),
            None => limit,
        }
    }

    /// The largest response message of a call to `path`, as [`max_send`](Self::max_send).
    fn max_receive(&self, path: &str) -> usize {
        let inner = &self.channel.inner;
        let limit = self
            .max_receive_message_size
            .unwrap_or(inner.config.max_receive_message_size);
        match inner.method_config(path).and_then(|m| m.max_response_bytes) {
            Some(config) => limit.min(config),
            None => limit,
        }
    }

    /// Runs the call's interceptors, builds the request headers on the caller's thread and
    /// hands the call to the poller.
    fn start(
        &self,
        path: &'static str,
        mut metadata: MetadataMap,
        options: CallOptions,
        body: impl FnOnce(Option<CompressionEncoding>) -> Result<Option<Bytes>, Status>,
    ) -> Result<Started, Status> {
        let inner = &self.channel.inner;
        let chain = inner.interceptors.then(&self.interceptors);
        let mut observed = Observed::start(chain, path, false, None, inner.metrics.clone());
        let prepared = match &mut observed {
            Some(observed) => observed
                .request(&mut metadata)
                .and_then(|()| self.prepare(path, metadata, options, body)),
            None => self.prepare(path, metadata, options, body),
        };
        let (task, mut started) = match prepared {
            Ok(prepared) => prepared,
            Err(status) => {
                if let Some(observed) = &mut observed {
                    observed.end(&status);
                }
                return Err(status);
            }
        };
        if let Some(observed) = observed {
            if let (Some(metrics), Some(body)) = (observed.metrics(), &task.body) {
                metrics.sent(body.len());
            }
            started.metrics = observed.metrics().cloned();
            started.rx = started.rx.observe(observed);
        }
        let span = tracing::debug_span!("call", method = task.head.uri().path());
        inner.poller.spawn(task.run().instrument(span));
        Ok(started)
    }

    /// Builds the request headers and the poller's side of the call.
    fn prepare(
        &self,
        path: &'static str,
        metadata: MetadataMap,
        options: CallOptions,
        body: impl FnOnce(Option<CompressionEncoding>) -> Result<Option<Bytes>, Status>,
    ) -> Result<(call::CallTask, Started), Status> {
        let inner = &self.channel.inner;
        let method_path = path;
        let path = PathAndQuery::from_maybe_shared(Bytes::from_static(path.as_bytes()))
            .map_err(|e| Status::internal(format!("invalid method path {path:?}: {e}")))?;
        let uri = http::Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| Status::internal(format!("cannot build the request uri: {e}")))?;
        let CallOptions {
            timeout,
            wait_for_ready,
            compression,
            parent,
        } = options;
        // The call's own choice, then the client's, then the channel's; a service config
        // caps the timeout and has the last say on waiting for ready.
        let method = inner.method_config(method_path);
        let timeout = timeout.or(self.timeout).or(inner.config.default_timeout);
        let timeout = match (timeout, method.and_then(|m| m.timeout)) {
            (Some(own), Some(config)) => Some(own.min(config)),
            (own, config) => own.or(config),
        };
        let wait_for_ready = wait_for_ready
            .or(self.wait_for_ready)
            .or(inner.config.default_wait_for_ready)
            .or(method.and_then(|m| m.wait_for_ready))
            .unwrap_or(false);
        // A call made for a server call gets no more than the time that call has left.
        let (timeout, parent_cancel) = match &parent {
            Some(parent) => {
                let left = parent
                    .deadline()
                    .map(|d| d.saturating_duration_since(std::time::Instant::now()));
                let timeout = match (timeout, left) {
                    (Some(own), Some(left)) => Some(own.min(left)),
                    (own, left) => own.or(left),
                };
                (timeout, parent.watch())
            }
            None => (timeout, None),
        };
        if timeout == Some(std::time::Duration::ZERO) {
            // A deadline that has passed already: nothing is sent.
            return Err(call::deadline_exceeded());
        }
        // The request's own choice, then the client's, then the channel's.
        let compression =
            compression.unwrap_or_else(|| self.send_compression.or(inner.config.send_compression));
        let max_receive = self.max_receive(method_path);
        let body = body(compression)?;
        let mut head = http::Request::new(());
        *head.method_mut() = http::Method::POST;
        *head.uri_mut() = uri;
        *head.version_mut() = http::Version::HTTP_2;
        let headers = head.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(USER_AGENT, inner.user_agent.clone());
        headers.insert(
            codec::GRPC_ACCEPT_ENCODING,
            HeaderValue::from_static(codec::ACCEPTED_ENCODINGS),
        );
        if let Some(encoding) = compression {
            headers.insert(
                codec::GRPC_ENCODING,
                HeaderValue::from_static(encoding.as_str()),
            );
        }
        if let Some(timeout) = timeout {
            let value = deadline::encode_timeout(timeout);
            headers.insert(
                deadline::GRPC_TIMEOUT,
                HeaderValue::from_str(&value).expect("digits and a unit are a valid value"),
            );
        }
        metadata.write_to(headers);

        // Responses wait in the call's decoder at wire size beyond this budget, their
        // flow-control credit held back until the caller reads (see `Inflow`).
        let (events_tx, events_rx) = cq::queue(crate::limits::INBOUND_QUEUE);
        let (ops_tx, ops_rx) = cq::queue(crate::limits::CLIENT_OUTBOUND_QUEUE);
        let pool = ChunkPool::default();
        let task = call::CallTask {
            pool: pool.clone(),
            channel: inner.clone(),
            head,
            body,
            deadline: timeout.map(deadline::saturating_after),
            parent: parent_cancel,
            wait_for_ready,
            max_receive_message_size: max_receive,
            ops: ops_rx,
            events: events_tx,
        };
        let started = Started {
            rx: Receiver::new(events_rx, End::Client, max_receive),
            ops: ops_tx,
            pool,
            compression,
            metrics: None,
        };
        Ok((task, started))
    }

    /// Starts a call whose single request is sent at once.
    fn start_with_message<Req: Message>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Receiver, Status> {
        let options = request.take_options();
        let (metadata, message) = request.into_parts();
        let max_send = self.max_send(path);
        let started = self.start(path, metadata, options, |compression| {
            codec::encode(&message, max_send, compression).map(Some)
        })?;
        Ok(started.rx)
    }

    /// Starts a call whose requests come from `stream`, pumped on the runtime's executor.
    fn start_with_stream<S, Req>(
        &self,
        path: &'static str,
        request: Request<S>,
    ) -> Result<Receiver, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        Req: Message + 'static,
    {
        let options = request.take_options();
        let (metadata, stream) = request.into_parts();
        let Started {
            rx,
            ops,
            pool,
            compression,
            metrics,
        } = self.start(path, metadata, options, |_| Ok(None))?;
        let max_send = self.max_send(path);
        let pump: BoxFuture = Box::pin(pump_requests(
            stream,
            ops,
            pool,
            max_send,
            compression,
            metrics,
        ));
        // A stream written for tokio (a timer, a channel with a timeout) finds the tokio
        // runtime the call was made from, though it is polled on rsgrpc's executor.
        let pump = match tokio::runtime::Handle::try_current() {
            Ok(tokio) => crate::executor::in_tokio(tokio, pump),
            Err(_) => pump,
        };
        self.channel.inner.rt.spawn(pump);
        Ok(rx)
    }

    /// A unary call.
    ///
    /// # Errors
    ///
    /// The status the server returned, or a local one: `DEADLINE_EXCEEDED`,
    /// `UNAVAILABLE` when the server cannot be reached, `RESOURCE_EXHAUSTED` for a message
    /// over a size limit, `INTERNAL` for a response that does not decode.
    pub async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_message(path, request)?;
        let body = poll_fn(|cx| rx.poll_single(cx)).await?;
        single_response(rx, body)
    }

    /// A server-streaming call: one request, a stream of responses.
    ///
    /// Returns once the server sent its response headers.
    ///
    /// # Errors
    ///
    /// As [`unary`](Self::unary); errors after the headers come from the stream.
    pub async fn server_streaming<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_message(path, request)?;
        poll_fn(|cx| rx.poll_headers(cx)).await?;
        Ok(streaming_response(rx, Streaming::new))
    }

    /// A client-streaming call: requests from `stream`, one response.
    ///
    /// The stream is polled on the runtime's executor.
    ///
    /// # Errors
    ///
    /// As [`unary`](Self::unary).
    pub async fn client_streaming<S, Req, Resp>(
        &self,
        path: &'static str,
        request: Request<S>,
    ) -> Result<Response<Resp>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        Req: Message + 'static,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_stream(path, request)?;
        let body = poll_fn(|cx| rx.poll_single(cx)).await?;
        single_response(rx, body)
    }

    /// A bidirectional-streaming call: requests from `stream`, a stream of responses.
    ///
    /// The request stream is polled on the runtime's executor, independently of how the
    /// responses are read. Returns once the server sent its response headers.
    ///
    /// # Errors
    ///
    /// As [`server_streaming`](Self::server_streaming).
    pub async fn bidi_streaming<S, Req, Resp>(
        &self,
        path: &'static str,
        request: Request<S>,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        Req: Message + 'static,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_stream(path, request)?;
        poll_fn(|cx| rx.poll_headers(cx)).await?;
        Ok(streaming_response(rx, Streaming::new))
    }

    /// A unary call that blocks the calling thread.
    ///
    /// Needs no async runtime, and is safe to call from inside one (it parks the thread
    /// rather than nesting a runtime).
    ///
    /// # Errors
    ///
    /// As [`unary`](Self::unary).
    pub fn blocking_unary<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_message(path, request)?;
        let body = block(rx.poll_single(&mut Block))?;
        single_response(rx, body)
    }

    /// A server-streaming call that blocks until the response headers arrive; the
    /// responses are an [`Iterator`].
    ///
    /// # Errors
    ///
    /// As [`server_streaming`](Self::server_streaming).
    pub fn blocking_server_streaming<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<BlockingStreaming<Resp>>, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let mut rx = self.start_with_message(path, request)?;
        block(rx.poll_headers(&mut Block))?;
        Ok(streaming_response(rx, BlockingStreaming::new))
    }

    /// A client-streaming call that sends every request from `requests` on the calling
    /// thread, then blocks for the response.
    ///
    /// Iteration stops early if the server ends the call first.
    ///
    /// # Errors
    ///
    /// As [`unary`](Self::unary).
    pub fn blocking_client_streaming<I, Req, Resp>(
        &self,
        path: &'static str,
        request: Request<I>,
    ) -> Result<Response<Resp>, Status>
    where
        I: IntoIterator<Item = Req>,
        Req: Message,
        Resp: Message + Default,
    {
        let options = request.take_options();
        let (metadata, requests) = request.into_parts();
        let Started {
            mut rx,
            ops,
            pool,
            compression,
            metrics,
        } = self.start(path, metadata, options, |_| Ok(None))?;
        let mut sender = RequestSender::new(ops, pool, self.max_send(path), compression, metrics);
        for message in requests {
            if let Err(status) = sender.send(message) {
                if status.code() == crate::Code::ResourceExhausted {
                    rx.ended(&status);
                    return Err(status);
                }
                break;
            }
        }
        sender.finish();
        let body = block(rx.poll_single(&mut Block))?;
        single_response(rx, body)
    }

    /// A bidirectional-streaming call: returns a [`RequestSender`] and the responses as
    /// a [`BlockingStreaming`] iterator, without waiting for the server.
    ///
    /// Send and receive from one thread in turn (ping-pong) or from two threads.
    /// Dropping the sender half-closes the call; dropping the receiver cancels it.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if `path` is not a valid method path; everything else is reported by
    /// the returned stream.
    pub fn blocking_bidi_streaming<Req, Resp>(
        &self,
        path: &'static str,
        request: Request<()>,
    ) -> Result<(RequestSender<Req>, BlockingStreaming<Resp>), Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let options = request.take_options();
        let (metadata, ()) = request.into_parts();
        let Started {
            rx,
            ops,
            pool,
            compression,
            metrics,
        } = self.start(path, metadata, options, |_| Ok(None))?;
        Ok((
            RequestSender::new(ops, pool, self.max_send(path), compression, metrics),
            BlockingStreaming::new(rx),
        ))
    }
}

/// Unwraps a blocking wait, which is always ready.
fn block<T>(poll: std::task::Poll<T>) -> T {
    match poll {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => unreachable!("blocking waits are always ready"),
    }
}

fn single_response<Resp: Message + Default>(
    mut rx: Receiver,
    body: Bytes,
) -> Result<Response<Resp>, Status> {
    let message = codec::decode(body)?;
    Ok(
        Response::from_parts(rx.take_headers(), message, rx.take_trailers())
            .with_message_compressed(rx.last_compressed()),
    )
}

fn streaming_response<S>(rx: Receiver, wrap: fn(Receiver) -> S) -> Response<S> {
    let headers = rx.clone_headers();
    Response::from_parts(headers, wrap(rx), MetadataMap::new())
}

/// Feeds a user's request stream into a call. Runs on the executor, never the poller.
async fn pump_requests<S, Req>(
    stream: S,
    ops: Producer<Outbound>,
    pool: ChunkPool,
    max_send: usize,
    compression: Option<CompressionEncoding>,
    metrics: Option<Metrics>,
) where
    S: Stream<Item = Req> + Send + 'static,
    Req: Message,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        if poll_fn(|cx| ops.poll_ready(cx)).await.is_err() {
            return; // the call ended
        }
        // Stop waiting for the user's stream as soon as the call ends.
        let next = poll_fn(|cx| match stream.as_mut().poll_next(cx) {
            std::task::Poll::Ready(next) => std::task::Poll::Ready(Some(next)),
            std::task::Poll::Pending if ops.poll_closed(cx).is_ready() => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        })
        .await;
        match next {
            None => return,
            Some(None) => {
                let _ = ops.push(Outbound::Finish);
                return;
            }
            Some(Some(message)) => {
                match queue_message(
                    &ops,
                    &pool,
                    &message,
                    max_send,
                    compression,
                    metrics.as_ref(),
                ) {
                    Ok(()) => {}
                    Err(status) if status.code() == crate::Code::ResourceExhausted => {
                        let _ = ops.push(Outbound::Abort(status));
                        return;
                    }
                    // The call ended.
                    Err(_) => return,
                }
            }
        }
    }
}
