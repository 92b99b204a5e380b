//! Written the way a tonic user writes: `#[tokio::test]`, servers built inside the test's
//! runtime, and handlers full of tokio (timers, `tokio::spawn`, channels, timeouts).
//! rsgrpc polls such handlers on its own executor with that runtime entered, so all of it
//! works, and a handler that calls a library built on the *blocking* client neither
//! deadlocks nor starves the runtime.
//!
//! These tests own tokio runtimes that outlive any guard inside them, so this binary does
//! not use the leak check (a binary uses it in all of its tests or none).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rsgrpc::client::Client;
use rsgrpc::server::{Server, ServerHandle, Service};
use rsgrpc::{Channel, Request, Response, Status, Streaming};
use rsgrpc_tests::{EchoRequest, EchoResponse, path, req};

const SVC: &str = "tokio.Kv";

type Replies = Pin<Box<dyn Stream<Item = Result<EchoResponse, Status>> + Send>>;

fn reply(message: impl Into<String>, index: u32) -> EchoResponse {
    EchoResponse {
        message: message.into(),
        index,
        ..Default::default()
    }
}

/// A service whose handlers use tokio as tonic users' handlers do, and report where they
/// ran.
fn tokio_service(threads: Arc<std::sync::Mutex<Vec<String>>>) -> Service {
    let t1 = threads.clone();
    Service::builder(SVC)
        .unary("Get", move |request: Request<EchoRequest>| {
            let threads = t1.clone();
            async move {
                threads
                    .lock()
                    .unwrap()
                    .push(std::thread::current().name().unwrap_or("?").to_owned());
                // A timer, a spawned task with a channel, a timeout.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let (tx, rx) = tokio::sync::oneshot::channel();
                let key = request.into_inner().message;
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    let _ = tx.send(format!("value of {key}"));
                });
                let value = tokio::time::timeout(Duration::from_secs(10), rx)
                    .await
                    .map_err(|_| Status::deadline_exceeded("the spawned task took too long"))?
                    .map_err(|_| Status::internal("the spawned task went away"))?;
                Ok(Response::new(reply(value, 0)))
            }
        })
        .server_streaming("Watch", |request: Request<EchoRequest>| async move {
            // A watch fed by a task on tokio's interval timer, through a tokio channel.
            let count = request.get_ref().count;
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(2));
                for index in 0..count {
                    tick.tick().await;
                    if tx.send(Ok(reply("tick", index))).await.is_err() {
                        return;
                    }
                }
            });
            let stream: Replies = Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
            Ok(Response::new(stream))
        })
        .client_streaming(
            "Put",
            |request: Request<Streaming<EchoRequest>>| async move {
                let mut requests = request.into_inner();
                let mut n = 0;
                while let Some(item) = requests.message().await? {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    n += item.count;
                }
                Ok(Response::new(reply("put", n)))
            },
        )
        .build()
}

fn serve(service: Service) -> ServerHandle {
    Server::builder()
        .add_service(service)
        .bind("127.0.0.1:0")
        .unwrap()
}

fn client(server: &ServerHandle) -> Client {
    Client::new(Channel::new(&format!("http://{}", server.local_addr())).unwrap())
}

