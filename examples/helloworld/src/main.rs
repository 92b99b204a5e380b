//! The greeter: one server hosting `helloworld.Greeter`, called by a blocking client and by
//! an async client that share one channel (and so one HTTP/2 connection).
//!
//! Run it with `cargo run -p helloworld`. Nothing but Rust is needed: no protoc (the build
//! script parses the `.proto` in pure Rust) and no async runtime of your own.

use std::time::Duration;

use rsgrpc::server::Server;
use rsgrpc::{Channel, Request, Response, Status};

/// Messages and stubs generated from `examples/proto/helloworld/helloworld.proto`.
pub mod helloworld {
    rsgrpc::include_proto!("helloworld");
}

use helloworld::greeter_client::{GreeterBlockingClient, GreeterClient};
use helloworld::greeter_server::{GreeterBlocking, GreeterBlockingServer};
use helloworld::{HelloReply, HelloRequest};

/// The service, implemented with plain blocking code; it runs on the runtime's worker pool.
struct MyGreeter;

impl GreeterBlocking for MyGreeter {
    fn say_hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .add_service(GreeterBlockingServer::new(MyGreeter))
        .bind("127.0.0.1:0")?;
    println!("greeter listening on {}", server.local_addr());

    // One channel, two clients.
    let channel = Channel::new(&format!("http://{}", server.local_addr()))?;
    let blocking = GreeterBlockingClient::new(channel.clone());
    let asynchronous = GreeterClient::new(channel);

    // Blocking: a plain function call, no runtime anywhere.
    let reply = blocking.say_hello(HelloRequest {
        name: "blocking world".into(),
    })?;
    println!("blocking client got: {}", reply.get_ref().message);

    // Async: the same call as a future, here driven by futures' tiny block_on.
    let reply = futures::executor::block_on(asynchronous.say_hello(HelloRequest {
        name: "async world".into(),
    }))?;
    println!("async client got:    {}", reply.get_ref().message);

    // Errors are statuses.
    let err = blocking.say_hello(HelloRequest::default()).unwrap_err();
    println!("empty name gave:     {err}");

    println!(
        "connections accepted by the server: {}",
        server.accepted_connections()
    );
    server.shutdown(Duration::from_secs(5)).wait();
    Ok(())
}
