//! The code the generator makes from the fuzz corpus's `generated--*` seeds is checked in
//! under `tests/generated/src/fuzz_seeds/<seed>/`, where the compile-only crate
//! `rsgrpc-generated-check` builds it under `#![deny(warnings)]` and clippy: the fuzz
//! target checks that output parses; this checks that it compiles. Regenerate with
//! `RSGRPC_BLESS=1 cargo test -p rsgrpc-fuzz-checks --test generated_seeds`.

use std::path::PathBuf;

use prost::Message;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_generated_seeds_output_is_what_the_check_crate_compiles() {
    let corpus = root().join("fuzz/corpus/codegen");
    let mut seeds: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("generated--"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "only {seeds:?}");
    let bless = std::env::var_os("RSGRPC_BLESS").is_some();
    let mut stale = Vec::new();
    let mut compiled = Vec::new();
    for seed in &seeds {
        let bytes = std::fs::read(corpus.join(seed)).unwrap();
        let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).unwrap();
        let names: Vec<String> = set.file.iter().map(|f| f.name().to_owned()).collect();
        let files = rsgrpc_codegen::Builder::new()
            .include_file("_includes.rs")
            .generate(&set, &names)
            .unwrap_or_else(|e| panic!("{seed}: {e}"));
        let dir = root()
            .join("tests/generated/src/fuzz_seeds")
            .join(seed.trim_start_matches("generated--"));
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        for file in &files {
            let path = dir.join(&file.name);
            if bless {
                std::fs::write(&path, &file.content).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&file.content) {
                stale.push(format!("{seed}: {}", file.name));
            }
        }
        if files.iter().any(|f| f.name == "_includes.rs") {
            compiled.push(seed.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "checked-in output differs for {stale:?}; review and re-bless with \
         RSGRPC_BLESS=1 cargo test -p rsgrpc-fuzz-checks --test generated_seeds"
    );
    // Every seed that generates code is one the check crate includes.
    let lib = std::fs::read_to_string(root().join("tests/generated/src/lib.rs")).unwrap();
    for seed in &compiled {
        let include = format!(
            "fuzz_seeds/{}/_includes.rs",
            seed.trim_start_matches("generated--")
        );
        assert!(
            lib.contains(&include),
            "tests/generated/src/lib.rs does not include {include}"
        );
    }
}
