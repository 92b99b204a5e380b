//! Design notes: the poller threads, the completion queues, the life of a call, and what
//! a peer can make the runtime hold.
//!
//! This module has no items; it is documentation.
//!
//! # Threads
//!
//! A [`Runtime`](crate::Runtime) owns three kinds of threads:
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
//!    worker pool:      blocking handlers
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
//!   threads, so a poller never does.
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
//! outbound queue, so h2 sends them as a few full DATA frames with one write. Compression
//! (gzip) and decompression happen on the sending and receiving threads.
//!
//! Dropping the consumer of a client call's inbound queue — dropping a response stream or
//! an unfinished call future — is how a call is cancelled: the poller notices and resets
//! the stream with `CANCEL`.
//!
//! # Budgets: what a peer can make us hold
//!
//! | what | bound |
//! |---|---|
//! | request bytes of a streaming call | HTTP/2 credit goes back to the client at once while the handler is less than 64 KiB behind, then only once it has taken everything and waits: at most 64 KiB, the stream window and one message being assembled (≤ the receive limit) |
//! | the request of a unary or server-streaming call | one message (≤ the receive limit), collected before the handler starts; a second message fails the call |
//! | response bytes held for a client that does not read | the same rule on the client side: 64 KiB, the window and one message |
//! | all the calls of a connection | the connection window, plus the one message per call above |
//! | queued outbound messages of a call | 512 KiB on the server (128 KiB on the client) plus one message, and up to four recycled chunk buffers; senders wait beyond it |
//! | calls | [`max_concurrent_streams`](crate::server::ServerBuilder::max_concurrent_streams) per connection, [`max_concurrent_calls`](crate::server::ServerBuilder::max_concurrent_calls) over all of them; beyond, `REFUSED_STREAM` |
//! | connections | [`max_connections`](crate::server::ServerBuilder::max_connections); beyond, closed on accept |
//! | blocking handlers | [`max_blocking_threads`](crate::RuntimeBuilder::max_blocking_threads) running and [`max_blocking_queue`](crate::RuntimeBuilder::max_blocking_queue) waiting; beyond, `REFUSED_STREAM`. Client- and bidi-streaming handlers, which start before their request is complete, may hold at most three quarters of the workers, so calls whose request is complete always find one |
//! | executor threads | the configured count plus at most [`max_executor_stand_ins`](crate::RuntimeBuilder::max_executor_stand_ins) |
//! | header block | [`max_header_list_size`](crate::server::ServerBuilder::max_header_list_size) (16 KiB) |
//!
//! A stream whose headers arrived but whose body never does costs a slot of
//! `max_concurrent_calls` and no thread. Threads, file descriptors and live calls return
//! to their baseline when the work is done; the tests measure it from `/proc/self`.
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
