//! Interop with a third real peer that shares no code with rsgrpc, tonic or grpcio:
//! `@grpc/grpc-js` on Node.js (our scripts in `examples/interop/node/` over the real
//! library, installed from npm by scripts/test.sh). Every interop case from a grpc-js client
//! against both of our server flavours and from both of our client flavours against a
//! grpc-js server (which cannot compress responses, so server_compressed_streaming checks
//! all but that), then a concurrent mix (64 calls in flight, all four kinds) for a few
//! seconds: the grpc-js client against both server flavours, and both client flavours
//! against the grpc-js server.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use interop::process::{Running, start};
use std::time::{Duration, Instant};

use futures::StreamExt;
use interop::testing::test_service_client::{TestServiceBlockingClient, TestServiceClient};
use interop::testing::{
    ResponseParameters, SimpleRequest, StreamingInputCallRequest, StreamingOutputCallRequest,
};
use rsgrpc::{Request, Status};

/// How long the mix runs, each way.
const MIX_SECONDS: u64 = 3;
/// Calls the mix keeps in flight.
const IN_FLIGHT: usize = 64;
/// The longest any node process may run before the test gives up on it.
const PROCESS_LIMIT: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn node_dir() -> PathBuf {
    workspace().join("examples/interop/node")
}

fn node() -> Command {
    let mut command = Command::new(std::env::var_os("RSGRPC_NODE").unwrap_or("node".into()));
    command.current_dir(node_dir());
    command
}

/// Starts the grpc-js server; returns it once it serves, with its port.
fn grpcjs_server() -> (Running, u16) {
    // The server prints its port once it serves; reading it is the synchronisation.
    let (running, line) = start(node().arg("server.js").arg(workspace().join("tests/proto")))
        .expect("node is on the machine; scripts/test.sh installs @grpc/grpc-js");
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the grpc-js server said {line:?} (did `npm ci` run?)"));
    (running, port)
}

/// Runs the grpc-js client with `args` to completion (killed past [`PROCESS_LIMIT`]);
/// returns whether it succeeded and what it printed.
fn grpcjs_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut child = node()
        .arg("client.js")
        .arg(workspace().join("tests/proto"))
        .args(["--server_port", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is on the machine");
    // Read both pipes on threads so a full pipe cannot stall the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > PROCESS_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = format!("{}\n{}", out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => (status.success(), report),
        None => (false, format!("killed after {PROCESS_LIMIT:?}\n{report}")),
    }
}

#[test]
fn all_cases_from_a_grpcjs_client_against_our_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", flavour).unwrap();
        let (ok, report) = grpcjs_client(server.local_addr().port(), &["--test_case", "all"]);
        assert!(
            ok && report.contains("18 passed, 0 failed"),
            "grpc-js client against our {flavour} server:\n{report}"
        );
    }
}

