//! Design notes: the poller threads, the completion queues and the life of a call.
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
//!         never runs user code: no handlers, no user futures or streams
//!
//!    executor threads: async handlers, client request streams
//!    worker pool:      blocking handlers (grows on demand)
//! ```
//!
//! * **Pollers** each drive a private tokio current-thread runtime. Only this crate's I/O
//!   tasks run there: connection drivers, one task per call that moves HTTP/2 frames to and
//!   from the call's queues, and timers (deadlines, backoff, handshake timeouts). Message
//!   bodies are encoded and decoded by the caller or the handler, never on the poller.
//! * **The executor** runs async handlers and the request streams of async client calls.
//!   A server can hand its async handlers to your executor instead
//!   ([`ServerBuilder::spawn_with`](crate::server::ServerBuilder::spawn_with)). When an
//!   async handler makes a blocking call, its thread lends the executor a stand-in thread
//!   for as long as it waits, so handlers calling each other this way cannot starve it.
//! * **The worker pool** runs blocking handlers; it starts a thread whenever every thread
//!   is busy, so a handler that sleeps does not delay other calls.
//!
//! # Completion queues
//!
//! Each call has two queues. The inbound queue carries headers, messages, trailers and
//! errors from the poller to whoever waits for them; the outbound queue carries messages,
//! half-close and the final status the other way. A waiting blocking caller parks on a
//! condition variable; an async caller leaves its `Waker`. The poller gathers everything
//! one read produced and hands it over with a single wake-up, and the consumer takes the
//! whole batch with one lock.
//!
//! Queues are bounded for flow control: the poller stops reading a stream while its
//! consumer is behind (so HTTP/2 flow control pushes back on the peer), and a sender waits
//! while the transport cannot take more.
//!
//! Messages queued one behind the other are joined into one buffer before they are handed
//! to h2, so a stream of small messages is written as full HTTP/2 frames with few system
//! calls. Compression (gzip) and decompression happen on the sending and receiving
//! threads, never on the poller.
//!
//! Dropping the consumer of a client call's inbound queue — dropping a response stream or
//! an unfinished call future — is how a call is cancelled: the poller notices and resets
//! the stream with `CANCEL`.
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
//! enforces it too.
//!
//! # Life of a server call
//!
//! 1. The poller accepts the stream, checks method and content-type, finds the handler
//!    (`UNIMPLEMENTED` otherwise) and reads `grpc-timeout`.
//! 2. The handler is dispatched to the worker pool or the executor with its two queues.
//! 3. The poller feeds request messages in (checking each length prefix against the limit
//!    before buffering anything) and sends what the handler queues, within HTTP/2 flow
//!    control.
//! 4. A client reset, the deadline or a forced shutdown marks the call cancelled; the
//!    handler sees it through [`Request::is_cancelled`](crate::Request::is_cancelled),
//!    [`Request::cancelled`](crate::Request::cancelled) and failing sends.
//! 5. A handler that panics fails its call with `UNKNOWN`; the server keeps serving.
