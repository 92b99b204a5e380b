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

#[test]
fn debug_reads_like_display() {
    // A build script returning Result<(), Box<dyn Error>> prints the error's Debug.
    let dir = write_protos(
        "debug",
        &[("bad.proto", "syntax = \"proto3\";\nmessage {}\n")],
    );
    let err = generate(&dir, "bad.proto");
    assert_eq!(format!("{err:?}"), err.to_string());
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(
        format!("{boxed:?}").starts_with("bad.proto:2:"),
        "{boxed:?}"
    );
}

#[test]
fn enum_values_with_one_rust_name_are_an_error_not_a_panic() {
    // prost-build panics on these; they must be an error naming them.
    let dir = write_protos(
        "enum",
        &[(
            "e.proto",
            "syntax = \"proto3\";\npackage e;\nenum Mode {\n  MODE_FOO_BAR = 0;\n  \
             MODE_FooBar = 1;\n}\n",
        )],
    );
    let result =
        rsgrpc_codegen::Builder::new().generate_from_files(&[dir.join("e.proto")], &[&dir]);
    let err = result.unwrap_err();
    assert!(err.is_invalid(), "{err}");
    assert!(
        err.to_string()
            .contains("values MODE_FOO_BAR and MODE_FooBar of enum e.Mode"),
        "{err}"
    );
}

#[test]
fn services_or_methods_with_one_rust_name_are_named() {
    let dir = write_protos(
        "rust-names",
        &[(
            "s.proto",
            "syntax = \"proto3\";\npackage s;\nmessage M {}\nservice S {\n  \
             rpc GetItem(M) returns (M);\n  rpc Get_Item(M) returns (M);\n}\n",
        )],
    );
    let err = generate(&dir, "s.proto");
    assert!(err.is_invalid(), "{err}");
    assert!(err.to_string().contains("GetItem and Get_Item"), "{err}");
}

#[test]
fn an_attribute_that_does_not_parse_is_an_option_error() {
    let dir = write_protos(
        "attr",
        &[(
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nmessage M {}\n",
        )],
    );
    let err = rsgrpc_codegen::Builder::new()
        .type_attribute(".a.M", "#[derive(Eq")
        .generate_from_files(&[dir.join("a.proto")], &[&dir])
        .unwrap_err();
    assert!(err.is_option(), "{err}");
    assert!(
        err.to_string().contains("type_attribute for \".a.M\""),
        "{err}"
    );
}

#[test]
fn parallel_protoc_compilations_do_not_share_a_temporary_file() {
    // Several compilations in one build script (one process) each get their own
    // descriptor file; with a file named by the process id they read each other's.
    let dir = write_protos(
        "parallel",
        &(0..6)
            .map(|i| {
                (
                    Box::leak(format!("p{i}.proto").into_boxed_str()) as &str,
                    Box::leak(
                        format!("syntax = \"proto3\";\npackage p{i};\nmessage M{i} {{}}\n")
                            .into_boxed_str(),
                    ) as &str,
                )
            })
            .collect::<Vec<_>>(),
    );
    let protoc = rsgrpc_codegen::Parser::Protoc(None);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let dir = &dir;
                let protoc = protoc.clone();
                scope.spawn(move || {
                    for _ in 0..5 {
                        let set = rsgrpc_codegen::Builder::new()
                            .parser(protoc.clone())
                            .parse(&[dir.join(format!("p{i}.proto"))], &[dir])
                            .expect("protoc must be installed (scripts/test.sh installs it)");
                        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
                        assert_eq!(names, [format!("p{i}.proto")]);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    });
}

#[test]
fn editions_are_refused_naming_the_file_and_what_to_do() {
    // The same error whichever way the file comes in: the file itself, an import, or
    // through protoc (which, older than editions, fails on the `edition` line).
    let dir = write_protos(
        "editions",
        &[
            (
                "ed.proto",
                "// An editions file.\nedition = \"2023\";\npackage ed;\nmessage M {\n  int32 a = 1;\n}\n",
            ),
            (
                "user.proto",
                "syntax = \"proto3\";\npackage user;\nimport \"ed.proto\";\nmessage U {\n  ed.M m = 1;\n}\n",
            ),
        ],
    );
    let direct = generate(&dir, "ed.proto");
    let text = direct.to_string();
    assert!(direct.is_invalid(), "{text}");
    assert!(text.starts_with("ed.proto: protobuf editions"), "{text}");
    assert!(text.contains("declare `syntax = \"proto3\"`"), "{text}");
    let imported = generate(&dir, "user.proto");
    assert_eq!(imported.to_string(), text);
    let protoc = rsgrpc_codegen::Builder::new()
        .parser(rsgrpc_codegen::Parser::Protoc(None))
        .generate_from_files(&[dir.join("ed.proto")], &[&dir])
        .unwrap_err();
    assert_eq!(protoc.to_string(), text);
}

#[test]
fn services_of_packages_that_share_a_module_are_named() {
    // `x.Dup` and `x.dup` are both the Rust module `x::dup`: two `Svc` there would define
    // `svc_client` twice.
    let dir = write_protos(
        "one-module",
        &[
            (
                "upper.proto",
                "syntax = \"proto3\";\npackage x.Dup;\nmessage A {}\nservice Svc {\n  rpc Call(A) returns (A);\n}\n",
            ),
            (
                "lower.proto",
                "syntax = \"proto3\";\npackage x.dup;\nmessage B {}\nservice Svc {\n  rpc Call(B) returns (B);\n}\n",
            ),
        ],
    );
    for order in [
        ["upper.proto", "lower.proto"],
        ["lower.proto", "upper.proto"],
    ] {
        let err = rsgrpc_codegen::Builder::new()
            .generate_from_files(&order.map(|f| dir.join(f)), &[&dir])
            .unwrap_err();
        assert!(err.is_invalid(), "{err}");
        assert_eq!(
            err.to_string(),
            "upper.proto: services x.dup.Svc (lower.proto) and x.Dup.Svc (upper.proto) would \
             get the same Rust names in the Rust module x::dup; rename one"
        );
    }
}
