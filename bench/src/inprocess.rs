//! The in-process mode: rsgrpc async, rsgrpc blocking and tonic, clients and servers in
//! one process, over loopback.
//!
//! ```text
//! cargo run --release -p rsgrpc-bench -- [in-process] [--secs S] [--rounds R] [--pollers N] [--only TEXT]
//! ```
//!
//! `--pollers` sets rsgrpc's poller threads (default 1); `--only` runs the scenarios whose
//! label contains TEXT.
//!
//! For every scenario each stack is measured `R` times (default 5), in interleaved order so
//! that machine noise hits all stacks alike; the table shows the median rate, its spread
//! (min–max over rounds), latency percentiles over all rounds, and the ratio of the median
//! to tonic's.
//!
//! * unary: 16 B and 1 KiB payloads echoed, 1 and 64 calls in flight;
//! * server streaming: one call streaming 1 KiB messages, messages per second.
//!
//! Each stack runs client and server in this process, but with separate threads as two
//! processes would have: tonic's server and client each get a 2-worker tokio runtime;
//! rsgrpc's server and client each get their own rsgrpc `Runtime` (default settings unless
//! `--pollers` says otherwise). rsgrpc async clients run as tasks on a 2-worker tokio
//! runtime (as a user's would); blocking clients are one thread per call in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle};
use rsgrpc::{Channel, Request, Response};
use rsgrpc_tests::tonic_echo::{TonicClient, TonicServer};
use rsgrpc_tests::{
    EchoRequest, EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo, path,
};

use crate::{Stack, arg, median};

const SVC: &str = "test.Echo";

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Unary { payload: usize, concurrency: usize },
    ServerStreaming { payload: usize },
}

impl Scenario {
    fn label(self) -> String {
        match self {
            Scenario::Unary {
                payload,
                concurrency,
            } => format!("unary {} c={concurrency}", size(payload)),
            Scenario::ServerStreaming { payload } => {
                format!("server-stream {} msgs", size(payload))
            }
        }
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

/// One measurement: operations completed in `elapsed`, and per-call latencies.
struct Sample {
    ops: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Everything needed to run calls against one stack.
struct Target {
    _our_server: Option<ServerHandle>,
    _tonic_server: Option<TonicServer>,
    our_client: Option<Client>,
    tonic_addr: Option<std::net::SocketAddr>,
    client_rt: tokio::runtime::Runtime,
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn start(stack: Stack, server_rt: &rsgrpc::Runtime, client_rt: &rsgrpc::Runtime) -> Target {
    match stack {
        Stack::Tonic => {
            let server = TonicServer::start();
            Target {
                tonic_addr: Some(server.addr),
                _tonic_server: Some(server),
                _our_server: None,
                our_client: None,
                client_rt: tokio_rt(),
            }
        }
        Stack::Async | Stack::Blocking => {
            let probe = Probe::new();
            let service = if stack == Stack::Async {
                async_echo(SVC, probe)
            } else {
                blocking_echo(SVC, probe)
            };
            let server = Server::builder()
                .runtime(server_rt)
                .add_service(service)
                .bind("127.0.0.1:0")
                .expect("bind");
            let channel = Channel::builder(format!("http://{}", server.local_addr()))
                .runtime(client_rt)
                .connect_lazy()
                .expect("channel");
            Target {
                our_client: Some(Client::new(channel)),
                _our_server: Some(server),
                _tonic_server: None,
                tonic_addr: None,
                client_rt: tokio_rt(),
            }
        }
    }
}

fn unary_request(payload: usize) -> EchoRequest {
    EchoRequest {
        message: String::new(),
        payload: vec![b'x'; payload].into(),
        ..Default::default()
    }
}

fn run(stack: Stack, target: &Target, scenario: Scenario, secs: f64) -> Sample {
    let duration = Duration::from_secs_f64(secs);
    match scenario {
        Scenario::Unary {
            payload,
            concurrency,
        } => match stack {
            Stack::Blocking => blocking_unary(target, payload, concurrency, duration),
            Stack::Async => async_unary(target, payload, concurrency, duration),
            Stack::Tonic => tonic_unary(target, payload, concurrency, duration),
        },
        Scenario::ServerStreaming { payload } => streaming(stack, target, payload, duration),
    }
}

fn blocking_unary(
    target: &Target,
    payload: usize,
    concurrency: usize,
    duration: Duration,
) -> Sample {
    let client = target.our_client.clone().expect("client");
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let reply: Response<EchoResponse> = client
                        .blocking_unary(path(SVC, UNARY), Request::new(unary_request(payload)))
                        .expect("call");
                    assert_eq!(reply.get_ref().payload.len(), payload);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    Sample {
        ops: latencies.len() as u64,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn async_unary(target: &Target, payload: usize, concurrency: usize, duration: Duration) -> Sample {
    let client = target.our_client.clone().expect("client");
    target.client_rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let client = client.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let reply: Response<EchoResponse> = client
                            .unary(path(SVC, UNARY), Request::new(unary_request(payload)))
                            .await
                            .expect("call");
                        assert_eq!(reply.get_ref().payload.len(), payload);
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("task"));
        }
        Sample {
            ops: latencies.len() as u64,
            elapsed: start.elapsed(),
            latencies,
        }
    })
}

fn tonic_unary(target: &Target, payload: usize, concurrency: usize, duration: Duration) -> Sample {
    let addr = target.tonic_addr.expect("tonic address");
    target.client_rt.block_on(async move {
        let client = TonicClient::connect(addr, SVC).await;
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let mut client = client.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let reply = client
                            .unary(tonic::Request::new(unary_request(payload)))
                            .await
                            .expect("call");
                        assert_eq!(reply.get_ref().payload.len(), payload);
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.expect("task"));
        }
        Sample {
            ops: latencies.len() as u64,
            elapsed: start.elapsed(),
            latencies,
        }
    })
}

