//! Descriptor loading: `.proto` files parsed by protox (pure Rust) or protoc into a
//! `FileDescriptorSet` with source info, and protobuf editions recognised to say why they
//! are refused.

use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::{Builder, Error};

/// How `.proto` files are turned into descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parser {
    /// protox, in pure Rust (the default): no protoc needed, comments are kept.
    Pure,
    /// The `protoc` binary found at this path (or as `PROTOC`, or on `PATH` when `None`).
    Protoc(Option<PathBuf>),
}

impl Builder {
    /// Parses `protos` (searching `includes` for them and their imports) into a descriptor
    /// set with source info, so comments become docs.
    ///
    /// # Errors
    ///
    /// A file that cannot be found or parsed, with file, line and column.
    pub fn parse(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<FileDescriptorSet, Error> {
        match &self.parser {
            Parser::Pure => parse_pure(protos, includes),
            Parser::Protoc(path) => parse_protoc(path.as_deref(), protos, includes),
        }
    }
}

pub(crate) fn find_in_includes(name: &str, includes: &[impl AsRef<Path>]) -> Option<PathBuf> {
    includes
        .iter()
        .map(|dir| dir.as_ref().join(name))
        .find(|path| path.is_file())
}

fn parse_pure(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<FileDescriptorSet, Error> {
    let mut compiler = protox::Compiler::new(includes.iter().map(AsRef::as_ref))
        .map_err(|e| Error::parse(e, includes))?;
    compiler.include_source_info(true).include_imports(true);
    for proto in protos {
        compiler.open_file(proto.as_ref()).map_err(|e| {
            // protox does not parse editions: say so rather than what it expected.
            match e.file().filter(|file| in_editions(file, includes)) {
                Some(file) => Error::editions(file),
                None => Error::parse(e, includes),
            }
        })?;
    }
    Ok(compiler.file_descriptor_set())
}

/// Whether `file` (a name as imported, or a path) found in `includes` is written in
/// protobuf editions: its first statement, after comments, is `edition = "..."`.
fn in_editions(file: &str, includes: &[impl AsRef<Path>]) -> bool {
    let path = Path::new(file);
    let found = if path.is_file() {
        Some(path.to_path_buf())
    } else {
        find_in_includes(file, includes)
    };
    let Some(text) = found.and_then(|path| std::fs::read_to_string(path).ok()) else {
        return false;
    };
    declares_edition(&text)
}

/// Whether the first statement of a `.proto` file's text is `edition = ...`.
fn declares_edition(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, next)| next);
        } else {
            break;
        }
    }
    rest.strip_prefix("edition")
        .is_some_and(|after| after.trim_start().starts_with('='))
}

fn parse_protoc(
    protoc: Option<&Path>,
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<FileDescriptorSet, Error> {
    let protoc = protoc
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PROTOC").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("protoc"));
    // A directory of its own per run: several compilations in one build script (or in
    // parallel build scripts) never share the descriptor file. It is removed on drop.
    let dir = tempfile::Builder::new()
        .prefix("rsgrpc-codegen-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary directory for protoc", Some(e)))?;
    let out = dir.path().join("descriptors.pb");
    let mut command = std::process::Command::new(&protoc);
    command
        .arg("--include_imports")
        .arg("--include_source_info")
        .arg(format!("--descriptor_set_out={}", out.display()));
    for include in includes {
        command.arg(format!("-I{}", include.as_ref().display()));
    }
    for proto in protos {
        command.arg(proto.as_ref());
    }
    let output = command
        .output()
        .map_err(|e| Error::io(format!("cannot run {}", protoc.display()), Some(e)))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A protoc older than editions fails on the `edition` line: say why.
        let editions = stderr
            .lines()
            .filter_map(|line| line.split_once(".proto:").map(|(file, _)| file))
            .map(|file| format!("{file}.proto"))
            .find(|file| in_editions(file, includes));
        return Err(match editions {
            Some(file) => Error::editions(&file),
            None => Error::protoc(stderr.trim().to_owned()),
        });
    }
    let bytes = std::fs::read(&out)
        .map_err(|e| Error::io(format!("cannot read {}", out.display()), Some(e)))?;
    FileDescriptorSet::decode(bytes.as_slice())
        .map_err(|e| Error::protoc(format!("protoc wrote an invalid descriptor set: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edition_is_found_after_comments() {
        assert!(declares_edition("edition = \"2023\";\npackage p;"));
        assert!(declares_edition(
            "// Licence.\n/* more\n */\n\nedition= \"2024\";"
        ));
        assert!(!declares_edition(
            "syntax = \"proto3\";\n// edition = \"2023\";"
        ));
        assert!(!declares_edition(
            "// edition = \"2023\";\nsyntax = \"proto2\";"
        ));
        assert!(!declares_edition("editions = 1;"));
    }
}
