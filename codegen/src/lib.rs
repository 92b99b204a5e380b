//! Generates rsgrpc stubs — async and blocking clients and servers — and prost messages
//! from `.proto` files.
//!
//! One generator serves three entry points, which produce identical code for the same files
//! to generate, in whatever order they are given: a build script ([`compile_protos`], [`Builder`]), the `protoc-gen-rsgrpc`
//! protoc plugin ([`Builder::generate`] over a `CodeGeneratorRequest`), and the
//! `#[rsgrpc::grpc_service]` attribute macro. The build script and the macro generate the
//! files given and everything they import (but the well-known types, which come from
//! `prost-types`); protoc hands a plugin only the files on its command line, so imports
//! generated in another run are referred to where their packages' modules would be, or
//! through [`Builder::extern_path`].
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
//! use helloworld::greeter_client::{GreeterBlockingClient, GreeterClient};
//! use helloworld::greeter_server::{Greeter, GreeterBlocking, GreeterBlockingServer, GreeterServer};
//! ```
//!
//! For `service Greeter` the package's module gets, next to the messages, a module
//! `greeter_client` holding `GreeterClient` (async) and `GreeterBlockingClient`, and a
//! module `greeter_server` holding the traits `Greeter` (async) and `GreeterBlocking`,
//! `GreeterServer` / `GreeterBlockingServer` to serve an implementation of either, and
//! `SERVICE_NAME`. Clients and server types take `max_receive_message_size`,
//! `max_send_message_size` and `send_compressed`, and clients `timeout` and
//! `wait_for_ready`, which override the channel's or the server's settings for that
//! client's calls or that service's methods.
//!
//! # Names
//!
//! Generated code is compiled in the user's crate, so it must build whatever the proto
//! calls things. Inside the two modules every name is the generator's own: messages are
//! reached as `super::Message` and standard items by absolute paths
//! (`::core::marker::Send`), so a message named `Send`, `Result` or `T` changes nothing,
//! and server registration calls trait methods fully qualified, so `rpc Clone` does not
//! call `Arc::clone`. When a name is taken all the same, the generated one gets a trailing
//! underscore, which prost-build never produces: the module `game_client_` when a message
//! `GameClient` with nested types already makes a module `game_client` (or a subpackage
//! does), and the client method `new_` for `rpc New` (likewise for every other method the
//! clients define, such as `channel` or `timeout`, and those of the traits they derive:
//! `rpc Clone` is `clone_`, so `client.clone()` still clones the client); the server
//! types' type parameter is `S` for a service named `T`. The blocking client has two
//! methods for a bidirectional RPC, `txn()` and `txn_with(request)` (a `Request<()>` with
//! the call's metadata and options); the second yields to every other method the same
//! way, RPCs included, so `rpc TxnWith` beside `rpc Txn` is `txn_with` and Txn's second
//! method `txn_with_`.
//! Protobuf names that differ only in case or underscores and would become one Rust name
//! (`rpc GetItem` and `rpc Get_Item`, or services and messages of packages `x.Dup` and
//! `x.dup`, which are both the module `x::dup`) are an [`Error`].
//!
//! # Editions
//!
//! Files written in protobuf editions (`edition = "2023"`) are an [`Error`] naming the
//! file, whichever way they come in: neither prost-build nor protox supports editions yet.
//!
//! # Lints
//!
//! The output passes `#![deny(warnings)]` and clippy in the user's crate. Allows are
//! placed on single items, each with its reason, where the proto dictates the shape: a
//! module named like its parent (`grpc.service_config`'s message `ServiceConfig`), a oneof
//! with an inline message variant (`large_enum_variant`; [`Builder::boxed`] avoids it), a
//! method named `new` or `from_*` in a trait, a client method named like a std trait's
//! (`rpc Cmp`), a message whose field `len` has a getter but no `is_empty`. `.proto`
//! comments written as markdown lists with unindented continuation lines are re-indented,
//! which renders the same; what rustdoc would read as HTML in them (`Vec<String>`,
//! `<namespace>`) is escaped, so it shows as written and rustdoc does not warn.