/// Messages per call in the streaming scenario; calls repeat until the time is up.
const STREAM_LEN: u32 = 20_000;

fn stream_request(payload: usize) -> EchoRequest {
    EchoRequest {
        message: String::new(),
        count: STREAM_LEN,
        response_size: payload as u32,
        ..Default::default()
    }
}

fn streaming(stack: Stack, target: &Target, payload: usize, duration: Duration) -> Sample {
    let start = Instant::now();
    let mut ops = 0u64;
    let mut latencies = Vec::new();
    while start.elapsed() < duration {
        let t = Instant::now();
        let n = match stack {
            Stack::Blocking => {
                let client = target.our_client.as_ref().expect("client");
                let stream = client
                    .blocking_server_streaming::<_, EchoResponse>(
                        path(SVC, SERVER_STREAM),
                        Request::new(stream_request(payload)),
                    )
                    .expect("call")
                    .into_inner();
                stream.inspect(|m| assert!(m.is_ok(), "{m:?}")).count() as u64
            }
            Stack::Async => {
                let client = target.our_client.clone().expect("client");
                target.client_rt.block_on(async move {
                    let mut stream = client
                        .server_streaming::<_, EchoResponse>(
                            path(SVC, SERVER_STREAM),
                            Request::new(stream_request(payload)),
                        )
                        .await
                        .expect("call")
                        .into_inner();
                    let mut n = 0;
                    while stream.message().await.expect("message").is_some() {
                        n += 1;
                    }
                    n
                })
            }
            Stack::Tonic => {
                let addr = target.tonic_addr.expect("tonic address");
                target.client_rt.block_on(async move {
                    let mut client = TonicClient::connect(addr, SVC).await;
                    let mut stream = client
                        .server_stream(tonic::Request::new(stream_request(payload)))
                        .await
                        .expect("call")
                        .into_inner();
                    let mut n = 0;
                    while stream.message().await.expect("message").is_some() {
                        n += 1;
                    }
                    n
                })
            }
        };
        assert_eq!(n, u64::from(STREAM_LEN));
        ops += n;
        latencies.push(t.elapsed());
    }
    Sample {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub(crate) fn main(args: &[String]) {
    let secs = arg(args, "--secs", 2.0);
    let rounds = arg(args, "--rounds", 5.0) as usize;
    // `--stack tonic|async|blocking` measures one stack alone (for profiling).
    let stacks: Vec<Stack> = match args
        .iter()
        .position(|a| a == "--stack")
        .and_then(|i| args.get(i + 1))
    {
        Some(name) => [Stack::Tonic, Stack::Async, Stack::Blocking]
            .into_iter()
            .filter(|s| s.name().ends_with(name.as_str()))
            .collect(),
        None => vec![Stack::Tonic, Stack::Async, Stack::Blocking],
    };
    let scenarios = [
        Scenario::Unary {
            payload: 16,
            concurrency: 1,
        },
        Scenario::Unary {
            payload: 16,
            concurrency: 64,
        },
        Scenario::Unary {
            payload: 1024,
            concurrency: 1,
        },
        Scenario::Unary {
            payload: 1024,
            concurrency: 64,
        },
        Scenario::ServerStreaming { payload: 1024 },
    ];
    println!(
        "rsgrpc-bench: {rounds} rounds x {secs} s per scenario and stack, {} CPUs, {} rsgrpc poller threads",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        arg(args, "--pollers", 1.0)
    );
    let pollers = arg(args, "--pollers", 1.0) as usize;
    let runtime = |name: &str| {
        rsgrpc::Runtime::builder()
            .thread_name_prefix(name)
            .poller_threads(pollers)
            .build()
            .expect("rsgrpc runtime")
    };
    let (server_rt, client_rt) = (runtime("server"), runtime("client"));
    let targets: Vec<Target> = stacks
        .iter()
        .map(|s| start(*s, &server_rt, &client_rt))
        .collect();
    // Warm up connections and pools.
    for (stack, target) in stacks.iter().zip(&targets) {
        run(*stack, target, scenarios[0], 0.3);
    }

    println!(
        "\n{:<24} {:<16} {:>12} {:>21} {:>10} {:>10} {:>9}",
        "scenario", "stack", "median/s", "spread (min-max)", "p50", "p99", "vs tonic"
    );
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for scenario in scenarios {
        if only
            .as_ref()
            .is_some_and(|o| !scenario.label().contains(o.as_str()))
        {
            continue;
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); stacks.len()];
        let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); stacks.len()];
        for _ in 0..rounds {
            for (i, (stack, target)) in stacks.iter().zip(&targets).enumerate() {
                let sample = run(*stack, target, scenario, secs);
                rates[i].push(sample.rate());
                latencies[i].extend(sample.latencies);
            }
        }
        let tonic_median = median(&mut rates[0].clone());
        for (i, stack) in stacks.iter().enumerate() {
            let mut r = rates[i].clone();
            let med = median(&mut r);
            let (lo, hi) = (r[0], r[r.len() - 1]);
            latencies[i].sort();
            let (p50, p99) = (
                percentile(&latencies[i], 0.5),
                percentile(&latencies[i], 0.99),
            );
            let is_stream = matches!(scenario, Scenario::ServerStreaming { .. });
            println!(
                "{:<24} {:<16} {:>12.0} {:>21} {:>10} {:>10} {:>8.2}x",
                if i == 0 {
                    scenario.label()
                } else {
                    String::new()
                },
                stack.name(),
                med,
                format!("{lo:.0}-{hi:.0}"),
                if is_stream {
                    "-".to_owned()
                } else {
                    format!("{:.0}us", p50.as_secs_f64() * 1e6)
                },
                if is_stream {
                    "-".to_owned()
                } else {
                    format!("{:.0}us", p99.as_secs_f64() * 1e6)
                },
                med / tonic_median,
            );
        }
    }
}
