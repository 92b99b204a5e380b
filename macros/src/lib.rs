//! `#[grpc_service]`: messages and both stub flavours generated from `.proto` files at
//! compile time, by the same generator as `rsgrpc-codegen`'s build script API and the protoc
//! plugin. Use it through `rsgrpc::grpc_service`, with `rsgrpc`'s `macros` feature (off by
//! default: it compiles the code generator into every build, which costs users of the
//! build script or the plugin nothing they need).
//!
//! ```text
//! # Cargo.toml
//! rsgrpc = { version = "0.1", features = ["macros"] }
//!
//! #[rsgrpc::grpc_service(proto = "proto/helloworld.proto", includes = ["proto"])]
//! pub mod helloworld {}
//! // helloworld::greeter_client::GreeterClient, helloworld::greeter_server::Greeter, ...
//! ```
//!
//! Arguments (paths are relative to the crate's `CARGO_MANIFEST_DIR`):
//!
//! | argument | value |
//! |---|---|
//! | `proto` | a path, or a list of paths |
//! | `includes` | a path, or a list of paths, searched for the protos and their imports (default: the protos' directories) |
//! | `client`, `server`, `blocking`, `async`, `compile_well_known_types`, `retain_enum_prefix`, `enable_type_names`, `default_stubs`, `emit_package`, `file_descriptor_set` | `true` or `false` |
//! | `type_attribute`, `message_attribute`, `enum_attribute`, `field_attribute`, `client_attribute`, `server_attribute`, `trait_attribute`, `client_mod_attribute`, `server_mod_attribute`, `extern_path`, `type_name_domain` | `["PATH", "VALUE"]` |
//! | `bytes`, `btree_map`, `boxed`, `skip_debug`, `disable_comments` | a protobuf path |
//! | `include_file` | a file name |
//!
//! They are the options of `rsgrpc_codegen::Builder::option` (the protoc plugin's) and mean
//! what the `Builder` setters of the same names mean; `include_file` changes nothing here,
//! since the macro nests the packages' modules itself.
//!
//! With one package, its code goes straight into the module; with several, each becomes
//! a nested module (`a.b` → `a::b`) inside it. Items already in the module are kept. The
//! crate is rebuilt when a `.proto` file or one it imports changes. Problems are compile
//! errors pointing at the argument at fault: the `proto` path that is missing or does not
//! parse, the name of an unknown argument, the value that is malformed.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};

/// Generates messages and stubs from `.proto` files into the annotated module; see the
/// crate documentation.
#[proc_macro_attribute]
pub fn grpc_service(
    attr: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    let item = TokenStream::from(item);
    match expand(attr.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item).into()
        }
    }
}

/// A problem with the attribute, and the tokens it is about.
#[derive(Debug)]
struct Error {
    span: Span,
    message: String,
}

impl Error {
    fn new(span: Span, message: impl Into<String>) -> Error {
        Error {
            span,
            message: message.into(),
        }
    }

    /// `compile_error!` spanned so that the compiler points at the offending tokens.
    fn into_compile_error(self) -> TokenStream {
        let message = self.message;
        quote_spanned!(self.span=> ::core::compile_error! { #message })
    }
}

/// A parsed argument value.
enum Value {
    Str(String, Span),
    Bool(bool),
    List(Vec<(String, Span)>),
}

/// An argument: its name and where it is, its value and where that is.
struct Argument {
    key: String,
    key_span: Span,
    value: Value,
    value_span: Span,
}

impl Argument {
    fn strings(self) -> Result<Vec<(String, Span)>, Error> {
        match self.value {
            Value::Str(s, span) => Ok(vec![(s, span)]),
            Value::List(list) => Ok(list),
            Value::Bool(_) => Err(Error::new(
                self.value_span,
                format!("`{}` takes a string or a list of strings", self.key),
            )),
        }
    }
}

/// Reads a string literal's value (`"..."` with the usual escapes, or `r"..."`).
fn unquote(literal: &Literal) -> Option<String> {
    let text = literal.to_string();
    if let Some(raw) = text.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = &raw[hashes..];
        return body
            .strip_prefix('"')?
            .strip_suffix(&format!("\"{}", "#".repeat(hashes)))
            .map(str::to_owned);
    }
    let body = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            other => out.push(other),
        }
    }
    Some(out)
}

/// The span covering `tokens` (their first token's span where spans cannot be joined).
fn span_of(tokens: &[TokenTree]) -> Span {
    let first = tokens.first().map_or_else(Span::call_site, TokenTree::span);
    let last = tokens.last().map_or(first, TokenTree::span);
    first.join(last).unwrap_or(first)
}

