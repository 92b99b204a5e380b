//! The greeter: one server hosting `helloworld.Greeter`, called by a blocking client and by
//! an async client that share one channel (and so one HTTP/2 connection).
//!
//! Run it with `cargo run -p helloworld`. Nothing but Rust is needed: no protoc and no
//! async runtime of your own.

use std::time::Duration;

use rsgrpc::client::Client;
use rsgrpc::server::{Server, Service};
use rsgrpc::{Channel, Request, Response, Status};

/// `message HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `message HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: a blocking handler, run on the runtime's worker pool.
    let greeter = Service::builder("helloworld.Greeter")
        .blocking_unary("SayHello", |request: Request<HelloRequest>| {
            let name = &request.get_ref().name;
            if name.is_empty() {
                return Err(Status::invalid_argument("name must not be empty"));
            }
            Ok(Response::new(HelloReply {
                message: format!("Hello {name}!"),
            }))
        })
        .build();
    let server = Server::builder().add_service(greeter).bind("127.0.0.1:0")?;
    println!("greeter listening on {}", server.local_addr());

    // One channel, two clients.
    let channel = Channel::new(&format!("http://{}", server.local_addr()))?;
    let client = Client::new(channel);

    // Blocking: a plain function call, no runtime anywhere.
    let reply: Response<HelloReply> = client.blocking_unary(
        SAY_HELLO,
        Request::new(HelloRequest {
            name: "blocking world".into(),
        }),
    )?;
    println!("blocking client got: {}", reply.get_ref().message);

    // Async: the same call as a future, here driven by futures' tiny block_on.
    let reply: Response<HelloReply> = futures::executor::block_on(client.unary(
        SAY_HELLO,
        Request::new(HelloRequest {
            name: "async world".into(),
        }),
    ))?;
    println!("async client got:    {}", reply.get_ref().message);

    // Errors are statuses.
    let err = client
        .blocking_unary::<_, HelloReply>(SAY_HELLO, Request::new(HelloRequest::default()))
        .unwrap_err();
    println!("empty name gave:     {err}");

    println!(
        "connections accepted by the server: {}",
        server.accepted_connections()
    );
    server.shutdown(Duration::from_secs(5)).wait();
    Ok(())
}
