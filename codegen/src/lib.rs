//! Generates rsgrpc stubs — async and blocking clients and servers — and prost messages
//! from `.proto` files.
//!
//! One generator serves three entry points, which produce identical code for identical
//! input: a build script ([`compile_protos`], [`Builder`]), the `protoc-gen-rsgrpc` protoc
//! plugin ([`Builder::generate`] over a `CodeGeneratorRequest`), and the
//! `#[rsgrpc::grpc_service]` attribute macro.
//!
//! In `build.rs`, with no protoc needed (`.proto` files are parsed in pure Rust):
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     rsgrpc_codegen::compile_protos(&["proto/helloworld.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! and in the crate:
//!
//! ```text
//! pub mod helloworld {
//!     rsgrpc::include_proto!("helloworld");
//! }
//! ```
//!
//! For `service Greeter` the generated module holds `GreeterClient` (async),
//! `GreeterBlockingClient`, the traits `Greeter` (async) and `GreeterBlocking`, and
//! `GreeterServer` / `GreeterBlockingServer` to serve an implementation of either.

#![forbid(unsafe_code)]

mod error;
mod options;
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
/// prost-build, whose `Config` [`Builder::configure_prost`] hands out.
pub use prost_build;
use prost_build::Module;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

pub use error::Error;

/// The name of the file that declares the module tree of the generated packages.
pub const INCLUDE_FILE: &str = "mod.rs";

/// Which stubs to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parts {
    pub(crate) client: bool,
    pub(crate) server: bool,
    pub(crate) blocking: bool,
    pub(crate) asynchronous: bool,
}

/// How `.proto` files are turned into descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parser {
    /// protox, in pure Rust (the default): no protoc needed, comments are kept.
    Pure,
    /// The `protoc` binary found at this path (or as `PROTOC`, or on `PATH` when `None`).
    Protoc(Option<PathBuf>),
}

/// One generated file: a package's code, or the [`INCLUDE_FILE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, such as `helloworld.rs` or `grpc.testing.rs`.
    pub name: String,
    /// Its content, formatted.
    pub content: String,
}

/// A customisation of prost-build's `Config`, applied after the builder's own settings.
type ConfigHook = std::sync::Arc<dyn Fn(&mut prost_build::Config) + Send + Sync>;

/// Configures code generation; [`compile_protos`] is `Builder::new().compile(..)`.
#[derive(Clone)]
#[must_use]
pub struct Builder {
    parts: Parts,
    out_dir: Option<PathBuf>,
    parser: Parser,
    type_attributes: Vec<(String, String)>,
    field_attributes: Vec<(String, String)>,
    extern_paths: Vec<(String, String)>,
    bytes: Vec<String>,
    btree_map: Vec<String>,
    emit_rerun_if_changed: bool,
    prost_hooks: Vec<ConfigHook>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("parts", &self.parts)
            .field("out_dir", &self.out_dir)
            .field("parser", &self.parser)
            .field("type_attributes", &self.type_attributes)
            .field("field_attributes", &self.field_attributes)
            .field("extern_paths", &self.extern_paths)
            .field("prost_hooks", &self.prost_hooks.len())
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Everything on: clients and servers, blocking and async.
    pub fn new() -> Builder {
        Builder {
            parts: Parts {
                client: true,
                server: true,
                blocking: true,
                asynchronous: true,
            },
            out_dir: None,
            parser: Parser::Pure,
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
            extern_paths: Vec::new(),
            bytes: Vec::new(),
            btree_map: Vec::new(),
            emit_rerun_if_changed: true,
            prost_hooks: Vec::new(),
        }
    }

    /// Customises the prost-build `Config` that generates the messages, for settings this
    /// builder does not offer itself. The service generator is rsgrpc's; replacing it
    /// removes the stubs.
    ///
    /// ```
    /// let builder = rsgrpc_codegen::Builder::new()
    ///     .configure_prost(|config| {
    ///         config.enum_attribute(".", "#[allow(missing_docs)]");
    ///     });
    /// # drop(builder);
    /// ```
    pub fn configure_prost(
        mut self,
        hook: impl Fn(&mut prost_build::Config) + Send + Sync + 'static,
    ) -> Self {
        self.prost_hooks.push(std::sync::Arc::new(hook));
        self
    }

