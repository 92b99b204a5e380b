//! `server-cpu [--rounds R] [--requests N] [--secs S] [--stacks tonic,cpp,async,blocking]
//! [--only TEXT] [--fixed-malloc] [--baseline PATH] [--svg PATH]`: each server as its own process,
//! measured from outside (`--only` runs the workloads whose name contains TEXT). The stacks
//! may include `async+metrics` and `blocking+metrics`: those servers with
//! [`rsgrpc::metrics::Metrics`] attached (and never read), to show what counting costs; and
//! `cpp`: gRPC C++ (`bench/cpp/echo_server.cc`, built for the run when Debian's
//! `libgrpc++-dev`, `protobuf-compiler-grpc` and `g++` are there; in the default stacks,
//! skipped with a message when they are not); `async@base` and `blocking@base`: the servers of another build of this benchmark, given
//! with `--baseline PATH` (its `rsgrpc-bench` executable, built from an earlier commit), to
//! compare two versions of rsgrpc side by side in one run.
//!
//! glibc's malloc raises its trim and mmap thresholds the first time a process frees a
//! large mmapped block; until then a workload that allocates and frees 64 KiB buffers
//! returns memory to the kernel and faults it back in over and over. Whether a server has
//! crossed that line depends on its history, and it changes the cost of the 64 KiB stream
//! by a third. The same holds for a client: a load process that downloads 64 KiB
//! messages through rsgrpc's client, whose poller frees each message's receive buffer
//! (a little over 64 KiB) after the caller has taken it, spends 17-18 µs per message or
//! 25-35 µs (6-9 page faults per message), depending on whether its allocator crossed that
//! line. `--fixed-malloc` starts every server and every load process with the same fixed
//! thresholds ([`FIXED_MALLOC`]) so that no result depends on what a process did before.
//!
//! For every round and every stack (the order rotates from round to round, so that
//! machine noise hits all stacks alike), a fresh `serve` process is started pinned to
//! core 0 (`taskset -c 0`) and put through every workload, each driven from a process
//! pinned to core 1:
//!
//! * `unary h2load`: `h2load -n N -c 1 -m 64` posting a 16-byte gRPC request (Debian's
//!   nghttp2-client), an independent HTTP/2 load generator;
//! * `unary tonic client` and `unary rsgrpc client`: 64 calls in flight for S seconds;
//! * `stream 1KiB` and `stream 64KiB`: a tonic client reading server streams for S seconds;
//! * `stream 64KiB h2load`: h2load reading server streams of [`H2LOAD_STREAM`] 64 KiB
//!   messages, one at a time, 25 streams per second of S: an independent client that
//!   spends less per message than tonic's and opens its windows wide (1 GiB), so that the
//!   server, not the client or flow control, sets the rate;
//! * `TLS unary c64 h2load` and `TLS stream 64KiB tonic`: the same over TLS (rustls with
//!   the ring provider on both stacks), against a second server process serving TLS, with
//!   each stack's TLS overhead (its TLS CPU per op over its plaintext CPU per op).
//! * `stream 64KiB rsgrpc client`: the 64 KiB download through rsgrpc's (blocking)
//!   client, whose own CPU per message (`client us/op`, from the load process's
//!   `/proc/self/stat`) compares with the tonic client's on the same server.
//!
//! For each workload it reports the server's CPU time per operation (user + system, from
//! `/proc/PID/stat`), the rate, and context switches per operation summed over the
//! server's threads (`/proc/PID/task/*/status`); medians with the min–max spread over
//! rounds, and ratios to tonic's medians. After all workloads it reads the server's peak
//! resident set (`VmHWM`), then opens 1,000 idle HTTP/2 connections to it (preface and an
//! empty SETTINGS frame each) and reports what each adds to its resident set. With
//! `--svg PATH` it also draws the CPU and peak RSS ratios to tonic's as a chart
//! (`chart.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{Stack, arg, arg_str, chart, median};

