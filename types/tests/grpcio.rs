//! Rich error details between rsgrpc and Python grpcio's `grpc_status` (pip's
//! grpcio-status, installed into .venv by scripts/test.sh), both ways: grpcio reads what
//! an rsgrpc server sends, and rsgrpc reads what a grpcio server sends. Both sides use the
//! same details, one of each type.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rsgrpc::server::{Server, Service};
use rsgrpc::{Channel, Code, Request, Response, Status};
use rsgrpc_types::StatusExt;

mod common;
use common::details;

fn python() -> PathBuf {
    std::env::var_os("RSGRPC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/grpcio_status_peer.py")
}

const MESSAGE: &str = "rich: \u{e9}";

/// What the script prints for [`details`] (fields sorted by name).
const EXPECTED: &[&str] = &[
    "STATUS 8 rich: \u{e9}",
    "ErrorInfo domain=example.com metadata={zone:eu} reason=QUOTA",
    "RetryInfo retry_delay=3s500n",
    "DebugInfo detail=boom stack_entries=[a.py:1,b.py:2]",
    "QuotaFailure violations=[{description=daily subject=user:1}]",
    "PreconditionFailure violations=[{description=unsigned subject=user:1 type=TOS}]",
    "BadRequest field_violations=[{description=empty field=name}]",
    "RequestInfo request_id=r-1 serving_data=node 7",
    "ResourceInfo description=gone owner=me resource_name=b/1 resource_type=book",
    "Help links=[{description=docs url=https://example.com}]",
    "LocalizedMessage locale=fr-FR message=non",
];

#[test]
fn grpcio_status_reads_the_details_an_rsgrpc_server_sends() {
    let _leaks = rsgrpc_tests::leak::check();
    let rich = Service::builder("rich.Rich")
        .blocking_unary("Fail", |_: Request<()>| -> Result<Response<()>, Status> {
            Err(Status::with_error_details(
                Code::ResourceExhausted,
                MESSAGE,
                details(),
            ))
        })
        .build();
    let server = Server::builder()
        .add_service(rich)
        .bind("127.0.0.1:0")
        .unwrap();
    let output = Command::new(python())
        .arg(script())
        .arg("client")
        .arg(server.local_addr().port().to_string())
        .output()
        .expect("scripts/test.sh installs grpcio-status into .venv");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report.lines().collect::<Vec<_>>(), EXPECTED);
}

#[test]
fn rsgrpc_reads_the_details_a_grpcio_server_sends() {
    let _leaks = rsgrpc_tests::leak::check();
    let mut child = Command::new(python())
        .arg(script())
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("scripts/test.sh installs grpcio-status into .venv");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the grpcio server said {line:?}"));
    let channel = Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = rsgrpc::client::Client::new(channel);
    let status = client
        .blocking_unary::<(), ()>("/rich.Rich/Fail", Request::new(()))
        .unwrap_err();
    // Closing its stdin stops the server.
    drop(child.stdin.take());
    let _ = child.wait();

    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), MESSAGE);
    let rpc_status = status.rpc_status().unwrap().unwrap();
    assert_eq!(rpc_status.code, Code::ResourceExhausted.as_i32());
    assert_eq!(rpc_status.message, MESSAGE);
    let received = status.error_details().unwrap();
    assert_eq!(received.iter().cloned().collect::<Vec<_>>(), details());
    assert_eq!(
        received.bad_request().unwrap().field_violations[0].field,
        "name"
    );
    assert_eq!(
        received.retry_info().unwrap().delay(),
        Some(Duration::new(3, 500))
    );
    assert_eq!(received.error_info().unwrap().metadata["zone"], "eu");
}
