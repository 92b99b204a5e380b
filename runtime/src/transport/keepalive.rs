//! Keepalive pings on one HTTP/2 connection, the same for both ends (gRPC's keepalive
//! document): a ping whenever the peer has sent nothing for the keepalive time, and the
//! connection given up when one goes unanswered for the keepalive timeout. A client pings
//! only while calls are open unless permitted otherwise; a server pings regardless.
//!
//! Polled by the task that drives the connection, on its poller thread; what the peer
//! sent last is read from the connection's frame [`Watch`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::frames::Watch;
use crate::deadline;

type Sleep = Pin<Box<tokio::time::Sleep>>;
type PingFuture = Pin<Box<dyn Future<Output = (h2::PingPong, Result<(), h2::Error>)> + Send>>;

/// When to ping and how long to wait for the answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepaliveConfig {
    /// Quiet time after which a ping is sent.
    pub(crate) time: Duration,
    /// How long a ping may go unanswered.
    pub(crate) timeout: Duration,
    /// Whether pings are sent while no call is open.
    pub(crate) permit_without_calls: bool,
}

/// The keepalive state of one connection.
pub(crate) struct Keepalive {
    config: KeepaliveConfig,
    /// Taken while a ping is out.
    ping: Option<h2::PingPong>,
    /// The ping out, and when it is given up.
    pinging: Option<(PingFuture, Sleep)>,
    /// When the peer's quiet is looked at next.
    timer: Sleep,
}

impl Keepalive {
    pub(crate) fn new(ping: h2::PingPong, config: KeepaliveConfig) -> Keepalive {
        Keepalive {
            config,
            ping: Some(ping),
            pinging: None,
            timer: Box::pin(tokio::time::sleep_until(
                deadline::saturating_after(config.time).into(),
            )),
        }
    }

    /// Sends pings as due; `Ready` with the reason when the connection must end (a ping
    /// failed or went unanswered). `open_calls` is how many calls the connection has.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        watch: &Watch,
        open_calls: usize,
    ) -> Poll<String> {
        if let Some((ping, timeout)) = &mut self.pinging {
            if let Poll::Ready((pong, result)) = ping.as_mut().poll(cx) {
                self.ping = Some(pong);
                self.pinging = None;
                if let Err(e) = result {
                    return Poll::Ready(format!("keepalive ping failed: {e}"));
                }
            } else if timeout.as_mut().poll(cx).is_ready() {
                return Poll::Ready(format!(
                    "keepalive ping not answered within {:?}",
                    self.config.timeout
                ));
            } else {
                return Poll::Pending;
            }
        }
        let time = self.config.time;
        while self.timer.as_mut().poll(cx).is_ready() {
            let quiet = watch.last_read().elapsed();
            if quiet < time {
                // The peer spoke meanwhile: look again once it has been quiet long enough.
                self.timer
                    .as_mut()
                    .reset(deadline::saturating_after(time - quiet).into());
                continue;
            }
            self.timer
                .as_mut()
                .reset(deadline::saturating_after(time).into());
            if open_calls == 0 && !self.config.permit_without_calls {
                // Nothing to keep alive: look again after another quiet period.
                continue;
            }
            if let Some(mut pong) = self.ping.take() {
                let ping: PingFuture = Box::pin(async move {
                    let result = pong.ping(h2::Ping::opaque()).await.map(drop);
                    (pong, result)
                });
                let timeout = Box::pin(tokio::time::sleep_until(
                    deadline::saturating_after(self.config.timeout).into(),
                ));
                self.pinging = Some((ping, timeout));
                // Poll the new ping, so that it is sent and its waker registered.
                return self.poll(cx, watch, open_calls);
            }
        }
        Poll::Pending
    }
}