/// The fixed malloc thresholds of `--fixed-malloc`.
const FIXED_MALLOC: &str =
    "glibc.malloc.trim_threshold=8388608:glibc.malloc.mmap_threshold=8388608";

/// A server under test: a stack (`None`: gRPC C++), for rsgrpc whether it counts
/// metrics, and whether it is the baseline build's (`--baseline`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Variant {
    stack: Option<Stack>,
    metrics: bool,
    baseline: bool,
}

impl Variant {
    const CPP: Variant = Variant {
        stack: None,
        metrics: false,
        baseline: false,
    };

    fn parse(flag: &str) -> Option<Variant> {
        if flag == "cpp" {
            return Some(Variant::CPP);
        }
        let (flag, baseline) = match flag.strip_suffix("@base") {
            Some(flag) => (flag, true),
            None => (flag, false),
        };
        let (stack, metrics) = match flag.strip_suffix("+metrics") {
            Some(stack) => (stack, true),
            None => (flag, false),
        };
        let stack = Stack::parse(stack)?;
        let rsgrpc_only = metrics || baseline;
        (!rsgrpc_only || stack != Stack::Tonic).then_some(Variant {
            stack: Some(stack),
            metrics,
            baseline,
        })
    }

    fn name(self) -> String {
        let Some(stack) = self.stack else {
            return "gRPC C++".to_owned();
        };
        let mut name = stack.name().to_owned();
        if self.metrics || self.baseline {
            name = name.trim_start_matches("rsgrpc ").to_owned();
        }
        if self.metrics {
            name.push_str("+metrics");
        }
        if self.baseline {
            name.push_str(" (base)");
        }
        name
    }
}

/// Builds the gRPC C++ echo server (`bench/cpp/echo_server.cc`) into `dir` with Debian's
/// `libgrpc++-dev`, `protobuf-compiler-grpc` and `g++`; `None`, with the reason printed,
/// when they are missing or the build fails.
fn build_cpp(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |what: &str, command: &mut Command| -> Option<Vec<u8>> {
        match command.output() {
            Ok(out) if out.status.success() => Some(out.stdout),
            Ok(out) => {
                eprintln!(
                    "gRPC C++ skipped: {what} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!(
                    "gRPC C++ skipped: cannot run {what} ({e}); install Debian's libgrpc++-dev, protobuf-compiler-grpc and g++"
                );
                None
            }
        }
    };
    let flags = run(
        "pkg-config grpc++",
        Command::new("pkg-config").args(["--cflags", "--libs", "grpc++", "protobuf"]),
    )?;
    let flags = String::from_utf8_lossy(&flags).into_owned();
    run(
        "protoc with grpc_cpp_plugin",
        Command::new("protoc")
            .arg("-I")
            .arg(bench.join("../tests/proto"))
            .arg(format!("--cpp_out={}", dir.display()))
            .arg(format!("--grpc_out={}", dir.display()))
            .arg("--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin")
            .arg("echo/echo.proto"),
    )?;
    let exe = dir.join("echo_server");
    run(
        "g++",
        Command::new("g++")
            .args(["-O2", "-std=c++17", "-I"])
            .arg(dir)
            .arg(bench.join("cpp/echo_server.cc"))
            .arg(dir.join("echo/echo.pb.cc"))
            .arg(dir.join("echo/echo.grpc.pb.cc"))
            .arg("-o")
            .arg(&exe)
            .args(flags.split_whitespace()),
    )?;
    Some(exe)
}

