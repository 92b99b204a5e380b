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
//!
//! The files follow a call: `start` prepares it on the caller's thread, `call` runs it on
//! the poller and decides on retries, `attempt` carries one try over one HTTP/2 stream.

mod attempt;
mod call;
mod start;
#[cfg(test)]
mod transcript;

use std::future::poll_fn;
use std::sync::Arc;

use futures_core::Stream;
use prost::Message;

use crate::call::receiver::Block;
use crate::call::streams::{BlockingStreaming, RequestSender, Streaming};
use crate::channel::Channel;
use crate::codec::CompressionEncoding;
use crate::interceptor::{Chain, Interceptor};
use crate::request::Request;
use crate::response::Response;
use crate::status::Status;
use start::{Started, block, single_response, streaming_response};

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
