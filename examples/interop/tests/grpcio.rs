//! Every interop case between rsgrpc and Python grpcio (our own scripts over the real grpcio
//! library, from the virtualenv scripts/test.sh sets up): both of our client flavours
//! against a grpcio server, and a grpcio client against both of our server flavours.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

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
