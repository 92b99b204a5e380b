//! Telling HTTP/2 from HTTP/1.1 on a connection that may carry either: the first bytes
//! are read, and handed back before the rest by [`Rewind`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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
