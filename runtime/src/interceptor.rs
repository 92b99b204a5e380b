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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::role;
use crate::status::{Code, Status};

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
    method: &'a str,
    server: bool,
    peer: Option<SocketAddr>,
    id: u64,
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
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} interceptors", self.0.len())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One call as its interceptors, tracing span and metrics see it. Whoever owns the call's
/// outcome owns this: the client's receiver, the server's responder.
pub(crate) struct Observed {
    chain: Chain,
    method: Arc<str>,
    server: bool,
    peer: Option<SocketAddr>,
    id: u64,
    started: Instant,
    span: tracing::Span,
    metrics: Option<Metrics>,
    ended: bool,
}

impl Observed {
    /// Starts observing a call: counts it, opens its span. `None` when nothing would
    /// observe it (no interceptors, no metrics, no subscriber for the span), which costs
    /// a call nothing more.
    pub(crate) fn start<M: AsRef<str> + Into<Arc<str>>>(
        chain: Chain,
        path: M,
        server: bool,
        peer: Option<SocketAddr>,
        metrics: Option<Metrics>,
    ) -> Option<Observed> {
        let method = path.as_ref();
        let info = CallInfo {
            method,
            server,
            peer,
            id: 0,
        };
        // OpenTelemetry's RPC conventions: the span is named service/method, and says who
        // is at the other end. Nothing of the messages is recorded.
        let span = tracing::info_span!(
            target: "rsgrpc::call",
            "rpc",
            otel.name = %method.trim_start_matches('/'),
            otel.kind = if server { "server" } else { "client" },
            rpc.system = "grpc",
            rpc.service = %info.service(),
            rpc.method = %info.method(),
            network.peer.address = peer.map(|p| tracing::field::display(p.ip())),
            network.peer.port = peer.map(|p| p.port()),
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if chain.is_empty() && metrics.is_none() && span.is_disabled() {
            return None;
        }
        if let Some(metrics) = &metrics {
            metrics.call_started();
        }
        Some(Observed {
            chain,
            method: path.into(),
            server,
            peer,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            span,
            metrics,
            ended: false,
        })
    }

    fn info(&self) -> CallInfo<'_> {
        CallInfo {
            method: &self.method,
            server: self.server,
            peer: self.peer,
            id: self.id,
        }
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// Runs `on_request` in order; the first refusal (or panic) is the call's status.
    pub(crate) fn request(&self, metadata: &mut MetadataMap) -> Result<(), Status> {
        if self.chain.is_empty() {
            return Ok(());
        }
        role::assert_off_poller("an interceptor");
        let info = self.info();
        for interceptor in self.chain.0.iter() {
            let outcome =
                catch_unwind(AssertUnwindSafe(|| interceptor.on_request(&info, metadata)));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(status)) => return Err(status),
                Err(_) => {
                    tracing::error!(method = %self.method, "an interceptor panicked");
                    return Err(Status::internal("an interceptor failed"));
                }
            }
        }
        Ok(())
    }

    /// Runs `on_response_headers` in reverse order.
    pub(crate) fn response_headers(&self, headers: &mut MetadataMap) {
        if self.chain.is_empty() {
            return;
        }
        role::assert_off_poller("an interceptor");
        let info = self.info();
        for interceptor in self.chain.0.iter().rev() {
            if catch_unwind(AssertUnwindSafe(|| {
                interceptor.on_response_headers(&info, headers)
            }))
            .is_err()
            {
                tracing::error!(method = %self.method, "an interceptor panicked");
            }
        }
    }

    /// The call ended: `on_end` in reverse order, the span closed, the metrics counted.
    /// Only the first call has an effect.
    pub(crate) fn end(&mut self, status: &Status) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.call_finished(status.code());
        }
        self.span
            .record("rpc.grpc.status_code", status.code().as_i32());
        if status.code() != Code::Ok {
            self.span.record("otel.status_code", "ERROR");
        }
        if role::on_poller() {
            // Only a call torn down by the runtime ends here; its hooks are skipped rather
            // than run where user code never runs.
            tracing::debug!(method = %self.method, "a call's end hooks were skipped");
        } else if !self.chain.is_empty() {
            let info = self.info();
            for interceptor in self.chain.0.iter().rev() {
                if catch_unwind(AssertUnwindSafe(|| {
                    interceptor.on_end(&info, status, elapsed)
                }))
                .is_err()
                {
                    tracing::error!(method = %self.method, "an interceptor panicked");
                }
            }
        }
        // Closing the span ends its duration.
        self.span = tracing::Span::none();
    }

    /// Whether any interceptor runs (beyond the span and the metrics).
    pub(crate) fn intercepts(&self) -> bool {
        !self.chain.is_empty()
    }
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("method", &self.method)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if !self.ended {
            // The caller gave up on the call before it ended.
            self.end(&Status::cancelled("the call was dropped before it ended"));
        }
    }
}
