//! The reflection service over the wire, both versions, with rsgrpc's own generated
//! clients of both flavours, over a test proto with nested types, enums, a oneof, proto2
//! extensions and imports two levels deep.

use std::path::Path;

use futures::StreamExt;
use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use rsgrpc::server::{Server, ServerHandle};
use rsgrpc::{Channel, Code};
use rsgrpc_reflection::ReflectionService;
use rsgrpc_reflection::pb::v1::server_reflection_client::{
    ServerReflectionBlockingClient, ServerReflectionClient,
};
use rsgrpc_reflection::pb::v1::server_reflection_request::MessageRequest;
use rsgrpc_reflection::pb::v1::server_reflection_response::MessageResponse;
use rsgrpc_reflection::pb::v1::{ExtensionRequest, ServerReflectionRequest};
use rsgrpc_reflection::pb::{v1, v1alpha};

fn test_protos() -> FileDescriptorSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto");
    rsgrpc_codegen::Builder::new()
        .parse(&[root.join("reflect/things.proto")], &[&root])
        .unwrap()
}

fn serve(reflection: &ReflectionService) -> (ServerHandle, Channel) {
    let server = Server::builder()
        .add_service(reflection.v1())
        .add_service(reflection.v1alpha())
        .bind("127.0.0.1:0")
        .unwrap();
    let channel = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    (server, channel)
}

fn service() -> ReflectionService {
    ReflectionService::builder()
        .register_file_descriptor_set(test_protos())
        .build()
        .unwrap()
}

/// One stream, asked one question after another with the blocking client.
struct Session {
    sender: rsgrpc::RequestSender<ServerReflectionRequest>,
    responses: rsgrpc::BlockingStreaming<v1::ServerReflectionResponse>,
}

impl Session {
    fn open(channel: &Channel) -> Session {
        let (sender, responses) = ServerReflectionBlockingClient::new(channel.clone())
            .server_reflection_info()
            .unwrap();
        Session { sender, responses }
    }

    fn ask(&mut self, question: MessageRequest) -> MessageResponse {
        let request = ServerReflectionRequest {
            host: "localhost".into(),
            message_request: Some(question),
        };
        self.sender.send(request.clone()).unwrap();
        let response = self.responses.next().unwrap().unwrap();
        assert_eq!(response.original_request, Some(request));
        assert_eq!(response.valid_host, "localhost");
        response.message_response.unwrap()
    }

    /// The names of the files answered, in order.
    fn files(&mut self, question: MessageRequest) -> Vec<String> {
        match self.ask(question) {
            MessageResponse::FileDescriptorResponse(files) => files
                .file_descriptor_proto
                .iter()
                .map(|bytes| {
                    FileDescriptorProto::decode(&bytes[..])
                        .unwrap()
                        .name()
                        .to_owned()
                })
                .collect(),
            other => panic!("expected files, got {other:?}"),
        }
    }

    /// The code of an error answer.
    fn error(&mut self, question: MessageRequest) -> (Code, String) {
        match self.ask(question) {
            MessageResponse::ErrorResponse(error) => (
                Code::try_from(error.error_code).unwrap(),
                error.error_message,
            ),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

const THINGS: &str = "reflect/things.proto";
const THINGS_CLOSURE: [&str; 3] = [
    "reflect/things.proto",
    "reflect/common.proto",
    "reflect/deep/base.proto",
];

#[test]
fn list_services_names_the_registered_and_the_reflection_services() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, channel) = serve(&service());
    let mut session = Session::open(&channel);
    let MessageResponse::ListServicesResponse(list) =
        session.ask(MessageRequest::ListServices(String::new()))
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reflect.things.Catalog",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );

    let without = ReflectionService::builder()
        .register_file_descriptor_set(test_protos())
        .include_reflection_service(false)
        .build()
        .unwrap();
    assert_eq!(
        without.services().collect::<Vec<_>>(),
        ["reflect.things.Catalog"]
    );
}

#[test]
fn every_kind_of_symbol_gives_its_file_and_its_imports() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, channel) = serve(&service());
    let mut session = Session::open(&channel);
    for symbol in [
        "reflect.things.Catalog",
        "reflect.things.Catalog.Get",
        "reflect.things.Thing",
        "reflect.things.Thing.Part",
        "reflect.things.Thing.Part.Kind",
        "reflect.things.Thing.Part.BOLT",
        "reflect.things.Thing.Part.Kind.BOLT",
        "reflect.things.Thing.name",
        "reflect.things.Thing.choice",
        "reflect.things.Colour",
        "reflect.things.RED",
        "reflect.things.weight",
        "reflect.things.Holder.label",
        ".reflect.things.Thing",
    ] {
        assert_eq!(
            session.files(MessageRequest::FileContainingSymbol(symbol.into())),
            THINGS_CLOSURE,
            "{symbol}"
        );
    }
    assert_eq!(
        session.files(MessageRequest::FileContainingSymbol(
            "reflect.deep.Base".into()
        )),
        ["reflect/deep/base.proto"]
    );
    assert_eq!(
        session.files(MessageRequest::FileContainingSymbol(
            "grpc.reflection.v1alpha.ServerReflection".into()
        )),
        ["grpc/reflection/v1alpha/reflection.proto"]
    );
    for missing in ["reflect.things.Nope", "reflect.things", "Thing", ""] {
        let (code, message) = session.error(MessageRequest::FileContainingSymbol(missing.into()));
        assert_eq!(code, Code::NotFound, "{missing}");
        assert!(message.contains(&format!("{missing:?}")), "{message}");
    }
}

