//! A peer in a process of its own, for the process-fault tests (`tests/tests/process.rs`),
//! which kill and stop it with signals.
//!
//! ```text
//! fault-peer server PORT blocking|async   # serves test.Echo on 127.0.0.1:PORT, prints "port N"
//! fault-peer client ADDR                  # holds a server-streaming call `wait-cancel:TAG`
//! ```
//!
//! Either runs until killed, or at most five minutes.

use std::io::Write;
use std::time::Duration;

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Request};
use rsgrpc_tests::{EchoResponse, Probe, SERVER_STREAM, async_echo, blocking_echo, path, req};

const LIFETIME: Duration = Duration::from_secs(300);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", port, flavour] => {
            let service = match flavour {
                "blocking" => blocking_echo("test.Echo", Probe::new()),
                _ => async_echo("test.Echo", Probe::new()),
            };
            let server = Server::builder()
                .add_service(service)
                .bind(format!("127.0.0.1:{port}"))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
            println!("port {}", server.local_addr().port());
            std::io::stdout().flush().unwrap();
            std::thread::sleep(LIFETIME);
        }
        ["client", addr, tag] => {
            let client = Client::new(Channel::new(&format!("http://{addr}")).unwrap());
            let response = client
                .blocking_server_streaming::<_, EchoResponse>(
                    path("test.Echo", SERVER_STREAM),
                    Request::new(req(&format!("wait-cancel:{tag}"))),
                )
                .expect("the call");
            println!("started");
            std::io::stdout().flush().unwrap();
            let _ = response.into_inner().count();
            std::thread::sleep(LIFETIME);
        }
        _ => {
            eprintln!("usage: fault-peer server PORT blocking|async | fault-peer client ADDR TAG");
            std::process::exit(2);
        }
    }
}
