//! The soak: many unary calls and streams (some cancelled by the client), against
//! servers of both flavours, through one long-lived channel and through many short-lived
//! channels; memory after warm-up and at the end, file descriptors and threads before and
//! after, and failures. `rsgrpc-bench soak` runs the full size (README); the test suite
//! runs a short one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Request, Response, Runtime, Status};

use crate::leak::{self, Snapshot, rss};
use crate::{EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo};

/// How much to do.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// Unary calls in all (split over flavours and channel kinds).
    pub unary: usize,
    /// Server-streaming calls in all; every fourth is cancelled after its first message.
    pub streams: usize,
    /// Short-lived channels in all.
    pub channels: usize,
    /// Client threads.
    pub threads: usize,
}

impl Size {
    /// The soak: 1,000,000 unary calls, 10,000 streams, 1,000 channels.
    pub const FULL: Size = Size {
        unary: 1_000_000,
        streams: 10_000,
        channels: 1_000,
        threads: 8,
    };
}

/// What a soak measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub unary: usize,
    pub streams: usize,
    pub cancelled: usize,
    pub channels: usize,
    pub failures: usize,
    /// The first few failures.
    pub failed: Vec<String>,
    pub rss_after_warm_up: usize,
    pub rss_at_end: usize,
    pub before: Snapshot,
    pub after: Snapshot,
    pub took: Duration,
}

impl Report {
    /// RSS at the end minus RSS after warm-up, in bytes (negative: it shrank).
    pub fn rss_drift(&self) -> i64 {
        self.rss_at_end as i64 - self.rss_after_warm_up as i64
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        writeln!(f, "soak: {:.1} s", self.took.as_secs_f64())?;
        writeln!(
            f,
            "  calls: {} unary, {} streams ({} cancelled), {} short-lived channels",
            self.unary, self.streams, self.cancelled, self.channels
        )?;
        writeln!(f, "  failures: {} {:?}", self.failures, self.failed)?;
        writeln!(
            f,
            "  rss: {:.1} MiB after warm-up, {:.1} MiB at the end (drift {:+.2} MiB)",
            mib(self.rss_after_warm_up),
            mib(self.rss_at_end),
            self.rss_drift() as f64 / (1 << 20) as f64
        )?;
        writeln!(
            f,
            "  fds: {} before, {} after; threads: {} before, {} after",
            self.before.fds, self.after.fds, self.before.threads, self.after.threads
        )?;
        write!(f, "  live after: {:?}", self.after.live)
    }
}

struct Tally {
    unary: AtomicUsize,
    streams: AtomicUsize,
    cancelled: AtomicUsize,
    channels: AtomicUsize,
    failures: AtomicUsize,
    failed: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: &str, status: &Status) {
        self.failures.fetch_add(1, Ordering::AcqRel);
        let mut failed = self.failed.lock().unwrap();
        if failed.len() < 5 {
            failed.push(format!("{what}: {status:?}"));
        }
    }
}

const SVC_BLOCKING: &str = "soak.Blocking";
const SVC_ASYNC: &str = "soak.Async";

/// The methods' (unary, server-streaming) paths, made once: `crate::path` leaks its
/// string, which is fine for a test, not for a million calls.
fn paths(svc: &str) -> (&'static str, &'static str) {
    type Paths = [(&'static str, &'static str); 2];
    static PATHS: std::sync::OnceLock<Paths> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        [SVC_BLOCKING, SVC_ASYNC]
            .map(|svc| (crate::path(svc, UNARY), crate::path(svc, SERVER_STREAM)))
    });
    paths[usize::from(svc != SVC_BLOCKING)]
}

fn unary(client: &Client, svc: &'static str, i: usize, tally: &Tally) {
    let message = format!("u{i}");
    let mut request = Request::new(crate::req(&message));
    request.set_timeout(Duration::from_secs(30));
    let path = paths(svc).0;
    match client.blocking_unary::<_, EchoResponse>(path, request) {
        Ok(reply) if reply.get_ref().message == message => {
            tally.unary.fetch_add(1, Ordering::AcqRel);
        }
        Ok(reply) => tally.fail("unary", &Status::internal(format!("{reply:?}"))),
        Err(status) => tally.fail("unary", &status),
    }
}

