//! `protoc-gen-rsgrpc`: the protoc plugin generating rsgrpc stubs and prost messages.
//!
//! ```text
//! protoc --plugin=protoc-gen-rsgrpc=PATH --rsgrpc_out=DIR [--rsgrpc_opt=KEY=VALUE,...] -I proto x.proto
//! ```
//!
//! Writes one `.rs` file per package of the files protoc is asked to generate
//! (`helloworld.rs`, `grpc.testing.rs`, `_.rs` without a package), each to be included in
//! a module tree matching the packages (`pub mod grpc { pub mod testing {
//! include!("grpc.testing.rs"); } }`). With `include_file=NAME` it also writes that file,
//! which declares the tree for this run's packages.
//!
//! protoc generates only the files it is given (its `file_to_generate`), not their imports:
//! either give it every file of the import closure in one run, or generate the imports in
//! another run and point at them with `extern_path=.package=crate::path::to::package`, or
//! include each run's files at the module paths matching their packages.
//!
//! Options are those of `rsgrpc_codegen::Builder::option`, separated by commas; a comma
//! inside a value is written `\,` (`--rsgrpc_opt='type_attribute=.=#[derive(Eq\, Hash)]'`).
//! Problems are reported in the response's error field, which protoc prints.

use std::io::{Read, Write};

use prost::Message;
use prost_types::compiler::code_generator_response::{Feature, File};
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

fn respond(request: CodeGeneratorRequest) -> Result<Vec<File>, String> {
    let builder = rsgrpc_codegen::Builder::new()
        .parameter(request.parameter())
        .map_err(|e| e.to_string())?;
    let set = rsgrpc_codegen::descriptor_set(request.proto_file);
    let files = builder
        .generate(&set, &request.file_to_generate)
        .map_err(|e| e.to_string())?;
    Ok(files
        .into_iter()
        .map(|file| File {
            name: Some(file.name),
            content: Some(file.content),
            ..File::default()
        })
        .collect())
}

fn main() -> std::process::ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-rsgrpc: cannot read the request from stdin: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let mut response = CodeGeneratorResponse {
        supported_features: Some(Feature::Proto3Optional as u64),
        ..CodeGeneratorResponse::default()
    };
    match CodeGeneratorRequest::decode(input.as_slice()) {
        Ok(request) => match respond(request) {
            Ok(files) => response.file = files,
            Err(message) => response.error = Some(message),
        },
        Err(e) => {
            response.error = Some(format!(
                "protoc-gen-rsgrpc: stdin is not a CodeGeneratorRequest ({e}); run me from protoc"
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(&response.encode_to_vec())
        .and_then(|()| out.flush())
    {
        eprintln!("protoc-gen-rsgrpc: cannot write the response: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
