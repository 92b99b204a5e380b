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
//!   another run (the `golden` set) through `extern_path`.
//!
//! To accept a change, regenerate them and review the diff:
//!
//! ```text
//! RSGRPC_BLESS=1 cargo test -p rsgrpc-codegen --test golden
//! ```

use std::path::{Path, PathBuf};

use rsgrpc_codegen::Builder;

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
    "corpus/names/names.proto",
    "corpus/service_config/service_config.proto",
    "corpus/mod/mod.proto",
    "corpus/nopackage.proto",
];

/// The name of the include file in each golden directory.
pub const INCLUDE_FILE: &str = "_includes.rs";

fn includes() -> [PathBuf; 2] {
    let root = workspace();
    [root.join("examples/proto"), root.join("tests/proto")]
}

fn find(proto: &str) -> PathBuf {
    includes()
        .iter()
        .map(|i| i.join(proto))
        .find(|f| f.is_file())
        .unwrap_or_else(|| panic!("{proto} is in neither include directory"))
}

/// Generates `protos` with `builder` and compares (or, when blessing, writes) the files in
/// `tests/generated/src/<dir>`.
fn check(dir: &str, builder: Builder, protos: &[&str]) -> Vec<String> {
    let golden_dir = workspace().join("tests/generated/src").join(dir);
    let protos: Vec<PathBuf> = protos.iter().map(|p| find(p)).collect();
    let (files, _) = builder
        .include_file(INCLUDE_FILE)
        .generate_from_files(&protos, &includes())
        .unwrap();
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
    let names = check("golden", Builder::new(), CORPUS);
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
    let builder = Builder::new()
        .compile_well_known_types(true)
        .generate_default_stubs(true)
        .emit_package(false)
        .client_attribute(".routeguide.RouteGuide", "#[doc(alias = \"guide\")]")
        .client_attribute(".helloworld.Greeter.SayHello", "#[inline]")
        .server_attribute(
            ".",
            "#[must_use = \"a server does nothing until it is added to a ServerBuilder\"]",
        )
        .trait_attribute("Greeter", "#[doc(alias = \"greeting\")]")
        .trait_attribute("RouteGuide.RouteChat", "#[doc(alias = \"chat\")]")
        .client_mod_attribute(".helloworld", "#[doc(alias = \"clients\")]")
        .server_mod_attribute(".helloworld", "#[doc(alias = \"servers\")]")
        .message_attribute(".helloworld", "#[derive(PartialOrd)]")
        .enum_attribute(".corpus.common", "#[doc(alias = \"status\")]")
        .boxed(".corpus.service_config.ServiceConfig.big")
        .skip_debug(".helloworld.HelloReply")
        .disable_comments(".routeguide")
        .file_descriptor_set(true);
    let names = check(
        "golden_options",
        builder,
        &[
            "helloworld/helloworld.proto",
            "routeguide/route_guide.proto",
            "corpus/app/v1/app.proto",
            "corpus/service_config/service_config.proto",
        ],
    );
    assert!(names.iter().any(|n| n == "google.protobuf.rs"), "{names:?}");
}

#[test]
fn a_package_generated_on_its_own_matches_its_golden_file() {
    // corpus.common is generated in another run (the `golden` set) and referred to there.
    let names = check(
        "golden_split",
        Builder::new().extern_path(".corpus.common", "crate::golden::corpus::common"),
        &["corpus/app/v1/app.proto"],
    );
    assert_eq!(names, ["_includes.rs", "corpus.app.v1.rs"]);
}