#[test]
fn files_by_name_and_extensions() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, channel) = serve(&service());
    let mut session = Session::open(&channel);
    assert_eq!(
        session.files(MessageRequest::FileByFilename(THINGS.into())),
        THINGS_CLOSURE
    );
    assert_eq!(
        session.files(MessageRequest::FileByFilename(
            "reflect/common.proto".into()
        )),
        ["reflect/common.proto", "reflect/deep/base.proto"]
    );
    let (code, _) = session.error(MessageRequest::FileByFilename("nope.proto".into()));
    assert_eq!(code, Code::NotFound);

    let extension = |number| {
        MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: "reflect.things.Thing".into(),
            extension_number: number,
        })
    };
    assert_eq!(session.files(extension(100)), THINGS_CLOSURE);
    assert_eq!(session.files(extension(150)), THINGS_CLOSURE);
    let (code, message) = session.error(extension(101));
    assert_eq!(code, Code::NotFound);
    assert!(message.contains("101"), "{message}");

    let MessageResponse::AllExtensionNumbersResponse(numbers) = session.ask(
        MessageRequest::AllExtensionNumbersOfType("reflect.things.Thing".into()),
    ) else {
        panic!("expected extension numbers");
    };
    assert_eq!(numbers.base_type_name, "reflect.things.Thing");
    assert_eq!(numbers.extension_number, [100, 150]);
    // A message without extensions has none; a type that is not a message is not found.
    let MessageResponse::AllExtensionNumbersResponse(numbers) = session.ask(
        MessageRequest::AllExtensionNumbersOfType("reflect.common.Shared".into()),
    ) else {
        panic!("expected extension numbers");
    };
    assert!(numbers.extension_number.is_empty());
    let (code, _) = session.error(MessageRequest::AllExtensionNumbersOfType(
        "reflect.things.Colour".into(),
    ));
    assert_eq!(code, Code::NotFound);
}

#[test]
fn a_request_asking_nothing_is_answered_with_an_error_and_the_stream_goes_on() {
    let _leaks = rsgrpc_tests::leak::check();
    let (_server, channel) = serve(&service());
    let (mut sender, mut responses) = ServerReflectionBlockingClient::new(channel)
        .server_reflection_info()
        .unwrap();
    sender.send(ServerReflectionRequest::default()).unwrap();
    let answer = responses.next().unwrap().unwrap();
    let Some(MessageResponse::ErrorResponse(error)) = answer.message_response else {
        panic!("expected an error");
    };
    assert_eq!(error.error_code, Code::InvalidArgument.as_i32());
    sender
        .send(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        })
        .unwrap();
    assert!(matches!(
        responses.next().unwrap().unwrap().message_response,
        Some(MessageResponse::ListServicesResponse(_))
    ));
    // Closing our side ends the call with OK.
    sender.finish();
    assert!(responses.next().is_none());
}

