//! [`Request`]: a message (or a stream of them) with its metadata and per-call options.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::call::cancel::{CallContext, CancelWatch, Cancelled};
use crate::codec::CompressionEncoding;
use crate::metadata::MetadataMap;

/// A gRPC request: the message (or request stream), its metadata, and call options.
///
/// On the client, set a timeout or metadata before making the call:
///
/// ```
/// use std::time::Duration;
///
/// let mut request = rsgrpc::Request::new("payload");
/// request.set_timeout(Duration::from_secs(2));
/// request.metadata_mut().insert("x-request-id", "7").unwrap();
/// assert_eq!(request.timeout(), Some(Duration::from_secs(2)));
/// ```
///
/// On the server, a handler reads the caller's metadata, deadline and address, and can
/// watch for cancellation with [`is_cancelled`](Request::is_cancelled) and
/// [`cancelled`](Request::cancelled).
#[derive(Debug)]
pub struct Request<T> {
    metadata: MetadataMap,
    message: T,
    timeout: Option<Duration>,
    wait_for_ready: Option<bool>,
    /// The call's own compression choice: `None` leaves it to the client and the channel,
    /// `Some(None)` sends uncompressed.
    compression: Option<Option<CompressionEncoding>>,
    message_compressed: bool,
    context: Option<Arc<CallContext>>,
    /// Client side: the server call this call is made for.
    parent: Option<ParentCall>,
}

/// Client-side options carried by a [`Request`].
pub(crate) struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    /// `None`: as the client, the channel or the service config says.
    pub(crate) wait_for_ready: Option<bool>,
    /// As [`Request`]'s: `None` leaves it to the client and the channel.
    pub(crate) compression: Option<Option<CompressionEncoding>>,
    pub(crate) parent: Option<ParentCall>,
}

