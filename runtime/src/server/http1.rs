//! HTTP/1.1 connections (feature `http1`), for gRPC-Web from browsers and development
//! setups that do not speak HTTP/2.
//!
//! hyper reads and writes HTTP/1.1; each request it reads becomes a stream of an HTTP/2
//! connection to this same server over an in-memory pipe, driven in the same task on the
//! same poller thread. So an HTTP/1.1 connection is one of the server's connections like
//! any other — counted against `max_connections`, idle-reclaimed, aged, drained and
//! stopped alike — and its calls go through the same checks, limits, quotas and handlers
//! as HTTP/2 calls.
//!
//! ```text
//!  socket ──HTTP/1.1── hyper ──▶ Bridge ──HTTP/2 (h2 client)── pipe ── serve() (HTTP/2 server)
//! ```
//!
//! What the bridge holds on top of the HTTP/2 connection is bounded and charged to the
//! connection's quota ([`HTTP1_BRIDGE_COST`](crate::limits::HTTP1_BRIDGE_COST)): hyper's
//! read buffer, the pipe's two buffers and the h2 client's receive window (one stream at
//! a time: HTTP/1.1 has no concurrent requests). Request bodies move only as the server
//! gives HTTP/2 credit, responses only as hyper writes them to the socket.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{Setup, serve};
use super::{ConnectionGuard, ServerShared};
use crate::limits;
use crate::transport::PeerInfo;
use crate::transport::http1::{poll_h2_frame, poll_pump, strip_hop_by_hop};

/// Serves one HTTP/1.1 connection: its requests through an HTTP/2 connection to this
/// server, until either side ends.
pub(super) async fn serve_http1<T>(
    shared: Arc<ServerShared>,
    io: T,
    peer: PeerInfo,
    guard: ConnectionGuard,
    started: Instant,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (near, far) = tokio::io::duplex(limits::HTTP1_PIPE);
    let config = &shared.config;
    let server = serve(
        shared.clone(),
        far,
        peer,
        guard,
        started,
        Setup::internal(limits::CONNECTION_COST + limits::HTTP1_BRIDGE_COST),
    );
    let client = async {
        let handshake = h2::client::Builder::new()
            .initial_window_size(limits::HTTP1_BRIDGE_WINDOW)
            .initial_connection_window_size(limits::HTTP1_BRIDGE_WINDOW)
            .max_concurrent_reset_streams(1)
            .handshake::<_, Bytes>(near)
            .await;
        let (send_request, mut h2) = match handshake {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, "http/1.1 bridge: the http/2 handshake failed");
                return;
            }
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.handshake_timeout)
            .max_buf_size(limits::HTTP1_READ_BUFFER)
            .max_headers(limits::HTTP1_MAX_HEADERS);
        let service =
            hyper::service::service_fn(move |request| forward(send_request.clone(), request));
        let http1 = builder.serve_connection(TokioIo::new(io), service);
        let mut http1 = std::pin::pin!(http1);
        let mut shutting_down = false;
        poll_fn(|cx| {
            // The HTTP/2 side ending (GOAWAY from age, idleness, reclaim, drain or stop)
            // ends the HTTP/1.1 connection once its request is answered.
            if !shutting_down && Pin::new(&mut h2).poll(cx).is_ready() {
                shutting_down = true;
                http1.as_mut().graceful_shutdown();
            }
            if let Err(e) = ready!(http1.as_mut().poll(cx)) {
                tracing::debug!(error = %e, "http/1.1 connection ended");
            }
            Poll::Ready(())
        })
        .await;
    };
    // The server's side closing (GOAWAY, then the end of its calls) ends the bridge's
    // HTTP/2 connection, which shuts hyper down once what it holds is written; the socket
    // closing ends hyper, and dropping the server's side then cancels what is left.
    let mut server = std::pin::pin!(server);
    let mut client = std::pin::pin!(client);
    let mut server_done = false;
    poll_fn(|cx| {
        if !server_done && server.as_mut().poll(cx).is_ready() {
            server_done = true;
        }
        client.as_mut().poll(cx)
    })
    .await;
}

/// One HTTP/1.1 request, sent as an HTTP/2 request; its response as hyper sends it.
async fn forward(
    mut send_request: h2::client::SendRequest<Bytes>,
    request: Request<Incoming>,
) -> Result<Response<Bridged>, Infallible> {
    let (parts, mut body) = request.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
        )
        .build();
    let Ok(uri) = uri else {
        return Ok(answer(StatusCode::BAD_REQUEST));
    };
    let mut h2_request = Request::new(());
    *h2_request.method_mut() = parts.method;
    *h2_request.uri_mut() = uri;
    *h2_request.headers_mut() = parts.headers;
    strip_hop_by_hop(h2_request.headers_mut());
    if poll_fn(|cx| send_request.poll_ready(cx)).await.is_err() {
        return Ok(answer(StatusCode::SERVICE_UNAVAILABLE));
    }
    let end = body.is_end_stream();
    let (response, mut send) = match send_request.send_request(h2_request, end) {
        Ok(sent) => sent,
        Err(e) => {
            tracing::debug!(error = %e, "http/1.1 bridge: cannot open a stream");
            return Ok(answer(StatusCode::SERVICE_UNAVAILABLE));
        }
    };
    let mut response = std::pin::pin!(response);
    let mut sending = !end;
    let mut pending: Option<Bytes> = None;
    // Send the body while waiting for the response: a server may answer before it read
    // all of it (an error), and a streaming one answers while it reads.
    let head = poll_fn(|cx| {
        if sending {
            let pumped = poll_pump(
                Pin::new(&mut body),
                &mut send,
                &mut pending,
                h2::Reason::CANCEL,
                cx,
            );
            if pumped.is_ready() {
                sending = false;
            }
        }
        response.as_mut().poll(cx)
    })
    .await;
    let head = match head {
        Ok(head) => head,
        Err(e) => {
            tracing::debug!(error = %e, "http/1.1 bridge: the stream failed");
            let status = if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_GATEWAY
            };
            return Ok(answer(status));
        }
    };
    let (mut parts, recv) = head.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let bridged = Bridged {
        recv: Some(recv),
        // What is left of the request body is sent while the response is read.
        request: sending.then_some(RequestLeft {
            body,
            send,
            pending,
        }),
    };
    Ok(Response::from_parts(parts, bridged))
}

/// The rest of a request body, still being sent while the response streams.
struct RequestLeft {
    body: Incoming,
    send: h2::SendStream<Bytes>,
    pending: Option<Bytes>,
}

/// A response body read from the HTTP/2 stream as hyper writes it out.
struct Bridged {
    recv: Option<h2::RecvStream>,
    request: Option<RequestLeft>,
}

impl Body for Bridged {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if let Some(left) = &mut this.request {
            let pumped = poll_pump(
                Pin::new(&mut left.body),
                &mut left.send,
                &mut left.pending,
                h2::Reason::CANCEL,
                cx,
            );
            if pumped.is_ready() {
                this.request = None;
            }
        }
        poll_h2_frame(&mut this.recv, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_none()
    }
}

/// An answer of the bridge itself, with no body.
fn answer(status: StatusCode) -> Response<Bridged> {
    let mut response = Response::new(Bridged {
        recv: None,
        request: None,
    });
    *response.status_mut() = status;
    response
}