#[test]
fn v1alpha_answers_as_v1_does_with_the_async_client() {
    let _leaks = rsgrpc_tests::leak::check();
    use v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use v1alpha::server_reflection_response::MessageResponse as AlphaResponse;

    let (_server, channel) = serve(&service());
    futures::executor::block_on(async {
        let requests = futures::stream::iter([
            v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(AlphaRequest::FileContainingSymbol(
                    "reflect.things.Thing.Part".into(),
                )),
            },
            v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(AlphaRequest::FileByFilename("missing.proto".into())),
            },
        ]);
        let mut responses = AlphaClient::new(channel.clone())
            .server_reflection_info(requests)
            .await
            .unwrap()
            .into_inner();
        let Some(AlphaResponse::FileDescriptorResponse(files)) =
            responses.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected files");
        };
        assert_eq!(files.file_descriptor_proto.len(), 3);
        let Some(AlphaResponse::ErrorResponse(error)) =
            responses.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected an error");
        };
        assert_eq!(error.error_code, Code::NotFound.as_i32());
        assert!(responses.next().await.is_none());

        // The async v1 client, too.
        let requests = futures::stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]);
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(requests)
            .await
            .unwrap()
            .into_inner();
        assert!(matches!(
            responses.next().await.unwrap().unwrap().message_response,
            Some(MessageResponse::ListServicesResponse(_))
        ));
    });
}

#[test]
fn files_keep_their_source_info_and_sets_may_overlap() {
    let _leaks = rsgrpc_tests::leak::check();
    // The same files from two sets (one with source info, one without) are one file; the
    // one with source info is served.
    let with = test_protos();
    let mut without = with.clone();
    for file in &mut without.file {
        file.source_code_info = None;
    }
    let reflection = ReflectionService::builder()
        .register_encoded_file_descriptor_set(&without.encode_to_vec())
        .register_file_descriptor_set(with)
        .build()
        .unwrap();
    let (_server, channel) = serve(&reflection);
    let mut session = Session::open(&channel);
    let MessageResponse::FileDescriptorResponse(files) =
        session.ask(MessageRequest::FileByFilename(THINGS.into()))
    else {
        panic!("expected files");
    };
    let things = FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert!(things.source_code_info.is_some());
}

#[test]
fn bad_descriptor_sets_are_refused_with_a_reason() {
    let _leaks = rsgrpc_tests::leak::check();
    let err = ReflectionService::builder()
        .register_encoded_file_descriptor_set(b"\xff\xff not a descriptor set")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
    assert!(std::error::Error::source(&err).is_some());

    // An import that is in no set.
    let mut set = test_protos();
    set.file.retain(|f| f.name() != "reflect/deep/base.proto");
    let err = ReflectionService::builder()
        .register_file_descriptor_set(set)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"reflect/common.proto\" imports \"reflect/deep/base.proto\""),
        "{err}"
    );

    // One name, two contents.
    let mut changed = test_protos();
    changed.file[0].package = Some("other".into());
    let err = ReflectionService::builder()
        .register_file_descriptor_set(test_protos())
        .register_file_descriptor_set(changed)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("different contents"), "{err}");

    // One symbol, two files.
    let mut twin = test_protos();
    for file in &mut twin.file {
        let name = format!("twin/{}", file.name());
        file.name = Some(name);
        for dependency in &mut file.dependency {
            *dependency = format!("twin/{dependency}");
        }
    }
    let err = ReflectionService::builder()
        .register_file_descriptor_set(test_protos())
        .register_file_descriptor_set(twin)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("is defined by both"), "{err}");
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let _leaks = rsgrpc_tests::leak::check();
    // A writer sends requests without waiting for answers while the reader takes them:
    // the server reads the next request only when the call has room for its answer, and
    // every one is answered, in order.
    let (_server, channel) = serve(&service());
    let (mut sender, responses) = ServerReflectionBlockingClient::new(channel)
        .server_reflection_info()
        .unwrap();
    const REQUESTS: usize = 2000;
    let writer = std::thread::spawn(move || {
        for i in 0..REQUESTS {
            let name = if i % 2 == 0 { THINGS } else { "missing.proto" };
            sender
                .send(ServerReflectionRequest {
                    host: i.to_string(),
                    message_request: Some(MessageRequest::FileByFilename(name.into())),
                })
                .unwrap();
        }
        sender.finish();
    });
    let mut answered = 0;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.valid_host, answered.to_string());
        let files = matches!(
            response.message_response,
            Some(MessageResponse::FileDescriptorResponse(_))
        );
        assert_eq!(files, answered % 2 == 0);
        answered += 1;
    }
    writer.join().unwrap();
    assert_eq!(answered, REQUESTS);
}