fn stream(client: &Client, svc: &'static str, i: usize, tally: &Tally) {
    let mut request = Request::new(EchoRequest {
        message: format!("s{i}"),
        count: 20,
        payload: vec![1; 256].into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(30));
    let path = paths(svc).1;
    let cancel = i % 4 == 0;
    let result = client
        .blocking_server_streaming::<_, EchoResponse>(path, request)
        .and_then(|response: Response<_>| {
            let mut n = 0;
            for item in response.into_inner() {
                item?;
                n += 1;
                if cancel {
                    // Dropping the stream cancels the call.
                    return Ok(n);
                }
            }
            Ok(n)
        });
    match result {
        Ok(n) if cancel && n == 1 => {
            tally.cancelled.fetch_add(1, Ordering::AcqRel);
            tally.streams.fetch_add(1, Ordering::AcqRel);
        }
        Ok(20) => {
            tally.streams.fetch_add(1, Ordering::AcqRel);
        }
        Ok(n) => tally.fail("stream", &Status::internal(format!("{n} messages"))),
        Err(status) => tally.fail("stream", &status),
    }
}

/// Runs a soak of `size`, printing progress to stderr if `verbose`.
pub fn run(size: Size, verbose: bool) -> Report {
    let _ = Runtime::global();
    let before = Snapshot::take();
    let started = Instant::now();
    let tally = Arc::new(Tally {
        unary: AtomicUsize::new(0),
        streams: AtomicUsize::new(0),
        cancelled: AtomicUsize::new(0),
        channels: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        failed: std::sync::Mutex::new(Vec::new()),
    });
    let (rss_after_warm_up, rss_at_end) = {
        let rt = Runtime::builder()
            .thread_name_prefix("soak")
            .build()
            .expect("start the soak runtime");
        let server = Server::builder()
            .runtime(&rt)
            .add_service(blocking_echo(SVC_BLOCKING, Probe::new()))
            .add_service(async_echo(SVC_ASYNC, Probe::new()))
            .bind("127.0.0.1:0")
            .expect("bind the soak server");
        let target = format!("http://{}", server.local_addr());
        let shared = Client::new(
            Channel::builder(target.as_str())
                .runtime(&rt)
                .connect_lazy()
                .expect("a channel"),
        );
        let threads = size.threads.max(1);
        // Work items: (unary calls, streams) per thread through the shared channel; the
        // short-lived channels get a tenth of the unary calls.
        let short_unary = size.unary / 10;
        let long_unary = size.unary - short_unary;
        let phase = |unary_n: usize, streams_n: usize, channels_n: usize| {
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let (tally, shared, target, rt) = (&tally, &shared, &target, &rt);
                    scope.spawn(move || {
                        let mine = |n: usize| (t..n).step_by(threads);
                        for i in mine(unary_n) {
                            let svc = if i % 2 == 0 { SVC_BLOCKING } else { SVC_ASYNC };
                            unary(shared, svc, i, tally);
                        }
                        for i in mine(streams_n) {
                            let svc = if i % 2 == 0 { SVC_BLOCKING } else { SVC_ASYNC };
                            stream(shared, svc, i, tally);
                        }
                        let per_channel = short_unary / size.channels.max(1);
                        for c in mine(channels_n) {
                            let channel = Channel::builder(target.as_str())
                                .runtime(rt)
                                .connect_lazy()
                                .expect("a channel");
                            let client = Client::new(channel);
                            for i in 0..per_channel.max(1) {
                                let svc = if (c + i) % 2 == 0 {
                                    SVC_BLOCKING
                                } else {
                                    SVC_ASYNC
                                };
                                unary(&client, svc, i, tally);
                            }
                            stream(&client, SVC_ASYNC, c, tally);
                            tally.channels.fetch_add(1, Ordering::AcqRel);
                        }
                    });
                }
            });
        };
        // Warm-up: 5 % of everything; then the rest.
        let warm = |n: usize| n / 20;
        phase(warm(long_unary), warm(size.streams), warm(size.channels));
        let rss_after_warm_up = rss();
        if verbose {
            eprintln!(
                "soak: warmed up in {:.1} s, rss {:.1} MiB",
                started.elapsed().as_secs_f64(),
                rss_after_warm_up as f64 / (1 << 20) as f64
            );
        }
        phase(
            long_unary - warm(long_unary),
            size.streams - warm(size.streams),
            size.channels - warm(size.channels),
        );
        let rss_at_end = rss();
        drop(shared);
        drop(server);
        drop(rt);
        (rss_after_warm_up, rss_at_end)
    };
    // Threads exit and sockets close asynchronously: wait (bounded) for the baseline.
    leak::eventually_within(leak::SETTLE, || {
        before.leaks_in(&Snapshot::take()).is_empty()
    });
    let after = Snapshot::take();
    Report {
        unary: tally.unary.load(Ordering::Acquire),
        streams: tally.streams.load(Ordering::Acquire),
        cancelled: tally.cancelled.load(Ordering::Acquire),
        channels: tally.channels.load(Ordering::Acquire),
        failures: tally.failures.load(Ordering::Acquire),
        failed: tally.failed.lock().unwrap().clone(),
        rss_after_warm_up,
        rss_at_end,
        before,
        after,
        took: started.elapsed(),
    }
}
