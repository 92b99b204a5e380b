//! gRPC's interop test client:
//! `interop-client --server_host H --server_port P --test_case NAME|all [--flavour async|blocking]
//! [--use_tls true --ca_file PEM --server_host_override NAME] [--grpc_web true]`. A server
//! host of `unix:PATH` is a Unix socket. With `--grpc_web true` every call is gRPC-Web, and
//! cases that need client or bidi streaming report themselves as not applicable.
//! Prints each case's result and, at the end, `N passed, M failed, K not applicable`;
//! exits non-zero when a case failed.

use std::process::ExitCode;

use interop::Flags;

const USAGE: &str = "usage: interop-client [--server_host H] [--server_port P] \
[--test_case NAME|all] [--flavour async|blocking] \
[--use_tls true --ca_file PEM --server_host_override NAME] [--grpc_web true]";

/// The channel the flags ask for.
fn channel(
    flags: &Flags,
    host: &str,
    port: &str,
    tls: bool,
    grpc_web: bool,
) -> Result<rsgrpc::Channel, Box<dyn std::error::Error>> {
    let arg = |name: &str| flags.get(name);
    if host.starts_with("unix:") {
        return Ok(rsgrpc::Channel::builder(host)
            .grpc_web(grpc_web)
            .connect_lazy()?);
    }
    if !tls {
        return Ok(rsgrpc::Channel::builder(format!("http://{host}:{port}"))
            .grpc_web(grpc_web)
            .connect_lazy()?);
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
    Ok(builder
        .tls_config(config)
        .grpc_web(grpc_web)
        .connect_lazy()?)
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
            "--grpc_web",
        ],
        USAGE,
    );
    let arg = |name: &str| flags.get(name);
    let host = arg("--server_host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = arg("--server_port").unwrap_or_else(|| "10000".to_owned());
    let case = arg("--test_case").unwrap_or_else(|| "all".to_owned());
    let flavour = arg("--flavour").unwrap_or_else(|| "blocking".to_owned());
    let tls = arg("--use_tls").as_deref() == Some("true");
    let grpc_web = match arg("--grpc_web").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            eprintln!("--grpc_web is true or false, not {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let channel = match channel(&flags, &host, &port, tls, grpc_web) {
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
    let (mut passed, mut failed, mut not_applicable) = (0, 0, 0);
    for case in cases {
        if grpc_web && !interop::WEB_CASES.contains(&case) {
            not_applicable += 1;
            println!("{case}: not applicable (gRPC-Web has no client or bidi streaming)");
            continue;
        }
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
    println!("{passed} passed, {failed} failed, {not_applicable} not applicable");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
