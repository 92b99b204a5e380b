//! Generates every vendored API set (`src/sets.rs`) into its own directory of `OUT_DIR`,
//! as a user's build script would.

use std::path::{Path, PathBuf};

include!("src/sets.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no manifest dir")?);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
    for set in SETS {
        let includes: Vec<PathBuf> = set.includes.iter().map(|i| manifest.join(i)).collect();
        let files: Vec<PathBuf> = set
            .files
            .iter()
            .map(|file| find(file, &includes))
            .collect::<Result<_, _>>()?;
        rsgrpc_codegen::Builder::new()
            .out_dir(out.join(set.name))
            .include_file("_includes.rs")
            .compile(&files, &includes)?;
    }
    Ok(())
}

/// `file` in the first include directory that has it.
fn find(file: &str, includes: &[PathBuf]) -> Result<PathBuf, String> {
    includes
        .iter()
        .map(|include| include.join(file))
        .find(|path| Path::is_file(path))
        .ok_or_else(|| format!("{file} is in no include directory of its set"))
}
