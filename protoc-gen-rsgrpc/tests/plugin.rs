//! The plugin under Debian's protoc produces exactly what the build.rs API produces (the
//! golden files), and reports problems through protoc rather than panicking.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CORPUS: &[&str] = &[
    "helloworld/helloworld.proto",
    "routeguide/route_guide.proto",
    "corpus/common/types.proto",
    "corpus/app/v1/app.proto",
];

fn protoc() -> Command {
    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    let mut command = Command::new(protoc);
    command.arg(format!(
        "--plugin=protoc-gen-rsgrpc={}",
        env!("CARGO_BIN_EXE_protoc-gen-rsgrpc")
    ));
    command
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsgrpc-plugin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn plugin_output_is_identical_to_the_build_api_output() {
    let root = workspace();
    let out = temp_dir("corpus");
    let output = protoc()
        .arg(format!("--rsgrpc_out={}", out.display()))
        .arg("-I")
        .arg(root.join("examples/proto"))
        .arg("-I")
        .arg(root.join("tests/proto"))
        .args(CORPUS)
        .output()
        .expect("protoc must be installed (scripts/test.sh installs protobuf-compiler)");
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let golden = root.join("tests/generated/src/golden");
    let mut compared = 0;
    for entry in std::fs::read_dir(&golden).unwrap() {
        let entry = entry.unwrap();
        let expected = std::fs::read_to_string(entry.path()).unwrap();
        let name = entry.file_name();
        let actual = std::fs::read_to_string(out.join(&name))
            .unwrap_or_else(|_| panic!("the plugin did not write {name:?}"));
        assert!(
            actual == expected,
            "{name:?} differs between the plugin and build.rs"
        );
        compared += 1;
    }
    assert_eq!(compared, std::fs::read_dir(&out).unwrap().count());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn plugin_options_select_parts_and_bad_options_are_reported() {
    let root = workspace();
    let out = temp_dir("options");
    let status = protoc()
        .arg(format!("--rsgrpc_out={}", out.display()))
        .arg("--rsgrpc_opt=server=false,blocking=false")
        .arg("-I")
        .arg(root.join("examples/proto"))
        .arg("helloworld/helloworld.proto")
        .status()
        .unwrap();
    assert!(status.success());
    let code = std::fs::read_to_string(out.join("helloworld.rs")).unwrap();
    assert!(code.contains("pub struct GreeterClient"));
    assert!(!code.contains("GreeterBlockingClient"));
    assert!(!code.contains("pub trait Greeter"));

    let output = protoc()
        .arg(format!("--rsgrpc_out={}", out.display()))
        .arg("--rsgrpc_opt=colour=blue")
        .arg("-I")
        .arg(root.join("examples/proto"))
        .arg("helloworld/helloworld.proto")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown option \"colour\""), "{stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn proto3_optional_is_accepted_by_protoc() {
    // protoc refuses plugins that do not declare proto3-optional support for such files.
    let root = workspace();
    let out = temp_dir("optional");
    let output = protoc()
        .arg(format!("--rsgrpc_out={}", out.display()))
        .arg("-I")
        .arg(root.join("tests/proto"))
        .arg("corpus/common/types.proto")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let code = std::fs::read_to_string(out.join("corpus.common.rs")).unwrap();
    assert!(
        code.contains("maybe_count: ::core::option::Option<i32>"),
        "{code}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn garbage_on_stdin_is_an_error_response_not_a_panic() {
    use prost::Message;
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_protoc-gen-rsgrpc"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\xff\xff\xff not protobuf")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let response =
        prost_types::compiler::CodeGeneratorResponse::decode(output.stdout.as_slice()).unwrap();
    assert!(
        response.error().contains("not a CodeGeneratorRequest"),
        "{response:?}"
    );
}
