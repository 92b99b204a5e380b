//! The per-call observation record: one call as its interceptors, tracing span and
//! metrics see it, from its start to the status it ended with.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::interceptor::{CallInfo, Chain};
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::role;
use crate::status::{Code, Status};

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
        for interceptor in self.chain.iter() {
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
        for interceptor in self.chain.iter().rev() {
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
            for interceptor in self.chain.iter().rev() {
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
