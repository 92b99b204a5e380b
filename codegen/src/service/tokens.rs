//! Small pieces of generated code: doc attributes, identifiers, attributes given as text.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

/// `#[doc = "..."]` attributes from `.proto` comments, sanitised for rustdoc by prost-build.
pub(super) fn doc_attrs(comments: &prost_build::Comments) -> Vec<TokenStream> {
    let mut rendered = String::new();
    let leading_only = prost_build::Comments {
        leading_detached: Vec::new(),
        leading: comments.leading.clone(),
        trailing: comments.trailing.clone(),
    };
    leading_only.append_with_indent(0, &mut rendered);
    rendered
        .lines()
        .filter_map(|line| line.strip_prefix("///"))
        .map(|line| quote!(#[doc = #line]))
        .collect()
}

/// Documents a response stream type, linking to its method.
pub(super) fn stream_doc(method: &str) -> TokenStream {
    doc_line(&format!("The response stream of {}.", method_link(method)))
}

/// A link to the method `method` of `Self`, or its name in code when it is a raw
/// identifier (which intra-doc links cannot name).
pub(super) fn method_link(method: &str) -> String {
    match method.strip_prefix("r#") {
        Some(bare) => format!("`{bare}`"),
        None => format!("[`Self::{method}`]"),
    }
}

pub(super) fn doc_line(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#[doc = #text])
}

/// An inner doc line (`//!`): links in it resolve inside the module it documents.
pub(super) fn inner_doc_line(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#![doc = #text])
}

pub(super) fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
}

/// Attributes given as text, already checked by the builder.
pub(super) fn attributes<'a>(values: impl Iterator<Item = &'a str>) -> TokenStream {
    values
        .filter_map(|value| value.parse::<TokenStream>().ok())
        .collect()
}

/// The runtime's hidden module of what generated code uses, at the version this generator
/// writes for: stubs and a runtime that do not match fail to compile where they name it.
pub(super) fn codegen_module() -> TokenStream {
    quote!(::rsgrpc::codegen::v1)
}
