//! Interceptors: code of yours that runs around every call, on clients and servers of
//! both flavours and for all four kinds of call.
//!
//! An [`Interceptor`] sees a call begin ([`on_request`](Interceptor::on_request): read or
//! edit the request metadata, or refuse the call with a status), its response headers
//! ([`on_response_headers`](Interceptor::on_response_headers)) and its end
//! ([`on_end`](Interceptor::on_end), with the status, its trailers and the time the call
//! took). That is enough for authentication, metadata propagation, timing and logging; a
//! closure serves for the common case of the first hook ([`from_fn`]).
//!
//! Attach them to a channel ([`ChannelBuilder::interceptor`](crate::ChannelBuilder::interceptor))
//! or a client ([`Client::with_interceptor`](crate::client::Client::with_interceptor), and
//! generated clients), and to a server
//! ([`ServerBuilder::interceptor`](crate::server::ServerBuilder::interceptor)) or a service
//! ([`ServiceBuilder::interceptor`](crate::server::ServiceBuilder::interceptor), and
//! generated server types).
//!
//! **Order.** `on_request` runs in the order the interceptors were added — the channel's
//! before the client's, the server's before the service's — and the first refusal stops
//! the call (later interceptors do not see it); `on_response_headers` and `on_end` run
//! in the reverse order, as when unwinding nested wrappers.
//!
//! **Where they run.** Never on a poller thread: on the client, on the thread or task
//! making the call (`on_end` where the call's outcome is read, or where it is dropped);
//! on the server, on the handler's thread (worker pool or executor) around the handler.
//! A hook that panics fails its call (`on_request`: `INTERNAL`) or is skipped (the others);
//! the server keeps serving.
//!
//! ```
//! use rsgrpc::interceptor::{self, CallInfo};
//! use rsgrpc::{MetadataMap, Status};
//!
//! // Refuse calls without a token.
//! let auth = interceptor::from_fn(|_call: &CallInfo<'_>, metadata: &mut MetadataMap| {
//!     match metadata.get("authorization") {
//!         Some("Bearer let-me-in") => Ok(()),
//!         _ => Err(Status::unauthenticated("missing or wrong token")),
//!     }
//! });
//! let server = rsgrpc::server::Server::builder().interceptor(auth);
//! # drop(server);
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::metadata::MetadataMap;
use crate::status::Status;

/// Code that runs around calls; see the [module docs](self).
pub trait Interceptor: Send + Sync + 'static {
    /// Before the call goes out (client) or before the handler runs (server): read or
    /// edit the request metadata, or refuse the call with the status it then fails with.
    ///
    /// # Errors
    ///
    /// The status the call fails with.
    fn on_request(&self, call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        let _ = (call, metadata);
        Ok(())
    }

    /// The response headers: as received (client), or about to be sent (server, which
    /// may add to them).
    fn on_response_headers(&self, call: &CallInfo<'_>, headers: &mut MetadataMap) {
        let _ = (call, headers);
    }

    /// The call ended with `status` (trailers in [`Status::metadata`]) after `elapsed`.
    fn on_end(&self, call: &CallInfo<'_>, status: &Status, elapsed: Duration) {
        let _ = (call, status, elapsed);
    }
}

/// An interceptor shared with other code (to read what it recorded, say).
impl<T: Interceptor + ?Sized> Interceptor for Arc<T> {
    fn on_request(&self, call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        (**self).on_request(call, metadata)
    }

    fn on_response_headers(&self, call: &CallInfo<'_>, headers: &mut MetadataMap) {
        (**self).on_response_headers(call, headers);
    }

    fn on_end(&self, call: &CallInfo<'_>, status: &Status, elapsed: Duration) {
        (**self).on_end(call, status, elapsed);
    }
}

/// What an interceptor knows of a call.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo<'a> {
    pub(crate) method: &'a str,
    pub(crate) server: bool,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) id: u64,
}

impl<'a> CallInfo<'a> {
    /// The full method path, `/package.Service/Method`.
    pub fn path(&self) -> &'a str {
        self.method
    }

    /// The service, `package.Service`.
    pub fn service(&self) -> &'a str {
        self.method
            .trim_start_matches('/')
            .split_once('/')
            .map_or(self.method, |(service, _)| service)
    }

    /// The method's short name, `Method`.
    pub fn method(&self) -> &'a str {
        self.method.rsplit('/').next().unwrap_or(self.method)
    }

    /// Whether this is the server side of the call.
    pub fn is_server(&self) -> bool {
        self.server
    }

    /// The client's address (server side, over TCP).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// A number unique to the call in this process, to pair the hooks of one call.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// An interceptor that only looks at requests: a closure given the call and its
/// metadata.
pub fn from_fn<F>(f: F) -> FnInterceptor<F>
where
    F: Fn(&CallInfo<'_>, &mut MetadataMap) -> Result<(), Status> + Send + Sync + 'static,
{
    FnInterceptor(f)
}

/// See [`from_fn`].
#[derive(Clone, Copy, Debug)]
pub struct FnInterceptor<F>(F);

impl<F> Interceptor for FnInterceptor<F>
where
    F: Fn(&CallInfo<'_>, &mut MetadataMap) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_request(&self, call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        (self.0)(call, metadata)
    }
}

/// A chain of interceptors, in the order they were added.
#[derive(Clone, Default)]
pub(crate) struct Chain(Arc<[Arc<dyn Interceptor>]>);

impl Chain {
    pub(crate) fn with(&self, interceptor: Arc<dyn Interceptor>) -> Chain {
        let mut all: Vec<_> = self.0.iter().cloned().collect();
        all.push(interceptor);
        Chain(all.into())
    }

    /// This chain, then `more`.
    pub(crate) fn then(&self, more: &Chain) -> Chain {
        if more.0.is_empty() {
            return self.clone();
        }
        if self.0.is_empty() {
            return more.clone();
        }
        Chain(self.0.iter().chain(more.0.iter()).cloned().collect())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The interceptors, in the order they were added.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Arc<dyn Interceptor>> {
        self.0.iter()
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} interceptors", self.0.len())
    }
}
