//! One trace across a caller, a front end and a back end, through the interceptors in
//! both of rsgrpc's client flavours; broken or missing contexts start new traces.

use std::sync::{Arc, Mutex};

use rsgrpc::interceptor::{self, CallInfo};
use rsgrpc::server::{Server, ServerHandle};
use rsgrpc::{MetadataMap, Request, Status};
use traceparent::demo::{PriceList, Shop, Spans};
use traceparent::mixed::QuoteRequest;
use traceparent::mixed::prices_server::PricesBlockingServer;
use traceparent::mixed::shop_client::{ShopBlockingClient, ShopClient};
use traceparent::mixed::shop_server::ShopBlockingServer;
use traceparent::{ClientSpan, ServerSpan, TRACEPARENT, TRACESTATE, TraceContext};

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Each `(traceparent, tracestate)` the back end received.
type Wire = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// The two servers, the spans their handlers ran in, and the `traceparent`/`tracestate`
/// the back end received on the wire.
struct Setup {
    _prices: ServerHandle,
    shop: ServerHandle,
    spans: Spans,
    wire: Wire,
}

fn setup() -> Setup {
    let spans: Spans = Arc::new(Mutex::new(Vec::new()));
    let wire: Wire = Arc::new(Mutex::new(Vec::new()));
    let seen = wire.clone();
    // Server-wide interceptors run before the service's: this one sees what arrived.
    let recorder = interceptor::from_fn(move |_: &CallInfo<'_>, metadata: &mut MetadataMap| {
        seen.lock().unwrap().push((
            metadata.get(TRACEPARENT).map(str::to_owned),
            metadata.get(TRACESTATE).map(str::to_owned),
        ));
        Ok::<(), Status>(())
    });
    let prices = Server::builder()
        .interceptor(recorder)
        .add_service(
            PricesBlockingServer::new(PriceList {
                spans: spans.clone(),
            })
            .with_interceptor(ServerSpan::default()),
        )
        .bind("127.0.0.1:0")
        .unwrap();
    let shop = Shop::new(&format!("http://{}", prices.local_addr()), spans.clone()).unwrap();
    let shop = Server::builder()
        .interceptor(ServerSpan::default())
        .add_service(ShopBlockingServer::new(shop))
        .bind("127.0.0.1:0")
        .unwrap();
    Setup {
        _prices: prices,
        shop,
        spans,
        wire,
    }
}

fn order() -> Request<QuoteRequest> {
    Request::new(QuoteRequest {
        item: "apple".into(),
        quantity: 3,
    })
}

impl Setup {
    fn target(&self) -> String {
        format!("http://{}", self.shop.local_addr())
    }

    /// The shop's span, the price list's span and what reached the price list.
    fn trace(&self) -> (TraceContext, TraceContext, String, Option<String>) {
        let spans = self.spans.lock().unwrap();
        let [(first, shop), (second, prices)] = &spans[..] else {
            panic!("expected two handler spans, got {spans:?}");
        };
        assert_eq!((*first, *second), ("shop", "prices"));
        let wire = self.wire.lock().unwrap();
        let [(Some(traceparent), state)] = &wire[..] else {
            panic!("the price list received {wire:?}");
        };
        (
            shop.clone(),
            prices.clone(),
            traceparent.clone(),
            state.clone(),
        )
    }
}

/// The caller's context continues through the shop and the price list, each hop a new
/// span under the previous one, with the trace state passed on unchanged.
fn assert_continues(setup: &Setup, caller: &TraceContext) {
    let (shop, prices, wire, wire_state) = setup.trace();
    let sent = TraceContext::parse(&wire).unwrap();
    for (hop, context) in [("shop", &shop), ("sent", &sent), ("prices", &prices)] {
        assert_eq!(context.trace_id(), caller.trace_id(), "{hop}");
        assert_eq!(context.is_sampled(), caller.is_sampled(), "{hop}");
    }
    assert_eq!(shop.state(), caller.state());
    assert_eq!(prices.state(), caller.state());
    let ids = [
        caller.span_id(),
        shop.span_id(),
        sent.span_id(),
        prices.span_id(),
    ];
    for (i, a) in ids.iter().enumerate() {
        assert!(!ids[i + 1..].contains(a), "span ids repeat: {ids:?}");
    }
    assert_eq!(wire_state.as_deref(), caller.state());
}

#[test]
fn a_blocking_callers_context_reaches_the_back_end() {
    let _leaks = rsgrpc_tests::leak::check();
    let setup = setup();
    let client = ShopBlockingClient::connect_lazy(&setup.target()).unwrap();
    let mut request = order();
    let metadata = request.metadata_mut();
    metadata.insert(TRACEPARENT, CALLER).unwrap();
    metadata.insert(TRACESTATE, "congo=t61rcWkgMzE").unwrap();
    let caller = TraceContext::from_metadata(metadata).unwrap();
    let reply = client.quote(request).unwrap();
    assert_eq!(reply.get_ref().total_cents, 120);
    assert_continues(&setup, &caller);
}

#[test]
fn an_async_callers_scope_is_carried_by_the_client_interceptor() {
    let _leaks = rsgrpc_tests::leak::check();
    let setup = setup();
    let client = ShopClient::connect_lazy(&setup.target())
        .unwrap()
        .with_interceptor(ClientSpan::default());
    // Async code passes its context on the request: the interceptor leaves it alone.
    let caller = TraceContext::new_root(true);
    let mut request = order();
    caller.child().inject(request.metadata_mut());
    block_on(client.quote(request)).unwrap();
    assert_continues(&setup, &caller);
}

#[test]
fn a_blocking_callers_scope_is_carried_by_the_client_interceptor() {
    let _leaks = rsgrpc_tests::leak::check();
    let setup = setup();
    let client = ShopBlockingClient::connect_lazy(&setup.target())
        .unwrap()
        .with_interceptor(ClientSpan::default());
    let caller = TraceContext::new_root(false);
    caller.in_scope(|| client.quote(order())).unwrap();
    assert_continues(&setup, &caller);
}

#[test]
fn a_broken_context_starts_a_new_trace_and_drops_the_trace_state() {
    let _leaks = rsgrpc_tests::leak::check();
    let setup = setup();
    let client = ShopBlockingClient::connect_lazy(&setup.target()).unwrap();
    let mut request = order();
    let metadata = request.metadata_mut();
    metadata
        .insert(TRACEPARENT, &CALLER.to_uppercase())
        .unwrap();
    metadata.insert(TRACESTATE, "congo=t61rcWkgMzE").unwrap();
    client.quote(request).unwrap();
    let (shop, prices, wire, state) = setup.trace();
    assert_ne!(
        shop.trace_id(),
        TraceContext::parse(CALLER).unwrap().trace_id()
    );
    assert_eq!(shop.state(), None);
    assert_eq!(state, None);
    // From the shop on, the new trace is propagated.
    assert_eq!(
        TraceContext::parse(&wire).unwrap().trace_id(),
        shop.trace_id()
    );
    assert_eq!(prices.trace_id(), shop.trace_id());
}

/// Runs a future to completion on this thread: rsgrpc's async stubs need no runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
