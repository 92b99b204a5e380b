//! Side-by-side benchmark of rsgrpc (async and blocking) and tonic.
//!
//! ```text
//! cargo run --release -p rsgrpc-bench                      # in one process (see inprocess.rs)
//! cargo run --release -p rsgrpc-bench -- server-cpu        # each server as its own process
//! cargo run --release -p rsgrpc-bench -- soak              # the reliability soak
//! ```
//!
//! `soak` runs `rsgrpc_tests::soak` at full size (1,000,000 unary calls, 10,000 streams,
//! 1,000 short-lived channels; `--unary N --streams N --channels N --threads N` change
//! it), prints what it measured and exits non-zero on a failure, an RSS drift of 10 MB or
//! more, or threads, file descriptors or live calls not back to their baseline.
//!
//! `server-cpu` measures each server the way an operator would: the server runs alone in
//! its own process pinned to one core, load comes from another process pinned to another
//! core (h2load, a tonic client, or rsgrpc's own client), and the figure reported is the
//! server's CPU time per RPC (from `/proc/PID/stat`), which is stable on a noisy machine
//! where rates are not; rates and context switches per RPC are reported beside it. See
//! `server_cpu.rs` for the workloads and the method.
//!
//! The other subcommands are its building blocks: `serve --stack S` runs one server and
//! prints its port; `load --client C --addr A --workload W --secs S` drives it and prints
//! what it did.

mod chart;
mod inprocess;
mod load;
mod serve;
mod server_cpu;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve::main(&args[1..]),
        Some("load") => load::main(&args[1..]),
        Some("server-cpu") => server_cpu::main(&args[1..]),
        Some("in-process") => inprocess::main(&args[1..]),
        Some("soak") => soak(&args[1..]),
        _ => inprocess::main(&args),
    }
}

/// The soak (see the crate docs).
fn soak(args: &[String]) {
    use rsgrpc_tests::soak::{self, Size};
    let full = Size::FULL;
    let size = Size {
        unary: arg(args, "--unary", full.unary as f64) as usize,
        streams: arg(args, "--streams", full.streams as f64) as usize,
        channels: arg(args, "--channels", full.channels as f64) as usize,
        threads: arg(args, "--threads", full.threads as f64) as usize,
    };
    eprintln!("soak: {size:?}");
    let report = soak::run(size, true);
    println!("{report}");
    let leaks = report.before.leaks_in(&report.after);
    let drift_ok = report.rss_drift() < 10_000_000;
    if report.failures > 0 || !leaks.is_empty() || !drift_ok {
        println!("soak FAILED: leaks {leaks:?}, rss drift within bound: {drift_ok}");
        std::process::exit(1);
    }
    println!("soak passed");
}

/// The value after `name` on the command line, parsed, or `default`.
fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The text after `name` on the command line.
fn arg_str<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[values.len() / 2]
}

/// The servers and clients being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Tonic,
    Async,
    Blocking,
}

impl Stack {
    const ALL: [Stack; 3] = [Stack::Tonic, Stack::Async, Stack::Blocking];

    fn flag(self) -> &'static str {
        match self {
            Stack::Tonic => "tonic",
            Stack::Async => "async",
            Stack::Blocking => "blocking",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stack::Tonic => "tonic",
            Stack::Async => "rsgrpc async",
            Stack::Blocking => "rsgrpc blocking",
        }
    }

    fn parse(flag: &str) -> Option<Stack> {
        Stack::ALL.into_iter().find(|s| s.flag() == flag)
    }
}
