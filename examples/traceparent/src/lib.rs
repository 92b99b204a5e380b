//! W3C trace context (`traceparent` and `tracestate`) carried through gRPC metadata by two
//! interceptors, so that one trace follows a request across services.
//!
//! - [`ServerSpan`], on a server or service, reads the caller's `traceparent` (or starts a
//!   new trace when there is none or it is not valid) and gives the handler the context
//!   of its own span: [`TraceContext::from_metadata`] on the request's metadata.
//! - [`ClientSpan`], on a channel or client, sends a child of the current context (the one
//!   entered with [`TraceContext::in_scope`]) with every call, or a new trace outside any
//!   scope. A `traceparent` the caller set on the request itself is left alone, which is
//!   how async code passes its context ([`TraceContext::inject`]).
//!
//! The scope is a thread-local: it covers blocking calls made inside
//! [`in_scope`](TraceContext::in_scope), whatever the handler's flavour. Connecting this to
//! a tracing system (the current OpenTelemetry context, say) means replacing
//! [`TraceContext::current`] with a read of that system's context.
//!
//! [`demo`] has a front end and a back end that use both interceptors.

use std::cell::RefCell;
use std::fmt;

use rsgrpc::interceptor::{CallInfo, Interceptor};
use rsgrpc::{MetadataMap, Status};

/// Messages and stubs generated from `examples/proto/mixed/mixed.proto`.
pub mod mixed {
    rsgrpc::include_proto!("mixed");
}

/// The metadata key of the trace context.
pub const TRACEPARENT: &str = "traceparent";
/// The metadata key of vendors' trace state, sent along with a valid `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// The longest `tracestate` passed on; a longer one is dropped.
pub const MAX_TRACESTATE: usize = 512;

/// The sampled flag of `trace-flags`.
const SAMPLED: u8 = 0x01;

/// One span's place in a trace, as W3C Trace Context (level 1) writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
}

impl TraceContext {
    /// The first span of a new trace, sampled or not.
    pub fn new_root(sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: random_id(),
            span_id: random_id(),
            flags: if sampled { SAMPLED } else { 0 },
            state: None,
        }
    }

    /// A new span in the same trace, under this one.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_id(),
            ..self.clone()
        }
    }

    /// Parses a `traceparent` value; `None` when it breaks the specification's rules
    /// (which then call for a new trace). Versions after `00` are read as `00`.
    pub fn parse(traceparent: &str) -> Option<TraceContext> {
        let bytes = traceparent.as_bytes();
        let version = hex::<1>(bytes.get(0..2)?)?[0];
        let ok_length = match version {
            0xff => return None,
            0x00 => bytes.len() == 55,
            // A later version may append fields after a dash.
            _ => bytes.len() == 55 || bytes.get(55) == Some(&b'-'),
        };
        if !ok_length || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex::<16>(&bytes[3..35])?;
        let span_id = hex::<8>(&bytes[36..52])?;
        let flags = hex::<1>(&bytes[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
            state: None,
        })
    }

    /// The context in `metadata`: its `traceparent`, with its `tracestate` when that is
    /// not too long. On a server with [`ServerSpan`], this is the handler's own span.
    pub fn from_metadata(metadata: &MetadataMap) -> Option<TraceContext> {
        let mut context = TraceContext::parse(metadata.get(TRACEPARENT)?)?;
        context.state = metadata
            .get(TRACESTATE)
            .filter(|state| state.len() <= MAX_TRACESTATE)
            .map(str::to_owned);
        Some(context)
    }

    /// Writes this context into `metadata` as `traceparent` and `tracestate`, replacing
    /// what was there.
    pub fn inject(&self, metadata: &mut MetadataMap) {
        // Both values are ASCII without control characters, which metadata accepts.
        let _ = metadata.insert(TRACEPARENT, &self.to_string());
        match &self.state {
            Some(state) if metadata.insert(TRACESTATE, state).is_ok() => {}
            _ => {
                metadata.remove(TRACESTATE);
            }
        }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        to_hex(&self.span_id)
    }

    /// Whether the trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The vendors' `tracestate`, passed on unchanged.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The context of the calling thread's current scope.
    pub fn current() -> Option<TraceContext> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Runs `f` with this context as the current one: blocking calls made in `f` through a
    /// client with [`ClientSpan`] belong to this span.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<TraceContext>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| *current.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(CURRENT.with(|current| current.replace(Some(self.clone()))));
        f()
    }
}

/// The `traceparent` value, version `00`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            self.flags
        )
    }
}

/// The server half: the handler runs in a span that continues the caller's trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSpan {
    /// Whether traces this server starts (for callers that sent none) are sampled.
    pub sample_new_traces: bool,
}

impl Interceptor for ServerSpan {
    fn on_request(&self, _call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        let span = match TraceContext::from_metadata(metadata) {
            Some(caller) => caller.child(),
            // Missing or not valid: a new trace, without the caller's trace state.
            None => TraceContext::new_root(self.sample_new_traces),
        };
        span.inject(metadata);
        Ok(())
    }
}

