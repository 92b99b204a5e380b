//! Starting a client call on the caller's thread: its settings resolved (the call's,
//! the client's, the channel's, the service config's), its interceptors run, its headers
//! and first message encoded, its queues made and its task handed to the poller; and the
//! helpers that pump an async request stream and read single responses.

use std::future::poll_fn;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{CONTENT_TYPE, HeaderValue, TE, USER_AGENT};
use http::uri::PathAndQuery;
use prost::Message;
use tracing::Instrument;

use super::Client;
use super::call;
use crate::call::chunks::{ChunkPool, queue_message};
use crate::call::events::Outbound;
use crate::call::observed::Observed;
use crate::call::receiver::Receiver;
use crate::call::web;
use crate::codec::{self, CompressionEncoding};
use crate::cq::{self, Producer};
use crate::deadline;
use crate::executor::BoxFuture;
use crate::metadata::MetadataMap;
use crate::metrics::Metrics;
use crate::request::{CallOptions, Request};
use crate::response::Response;
use crate::status::Status;
use crate::transport::frames::End;

/// What a started call hands back to its caller.
pub(super) struct Started {
    pub(super) rx: Receiver,
    pub(super) ops: Producer<Outbound>,
    pub(super) pool: ChunkPool,
    /// How this call's requests are compressed.
    pub(super) compression: Option<CompressionEncoding>,
    /// Counts the requests sent.
    pub(super) metrics: Option<Metrics>,
}

impl Client {
    /// The largest request message of a call to `path`: this client's limit (or the
    /// channel's), lowered by the service config's `maxRequestMessageBytes`.
    pub(super) fn max_send(&self, path: &str) -> usize {
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
    pub(super) fn max_receive(&self, path: &str) -> usize {
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
    pub(super) fn start(
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
        if inner.config.grpc_web {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(web::CONTENT_TYPE));
            headers.insert("x-grpc-web", HeaderValue::from_static("1"));
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
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
        let (events_tx, events_rx) = cq::queue(crate::limits::CLIENT_INBOUND_QUEUE);
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
    pub(super) fn start_with_message<Req: Message>(
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
    pub(super) fn start_with_stream<S, Req>(
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
}

/// Unwraps a blocking wait, which is always ready.
pub(super) fn block<T>(poll: std::task::Poll<T>) -> T {
    match poll {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => unreachable!("blocking waits are always ready"),
    }
}

pub(super) fn single_response<Resp: Message + Default>(
    mut rx: Receiver,
    body: Bytes,
) -> Result<Response<Resp>, Status> {
    let message = codec::decode(body)?;
    Ok(
        Response::from_parts(rx.take_headers(), message, rx.take_trailers())
            .with_message_compressed(rx.last_compressed()),
    )
}

pub(super) fn streaming_response<S>(rx: Receiver, wrap: fn(Receiver) -> S) -> Response<S> {
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
