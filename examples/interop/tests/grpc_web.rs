//! gRPC-Web against clients we did not write: a page in Debian's headless Chromium using
//! connect-web's gRPC-Web transport (bundled with esbuild, driven by puppeteer-core), the
//! same cases under Node with connect-node (HTTP/1.1 and HTTP/2), and CORS refusing a page
//! of an origin not allowed; then the interop cases through rsgrpc's own gRPC-Web client
//! mode. The JavaScript is in examples/interop/web (scripts/test.sh installs its packages
//! and Chromium).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use interop::server::{ServeOptions, serve_with, web_config};

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Generates the page's stubs and bundles it (once per test run).
fn built_page() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = web_dir();
        let status = Command::new("node")
            .arg(dir.join("build.mjs"))
            .status()
            .expect("node (scripts/test.sh installs Node.js and the page's npm packages)");
        assert!(status.success(), "building the gRPC-Web page failed");
        dir.join("dist")
    })
}

/// A server of the page's files over HTTP/1.0 on 127.0.0.1 (an origin of its own),
/// stopped when dropped.
struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_files(dir: &'static Path) -> FileServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            // "GET /index.html HTTP/1.1": only names in the directory itself.
            let name = line
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let file = (!name.contains('/') && !name.contains(".."))
                .then(|| std::fs::read(dir.join(name)).ok())
                .flatten();
            let response = match file {
                Some(body) => {
                    let kind = if name.ends_with(".js") {
                        "text/javascript"
                    } else if name.ends_with(".html") {
                        "text/html"
                    } else {
                        "application/octet-stream"
                    };
                    let mut head = format!(
                        "HTTP/1.0 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    head.extend(body);
                    head
                }
                None => b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    FileServer {
        url,
        stop,
        thread: Some(thread),
    }
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: scripts/test.sh installs Debian's chromium"
    );
    path
}

/// Runs a script of examples/interop/web; its report and whether it passed.
fn node(script: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new("node")
        .arg(web_dir().join(script))
        .args(args)
        .env("CHROMIUM", chromium())
        .output()
        .expect("node");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// The default cases: every unary and server-streaming interop case.
const CASES: usize = 8;

/// The interop server of `flavour` with gRPC-Web open to any origin, over TLS with the
/// certificate in `dir` when `tls`.
fn web_server(
    flavour: &str,
    tls: bool,
    dir: &Path,
) -> (rsgrpc::server::ServerHandle, rsgrpc_health::HealthReporter) {
    serve_with(&ServeOptions {
        addr: "127.0.0.1:0".into(),
        flavour: flavour.into(),
        tls: tls.then(|| (dir.join("server.pem"), dir.join("server.key"))),
        grpc_web: Some(web_config()),
        ..ServeOptions::default()
    })
    .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsgrpc-web-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_browser_calls_both_flavours_over_http1_and_over_tls() {
    let _leaks = rsgrpc_tests::leak::check();
    let files = serve_files(built_page());
    let page = format!("{}/index.html", files.url);
    let dir = scratch("browser");
    rsgrpc_tests::pki::Pki::new("web").write_to(&dir).unwrap();
    for flavour in ["async", "blocking"] {
        for tls in [false, true] {
            let (server, _health) = web_server(flavour, tls, &dir);
            let port = server.local_addr().port();
            // Plain http is HTTP/1.1 from a browser; over TLS Chromium chooses h2 by ALPN.
            let grpc = if tls {
                format!("https://localhost:{port}")
            } else {
                format!("http://127.0.0.1:{port}")
            };
            let (ok, report) = node("browser.mjs", &[&page, &grpc]);
            assert!(
                ok && report.contains(&format!("{CASES} passed, 0 failed")),
                "Chromium against the {flavour} server at {grpc}:\n{report}"
            );
        }
    }
}

#[test]
fn cors_lets_only_allowed_origins_call_from_a_browser() {
    let _leaks = rsgrpc_tests::leak::check();
    let allowed = serve_files(built_page());
    let other = serve_files(built_page());
    let (server, _health) = serve_with(&ServeOptions {
        addr: "127.0.0.1:0".into(),
        flavour: "async".into(),
        grpc_web: Some(rsgrpc::server::GrpcWeb::new().allow_origin(&allowed.url)),
        ..ServeOptions::default()
    })
    .unwrap();
    let grpc = format!("http://127.0.0.1:{}", server.local_addr().port());
    let (ok, report) = node(
        "browser.mjs",
        &[
            &format!("{}/index.html", allowed.url),
            &grpc,
            "empty_unary,large_unary",
        ],
    );
    assert!(ok && report.contains("2 passed, 0 failed"), "{report}");
    // The other origin's page: its preflight is refused, so the browser never sends the
    // call (the page sees a network error, not a status).
    let (ok, report) = node(
        "browser.mjs",
        &[&format!("{}/index.html", other.url), &grpc, "cors_refused"],
    );
    assert!(ok && report.contains("1 passed, 0 failed"), "{report}");
}

#[test]
fn node_calls_both_flavours_over_http1_http2_and_tls() {
    let _leaks = rsgrpc_tests::leak::check();
    let _ = built_page();
    let dir = scratch("node");
    rsgrpc_tests::pki::Pki::new("web").write_to(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    for flavour in ["async", "blocking"] {
        for tls in [false, true] {
            let (server, _health) = web_server(flavour, tls, &dir);
            let port = server.local_addr().port();
            for version in ["1.1", "2"] {
                let (grpc, extra): (String, &[&str]) = if tls {
                    (format!("https://localhost:{port}"), &["--ca", ca])
                } else {
                    (format!("http://127.0.0.1:{port}"), &[])
                };
                let mut args = vec![grpc.as_str(), version];
                args.extend_from_slice(extra);
                let (ok, report) = node("node_client.mjs", &args);
                assert!(
                    ok && report.contains(&format!("{CASES} passed, 0 failed")),
                    "connect-node (HTTP/{version}) against the {flavour} server at {grpc}:\n{report}"
                );
            }
        }
    }
}

#[test]
fn the_interop_cases_through_our_grpc_web_client() {
    let _leaks = rsgrpc_tests::leak::check();
    let dir = scratch("client");
    rsgrpc_tests::pki::Pki::new("web").write_to(&dir).unwrap();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    for flavour in ["async", "blocking"] {
        for tls in [false, true] {
            let (server, _health) = web_server(flavour, tls, &dir);
            let port = server.local_addr().port();
            for http1 in [false, true] {
                let builder = if tls {
                    rsgrpc::Channel::builder(format!("https://localhost:{port}")).tls_config(
                        rsgrpc::tls::ClientTlsConfig::new().ca_certificate(
                            rsgrpc::tls::Certificate::from_pem(ca.clone()).unwrap(),
                        ),
                    )
                } else {
                    rsgrpc::Channel::builder(format!("http://127.0.0.1:{port}"))
                };
                let channel = builder.grpc_web(true).http1(http1).connect_lazy().unwrap();
                let mut failures = Vec::new();
                for case in interop::WEB_CASES {
                    if let Err(why) = interop::client::run_blocking(case, &channel) {
                        failures.push(format!("{case} (blocking client): {why}"));
                    }
                    if let Err(why) =
                        futures::executor::block_on(interop::client::run_async(case, &channel))
                    {
                        failures.push(format!("{case} (async client): {why}"));
                    }
                }
                assert!(
                    failures.is_empty(),
                    "{flavour} server, tls {tls}, http1 {http1}:\n{}",
                    failures.join("\n")
                );
            }
        }
    }
}

/// The interop binaries with `--grpc_web true`: the server serves gRPC-Web beside native
/// gRPC, the client runs the cases that apply over gRPC-Web and reports the others as
/// not applicable.
#[test]
fn the_interop_binaries_over_grpc_web() {
    let _leaks = rsgrpc_tests::leak::check();
    for flavour in ["async", "blocking"] {
        let args = ["--port", "0", "--flavour", flavour, "--grpc_web", "true"];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let (server, address) =
            interop::process::interop_server(env!("CARGO_BIN_EXE_interop-server"), &args);
        let port = address.rsplit(':').next().unwrap();
        let web = Command::new(env!("CARGO_BIN_EXE_interop-client"))
            .args(["--server_port", port, "--test_case", "all"])
            .args(["--flavour", flavour, "--grpc_web", "true"])
            .output()
            .unwrap();
        // Native gRPC on the same port, for comparison.
        let native = Command::new(env!("CARGO_BIN_EXE_interop-client"))
            .args([
                "--server_port",
                port,
                "--test_case",
                "all",
                "--flavour",
                flavour,
            ])
            .output()
            .unwrap();
        drop(server);
        let web = String::from_utf8_lossy(&web.stdout).to_string();
        let applicable = interop::WEB_CASES.len();
        let not_applicable = interop::CASES.len() - applicable;
        assert!(
            web.contains(&format!(
                "{applicable} passed, 0 failed, {not_applicable} not applicable"
            )),
            "{flavour}:\n{web}"
        );
        assert!(
            web.contains("ping_pong: not applicable"),
            "{flavour}:\n{web}"
        );
        let native = String::from_utf8_lossy(&native.stdout).to_string();
        assert!(
            native.contains(&format!("{} passed, 0 failed", interop::CASES.len())),
            "{flavour}:\n{native}"
        );
    }
}
