//! End-to-end tests of rsgrpc, one binary with a module per area.

mod compression;
mod failures;
mod generated_interop;
mod generated_options;
mod grpc_web;
mod interceptors;
mod interop_protos;
mod isolation;
mod kinds;
mod lifecycle;
mod protocol;
mod runtimes;
mod settings;
mod sharing;
mod support;
mod tonic_interop;
