//! gRPC's interop test service ("interop test descriptions"), served and called with
//! rsgrpc's generated stubs in both flavours.
//!
//! `interop-server --port P [--flavour async|blocking]` (which also serves the standard
//! health and reflection services) and
//! `interop-client --server_host H --server_port P --test_case NAME [--flavour ...]`.

use std::time::Duration;

use rsgrpc::{MetadataMap, Request, Response, Status};

/// Messages and stubs generated from `tests/proto/grpc/testing/test.proto`.
pub mod testing {
    rsgrpc::include_proto!("grpc.testing");
}

/// The encoded descriptors of the interop protos (with their comments), written by the
/// build script, for the reflection service.
pub const DESCRIPTORS: &[u8] = rsgrpc::include_file_descriptor_set!("interop_descriptor");

pub mod client;
pub mod server;

/// Processes the tests start: killed when dropped, and read for the line a server prints
/// once it serves (reading it is the synchronisation).
pub mod process {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    /// A process killed (and waited for) when dropped.
    pub struct Running(pub Child);

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Starts `command` with its standard output piped; returns it with the first line it
    /// prints, trimmed.
    pub fn start(command: &mut Command) -> std::io::Result<(Running, String)> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let running = Running(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        Ok((running, line.trim().to_owned()))
    }

    /// Starts the `interop-server` at `exe` with `args`; returns it once it listens, with
    /// the address it prints.
    pub fn interop_server(exe: &str, args: &[&std::ffi::OsStr]) -> (Running, String) {
        let (running, line) = start(Command::new(exe).args(args)).expect("interop-server");
        let address = line.rsplit(' ').next().unwrap_or_default().to_owned();
        (running, address)
    }
}

use testing::{EchoStatus, Payload, PayloadType};

/// Header echoed back in the response headers.
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Binary header echoed back in the trailers.
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// The command-line flags of an interop binary, given as `--name value` or
/// `--name=value` (the forms gRPC's own interop binaries accept).
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(String, String)>,
}

/// Why the flags could not be used: help was asked for (print the usage, succeed) or a
/// flag was wrong (print the error and the usage, fail).
#[derive(Debug, PartialEq, Eq)]
pub enum FlagsError {
    /// `--help` or `-h`.
    Help,
    /// What is wrong with the flags.
    Bad(String),
}

impl Flags {
    /// Parses `args` (without the program name), accepting only the flags in `known`.
    ///
    /// # Errors
    ///
    /// [`FlagsError::Help`] for `--help` or `-h`; [`FlagsError::Bad`] for an unknown flag,
    /// a flag without its value or a stray argument.
    pub fn parse(args: &[String], known: &[&str]) -> Result<Flags, FlagsError> {
        let mut values = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(FlagsError::Help);
            }
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    if !arg.starts_with("--") {
                        return Err(FlagsError::Bad(format!("unexpected argument {arg:?}")));
                    }
                    let Some(value) = args.next() else {
                        return Err(FlagsError::Bad(format!("{arg} needs a value")));
                    };
                    (arg.clone(), value.clone())
                }
            };
            if !known.contains(&name.as_str()) {
                return Err(FlagsError::Bad(format!("unknown flag {name}")));
            }
            values.push((name, value));
        }
        Ok(Flags { values })
    }

    /// Parses the process's arguments; prints the usage and exits on `--help` (success) or
    /// on a bad flag (failure, status 2).
    pub fn from_env(known: &[&str], usage: &str) -> Flags {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match Flags::parse(&args, known) {
            Ok(flags) => flags,
            Err(FlagsError::Help) => {
                println!("{usage}");
                std::process::exit(0);
            }
            Err(FlagsError::Bad(why)) => {
                eprintln!("{why}\n\n{usage}");
                std::process::exit(2);
            }
        }
    }

    /// The value of a flag (the last one given).
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// A payload of `size` zero bytes.
pub fn payload(size: i32) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; usize::try_from(size).unwrap_or(0)].into(),
    })
}

/// The status a request asks the server to answer with, if any.
pub fn requested_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(
            rsgrpc::Code::try_from(s.code).unwrap_or(rsgrpc::Code::Unknown),
            s.message.clone(),
        )),
        _ => Ok(()),
    }
}

/// The echo headers and trailers of the custom_metadata case.
pub fn echo_metadata(request: &MetadataMap) -> (MetadataMap, MetadataMap) {
    let mut headers = MetadataMap::new();
    let mut trailers = MetadataMap::new();
    if let Some(value) = request.get(ECHO_INITIAL) {
        let _ = headers.insert(ECHO_INITIAL, value);
    }
    if let Some(value) = request.get_bin(ECHO_TRAILING) {
        let _ = trailers.insert_bin(ECHO_TRAILING, &value);
    }
    (headers, trailers)
}

/// Puts echoed metadata on a response.
pub fn with_echo<T>(request: &MetadataMap, message: T) -> Response<T> {
    let (headers, trailers) = echo_metadata(request);
    let mut response = Response::new(message);
    *response.metadata_mut() = headers;
    *response.trailers_mut() = trailers;
    response
}

/// A request carrying the custom_metadata case's headers.
pub fn with_custom_metadata<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let _ = request
        .metadata_mut()
        .insert(ECHO_INITIAL, "test_initial_metadata_value");
    let _ = request
        .metadata_mut()
        .insert_bin(ECHO_TRAILING, [0xab, 0xab, 0xab]);
    request
}

/// Converts a `ResponseParameters.interval_us`.
pub fn interval(us: i32) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// The cases that apply over gRPC-Web: those with unary and server-streaming calls only
/// (gRPC-Web has no client or bidi streaming; `status_code_and_message` and
/// `custom_metadata` include a bidi call).
pub const WEB_CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "server_streaming",
    "server_compressed_streaming",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
];

/// Every test case this client implements, in the order `--test_case all` runs them.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "custom_metadata",
];
