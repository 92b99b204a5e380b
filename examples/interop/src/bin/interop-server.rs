//! gRPC's interop test server:
//! `interop-server --port P [--flavour async|blocking] [--use_tls true --tls_cert_file PEM
//! --tls_key_file PEM] [--socket PATH] [--grpc_web true]` (a Unix socket instead of the
//! port; gRPC-Web over HTTP/1.1 and HTTP/2 beside native gRPC, with CORS open to any
//! origin), with the standard health (grpc.health.v1) and reflection (grpc.reflection.v1,
//! v1alpha) services.

use interop::Flags;
use interop::server::ServeOptions;

const USAGE: &str = "usage: interop-server [--port P] [--flavour async|blocking] \
[--use_tls true --tls_cert_file PEM --tls_key_file PEM] [--socket PATH] [--grpc_web true]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::from_env(
        &[
            "--port",
            "--flavour",
            "--use_tls",
            "--tls_cert_file",
            "--tls_key_file",
            "--socket",
            "--grpc_web",
        ],
        USAGE,
    );
    let arg = |name: &str| flags.get(name);
    let port = arg("--port").unwrap_or_else(|| "10000".to_owned());
    let tls = match arg("--use_tls").as_deref() {
        Some("true") => Some((
            arg("--tls_cert_file")
                .ok_or("--use_tls needs --tls_cert_file")?
                .into(),
            arg("--tls_key_file")
                .ok_or("--use_tls needs --tls_key_file")?
                .into(),
        )),
        _ => None,
    };
    let options = ServeOptions {
        addr: format!("127.0.0.1:{port}"),
        flavour: arg("--flavour").unwrap_or_else(|| "async".to_owned()),
        socket: arg("--socket").map(Into::into),
        tls,
        compression: None,
        grpc_web: match arg("--grpc_web").as_deref() {
            None | Some("false") => None,
            Some("true") => Some(interop::server::web_config()),
            Some(other) => return Err(format!("--grpc_web is true or false, not {other:?}").into()),
        },
    };
    let (server, _health) = interop::server::serve_with(&options)?;
    match server.unix_path() {
        Some(path) => println!(
            "interop server ({}) listening on unix:{}",
            options.flavour,
            path.display()
        ),
        None => println!(
            "interop server ({}) listening on {}",
            options.flavour,
            server.local_addr()
        ),
    }
    loop {
        std::thread::park();
    }
}
