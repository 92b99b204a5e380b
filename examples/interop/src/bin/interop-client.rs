//! gRPC's interop test client:
//! `interop-client --server_host H --server_port P --test_case NAME|all [--flavour async|blocking]`.
//! Prints each case's result and, at the end, `N passed, M failed`; exits non-zero when a
//! case failed.

use std::process::ExitCode;

use interop::arg;

fn main() -> ExitCode {
    let host = arg("--server_host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = arg("--server_port").unwrap_or_else(|| "10000".to_owned());
    let case = arg("--test_case").unwrap_or_else(|| "all".to_owned());
    let flavour = arg("--flavour").unwrap_or_else(|| "blocking".to_owned());
    let channel = match rsgrpc::Channel::new(&format!("http://{host}:{port}")) {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("bad server address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cases: Vec<&str> = if case == "all" {
        interop::CASES.to_vec()
    } else {
        vec![case.as_str()]
    };
    let (mut passed, mut failed) = (0, 0);
    for case in cases {
        let outcome = match flavour.as_str() {
            "blocking" => interop::client::run_blocking(case, &channel),
            "async" => futures::executor::block_on(interop::client::run_async(case, &channel)),
            other => Err(format!("--flavour is async or blocking, not {other:?}")),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("{case}: passed");
            }
            Err(why) => {
                failed += 1;
                println!("{case}: FAILED: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