/// One workload run against a server.
#[derive(Clone, Copy, Debug)]
enum Driver {
    /// h2load posting unary calls, 64 in flight.
    H2load,
    /// h2load reading 64 KiB server streams, one at a time.
    H2loadStream,
    Client(Stack, &'static str),
}

/// The workloads: a label, the driver, and whether it runs over TLS (against a second
/// server process of the same stack, serving TLS).
const WORKLOADS: [(&str, Driver, bool); 9] = [
    ("unary c64 h2load", Driver::H2load, false),
    (
        "unary c64 tonic client",
        Driver::Client(Stack::Tonic, "unary"),
        false,
    ),
    (
        "unary c64 rsgrpc client",
        Driver::Client(Stack::Async, "unary"),
        false,
    ),
    (
        "stream 1KiB tonic client",
        Driver::Client(Stack::Tonic, "stream1k"),
        false,
    ),
    (
        "stream 64KiB tonic client",
        Driver::Client(Stack::Tonic, "stream64k"),
        false,
    ),
    ("stream 64KiB h2load", Driver::H2loadStream, false),
    ("TLS unary c64 h2load", Driver::H2load, true),
    (
        "TLS stream 64KiB tonic",
        Driver::Client(Stack::Tonic, "stream64k"),
        true,
    ),
    (
        "stream 64KiB rsgrpc client",
        Driver::Client(Stack::Blocking, "stream64k"),
        false,
    ),
];

/// What the server spent on one workload.
#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    cpu_per_op_us: f64,
    /// The load process's CPU per operation (not for h2load).
    client_cpu_per_op_us: Option<f64>,
    rate: f64,
    switches_per_op: f64,
}

struct Server {
    child: Child,
    pid: u32,
    port: u16,
}

