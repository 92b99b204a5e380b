//! The clients on every kind of caller: plain threads, tokio, smol and
//! `futures::executor::block_on`.

use rsgrpc::{Request, Response};
use rsgrpc_tests::{EchoResponse, UNARY, path, req};

use crate::support::{Flavour, SVC, client, server, tokio_rt};

#[test]
fn blocking_client_inside_tokio_tasks() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let client = client(&server);

    // A task on a multi-threaded runtime.
    let rt = tokio_rt();
    let c = client.clone();
    let reply = rt
        .block_on(async move {
            tokio::spawn(async move {
                c.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("mt")))
            })
            .await
        })
        .unwrap()
        .unwrap();
    assert_eq!(reply.get_ref().message, "mt");

    // Directly inside a current-thread runtime's block_on, where nested runtimes panic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt
        .block_on(async {
            client.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("ct")))
        })
        .unwrap();
    assert_eq!(reply.get_ref().message, "ct");
}

#[test]
fn blocking_client_inside_a_smol_task() {
    // smol's global executor and reactor start on first use and live on: start them
    // before the baseline, whichever smol test runs first.
    let _leaks = rsgrpc_tests::leak::check_after(|| smol::block_on(smol::spawn(async {})));
    let (server, _) = server(Flavour::Async);
    let client = client(&server);
    let reply = smol::block_on(smol::spawn(async move {
        client.blocking_unary::<_, EchoResponse>(path(SVC, UNARY), Request::new(req("smol")))
    }))
    .unwrap();
    assert_eq!(reply.get_ref().message, "smol");
}

#[test]
fn async_client_on_tokio() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let client = client(&server);
    let rt = tokio_rt();
    let replies = rt.block_on(async move {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let reply: Response<EchoResponse> = client
                        .unary(path(SVC, UNARY), Request::new(req(&format!("t{i}"))))
                        .await
                        .unwrap();
                    reply.into_inner().message
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let expected: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    assert_eq!(replies, expected);
}

#[test]
fn async_client_on_smol() {
    // smol's global executor and reactor start on first use and live on: start them
    // before the baseline.
    let _leaks = rsgrpc_tests::leak::check_after(|| smol::block_on(smol::spawn(async {})));
    let (server, _) = server(Flavour::Async);
    let client = client(&server);
    let reply: Response<EchoResponse> = smol::block_on(smol::spawn(async move {
        client
            .unary(path(SVC, UNARY), Request::new(req("smol-async")))
            .await
    }))
    .unwrap();
    assert_eq!(reply.get_ref().message, "smol-async");
}

#[test]
fn async_client_on_futures_block_on() {
    let _leaks = rsgrpc_tests::leak::check();
    let (server, _) = server(Flavour::Blocking);
    let client = client(&server);
    let reply: Response<EchoResponse> =
        futures::executor::block_on(client.unary(path(SVC, UNARY), Request::new(req("block-on"))))
            .unwrap();
    assert_eq!(reply.get_ref().message, "block-on");
}
