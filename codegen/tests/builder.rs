//! Builder settings that change which files are generated or what they refer to.

use std::path::{Path, PathBuf};

use rsgrpc_codegen::{Builder, GeneratedFile};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn generate(builder: Builder, proto: &str) -> Vec<GeneratedFile> {
    let root = workspace();
    let includes = [root.join("examples/proto"), root.join("tests/proto")];
    let proto = includes
        .iter()
        .map(|i| i.join(proto))
        .find(|p| p.is_file())
        .unwrap();
    builder.generate_from_files(&[proto], &includes).unwrap().0
}

fn names(files: &[GeneratedFile]) -> Vec<&str> {
    files.iter().map(|f| f.name.as_str()).collect()
}

fn content<'a>(files: &'a [GeneratedFile], name: &str) -> &'a str {
    &files.iter().find(|f| f.name == name).unwrap().content
}

#[test]
fn well_known_types_come_from_prost_types_by_default() {
    let files = generate(Builder::new(), "corpus/app/v1/app.proto");
    assert_eq!(names(&files), ["corpus.app.v1.rs", "corpus.common.rs"]);
    assert!(content(&files, "corpus.app.v1.rs").contains("::prost_types::Timestamp"));
}

#[test]
fn compiling_the_well_known_types_generates_their_package() {
    let files = generate(
        Builder::new().compile_well_known_types(true),
        "corpus/app/v1/app.proto",
    );
    assert_eq!(
        names(&files),
        ["corpus.app.v1.rs", "corpus.common.rs", "google.protobuf.rs"]
    );
    let app = content(&files, "corpus.app.v1.rs");
    assert!(
        app.contains("super::super::super::google::protobuf::Timestamp"),
        "{app}"
    );
    assert!(!app.contains("prost_types"), "{app}");
    assert!(content(&files, "google.protobuf.rs").contains("pub struct Timestamp"));
}

#[test]
fn extern_path_packages_are_not_generated() {
    let files = generate(
        Builder::new().extern_path(".corpus.common", "::common_protos::common"),
        "corpus/app/v1/app.proto",
    );
    assert_eq!(names(&files), ["corpus.app.v1.rs"]);
    let app = content(&files, "corpus.app.v1.rs");
    assert!(app.contains("::common_protos::common::Shapes"), "{app}");
}

#[test]
fn extern_types_are_used_as_they_are_in_the_stubs() {
    // A stub module must not put `super::` before a path into another crate.
    let files = generate(
        Builder::new().extern_path(".helloworld.HelloReply", "hello_types::Reply"),
        "helloworld/helloworld.proto",
    );
    let code = content(&files, "helloworld.rs");
    assert!(
        code.contains("::rsgrpc::Response<hello_types::Reply>"),
        "{code}"
    );
    assert!(
        code.contains("::rsgrpc::IntoRequest<super::HelloRequest>"),
        "{code}"
    );
}

#[test]
fn emit_package_false_leaves_the_package_out_of_paths() {
    let files = generate(
        Builder::new().emit_package(false),
        "helloworld/helloworld.proto",
    );
    let code = content(&files, "helloworld.rs");
    assert!(code.contains("\"/Greeter/SayHello\""), "{code}");
    assert!(
        code.contains("pub const SERVICE_NAME: &str = \"Greeter\";"),
        "{code}"
    );
    assert!(!code.contains("helloworld.Greeter/"), "{code}");
}

#[test]
fn disable_comments_applies_to_services_too() {
    let files = generate(
        Builder::new().disable_comments(".helloworld"),
        "helloworld/helloworld.proto",
    );
    let code = content(&files, "helloworld.rs");
    assert!(!code.contains("Sends a greeting"), "{code}");
    assert!(!code.contains("The greeting service definition"), "{code}");
    assert!(!code.contains("Who to greet"), "{code}");
    // The stubs' own docs stay.
    assert!(
        code.contains("`/helloworld.Greeter/SayHello`: unary call."),
        "{code}"
    );
}

#[test]
fn prost_settings_are_builder_settings() {
    let plain = generate(Builder::new(), "corpus/common/types.proto");
    let plain = content(&plain, "corpus.common.rs");
    assert!(plain.contains("    Running = 1,"), "{plain}");
    assert!(!plain.contains("::prost::Name"), "{plain}");
    for builder in [
        Builder::new()
            .retain_enum_prefix(true)
            .enable_type_names(true)
            .type_name_domain(".corpus.common.Shapes", "example.com"),
        Builder::new()
            .parameter(concat!(
                "retain_enum_prefix,enable_type_names,",
                "type_name_domain=.corpus.common.Shapes=example.com"
            ))
            .unwrap(),
    ] {
        let files = generate(builder, "corpus/common/types.proto");
        let code = content(&files, "corpus.common.rs");
        assert!(code.contains("    StateRunning = 1,"), "{code}");
        assert!(code.contains("impl ::prost::Name for Scalars {"), "{code}");
        assert!(code.contains("\"/corpus.common.Scalars\".into()"), "{code}");
        assert!(
            code.contains("\"example.com/corpus.common.Shapes\".into()"),
            "{code}"
        );
        assert!(
            code.contains("\"example.com/corpus.common.Shapes.Nested\".into()"),
            "{code}"
        );
    }
}

#[test]
fn compile_writes_the_descriptor_set_and_the_include_file() {
    use prost::Message;
    let root = workspace();
    let out = std::env::temp_dir().join(format!("rsgrpc-builder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let descriptors = out.join("descriptors.bin");
    Builder::new()
        .out_dir(&out)
        .include_file("protos.rs")
        .file_descriptor_set_path(&descriptors)
        .emit_rerun_if_changed(false)
        .compile(
            &[root.join("tests/proto/corpus/app/v1/app.proto")],
            &[root.join("tests/proto")],
        )
        .unwrap();
    let set =
        prost_types::FileDescriptorSet::decode(std::fs::read(&descriptors).unwrap().as_slice())
            .unwrap();
    let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(files.contains(&"corpus/app/v1/app.proto"), "{files:?}");
    assert!(
        files.contains(&"google/protobuf/timestamp.proto"),
        "{files:?}"
    );
    let include = std::fs::read_to_string(out.join("protos.rs")).unwrap();
    assert!(
        include.contains("include!(\"corpus.app.v1.rs\");"),
        "{include}"
    );
    assert!(
        include.contains("include!(\"corpus.common.rs\");"),
        "{include}"
    );
    let _ = std::fs::remove_dir_all(out);
}
