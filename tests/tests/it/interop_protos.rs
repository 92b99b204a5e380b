//! Our `grpc/testing` protos agree with gRPC's own (Debian's grpc-proto package, installed
//! by scripts/test.sh): same names, numbers and types, so real interop peers understand us.

use prost_types::{DescriptorProto, FileDescriptorSet};

const REFERENCE: &str = "/usr/share/grpc-proto";

fn parse(file: &str, include: &str) -> FileDescriptorSet {
    rsgrpc_codegen::Builder::new()
        .parse(&[format!("{include}/{file}")], &[include])
        .unwrap_or_else(|e| panic!("{e} (is grpc-proto installed? scripts/test.sh installs it)"))
}

fn messages(set: &FileDescriptorSet) -> Vec<&DescriptorProto> {
    set.file
        .iter()
        .filter(|f| f.package() == "grpc.testing")
        .flat_map(|f| &f.message_type)
        .collect()
}

#[test]
fn interop_protos_match_grpcs_own() {
    let _leaks = rsgrpc_tests::leak::check();
    let ours_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let ours = parse("grpc/testing/test.proto", ours_dir);
    let reference = parse("grpc/testing/test.proto", REFERENCE);

    let reference_messages = messages(&reference);
    let mut checked_fields = 0;
    for message in messages(&ours) {
        let theirs = reference_messages
            .iter()
            .find(|m| m.name() == message.name())
            .unwrap_or_else(|| panic!("grpc.testing.{} is not a standard message", message.name()));
        for field in &message.field {
            let other = theirs
                .field
                .iter()
                .find(|f| f.number() == field.number())
                .unwrap_or_else(|| {
                    panic!(
                        "{}.{} has a non-standard number",
                        message.name(),
                        field.name()
                    )
                });
            assert_eq!(
                (
                    field.name(),
                    field.r#type(),
                    field.type_name(),
                    field.label()
                ),
                (
                    other.name(),
                    other.r#type(),
                    other.type_name(),
                    other.label()
                ),
                "field {} of {}",
                field.number(),
                message.name()
            );
            checked_fields += 1;
        }
    }
    assert!(checked_fields > 30, "only {checked_fields} fields compared");

    let services = |set: &FileDescriptorSet| {
        set.file
            .iter()
            .flat_map(|f| f.service.clone())
            .collect::<Vec<_>>()
    };
    let reference_services = services(&reference);
    for name in ["TestService", "UnimplementedService"] {
        let ours = services(&ours)
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap();
        let theirs = reference_services
            .iter()
            .find(|s| s.name() == name)
            .unwrap();
        let shape = |s: &prost_types::ServiceDescriptorProto| {
            s.method
                .iter()
                .map(|m| {
                    (
                        m.name().to_owned(),
                        m.input_type().to_owned(),
                        m.output_type().to_owned(),
                        m.client_streaming(),
                        m.server_streaming(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&ours), shape(theirs), "service {name}");
    }
}
