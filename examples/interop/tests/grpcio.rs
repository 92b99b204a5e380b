//! Every interop case between rsgrpc and Python grpcio (our own scripts over the real grpcio
//! library, from the virtualenv scripts/test.sh sets up): both of our client flavours
//! against a grpcio server, and a grpcio client against both of our server flavours.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use interop::process::{Running, interop_server, start};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("RSGRPC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"))
}

/// The grpcio server process, killed when dropped.
struct PythonServer {
    child: Child,
    port: u16,
}

impl PythonServer {
    fn start() -> PythonServer {
        let root = workspace();
        let python = python();
        let mut child = Command::new(&python)
            .arg(root.join("examples/interop/python/grpcio_server.py"))
            .arg(root.join("tests/proto"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); scripts/test.sh installs grpcio",
                    python.display()
                )
            });
        // The server prints its port once it serves; reading it is the synchronisation.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the grpcio server said {line:?}"));
        PythonServer { child, port }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn all_cases_from_our_clients_against_a_grpcio_server() {
    let _leaks = rsgrpc_tests::leak::check();
    let server = PythonServer::start();
    let channel = rsgrpc::Channel::new(&format!("http://127.0.0.1:{}", server.port)).unwrap();
    let mut failures = Vec::new();
    for case in interop::CASES {
        if let Err(why) = interop::client::run_blocking(case, &channel) {
            failures.push(format!("{case} (blocking client): {why}"));
        }
        if let Err(why) = futures::executor::block_on(interop::client::run_async(case, &channel)) {
            failures.push(format!("{case} (async client): {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_cases_from_a_grpcio_client_against_our_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    let root = workspace();
    for flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", flavour).unwrap();
        let output = Command::new(python())
            .arg(root.join("examples/interop/python/grpcio_client.py"))
            .arg(root.join("tests/proto"))
            .arg("--server_port")
            .arg(server.local_addr().port().to_string())
            .output()
            .expect("scripts/test.sh installs grpcio into .venv");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains("18 passed, 0 failed"),
            "grpcio client against our {flavour} server:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The compression cases with deflate, grpcio's other encoding, both ways: a grpcio client
/// compressing with deflate against our servers compressing with deflate (which check that
/// requests asked to arrive compressed did), and our clients against a grpcio server
/// compressing with deflate.
#[test]
fn deflate_both_ways_with_grpcio() {
    let _leaks = rsgrpc_tests::leak::check();
    let root = workspace();
    for flavour in ["async", "blocking"] {
        let (server, _health) = interop::server::serve_with(&interop::server::ServeOptions {
            addr: "127.0.0.1:0".into(),
            flavour: flavour.into(),
            compression: Some(rsgrpc::CompressionEncoding::Deflate),
            ..Default::default()
        })
        .unwrap();
        let output = Command::new(python())
            .arg(root.join("examples/interop/python/grpcio_client.py"))
            .arg(root.join("tests/proto"))
            .args(["--server_port", &server.local_addr().port().to_string()])
            .args(["--compression", "deflate", "--test_case"])
            .arg(COMPRESSED_CASES.join(","))
            .output()
            .expect("scripts/test.sh installs grpcio into .venv");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains("4 passed, 0 failed"),
            "grpcio client (deflate) against our {flavour} server:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let (_server, port) = grpcio_server(&["--compression".as_ref(), "deflate".as_ref()]);
    let target = format!("http://127.0.0.1:{port}");
    // The server-compressed cases check that responses asked to be compressed arrived
    // compressed: grpcio compresses them with deflate, as the only encoding it was given.
    let channel = rsgrpc::Channel::new(&target).unwrap();
    let mut failures = Vec::new();
    for case in ["server_compressed_unary", "server_compressed_streaming"] {
        if let Err(why) = interop::client::run_blocking(case, &channel) {
            failures.push(format!("{case} (blocking client): {why}"));
        }
        if let Err(why) = futures::executor::block_on(interop::client::run_async(case, &channel)) {
            failures.push(format!("{case} (async client): {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Requests compressed with deflate are read by grpcio.
    let channel = rsgrpc::Channel::builder(target)
        .send_compressed(rsgrpc::CompressionEncoding::Deflate)
        .connect_lazy()
        .unwrap();
    let client = interop::testing::test_service_client::TestServiceBlockingClient::new(channel);
    let request = interop::testing::SimpleRequest {
        response_size: 1000,
        payload: interop::payload(50_000),
        ..Default::default()
    };
    let reply = client.unary_call(request).unwrap().into_inner();
    assert_eq!(reply.payload.unwrap().body.len(), 1000);
}

const COMPRESSED_CASES: [&str; 4] = [
    "client_compressed_unary",
    "server_compressed_unary",
    "client_compressed_streaming",
    "server_compressed_streaming",
];

// ---------------------------------------------------------------------------------------
// The interop binaries over TLS and Unix sockets, against grpcio in both directions.

/// A fresh directory for PEM files and sockets.
fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rsgrpc-interop-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a grpcio server with extra arguments; returns it and its port.
fn grpcio_server(args: &[&std::ffi::OsStr]) -> (Running, u16) {
    let root = workspace();
    let (running, line) = start(
        Command::new(python())
            .arg(root.join("examples/interop/python/grpcio_server.py"))
            .arg(root.join("tests/proto"))
            .args(args),
    )
    .expect("scripts/test.sh installs grpcio into .venv");
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the grpcio server said {line:?}"));
    (running, port)
}

/// Starts our interop-server binary; returns it once it listens.
fn our_server(args: &[&std::ffi::OsStr]) -> (Running, String) {
    interop_server(env!("CARGO_BIN_EXE_interop-server"), args)
}

/// Runs every case with our interop-client binary; the report must say all passed.
fn our_client(args: &[&std::ffi::OsStr], what: &str) {
    for flavour in ["blocking", "async"] {
        let output = Command::new(env!("CARGO_BIN_EXE_interop-client"))
            .args(args)
            .args(["--flavour", flavour, "--test_case", "all"])
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains(" passed, 0 failed"),
            "our {flavour} interop-client {what}:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs every case with the grpcio client; the report must say all passed.
fn grpcio_client(args: &[&std::ffi::OsStr], what: &str) {
    let root = workspace();
    let output = Command::new(python())
        .arg(root.join("examples/interop/python/grpcio_client.py"))
        .arg(root.join("tests/proto"))
        .args(args)
        .output()
        .expect("scripts/test.sh installs grpcio into .venv");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && report.contains("18 passed, 0 failed"),
        "grpcio client {what}:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn tls_both_ways_between_the_interop_binaries_and_grpcio() {
    let _leaks = rsgrpc_tests::leak::check();
    let dir = scratch("tls");
    rsgrpc_tests::pki::Pki::new("interop")
        .write_to(&dir)
        .unwrap();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );

    // Our client binary, both flavours, against grpcio over TLS.
    let (_server, port) = grpcio_server(&[os("--use_tls"), cert.as_os_str(), key.as_os_str()]);
    let port = port.to_string();
    our_client(
        &[
            os("--server_host"),
            os("127.0.0.1"),
            os("--server_port"),
            os(&port),
            os("--use_tls"),
            os("true"),
            os("--ca_file"),
            ca.as_os_str(),
            os("--server_host_override"),
            os("localhost"),
        ],
        "against grpcio over TLS",
    );

    // grpcio against our server binary, both flavours, over TLS.
    for flavour in ["async", "blocking"] {
        let (_server, address) = our_server(&[
            os("--port"),
            os("0"),
            os("--flavour"),
            os(flavour),
            os("--use_tls"),
            os("true"),
            os("--tls_cert_file"),
            cert.as_os_str(),
            os("--tls_key_file"),
            key.as_os_str(),
        ]);
        let port = address.rsplit(':').next().unwrap().to_owned();
        grpcio_client(
            &[
                os("--server_port"),
                os(&port),
                os("--use_tls"),
                os("--ca_file"),
                ca.as_os_str(),
                os("--server_host_override"),
                os("localhost"),
            ],
            &format!("against our {flavour} server over TLS"),
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unix_sockets_both_ways_between_the_interop_binaries_and_grpcio() {
    let _leaks = rsgrpc_tests::leak::check();
    let dir = scratch("uds");
    let theirs = dir.join("grpcio.sock");
    let (_server, _) = grpcio_server(&[os("--socket"), theirs.as_os_str()]);
    let target = format!("unix:{}", theirs.display());
    our_client(
        &[os("--server_host"), os(&target)],
        "against grpcio over a Unix socket",
    );
    for flavour in ["async", "blocking"] {
        let ours = dir.join(format!("ours-{flavour}.sock"));
        let (_server, _) = our_server(&[
            os("--flavour"),
            os(flavour),
            os("--socket"),
            ours.as_os_str(),
        ]);
        let target = format!("unix:{}", ours.display());
        grpcio_client(
            &[os("--server_host"), os(&target)],
            &format!("against our {flavour} server over a Unix socket"),
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// Interceptors against the grpcio peer.

/// A client interceptor that asks the interop server to echo metadata back.
struct AskForEcho;

impl rsgrpc::interceptor::Interceptor for AskForEcho {
    fn on_request(
        &self,
        _call: &rsgrpc::interceptor::CallInfo<'_>,
        metadata: &mut rsgrpc::MetadataMap,
    ) -> Result<(), rsgrpc::Status> {
        metadata
            .insert(interop::ECHO_INITIAL, "added-by-an-interceptor")
            .and_then(|()| metadata.insert_bin(interop::ECHO_TRAILING, [0xca, 0xfe]))
            .map_err(|e| rsgrpc::Status::internal(e.to_string()))
    }
}

#[test]
fn metadata_added_by_a_client_interceptor_reaches_a_grpcio_server() {
    let _leaks = rsgrpc_tests::leak::check();
    use interop::testing::SimpleRequest;
    use interop::testing::test_service_client::{TestServiceBlockingClient, TestServiceClient};

    let server = PythonServer::start();
    let channel = rsgrpc::Channel::new(&format!("http://127.0.0.1:{}", server.port)).unwrap();
    let check = |headers: &rsgrpc::MetadataMap, trailers: &rsgrpc::MetadataMap, flavour: &str| {
        assert_eq!(
            headers.get(interop::ECHO_INITIAL),
            Some("added-by-an-interceptor"),
            "{flavour} client: headers {headers:?}"
        );
        assert_eq!(
            trailers.get_bin(interop::ECHO_TRAILING).as_deref(),
            Some(&[0xca, 0xfe][..]),
            "{flavour} client: trailers {trailers:?}"
        );
    };

    let blocking = TestServiceBlockingClient::new(channel.clone()).with_interceptor(AskForEcho);
    let reply = blocking.unary_call(SimpleRequest::default()).unwrap();
    check(reply.metadata(), reply.trailers(), "blocking");

    let client = TestServiceClient::new(channel).with_interceptor(AskForEcho);
    let reply = futures::executor::block_on(client.unary_call(SimpleRequest::default())).unwrap();
    check(reply.metadata(), reply.trailers(), "async");
}
