//! `load --client tonic|async|blocking --addr HOST:PORT --workload W --secs S
//! [--concurrency C] [--tls CA_PEM]`: drives an echo server from this process (over TLS,
//! trusting CA_PEM, when asked) and prints `ops N secs T` (calls, or streamed messages,
//! completed in T seconds).
//!
//! Workloads: `unary` (16-byte payload, C calls in flight, default 64), `stream1k` and
//! `stream64k` (one server-streaming call at a time, counting messages of 1 KiB or
//! 64 KiB), `upload64k` (one client-streaming call at a time, counting the 64 KiB
//! messages sent, each filled as it is sent).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::{Channel, Request, Response};
use rsgrpc_tests::tonic_echo::TonicClient;
use rsgrpc_tests::{CLIENT_STREAM, EchoRequest, EchoResponse, SERVER_STREAM, UNARY, path};

use crate::{Stack, arg, arg_str};

const SVC: &str = "test.Echo";

/// What one load run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    Unary,
    Stream(usize),
    Upload(usize),
}

impl Workload {
    pub(crate) fn parse(flag: &str) -> Option<Workload> {
        match flag {
            "unary" => Some(Workload::Unary),
            "stream1k" => Some(Workload::Stream(1024)),
            "stream64k" => Some(Workload::Stream(64 * 1024)),
            "upload64k" => Some(Workload::Upload(64 * 1024)),
            _ => None,
        }
    }
}

fn unary_request() -> EchoRequest {
    EchoRequest {
        payload: vec![b'x'; 16].into(),
        ..Default::default()
    }
}

/// How many messages an upload call sends: about 64 MiB, as a stream's.
fn upload_count(payload: usize) -> usize {
    (64 * 1024 * 1024 / payload).max(1)
}

/// One message of an upload, filled as a stream's messages are.
fn upload_request(payload: usize, i: usize) -> EchoRequest {
    EchoRequest {
        payload: vec![i as u8; payload].into(),
        ..Default::default()
    }
}

/// About 64 MiB per call, so that call set-up is a small part of the work.
fn stream_request(payload: usize) -> EchoRequest {
    EchoRequest {
        count: (64 * 1024 * 1024 / payload).max(1) as u32,
        response_size: payload as u32,
        ..Default::default()
    }
}

