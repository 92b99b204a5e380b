//! `#[grpc_service]`: messages and both stub flavours generated from `.proto` files at
//! compile time, by the same generator as `rsgrpc-codegen`'s build script API and the protoc
//! plugin. Use it through `rsgrpc::grpc_service` (the `macros` feature, on by default).
//!
//! ```text
//! #[rsgrpc::grpc_service(proto = "proto/helloworld.proto", includes = ["proto"])]
//! pub mod helloworld {}
//! ```
//!
//! Arguments (paths are relative to the crate's `CARGO_MANIFEST_DIR`):
//!
//! | argument | value |
//! |---|---|
//! | `proto` | a path, or a list of paths |
//! | `includes` | a path, or a list of paths, searched for the protos and their imports (default: the protos' directories) |
//! | `client`, `server`, `blocking`, `async` | `true` or `false` (default `true`) |
//! | `type_attribute`, `field_attribute`, `extern_path` | `["PATH", "VALUE"]` |
//! | `bytes`, `btree_map` | a protobuf path |
//!
//! With one package, its code goes straight into the module; with several, each becomes
//! a nested module (`a.b` → `a::b`) inside it. Items already in the module are kept. The
//! crate is rebuilt when a `.proto` file or one it imports changes. Problems are compile
//! errors pointing at the attribute.

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
        Err(message) => {
            let span = Span::call_site();
            let error = quote_spanned!(span=> ::core::compile_error!(#message););
            quote!(#error #item).into()
        }
    }
}

/// A parsed argument value.
enum Value {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

impl Value {
    fn strings(self, key: &str) -> Result<Vec<String>, String> {
        match self {
            Value::Str(s) => Ok(vec![s]),
            Value::List(list) => Ok(list),
            Value::Bool(_) => Err(format!("`{key}` takes a string or a list of strings")),
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

fn parse_value(key: &str, tokens: &[TokenTree]) -> Result<Value, String> {
    match tokens {
        [TokenTree::Literal(literal)] => unquote(literal)
            .map(Value::Str)
            .ok_or_else(|| format!("`{key}` takes a string literal")),
        [TokenTree::Ident(ident)] if ident == "true" || ident == "false" => {
            Ok(Value::Bool(ident == "true"))
        }
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::Bracket => {
            let mut list = Vec::new();
            for part in split_commas(group.stream()) {
                match part.as_slice() {
                    [TokenTree::Literal(literal)] => list.push(
                        unquote(literal).ok_or_else(|| format!("`{key}` lists string literals"))?,
                    ),
                    _ => return Err(format!("`{key}` lists string literals")),
                }
            }
            Ok(Value::List(list))
        }
        _ => Err(format!("cannot read the value of `{key}`")),
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

fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream, String> {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR")
            .ok_or("CARGO_MANIFEST_DIR is not set; is this built by cargo?")?,
    );
    let mut protos = Vec::new();
    let mut includes = Vec::new();
    let mut builder = rsgrpc_codegen::Builder::new().emit_rerun_if_changed(false);
    for part in split_commas(attr) {
        let (key, value) = match part.as_slice() {
            [TokenTree::Ident(key), TokenTree::Punct(eq), rest @ ..] if eq.as_char() == '=' => {
                (key.to_string(), parse_value(&key.to_string(), rest)?)
            }
            _ => {
                return Err(
                    "grpc_service arguments are `key = value`, such as `proto = \"x.proto\"`"
                        .into(),
                );
            }
        };
        match (key.as_str(), value) {
            ("proto", value) => protos.extend(value.strings("proto")?),
            ("includes", value) => includes.extend(value.strings("includes")?),
            (flag @ ("client" | "server" | "blocking" | "async"), Value::Bool(b)) => {
                builder = builder
                    .option(&format!("{flag}={b}"))
                    .map_err(|e| e.to_string())?;
            }
            (pair @ ("type_attribute" | "field_attribute" | "extern_path"), Value::List(list)) => {
                let [path, value] = list.as_slice() else {
                    return Err(format!("`{pair}` takes [\"PATH\", \"VALUE\"]"));
                };
                builder = builder
                    .option(&format!("{pair}={path}={value}"))
                    .map_err(|e| e.to_string())?;
            }
            (key, Value::Str(s)) => {
                builder = builder
                    .option(&format!("{key}={s}"))
                    .map_err(|e| e.to_string())?;
            }
            (key, _) => {
                return Err(format!(
                    "unknown or malformed grpc_service argument `{key}`; known: proto, includes, \
                     client, server, blocking, async, type_attribute, field_attribute, \
                     extern_path, bytes, btree_map"
                ));
            }
        }
    }
    if protos.is_empty() {
        return Err("grpc_service needs `proto = \"path/to/file.proto\"`".into());
    }
    let protos: Vec<PathBuf> = protos.iter().map(|p| manifest_dir.join(p)).collect();
    for proto in &protos {
        if !proto.is_file() {
            return Err(format!("cannot find {}", proto.display()));
        }
    }
    let includes: Vec<PathBuf> = if includes.is_empty() {
        protos
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    } else {
        includes.iter().map(|i| manifest_dir.join(i)).collect()
    };
    let (files, inputs) = builder
        .generate_from_files(&protos, &includes)
        .map_err(|e| e.to_string())?;
    let packages: Vec<_> = files
        .iter()
        .filter(|f| f.name != rsgrpc_codegen::INCLUDE_FILE)
        .collect();
    if packages.is_empty() {
        return Err(format!(
            "nothing to generate: no messages or services in {}",
            protos
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut generated = TokenStream::new();
    if let [only] = packages.as_slice() {
        generated.extend(parse(&only.content)?);
    } else {
        generated.extend(module_tree(&packages)?);
    }
    // Reading each input with include_bytes! makes cargo rebuild when one changes.
    for input in &inputs {
        let path = input.display().to_string();
        generated.extend(quote!(
            const _: &[u8] = ::core::include_bytes!(#path);
        ));
    }
    insert_into_module(item, generated)
}

fn parse(content: &str) -> Result<TokenStream, String> {
    content
        .parse()
        .map_err(|e| format!("generated code does not parse (a bug in rsgrpc): {e}"))
}

/// Nests each package's code in modules named after its parts.
fn module_tree(packages: &[&rsgrpc_codegen::GeneratedFile]) -> Result<TokenStream, String> {
    #[derive(Default)]
    struct Node {
        code: TokenStream,
        children: std::collections::BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for file in packages {
        let package = file.name.trim_end_matches(".rs");
        let mut node = &mut root;
        if package != "_" {
            for part in package.split('.') {
                node = node.children.entry(part.to_owned()).or_default();
            }
        }
        node.code.extend(parse(&file.content)?);
    }
    fn render(node: Node) -> Result<TokenStream, String> {
        let mut out = node.code;
        for (name, child) in node.children {
            let ident: TokenStream = name
                .parse()
                .map_err(|_| format!("invalid module name {name}"))?;
            let body = render(child)?;
            out.extend(quote!(pub mod #ident { #body }));
        }
        Ok(out)
    }
    render(root)
}

/// Puts `generated` first in the braces of the `mod` item, keeping what was there.
fn insert_into_module(item: TokenStream, generated: TokenStream) -> Result<TokenStream, String> {
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let is_mod = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i == "mod"));
    match tokens.last_mut() {
        Some(TokenTree::Group(group)) if is_mod && group.delimiter() == Delimiter::Brace => {
            let mut body = generated;
            body.extend(group.stream());
            let mut replaced = Group::new(Delimiter::Brace, body);
            replaced.set_span(group.span());
            *group = replaced;
            Ok(tokens.into_iter().collect())
        }
        _ => Err("grpc_service goes on an inline module: `pub mod name {}`".into()),
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
