//! Accepting connections: the listening socket's task, which admits each connection
//! (or closes it over `max_connections`) and places it on a poller thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tracing::Instrument;

use super::connection::serve_connection;
use super::{Phase, ServerShared};
use crate::transport::{Io, PeerInfo};

/// A bound socket the server accepts connections on.
pub(crate) enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

enum Accepting {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Accepting {
    async fn accept(&self) -> std::io::Result<(Io, PeerInfo)> {
        match self {
            Accepting::Tcp(listener) => {
                let (tcp, remote) = listener.accept().await?;
                Ok((
                    Io::Tcp(tcp),
                    PeerInfo {
                        remote_addr: Some(remote),
                        ..PeerInfo::default()
                    },
                ))
            }
            Accepting::Unix(listener) => {
                let (unix, _) = listener.accept().await?;
                let peer = PeerInfo::of_unix(&unix);
                Ok((Io::Unix(unix), peer))
            }
        }
    }
}

/// Accepts connections until the server stops serving; each connection is placed on a
/// poller thread round-robin. Connections beyond `max_connections` are closed at once.
pub(super) async fn accept_loop(shared: Arc<ServerShared>, listener: Listener) {
    let registered = match listener {
        Listener::Tcp(listener) => TcpListener::from_std(listener).map(Accepting::Tcp),
        Listener::Unix(listener) => UnixListener::from_std(listener).map(Accepting::Unix),
    };
    let listener = match registered {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            return;
        }
    };
    let mut phase = shared.phase.subscribe();
    // The server may have been stopped (its handle dropped) before this task first ran:
    // a receiver subscribed after that change would never see it, and the listening
    // socket would stay open for the life of the runtime.
    if *phase.borrow_and_update() != Phase::Serving {
        tracing::debug!("stopped before accepting connections");
        return;
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    let Some(guard) = shared.admit_connection() else {
                        tracing::debug!(?peer.remote_addr, "closing a connection over max_connections");
                        drop(io);
                        continue;
                    };
                    if let Io::Tcp(tcp) = &io {
                        shared.config.socket.apply(tcp);
                    }
                    // Sockets move to their poller as std sockets: a tokio socket is
                    // bound to the poller that registered it.
                    let io = match into_std(io) {
                        Ok(io) => io,
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot hand over an accepted socket");
                            continue;
                        }
                    };
                    let conn_shared = shared.clone();
                    if let Some(metrics) = &shared.metrics {
                        metrics.connection_opened();
                    }
                    let counted = CountedConnection(shared.metrics.clone());
                    shared.rt.poller().spawn(async move {
                        let _counted = counted;
                        match from_std(io) {
                            Ok(io) => {
                                let span = tracing::debug_span!("connection", remote = ?peer.remote_addr);
                                serve_connection(conn_shared, io, peer, guard)
                                    .instrument(span)
                                    .await;
                            }
                            Err(e) => tracing::debug!(error = %e, "cannot register a socket"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = phase.changed() => break,
        }
    }
    tracing::debug!("stopped accepting connections");
}

/// An accepted socket on its way to another poller.
enum StdIo {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// Counts a connection closed when dropped.
struct CountedConnection(Option<crate::metrics::Metrics>);

impl Drop for CountedConnection {
    fn drop(&mut self) {
        if let Some(metrics) = &self.0 {
            metrics.connection_closed();
        }
    }
}

fn into_std(io: Io) -> std::io::Result<StdIo> {
    match io {
        Io::Tcp(tcp) => tcp.into_std().map(StdIo::Tcp),
        Io::Unix(unix) => unix.into_std().map(StdIo::Unix),
        #[cfg(feature = "tls")]
        _ => Err(std::io::Error::other(
            "TLS streams are made on their poller",
        )),
    }
}

fn from_std(io: StdIo) -> std::io::Result<Io> {
    match io {
        StdIo::Tcp(tcp) => TcpStream::from_std(tcp).map(Io::Tcp),
        StdIo::Unix(unix) => UnixStream::from_std(unix).map(Io::Unix),
    }
}