impl<T> Request<T> {
    /// A request with empty metadata and no timeout.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: MetadataMap::new(),
            message,
            timeout: None,
            wait_for_ready: None,
            compression: None,
            message_compressed: false,
            context: None,
            parent: None,
        }
    }

    pub(crate) fn from_server(
        metadata: MetadataMap,
        message: T,
        context: Arc<CallContext>,
        message_compressed: bool,
    ) -> Request<T> {
        Request {
            metadata,
            message,
            timeout: None,
            wait_for_ready: None,
            compression: None,
            message_compressed,
            context: Some(context),
            parent: None,
        }
    }

    /// The request metadata (headers).
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// Mutable access to the request metadata.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// Mutable access to the message.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message, dropping metadata and options.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Splits into metadata and message.
    pub fn into_parts(self) -> (MetadataMap, T) {
        (self.metadata, self.message)
    }

    /// Replaces the message, keeping metadata and options.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            metadata: self.metadata,
            message: f(self.message),
            timeout: self.timeout,
            wait_for_ready: self.wait_for_ready,
            compression: self.compression,
            message_compressed: self.message_compressed,
            context: self.context,
            parent: self.parent,
        }
    }

    /// Client side: the call fails with `DEADLINE_EXCEEDED` if it has not finished after
    /// `timeout`. The server is told through `grpc-timeout` and enforces it too.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// The client-side timeout, if one was set.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Client side: when the channel cannot connect, wait (until the deadline) for it to
    /// become ready instead of failing at once with `UNAVAILABLE`. Set here, it overrides
    /// the client's, the channel's and the service config's choice.
    pub fn set_wait_for_ready(&mut self, wait: bool) {
        self.wait_for_ready = Some(wait);
    }

    /// Whether [`set_wait_for_ready`](Self::set_wait_for_ready) was turned on for this
    /// request (the client, channel or service config may still turn it on).
    pub fn wait_for_ready(&self) -> bool {
        self.wait_for_ready == Some(true)
    }

    /// Server side: whether the request message arrived compressed (for methods taking one
    /// message; a request stream tells per message).
    pub fn message_compressed(&self) -> bool {
        self.message_compressed
    }

    /// Server side: a switch for compressing this call's responses message by message;
    /// `None` on the client.
    pub fn compression_switch(&self) -> Option<CompressionSwitch> {
        self.context
            .as_ref()
            .map(|c| CompressionSwitch(c.compress.clone()))
    }

    /// Server side: the caller's address (none over a Unix socket).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.context.as_ref().and_then(|c| c.peer.remote_addr)
    }

    /// Server side, over TLS: the certificate chain the client presented (DER, leaf
    /// first), if it presented one.
    pub fn peer_certificates(&self) -> Option<&[bytes::Bytes]> {
        self.context.as_ref()?.peer.certificates.as_deref()
    }

    /// Server side, over a Unix socket: the client process's credentials, where the
    /// operating system reports them.
    pub fn unix_credentials(&self) -> Option<crate::UnixCredentials> {
        self.context.as_ref()?.peer.unix_credentials
    }

    /// Server side: the point in time after which the caller gives up, from its
    /// `grpc-timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.as_ref().and_then(|c| c.deadline)
    }

    /// Server side: whether the call was cancelled (by the client, its deadline, or server
    /// shutdown). Always `false` on the client.
    pub fn is_cancelled(&self) -> bool {
        self.context
            .as_ref()
            .is_some_and(|c| c.cancel.is_cancelled())
    }

    /// Server side: a future that completes when the call is cancelled. On the client it
    /// never completes.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled::new(
            self.context
                .as_ref()
                .map(|c| CancelWatch::new(c.cancel.clone())),
        )
    }

    /// Client side: makes this call on behalf of the server call `parent` (its incoming
    /// [`Request`], or a [`ParentCall`] taken from it): the call gets no more time than
    /// the parent has left, and is cancelled when the parent is (by its client, its
    /// deadline, or server shutdown). A timeout set on this request still applies if it is
    /// shorter. Nothing is propagated from a request that is not a server's.
    ///
    /// ```no_run
    /// # #[derive(Clone, PartialEq, prost::Message)] struct Query {}
    /// # let backend = rsgrpc::client::Client::new(rsgrpc::Channel::new("http://127.0.0.1:1")?);
    /// use rsgrpc::{Request, Response, Status};
    ///
    /// // Inside a blocking handler: the backend call inherits the caller's deadline.
    /// let handler = move |req: Request<Query>| -> Result<Response<Query>, Status> {
    ///     backend.blocking_unary("/demo.Backend/Get", Request::new(Query {}).with_parent(&req))
    /// };
    /// # Ok::<(), rsgrpc::Error>(())
    /// ```
    #[must_use]
    pub fn with_parent(mut self, parent: impl Into<ParentCall>) -> Self {
        self.set_parent(parent);
        self
    }

    /// As [`with_parent`](Self::with_parent), in place.
    pub fn set_parent(&mut self, parent: impl Into<ParentCall>) {
        let parent = parent.into();
        self.parent = parent.context.is_some().then_some(parent);
    }

    /// Server side: a handle on this call, to make outgoing calls on its behalf after the
    /// request itself was consumed (see [`with_parent`](Self::with_parent)).
    pub fn as_parent(&self) -> ParentCall {
        ParentCall {
            context: self.context.clone(),
        }
    }

    /// Client side: compresses this call's request messages, overriding the client's
    /// ([`Client::send_compressed`](crate::client::Client::send_compressed)) and the
    /// channel's setting. Responses are decompressed whatever this says.
    pub fn set_send_compressed(&mut self, encoding: CompressionEncoding) {
        self.compression = Some(Some(encoding));
    }

    /// Client side: sends this call's request messages uncompressed, whatever the client
    /// and the channel are set to (for a payload that would not shrink, say).
    ///
    /// ```
    /// let mut request = rsgrpc::Request::new("already compressed bytes");
    /// request.set_send_compressed(rsgrpc::CompressionEncoding::Gzip);
    /// request.set_send_uncompressed(); // the last choice counts
    /// ```
    pub fn set_send_uncompressed(&mut self) {
        self.compression = Some(None);
    }

    pub(crate) fn take_options(&self) -> CallOptions {
        CallOptions {
            timeout: self.timeout,
            wait_for_ready: self.wait_for_ready,
            compression: self.compression,
            parent: self.parent.clone(),
        }
    }
}

/// A server call that outgoing calls are made on behalf of: they inherit its remaining
/// deadline and its cancellation. See [`Request::with_parent`].
#[derive(Clone, Debug)]
pub struct ParentCall {
    context: Option<Arc<CallContext>>,
}

