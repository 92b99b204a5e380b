//! Running a handler on its own thread (worker pool or executor): the call is observed
//! (span, metrics, interceptors' `on_request`), the typed body runs with panics caught
//! (the call fails with `UNKNOWN`), responses are encoded into the call's queue, and a
//! final status is always sent.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use prost::Message;

use super::responder::Responder;
use super::service::{Requests, ServerCall, Site};
use crate::call::cancel::CallContext;
use crate::call::events::call_ended;
use crate::call::observed::Observed;
use crate::codec::{self};
use crate::executor::BoxFuture;
use crate::metadata::MetadataMap;
use crate::response::Response;
use crate::role;
use crate::status::Status;

/// Sends the single response of a unary or client-streaming method.
pub(super) fn send_single<Resp: Message>(
    responder: &Responder,
    response: Response<Resp>,
) -> Result<(), Status> {
    let compression = responder.compression.filter(|_| response.compress());
    let (metadata, message, trailers) = response.into_parts();
    let framed = codec::encode_framed(&message, responder.max_send, compression)?;
    responder.respond_once(&metadata, framed, trailers)
}

/// Sends the responses of an async streaming method: every message the stream has ready
/// is encoded straight into the call's queue, and the task waits only while the queue is
/// full or the stream has nothing ready.
pub(super) async fn send_stream<Resp, S>(
    responder: &Responder,
    response: Response<S>,
) -> Result<(), Status>
where
    Resp: Message,
    S: Stream<Item = Result<Resp, Status>>,
{
    if !response.compress() {
        responder.set_compress(false);
    }
    let (metadata, stream, trailers) = response.into_parts();
    responder.send_headers(&metadata)?;
    let mut stream = std::pin::pin!(stream);
    poll_fn(|cx| {
        loop {
            // Wait for room; once the call is over (the queue's consumer is gone), the
            // stream is still polled once, so that a stream waiting for cancellation sees
            // it.
            let open = match responder.ops().poll_ready(cx) {
                Poll::Ready(Ok(_)) => true,
                Poll::Ready(Err(_)) => false,
                Poll::Pending => return Poll::Pending,
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(message))) if open => responder.push_message(&message)?,
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(_))) | Poll::Pending if !open => {
                    return Poll::Ready(Err(call_ended()));
                }
                Poll::Ready(Some(Ok(_))) | Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await?;
    responder.add_trailers(trailers);
    Ok(())
}

fn panic_status(payload: Box<dyn Any + Send>) -> Status {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %what, "grpc handler panicked");
    Status::unknown("handler panicked")
}

/// Starts observing a server call (its span, metrics and interceptors, handed to its
/// responder) and runs the interceptors' `on_request`; `Err` when one refused the call.
/// Runs on the handler's thread.
fn observe(
    site: &Site,
    context: &CallContext,
    requests: &Requests,
    metadata: &mut MetadataMap,
    responder: &Responder,
) -> Result<Option<tracing::Span>, Status> {
    let peer = context.peer.remote_addr;
    let Some(observed) = Observed::start(
        site.interceptors.clone(),
        site.path.clone(),
        true,
        peer,
        site.metrics.clone(),
    ) else {
        return Ok(None);
    };
    if let (Some(metrics), Requests::Single { frame, .. }) = (&site.metrics, requests) {
        metrics.received(codec::PREFIX_LEN + frame.body.len());
    }
    let span = observed.span().clone();
    let verdict = {
        let _entered = span.enter();
        observed.request(metadata)
    };
    responder.observe(observed);
    verdict.map(|()| Some(span))
}

/// Runs a blocking handler body, then sends its status (`UNKNOWN` if it panicked).
pub(super) fn run_blocking<F>(call: ServerCall, body: F)
where
    F: FnOnce(Requests, MetadataMap, Arc<CallContext>, &Arc<Responder>) -> Result<(), Status>,
{
    role::assert_off_poller("a blocking handler");
    let ServerCall {
        site,
        mut metadata,
        context,
        requests,
        responder,
    } = call;
    if let Some(status) = context.ended() {
        // It waited in the pool's queue past its deadline, or was cancelled meanwhile.
        return responder.finish(Err(status));
    }
    let span = match observe(&site, &context, &requests, &mut metadata, &responder) {
        Ok(span) => span,
        Err(status) => return responder.finish(Err(status)),
    };
    let _entered = span.as_ref().map(tracing::Span::enter);
    let result = catch_unwind(AssertUnwindSafe(|| {
        body(requests, metadata, context, &responder)
    }))
    .unwrap_or_else(|payload| Err(panic_status(payload)));
    responder.finish(result);
}

/// Builds the task for an async handler body: it sends the status when done (`UNKNOWN`
/// if it panicked).
pub(super) fn run_async<F, Fut>(call: ServerCall, body: F) -> BoxFuture
where
    F: FnOnce(Requests, MetadataMap, Arc<CallContext>, Arc<Responder>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    Box::pin(async move {
        let ServerCall {
            site,
            mut metadata,
            context,
            requests,
            responder,
        } = call;
        if let Some(status) = context.ended() {
            return responder.finish(Err(status));
        }
        let span = match observe(&site, &context, &requests, &mut metadata, &responder) {
            Ok(span) => span,
            Err(status) => return responder.finish(Err(status)),
        };
        let handler = std::pin::pin!(body(requests, metadata, context, responder.clone()));
        let result = CatchUnwind(handler, span)
            .await
            .unwrap_or_else(|payload| Err(panic_status(payload)));
        responder.finish(result);
    })
}

/// Turns a panic while polling the inner future into an `Err`; polls it inside the
/// call's span, if it has one.
struct CatchUnwind<'a, F>(Pin<&'a mut F>, Option<tracing::Span>);

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        role::assert_off_poller("an async handler");
        let this = self.get_mut();
        let _entered = this.1.as_ref().map(tracing::Span::enter);
        let inner = this.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