#![forbid(unsafe_code)]

mod descriptors;
mod error;
mod lints;
mod names;
mod options;
mod paths;
mod service;
mod tidy;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
/// prost-build, whose `Config` [`Builder::configure_prost`] hands out.
pub use prost_build;
use prost_build::Module;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

pub use error::Error;
#[doc(hidden)]
pub use options::OptionValue;
use paths::PathList;

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

/// One generated file: a package's code, or the include file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, such as `helloworld.rs` or `grpc.testing.rs` (`_.rs` for files without a
    /// package), or the name given to [`Builder::include_file`].
    pub name: String,
    /// The Rust module path the package's code belongs in (`["grpc", "testing"]`, empty for
    /// files without a package); `None` for the include file.
    pub module: Option<Vec<String>>,
    /// Its content, formatted.
    pub content: String,
}

/// A customisation of prost-build's `Config`, applied after the builder's own settings.
type ConfigHook = std::sync::Arc<dyn Fn(&mut prost_build::Config) + Send + Sync>;

/// Configures code generation; [`compile_protos`] is `Builder::new().compile(..)`.
///
/// Settings that take a `path` select protobuf elements as prost-build's do: `.` selects
/// everything, a fully qualified name with a leading dot (`.helloworld.Greeter`) selects
/// that element and what it contains, and a name without the dot (`Greeter`) selects every
/// element whose name ends with it.
///
/// ```no_run
/// // build.rs
/// rsgrpc_codegen::Builder::new()
///     .build_client(false)
///     .type_attribute(".", "#[derive(serde::Serialize)]")
///     .server_attribute(".helloworld.Greeter", "#[must_use]")
///     .generate_default_stubs(true)
///     .compile(&["proto/helloworld.proto"], &["proto"])?;
/// # Ok::<(), rsgrpc_codegen::Error>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Builder {
    parts: Parts,
    out_dir: Option<PathBuf>,
    parser: Parser,
    type_attributes: PathList,
    message_attributes: PathList,
    enum_attributes: PathList,
    field_attributes: PathList,
    extern_paths: PathList,
    bytes: Vec<String>,
    btree_map: Vec<String>,
    boxed: Vec<String>,
    skip_debug: Vec<String>,
    disable_comments: Vec<String>,
    compile_well_known_types: bool,
    client_attributes: PathList,
    server_attributes: PathList,
    trait_attributes: PathList,
    client_mod_attributes: PathList,
    server_mod_attributes: PathList,
    default_stubs: bool,
    emit_package: bool,
    include_file: Option<String>,
    file_descriptor_set_path: Option<PathBuf>,
    file_descriptor_set: bool,
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
            .field("compile_well_known_types", &self.compile_well_known_types)
            .field("default_stubs", &self.default_stubs)
            .field("emit_package", &self.emit_package)
            .field("include_file", &self.include_file)
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
            message_attributes: Vec::new(),
            enum_attributes: Vec::new(),
            field_attributes: Vec::new(),
            extern_paths: Vec::new(),
            bytes: Vec::new(),
            btree_map: Vec::new(),
            boxed: Vec::new(),
            skip_debug: Vec::new(),
            disable_comments: Vec::new(),
            compile_well_known_types: false,
            client_attributes: Vec::new(),
            server_attributes: Vec::new(),
            trait_attributes: Vec::new(),
            client_mod_attributes: Vec::new(),
            server_mod_attributes: Vec::new(),
            default_stubs: false,
            emit_package: true,
            include_file: None,
            file_descriptor_set_path: None,
            file_descriptor_set: false,
            emit_rerun_if_changed: true,
            prost_hooks: Vec::new(),
        }
    }

    /// Customises the prost-build `Config` that generates the messages, for settings this
    /// builder does not offer itself. The service generator is rsgrpc's; replacing it
    /// removes the stubs. `compile_well_known_types` set here counts as
    /// [`compile_well_known_types`](Self::compile_well_known_types).
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

    /// Adds an attribute to the messages and enums (and oneofs) selected by `path` (as
    /// prost-build's `type_attribute`).
    pub fn type_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.type_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the messages selected by `path` (as prost-build's
    /// `message_attribute`).
    pub fn message_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.message_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the enums and oneofs selected by `path` (as prost-build's
    /// `enum_attribute`).
    pub fn enum_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.enum_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the fields selected by `path` (as prost-build's
    /// `field_attribute`).
    pub fn field_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.field_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to both client types (`GreeterClient`, `GreeterBlockingClient`)
    /// of the services selected by `path`, or, for a path naming a method
    /// (`.helloworld.Greeter.SayHello`), to that method of both clients.
    pub fn client_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.client_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to both server types (`GreeterServer`, `GreeterBlockingServer`)
    /// of the services selected by `path`.
    pub fn server_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.server_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to both server traits (`Greeter`, `GreeterBlocking`) of the
    /// services selected by `path`, or, for a path naming a method, to that method of both
    /// traits.
    pub fn trait_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.trait_attributes.push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the clients' module (`greeter_client`) of the services
    /// selected by `path`, such as `#[cfg(feature = "client")]`.
    pub fn client_mod_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.client_mod_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Adds an attribute to the servers' module (`greeter_server`) of the services
    /// selected by `path`.
    pub fn server_mod_attribute(
        mut self,
        path: impl Into<String>,
        attribute: impl Into<String>,
    ) -> Self {
        self.server_mod_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Uses an existing Rust path for a protobuf package or type instead of generating it
    /// (as prost-build's `extern_path`): `extern_path(".common", "::common_protos::common")`
    /// or `extern_path(".common", "crate::protos::common")`.
    ///
    /// This is how code generated in one run refers to packages generated in another (a
    /// protoc run generates only the files it is asked for, not their imports), and
    /// [`generate_from_files`](Self::generate_from_files) skips the packages it covers.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Generates `bytes::Bytes` instead of `Vec<u8>` for the selected `bytes` fields (as
    /// prost-build's `bytes`).
    pub fn bytes(mut self, path: impl Into<String>) -> Self {
        self.bytes.push(path.into());
        self
    }

    /// Generates `BTreeMap` instead of `HashMap` for the selected map fields (as
    /// prost-build's `btree_map`).
    pub fn btree_map(mut self, path: impl Into<String>) -> Self {
        self.btree_map.push(path.into());
        self
    }

    /// Boxes the selected message fields (as prost-build's `boxed`), for recursive or
    /// large messages.
    pub fn boxed(mut self, path: impl Into<String>) -> Self {
        self.boxed.push(path.into());
        self
    }

    /// Leaves out `impl Debug` for the selected messages and enums, to be written by hand
    /// (as prost-build's `skip_debug`).
    pub fn skip_debug(mut self, path: impl Into<String>) -> Self {
        self.skip_debug.push(path.into());
        self
    }

    /// Leaves out the `.proto` comments of the selected elements, messages and services
    /// alike (as prost-build's `disable_comments`); the stubs keep their own docs.
    pub fn disable_comments(mut self, path: impl Into<String>) -> Self {
        self.disable_comments.push(path.into());
        self
    }

    /// Generates the well-known types (`google.protobuf.*`) as ordinary messages instead of
    /// using `prost-types` (default false). Their package is then generated like any other:
    /// the files importing them need its module beside theirs (`google::protobuf`).
    pub fn compile_well_known_types(mut self, enable: bool) -> Self {
        self.compile_well_known_types = enable;
        self
    }

    /// Makes every server trait method default to failing with `UNIMPLEMENTED`, so an
    /// implementation may provide only some (default false). The async trait's streaming
    /// methods then return [`BoxStream`](https://docs.rs/rsgrpc/latest/rsgrpc/type.BoxStream.html)
    /// rather than an associated type, which could not have a default.
    pub fn generate_default_stubs(mut self, enable: bool) -> Self {
        self.default_stubs = enable;
        self
    }

    /// Whether the package is part of the service names in method paths (default true:
    /// `/helloworld.Greeter/SayHello`; false: `/Greeter/SayHello`), for peers that serve
    /// services without their package.
    pub fn emit_package(mut self, enable: bool) -> Self {
        self.emit_package = enable;
        self
    }

    /// Also writes a file named `name` that declares the module tree of the generated
    /// packages, each including its file, so one `include!` brings them all (default none:
    /// include each package with `rsgrpc::include_proto!("package")`). It lists the packages
    /// of this run only.
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.include_file = Some(name.into());
        self
    }

    /// Makes [`compile`](Self::compile) also write the parsed descriptors, with their
    /// imports and source info, as an encoded `FileDescriptorSet` to `path` (for a
    /// reflection service, for example). Include it in the crate with
    /// `rsgrpc::include_file_descriptor_set!("name")` when `path` is
    /// `OUT_DIR/name.bin`. Only build scripts write files; the constant of
    /// [`file_descriptor_set`](Self::file_descriptor_set) works with every way in.
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file_descriptor_set_path = Some(path.into());
        self
    }

    /// Puts a constant `FILE_DESCRIPTOR_SET: &[u8]` in each package's file: the encoded
    /// `google.protobuf.FileDescriptorSet` of the package's `.proto` files and of every
    /// file they import, without source info (default false). It is what a reflection
    /// service needs (`rsgrpc_reflection::ReflectionService::builder()
    /// .register_encoded_file_descriptor_set(helloworld::FILE_DESCRIPTOR_SET)`), and the
    /// build script, the protoc plugin (`--rsgrpc_opt=file_descriptor_set`) and the macro
    /// (`file_descriptor_set = true`) all produce it.
    pub fn file_descriptor_set(mut self, enable: bool) -> Self {
        self.file_descriptor_set = enable;
        self
    }

    /// Whether [`compile`](Self::compile) prints `cargo:rerun-if-changed` lines for the
    /// input files, and `cargo:rerun-if-env-changed=PROTOC` when protoc is found through
    /// the environment (default true).
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Applies one option written as `key=value`, as the protoc plugin's `--rsgrpc_opt` and
    /// the macro do:
    ///
    /// | key | value | same as |
    /// |---|---|---|
    /// | `client`, `server`, `blocking`, `async` | `true` or `false` | [`build_client`](Self::build_client), [`build_server`](Self::build_server), [`blocking`](Self::blocking), [`asynchronous`](Self::asynchronous) |
    /// | `type_attribute`, `message_attribute`, `enum_attribute`, `field_attribute` | `PATH=ATTRIBUTE` | the setters of the same name |
    /// | `client_attribute`, `server_attribute`, `trait_attribute`, `client_mod_attribute`, `server_mod_attribute` | `PATH=ATTRIBUTE` | the setters of the same name |
    /// | `extern_path` | `PROTO_PATH=RUST_PATH` | [`extern_path`](Self::extern_path) |
    /// | `bytes`, `btree_map`, `boxed`, `skip_debug`, `disable_comments` | `PATH` | the setters of the same name |
    /// | `compile_well_known_types`, `default_stubs`, `emit_package`, `file_descriptor_set` | `true` or `false` | [`compile_well_known_types`](Self::compile_well_known_types), [`generate_default_stubs`](Self::generate_default_stubs), [`emit_package`](Self::emit_package), [`file_descriptor_set`](Self::file_descriptor_set) |
    /// | `include_file` | a file name | [`include_file`](Self::include_file) |
    ///
    /// A flag without a value (`default_stubs`) means `true`.
    ///
    /// # Errors
    ///
    /// An unknown key or a malformed value.
    pub fn option(self, option: &str) -> Result<Builder, Error> {
        options::apply(self, option)
    }

    /// Every option [`option`](Self::option) knows, with what its value is: for the macro,
    /// which takes the same options as attribute arguments.
    #[doc(hidden)]
    pub fn options() -> &'static [(&'static str, OptionValue)] {
        options::OPTIONS
    }

    /// Applies a protoc plugin parameter: options as for [`option`](Self::option),
    /// separated by commas. A comma inside a value is written `\,` and a backslash before a
    /// comma `\\`; other backslashes stay as they are:
    ///
    /// ```
    /// let builder = rsgrpc_codegen::Builder::new()
    ///     .parameter(r"blocking=false,type_attribute=.=#[derive(Eq\, Hash)]")?;
    /// # drop(builder);
    /// # Ok::<(), rsgrpc_codegen::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`option`](Self::option), for the first option that fails.
    pub fn parameter(self, parameter: &str) -> Result<Builder, Error> {
        options::split(parameter)
            .iter()
            .filter(|o| !o.trim().is_empty())
            .try_fold(self, |builder, option| builder.option(option))
    }

    /// Whether the well-known types are generated, by this builder's setting or by a
    /// [`configure_prost`](Self::configure_prost) hook.
    fn compiles_well_known_types(&self) -> bool {
        if self.compile_well_known_types {
            return true;
        }
        self.hooked_prost_setting("prost_types: false")
    }

    /// Whether the [`configure_prost`](Self::configure_prost) hooks change prost-build's
    /// `Config` so that its `Debug` output shows `setting`: it has no getters.
    fn hooked_prost_setting(&self, setting: &str) -> bool {
        if self.prost_hooks.is_empty() {
            return false;
        }
        let mut config = prost_build::Config::new();
        for hook in &self.prost_hooks {
            hook(&mut config);
        }
        format!("{config:?}").contains(setting)
    }

    fn prost_config(&self, generator: service::Generator) -> prost_build::Config {
        let mut config = prost_build::Config::new();
        config.service_generator(Box::new(generator));
        for (path, attribute) in &self.type_attributes {
            config.type_attribute(path, attribute);
        }
        for (path, attribute) in &self.message_attributes {
            config.message_attribute(path, attribute);
        }
        for (path, attribute) in &self.enum_attributes {
            config.enum_attribute(path, attribute);
        }
        for (path, attribute) in &self.field_attributes {
            config.field_attribute(path, attribute);
        }
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        for path in &self.boxed {
            config.boxed(path);
        }
        config.bytes(&self.bytes);
        config.btree_map(&self.btree_map);
        config.skip_debug(&self.skip_debug);
        config.disable_comments(&self.disable_comments);
        if self.compile_well_known_types {
            config.compile_well_known_types();
        }
        for hook in &self.prost_hooks {
            hook(&mut config);
        }
        config
    }

    fn stub_options(&self) -> service::StubOptions {
        service::StubOptions {
            parts: self.parts,
            emit_package: self.emit_package,
            default_stubs: self.default_stubs,
            client_attributes: self.client_attributes.clone(),
            server_attributes: self.server_attributes.clone(),
            trait_attributes: self.trait_attributes.clone(),
            client_mod_attributes: self.client_mod_attributes.clone(),
            server_mod_attributes: self.server_mod_attributes.clone(),
            disable_comments: self.disable_comments.clone(),
            extern_rust_paths: self.extern_paths.iter().map(|(_, r)| r.clone()).collect(),
        }
    }

    /// Every attribute setting, named as in [`option`](Self::option).
    fn attribute_settings(&self) -> Vec<(&'static str, &PathList)> {
        vec![
            ("type_attribute", &self.type_attributes),
            ("message_attribute", &self.message_attributes),
            ("enum_attribute", &self.enum_attributes),
            ("field_attribute", &self.field_attributes),
            ("client_attribute", &self.client_attributes),
            ("server_attribute", &self.server_attributes),
            ("trait_attribute", &self.trait_attributes),
            ("client_mod_attribute", &self.client_mod_attributes),
            ("server_mod_attribute", &self.server_mod_attributes),
        ]
    }

    /// Generates code for `files_to_generate` (names as in the descriptor set, such as
    /// `helloworld.proto`), which `set` describes together with everything they import.
    /// Returns one file per package, sorted by name, then the
    /// [`include_file`](Self::include_file) if one was asked for.
    ///
    /// Only the packages of `files_to_generate` are generated, as a protoc plugin does:
    /// types they use from other files are referred to where those files' packages would be
    /// generated (`super::common::Shapes`), or through an
    /// [`extern_path`](Self::extern_path).
    ///
    /// # Errors
    ///
    /// When a file to generate is not in the set, a descriptor is malformed, an attribute
    /// does not parse, two services or methods would get one Rust name, or the include file
    /// would overwrite a package's file.
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
        validate::descriptors(set)?;
        validate::types_resolve(set)?;
        validate::rust_names(set, files_to_generate)?;
        validate::enum_variants(
            set,
            files_to_generate,
            !self.hooked_prost_setting("strip_enum_prefix: false"),
        )?;
        for (option, list) in self.attribute_settings() {
            for (path, attribute) in list {
                validate::attribute(option, path, attribute)?;
            }
        }
        // prost-build resolves types across every file it is given (imports included), so
        // it gets the whole set; only the packages asked for are kept. It writes a module's
        // files in the order it is given them: sorted by name, the code is the same
        // whatever order the files came in (protoc and protox list them as they meet
        // them).
        let mut sorted: Vec<&FileDescriptorProto> = set.file.iter().collect();
        sorted.sort_by_key(|f| f.name());
        let requests = sorted
            .into_iter()
            .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone()))
            .collect();
        let generator = service::Generator {
            options: self.stub_options(),
            taken: names::TakenNames::new(set),
        };
        let mut config = self.prost_config(generator);
        // prost-build panics on some inputs (enum values whose Rust names collide, for
        // one); that must become an error, not a panic in the user's build.
        let modules =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.generate(requests)))
                .map_err(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    Error::generate(format!("prost-build failed: {message}"))
                })?
                .map_err(|e| Error::generate(e.to_string()))?;
        let mut files: BTreeMap<String, (Module, String)> = BTreeMap::new();
        for (module, content) in modules {
            if !wanted.contains(&module) {
                continue;
            }
            let name = module.to_file_name_or("_");
            // Packages differing only in case share a module; the first by name speaks
            // for them.
            let package = set
                .file
                .iter()
                .filter(|f| Module::from_protobuf_package_name(f.package()) == module)
                .map(|f| f.package())
                .min()
                .unwrap_or_default()
                .to_owned();
            let mut content = content
                .strip_prefix("// This file is @generated by prost-build.\n")
                .unwrap_or(&content)
                .to_owned();
            if self.file_descriptor_set {
                content.push_str(&descriptors::package_constant(set, |p| {
                    Module::from_protobuf_package_name(p) == module
                }));
            }
            let content = tidy::finish(&content, module.parts().last(), &package)?;
            if let Some((other, _)) = files.get(&name) {
                return Err(Error::invalid(format!(
                    "packages {:?} and {package:?} would both be written to {name}",
                    other.parts().collect::<Vec<_>>().join(".")
                )));
            }
            files.insert(name, (module, content));
        }
        let include = match &self.include_file {
            Some(include) => {
                if files.contains_key(include) {
                    return Err(Error::option(format!(
                        "the include file {include} would overwrite the file of the package \
                         of the same name; choose another include_file name"
                    )));
                }
                Some(GeneratedFile {
                    name: include.clone(),
                    module: None,
                    content: include_file(
                        files
                            .iter()
                            .map(|(name, (module, _))| (module, name.as_str())),
                    ),
                })
            }
            None => None,
        };
        let mut out: Vec<GeneratedFile> = files
            .into_iter()
            .map(|(name, (module, content))| GeneratedFile {
                name,
                module: Some(module.parts().map(str::to_owned).collect()),
                content,
            })
            .collect();
        out.extend(include);
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
        let wkt = self.compiles_well_known_types();
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
}

impl Builder {
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
            out.push_str(&format!("{indent}include!({file:?});\n"));
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

    #[test]
    fn a_hook_compiling_the_well_known_types_is_seen() {
        assert!(!Builder::new().compiles_well_known_types());
        let hooked = Builder::new().configure_prost(|c| {
            c.compile_well_known_types();
        });
        assert!(hooked.compiles_well_known_types());
    }
}
