//! The plugin under Debian's protoc produces exactly what the build.rs API produces (the
//! golden files), fits workflows that run it several times into one directory, and reports
//! problems through protoc rather than panicking.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[path = "../../tests/generated/golden_sets.rs"]
#[allow(
    dead_code,
    reason = "the build API's test reads other parts of the list"
)]
mod golden_sets;

use golden_sets::GoldenSet;

/// The corpus of the `golden` set.
const CORPUS: &[&str] = golden_sets::CORPUS.protos;

fn protoc() -> Command {
    protoc_with(golden_sets::CORPUS.includes)
}

/// protoc with the plugin, searching `includes` (relative to the workspace root).
fn protoc_with(includes: &[&str]) -> Command {
    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    let mut command = Command::new(protoc);
    command.arg(format!(
        "--plugin=protoc-gen-rsgrpc={}",
        env!("CARGO_BIN_EXE_protoc-gen-rsgrpc")
    ));
    let root = workspace();
    for include in includes {
        command.arg("-I").arg(root.join(include));
    }
    command
}

/// Runs protoc with the plugin writing into `out`, with `options` as `--rsgrpc_opt`.
fn run(out: &Path, options: Option<&str>, protos: &[&str]) -> Output {
    let mut command = protoc();
    command.arg(format!("--rsgrpc_out={}", out.display()));
    if let Some(options) = options {
        command.arg(format!("--rsgrpc_opt={options}"));
    }
    command
        .args(protos)
        .output()
        .expect("protoc must be installed (scripts/test.sh installs protobuf-compiler)")
}

