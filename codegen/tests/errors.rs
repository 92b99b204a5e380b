//! Bad `.proto` input gives an error naming the file, the place and the problem.

use std::path::PathBuf;

fn write_protos(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rsgrpc-codegen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

fn generate(dir: &PathBuf, file: &str) -> rsgrpc_codegen::Error {
    rsgrpc_codegen::Builder::new()
        .generate_from_files(&[dir.join(file)], &[dir])
        .unwrap_err()
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let dir = write_protos(
        "syntax",
        &[(
            "bad.proto",
            "syntax = \"proto3\";\npackage bad;\n\nmessage Broken {\n  string name = ;\n}\n",
        )],
    );
    let err = generate(&dir, "bad.proto");
    let text = err.to_string();
    assert!(err.is_invalid(), "{text}");
    assert!(text.starts_with("bad.proto:5:17:"), "{text}");
    assert!(text.contains("expected"), "{text}");
}

#[test]
fn missing_import_names_the_file_and_the_include_paths() {
    let dir = write_protos(
        "import",
        &[(
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nimport \"nowhere/b.proto\";\n",
        )],
    );
    let err = generate(&dir, "a.proto");
    let text = err.to_string();
    assert!(err.is_not_found(), "{text}");
    assert!(text.contains("nowhere/b.proto"), "{text}");
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains("a.proto:3:"), "{text}");
}

#[test]
fn unknown_method_input_type_is_named() {
    let dir = write_protos(
        "type",
        &[(
            "svc.proto",
            "syntax = \"proto3\";\npackage svc;\nmessage Out {}\n\
             service S {\n  rpc Call(MissingRequest) returns (Out);\n}\n",
        )],
    );
    let err = generate(&dir, "svc.proto");
    let text = err.to_string();
    assert!(err.is_invalid(), "{text}");
    assert!(text.contains("MissingRequest"), "{text}");
    assert!(text.contains("svc.proto:5:"), "{text}");
}

#[test]
fn missing_input_file_is_not_found() {
    let dir = write_protos("none", &[]);
    let err = rsgrpc_codegen::Builder::new()
        .generate_from_files(&[dir.join("absent.proto")], &[&dir])
        .unwrap_err();
    assert!(err.is_not_found() || err.is_io(), "{err}");
    assert!(err.to_string().contains("absent.proto"), "{err}");
}
