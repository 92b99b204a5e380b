//! The interop server's health and reflection services, in both flavours of the server,
//! queried by Python's own clients for them (grpcio-health-checking and grpcio-reflection,
//! from the virtualenv scripts/test.sh sets up).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("RSGRPC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"))
}

fn script(name: &str) -> PathBuf {
    workspace().join("examples/interop/python").join(name)
}

const TEST_SERVICE: &str = "grpc.testing.TestService";

#[test]
fn grpcio_health_client_checks_and_watches_a_change() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in ["async", "blocking"] {
        let (server, health) = interop::server::serve_with_health("127.0.0.1:0", flavour).unwrap();
        let mut child = Command::new(python())
            .arg(script("grpcio_health.py"))
            .arg(server.local_addr().port().to_string())
            .arg(TEST_SERVICE)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scripts/test.sh installs grpcio-health-checking into .venv");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut report = String::new();
        // The script prints WATCHING once its Watch has the first status: the change is
        // made then, and the script waits for it.
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            report.push_str(&line);
            if line.trim() == "WATCHING" {
                health.set_not_serving(TEST_SERVICE);
            }
        }
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.success() && report.contains("5 passed, 0 failed"),
            "grpcio health client against our {flavour} server:\n{report}\n{stderr}"
        );
        // The client cancelled its watches: the service holds none.
        let until = Instant::now() + Duration::from_secs(20);
        while health.watchers() != 0 {
            assert!(
                Instant::now() < until,
                "watches left open on the {flavour} server"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Every service and method in the descriptor sets the interop server reflects, as the
/// script prints them: `SERVICE name` and `METHOD name input output`.
fn expected_lines() -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for encoded in [
        interop::DESCRIPTORS,
        rsgrpc_health::pb::FILE_DESCRIPTOR_SET,
        rsgrpc_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        rsgrpc_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(encoded).unwrap();
        for file in set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                lines.insert(format!("SERVICE {name}"));
                for method in &service.method {
                    lines.insert(format!(
                        "METHOD {name}.{} {} {}",
                        method.name(),
                        method.input_type().trim_start_matches('.'),
                        method.output_type().trim_start_matches('.')
                    ));
                }
            }
        }
    }
    lines
}

#[test]
fn grpcio_reflection_client_resolves_every_method_of_every_service() {
    let _leaks = rsgrpc_tests::leak::check();
    let expected = expected_lines();
    assert!(expected.contains(&format!("SERVICE {TEST_SERVICE}")));
    assert!(expected.contains("SERVICE grpc.health.v1.Health"));
    for flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", flavour).unwrap();
        for version in ["v1", "v1alpha"] {
            let output = Command::new(python())
                .arg(script("grpcio_reflection.py"))
                .arg(server.local_addr().port().to_string())
                .arg(version)
                .output()
                .expect("scripts/test.sh installs grpcio-reflection into .venv");
            let report = String::from_utf8_lossy(&output.stdout);
            let context = format!(
                "grpcio reflection client ({version}) against our {flavour} server:\n{report}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "{context}");
            let services = expected
                .iter()
                .filter(|l| l.starts_with("SERVICE "))
                .count();
            // list_services, one case per service, and the unknown symbol.
            assert!(
                report.contains(&format!("{} passed, 0 failed", services + 2)),
                "{context}"
            );
            let seen: BTreeSet<String> = report
                .lines()
                .filter(|l| l.starts_with("SERVICE ") || l.starts_with("METHOD "))
                .map(str::to_owned)
                .collect();
            assert_eq!(seen, expected, "{context}");
            // Each message type was resolved with its fields.
            assert!(
                report.contains("FIELDS grpc.testing.SimpleRequest "),
                "{context}"
            );
        }
    }
}
