//! The plugin on protos nobody here wrote: gRPC's own (Debian's `grpc-proto`, in
//! `/usr/share/grpc-proto`) and Google's common protos (pip's `googleapis-common-protos`,
//! in the repository's `.venv`), all generated in one protoc run into one small crate that
//! must pass `cargo clippy --all-targets -- -D warnings` under `#![deny(warnings)]`, as in
//! a user's crate. `scripts/test.sh` installs both.
//!
//! The crate builds in its own target directory under `target/tmp`, so its first run checks
//! rsgrpc's dependencies once more (about a minute and a half on two cores); later runs
//! check only the generated code.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// gRPC's protos: `RSGRPC_GRPC_PROTO`, or where Debian's grpc-proto puts them.
fn grpc_protos() -> PathBuf {
    let dir = std::env::var_os("RSGRPC_GRPC_PROTO")
        .map_or_else(|| PathBuf::from("/usr/share/grpc-proto"), PathBuf::from);
    assert!(
        dir.join("grpc/health/v1/health.proto").is_file(),
        "gRPC's protos are not in {} (scripts/test.sh installs Debian's grpc-proto)",
        dir.display()
    );
    dir
}

/// Google's common protos: `RSGRPC_GOOGLEAPIS`, or the site-packages of `.venv`.
fn googleapis() -> PathBuf {
    if let Some(dir) = std::env::var_os("RSGRPC_GOOGLEAPIS") {
        return PathBuf::from(dir);
    }
    let lib = workspace().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.join("google/rpc/status.proto").is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "googleapis-common-protos is not installed in {} (scripts/test.sh installs it)",
            lib.display()
        )
    })
}

/// The `.proto` files under `root/dir`, relative to `root`, sorted.
fn protos(root: &Path, dir: &str, skip: &[&str]) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out);
    out.retain(|p| !skip.iter().any(|s| p.starts_with(s)));
    out.sort();
    out
}

#[test]
fn grpc_and_googleapis_protos_generate_clippy_clean_code() {
    let grpc = grpc_protos();
    let google = googleapis();
    let crate_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-protos");
    let gen_dir = crate_dir.join("src/gen");
    let _ = std::fs::remove_dir_all(&gen_dir);
    std::fs::create_dir_all(&gen_dir).unwrap();

    // The meshca config needs envoy's protos, which neither package has; the well-known
    // types map to prost-types.
    let grpc_files = protos(&grpc, "grpc", &["grpc/tls/provider/meshca"]);
    let google_files = protos(&google, "google", &["google/protobuf"]);
    assert!(grpc_files.len() >= 20, "{grpc_files:?}");
    assert!(google_files.len() >= 50, "{google_files:?}");
    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    let output = Command::new(protoc)
        .arg(format!(
            "--plugin=protoc-gen-rsgrpc={}",
            env!("CARGO_BIN_EXE_protoc-gen-rsgrpc")
        ))
        .arg(format!("--rsgrpc_out={}", gen_dir.display()))
        .arg("--rsgrpc_opt=include_file=protos.rs")
        .arg("-I")
        .arg(&grpc)
        .arg("-I")
        .arg(&google)
        .args(&grpc_files)
        .args(&google_files)
        .output()
        .expect("protoc must be installed (scripts/test.sh installs protobuf-compiler)");
    assert!(
        output.status.success(),
        "protoc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: Vec<String> = std::fs::read_dir(&gen_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for package in [
        "grpc.health.v1.rs",
        "grpc.service_config.rs",
        "grpc.channelz.v1.rs",
        "google.rpc.rs",
        "google.longrunning.rs",
        "google.api.rs",
        "protos.rs",
    ] {
        assert!(
            generated.iter().any(|g| g == package),
            "{package}: {generated:?}"
        );
    }

    let runtime = workspace().join("runtime");
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"rsgrpc-real-protos\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\n\
             rsgrpc = {{ path = {:?}, default-features = false }}\n\
             prost = \"0.14\"\nprost-types = \"0.14\"\n\n[workspace]\n",
            runtime.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        crate_dir.join("src/lib.rs"),
        "//! gRPC's and Google's common protos, generated by protoc-gen-rsgrpc.\n\
         #![deny(warnings)]\ninclude!(\"gen/protos.rs\");\n",
    )
    .unwrap();
    // The workspace's lock file, so the crate uses the versions already downloaded.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", crate_dir.join("target"))
        .args([
            "clippy",
            "--offline",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the generated code fails to build or fails clippy:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
