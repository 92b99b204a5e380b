//! The checked-in stubs (`src/generated`) are what rsgrpc-codegen makes of the vendored
//! `proto/grpc/reflection/v1/reflection.proto` and `v1alpha/reflection.proto` today
//! (message bytes as `Bytes`, with each package's descriptor constant). To accept a change, regenerate them and
//! review the diff:
//!
//! ```text
//! RSGRPC_BLESS=1 cargo test -p rsgrpc-reflection --test generated
//! ```

use std::path::Path;

#[test]
fn checked_in_stubs_match_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (files, _) = rsgrpc_codegen::Builder::new()
        .bytes(".")
        .file_descriptor_set(true)
        .generate_from_files(
            &[
                root.join("proto/grpc/reflection/v1/reflection.proto"),
                root.join("proto/grpc/reflection/v1alpha/reflection.proto"),
            ],
            &[root.join("proto")],
        )
        .unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["grpc.reflection.v1.rs", "grpc.reflection.v1alpha.rs"]
    );
    let bless = std::env::var_os("RSGRPC_BLESS").is_some();
    for file in &files {
        let path = root.join("src/generated").join(&file.name);
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        if bless {
            if checked_in != file.content {
                std::fs::write(&path, &file.content).unwrap();
            }
        } else {
            assert!(
                checked_in == file.content,
                "{} differs from what rsgrpc-codegen generates; review and re-bless with \
                 RSGRPC_BLESS=1 cargo test -p rsgrpc-reflection --test generated",
                path.display()
            );
        }
    }
}