fn parse_value(key: &str, tokens: &[TokenTree]) -> Result<Value, Error> {
    let span = span_of(tokens);
    match tokens {
        [TokenTree::Literal(literal)] => unquote(literal)
            .map(|s| Value::Str(s, literal.span()))
            .ok_or_else(|| Error::new(span, format!("`{key}` takes a string literal"))),
        [TokenTree::Ident(ident)] if ident == "true" || ident == "false" => {
            Ok(Value::Bool(ident == "true"))
        }
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::Bracket => {
            let mut list = Vec::new();
            for part in split_commas(group.stream()) {
                match part.as_slice() {
                    [TokenTree::Literal(literal)] => list.push((
                        unquote(literal).ok_or_else(|| {
                            Error::new(literal.span(), format!("`{key}` lists string literals"))
                        })?,
                        literal.span(),
                    )),
                    other => {
                        return Err(Error::new(
                            span_of(other),
                            format!("`{key}` lists string literals"),
                        ));
                    }
                }
            }
            Ok(Value::List(list))
        }
        [] => Err(Error::new(span, format!("`{key}` needs a value"))),
        _ => Err(Error::new(
            span,
            format!("cannot read the value of `{key}`"),
        )),
    }
}

fn split_commas(tokens: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut parts = vec![Vec::new()];
    for token in tokens {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(Vec::new()),
            _ => parts.last_mut().expect("never empty").push(token),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

fn parse_arguments(attr: TokenStream) -> Result<Vec<Argument>, Error> {
    split_commas(attr)
        .into_iter()
        .map(|part| match part.as_slice() {
            [TokenTree::Ident(key), TokenTree::Punct(eq), rest @ ..] if eq.as_char() == '=' => {
                let key_name = key.to_string();
                Ok(Argument {
                    value: parse_value(&key_name, rest)?,
                    value_span: if rest.is_empty() {
                        eq.span()
                    } else {
                        span_of(rest)
                    },
                    key: key_name,
                    key_span: key.span(),
                })
            }
            other => Err(Error::new(
                span_of(other),
                "grpc_service arguments are `key = value`, such as `proto = \"x.proto\"`",
            )),
        })
        .collect()
}

/// The kind of value of a code generation option, by its name: the options are
/// `rsgrpc_codegen::Builder::option`'s, from the one list the code generator keeps.
fn option_value(key: &str) -> Option<rsgrpc_codegen::OptionValue> {
    rsgrpc_codegen::Builder::options()
        .iter()
        .find(|(option, _)| *option == key)
        .map(|(_, value)| *value)
}

/// The names of all arguments, for error messages.
fn known_arguments() -> String {
    let mut known = vec!["proto", "includes"];
    known.extend(
        rsgrpc_codegen::Builder::options()
            .iter()
            .map(|(key, _)| *key),
    );
    known.join(", ")
}

fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| {
        Error::new(
            Span::call_site(),
            "CARGO_MANIFEST_DIR is not set; is this built by cargo?",
        )
    })?);
    let mut protos: Vec<(String, Span)> = Vec::new();
    let mut includes: Vec<(String, Span)> = Vec::new();
    let mut builder = rsgrpc_codegen::Builder::new().emit_rerun_if_changed(false);
    for argument in parse_arguments(attr)? {
        let key = argument.key.clone();
        let kind = option_value(&key);
        if !matches!(key.as_str(), "proto" | "includes") && kind.is_none() {
            return Err(Error::new(
                argument.key_span,
                format!(
                    "unknown grpc_service argument `{key}`; known: {}",
                    known_arguments()
                ),
            ));
        }
        let value_span = argument.value_span;
        let option = match (key.as_str(), argument.value) {
            ("proto", value) | ("includes", value) => {
                let strings = Argument { value, ..argument }.strings()?;
                if key == "proto" {
                    protos.extend(strings);
                } else {
                    includes.extend(strings);
                }
                continue;
            }
            (flag, Value::Bool(b)) => format!("{flag}={b}"),
            (pair, Value::List(list)) if kind == Some(rsgrpc_codegen::OptionValue::Pair) => {
                let [(path, _), (value, _)] = list.as_slice() else {
                    return Err(Error::new(
                        value_span,
                        format!("`{pair}` takes [\"PATH\", \"VALUE\"]"),
                    ));
                };
                format!("{pair}={path}={value}")
            }
            (key, Value::Str(s, _)) => format!("{key}={s}"),
            (key, _) => {
                return Err(Error::new(
                    value_span,
                    format!("malformed value for grpc_service argument `{key}`"),
                ));
            }
        };
        builder = builder
            .option(&option)
            .map_err(|e| Error::new(value_span, e.to_string()))?;
    }
    let Some(&(_, first_span)) = protos.first() else {
        return Err(Error::new(
            Span::call_site(),
            "grpc_service needs `proto = \"path/to/file.proto\"`",
        ));
    };
    let mut proto_paths = Vec::new();
    for (proto, span) in &protos {
        let path = manifest_dir.join(proto);
        if !path.is_file() {
            return Err(Error::new(
                *span,
                format!(
                    "cannot find {proto} (a relative path starts at the crate's directory, \
                     CARGO_MANIFEST_DIR)"
                ),
            ));
        }
        proto_paths.push(path);
    }
    let include_paths: Vec<PathBuf> = if includes.is_empty() {
        proto_paths
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    } else {
        includes.iter().map(|(i, _)| manifest_dir.join(i)).collect()
    };
    let (files, inputs) = builder
        .generate_from_files(&proto_paths, &include_paths)
        .map_err(|e| {
            // Point at the proto the error names, if it names one.
            let message = e.to_string();
            let span = protos
                .iter()
                .find(|(proto, _)| {
                    Path::new(proto)
                        .file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| message.contains(f))
                })
                .map_or(first_span, |(_, span)| *span);
            Error::new(span, message)
        })?;
    let packages: Vec<_> = files.iter().filter(|f| f.module.is_some()).collect();
    if packages.is_empty() {
        return Err(Error::new(
            first_span,
            format!(
                "nothing to generate: no messages or services in {}",
                protos
                    .iter()
                    .map(|(proto, _)| proto.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut generated = TokenStream::new();
    if let [only] = packages.as_slice() {
        generated.extend(parse(&only.content)?);
    } else {
        generated.extend(module_tree(&packages)?);
    }
    // The user's own span for the generated code, as for code a build script writes and
    // `include!` reads: tokens parsed here would otherwise belong to this macro's
    // expansion, which changes what the compiler warns about (a deprecated field used by
    // prost's derive warns in macro code only).
    let mut generated = respan(generated, module_name_span(&item));
    // Reading each input with include_bytes! makes cargo rebuild when one changes.
    for input in &inputs {
        let path = input.display().to_string();
        generated.extend(quote!(
            const _: &[u8] = ::core::include_bytes!(#path);
        ));
    }
    insert_into_module(item, generated)
}

/// The span of the annotated module's name: the user's source, not a macro expansion.
fn module_name_span(item: &TokenStream) -> Span {
    let mut tokens = item.clone().into_iter();
    while let Some(token) = tokens.next() {
        if matches!(&token, TokenTree::Ident(i) if i == "mod") {
            if let Some(name) = tokens.next() {
                return name.span();
            }
        }
    }
    Span::call_site()
}

/// `tokens` with every span, inside groups too, set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

fn parse(content: &str) -> Result<TokenStream, Error> {
    content.parse().map_err(|e| {
        Error::new(
            Span::call_site(),
            format!("generated code does not parse (a bug in rsgrpc): {e}"),
        )
    })
}

/// Nests each package's code in modules named after its parts.
fn module_tree(packages: &[&rsgrpc_codegen::GeneratedFile]) -> Result<TokenStream, Error> {
    #[derive(Default)]
    struct Node {
        code: TokenStream,
        children: std::collections::BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for file in packages {
        let mut node = &mut root;
        for part in file.module.iter().flatten() {
            node = node.children.entry(part.clone()).or_default();
        }
        node.code.extend(parse(&file.content)?);
    }
    fn render(node: Node) -> Result<TokenStream, Error> {
        let mut out = node.code;
        for (name, child) in node.children {
            let ident: TokenStream = name.parse().map_err(|_| {
                Error::new(Span::call_site(), format!("invalid module name {name}"))
            })?;
            let body = render(child)?;
            out.extend(quote!(pub mod #ident { #body }));
        }
        Ok(out)
    }
    render(root)
}

/// Puts `generated` first in the braces of the `mod` item, keeping what was there.
fn insert_into_module(item: TokenStream, generated: TokenStream) -> Result<TokenStream, Error> {
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let is_mod = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i == "mod"));
    let span = span_of(&tokens);
    match tokens.last_mut() {
        Some(TokenTree::Group(group)) if is_mod && group.delimiter() == Delimiter::Brace => {
            let mut body = generated;
            body.extend(group.stream());
            let mut replaced = Group::new(Delimiter::Brace, body);
            replaced.set_span(group.span());
            *group = replaced;
            Ok(tokens.into_iter().collect())
        }
        _ => Err(Error::new(
            span,
            "grpc_service goes on an inline module: `pub mod name {}`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> TokenStream {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/generated/src/golden")
            .join(name);
        parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn expand_proto(proto: &str) -> String {
        let attr: TokenStream = format!("proto = \"{proto}\", includes = [\"../examples/proto\"]")
            .parse()
            .unwrap();
        let item: TokenStream = "pub mod generated {}".parse().unwrap();
        expand(attr, item).unwrap().to_string()
    }

    #[test]
    fn every_option_is_an_argument_and_documented() {
        let docs = include_str!("lib.rs");
        let table = &docs[..docs.find("#![forbid(unsafe_code)]").unwrap()];
        for (key, value) in rsgrpc_codegen::Builder::options() {
            assert!(
                table.contains(&format!("`{key}`")),
                "{key} is not in the docs"
            );
            let value = match value {
                rsgrpc_codegen::OptionValue::Flag => "true",
                rsgrpc_codegen::OptionValue::Pair => "[\".other\", \"#[derive(Eq)]\"]",
                rsgrpc_codegen::OptionValue::Value => "\"x.rs\"",
            };
            let attr: TokenStream = format!(
                "proto = \"../examples/proto/helloworld/helloworld.proto\", {key} = {value}"
            )
            .parse()
            .unwrap();
            if let Err(e) = expand(attr, "mod hw {}".parse().unwrap()) {
                panic!("{key}: {}", e.message);
            }
        }
    }

    #[test]
    fn macro_output_is_the_build_script_output() {
        // The golden files are what the build script API (and the protoc plugin) produce.
        for (proto, golden_file) in [
            (
                "../examples/proto/helloworld/helloworld.proto",
                "helloworld.rs",
            ),
            (
                "../examples/proto/routeguide/route_guide.proto",
                "routeguide.rs",
            ),
        ] {
            let expanded = expand_proto(proto);
            let expected = golden(golden_file).to_string();
            assert!(
                expanded.contains(&expected),
                "the macro's expansion of {proto} differs from {golden_file}"
            );
        }
    }

    #[test]
    fn the_descriptor_constant_is_the_build_scripts() {
        let attr: TokenStream = "proto = \"../examples/proto/helloworld/helloworld.proto\", \
                                 includes = [\"../examples/proto\"], file_descriptor_set = true"
            .parse()
            .unwrap();
        let out = expand(attr, "mod hw {}".parse().unwrap())
            .unwrap()
            .to_string();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proto");
        let (files, _) = rsgrpc_codegen::Builder::new()
            .file_descriptor_set(true)
            .generate_from_files(&[dir.join("helloworld/helloworld.proto")], &[&dir])
            .unwrap();
        let expected = parse(&files[0].content).unwrap().to_string();
        assert!(expected.contains("FILE_DESCRIPTOR_SET"), "{expected}");
        assert!(out.contains(&expected), "{out}");
    }

    #[test]
    fn user_items_are_kept_after_the_generated_code() {
        let attr: TokenStream = "proto = \"../examples/proto/helloworld/helloworld.proto\""
            .parse()
            .unwrap();
        let item: TokenStream = "pub mod hw { pub const MINE: u8 = 1; }".parse().unwrap();
        let out = expand(attr, item).unwrap().to_string();
        assert!(out.starts_with("pub mod hw {"), "{out}");
        assert!(out.contains("pub const MINE : u8 = 1 ;"), "{out}");
        assert!(out.contains("include_bytes !"), "{out}");
    }

    #[test]
    fn several_protos_in_one_attribute() {
        let attr: TokenStream = "proto = [\"../examples/proto/helloworld/helloworld.proto\", \
                                 \"../examples/proto/routeguide/route_guide.proto\"], \
                                 includes = [\"../examples/proto\"]"
            .parse()
            .unwrap();
        let out = expand(attr, "mod both {}".parse().unwrap())
            .unwrap()
            .to_string();
        assert!(out.contains("pub mod helloworld {"), "{out}");
        assert!(out.contains("pub mod routeguide {"), "{out}");
        assert!(out.contains("pub struct GreeterClient"), "{out}");
        assert!(out.contains("pub struct RouteGuideBlockingClient"), "{out}");
    }

    #[test]
    fn several_packages_nest_as_modules() {
        let attr: TokenStream = "proto = [\"../tests/proto/corpus/app/v1/app.proto\"], \
                                 includes = [\"../tests/proto\"]"
            .parse()
            .unwrap();
        let out = expand(attr, "mod all {}".parse().unwrap())
            .unwrap()
            .to_string();
        assert!(
            out.contains("pub mod corpus { pub mod app { pub mod v1 {"),
            "{out}"
        );
        assert!(out.contains("pub mod common {"), "{out}");
    }
}
