//! Compile-fail tests: bad arguments and bad `.proto` files are compile errors pointing at
//! the attribute, and stubs against a runtime without the version of `rsgrpc::codegen` they
//! name fail with an error naming it; with checked-in expected output (`ui/*.stderr`). To
//! accept new output: `TRYBUILD=overwrite cargo test -p rsgrpc-macros --test ui`, then
//! review the diff.
//!
//! trybuild compiles each case in `<target dir>/tests/trybuild/rsgrpc-macros`, which is then
//! the case's `CARGO_MANIFEST_DIR`, wherever the target directory is (`CARGO_TARGET_DIR` may
//! point outside the workspace). The `.proto` files the cases use are copied there first,
//! under `ui-protos/`, so the cases name them relative to it.

use std::path::{Path, PathBuf};

/// The directory trybuild builds the cases in: beside this test's own temporary
/// directory, under the same target directory.
fn trybuild_project_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .expect("the temporary directory is inside the target directory")
        .join("tests/trybuild/rsgrpc-macros")
}

#[test]
fn ui() {
    let protos = trybuild_project_dir().join("ui-protos");
    std::fs::create_dir_all(&protos).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in [
        manifest.join("tests/ui/broken.proto"),
        manifest.join("tests/ui/empty.proto"),
        manifest.join("tests/ui/editions.proto"),
        manifest.join("../examples/proto/helloworld/helloworld.proto"),
    ] {
        let name = source.file_name().unwrap();
        std::fs::copy(&source, protos.join(name)).unwrap();
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