pub(crate) fn main(args: &[String]) {
    let client = arg_str(args, "--client")
        .and_then(Stack::parse)
        .expect("--client tonic|async|blocking");
    let addr: SocketAddr = arg_str(args, "--addr")
        .and_then(|a| a.parse().ok())
        .expect("--addr HOST:PORT");
    let workload = arg_str(args, "--workload")
        .and_then(Workload::parse)
        .expect("--workload unary|stream1k|stream64k|upload64k");
    let secs = Duration::from_secs_f64(arg(args, "--secs", 5.0));
    let concurrency = arg(args, "--concurrency", 64.0) as usize;
    let ca = arg_str(args, "--tls").map(|path| std::fs::read_to_string(path).expect("CA PEM"));
    let start = Instant::now();
    let ops = match client {
        Stack::Tonic => tonic_load(addr, workload, secs, concurrency, ca),
        Stack::Async | Stack::Blocking => {
            rsgrpc_load(client, addr, workload, secs, concurrency, ca)
        }
    };
    println!(
        "ops {ops} secs {:.6} cpu {:.6}",
        start.elapsed().as_secs_f64(),
        crate::server_cpu::cpu_secs("self")
    );
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn tonic_load(
    addr: SocketAddr,
    workload: Workload,
    secs: Duration,
    concurrency: usize,
    ca: Option<String>,
) -> u64 {
    tokio_rt().block_on(async move {
        let client = TonicClient::connect_with(addr, SVC, ca).await;
        let deadline = Instant::now() + secs;
        match workload {
            Workload::Unary => {
                let done = Arc::new(AtomicU64::new(0));
                let tasks: Vec<_> = (0..concurrency)
                    .map(|_| {
                        let mut client = client.clone();
                        let done = done.clone();
                        tokio::spawn(async move {
                            while Instant::now() < deadline {
                                let reply = client
                                    .unary(tonic::Request::new(unary_request()))
                                    .await
                                    .expect("call");
                                assert_eq!(reply.get_ref().payload.len(), 16);
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                done.load(Ordering::Relaxed)
            }
            Workload::Stream(payload) => {
                let mut n = 0;
                while Instant::now() < deadline {
                    let mut client = client.clone();
                    let mut stream = client
                        .server_stream(tonic::Request::new(stream_request(payload)))
                        .await
                        .expect("call")
                        .into_inner();
                    while let Some(m) = stream.message().await.expect("message") {
                        assert_eq!(m.payload.len(), payload);
                        n += 1;
                    }
                }
                n
            }
            Workload::Upload(payload) => {
                let mut n = 0;
                while Instant::now() < deadline {
                    let count = upload_count(payload);
                    let requests =
                        futures::stream::iter((0..count).map(move |i| upload_request(payload, i)));
                    let reply = client
                        .clone()
                        .client_stream(tonic::Request::new(requests))
                        .await
                        .expect("call");
                    assert_eq!(reply.get_ref().index as usize, count);
                    n += count as u64;
                }
                n
            }
        }
    })
}

fn rsgrpc_load(
    flavour: Stack,
    addr: SocketAddr,
    workload: Workload,
    secs: Duration,
    concurrency: usize,
    ca: Option<String>,
) -> u64 {
    let channel = match ca {
        None => Channel::new(&format!("http://{addr}")),
        Some(ca) => Channel::builder(format!("https://localhost:{}", addr.port()))
            .tls_config(
                rsgrpc::tls::ClientTlsConfig::new()
                    .ca_certificate(rsgrpc::tls::Certificate::from_pem(ca).expect("CA")),
            )
            .connect_lazy(),
    };
    let client = Client::new(channel.expect("channel"));
    let deadline = Instant::now() + secs;
    match (workload, flavour) {
        (Workload::Unary, Stack::Blocking) => {
            let stop = Arc::new(AtomicBool::new(false));
            let threads: Vec<_> = (0..concurrency)
                .map(|_| {
                    let client = client.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                            let reply: Response<EchoResponse> = client
                                .blocking_unary(path(SVC, UNARY), Request::new(unary_request()))
                                .expect("call");
                            assert_eq!(reply.get_ref().payload.len(), 16);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).sum()
        }
        (Workload::Unary, _) => tokio_rt().block_on(async move {
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let reply: Response<EchoResponse> = client
                                .unary(path(SVC, UNARY), Request::new(unary_request()))
                                .await
                                .expect("call");
                            assert_eq!(reply.get_ref().payload.len(), 16);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut total = 0;
            for task in tasks {
                total += task.await.expect("task");
            }
            total
        }),
        (Workload::Stream(payload), _) => {
            let mut n = 0;
            while Instant::now() < deadline {
                let stream = client
                    .blocking_server_streaming::<_, EchoResponse>(
                        path(SVC, SERVER_STREAM),
                        Request::new(stream_request(payload)),
                    )
                    .expect("call")
                    .into_inner();
                for m in stream {
                    assert_eq!(m.expect("message").payload.len(), payload);
                    n += 1;
                }
            }
            n
        }
        (Workload::Upload(payload), _) => {
            let mut n = 0;
            while Instant::now() < deadline {
                let count = upload_count(payload);
                let requests = (0..count).map(|i| upload_request(payload, i));
                let reply: Response<EchoResponse> = client
                    .blocking_client_streaming(path(SVC, CLIENT_STREAM), Request::new(requests))
                    .expect("call");
                assert_eq!(reply.get_ref().index as usize, count);
                n += count as u64;
            }
            n
        }
    }
}