impl Server {
    fn start(
        variant: Variant,
        fixed_malloc: bool,
        tls: Option<&std::path::Path>,
        baseline: Option<&std::path::Path>,
        cpp: Option<&std::path::Path>,
    ) -> Server {
        let exe = match (variant.stack, variant.baseline, baseline) {
            (None, ..) => cpp.expect("the gRPC C++ server is built").to_path_buf(),
            (_, true, Some(path)) => path.to_path_buf(),
            (_, true, None) => panic!("an @base stack needs --baseline PATH"),
            (_, false, _) => std::env::current_exe().expect("own path"),
        };
        let mut command = Command::new("taskset");
        if fixed_malloc {
            command.env("GLIBC_TUNABLES", FIXED_MALLOC);
        }
        let mut child = command
            .args(["-c", "0"])
            .arg(exe)
            .args(
                variant
                    .stack
                    .map(|stack| ["serve", "--stack", stack.flag()])
                    .into_iter()
                    .flatten(),
            )
            .args(variant.metrics.then_some("--metrics"))
            .args(
                tls.map(|dir| ["--tls".as_ref(), dir.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server (is taskset installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server's port");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected server output {line:?}"));
        let pid = child.id();
        Server { child, pid, port }
    }

    /// CPU time used so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.pid.to_string())
    }

    /// Context switches so far, summed over the live threads.
    fn switches(&self) -> u64 {
        let mut total = 0;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return 0;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        total
    }

    /// Resident set now, in bytes.
    fn rss(&self) -> u64 {
        self.status_kb("VmRSS:") * 1024
    }

    /// A `kB` line of `/proc/PID/status`.
    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// Peak resident set, in bytes.
    fn peak_rss(&self) -> u64 {
        self.status_kb("VmHWM:") * 1024
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) process `pid` (or `self`) used so far, in seconds.
pub(crate) fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Messages in each server stream h2load reads (`stream 64KiB h2load`).
const H2LOAD_STREAM: u32 = 2000;

/// The requests h2load posts, in files: a unary call's and a server stream's.
struct Bodies {
    /// The gRPC prefix and an `EchoRequest` whose payload is 16 bytes.
    unary: std::path::PathBuf,
    /// An `EchoRequest` for [`H2LOAD_STREAM`] responses of 64 KiB.
    stream: std::path::PathBuf,
}

impl Bodies {
    fn write() -> Bodies {
        let unary = rsgrpc_tests::EchoRequest {
            payload: vec![b'x'; 16].into(),
            ..Default::default()
        };
        let stream = rsgrpc_tests::EchoRequest {
            count: H2LOAD_STREAM,
            response_size: 64 * 1024,
            ..Default::default()
        };
        Bodies {
            unary: h2load_body("unary", &unary),
            stream: h2load_body("stream", &stream),
        }
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.unary);
        let _ = std::fs::remove_file(&self.stream);
    }
}

/// `request` as h2load posts it (with the gRPC prefix), in a file.
fn h2load_body(name: &str, request: &rsgrpc_tests::EchoRequest) -> std::path::PathBuf {
    let message = prost::Message::encode_to_vec(request);
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let path = std::env::temp_dir().join(format!("rsgrpc-bench-{name}-{}.bin", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&body))
        .expect("write the h2load body");
    path
}

/// Runs h2load posting `body` to `method` of `test.Echo`, `in_flight` at a time;
/// returns (requests that succeeded, seconds).
fn run_h2load(
    port: u16,
    requests: u64,
    (method, body, in_flight): (&str, &std::path::Path, u32),
    tls: bool,
) -> (u64, f64) {
    let start = Instant::now();
    let output = Command::new("taskset")
        .args(["-c", "1", "h2load"])
        .args(["-n", &requests.to_string(), "-c", "1"])
        .args(["-m", &in_flight.to_string()])
        .arg("-d")
        .arg(body)
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(format!(
            "{}://127.0.0.1:{port}/test.Echo/{method}",
            if tls { "https" } else { "http" }
        ))
        .output()
        .expect("run h2load (Debian's nghttp2-client)");
    let elapsed = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    // "requests: 200000 total, 200000 started, 200000 done, 200000 succeeded, 0 failed, ..."
    let succeeded = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .and_then(|l| {
            l.split(',')
                .find(|part| part.trim().ends_with("succeeded"))
                .and_then(|part| part.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("unexpected h2load output:\n{text}"));
    // "finished in 1.95s, 102345.67 req/s, ..."
    let secs = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.trim_end_matches(',').trim_end_matches('s').parse().ok())
        .unwrap_or(elapsed);
    (succeeded, secs)
}

/// Runs a load process; returns (operations, seconds, its own CPU seconds).
fn run_client(
    port: u16,
    client: Stack,
    workload: &str,
    secs: f64,
    ca: Option<&std::path::Path>,
    fixed_malloc: bool,
) -> (u64, f64, f64) {
    let exe = std::env::current_exe().expect("own path");
    let mut command = Command::new("taskset");
    if fixed_malloc {
        command.env("GLIBC_TUNABLES", FIXED_MALLOC);
    }
    let output = command
        .args(["-c", "1"])
        .arg(exe)
        .args(["load", "--client", client.flag(), "--workload", workload])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--secs", &secs.to_string()])
        .args(
            ca.map(|ca| ["--tls".as_ref(), ca.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .output()
        .expect("run the load process");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.as_slice() {
        ["ops", ops, "secs", secs, "cpu", cpu] => (
            ops.parse().expect("ops"),
            secs.parse().expect("secs"),
            cpu.parse().expect("cpu"),
        ),
        _ => panic!(
            "unexpected load output {text:?}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn measure(
    server: &Server,
    driver: Driver,
    requests: u64,
    secs: f64,
    bodies: &Bodies,
    ca: Option<&std::path::Path>,
    fixed_malloc: bool,
) -> Measure {
    let (cpu0, sw0) = (server.cpu_secs(), server.switches());
    let (ops, elapsed, client_cpu) = match driver {
        Driver::H2load => {
            let unary = ("Unary", bodies.unary.as_path(), 64);
            let (ops, elapsed) = run_h2load(server.port, requests, unary, ca.is_some());
            (ops, elapsed, None)
        }
        Driver::H2loadStream => {
            let streams = (secs * 25.0).ceil().max(1.0) as u64;
            let stream = ("ServerStream", bodies.stream.as_path(), 1);
            let (done, elapsed) = run_h2load(server.port, streams, stream, ca.is_some());
            (done * u64::from(H2LOAD_STREAM), elapsed, None)
        }
        Driver::Client(client, workload) => {
            let (ops, elapsed, cpu) =
                run_client(server.port, client, workload, secs, ca, fixed_malloc);
            (ops, elapsed, Some(cpu))
        }
    };
    let (cpu1, sw1) = (server.cpu_secs(), server.switches());
    let ops_f = ops.max(1) as f64;
    Measure {
        cpu_per_op_us: (cpu1 - cpu0) * 1e6 / ops_f,
        client_cpu_per_op_us: client_cpu.map(|cpu| cpu * 1e6 / ops_f),
        rate: ops_f / elapsed,
        switches_per_op: sw1.saturating_sub(sw0) as f64 / ops_f,
    }
}

/// A workload's label under its bars.
fn short(label: &str) -> String {
    label
        .replace(" tonic client", " (tonic)")
        .replace(" rsgrpc client", " (rsgrpc)")
        .replace(" c64", "")
        .replace(" tonic", "")
}

/// The machine the run is on: its CPU model and core count, and the kernel.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn spread(values: &[f64], precision: usize) -> String {
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.precision$}-{hi:.precision$}")
}

pub(crate) fn main(args: &[String]) {
    let rounds = arg(args, "--rounds", 3.0) as usize;
    let requests = arg(args, "--requests", 200_000.0) as u64;
    let secs = arg(args, "--secs", 5.0);
    let mut stacks: Vec<Variant> = arg_str(args, "--stacks")
        .map(|list| list.split(',').filter_map(Variant::parse).collect())
        .unwrap_or_else(|| {
            let mut all: Vec<Variant> = Stack::ALL
                .iter()
                .map(|&stack| Variant {
                    stack: Some(stack),
                    metrics: false,
                    baseline: false,
                })
                .collect();
            all.insert(1, Variant::CPP);
            all
        });
    assert!(
        stacks.first().and_then(|v| v.stack) == Some(Stack::Tonic),
        "tonic comes first: it is the reference"
    );
    let cpp_dir = std::env::temp_dir().join(format!("rsgrpc-bench-cpp-{}", std::process::id()));
    let cpp = if stacks.contains(&Variant::CPP) {
        std::fs::create_dir_all(&cpp_dir).expect("a directory for the gRPC C++ build");
        let exe = build_cpp(&cpp_dir);
        if exe.is_none() {
            stacks.retain(|v| *v != Variant::CPP);
        }
        exe
    } else {
        None
    };
    let only = arg_str(args, "--only");
    let fixed_malloc = args.iter().any(|a| a == "--fixed-malloc");
    let baseline = arg_str(args, "--baseline").map(std::path::PathBuf::from);
    let workloads: Vec<usize> = (0..WORKLOADS.len())
        .filter(|&w| only.is_none_or(|o| WORKLOADS[w].0.contains(o)))
        .collect();
    let bodies = Bodies::write();
    // Certificates for the TLS workloads, made for this run.
    let pki_dir = std::env::temp_dir().join(format!("rsgrpc-bench-pki-{}", std::process::id()));
    std::fs::create_dir_all(&pki_dir).expect("a directory for certificates");
    rsgrpc_tests::pki::Pki::new("bench")
        .write_to(&pki_dir)
        .expect("write certificates");
    let ca = pki_dir.join("ca.pem");
    println!(
        "server-cpu: {rounds} rounds; server pinned to core 0, load to core 1; h2load -n {requests}; clients {secs} s{}",
        if fixed_malloc {
            "; fixed malloc thresholds"
        } else {
            ""
        }
    );

    // results[stack][workload] = one Measure per round; rss[stack] = one per round.
    let mut results = vec![vec![Vec::new(); WORKLOADS.len()]; stacks.len()];
    let mut rss = vec![Vec::new(); stacks.len()];
    let mut idle = vec![Vec::new(); stacks.len()];
    for round in 0..rounds {
        for k in 0..stacks.len() {
            let i = (k + round) % stacks.len();
            let stack = stacks[i];
            for tls in [false, true] {
                let mine: Vec<usize> = workloads
                    .iter()
                    .copied()
                    .filter(|&w| WORKLOADS[w].2 == tls)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let server = Server::start(
                    stack,
                    fixed_malloc,
                    tls.then_some(pki_dir.as_path()),
                    baseline.as_deref(),
                    cpp.as_deref(),
                );
                // Warm-up: connections, pools, allocator.
                let unary = ("Unary", bodies.unary.as_path(), 64);
                run_h2load(server.port, requests / 10, unary, tls);
                let ca = tls.then_some(ca.as_path());
                for w in mine {
                    let m = measure(
                        &server,
                        WORKLOADS[w].1,
                        requests,
                        secs,
                        &bodies,
                        ca,
                        fixed_malloc,
                    );
                    results[i][w].push(m);
                }
                if !tls {
                    rss[i].push(server.peak_rss() as f64 / (1024.0 * 1024.0));
                    // After the peak is read: the idle connections raise it.
                    if let Some(kb) = idle_connection_kb(&server, IDLE_CONNECTIONS) {
                        idle[i].push(kb);
                    }
                }
                server.stop();
            }
            eprintln!("round {} {} done", round + 1, stack.name());
        }
    }
    bodies.remove();
    let _ = std::fs::remove_dir_all(&pki_dir);
    let _ = std::fs::remove_dir_all(&cpp_dir);

    println!(
        "\n{:<26} {:<22} {:>10} {:>13} {:>7} {:>10} {:>15} {:>7} {:>9} {:>12}",
        "workload",
        "server",
        "CPU us/op",
        "spread",
        "vs tonic",
        "ops/s",
        "spread",
        "vs tonic",
        "csw/op",
        "client us/op"
    );
    for &w in &workloads {
        let label = WORKLOADS[w].0;
        let tonic_cpu = median(
            &mut results[0][w]
                .iter()
                .map(|m| m.cpu_per_op_us)
                .collect::<Vec<_>>(),
        );
        let tonic_rate = median(&mut results[0][w].iter().map(|m| m.rate).collect::<Vec<_>>());
        for (i, stack) in stacks.iter().enumerate() {
            let cpu: Vec<f64> = results[i][w].iter().map(|m| m.cpu_per_op_us).collect();
            let rate: Vec<f64> = results[i][w].iter().map(|m| m.rate).collect();
            let sw: Vec<f64> = results[i][w].iter().map(|m| m.switches_per_op).collect();
            let mut client: Vec<f64> = results[i][w]
                .iter()
                .filter_map(|m| m.client_cpu_per_op_us)
                .collect();
            let client = if client.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", median(&mut client))
            };
            let (cpu_med, rate_med, sw_med) = (
                median(&mut cpu.clone()),
                median(&mut rate.clone()),
                median(&mut sw.clone()),
            );
            println!(
                "{:<26} {:<22} {:>10.2} {:>13} {:>7.2}x {:>10.0} {:>15} {:>7.2}x {:>9.3} {:>12}",
                if i == 0 { label } else { "" },
                stack.name(),
                cpu_med,
                spread(&cpu, 2),
                cpu_med / tonic_cpu,
                rate_med,
                spread(&rate, 0),
                rate_med / tonic_rate,
                sw_med,
                client,
            );
        }
    }
    // What TLS costs each stack: its TLS CPU per op over its plaintext CPU per op.
    let index = |label: &str| {
        WORKLOADS
            .iter()
            .position(|w| w.0 == label)
            .expect("a workload of the table")
    };
    for (plain, tls) in [
        ("unary c64 h2load", "TLS unary c64 h2load"),
        ("stream 64KiB tonic client", "TLS stream 64KiB tonic"),
    ] {
        let (plain, tls) = (index(plain), index(tls));
        if !workloads.contains(&plain) || !workloads.contains(&tls) {
            continue;
        }
        println!(
            "\nTLS overhead ({} over {}):",
            WORKLOADS[tls].0, WORKLOADS[plain].0
        );
        for (i, stack) in stacks.iter().enumerate() {
            let cpu = |w: usize| {
                median(
                    &mut results[i][w]
                        .iter()
                        .map(|m| m.cpu_per_op_us)
                        .collect::<Vec<_>>(),
                )
            };
            println!("  {:<22} {:>6.2}x", stack.name(), cpu(tls) / cpu(plain));
        }
    }
    if let Some(path) = arg_str(args, "--svg") {
        let mut groups: Vec<String> = workloads.iter().map(|&w| short(WORKLOADS[w].0)).collect();
        let with_rss = !rss[0].is_empty();
        if with_rss {
            groups.push("peak RSS".to_owned());
        }
        let relative = |values: &[f64], reference: f64| {
            let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (!values.is_empty()).then(|| {
                (
                    median(&mut values.to_vec()) / reference,
                    lo / reference,
                    hi / reference,
                )
            })
        };
        let series: Vec<chart::Series> = stacks
            .iter()
            .enumerate()
            .map(|(i, stack)| {
                let mut bars: Vec<_> = workloads
                    .iter()
                    .map(|&w| {
                        let cpu = |k: usize| -> Vec<f64> {
                            results[k][w].iter().map(|m| m.cpu_per_op_us).collect()
                        };
                        relative(&cpu(i), median(&mut cpu(0)))
                    })
                    .collect();
                if with_rss {
                    bars.push(relative(&rss[i], median(&mut rss[0].clone())));
                }
                chart::Series {
                    name: stack.name(),
                    bars,
                }
            })
            .collect();
        let title = format!(
            "server CPU per call or message, and peak RSS, relative to tonic ({rounds} rounds)"
        );
        let footer = format!("medians, whiskers min-max; {}", machine());
        match chart::write(
            std::path::Path::new(path),
            &title,
            &footer,
            &groups,
            &series,
        ) {
            Ok(()) => println!("\nchart written to {path}"),
            Err(e) => eprintln!("cannot write the chart to {path}: {e}"),
        }
    }
    if rss.iter().all(Vec::is_empty) {
        return;
    }
    println!("\npeak server RSS after all plaintext workloads (VmHWM), MiB:");
    for (i, stack) in stacks.iter().enumerate() {
        println!(
            "  {:<22} {:>6.1}  ({})",
            stack.name(),
            median(&mut rss[i].clone()),
            spread(&rss[i], 1)
        );
    }
    if idle.iter().all(Vec::is_empty) {
        return;
    }
    println!(
        "\nserver RSS per idle HTTP/2 connection ({IDLE_CONNECTIONS} opened after the workloads), KiB:"
    );
    let tonic_idle = median(&mut idle[0].clone());
    for (i, stack) in stacks.iter().enumerate() {
        let kb = median(&mut idle[i].clone());
        println!(
            "  {:<22} {:>6.1}  ({})  {:.2}x",
            stack.name(),
            kb,
            spread(&idle[i], 1),
            kb / tonic_idle
        );
    }
}

/// How many idle connections [`idle_connection_kb`] opens.
const IDLE_CONNECTIONS: usize = 1000;

/// What `n` idle HTTP/2 connections add to the server's resident set, per connection, in
/// KiB: each sends the client preface and an empty SETTINGS frame and reads the server's
/// first frames (so that the server has set the connection up), and all stay open while
/// the resident set is read again. `None` when connections cannot be opened (a low file
/// descriptor limit).
fn idle_connection_kb(server: &Server, n: usize) -> Option<f64> {
    use std::io::Read;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let before = server.rss();
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).ok()?;
        socket.write_all(PREFACE).ok()?;
        open.push(socket);
    }
    for socket in &mut open {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        let mut buf = [0u8; 256];
        if socket.read(&mut buf).ok()? == 0 {
            return None;
        }
    }
    // What the server does after its first write (reading our SETTINGS, its ack) settles.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = server.rss();
    drop(open);
    Some(after.saturating_sub(before) as f64 / 1024.0 / n as f64)
}
