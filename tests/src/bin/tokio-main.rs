//! A program written as a tonic user writes one: `#[tokio::main]`, a server built in it
//! whose async handlers use tokio's timer, `tokio::spawn` and a tokio channel, and a
//! client awaiting it. Prints `ok` and exits 0 when every call answered as expected
//! (the test `tokio_main` in `tests/tokio_user.rs` runs it).

use std::time::Duration;

use rsgrpc::server::{Server, Service};
use rsgrpc::{Channel, Request, Response, Status};
use rsgrpc_tests::{EchoRequest, EchoResponse, path, req};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = Service::builder("tokio.Main")
        .unary("Get", |request: Request<EchoRequest>| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let (tx, mut rx) = tokio::sync::mpsc::channel(1);
            tokio::spawn(async move {
                let _ = tx.send(request.into_inner().message).await;
            });
            let message = rx
                .recv()
                .await
                .ok_or_else(|| Status::internal("the spawned task went away"))?;
            Ok(Response::new(EchoResponse {
                message,
                ..Default::default()
            }))
        })
        .build();
    let server = Server::builder().add_service(service).bind("127.0.0.1:0")?;
    let client =
        rsgrpc::client::Client::new(Channel::new(&format!("http://{}", server.local_addr()))?);
    for i in 0..10 {
        let message = format!("call {i}");
        let reply: Response<EchoResponse> = client
            .unary(path("tokio.Main", "Get"), Request::new(req(&message)))
            .await?;
        if reply.get_ref().message != message {
            return Err(format!("wrong answer: {reply:?}").into());
        }
    }
    server.shutdown(Duration::from_secs(5)).await;
    println!("ok");
    Ok(())
}
