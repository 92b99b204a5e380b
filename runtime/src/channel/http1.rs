//! gRPC-Web over HTTP/1.1 for channels (feature `http1`), for servers and proxies that
//! answer gRPC-Web only over HTTP/1.1.
//!
//! The channel speaks HTTP/2 as always, to a bridge over an in-memory pipe; the bridge, a
//! task on the same poller thread, sends each stream as an HTTP/1.1 request on the socket
//! with hyper's client and its response back as the stream's. HTTP/1.1 carries one request
//! at a time, so the bridge allows one stream at a time (its `SETTINGS_MAX_CONCURRENT_STREAMS`
//! is 1): further calls wait for the stream as calls over a full HTTP/2 connection do.
//!
//! ```text
//!  calls ── h2 client ── pipe ── h2 server (bridge) ── hyper http1 client ── socket
//! ```

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};

use crate::limits;
use crate::transport::http1::{poll_h2_frame, poll_pump, strip_hop_by_hop};

/// The pipe end the channel's HTTP/2 connection uses, with the bridge to `io` running on
/// the current poller thread until either side ends.
pub(super) async fn bridge<T>(io: T) -> Result<DuplexStream, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(limits::HTTP1_READ_BUFFER)
        .handshake::<_, Outgoing>(TokioIo::new(io))
        .await
        .map_err(|e| format!("http/1.1 handshake failed: {e}"))?;
    let (near, far) = tokio::io::duplex(limits::HTTP1_PIPE);
    tokio::spawn(serve(far, sender, connection));
    Ok(near)
}

type Http1Connection<T> = hyper::client::conn::http1::Connection<TokioIo<T>, Outgoing>;
type Sender = hyper::client::conn::http1::SendRequest<Outgoing>;

/// Answers the channel's streams, one at a time, with HTTP/1.1 exchanges.
async fn serve<T>(pipe: DuplexStream, sender: Sender, mut connection: Http1Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(1)
        .initial_window_size(limits::HTTP1_BRIDGE_WINDOW)
        .initial_connection_window_size(limits::HTTP1_BRIDGE_WINDOW)
        .handshake::<_, Bytes>(pipe);
    // The hyper connection must be driven for anything to move, the handshake included.
    let mut h2 = {
        let mut handshake = std::pin::pin!(handshake);
        let done = poll_fn(|cx| {
            if Pin::new(&mut connection).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            handshake.as_mut().poll(cx).map(Some)
        })
        .await;
        match done {
            Some(Ok(h2)) => h2,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "http/1.1 bridge: the channel's handshake failed");
                return;
            }
            None => return,
        }
    };
    // The sender is lent to the one exchange under way, which hands it back at its end.
    let mut sender = Some(sender);
    let mut current: Option<Pin<Box<dyn Future<Output = Option<Sender>> + Send>>> = None;
    let mut ended = false;
    let mut closing = false;
    poll_fn(|cx| {
        if closing {
            // What the channel's streams were sent is flushed to it before the bridge
            // goes; the channel then closes its side.
            return h2.poll_closed(cx).map(drop);
        }
        if !ended {
            if let Poll::Ready(result) = Pin::new(&mut connection).poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http/1.1 connection ended");
                }
                ended = true;
            }
        }
        if let Some(exchange) = &mut current {
            if let Poll::Ready(back) = exchange.as_mut().poll(cx) {
                current = None;
                if back.is_none() || ended {
                    // The HTTP/1.1 connection cannot carry another exchange: closing the
                    // bridge (with GOAWAY) makes the channel connect again.
                    closing = true;
                    h2.graceful_shutdown();
                    return h2.poll_closed(cx).map(drop);
                }
                sender = back;
            }
        }
        if ended {
            // The server closed the connection: the exchange under way may still relay
            // what was read before; then the bridge closes, and the channel connects
            // again for the next call.
            if current.is_some() {
                // Keep the channel's connection moving while it does.
                let _ = h2.poll_closed(cx);
                return Poll::Pending;
            }
            closing = true;
            h2.graceful_shutdown();
            return h2.poll_closed(cx).map(drop);
        }
        loop {
            match h2.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, mut respond)))) => {
                    let Some(lent) = sender.take() else {
                        // More than the one stream announced, or the connection is
                        // unusable.
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    };
                    let mut exchange = Box::pin(exchange(lent, request, respond));
                    match exchange.as_mut().poll(cx) {
                        Poll::Ready(None) => {
                            closing = true;
                            h2.graceful_shutdown();
                            return h2.poll_closed(cx).map(drop);
                        }
                        Poll::Ready(back) => sender = back,
                        Poll::Pending => current = Some(exchange),
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "http/1.1 bridge: the channel's connection failed");
                    return Poll::Ready(());
                }
                // The channel closed its connection.
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// One stream as one HTTP/1.1 exchange; hands the sender back unless the connection
/// cannot carry another.
async fn exchange(
    mut sender: Sender,
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Option<Sender> {
    let (mut parts, body) = request.into_parts();
    if let Some(authority) = parts.uri.authority() {
        if let Ok(host) = http::HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(http::header::HOST, host);
        }
    }
    // HTTP/1.1 requests name their target by path; the authority went into `host`.
    if let Some(path) = parts.uri.path_and_query() {
        if let Ok(uri) = http::Uri::try_from(path.as_str()) {
            parts.uri = uri;
        }
    }
    parts.version = http::Version::HTTP_11;
    let request = Request::from_parts(parts, Outgoing { recv: Some(body) });
    if poll_fn(|cx| sender.poll_ready(cx)).await.is_err() {
        respond.send_reset(h2::Reason::REFUSED_STREAM);
        return None;
    }
    let response = tokio::select! {
        response = sender.send_request(request) => response,
        // The call was cancelled before its response came: the request is cut off, so
        // the connection cannot carry another.
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return None,
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "http/1.1 bridge: the exchange failed");
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            return None;
        }
    };
    let (parts, mut incoming) = response.into_parts();
    let mut head = Response::from_parts(parts, ());
    *head.version_mut() = http::Version::HTTP_2;
    strip_hop_by_hop(head.headers_mut());
    let end = incoming.is_end_stream();
    let Ok(mut send) = respond.send_response(head, end) else {
        return None;
    };
    if end {
        return Some(sender);
    }
    let mut pending: Option<Bytes> = None;
    poll_fn(|cx| {
        poll_pump(
            Pin::new(&mut incoming),
            &mut send,
            &mut pending,
            h2::Reason::INTERNAL_ERROR,
            cx,
        )
    })
    .await;
    Some(sender)
}

/// A request body read from the channel's stream as hyper writes it out.
struct Outgoing {
    recv: Option<h2::RecvStream>,
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        poll_h2_frame(&mut self.recv, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.recv.as_ref().is_none_or(h2::RecvStream::is_end_stream)
    }
}
