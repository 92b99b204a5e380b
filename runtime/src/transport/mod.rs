//! Byte streams under HTTP/2: TCP, Unix domain sockets and TLS, as one type for h2, and
//! what the server learns of its peer.
//!
//! Everything here runs on a poller thread: connecting, accepting, TLS handshakes and
//! record processing.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

mod authority;
pub(crate) mod frames;
pub(crate) mod gather;
pub(crate) mod hpack;
#[cfg(feature = "http1")]
pub(crate) mod http1;
pub(crate) mod keepalive;
pub(crate) mod lent;
#[cfg(test)]
pub(crate) mod test_peer;
#[cfg(feature = "tls")]
pub(crate) mod tls;

/// Any byte stream HTTP/2 runs over (TCP, a Unix socket, TLS, the HTTP/1.1 bridge's pipe,
/// a test's), behind one type: h2's connection and the code around it are compiled once
/// for all of them rather than once per stream type.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// A [`ByteStream`] of any type.
pub(crate) type AnyStream = Box<dyn ByteStream>;

/// A connection's byte stream.
pub(crate) enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    #[cfg(feature = "tls")]
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Where a server is: what a [`Resolver`](crate::channel::Resolver) finds, and where a
/// channel connects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Options for the sockets a channel or server opens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketOptions {
    pub(crate) nodelay: bool,
    pub(crate) tcp_keepalive: Option<Duration>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            nodelay: true,
            tcp_keepalive: None,
        }
    }
}

impl SocketOptions {
    pub(crate) fn apply(&self, tcp: &TcpStream) {
        let _ = tcp.set_nodelay(self.nodelay);
        if let Some(interval) = self.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(interval)
                .with_interval(interval);
            if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
                tracing::debug!(error = %e, "cannot set TCP keepalive");
            }
        }
    }
}

/// Opens a plain connection to `address`.
pub(crate) async fn connect(address: &Address, options: &SocketOptions) -> io::Result<Io> {
    match address {
        Address::Tcp(addr) => {
            let tcp = TcpStream::connect(addr).await?;
            options.apply(&tcp);
            Ok(Io::Tcp(tcp))
        }
        Address::Unix(path) => Ok(Io::Unix(UnixStream::connect(path).await?)),
    }
}

/// The credentials of a Unix-socket peer, as the operating system reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixCredentials {
    /// The peer process's user id.
    pub uid: u32,
    /// The peer process's group id.
    pub gid: u32,
    /// The peer process's id, where the operating system tells it.
    pub pid: Option<i32>,
}

/// What a server knows of the other end of a connection.
#[derive(Debug, Default)]
pub(crate) struct PeerInfo {
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) unix_credentials: Option<UnixCredentials>,
    /// The client's certificate chain (DER), leaf first, when it presented one over TLS.
    pub(crate) certificates: Option<Arc<[Bytes]>>,
}

impl PeerInfo {
    pub(crate) fn of_unix(stream: &UnixStream) -> PeerInfo {
        let unix_credentials = stream.peer_cred().ok().map(|cred| UnixCredentials {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        });
        PeerInfo {
            unix_credentials,
            ..PeerInfo::default()
        }
    }
}

macro_rules! delegate {
    ($self:ident, $io:ident => $e:expr) => {
        match $self.get_mut() {
            Io::Tcp($io) => $e,
            Io::Unix($io) => $e,
            #[cfg(feature = "tls")]
            Io::ClientTls($io) => $e,
            #[cfg(feature = "tls")]
            Io::ServerTls($io) => $e,
        }
    };
}

impl Io {
    /// The protocol TLS's ALPN settled on (`None` without TLS, or when the client
    /// offered none).
    #[cfg(feature = "http1")]
    pub(crate) fn alpn(&self) -> Option<Vec<u8>> {
        match self {
            #[cfg(feature = "tls")]
            Io::ServerTls(tls) => tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec),
            _ => None,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(io) => io.is_write_vectored(),
            Io::Unix(io) => io.is_write_vectored(),
            #[cfg(feature = "tls")]
            Io::ClientTls(io) => io.is_write_vectored(),
            #[cfg(feature = "tls")]
            Io::ServerTls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}
