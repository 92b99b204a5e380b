//! Design notes: the poller threads, the completion queues, the life of a call, and what
//! a peer can make the runtime hold.
//!
//! This module has no items; it is documentation.
//!
//! # Layout
//!
//! The runtime's files, in layers that import only downwards (a test reads the `use`
//! lines and holds them to it); `lib.rs` only declares and re-exports.
//!
//! ```text
//!  client/       a call on the caller's side
//!    mod.rs          Client: the eight call methods, blocking and async
//!    start.rs        a call prepared on the caller's thread: settings, interceptors,
//!                    headers, queues, hand-off to the poller
//!    call.rs         the poller's task for a call: attempts and the retry decisions
//!    attempt.rs      one attempt over one HTTP/2 stream
//!
//!  channel/      connections to a target
//!    mod.rs          Channel: picking a connection for a call, waiting for ready
//!    builder.rs      ChannelBuilder and the channel's settings
//!    target.rs       target URIs
//!    resolver.rs     names to addresses, re-resolution and its backoff
//!    subchannel.rs   one address: idle, connecting, ready, backing off
//!    balancer/       the Balancer trait; pick_first.rs, round_robin.rs (a policy is a
//!                    file; subchannels and policies are plain state, tested without
//!                    sockets)
//!    connection.rs   dialling, the HTTP/2 handshake over any byte stream, driving a
//!                    connection
//!    http1.rs        gRPC-Web over HTTP/1.1 (feature http1): the connection's HTTP/2
//!                    bridged to hyper's HTTP/1.1 client, one call at a time
//!    service_config.rs  per-method settings, retries and their throttling
//!
//!  server/       serving connections
//!    mod.rs          Server
//!    builder.rs      ServerBuilder, binding
//!    accept.rs       the listening task, connection admission
//!    connection.rs   a connection's life over any byte stream: batching, maximum age,
//!                    idleness, draining
//!    dispatch.rs     per-call checks, routing, admission
//!    stream.rs       one call on the poller
//!    service.rs      a service's methods
//!    handler.rs      running a handler on a worker or the executor
//!    responder.rs    a handler's sends
//!    shared.rs       what connections share: counts, quotas, guards
//!    handle.rs       ServerHandle
//!    web.rs          gRPC-Web: which requests are, CORS, what such a call sends
//!                    differently (content type, status in the body, base64 text)
//!    http1.rs        HTTP/1.1 connections (feature http1): hyper's server, each
//!                    request an HTTP/2 stream to this server over an in-memory pipe
//!
//!  call/         one call's moving parts, both ends
//!    events.rs       what crosses the two queues, and its weight
//!    chunks.rs       outbound messages framed into recycled chunks
//!    outgoing.rs     a chunk's bytes as h2 sends them, long Bytes fields spliced in
//!    inflow.rs       the poller's receive path under the inbound budget
//!    receiver.rs     the consumer of the inbound queue, parking or with a waker
//!    streams.rs      Streaming, BlockingStreaming, RequestSender
//!    cancel.rs       a server call's context and cancellation
//!    observed.rs     the record interceptors, tracing and metrics see
//!    protocol.rs     gRPC content type, HTTP/2 errors as statuses
//!    web.rs          gRPC-Web's wire format: content types, the trailers frame, base64
//!  request.rs, response.rs, interceptor.rs   the public call types
//!
//!  transport/    sockets, TLS, the frame watch (frames.rs), keepalive for both ends
//!                (keepalive.rs), the authority check (authority.rs), what both HTTP/1.1
//!                bridges share (http1.rs: telling the protocols apart, a body into an
//!                HTTP/2 stream)
//!  poller.rs     the poller threads          cq.rs       the completion queue
//!  executor.rs   the async executor          pool.rs     the blocking worker pool
//!  quota.rs      memory quotas               runtime.rs  a runtime: all of the above
//!
//!  limits.rs     every budget and default    sync.rs     poison-free locks (shuttle's
//!                                                        under --cfg shuttle)
//!  codec.rs, status.rs, metadata.rs, deadline.rs, backoff.rs (backoff and jitter),
//!  metrics.rs, role.rs (who may run user code), error.rs, live.rs
//! ```
//!
//! Unit tests sit beside the code (`tests.rs` files, or a `mod tests`). The server's and
//! the client's connections are also driven frame by frame over an in-memory pipe by a
//! hand-written HTTP/2 peer (`server/transcript.rs`, `client/transcript.rs`), and the
//! hand-offs of the completion queue, the executor and the worker pool are model-checked
//! under shuttle (`models.rs`).
//!
//! # Threads
//!
//! A [`Runtime`](crate::Runtime) owns these threads:
//!
//! ```text
//!  user threads (blocking stubs)        async tasks (any executor)
//!         |   park on a completion           |   poll, Waker registered
//!         v                                  v
//!    +--------------- completion queues (one pair per call) ---------------+
//!         ^  completions pushed in batches, the consumer woken once
//!         |
//!    poller thread(s): sockets, HTTP/2 (h2), timers
//!         never runs user code: no handlers, hooks, user futures or streams,
//!         and no drop of a user's value
//!
//!    executor threads: async handlers, client request streams, spawn hooks
//!    worker pool:      blocking handlers, name resolution; a monitor starts its threads
//!    reaper (one per process): drops values whose last owner was a poller
//! ```
//!
//! * **Pollers** each drive a private tokio current-thread runtime. Only this crate's I/O
//!   tasks run there: a task per server connection that drives HTTP/2 and every call on
//!   it, a task per client call, connection drivers and timers. Message bodies are encoded
//!   and decoded by the caller or the handler, never on the poller. Values that may hold
//!   user code (a server's handlers, a task abandoned by a stopped executor) are dropped on
//!   a reaper thread if their last owner is a poller.
//! * **The executor** (one thread per core by default) runs async handlers, the request
//!   streams of async client calls, and the spawn hook of a server that hands its handlers
//!   to another executor ([`ServerBuilder::spawn_with`](crate::server::ServerBuilder::spawn_with)).
//!   A task is queued at most once and never polled by two threads at once, even when it
//!   is woken while it runs. When an async handler makes a blocking rsgrpc call that has
//!   to wait, its thread stops counting as serving and a pooled spare thread serves in its
//!   place until the wait ends (at most
//!   [`max_executor_stand_ins`](crate::RuntimeBuilder::max_executor_stand_ins) of them), so
//!   handlers that call each other this way cannot starve it. A wait that would not block
//!   costs nothing.
//! * **The worker pool** runs blocking handlers: as many at once as there are cores, and
//!   more only while running handlers block. A monitor thread releases one more worker
//!   whenever the pool's queue has made no progress for a millisecond, up to
//!   [`max_blocking_threads`](crate::RuntimeBuilder::max_blocking_threads); it starts the
//!   threads, so a poller never does. The monitor starts with the runtime. Name
//!   resolution (a channel's [`Resolver`](crate::channel::Resolver), or `getaddrinfo` for
//!   a DNS name) also runs as a job on this pool, since it may block.
//! * **The reaper**, one per process, started by the first runtime built: it drops values
//!   whose last owner turned out to be a poller (see **Pollers**).
//!
//! # Hand-offs
//!
//! Each call has two completion queues. The inbound queue carries headers, messages,
//! trailers and errors from the poller to whoever waits for them; the outbound queue
//! carries messages, half-close and the final status the other way. A waiting blocking
//! caller parks on a condition variable; an async caller leaves its `Waker`. Either side
//! wakes the other only when it waits, and hands over everything it has with one lock
//! and one wake-up.
//!
//! On the server, all calls of a connection are futures polled by the connection's task,
//! so responses queued by many handlers wake that task once. Handlers that became runnable
//! during one turn of the task (everything one socket read brought in) are handed to the
//! executor or the worker pool together, with one wake-up. Under load a burst of calls
//! crosses from the poller to the handlers and back with about one thread switch each
//! way, not one per call.
//!
//! Messages sent one after another are encoded straight into a shared 16 KiB chunk of the
//! outbound queue, so h2 sends them as a few full DATA frames with one write. A message's
//! `bytes::Bytes` fields of 8 KiB or more are not copied into its encoding: its chunk
//! refers to them, and the poller hands h2 the encoding's parts with the fields between
//! them, which go out in one vectored write (prost generates `Bytes` fields with the build
//! option `bytes`). Those fields are the sender's values and may hold its code
//! (`Bytes::from_owner`): once sent, the poller hands them back to the sender's side, which
//! drops them at its next message (at most what its outbound queue held waits there), or
//! the reaper does when the call ends. Messages larger than a frame, queued one behind
//! another (a server's responses, a client's requests, and the requests a retry sends
//! again), go to h2 in multiples of 16 KiB (the smallest frame size a peer may set), the
//! tail of one joined to the start of the next, so that a peer with 16 KiB frames gets
//! full frames only, not a short frame after each message. Received messages
//! are decoded from the received bytes, so the `Bytes` fields of a message that came in
//! one piece are slices of it, not copies. Compression
//! (gzip; deflate and zstd behind their features) and decompression happen on the sending
//! and receiving threads.
//!
//! Dropping the consumer of a client call's inbound queue — dropping a response stream or
//! an unfinished call future — is how a call is cancelled: the poller notices and resets
//! the stream with `CANCEL`.
//!
//! # Budgets: what a peer can make us hold
//!
//! Every hand-off is bounded, and what it holds is weighed by what it costs in memory: a
//! queued message costs its queue entry, its prefix and its body, so a stream of empty
//! messages is not free. Flow control is the first budget: HTTP/2 credit goes back to a
//! peer only for what the consumer has taken, never for what merely arrived. Above the
//! per-call budgets, a **memory quota** per server and one per connection under it (gRPC
//! C-core's resource quota is the model) count what every call of a connection holds:
//! requests waiting for their handler (and the one being collected), responses queued and
//! not yet written, chunks h2 has yet to write, recycled buffers and a fixed cost per open
//! connection. A quota is a budget, not an allocator: what a peer already sent within its
//! window is kept; what happens next is decided by the quota.
//!
//! Every bound below is an item of [`limits`](crate::limits), the one place where the
//! runtime's budgets and the defaults of its settings are written.
//!
//! | what | bound | what the peer sees at the bound |
//! |---|---|---|
//! | requests received for a call | its queue holds [`INBOUND_QUEUE`](crate::limits::INBOUND_QUEUE) (64 KiB) of weight (entries, prefixes, bodies); the rest waits in the call's decoder at wire size, its credit held; credit goes back as the handler takes messages, and at once for the one message being assembled (it may be larger than the window): at most 64 KiB, the stream window ([`DEFAULT_STREAM_WINDOW`](crate::limits::DEFAULT_STREAM_WINDOW)) and one message (≤ the receive limit, [`DEFAULT_MAX_RECEIVE_MESSAGE_SIZE`](crate::limits::DEFAULT_MAX_RECEIVE_MESSAGE_SIZE)) | its stream window closes |
//! | the request of a unary or server-streaming call | one message (≤ the receive limit), collected before the handler starts (charged to the connection's quota when over [`SMALL_REQUEST`](crate::limits::SMALL_REQUEST)); a second message fails the call | `INTERNAL` |
//! | responses received by a client that does not read | the same rule on the client side, with a queue of [`CLIENT_INBOUND_QUEUE`](crate::limits::CLIENT_INBOUND_QUEUE) (256 KiB) of weight: at most 256 KiB, the window at wire size, one message; a frame is read whole, at most [`CLIENT_MAX_FRAME_SIZE`](crate::limits::CLIENT_MAX_FRAME_SIZE) (1 MiB, the channel's `SETTINGS_MAX_FRAME_SIZE`) | the server's window closes; a larger frame is a connection error (`FRAME_SIZE_ERROR`) |
//! | responses queued by one call | [`SERVER_OUTBOUND_QUEUE`](crate::limits::SERVER_OUTBOUND_QUEUE) (512 KiB; [`CLIENT_OUTBOUND_QUEUE`](crate::limits::CLIENT_OUTBOUND_QUEUE), 128 KiB, of requests on the client), counting each chunk's capacity (and the `Bytes` fields spliced into it) until the poller has handed it to h2 (what it took and has not sent yet included); h2 then holds at most [`SERVER_SEND_BUFFER`](crate::limits::SERVER_SEND_BUFFER) (192 KiB) of a server stream's data not yet written, besides a call's last message, which goes to h2 whole with the status, all of it charged to the connection's quota until written; and at most [`MAX_RECYCLED_CHUNKS`](crate::limits::MAX_RECYCLED_CHUNKS) written chunks kept for reuse; senders wait beyond it (a blocking send at most until the call's deadline) | — |
//! | a connection's gathered writes | while h2 writes large DATA frames (8 KiB or more) one after another, at most [`WRITE_GATHER`](crate::limits::WRITE_GATHER) (64 KiB; over a plain TCP or Unix socket [`PLAINTEXT_WRITE_GATHER`](crate::limits::PLAINTEXT_WRITE_GATHER), 128 KiB) kept and written with one call: slices of the calls' chunks held by reference (charged to the connection's quota until written, besides their calls' charge), the rest copied into a buffer allocated for the burst and charged while it is | — (written when full) |
//! | everything one connection makes the server hold | [`connection_memory_quota`](crate::server::ServerBuilder::connection_memory_quota), default [64 MiB](crate::limits::DEFAULT_CONNECTION_MEMORY_QUOTA) | while used up: its new streams get `REFUSED_STREAM` (clients retry them), its credit is held back, its handlers wait to send |
//! | everything all connections make the server hold | [`memory_quota`](crate::server::ServerBuilder::memory_quota), default [1 GiB](crate::limits::DEFAULT_MEMORY_QUOTA), including [`CONNECTION_COST`](crate::limits::CONNECTION_COST) (64 KiB) per open connection | while used up: connections holding more than an even share of it are refused new streams, every connection's credit is held back, every sending handler waits; light connections are still served |
//! | calls | [`max_concurrent_streams`](crate::server::ServerBuilder::max_concurrent_streams) per connection ([256](crate::limits::DEFAULT_MAX_CONCURRENT_STREAMS)), [`max_concurrent_calls`](crate::server::ServerBuilder::max_concurrent_calls) over all of them ([4096](crate::limits::DEFAULT_MAX_CONCURRENT_CALLS)) | `REFUSED_STREAM` |
//! | connections | [`max_connections`](crate::server::ServerBuilder::max_connections) ([1024](crate::limits::DEFAULT_MAX_CONNECTIONS)); at the cap the connection idle the longest (no call open, handshakes included) is closed to admit the new one; only when none is idle is the new one closed | the idle connection gets GOAWAY (`NO_ERROR`); a new one beyond, a closed socket |
//! | an HTTP/1.1 connection (feature `http1`, `ServerBuilder::accept_http1`) | one of the server's connections like any other (counted, idle-reclaimed, aged, drained, under its quota), one request at a time; besides an HTTP/2 connection's cost it is charged [`HTTP1_BRIDGE_COST`](crate::limits::HTTP1_BRIDGE_COST) for hyper's buffers ([`HTTP1_READ_BUFFER`](crate::limits::HTTP1_READ_BUFFER) each way), the pipe to its HTTP/2 side and that side's receive window ([`HTTP1_BRIDGE_WINDOW`](crate::limits::HTTP1_BRIDGE_WINDOW), so a client that does not read holds at most that much of its response beyond the call's own queue); request headers within the read buffer, at most [`HTTP1_MAX_HEADERS`](crate::limits::HTTP1_MAX_HEADERS) fields, read within the handshake timeout | HTTP 431 for headers too large; closed when headers do not come in time |
//! | a connection's handshakes | [`handshake_timeout`](crate::server::ServerBuilder::handshake_timeout) ([20 s](crate::limits::DEFAULT_HANDSHAKE_TIMEOUT)), TLS and HTTP/2 preface with SETTINGS | closed |
//! | blocking handlers | [`max_blocking_threads`](crate::RuntimeBuilder::max_blocking_threads) ([256](crate::limits::DEFAULT_MAX_BLOCKING_THREADS)) running and [`max_blocking_queue`](crate::RuntimeBuilder::max_blocking_queue) ([1024](crate::limits::DEFAULT_MAX_BLOCKING_QUEUE)) waiting; streaming handlers of every kind (which may wait on their client as long as it likes, for requests or for room to send) hold at most [three quarters](crate::limits::BLOCKING_STREAMING_SHARE_PERCENT) of the workers, so unary calls always find one | `REFUSED_STREAM` |
//! | blocking handlers of one connection | [`max_blocking_handlers_per_connection`](crate::server::ServerBuilder::max_blocking_handlers_per_connection), [a quarter](crate::limits::CONNECTION_BLOCKING_SHARE_PERCENT) of `max_blocking_threads` by default; its further calls wait in the connection, their deadlines running | — (their calls start later) |
//! | a call whose deadline has passed | not started (also a `grpc-timeout` of `0n`, and a handler that waited in the pool past it); a client call with a zero timeout, or whose deadline passed before its stream opened, is not sent | `DEADLINE_EXCEEDED` |
//! | executor threads | the configured count plus at most [`max_executor_stand_ins`](crate::RuntimeBuilder::max_executor_stand_ins) ([64](crate::limits::DEFAULT_MAX_EXECUTOR_STAND_INS)) | — |
//! | a client's pings | one per [`keepalive_min_time`](crate::server::ServerBuilder::keepalive_min_time) ([5 min](crate::limits::DEFAULT_PING_MIN_TIME)), one per [2 h](crate::limits::IDLE_PING_INTERVAL) while no call is open unless permitted; [two](crate::limits::MAX_PING_STRIKES) pings too soon are tolerated | GOAWAY `ENHANCE_YOUR_CALM` (`too_many_pings`) |
//! | header block | [`max_header_list_size`](crate::server::ServerBuilder::max_header_list_size) ([16 KiB](crate::limits::DEFAULT_MAX_HEADER_LIST_SIZE)) | HTTP 431, or GOAWAY when far beyond |
//! | a client connection | ready only once the server's SETTINGS arrived, within the connect timeout; a new connection sent away (GOAWAY with last-stream-id 0) before answering anything counts as a failed attempt, so reconnections follow the backoff | the attempt fails, `UNAVAILABLE` for calls that do not wait for ready |
//!
//! A stream whose headers arrived but whose body never does costs a slot of
//! `max_concurrent_calls` and no thread. A stream above a GOAWAY's last-stream-id was
//! not processed: the client retries it on a new connection (a call that waits for ready,
//! until its deadline). Threads, file descriptors and live calls return to their baseline
//! when the work is done; the tests measure it from `/proc/self`.
//!
//! # Life of a unary call
//!
//! 1. The caller encodes the request and builds the headers on its own thread, then hands
//!    the call to the channel's poller.
//! 2. The poller obtains the channel's connection (connecting on first use, with backoff
//!    after failures), opens a stream and sends headers and message.
//! 3. Response headers, message and trailers are pushed to the inbound queue, typically as
//!    one batch, and the caller is woken once.
//! 4. The caller decodes the message and reads the status from the trailers.
//!
//! A deadline is a timer on the poller: when it fires the stream is reset and the caller
//! gets `DEADLINE_EXCEEDED`. The server learns the deadline from `grpc-timeout` and
//! enforces it too. Deadline arithmetic saturates: a timeout too large for the clock means
//! no deadline.
//!
//! # Life of a server call
//!
//! 1. The connection task accepts the stream, checks method and content-type, finds the
//!    handler (`UNIMPLEMENTED` otherwise), reads `grpc-timeout` and admits the call
//!    against `max_concurrent_calls`.
//! 2. A unary or server-streaming call first collects its one request message (checking
//!    its length prefix against the limit before buffering anything); a client- or
//!    bidi-streaming call starts at once and receives its messages as they come.
//! 3. The handler is dispatched to the worker pool or the executor, with the request
//!    message in the job; when the pool and its queue are full, the stream is refused.
//! 4. The task sends what the handler queues, within HTTP/2 flow control.
//! 5. A client reset, the deadline or a forced shutdown marks the call cancelled; the
//!    handler sees it through [`Request::is_cancelled`](crate::Request::is_cancelled),
//!    [`Request::cancelled`](crate::Request::cancelled) and failing sends.
//! 6. A handler that panics fails its call with `UNKNOWN`; the server keeps serving.
//!
//! # Around the handlers
//!
//! Interceptors, the call's `tracing` span and metrics hang off one per-call record that
//! exists only when something would observe the call (an interceptor, attached metrics, or
//! a subscriber that wants the span); otherwise a call carries none of it. On a server the
//! record is made where the handler is dispatched, on the handler's thread, so request
//! hooks and the span run off the poller; the end hooks run where the responder finishes
//! the call, and if that happens on the poller (a call cancelled before its handler
//! answered) only the counters are updated there, never user hooks. On a client the
//! record travels with the call's outcome to the thread or task that reads it.
//! A call made with [`Request::with_parent`](crate::Request::with_parent) takes the
//! smaller of its own timeout and the parent's remaining time, and registers a waker on
//! the parent's cancellation, removed when the child ends.
//!
//! # Channels
//!
//! A [`Channel`](crate::Channel) resolves its target into addresses and keeps a
//! subchannel (a connection, with its own backoff) per address; the load-balancing policy
//! places calls on ready ones (see [`channel`](crate::channel)). Its clones share all of
//! it. Dropping the last clone (or calling [`Channel::close`](crate::Channel::close)) lets
//! the calls in flight finish and then closes the connections: the tasks driving them hold
//! only weak references to the channel. A failed call is retried when a service config
//! says so, replaying its request from a bounded per-call buffer.
//!
//! # Under HTTP/2
//!
//! Connections are TCP, TLS (rustls, handshakes and records on the poller) or Unix
//! sockets. Between the socket and h2 sits a watch on the frames crossing the connection:
//! it parses frame headers as they pass, without buffering, so that the server can count
//! the pings a client sends (gRPC's ping strikes; h2 answers pings itself and says
//! nothing), write its own GOAWAY `too_many_pings` at a frame boundary, and so that a
//! client can read that GOAWAY's debug data (and ping half as often) and knows when its
//! connection last received anything (keepalive pings only after a quiet period).