fn run_ok(out: &Path, options: Option<&str>, protos: &[&str]) {
    let output = run(out, options, protos);
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsgrpc-plugin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file in `golden` (a directory of `tests/generated/src`) is in `out`, identical.
fn assert_same_as_golden(out: &Path, golden: &str) {
    let golden = workspace().join("tests/generated/src").join(golden);
    assert_eq!(files_in(out), files_in(&golden));
    for name in files_in(&golden) {
        let expected = std::fs::read_to_string(golden.join(&name)).unwrap();
        let actual = std::fs::read_to_string(out.join(&name)).unwrap();
        assert!(
            actual == expected,
            "{name} differs between the plugin and build.rs"
        );
    }
}

/// The plugin's parameter for `set`: its options, commas escaped, and the include file.
fn parameter(set: &GoldenSet) -> String {
    set.options
        .iter()
        .map(|option| option.replace(',', "\\,"))
        .chain([format!("include_file={}", golden_sets::INCLUDE_FILE)])
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn plugin_output_is_identical_to_the_build_api_output() {
    // Every set the plugin can produce, with its files in their order and reversed: the
    // code does not depend on the order (protoc lists imports before their importers).
    for set in golden_sets::ALL.iter().filter(|set| set.plugin) {
        let mut reversed = set.protos.to_vec();
        reversed.reverse();
        for (name, protos) in [("forward", set.protos.to_vec()), ("reversed", reversed)] {
            let out = temp_dir(&format!("{}-{name}", set.dir));
            let mut command = protoc_with(set.includes);
            command
                .arg(format!("--rsgrpc_out={}", out.display()))
                .arg(format!("--rsgrpc_opt={}", parameter(set)))
                .args(&protos);
            let output = command.output().expect("protoc must be installed");
            assert!(
                output.status.success(),
                "protoc failed on {}: {}",
                set.dir,
                String::from_utf8_lossy(&output.stderr)
            );
            assert_same_as_golden(&out, set.dir);
            let _ = std::fs::remove_dir_all(out);
        }
    }
}

#[test]
fn without_include_file_only_package_files_are_written() {
    let out = temp_dir("no-include");
    run_ok(&out, None, &["helloworld/helloworld.proto"]);
    assert_eq!(files_in(&out), ["helloworld.rs"]);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn runs_into_one_directory_keep_each_others_files() {
    // As buf runs a plugin: once per directory, into the same output directory. The
    // second run refers to the package of the first through extern_path.
    let out = temp_dir("two-runs");
    run_ok(&out, None, &["corpus/common/types.proto"]);
    run_ok(
        &out,
        Some("extern_path=.corpus.common=crate::golden::corpus::common"),
        &["corpus/app/v1/app.proto"],
    );
    assert_eq!(files_in(&out), ["corpus.app.v1.rs", "corpus.common.rs"]);
    // The same as the build API's output for one package on its own, which the
    // compile-only crate builds against the other run's package.
    let split = workspace().join("tests/generated/src/golden_split/corpus.app.v1.rs");
    assert_eq!(
        std::fs::read_to_string(out.join("corpus.app.v1.rs")).unwrap(),
        std::fs::read_to_string(split).unwrap()
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_package_named_mod_overwrites_no_include_file() {
    let out = temp_dir("mod");
    run_ok(
        &out,
        Some("include_file=mod.rs"),
        &["corpus/mod/mod.proto", "helloworld/helloworld.proto"],
    );
    assert_eq!(files_in(&out), ["helloworld.rs", "mod.rs", "r#mod.rs"]);
    let include = std::fs::read_to_string(out.join("mod.rs")).unwrap();
    assert!(include.contains("pub mod r#mod {"), "{include}");
    assert!(include.contains("include!(\"r#mod.rs\");"), "{include}");

    // An include file named like a package's file is refused rather than overwriting it.
    let output = run(
        &out,
        Some("include_file=helloworld.rs"),
        &["helloworld/helloworld.proto"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("include file helloworld.rs"), "{stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn plugin_options_select_parts_and_bad_options_are_reported() {
    let out = temp_dir("options");
    run_ok(
        &out,
        Some("server=false,blocking=false"),
        &["helloworld/helloworld.proto"],
    );
    let code = std::fs::read_to_string(out.join("helloworld.rs")).unwrap();
    assert!(code.contains("pub struct GreeterClient"));
    assert!(!code.contains("GreeterBlockingClient"));
    assert!(!code.contains("pub trait Greeter"));
    assert!(!code.contains("greeter_server"));

    let output = run(&out, Some("colour=blue"), &["helloworld/helloworld.proto"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown option \"colour\""), "{stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn commas_in_option_values_are_escaped() {
    let out = temp_dir("commas");
    // Unescaped, the comma splits the value, and the error says how to escape it.
    let output = run(
        &out,
        Some("type_attribute=.=#[derive(A, B)]"),
        &["helloworld/helloworld.proto"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown option \"B)]\""), "{stderr}");
    assert!(stderr.contains("write the comma as `\\,`"), "{stderr}");

    run_ok(
        &out,
        Some(
            r"type_attribute=.helloworld.HelloRequest=#[cfg_attr(any()\, derive(Default))],async=false",
        ),
        &["helloworld/helloworld.proto"],
    );
    let code = std::fs::read_to_string(out.join("helloworld.rs")).unwrap();
    assert!(
        code.contains("#[cfg_attr(any(), derive(Default))]\n#[derive(Clone, PartialEq"),
        "{code}"
    );
    assert!(!code.contains("pub struct GreeterClient"), "{code}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn proto3_optional_is_accepted_by_protoc() {
    // protoc refuses plugins that do not declare proto3-optional support for such files.
    let out = temp_dir("optional");
    run_ok(&out, None, &["corpus/common/types.proto"]);
    let code = std::fs::read_to_string(out.join("corpus.common.rs")).unwrap();
    assert!(
        code.contains("maybe_count: ::core::option::Option<i32>"),
        "{code}"
    );
    let _ = std::fs::remove_dir_all(out);
}

/// Runs the plugin binary on `input` and decodes its response.
fn respond(input: &[u8]) -> prost_types::compiler::CodeGeneratorResponse {
    use prost::Message;
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_protoc-gen-rsgrpc"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    prost_types::compiler::CodeGeneratorResponse::decode(output.stdout.as_slice()).unwrap()
}

#[test]
fn garbage_on_stdin_is_an_error_response_not_a_panic() {
    let response = respond(b"\xff\xff\xff not protobuf");
    assert!(
        response.error().contains("not a CodeGeneratorRequest"),
        "{response:?}"
    );
}

#[test]
fn a_malformed_request_is_an_error_response_not_a_panic() {
    use prost::Message;
    use prost_types::compiler::CodeGeneratorRequest;
    use prost_types::{FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};
    // A method whose input type is not fully qualified: prost-build would panic on it.
    let request = CodeGeneratorRequest {
        file_to_generate: vec!["bad.proto".to_owned()],
        proto_file: vec![FileDescriptorProto {
            name: Some("bad.proto".to_owned()),
            package: Some("bad".to_owned()),
            service: vec![ServiceDescriptorProto {
                name: Some("Svc".to_owned()),
                method: vec![MethodDescriptorProto {
                    name: Some("Call".to_owned()),
                    input_type: Some("Req".to_owned()),
                    output_type: Some(".bad.Resp".to_owned()),
                    ..MethodDescriptorProto::default()
                }],
                ..ServiceDescriptorProto::default()
            }],
            ..FileDescriptorProto::default()
        }],
        ..CodeGeneratorRequest::default()
    };
    let response = respond(&request.encode_to_vec());
    assert!(response.error().contains("bad.Svc.Call"), "{response:?}");
    assert!(response.error().contains("\"Req\""), "{response:?}");
}

#[test]
fn the_descriptor_constant_is_the_build_api_constant() {
    // protoc hands the plugin descriptors it made itself; the build API parses with protox.
    // With source info left out, both give the same bytes.
    let out = temp_dir("descriptors");
    run_ok(&out, Some("file_descriptor_set"), CORPUS);
    let root = workspace();
    let includes = [root.join("examples/proto"), root.join("tests/proto")];
    let protos: Vec<PathBuf> = CORPUS
        .iter()
        .map(|p| {
            includes
                .iter()
                .map(|i| i.join(p))
                .find(|f| f.is_file())
                .unwrap()
        })
        .collect();
    let (files, _) = rsgrpc_codegen::Builder::new()
        .file_descriptor_set(true)
        .generate_from_files(&protos, &includes)
        .unwrap();
    assert_eq!(files_in(&out).len(), files.len());
    for file in files {
        assert!(
            file.content
                .contains("pub const FILE_DESCRIPTOR_SET: &[u8]")
        );
        let plugin = std::fs::read_to_string(out.join(&file.name)).unwrap();
        assert!(
            plugin == file.content,
            "{} differs between the plugin and build.rs",
            file.name
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn an_editions_file_gets_the_build_apis_error() {
    use prost::Message;
    use prost_types::FileDescriptorProto;
    use prost_types::compiler::CodeGeneratorRequest;
    // Debian's protoc is older than editions and fails on them itself; a newer one hands
    // the plugin descriptors with syntax "editions", as here.
    let request = CodeGeneratorRequest {
        file_to_generate: vec!["ed.proto".to_owned()],
        proto_file: vec![FileDescriptorProto {
            name: Some("ed.proto".to_owned()),
            package: Some("ed".to_owned()),
            syntax: Some("editions".to_owned()),
            ..FileDescriptorProto::default()
        }],
        ..CodeGeneratorRequest::default()
    };
    let response = respond(&request.encode_to_vec());
    let dir = temp_dir("editions");
    std::fs::write(
        dir.join("ed.proto"),
        "edition = \"2023\";\npackage ed;\nmessage M {}\n",
    )
    .unwrap();
    let build_api = rsgrpc_codegen::Builder::new()
        .generate_from_files(&[dir.join("ed.proto")], &[&dir])
        .unwrap_err();
    assert_eq!(response.error(), build_api.to_string());
    assert!(response.error().starts_with("ed.proto: protobuf editions"));
    let _ = std::fs::remove_dir_all(dir);
}
