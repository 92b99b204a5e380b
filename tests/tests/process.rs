//! Process faults: a server killed with SIGKILL in the middle of a stream and restarted
//! on the same port, and a client stopped with SIGSTOP, whose connection the server's
//! keepalive closes. The other process is `fault-peer` (`tests/src/bin/fault-peer.rs`).
//!
//! Every test runs under the leak check (`rsgrpc_tests::leak`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rsgrpc::client::Client;
use rsgrpc::server::Server;
use rsgrpc::{Channel, Code, Request, Response, Runtime};
use rsgrpc_tests::{
    EchoResponse, Probe, SERVER_STREAM, UNARY, async_echo, blocking_echo, leak, path, req,
};

const WAIT: Duration = Duration::from_secs(20);

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Peer(Child);

impl Peer {
    fn start(args: &[&str]) -> (Peer, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fault-peer"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fault-peer");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        (Peer(child), line.trim().to_owned())
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_server_killed_mid_stream_fails_the_stream_and_its_restart_serves_again() {
    let _leaks = leak::check();
    for flavour in ["blocking", "async"] {
        let (server, line) = Peer::start(&["server", "0", flavour]);
        let port = line.strip_prefix("port ").expect("the port").to_owned();
        let rt = Runtime::builder()
            .thread_name_prefix("process")
            .build()
            .unwrap();
        let channel = Channel::builder(format!("http://127.0.0.1:{port}"))
            .runtime(&rt)
            .backoff(Duration::from_millis(20), Duration::from_millis(300))
            .connect_lazy()
            .unwrap();
        let client = Client::new(channel);
        let mut request = Request::new(req("wait-cancel:killed"));
        request.set_timeout(WAIT);
        let stream = client
            .blocking_server_streaming::<_, EchoResponse>(path("test.Echo", SERVER_STREAM), request)
            .expect("the stream starts")
            .into_inner();
        let started = Instant::now();
        drop(server); // SIGKILL, then reaped
        let rest: Result<Vec<_>, _> = stream.collect();
        let code = rest.as_ref().err().map(|s| s.code());
        assert_eq!(code, Some(Code::Unavailable), "{flavour}: {rest:?}");
        assert!(
            started.elapsed() < WAIT,
            "{flavour}: {:?}",
            started.elapsed()
        );

        // While the server is down, calls fail fast with UNAVAILABLE.
        let mut request = Request::new(req("down"));
        request.set_timeout(WAIT);
        let down = client.blocking_unary::<_, EchoResponse>(path("test.Echo", UNARY), request);
        assert_eq!(
            down.err().map(|s| s.code()),
            Some(Code::Unavailable),
            "{flavour}"
        );

        // Restarted on the same port: after backoff, calls succeed again.
        let (_restarted, line) = Peer::start(&["server", &port, flavour]);
        assert_eq!(line, format!("port {port}"));
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            let mut request = Request::new(req("back"));
            request.set_timeout(WAIT);
            match client.blocking_unary::<_, EchoResponse>(path("test.Echo", UNARY), request) {
                Ok(reply) => {
                    assert_eq!(reply.get_ref().message, "back");
                    last = None;
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{flavour}: {status:?}");
                    last = Some(status);
                    // Bounded: the loop ends at the deadline; the channel backs off.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        assert!(last.is_none(), "{flavour}: never served again: {last:?}");
        drop(client);
        drop(rt);
    }
}

#[test]
fn a_stopped_client_is_closed_by_keepalive_and_its_handler_cancelled() {
    let _leaks = leak::check();
    for flavour in ["blocking", "async"] {
        let rt = Runtime::builder()
            .thread_name_prefix("process")
            .build()
            .unwrap();
        let probe = Probe::new();
        let service = match flavour {
            "blocking" => blocking_echo("test.Echo", probe.clone()),
            _ => async_echo("test.Echo", probe.clone()),
        };
        let server = Server::builder()
            .runtime(&rt)
            .keepalive_time(Duration::from_millis(200))
            .keepalive_timeout(Duration::from_millis(500))
            .add_service(service)
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = server.local_addr().to_string();
        let (client, line) = Peer::start(&["client", &addr, "stopped"]);
        assert_eq!(line, "started", "{flavour}");
        assert_eq!(server.active_calls(), 1, "{flavour}");
        let stopped = Instant::now();
        client.signal("-STOP");
        assert!(
            probe.wait("stopped", WAIT),
            "{flavour}: the handler never saw its call cancelled"
        );
        assert!(
            leak::eventually_within(WAIT, || server.open_connections() == 0),
            "{flavour}: the stopped client's connection is still open"
        );
        // Keepalive: a ping after 200 ms quiet, 500 ms for its answer; generous bound.
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "{:?}",
            stopped.elapsed()
        );
        drop(client); // SIGKILL works on a stopped process
        drop(server);
        drop(rt);
    }
}

/// The fault-peer binary answers, as a check on the harness itself.
#[test]
fn the_fault_peer_serves() {
    let _leaks = leak::check();
    let (_server, line) = Peer::start(&["server", "0", "async"]);
    let port = line.strip_prefix("port ").expect("the port");
    let client = Client::new(Channel::new(&format!("http://127.0.0.1:{port}")).unwrap());
    let reply: Response<EchoResponse> = client
        .blocking_unary(path("test.Echo", UNARY), Request::new(req("hello")))
        .unwrap();
    assert_eq!(reply.get_ref().message, "hello");
}
