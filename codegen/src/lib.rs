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
//! (`rpc Cmp`), a message whose field `len` has a getter but no `is_empty`, an enum or
//! oneof whose variants repeat its name or share a word (`enum_variant_names`, which
//! clippy reports where the enum is not exported, as in a binary; with
//! [`Builder::retain_enum_prefix`] every enum of three values or more). `.proto`
//! comments written as markdown lists with unindented continuation lines are re-indented,
//! which renders the same; what rustdoc would read as HTML in them (`Vec<String>`,
//! `<namespace>`) is escaped, so it shows as written and rustdoc does not warn.

#![forbid(unsafe_code)]

mod builder;
mod compile;
mod descriptors;
mod error;
mod generate;
mod lints;
mod names;
mod options;
mod parse;
mod paths;
mod service;
mod tidy;
mod validate;

use prost_types::{FileDescriptorProto, FileDescriptorSet};

pub use builder::Builder;
pub use compile::compile_protos;
pub use error::Error;
pub use generate::GeneratedFile;
#[doc(hidden)]
pub use options::OptionValue;
pub use parse::Parser;

/// Descriptors of a protoc plugin request, for the plugin binary.
#[doc(hidden)]
pub fn descriptor_set(files: Vec<FileDescriptorProto>) -> FileDescriptorSet {
    FileDescriptorSet { file: files }
}
