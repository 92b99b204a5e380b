//! Golden tests: the code generated for the corpus (`tests/proto` and the examples' protos
//! in `examples/proto`) is checked in under
//! `tests/generated/src/golden`, where a compile-only crate builds it with `#![deny(warnings)]`
//! and clippy. A change to the generator shows up as a diff to those files.
//!
//! To accept a change, regenerate them and review the diff:
//!
//! ```text
//! RSGRPC_BLESS=1 cargo test -p rsgrpc-codegen --test golden
//! ```

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The corpus files, relative to the include directories `examples/proto` (the examples'
/// protos) and `tests/proto`.
pub const CORPUS: &[&str] = &[
    "helloworld/helloworld.proto",
    "routeguide/route_guide.proto",
    "corpus/common/types.proto",
    "corpus/app/v1/app.proto",
];

#[test]
fn generated_code_matches_the_checked_in_golden_files() {
    let root = workspace();
    let includes = [root.join("examples/proto"), root.join("tests/proto")];
    let golden_dir = root.join("tests/generated/src/golden");
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
    let (files, inputs) = rsgrpc_codegen::Builder::new()
        .generate_from_files(&protos, &includes)
        .unwrap();
    assert_eq!(
        inputs.len(),
        CORPUS.len(),
        "every corpus file is an input: {inputs:?}"
    );
    let bless = std::env::var_os("RSGRPC_BLESS").is_some();
    let mut stale = Vec::new();
    for file in &files {
        let path = golden_dir.join(&file.name);
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        if golden != file.content {
            if bless {
                std::fs::write(&path, &file.content).unwrap();
            } else {
                stale.push(file.name.clone());
            }
        }
    }
    // No golden file may be left over from a package that is no longer generated.
    let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    names.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(&golden_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert!(
        stale.is_empty(),
        "generated code differs from the golden files {stale:?}; review and re-bless with \
         RSGRPC_BLESS=1 cargo test -p rsgrpc-codegen --test golden"
    );
    assert_eq!(
        on_disk, names,
        "golden files without a generated counterpart"
    );
}