#[test]
fn all_cases_from_our_clients_against_a_grpcjs_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, port) = grpcjs_server();
    let channel = rsgrpc::Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut failures = Vec::new();
    for case in interop::CASES {
        let outcomes = [
            ("blocking", interop::client::run_blocking(case, &channel)),
            (
                "async",
                futures::executor::block_on(interop::client::run_async(case, &channel)),
            ),
        ];
        for (flavour, outcome) in outcomes {
            match (*case, outcome) {
                // grpc-js servers never compress responses ("response compression is
                // currently not supported", in its server code), so the case's first
                // response cannot arrive compressed: everything else about it must hold.
                // (The same for server_compressed_unary, which checks the first thing.)
                ("server_compressed_streaming", Err(why))
                    if why == "got [(31415, false), (92653, false)]" => {}
                ("server_compressed_unary", Err(why)) if why == "response compressed: false" => {}
                ("server_compressed_streaming" | "server_compressed_unary", Ok(())) => failures
                    .push(format!(
                        "{case} ({flavour} client): passed; grpc-js now compresses responses, \
                     so this test's exception for it should go"
                    )),
                (_, Ok(())) => {}
                (_, Err(why)) => failures.push(format!("{case} ({flavour} client): {why}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The counts in a mix report line such as "1059 passed, 0 failed".
fn passed_failed(report: &str) -> Option<(u64, u64)> {
    report.lines().find_map(|line| {
        let (passed, failed) = line.split_once(" passed, ")?;
        Some((
            passed.trim().parse().ok()?,
            failed.strip_suffix(" failed")?.parse().ok()?,
        ))
    })
}

#[test]
fn concurrent_mix_from_a_grpcjs_client_against_our_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", flavour).unwrap();
        let (ok, report) = grpcjs_client(
            server.local_addr().port(),
            &[
                "--test_case",
                "mix",
                "--seconds",
                &MIX_SECONDS.to_string(),
                "--in_flight",
                &IN_FLIGHT.to_string(),
            ],
        );
        let counts = passed_failed(&report);
        println!("grpc-js client mix against our {flavour} server: {counts:?} (passed, failed)");
        assert!(
            ok && matches!(counts, Some((passed, 0)) if passed >= IN_FLIGHT as u64),
            "grpc-js mix against our {flavour} server:\n{report}"
        );
    }
}

fn payload(size: usize) -> Option<interop::testing::Payload> {
    interop::payload(size as i32)
}

fn with_deadline<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    request
}

fn output_request(sizes: &[usize]) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size: size as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn body_len(p: &Option<interop::testing::Payload>) -> usize {
    p.as_ref().map_or(0, |p| p.body.len())
}

fn failed(what: &str) -> impl FnOnce(Status) -> String + '_ {
    move |s| format!("{what}: {s}")
}

/// One call of the mix, of kind `i % 4`, with its responses checked.
async fn mix_call(client: &TestServiceClient, i: usize) -> Result<(), String> {
    match i % 4 {
        0 => {
            let request = SimpleRequest {
                response_size: (i % 100) as i32,
                payload: payload(i % 50),
                ..Default::default()
            };
            let reply = client
                .unary_call(with_deadline(request))
                .await
                .map_err(failed("unary"))?;
            let got = body_len(&reply.into_inner().payload);
            (got == i % 100)
                .then_some(())
                .ok_or(format!("unary: {got} bytes"))
        }
        1 => {
            let sizes = [i % 7, 1, i % 1000];
            let mut replies = client
                .streaming_output_call(with_deadline(output_request(&sizes)))
                .await
                .map_err(failed("server streaming"))?
                .into_inner();
            let mut got = Vec::new();
            while let Some(reply) = replies
                .message()
                .await
                .map_err(failed("server streaming"))?
            {
                got.push(body_len(&reply.payload));
            }
            (got == sizes)
                .then_some(())
                .ok_or(format!("server streaming: sizes {got:?}"))
        }
        2 => {
            let sizes = [i % 13, 3, i % 500];
            let requests = futures::stream::iter(sizes.map(|size| StreamingInputCallRequest {
                payload: payload(size),
                ..Default::default()
            }));
            let reply = client
                .streaming_input_call(with_deadline(requests))
                .await
                .map_err(failed("client streaming"))?
                .into_inner();
            let want: usize = sizes.iter().sum();
            (reply.aggregated_payload_size as usize == want)
                .then_some(())
                .ok_or(format!(
                    "client streaming: {} bytes",
                    reply.aggregated_payload_size
                ))
        }
        _ => {
            let sizes = [i % 11, 2, i % 300];
            let (tx, rx) = futures::channel::mpsc::unbounded();
            tx.unbounded_send(output_request(&sizes[..1]))
                .map_err(|e| e.to_string())?;
            let mut replies = client
                .full_duplex_call(with_deadline(rx))
                .await
                .map_err(failed("bidi"))?
                .into_inner();
            for (n, &size) in sizes.iter().enumerate() {
                let reply = replies
                    .message()
                    .await
                    .map_err(failed("bidi"))?
                    .ok_or("bidi: stream ended early")?;
                if body_len(&reply.payload) != size {
                    return Err(format!("bidi: {} bytes", body_len(&reply.payload)));
                }
                if let Some(&next) = sizes.get(n + 1) {
                    tx.unbounded_send(output_request(&[next]))
                        .map_err(|e| e.to_string())?;
                }
            }
            drop(tx);
            match replies.message().await.map_err(failed("bidi"))? {
                None => Ok(()),
                Some(_) => Err("bidi: extra response".into()),
            }
        }
    }
}

#[test]
fn concurrent_mix_from_our_async_client_against_a_grpcjs_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, port) = grpcjs_server();
    let channel = rsgrpc::Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = TestServiceClient::new(channel);
    let until = Instant::now() + Duration::from_secs(MIX_SECONDS);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = |w: usize| {
        let client = &client;
        let next = &next;
        async move {
            let mut done = [0usize; 4];
            let mut failures = Vec::new();
            while Instant::now() < until && failures.len() < 10 {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 4 + w % 4;
                match mix_call(client, i).await {
                    Ok(()) => done[i % 4] += 1,
                    Err(why) => failures.push(format!("call {i}: {why}")),
                }
            }
            (done, failures)
        }
    };
    let results = futures::executor::block_on(
        futures::stream::iter(0..IN_FLIGHT)
            .map(worker)
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>(),
    );
    let mut done = [0usize; 4];
    let mut failures = Vec::new();
    for (d, f) in results {
        for k in 0..4 {
            done[k] += d[k];
        }
        failures.extend(f);
    }
    println!(
        "async client mix, {IN_FLIGHT} in flight for {MIX_SECONDS} s: {done:?} (unary, server, client, bidi), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        done.iter().all(|&n| n > 0),
        "every kind of call ran: {done:?}"
    );
}