    /// Whether to generate clients (default true).
    pub fn build_client(mut self, enable: bool) -> Self {
        self.parts.client = enable;
        self
    }

    /// Whether to generate server traits and their registration (default true).
    pub fn build_server(mut self, enable: bool) -> Self {
        self.parts.server = enable;
        self
    }

    /// Whether to generate the blocking flavour (default true).
    pub fn blocking(mut self, enable: bool) -> Self {
        self.parts.blocking = enable;
        self
    }

    /// Whether to generate the async flavour (default true).
    pub fn asynchronous(mut self, enable: bool) -> Self {
        self.parts.asynchronous = enable;
        self
    }

    /// Where [`compile`](Self::compile) writes (default `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// How `.proto` files are parsed (default [`Parser::Pure`]).
    pub fn parser(mut self, parser: Parser) -> Self {
        self.parser = parser;
        self
    }

    /// Adds an attribute to the messages and enums matching `path` (as prost-build's
    /// `type_attribute`: `.` for all, `.package.Message` for one).
    pub fn type_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.type_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the fields matching `path` (as prost-build's
    /// `field_attribute`).
    pub fn field_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.field_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Uses an existing Rust path for a protobuf package or type instead of generating it
    /// (as prost-build's `extern_path`).
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Generates `bytes::Bytes` instead of `Vec<u8>` for the matching `bytes` fields (as
    /// prost-build's `bytes`).
    pub fn bytes(mut self, path: impl Into<String>) -> Self {
        self.bytes.push(path.into());
        self
    }

    /// Generates `BTreeMap` instead of `HashMap` for the matching map fields (as
    /// prost-build's `btree_map`).
    pub fn btree_map(mut self, path: impl Into<String>) -> Self {
        self.btree_map.push(path.into());
        self
    }

    /// Whether [`compile`](Self::compile) prints `cargo:rerun-if-changed` lines (default
    /// true).
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Applies options written as `key=value` (the protoc plugin's `--rsgrpc_opt` and the
    /// macro use this): `client`, `server`, `blocking`, `async` (`true`/`false`),
    /// `type_attribute=PATH=ATTR`, `field_attribute=PATH=ATTR`, `extern_path=PROTO=RUST`,
    /// `bytes=PATH`, `btree_map=PATH`.
    ///
    /// # Errors
    ///
    /// An unknown key or a malformed value.
    pub fn option(self, option: &str) -> Result<Builder, Error> {
        options::apply(self, option)
    }

    fn prost_config(&self) -> prost_build::Config {
        let mut config = prost_build::Config::new();
        config.service_generator(Box::new(service::Generator { parts: self.parts }));
        for (path, attribute) in &self.type_attributes {
            config.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            config.field_attribute(path, attribute);
        }
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        config.bytes(&self.bytes);
        config.btree_map(&self.btree_map);
        for hook in &self.prost_hooks {
            hook(&mut config);
        }
        config
    }

    /// Generates code for `files_to_generate` (names as in the descriptor set, such as
    /// `helloworld.proto`), which `set` describes together with everything they import.
    /// Returns one file per package, sorted by name, then the [`INCLUDE_FILE`].
    ///
    /// # Errors
    ///
    /// When a file to generate is not in the set.
    pub fn generate(
        &self,
        set: &FileDescriptorSet,
        files_to_generate: &[String],
    ) -> Result<Vec<GeneratedFile>, Error> {
        let mut wanted = Vec::new();
        for name in files_to_generate {
            let file = set
                .file
                .iter()
                .find(|f| f.name() == name)
                .ok_or_else(|| Error::missing_descriptor(name))?;
            wanted.push(Module::from_protobuf_package_name(file.package()));
        }
        // prost-build resolves types across every file it is given (imports included), so
        // it gets the whole set; only the packages asked for are kept.
        let requests = set
            .file
            .iter()
            .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone()))
            .collect();
        let mut config = self.prost_config();
        let modules = config
            .generate(requests)
            .map_err(|e| Error::generate(e.to_string()))?;
        let mut files: BTreeMap<String, (Module, String)> = BTreeMap::new();
        for (module, content) in modules {
            if !wanted.contains(&module) {
                continue;
            }
            let name = module.to_file_name_or("_");
            let content = content.replacen(
                "// This file is @generated by prost-build.",
                "// This file is @generated by rsgrpc-codegen (messages by prost-build). Do not edit.",
                1,
            );
            files.insert(name, (module, content));
        }
        let include = include_file(
            files
                .iter()
                .map(|(name, (module, _))| (module, name.as_str())),
        );
        let mut out: Vec<GeneratedFile> = files
            .into_iter()
            .map(|(name, (_, content))| GeneratedFile { name, content })
            .collect();
        out.push(GeneratedFile {
            name: INCLUDE_FILE.to_owned(),
            content: include,
        });
        Ok(out)
    }

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

    /// Parses `protos` and generates code for them and for every file they import
    /// (except well-known types, which map to `prost-types`).
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
        let names: Vec<String> = set
            .file
            .iter()
            .filter(|f| !f.package().starts_with("google.protobuf"))
            .map(|f| f.name().to_owned())
            .collect();
        let inputs = names
            .iter()
            .filter_map(|name| find_in_includes(name, includes))
            .collect();
        Ok((self.generate(&set, &names)?, inputs))
    }

