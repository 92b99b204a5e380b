//! Rich error details between rsgrpc-types and tonic-types: a tonic client reads with
//! tonic-types the details an rsgrpc server sends, and rsgrpc-types reads the
//! `google.rpc.Status` tonic-types encodes.

use std::time::Duration;

use rsgrpc::server::{Server, Service};
use rsgrpc::{Code, Request, Response, Status};
use rsgrpc_types::StatusExt;
use tonic_types::StatusExt as _;

mod common;
use common::details;

#[test]
fn tonic_types_reads_the_details_an_rsgrpc_server_sends() {
    let _leaks = rsgrpc_tests::leak::check();
    let rich = Service::builder("rich.Rich")
        .blocking_unary("Fail", |_: Request<()>| -> Result<Response<()>, Status> {
            Err(Status::with_error_details(
                Code::FailedPrecondition,
                "rich",
                details(),
            ))
        })
        .build();
    let server = Server::builder()
        .add_service(rich)
        .bind("127.0.0.1:0")
        .unwrap();
    let target = format!("http://{}", server.local_addr());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async move {
        let channel = tonic::transport::Channel::from_shared(target)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let codec: tonic_prost::ProstCodec<(), ()> = tonic_prost::ProstCodec::default();
        grpc.unary(
            tonic::Request::new(()),
            tonic::codegen::http::uri::PathAndQuery::from_static("/rich.Rich/Fail"),
            codec,
        )
        .await
        .unwrap_err()
    });

    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(status.message(), "rich");
    let details = status.check_error_details().unwrap();
    let info = details.error_info().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("QUOTA", "example.com")
    );
    assert_eq!(info.metadata.get("zone").map(String::as_str), Some("eu"));
    assert_eq!(
        details.retry_info().unwrap().retry_delay,
        Some(Duration::new(3, 500))
    );
    let debug = details.debug_info().unwrap();
    assert_eq!(
        (debug.stack_entries.len(), debug.detail.as_str()),
        (2, "boom")
    );
    assert_eq!(
        details.quota_failure().unwrap().violations[0].subject,
        "user:1"
    );
    assert_eq!(
        details.precondition_failure().unwrap().violations[0].r#type,
        "TOS"
    );
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "name"
    );
    assert_eq!(details.request_info().unwrap().serving_data, "node 7");
    assert_eq!(details.resource_info().unwrap().resource_name, "b/1");
    assert_eq!(details.help().unwrap().links[0].url, "https://example.com");
    assert_eq!(details.localized_message().unwrap().message, "non");
}

#[test]
fn rsgrpc_types_reads_what_tonic_types_encodes() {
    let _leaks = rsgrpc_tests::leak::check();
    let mut sent = tonic_types::ErrorDetails::with_bad_request_violation("name", "empty");
    sent.set_retry_info(Some(Duration::from_millis(1500)))
        .set_error_info(
            "QUOTA",
            "example.com",
            [("zone".to_owned(), "eu".to_owned())],
        )
        .set_localized_message("fr-FR", "non");
    let tonic_status =
        tonic::Status::with_error_details(tonic::Code::InvalidArgument, "rich", sent);

    // What tonic puts in grpc-status-details-bin, as rsgrpc receives it.
    let status = Status::with_details(
        Code::InvalidArgument,
        tonic_status.message(),
        tonic_status.details().to_vec().into(),
    );
    let details = status.error_details().unwrap();
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].description,
        "empty"
    );
    assert_eq!(
        details.retry_info().unwrap().delay(),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(details.error_info().unwrap().domain, "example.com");
    assert_eq!(details.localized_message().unwrap().locale, "fr-FR");
}
