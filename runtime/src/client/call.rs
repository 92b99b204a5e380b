//! The poller side of a client call: one task per call that runs its attempts
//! ([`attempt`](super::attempt)) and decides whether a failed one is tried again:
//! transparently when the server never processed it (gRFC A6), else as the method's retry
//! policy says, with backoff, server pushback and the channel's retry throttling.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::attempt::{Call, Replay};
use crate::call::cancel::CancelWatch;
use crate::call::chunks::{ChunkPool, Spent};
use crate::call::events::{Inbound, Outbound};
use crate::channel::ChannelInner;
use crate::cq::{Consumer, Producer};
use crate::status::Status;

/// Everything the poller needs to run one call.
pub(crate) struct CallTask {
    pub(crate) channel: Arc<ChannelInner>,
    /// Where the buffers of sent request chunks go back to.
    pub(crate) pool: ChunkPool,
    pub(crate) head: http::Request<()>,
    /// The whole request body of a unary or server-streaming call, sent with END_STREAM.
    pub(crate) body: Option<Bytes>,
    pub(crate) deadline: Option<Instant>,
    /// The server call this call was made for: its cancellation cancels this call.
    pub(crate) parent: Option<CancelWatch>,
    pub(crate) wait_for_ready: bool,
    /// Largest response message accepted (the client's limit, or the channel's).
    pub(crate) max_receive_message_size: usize,
    pub(crate) ops: Consumer<Outbound>,
    pub(crate) events: Producer<Inbound>,
}

/// How many times a call refused by the server (`REFUSED_STREAM`: not processed) is
/// retried transparently, whatever the retry policy says.
const TRANSPARENT_RETRIES: usize = 2;
/// Trailer by which a server asks for a retry delay (or no retry, when negative).
const PUSHBACK: &str = "grpc-retry-pushback-ms";
/// Header telling the server how many attempts preceded this one.
const PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// How an attempt ended.
pub(super) enum Outcome {
    /// The response ended (trailers handed over), or the caller went away.
    Done { code: Option<crate::Code> },
    /// The attempt failed before the caller saw anything of it, or after.
    Failed(Failure),
}

pub(super) struct Failure {
    pub(super) status: Status,
    /// The caller saw response headers: the call cannot be retried.
    pub(super) committed: bool,
    /// The server did not process the call (`REFUSED_STREAM`).
    pub(super) refused: bool,
    /// The connection went away (GOAWAY) before the server processed the call: it may
    /// be retried on another connection whatever the retry policy says.
    pub(super) unprocessed: bool,
    /// The headers of a Trailers-Only response, delivered as they are if not retried.
    pub(super) trailers: Option<http::HeaderMap>,
}

impl CallTask {
    pub(crate) async fn run(self) {
        let _live = crate::live::Live::client_call();
        let CallTask {
            channel,
            pool,
            mut head,
            body,
            deadline,
            parent,
            wait_for_ready,
            max_receive_message_size,
            ops,
            events,
        } = self;
        let policy = channel.retry_policy(head.uri().path());
        let mut call = Call {
            ops,
            deferred: None,
            events,
            spent: Spent::new(pool),
            stop: Stop {
                sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
                parent,
            },
            deadline,
            batch: Vec::new(),
            replay: (policy.is_some() && body.is_none()).then(Replay::default),
            finished: false,
            max_receive: max_receive_message_size,
        };
        let mut attempts = 0u32;
        let mut transparent = 0;
        let mut backoff = policy.as_ref().map(|p| p.initial_backoff);
        loop {
            let outcome = call.attempt(&channel, &head, &body, wait_for_ready).await;
            let failure = match outcome {
                Outcome::Done { code } => {
                    channel.throttle(code, policy.as_ref());
                    return;
                }
                Outcome::Failed(failure) => failure,
            };
            let retry = if failure.committed || call.events.is_closed() {
                None
            } else if failure.unprocessed && (wait_for_ready || transparent < TRANSPARENT_RETRIES) {
                // Never processed (gRFC A6): retried on a new connection, which comes only
                // after the channel's reconnection backoff. A call that waits for ready
                // keeps waiting until its deadline.
                transparent += 1;
                Some(std::time::Duration::ZERO)
            } else if failure.refused && transparent < TRANSPARENT_RETRIES {
                transparent += 1;
                Some(std::time::Duration::ZERO)
            } else {
                policy.as_ref().and_then(|policy| {
                    if !policy.codes.contains(&failure.status.code()) {
                        return None;
                    }
                    // A retryable failure spends a token whether or not it is retried.
                    let allowed = channel.throttle(Some(failure.status.code()), Some(policy));
                    let replayable = body.is_some() || call.replay.is_some();
                    if !allowed || !replayable || attempts + 1 >= policy.max_attempts {
                        return None;
                    }
                    let pushback = failure
                        .trailers
                        .as_ref()
                        .and_then(|t| t.get(PUSHBACK))
                        .map(|v| v.to_str().ok().and_then(|v| v.parse::<i64>().ok()));
                    let delay = match pushback {
                        // The server says when, or that it must not be retried.
                        Some(Some(ms)) if ms >= 0 => std::time::Duration::from_millis(ms as u64),
                        Some(_) => return None,
                        None => {
                            let current = backoff.unwrap_or(policy.initial_backoff);
                            backoff = Some(crate::backoff::grow(
                                current,
                                policy.multiplier,
                                policy.max_backoff,
                            ));
                            crate::backoff::uniform(current)
                        }
                    };
                    attempts += 1;
                    Some(delay)
                })
            };
            let Some(delay) = retry else {
                call.deliver(failure);
                return;
            };
            tracing::debug!(status = %failure.status, ?delay, attempts, "retrying the call");
            if !delay.is_zero() {
                let wait = tokio::time::sleep(delay);
                tokio::select! {
                    _ = wait => {}
                    _ = poll_fn(|cx| call.events.poll_closed(cx)) => return,
                    status = poll_fn(|cx| call.stop.poll(cx)) => {
                        let _ = call.events.push(Inbound::Error(status));
                        return;
                    }
                }
            }
            if attempts > 0 {
                head.headers_mut()
                    .insert(PREVIOUS_ATTEMPTS, http::HeaderValue::from(attempts));
            }
        }
    }
}

/// What ends a call from outside: its deadline, or the cancellation of the server call
/// it was made for.
pub(super) struct Stop {
    pub(super) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) parent: Option<CancelWatch>,
}

impl Stop {
    /// Ready with the call's status once it must stop.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Status> {
        if let Some(sleep) = &mut self.sleep {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(deadline_exceeded());
            }
        }
        if let Some(parent) = &mut self.parent {
            if parent.poll_cancelled(cx).is_ready() {
                return Poll::Ready(Status::cancelled(
                    "the server call this call was made for was cancelled",
                ));
            }
        }
        Poll::Pending
    }
}

pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded before the call completed")
}
