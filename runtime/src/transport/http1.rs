//! What the HTTP/1.1 bridges of the server and of channels share (feature `http1`):
//! telling HTTP/2 from HTTP/1.1 by a connection's first bytes (handed back before the
//! rest by [`Rewind`]), moving a body into an HTTP/2 stream within its flow control, and
//! the headers that belong to one HTTP/1.1 hop.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Moves `body` into the HTTP/2 stream `send` as its window allows (`pending` holds what
/// waits for credit), trailers included; ends the stream at the body's end and resets it
/// with `on_error` when the body fails. `Ready` once nothing more will move.
pub(crate) fn poll_pump<B>(
    mut body: Pin<&mut B>,
    send: &mut h2::SendStream<Bytes>,
    pending: &mut Option<Bytes>,
    on_error: h2::Reason,
    cx: &mut Context<'_>,
) -> Poll<()>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    loop {
        if let Some(bytes) = pending {
            send.reserve_capacity(bytes.len());
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let chunk = bytes.split_to(n.min(bytes.len()));
                    if bytes.is_empty() {
                        *pending = None;
                    }
                    if send.send_data(chunk, false).is_err() {
                        return Poll::Ready(());
                    }
                    continue;
                }
                None | Some(Err(_)) => return Poll::Ready(()),
            }
        }
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if !data.is_empty() {
                        *pending = Some(data);
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = send.send_trailers(trailers);
                        return Poll::Ready(());
                    }
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "http/1.1 bridge: a body failed");
                send.send_reset(on_error);
                return Poll::Ready(());
            }
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return Poll::Ready(());
            }
        }
    }
}

/// Reads an HTTP/2 stream as a body's frames: its data (the credit given back at once:
/// the reader asks for more only once it passed this on), then its trailers; `None` at
/// its end, and from then on.
pub(crate) fn poll_h2_frame(
    recv: &mut Option<h2::RecvStream>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
    let Some(stream) = recv else {
        return Poll::Ready(None);
    };
    let frame = match ready!(stream.poll_data(cx)) {
        Some(Ok(data)) => {
            let _ = stream.flow_control().release_capacity(data.len());
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        Some(Err(e)) => Some(Err(e)),
        None => match ready!(stream.poll_trailers(cx)) {
            Ok(trailers) => trailers.map(|t| Ok(http_body::Frame::trailers(t))),
            Err(e) => Some(Err(e)),
        },
    };
    *recv = None;
    Poll::Ready(frame)
}

/// Removes the headers that belong to one HTTP/1.1 hop and that HTTP/2 forbids (`host`
/// too: HTTP/2 carries it as `:authority`).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::header::HOST,
        http::header::TE,
        http::header::HeaderName::from_static("keep-alive"),
        http::header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// The first bytes of HTTP/2's connection preface; no HTTP/1.1 request starts so.
const PREFACE_START: &[u8] = b"PRI ";

/// The protocol a connection's first bytes speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http2,
    Http1,
}

/// Reads `io` until its protocol shows (four bytes, or fewer at its end) and returns it
/// with those bytes put back.
///
/// # Errors
///
/// A read error; a peer that closes before sending anything.
pub(crate) async fn sniff<T: AsyncRead + Unpin>(mut io: T) -> io::Result<(Protocol, Rewind<T>)> {
    let mut first = Vec::with_capacity(PREFACE_START.len());
    while first.len() < PREFACE_START.len() {
        let mut byte = [0u8; 4];
        let want = PREFACE_START.len() - first.len();
        let n = io.read(&mut byte[..want]).await?;
        if n == 0 {
            break;
        }
        first.extend_from_slice(&byte[..n]);
    }
    if first.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection before sending anything",
        ));
    }
    let protocol = if PREFACE_START.starts_with(&first) {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Ok((protocol, Rewind::new(Bytes::from(first), io)))
}

/// A byte stream with bytes already read from it put back in front.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    pub(crate) fn new(prefix: Bytes, inner: T) -> Rewind<T> {
        Rewind { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn sniffed(written: &'static [&'static [u8]]) -> (Protocol, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut near, far) = tokio::io::duplex(64);
            let writer = async move {
                for piece in written {
                    near.write_all(piece).await.unwrap();
                    // Each piece arrives in a read of its own.
                    tokio::task::yield_now().await;
                }
            };
            let reader = async {
                let (protocol, mut io) = sniff(far).await.unwrap();
                let mut all = Vec::new();
                io.read_to_end(&mut all).await.unwrap();
                (protocol, all)
            };
            tokio::join!(writer, reader).1
        })
    }

    #[test]
    fn tells_the_protocols_apart_and_loses_no_byte() {
        let (protocol, bytes) = sniffed(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(bytes, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        // The preface split across reads.
        let (protocol, bytes) = sniffed(&[b"P", b"R", b"I * HTTP/2.0"]);
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(bytes, b"PRI * HTTP/2.0");
        let (protocol, bytes) = sniffed(&[b"PO", b"ST /x HTTP/1.1\r\n"]);
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(bytes, b"POST /x HTTP/1.1\r\n");
        let (protocol, bytes) = sniffed(&[b"OPTIONS * HTTP/1.1\r\n"]);
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(bytes, b"OPTIONS * HTTP/1.1\r\n");
        // Fewer than four bytes, then the end.
        let (protocol, bytes) = sniffed(&[b"PR"]);
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(bytes, b"PR");
    }

    #[test]
    fn an_empty_connection_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (near, far) = tokio::io::duplex(64);
        drop(near);
        let err = rt.block_on(sniff(far)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