/// One call of the mix with the blocking client, as [`mix_call`].
fn blocking_mix_call(client: &TestServiceBlockingClient, i: usize) -> Result<(), String> {
    match i % 4 {
        0 => {
            let request = SimpleRequest {
                response_size: (i % 100) as i32,
                payload: payload(i % 50),
                ..Default::default()
            };
            let reply = client
                .unary_call(with_deadline(request))
                .map_err(failed("unary"))?;
            let got = body_len(&reply.into_inner().payload);
            (got == i % 100)
                .then_some(())
                .ok_or(format!("unary: {got} bytes"))
        }
        1 => {
            let sizes = [i % 7, 1, i % 1000];
            let mut replies = client
                .streaming_output_call(with_deadline(output_request(&sizes)))
                .map_err(failed("server streaming"))?
                .into_inner();
            let mut got = Vec::new();
            while let Some(reply) = replies.recv().map_err(failed("server streaming"))? {
                got.push(body_len(&reply.payload));
            }
            (got == sizes)
                .then_some(())
                .ok_or(format!("server streaming: sizes {got:?}"))
        }
        2 => {
            let sizes = [i % 13, 3, i % 500];
            let requests = sizes.map(|size| StreamingInputCallRequest {
                payload: payload(size),
                ..Default::default()
            });
            let reply = client
                .streaming_input_call(with_deadline(requests))
                .map_err(failed("client streaming"))?
                .into_inner();
            let want: usize = sizes.iter().sum();
            (reply.aggregated_payload_size as usize == want)
                .then_some(())
                .ok_or(format!(
                    "client streaming: {} bytes",
                    reply.aggregated_payload_size
                ))
        }
        _ => {
            let sizes = [i % 11, 2, i % 300];
            let (mut sender, mut replies) = client
                .full_duplex_call_with(with_deadline(()))
                .map_err(failed("bidi"))?;
            for &size in &sizes {
                sender
                    .send(output_request(&[size]))
                    .map_err(failed("bidi"))?;
                let reply = replies
                    .recv()
                    .map_err(failed("bidi"))?
                    .ok_or("bidi: stream ended early")?;
                if body_len(&reply.payload) != size {
                    return Err(format!("bidi: {} bytes", body_len(&reply.payload)));
                }
            }
            sender.finish();
            match replies.recv().map_err(failed("bidi"))? {
                None => Ok(()),
                Some(_) => Err("bidi: extra response".into()),
            }
        }
    }
}

#[test]
fn concurrent_mix_from_our_blocking_client_against_a_grpcjs_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, port) = grpcjs_server();
    let channel = rsgrpc::Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = TestServiceBlockingClient::new(channel);
    let until = Instant::now() + Duration::from_secs(MIX_SECONDS);
    // One thread per call in flight, a quarter of them on each kind.
    let results: Vec<([usize; 4], Vec<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|w| {
                let client = &client;
                scope.spawn(move || {
                    let mut done = [0usize; 4];
                    let mut failures = Vec::new();
                    let mut n = 0;
                    while Instant::now() < until && failures.len() < 10 {
                        let i = n * IN_FLIGHT + w;
                        n += 1;
                        match blocking_mix_call(client, i) {
                            Ok(()) => done[i % 4] += 1,
                            Err(why) => failures.push(format!("call {i}: {why}")),
                        }
                    }
                    (done, failures)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut done = [0usize; 4];
    let mut failures = Vec::new();
    for (d, f) in results {
        for k in 0..4 {
            done[k] += d[k];
        }
        failures.extend(f);
    }
    println!(
        "blocking client mix, {IN_FLIGHT} in flight for {MIX_SECONDS} s: {done:?} (unary, server, client, bidi), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        done.iter().all(|&n| n > 0),
        "every kind of call ran: {done:?}"
    );
}
