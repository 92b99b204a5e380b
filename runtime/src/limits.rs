//! Every budget of the runtime in one place: what one call, one connection and one server
//! may hold, and the defaults of the settings that bound them.
//!
//! The [budget table](crate::design#budgets-what-a-peer-can-make-us-hold) of the design
//! notes links here. Items named `DEFAULT_*` are where a builder setting starts; the others
//! are fixed bounds inside the runtime. Sizes are bytes of memory as the runtime weighs
//! them: a queued message costs its queue entry, its prefix and its body, so that a stream
//! of empty messages is not free.

use std::time::Duration;

// ─── One call ────────────────────────────────────────────────────────────────────────

/// Weight of received requests a server call's inbound queue holds before the poller
/// stops moving more into it: the rest waits at its wire size in the call's decoder, and
/// its HTTP/2 flow-control credit is held back until the handler takes messages out.
pub const INBOUND_QUEUE: usize = 64 * 1024;

/// The same for the responses a client call has received and its caller not yet taken.
/// Larger than a server call's: the poller hands a caller that keeps up several large
/// messages per wake-up instead of one (with 64 KiB, a download of 64 KiB messages cost
/// the client about a tenth more CPU per message), and a client's calls are its own,
/// not a peer's to open.
pub const CLIENT_INBOUND_QUEUE: usize = 256 * 1024;

/// Weight of responses one server call may queue (counting each chunk's capacity) before
/// its handler waits for the transport.
pub const SERVER_OUTBOUND_QUEUE: usize = 512 * 1024;

/// Weight of requests one client call may queue before its sender waits for the
/// transport.
pub const CLIENT_OUTBOUND_QUEUE: usize = 128 * 1024;

/// Messages sent one after another are encoded into a shared chunk of this size before
/// another is started; h2 sends each chunk as a DATA frame, gathered with the frames
/// around it into larger writes.
pub const CHUNK: usize = 16 * 1024;

/// While h2 writes large DATA frames (8 KiB or more) one after another, a connection
/// gathers at most this many bytes of them and writes them with one call (the
/// transport's write gathering): the frames' payloads held by reference to the calls'
/// buffers, their headers copied into a buffer allocated for a burst and given back after
/// it. 64 KiB measured best for 64 KiB messages over loopback (whose 64 KiB MTU makes a
/// write just over 64 KiB two packets): 32 KiB, 80 KiB (a whole 64 KiB message per write)
/// and 256 KiB all cost the server more CPU per message, and 256 KiB cost a stream of
/// 1 KiB messages a third more.
pub const WRITE_GATHER: usize = 64 * 1024;

/// The same for a connection over a plain (not TLS) TCP or Unix socket, server's or
/// client's, whose writes go to the kernel as they are: larger writes mean fewer system
/// calls and fewer wake-ups of the reader. Measured on streams of 64 KiB messages
/// (`rsgrpc-bench server-cpu`, two runs of 5 rounds against 64 KiB in the same run, AMD
/// EPYC, BBR), server CPU per message, async / blocking: to tonic's client 19.5 / 21.5 and
/// 19.5 / 18.9 µs against 22.9 / 22.8 and 21.8 / 24.8; to h2load 23.5 / 22.5 and 21.8 /
/// 22.7 against 26.4 / 26.1 and 25.9 / 24.9; streams of 1 KiB messages unchanged; peak RSS
/// 0.1-0.2 MiB higher. A client uploading 64 KiB messages to tonic's server (`rsgrpc-bench
/// load --workload upload64k`, two runs of 9 interleaved rounds), client CPU per message,
/// blocking / async: 22.8 / 22.5 and 26.8 / 23.9 µs against 24.3 / 23.1 and 29.0 / 25.3.
/// (On an Intel machine 80 and 256 KiB had cost more than 64, see [`WRITE_GATHER`]; 128 was
/// not measured there.) Over TLS the gathered bytes are copied and encrypted into records
/// before they are written, and 128 KiB cost 10-18 % more CPU per message than 64 KiB, so
/// TLS keeps [`WRITE_GATHER`].
pub const PLAINTEXT_WRITE_GATHER: usize = 128 * 1024;

/// Sent chunks of at most this capacity go back to their call for reuse.
pub const MAX_RECYCLED_CHUNK: usize = 256 * 1024;

/// Most written chunks one call keeps for reuse (each charged to its connection's quota).
pub const MAX_RECYCLED_CHUNKS: usize = 4;

/// A collected request message larger than this is charged to its connection's quota
/// until its handler has decoded it (one this small is not: the streams of a connection
/// and the worker pool's queue bound their number).
pub const SMALL_REQUEST: usize = 4096;