impl ParentCall {
    /// The parent's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.as_ref().and_then(|c| c.deadline)
    }

    /// Whether the parent call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.context
            .as_ref()
            .is_some_and(|c| c.cancel.is_cancelled())
    }

    /// Watches the parent's cancellation (from the poller, which never runs user code).
    pub(crate) fn watch(&self) -> Option<CancelWatch> {
        self.context
            .as_ref()
            .map(|c| CancelWatch::new(c.cancel.clone()))
    }
}

impl<T> From<&Request<T>> for ParentCall {
    fn from(request: &Request<T>) -> ParentCall {
        request.as_parent()
    }
}

impl From<&ParentCall> for ParentCall {
    fn from(parent: &ParentCall) -> ParentCall {
        parent.clone()
    }
}

/// Server side: turns compression of a call's next responses on or off, for example from
/// inside an async response stream, message by message. It has an effect only when the
/// call compresses at all (the server was built with `send_compressed` and the client
/// accepts it).
#[derive(Clone, Debug)]
pub struct CompressionSwitch(Arc<AtomicBool>);

impl CompressionSwitch {
    /// Compresses the next responses (`true`, the default) or not.
    pub fn set(&self, enabled: bool) {
        self.0.store(enabled, Ordering::Relaxed);
    }
}

/// Anything a generated client method accepts as a request: a message, or a [`Request`]
/// carrying metadata and options.
pub trait IntoRequest<T> {
    /// Wraps into a [`Request`] (a no-op for a `Request`).
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// Anything an async client-streaming or bidi method accepts: a [`Stream`] of messages, or
/// a [`Request`] wrapping one.
///
/// [`Stream`]: futures_core::Stream
pub trait IntoStreamingRequest {
    /// The message type.
    type Message;
    /// The stream of messages.
    type Stream: futures_core::Stream<Item = Self::Message> + Send + 'static;
    /// Wraps into a [`Request`] (a no-op for a `Request`).
    fn into_streaming_request(self) -> Request<Self::Stream>;
}

impl<S> IntoStreamingRequest for S
where
    S: futures_core::Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;
    fn into_streaming_request(self) -> Request<S> {
        Request::new(self)
    }
}

impl<S> IntoStreamingRequest for Request<S>
where
    S: futures_core::Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;
    fn into_streaming_request(self) -> Request<S> {
        self
    }
}

/// Anything a blocking client-streaming method accepts: an [`IntoIterator`] of messages
/// (a `Vec`, an iterator), or a [`Request`] wrapping one.
pub trait IntoIterRequest {
    /// The message type.
    type Message;
    /// The messages.
    type Iter: IntoIterator<Item = Self::Message>;
    /// Wraps into a [`Request`] (a no-op for a `Request`).
    fn into_iter_request(self) -> Request<Self::Iter>;
}

impl<I: IntoIterator> IntoIterRequest for I {
    type Message = I::Item;
    type Iter = I;
    fn into_iter_request(self) -> Request<I> {
        Request::new(self)
    }
}

impl<I: IntoIterator> IntoIterRequest for Request<I> {
    type Message = I::Item;
    type Iter = I;
    fn into_iter_request(self) -> Request<I> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::cancel::CancelState;

    #[test]
    fn a_child_gets_no_more_than_its_parent() {
        let state = Arc::new(CancelState::default());
        let context = Arc::new(CallContext {
            peer: Arc::new(crate::transport::PeerInfo::default()),
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            cancel: state.clone(),
            compress: Arc::new(AtomicBool::new(true)),
        });
        let incoming = Request::from_server(MetadataMap::new(), (), context, false);
        let child = Request::new(1).with_parent(&incoming);
        let parent = child
            .take_options()
            .parent
            .expect("a server request is a parent");
        assert_eq!(parent.deadline(), incoming.deadline());
        assert!(!parent.is_cancelled());
        state.cancel();
        assert!(parent.is_cancelled());
        // A client-side request has nothing to pass on.
        let plain = Request::new(2).with_parent(&Request::new(3));
        assert!(plain.take_options().parent.is_none());
    }
}