    /// Parses, generates and writes the files into the output directory (`OUT_DIR` by
    /// default), rewriting only files whose content changed, and prints
    /// `cargo:rerun-if-changed` for every input file.
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
        let (files, inputs) = self.generate_from_files(protos, includes)?;
        if self.emit_rerun_if_changed {
            for input in &inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
        }
        std::fs::create_dir_all(&out_dir)
            .map_err(|e| Error::io(format!("cannot create {}", out_dir.display()), Some(e)))?;
        for file in files {
            let path = out_dir.join(&file.name);
            if std::fs::read_to_string(&path).ok().as_deref() == Some(file.content.as_str()) {
                continue;
            }
            std::fs::write(&path, &file.content)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), Some(e)))?;
        }
        Ok(())
    }
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

fn find_in_includes(name: &str, includes: &[impl AsRef<Path>]) -> Option<PathBuf> {
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
        compiler
            .open_file(proto.as_ref())
            .map_err(|e| Error::parse(e, includes))?;
    }
    Ok(compiler.file_descriptor_set())
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
    let out = std::env::temp_dir().join(format!("rsgrpc-codegen-{}.pb", std::process::id()));
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
        return Err(Error::protoc(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    let bytes = std::fs::read(&out)
        .map_err(|e| Error::io(format!("cannot read {}", out.display()), Some(e)))?;
    let _ = std::fs::remove_file(&out);
    FileDescriptorSet::decode(bytes.as_slice())
        .map_err(|e| Error::protoc(format!("protoc wrote an invalid descriptor set: {e}")))
}

/// The module tree declaring every generated package, each including its file.
fn include_file<'a>(files: impl Iterator<Item = (&'a Module, &'a str)>) -> String {
    #[derive(Default)]
    struct Node {
        file: Option<String>,
        children: BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for (module, name) in files {
        let mut node = &mut root;
        for part in module.parts() {
            node = node.children.entry(part.to_owned()).or_default();
        }
        node.file = Some(name.to_owned());
    }
    fn render(node: &Node, depth: usize, out: &mut String) {
        let indent = "    ".repeat(depth);
        if let Some(file) = &node.file {
            out.push_str(&format!("{indent}include!(\"{file}\");\n"));
        }
        for (name, child) in &node.children {
            // Module names come from prost-build, already snake case with keywords escaped.
            out.push_str(&format!("{indent}pub mod {name} {{\n"));
            render(child, depth + 1, out);
            out.push_str(&format!("{indent}}}\n"));
        }
    }
    let mut out = String::from("// This file is @generated by rsgrpc-codegen. Do not edit.\n");
    render(&root, 0, &mut out);
    out
}

/// Descriptors of a protoc plugin request, for the plugin binary.
#[doc(hidden)]
pub fn descriptor_set(files: Vec<FileDescriptorProto>) -> FileDescriptorSet {
    FileDescriptorSet { file: files }
}
