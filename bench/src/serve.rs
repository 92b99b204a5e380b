//! `serve --stack tonic|async|blocking [--tls DIR] [--metrics]`: one echo server in this
//! process, on 127.0.0.1 with a port chosen by the OS, printed as `listening PORT`, over
//! TLS with `DIR/server.pem` and `DIR/server.key` when asked, counting its calls in
//! [`rsgrpc::metrics::Metrics`] that nobody reads with `--metrics` (rsgrpc only). It
//! serves until its stdin is closed.
//!
//! Each server runs with the settings a user gets by default, except tonic's tokio runtime,
//! which gets one worker thread: the server is measured pinned to one core, where more
//! workers would only take turns.

use std::io::{Read, Write};

use rsgrpc::server::Server;
use rsgrpc_tests::tonic_echo::TonicServer;
use rsgrpc_tests::{Probe, async_echo, blocking_echo};

use crate::{Stack, arg_str};

pub(crate) fn main(args: &[String]) {
    let stack = arg_str(args, "--stack")
        .and_then(Stack::parse)
        .expect("--stack tonic|async|blocking");
    // `--tls DIR`: serve over TLS with DIR/server.pem and DIR/server.key.
    let tls = arg_str(args, "--tls").map(|dir| {
        let dir = std::path::Path::new(dir);
        (
            std::fs::read_to_string(dir.join("server.pem")).expect("server.pem"),
            std::fs::read_to_string(dir.join("server.key")).expect("server.key"),
        )
    });
    let guard: Box<dyn std::any::Any> = match stack {
        Stack::Tonic => {
            let workers = crate::arg(args, "--tonic-workers", 0.0) as usize;
            // Uncompressed responses, as every server here sends by default.
            let server = TonicServer::start_uncompressed(workers, tls);
            announce(server.addr.port());
            Box::new(server)
        }
        Stack::Async | Stack::Blocking => {
            let service = if stack == Stack::Async {
                async_echo("test.Echo", Probe::new())
            } else {
                blocking_echo("test.Echo", Probe::new())
            };
            let mut builder = Server::builder().add_service(service);
            if args.iter().any(|a| a == "--metrics") {
                builder = builder.metrics(&rsgrpc::metrics::Metrics::new());
            }
            if let Some((cert, key)) = tls {
                let identity = rsgrpc::tls::Identity::from_pem(cert, key).expect("identity");
                builder = builder.tls_config(rsgrpc::tls::ServerTlsConfig::new(identity));
            }
            let server = builder.bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            announce(server.local_addr().port());
            Box::new(server)
        }
    };
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(guard);
}

fn announce(port: u16) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {port}").expect("stdout");
    out.flush().expect("stdout");
}
