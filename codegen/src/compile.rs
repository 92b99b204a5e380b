//! The build script API: parse, generate and write into `OUT_DIR`, telling cargo what the
//! build depends on.

use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::parse::{Parser, find_in_includes};
use crate::{Builder, Error, GeneratedFile};

impl Builder {
    /// Parses `protos` and generates code for them and for every file they import, except
    /// the well-known types (which map to `prost-types`, unless
    /// [`compile_well_known_types`](Self::compile_well_known_types)) and packages covered by
    /// an [`extern_path`](Self::extern_path). Returns the files and the input files read.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse) and [`generate`](Self::generate).
    pub fn generate_from_files(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(Vec<GeneratedFile>, Vec<PathBuf>), Error> {
        let set = self.parse(protos, includes)?;
        Ok((self.generate_parsed(&set)?, self.inputs(&set, includes)))
    }

    /// The files of `set` to generate code for.
    fn files_to_generate(&self, set: &FileDescriptorSet) -> Vec<String> {
        let wkt = self.compile_well_known_types;
        set.file
            .iter()
            .filter(|f| wkt || !in_package(f.package(), "google.protobuf"))
            .filter(|f| {
                !self
                    .extern_paths
                    .iter()
                    .any(|(proto, _)| in_package(f.package(), proto.trim_start_matches('.')))
            })
            .map(|f| f.name().to_owned())
            .collect()
    }

    fn generate_parsed(&self, set: &FileDescriptorSet) -> Result<Vec<GeneratedFile>, Error> {
        self.generate(set, &self.files_to_generate(set))
    }

    /// The `.proto` files of `set` found in `includes`: what a build depends on.
    fn inputs(&self, set: &FileDescriptorSet, includes: &[impl AsRef<Path>]) -> Vec<PathBuf> {
        let mut inputs: Vec<PathBuf> = set
            .file
            .iter()
            .filter_map(|f| find_in_includes(f.name(), includes))
            .collect();
        inputs.sort();
        inputs
    }

    /// Parses, generates and writes the files into the output directory (`OUT_DIR` by
    /// default), rewriting only files whose content changed, and prints
    /// `cargo:rerun-if-changed` for every input file (see
    /// [`emit_rerun_if_changed`](Self::emit_rerun_if_changed)).
    ///
    /// # Errors
    ///
    /// As [`generate_from_files`](Self::generate_from_files), or when writing fails.
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::io(
                        "OUT_DIR is not set: call this from build.rs or set out_dir",
                        None,
                    )
                })?,
        };
        let set = self.parse(protos, includes)?;
        let files = self.generate_parsed(&set)?;
        for directive in self.cargo_directives(&self.inputs(&set, includes)) {
            println!("{directive}");
        }
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| Error::io(format!("cannot create {}", out_dir.display()), Some(e)))?;
        for file in files {
            write_if_changed(&out_dir.join(&file.name), file.content.as_bytes())?;
        }
        if let Some(path) = &self.file_descriptor_set_path {
            write_if_changed(path, &set.encode_to_vec())?;
        }
        Ok(())
    }

    /// The `cargo:` lines [`compile`](Self::compile) prints for a build that read `inputs`.
    fn cargo_directives(&self, inputs: &[PathBuf]) -> Vec<String> {
        if !self.emit_rerun_if_changed {
            return Vec::new();
        }
        let mut directives: Vec<String> = inputs
            .iter()
            .map(|input| format!("cargo:rerun-if-changed={}", input.display()))
            .collect();
        if self.parser == Parser::Protoc(None) {
            // Which protoc runs, and so what it produces, depends on PROTOC.
            directives.push("cargo:rerun-if-env-changed=PROTOC".to_owned());
        }
        directives
    }
}

/// Whether `package` is `parent` or inside it.
fn in_package(package: &str, parent: &str) -> bool {
    parent.is_empty()
        || package == parent
        || package
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    std::fs::write(path, content)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), Some(e)))
}

/// Compiles `protos` (found in `includes`) into `OUT_DIR` with default settings, for use in
/// `build.rs`; include the result with `rsgrpc::include_proto!("package")`.
///
/// # Errors
///
/// A `.proto` that cannot be found or parsed (file, line, column and what was expected), a
/// missing import (naming the include paths searched), or an unknown type.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    Builder::new().compile(protos, includes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protoc_from_the_environment_reruns_when_protoc_changes() {
        let inputs = [PathBuf::from("proto/a.proto")];
        let pure = Builder::new().cargo_directives(&inputs);
        assert_eq!(pure, ["cargo:rerun-if-changed=proto/a.proto"]);
        let protoc = Builder::new()
            .parser(Parser::Protoc(None))
            .cargo_directives(&inputs);
        assert!(protoc.contains(&"cargo:rerun-if-env-changed=PROTOC".to_owned()));
        let pinned = Builder::new()
            .parser(Parser::Protoc(Some("/usr/bin/protoc".into())))
            .cargo_directives(&inputs);
        assert!(!pinned.iter().any(|d| d.contains("PROTOC")));
        let quiet = Builder::new()
            .parser(Parser::Protoc(None))
            .emit_rerun_if_changed(false)
            .cargo_directives(&inputs);
        assert!(quiet.is_empty());
    }
}
