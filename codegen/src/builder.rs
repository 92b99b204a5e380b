//! The [`Builder`]: what to generate and how, one setting at a time, and the `key=value`
//! options the protoc plugin and the macro apply to it.

use std::path::PathBuf;

use crate::Error;
use crate::options::{self, OptionValue};
use crate::parse::Parser;
use crate::paths::PathList;

/// Which stubs to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parts {
    pub(crate) client: bool,
    pub(crate) server: bool,
    pub(crate) blocking: bool,
    pub(crate) asynchronous: bool,
}

/// Configures code generation; [`compile_protos`](crate::compile_protos) is
/// `Builder::new().compile(..)`.
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
    pub(crate) parts: Parts,
    pub(crate) out_dir: Option<PathBuf>,
    pub(crate) parser: Parser,
    pub(crate) type_attributes: PathList,
    pub(crate) message_attributes: PathList,
    pub(crate) enum_attributes: PathList,
    pub(crate) field_attributes: PathList,
    pub(crate) extern_paths: PathList,
    pub(crate) bytes: Vec<String>,
    pub(crate) btree_map: Vec<String>,
    pub(crate) boxed: Vec<String>,
    pub(crate) skip_debug: Vec<String>,
    pub(crate) disable_comments: Vec<String>,
    pub(crate) compile_well_known_types: bool,
    pub(crate) retain_enum_prefix: bool,
    pub(crate) type_names: bool,
    pub(crate) type_name_domains: PathList,
    pub(crate) client_attributes: PathList,
    pub(crate) server_attributes: PathList,
    pub(crate) trait_attributes: PathList,
    pub(crate) client_mod_attributes: PathList,
    pub(crate) server_mod_attributes: PathList,
    pub(crate) default_stubs: bool,
    pub(crate) emit_package: bool,
    pub(crate) include_file: Option<String>,
    pub(crate) file_descriptor_set_path: Option<PathBuf>,
    pub(crate) file_descriptor_set: bool,
    pub(crate) emit_rerun_if_changed: bool,
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
            .field("retain_enum_prefix", &self.retain_enum_prefix)
            .field("type_names", &self.type_names)
            .field("default_stubs", &self.default_stubs)
            .field("emit_package", &self.emit_package)
            .field("include_file", &self.include_file)
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
            retain_enum_prefix: false,
            type_names: false,
            type_name_domains: Vec::new(),
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
        }
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

    /// Keeps the enum's name in front of its variants' names, as the `.proto` file writes
    /// them (`Color::ColorRed` for `COLOR_RED` in `enum Color`), instead of removing it
    /// (`Color::Red`, the default; as prost-build's `retain_enum_prefix`).
    pub fn retain_enum_prefix(mut self, enable: bool) -> Self {
        self.retain_enum_prefix = enable;
        self
    }

    /// Implements `prost::Name` for every message, so it can be packed into a
    /// `prost_types::Any` (default false; as prost-build's `enable_type_names`). Type URLs
    /// are `/package.Message`, with no domain, unless a
    /// [`type_name_domain`](Self::type_name_domain) gives one (Google's APIs use
    /// `type.googleapis.com`).
    pub fn enable_type_names(mut self, enable: bool) -> Self {
        self.type_names = enable;
        self
    }

    /// Uses `domain` in the type URLs of the messages selected by `path`
    /// (`example.com/package.Message`), when [`enable_type_names`](Self::enable_type_names)
    /// is on (as prost-build's `type_name_domain`).
    pub fn type_name_domain(mut self, path: impl Into<String>, domain: impl Into<String>) -> Self {
        self.type_name_domains.push((path.into(), domain.into()));
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
    /// | `type_name_domain` | `PATH=DOMAIN` | [`type_name_domain`](Self::type_name_domain) |
    /// | `bytes`, `btree_map`, `boxed`, `skip_debug`, `disable_comments` | `PATH` | the setters of the same name |
    /// | `compile_well_known_types`, `retain_enum_prefix`, `enable_type_names`, `default_stubs`, `emit_package`, `file_descriptor_set` | `true` or `false` | [`compile_well_known_types`](Self::compile_well_known_types), [`retain_enum_prefix`](Self::retain_enum_prefix), [`enable_type_names`](Self::enable_type_names), [`generate_default_stubs`](Self::generate_default_stubs), [`emit_package`](Self::emit_package), [`file_descriptor_set`](Self::file_descriptor_set) |
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
}
