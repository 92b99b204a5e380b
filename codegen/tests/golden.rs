//! Golden tests: the code generated for the corpus (`tests/proto/corpus` and the examples'
//! protos in `examples/proto`) is checked in under `tests/generated/src/golden*`, where a
//! compile-only crate builds it with `#![deny(warnings)]` and clippy. A change to the
//! generator shows up as a diff to those files.
//!
//! Three sets are generated, each into its own directory:
//!
//! - `golden`: the whole corpus with default settings (the plugin and the macro must
//!   produce the same, see their tests);
//! - `golden_options`: some of it with most builder settings turned on, the well-known
//!   types compiled among them;
//! - `golden_split`: one package generated on its own, referring to a package generated in
//!   another run (the `golden` set) through `extern_path`;
//! - `golden_edge`: the names, packages, comments and file orders of
//!   `tests/generated/proto/edge`, which real APIs showed the generator got wrong.
//!
//! `tests/generated/golden_sets.rs` lists the sets, their files and their options, for
//! this test and the plugin's.
//!
//! To accept a change, regenerate them and review the diff:
//!
//! ```text
//! RSGRPC_BLESS=1 cargo test -p rsgrpc-codegen --test golden
//! ```

use std::path::{Path, PathBuf};

use rsgrpc_codegen::{Builder, GeneratedFile};

#[path = "../../tests/generated/golden_sets.rs"]
#[allow(dead_code, reason = "the plugin's test reads other parts of the list")]
mod golden_sets;

use golden_sets::{GoldenSet, INCLUDE_FILE};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn includes(set: &GoldenSet) -> Vec<PathBuf> {
    let root = workspace();
    set.includes.iter().map(|i| root.join(i)).collect()
}

fn find(set: &GoldenSet, proto: &str) -> PathBuf {
    includes(set)
        .iter()
        .map(|i| i.join(proto))
        .find(|f| f.is_file())
        .unwrap_or_else(|| panic!("{proto} is in no include directory of {}", set.dir))
}

/// Generates `set` from its protos in the order given, with its options.
fn generate(set: &GoldenSet, protos: &[&str]) -> Vec<GeneratedFile> {
    let mut builder = Builder::new().include_file(INCLUDE_FILE);
    for option in set.options {
        builder = builder.option(option).unwrap();
    }
    let protos: Vec<PathBuf> = protos.iter().map(|p| find(set, p)).collect();
    builder
        .generate_from_files(&protos, &includes(set))
        .unwrap()
        .0
}

/// Generates `set` and compares (or, when blessing, writes) the files in
/// `tests/generated/src/<dir>`.
fn check(set: &GoldenSet) -> Vec<String> {
    let dir = set.dir;
    let golden_dir = workspace().join("tests/generated/src").join(dir);
    let files = generate(set, set.protos);
    let bless = std::env::var_os("RSGRPC_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&golden_dir).unwrap();
    }
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
    let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    names.sort();
    if bless {
        for entry in std::fs::read_dir(&golden_dir).unwrap() {
            let entry = entry.unwrap();
            if !names.contains(&entry.file_name().to_string_lossy().into_owned()) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated code differs from the golden files {stale:?} in {dir}; review and \
         re-bless with RSGRPC_BLESS=1 cargo test -p rsgrpc-codegen --test golden"
    );
    // No golden file may be left over from a package that is no longer generated.
    let mut on_disk: Vec<String> = std::fs::read_dir(&golden_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk, names,
        "golden files without a generated counterpart in {dir}"
    );
    names
}

#[test]
fn the_corpus_matches_its_golden_files() {
    let names = check(&golden_sets::CORPUS);
    // One file per package, and the package named `mod` does not take the name `mod.rs`.
    for expected in [
        "helloworld.rs",
        "routeguide.rs",
        "corpus.common.rs",
        "corpus.app.v1.rs",
        "corpus.names.rs",
        "corpus.service_config.rs",
        "r#mod.rs",
        "_.rs",
        INCLUDE_FILE,
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
}

#[test]
fn builder_settings_match_their_golden_files() {
    let names = check(&golden_sets::OPTIONS);
    assert!(names.iter().any(|n| n == "google.protobuf.rs"), "{names:?}");
}

#[test]
fn a_package_generated_on_its_own_matches_its_golden_file() {
    // corpus.common is generated in another run (the `golden` set) and referred to there.
    let names = check(&golden_sets::SPLIT);
    assert_eq!(names, ["_includes.rs", "corpus.app.v1.rs"]);
}

#[test]
fn the_edge_cases_match_their_golden_files() {
    let names = check(&golden_sets::EDGE);
    // `edge.Dup` and `edge.dup` are one Rust module, so one file.
    assert!(names.iter().any(|n| n == "edge.dup.rs"), "{names:?}");
}

#[test]
fn every_set_is_generated_alike_whatever_the_order_of_its_files() {
    for set in golden_sets::ALL {
        let forward = generate(set, set.protos);
        let mut reversed: Vec<&str> = set.protos.to_vec();
        reversed.reverse();
        let backward = generate(set, &reversed);
        let mut rotated: Vec<&str> = set.protos.to_vec();
        rotated.rotate_left(set.protos.len() / 2);
        let rotated = generate(set, &rotated);
        assert!(
            forward == backward,
            "{}: reversed files, other code",
            set.dir
        );
        assert!(forward == rotated, "{}: rotated files, other code", set.dir);
    }
}
