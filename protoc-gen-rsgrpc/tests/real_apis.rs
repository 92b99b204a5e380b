//! The plugin on the real APIs vendored in `tests/real-apis` (OpenTelemetry, containerd,
//! etcd): under Debian's protoc, with the files in another order than the build script's,
//! it writes exactly what the build script API generates for them, which that crate
//! compiles under `#![deny(warnings)]`, clippy and rustdoc.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/real-apis/src/sets.rs"]
mod sets;

fn real_apis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/real-apis")
}

#[test]
fn the_plugin_writes_what_the_build_script_generates() {
    let root = real_apis();
    for set in sets::SETS {
        let includes: Vec<PathBuf> = set.includes.iter().map(|i| root.join(i)).collect();
        let paths: Vec<PathBuf> = set
            .files
            .iter()
            .map(|file| {
                includes
                    .iter()
                    .map(|include| include.join(file))
                    .find(|path| path.is_file())
                    .unwrap_or_else(|| panic!("{file} of {} is missing", set.name))
            })
            .collect();
        let (expected, _) = rsgrpc_codegen::Builder::new()
            .include_file("_includes.rs")
            .generate_from_files(&paths, &includes)
            .unwrap();

        let out = std::env::temp_dir().join(format!(
            "rsgrpc-real-apis-{}-{}",
            set.name,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let mut reversed = set.files.to_vec();
        reversed.reverse();
        let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
        let mut command = Command::new(protoc);
        command
            .arg(format!(
                "--plugin=protoc-gen-rsgrpc={}",
                env!("CARGO_BIN_EXE_protoc-gen-rsgrpc")
            ))
            .arg(format!("--rsgrpc_out={}", out.display()))
            .arg("--rsgrpc_opt=include_file=_includes.rs");
        for include in &includes {
            command.arg("-I").arg(include);
        }
        let output = command
            .args(&reversed)
            .output()
            .expect("protoc must be installed (scripts/test.sh installs protobuf-compiler)");
        assert!(
            output.status.success(),
            "protoc failed on {}: {}",
            set.name,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut written: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        let mut names: Vec<String> = expected.iter().map(|f| f.name.clone()).collect();
        names.sort();
        assert_eq!(written, names, "{}", set.name);
        for file in &expected {
            let plugin = std::fs::read_to_string(out.join(&file.name)).unwrap();
            assert!(
                plugin == file.content,
                "{} of {} differs between the plugin and build.rs",
                file.name,
                set.name
            );
        }
        let _ = std::fs::remove_dir_all(out);
    }
}