/// Every kind of tokio use in handlers, and a client request stream that sleeps on
/// tokio's timer between messages (polled on rsgrpc's executor inside the caller's
/// runtime).
async fn tokio_in_handlers() {
    let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = serve(tokio_service(threads.clone()));
    let client = client(&server);
    let got: Response<EchoResponse> = client
        .unary(path(SVC, "Get"), Request::new(req("k1")))
        .await
        .unwrap();
    assert_eq!(got.get_ref().message, "value of k1");

    let mut watch = client
        .server_streaming::<_, EchoResponse>(
            path(SVC, "Watch"),
            Request::new(EchoRequest {
                count: 5,
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(item) = watch.message().await.unwrap() {
        seen.push(item.index);
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);

    let requests = futures::stream::iter(1..=3u32).then(|count| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        EchoRequest {
            count,
            ..Default::default()
        }
    });
    let put: Response<EchoResponse> = client
        .client_streaming(path(SVC, "Put"), Request::new(requests))
        .await
        .unwrap();
    assert_eq!(put.get_ref().index, 6);

    // The handlers ran on rsgrpc's executor, never on a poller.
    for thread in threads.lock().unwrap().iter() {
        assert!(thread.contains("-exec-"), "a handler ran on {thread}");
    }
    drop(client);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_timers_spawn_and_channels_work_in_handlers_multi_thread() {
    tokio_in_handlers().await;
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_timers_spawn_and_channels_work_in_handlers_current_thread() {
    tokio_in_handlers().await;
}

/// The seed's case: an async handler calls a library built on the blocking client (here,
/// a blocking unary call to a second server in the same process). 32 such calls at once
/// all succeed, and the user's runtime keeps running its own tasks meanwhile: a ticker
/// on it never stalls for long.
async fn blocking_library_in_async_handlers() {
    let backend = serve(
        Service::builder("tokio.Backend")
            .blocking_unary("Lookup", |request: Request<EchoRequest>| {
                std::thread::sleep(Duration::from_millis(20));
                Ok(Response::new(reply(request.into_inner().message, 0)))
            })
            .build(),
    );
    let library = client(&backend);
    let frontend = serve(
        Service::builder(SVC)
            .unary("Get", move |request: Request<EchoRequest>| {
                let library = library.clone();
                async move {
                    // The library's API is blocking; the handler calls it as it is.
                    let mut call = Request::new(request.into_inner());
                    call.set_timeout(Duration::from_secs(30));
                    let found: Response<EchoResponse> =
                        library.blocking_unary(path("tokio.Backend", "Lookup"), call)?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok(Response::new(found.into_inner()))
                }
            })
            .build(),
    );
    let client = client(&frontend);

    // A ticker on the user's runtime: the longest gap between its ticks.
    let longest_gap = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let longest_gap = longest_gap.clone();
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let gap = last.elapsed().as_millis() as usize;
                longest_gap.fetch_max(gap, Ordering::Relaxed);
                last = Instant::now();
            }
        })
    };
    let calls = (0..32).map(|i| {
        let client = client.clone();
        async move {
            let mut request = Request::new(req(&format!("key {i}")));
            request.set_timeout(Duration::from_secs(60));
            client
                .unary::<_, EchoResponse>(path(SVC, "Get"), request)
                .await
        }
    });
    let started = Instant::now();
    let results = futures::future::join_all(calls).await;
    let took = started.elapsed();
    ticker.abort();
    for (i, result) in results.iter().enumerate() {
        let reply = result
            .as_ref()
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"));
        assert_eq!(reply.get_ref().message, format!("key {i}"));
    }
    // Each backend call sleeps 20 ms; run one after another they would take 640 ms, so
    // most ran at once. The bound is generous for a loaded machine.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let gap = longest_gap.load(Ordering::Relaxed);
    assert!(
        gap < 2_000,
        "the runtime's own ticker stalled for {gap} ms while handlers blocked"
    );
    drop(client);
    frontend.shutdown(Duration::from_secs(5)).await;
    backend.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_handlers_calling_a_blocking_library_on_a_two_worker_runtime() {
    blocking_library_in_async_handlers().await;
}

#[tokio::test(flavor = "current_thread")]
async fn async_handlers_calling_a_blocking_library_on_a_current_thread_runtime() {
    blocking_library_in_async_handlers().await;
}

/// Without tokio (a plain test, smol, `futures::executor::block_on`), handlers run on the
/// built-in executor with no tokio runtime about them, as before.
#[test]
fn without_tokio_handlers_see_no_tokio_runtime() {
    let server = serve(
        Service::builder(SVC)
            .unary("Get", |_request: Request<EchoRequest>| async move {
                let found = tokio::runtime::Handle::try_current().is_ok();
                Ok(Response::new(reply(format!("tokio: {found}"), 0)))
            })
            .build(),
    );
    let client = client(&server);
    let on_block_on: Response<EchoResponse> =
        futures::executor::block_on(client.unary(path(SVC, "Get"), Request::new(req("x"))))
            .unwrap();
    assert_eq!(on_block_on.get_ref().message, "tokio: false");
    let on_smol: Response<EchoResponse> =
        smol::block_on(client.unary(path(SVC, "Get"), Request::new(req("x")))).unwrap();
    assert_eq!(on_smol.get_ref().message, "tokio: false");
    drop(client);
    server.shutdown(Duration::from_secs(5)).wait();
}

/// A `#[tokio::main]` program with tokio in its handlers runs to its end.
#[test]
fn tokio_main() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokio-main"))
        .output()
        .expect("run the tokio-main program");
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}