/// The client half: every call carries the current span's context to the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientSpan {
    /// Whether traces started for calls made outside any scope are sampled.
    pub sample_new_traces: bool,
}

impl Interceptor for ClientSpan {
    fn on_request(&self, _call: &CallInfo<'_>, metadata: &mut MetadataMap) -> Result<(), Status> {
        if TraceContext::from_metadata(metadata).is_some() {
            // The caller set the context of this call itself.
            return Ok(());
        }
        let span = match TraceContext::current() {
            // The call is a span of its own, under the current one.
            Some(current) => current.child(),
            None => TraceContext::new_root(self.sample_new_traces),
        };
        span.inject(metadata);
        Ok(())
    }
}

/// A front end (the shop) whose handler calls a back end (the price list), both traced.
pub mod demo {
    use std::sync::{Arc, Mutex};

    use rsgrpc::{Request, Response, Status};

    use super::mixed::prices_client::PricesBlockingClient;
    use super::mixed::{PriceReply, PriceRequest, QuoteReply, QuoteRequest};
    use super::{ClientSpan, TraceContext};

    /// The spans the handlers ran in, by service, in call order.
    pub type Spans = Arc<Mutex<Vec<(&'static str, TraceContext)>>>;

    fn record(spans: &Spans, service: &'static str, metadata: &rsgrpc::MetadataMap) {
        if let Some(span) = TraceContext::from_metadata(metadata) {
            spans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((service, span));
        }
    }

    /// The back end: a fixed price list.
    pub struct PriceList {
        /// Where the handler records its spans.
        pub spans: Spans,
    }

    impl super::mixed::prices_server::PricesBlocking for PriceList {
        fn price(&self, request: Request<PriceRequest>) -> Result<Response<PriceReply>, Status> {
            record(&self.spans, "prices", request.metadata());
            let cents = match request.get_ref().item.as_str() {
                "apple" => 40,
                "coffee" => 1_200,
                other => return Err(Status::not_found(format!("no price for {other:?}"))),
            };
            Ok(Response::new(PriceReply { cents }))
        }
    }

    /// The front end: prices an order by asking the back end, inside its own span.
    pub struct Shop {
        prices: PricesBlockingClient,
        /// Where the handler records its spans.
        pub spans: Spans,
    }

    impl Shop {
        /// A shop that asks the price list at `target`, with [`ClientSpan`] on its client.
        ///
        /// # Errors
        ///
        /// When the target cannot be parsed.
        pub fn new(target: &str, spans: Spans) -> Result<Shop, rsgrpc::Error> {
            Ok(Shop {
                prices: PricesBlockingClient::connect_lazy(target)?
                    .with_interceptor(ClientSpan::default()),
                spans,
            })
        }
    }

    impl super::mixed::shop_server::ShopBlocking for Shop {
        fn quote(&self, request: Request<QuoteRequest>) -> Result<Response<QuoteReply>, Status> {
            record(&self.spans, "shop", request.metadata());
            let span = TraceContext::from_metadata(request.metadata());
            let QuoteRequest { item, quantity } = request.into_inner();
            let ask = || self.prices.price(PriceRequest { item: item.clone() });
            // The price call belongs to this handler's span.
            let unit = match &span {
                Some(span) => span.in_scope(ask),
                None => ask(),
            }?
            .into_inner()
            .cents;
            Ok(Response::new(QuoteReply {
                item,
                total_cents: unit * u64::from(quantity),
            }))
        }
    }
}

/// `N` bytes from `2 × N` lowercase hex digits; `None` for anything else (the
/// specification forbids upper case).
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random id, never all zeros (which the specification reserves for "invalid").
///
/// The standard library's hasher keys are random per process and distinct per instance;
/// a production system would use its tracing library's id generator.
fn random_id<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut id = [0; N];
    while id == [0; N] {
        for chunk in id.chunks_mut(8) {
            let word = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let context = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert_eq!(context.to_string(), EXAMPLE);
    }

    #[test]
    fn values_that_break_the_rules_are_refused() {
        for bad in [
            "",
            "00",
            // Upper case, version ff, all-zero ids.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version 00 with a trailing field, wrong separators, short ids, not hex.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn later_versions_are_read_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let context = TraceContext::parse(later).unwrap();
        assert_eq!(context.to_string(), EXAMPLE);
        assert_eq!(
            TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            None
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.is_sampled());
        assert_ne!(
            TraceContext::new_root(false).trace_id(),
            TraceContext::new_root(false).trace_id()
        );
    }

    #[test]
    fn scopes_nest_and_restore() {
        let outer = TraceContext::new_root(true);
        let inner = outer.child();
        assert_eq!(TraceContext::current(), None);
        outer.in_scope(|| {
            assert_eq!(TraceContext::current().as_ref(), Some(&outer));
            inner.in_scope(|| assert_eq!(TraceContext::current().as_ref(), Some(&inner)));
            assert_eq!(TraceContext::current().as_ref(), Some(&outer));
        });
        assert_eq!(TraceContext::current(), None);
    }
}