/// Request bytes of a streaming client call kept to replay it on a retry; past this the
/// call can no longer be retried (as grpc-java's per-call retry buffer).
pub const RETRY_BUFFER: usize = 256 * 1024;

// ─── One connection ──────────────────────────────────────────────────────────────────

/// The largest HTTP/2 frame a channel accepts (its `SETTINGS_MAX_FRAME_SIZE`; HTTP/2's
/// default is 16 KiB): a server may then send a message of up to about this size, within
/// the stream's window, as one DATA frame, which the channel hands to its caller without
/// joining pieces, read with fewer and larger reads (a download of 64 KiB messages costs
/// the client about a third less CPU per message than in 16 KiB frames). A frame is read
/// whole before it is decoded: one connection holds at most this much of a frame being
/// read.
pub const CLIENT_MAX_FRAME_SIZE: u32 = 1024 * 1024;

/// Response bytes h2 holds for one stream, handed over and not yet written to the socket
/// (h2's `max_send_buffer_size`, 400 KiB by default): the poller hands a stream's queued
/// chunks to h2 only as far as this allows (a call's last message, sent with its status,
/// goes to h2 whole). Measured on streams of 64 KiB messages
/// (`rsgrpc-bench server-cpu`, async / blocking server, 3 rounds, against 400 KiB in the
/// same run): to a channel, which takes a 64 KiB message as one frame, 23.8 / 22.6 µs of
/// server CPU per message against 33.8 / 32.6 with TCP's BBR congestion control, and
/// 19.1 / 17.5 against 18.5 / 17.7 with cubic; to tonic's client (16 KiB frames) 19.2 /
/// 19.2 against 20.4 / 20.3 with BBR, within the spread with cubic. 128 KiB cost the
/// second case 5 %.
pub const SERVER_SEND_BUFFER: usize = 192 * 1024;

/// What an open server connection is counted as in its memory quota, besides its calls:
/// h2's read and write buffers, header tables and the connection's own state.
pub const CONNECTION_COST: usize = 64 * 1024;

/// What an HTTP/1.1 connection holds on top of an HTTP/2 one (feature `http1`), charged to
/// its quota while it is open: hyper's read and write buffers ([`HTTP1_READ_BUFFER`]
/// each, and one response chunk), the in-memory pipe's two buffers ([`HTTP1_PIPE`] each)
/// and the bridge's HTTP/2 receive window ([`HTTP1_BRIDGE_WINDOW`]).
pub const HTTP1_BRIDGE_COST: usize =
    2 * HTTP1_READ_BUFFER + CHUNK + 2 * HTTP1_PIPE + HTTP1_BRIDGE_WINDOW as usize;

/// Largest buffer hyper keeps for reading (and, separately, for writing) one HTTP/1.1
/// connection: a request's headers must fit in it.
pub const HTTP1_READ_BUFFER: usize = 32 * 1024;

/// Most header fields one HTTP/1.1 request may have.
pub const HTTP1_MAX_HEADERS: usize = 100;

/// Each direction's buffer of the pipe between an HTTP/1.1 connection and its HTTP/2 side.
pub const HTTP1_PIPE: usize = 16 * 1024;

/// The HTTP/2 receive window (stream and connection) of an HTTP/1.1 connection's bridge:
/// what a response may have in flight between the server and hyper.
pub const HTTP1_BRIDGE_WINDOW: u32 = 64 * 1024;

/// A connection's quota reserves from the server's in blocks of this size, so that most
/// charges touch only the connection's own counter.
pub const QUOTA_BLOCK: usize = 64 * 1024;

/// Default of [`connection_memory_quota`](crate::server::ServerBuilder::connection_memory_quota):
/// everything one connection may make the server hold.
pub const DEFAULT_CONNECTION_MEMORY_QUOTA: usize = 64 * 1024 * 1024;

/// Default of [`max_concurrent_streams`](crate::server::ServerBuilder::max_concurrent_streams)
/// per connection.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;

/// Default of [`max_header_list_size`](crate::server::ServerBuilder::max_header_list_size).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Default of [`handshake_timeout`](crate::server::ServerBuilder::handshake_timeout): TLS
/// and the HTTP/2 preface with SETTINGS.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Default of [`initial_stream_window_size`](crate::server::ServerBuilder::initial_stream_window_size):
/// the HTTP/2 stream window a server announces.
pub const DEFAULT_STREAM_WINDOW: u32 = 1024 * 1024;

/// Default of [`initial_connection_window_size`](crate::server::ServerBuilder::initial_connection_window_size):
/// the HTTP/2 connection window a server announces.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;

