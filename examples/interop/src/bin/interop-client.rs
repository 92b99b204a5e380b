//! gRPC's interop test client:
//! `interop-client --server_host H --server_port P --test_case NAME|all [--flavour async|blocking]
//! [--use_tls true --ca_file PEM --server_host_override NAME]`. A server host of
//! `unix:PATH` is a Unix socket.
//! Prints each case's result and, at the end, `N passed, M failed`; exits non-zero when a
//! case failed.

use std::process::ExitCode;

use interop::Flags;

const USAGE: &str = "usage: interop-client [--server_host H] [--server_port P] \
[--test_case NAME|all] [--flavour async|blocking] \
[--use_tls true --ca_file PEM --server_host_override NAME]";

/// The channel the flags ask for.
fn channel(
    flags: &Flags,
    host: &str,
    port: &str,
    tls: bool,
) -> Result<rsgrpc::Channel, Box<dyn std::error::Error>> {
    let arg = |name: &str| flags.get(name);
    if host.starts_with("unix:") {
        return Ok(rsgrpc::Channel::new(host)?);
    }
    if !tls {
        return Ok(rsgrpc::Channel::new(&format!("http://{host}:{port}"))?);
    }
    let mut config = rsgrpc::tls::ClientTlsConfig::new();
    if let Some(ca) = arg("--ca_file") {
        config = config.ca_certificate(rsgrpc::tls::Certificate::from_pem(std::fs::read(ca)?)?);
    }
    let mut builder = rsgrpc::Channel::builder(format!("https://{host}:{port}"));
    if let Some(name) = arg("--server_host_override") {
        config = config.domain_name(name.clone());
        builder = builder.authority(format!("{name}:{port}"));
    }
    Ok(builder.tls_config(config).connect_lazy()?)
}

fn main() -> ExitCode {
    let flags = Flags::from_env(
        &[
            "--server_host",
            "--server_port",
            "--test_case",
            "--flavour",
            "--use_tls",
            "--ca_file",
            "--server_host_override",
        ],
        USAGE,
    );
    let arg = |name: &str| flags.get(name);
    let host = arg("--server_host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = arg("--server_port").unwrap_or_else(|| "10000".to_owned());
    let case = arg("--test_case").unwrap_or_else(|| "all".to_owned());
    let flavour = arg("--flavour").unwrap_or_else(|| "blocking".to_owned());
    let tls = arg("--use_tls").as_deref() == Some("true");
    let channel = match channel(&flags, &host, &port, tls) {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("cannot make the channel: {e}");
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