/// Default of [`max_pending_accept_reset_streams`](crate::server::ServerBuilder::max_pending_accept_reset_streams):
/// streams a client may reset before the server accepted them, pending at once, before
/// the connection is closed (h2's rapid-reset guard).
pub const DEFAULT_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Default of [`max_local_error_reset_streams`](crate::server::ServerBuilder::max_local_error_reset_streams):
/// streams the server may reset for protocol errors on one connection before it closes
/// the connection.
pub const DEFAULT_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// How long a stopped server's connection may take to send its last frames (the calls'
/// statuses, GOAWAY, TLS `close_notify`) before it is dropped.
pub const STOP_FLUSH: Duration = Duration::from_secs(1);

/// Default of [`keepalive_timeout`](crate::server::ServerBuilder::keepalive_timeout): how
/// long a keepalive ping may go unanswered.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Default of [`keepalive_min_time`](crate::server::ServerBuilder::keepalive_min_time): the shortest
/// interval between a client's pings the server tolerates.
pub const DEFAULT_PING_MIN_TIME: Duration = Duration::from_secs(300);

/// Pings too soon a server tolerates from one client; one more and the connection ends
/// with GOAWAY `ENHANCE_YOUR_CALM` (`too_many_pings`).
pub const MAX_PING_STRIKES: u32 = 2;

/// While no call is open (and pings without calls are not permitted), the shortest
/// interval between a client's pings the server tolerates.
pub const IDLE_PING_INTERVAL: Duration = Duration::from_secs(2 * 3600);

// ─── One server ──────────────────────────────────────────────────────────────────────

/// Default of [`memory_quota`](crate::server::ServerBuilder::memory_quota): everything all
/// connections may make the server hold, [`CONNECTION_COST`] per open connection included.
pub const DEFAULT_MEMORY_QUOTA: usize = 1024 * 1024 * 1024;

/// Default of [`max_connections`](crate::server::ServerBuilder::max_connections).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default of [`max_concurrent_calls`](crate::server::ServerBuilder::max_concurrent_calls)
/// over all connections.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 4096;

/// Default of [`max_receive_message_size`](crate::server::ServerBuilder::max_receive_message_size).
pub const DEFAULT_MAX_RECEIVE_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Share, in percent of the worker pool's threads, that blocking streaming handlers may
/// hold at once: they may wait on their client as long as it likes, so the rest is kept
/// for unary calls.
pub const BLOCKING_STREAMING_SHARE_PERCENT: usize = 75;

/// Default share, in percent of the worker pool's threads, of one connection's blocking
/// handlers ([`max_blocking_handlers_per_connection`](crate::server::ServerBuilder::max_blocking_handlers_per_connection)).
pub const CONNECTION_BLOCKING_SHARE_PERCENT: usize = 25;

// ─── One runtime ─────────────────────────────────────────────────────────────────────

/// Default of [`max_blocking_threads`](crate::RuntimeBuilder::max_blocking_threads).
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 256;

/// Default of [`max_blocking_queue`](crate::RuntimeBuilder::max_blocking_queue): blocking
/// jobs waiting for a worker.
pub const DEFAULT_MAX_BLOCKING_QUEUE: usize = 1024;

/// Default of [`max_executor_stand_ins`](crate::RuntimeBuilder::max_executor_stand_ins).
pub const DEFAULT_MAX_EXECUTOR_STAND_INS: usize = 64;

/// Default of [`blocking_keep_alive`](crate::RuntimeBuilder::blocking_keep_alive): how
/// long an idle worker thread beyond the core count is kept.
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(60);

/// How long the worker pool's queue may make no progress before its monitor releases
/// another worker.
pub const POOL_STALL: Duration = Duration::from_millis(1);

/// Compressors kept between messages, per format (gzip, and deflate and zstd with their
/// features, and zstd's decompression contexts), in the whole process: a deflate one holds
/// about 300 KB (miniz_oxide's window, hash chains and code tables), a zstd one at most
/// [`KEPT_ZSTD_CONTEXT`]; setting one up anew for every message would cost more than
/// compressing a small one.
pub const KEPT_COMPRESSORS: usize = 4;

/// The most a zstd context may hold and still be kept: its tables and buffers grow with
/// the frames it handled (a compression context at the default level to about 0.9 MB for
/// 128 KiB messages, 1.3 MB for larger ones), and one that grew past this is let go.
pub const KEPT_ZSTD_CONTEXT: usize = 1024 * 1024;

/// `share` percent of `n`, at least one.
pub(crate) fn share(n: usize, percent: usize) -> usize {
    (n.saturating_mul(percent) / 100).max(1)
}
