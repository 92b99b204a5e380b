//! Stubs for one service: async and blocking clients in `<service>_client`, async and
//! blocking server traits and the types that register an implementation in
//! `<service>_server` (see [`crate::names`] for why these names cannot clash).
//!
//! Every generated method is one call to a generic helper of the `rsgrpc` runtime; the
//! routing and plumbing live there. Paths are absolute (`::rsgrpc::...`,
//! `::core::marker::Send`) and messages are `super::Message`, so the generated code needs no
//! `use` items and no name in it can be shadowed.

mod client;
mod kind;
mod method;
mod server;
mod tokens;

use proc_macro2::TokenStream;
use quote::quote;

use crate::builder::Parts;
use crate::names::TakenNames;
use crate::paths::{self, PathList};

pub(crate) use client::client_reserved_names;
use method::context;
use tokens::{attributes, ident, inner_doc_line};

/// What the builder says about stubs.
#[derive(Clone, Debug)]
pub(crate) struct StubOptions {
    pub(crate) parts: Parts,
    pub(crate) emit_package: bool,
    pub(crate) default_stubs: bool,
    pub(crate) client_attributes: PathList,
    pub(crate) server_attributes: PathList,
    pub(crate) trait_attributes: PathList,
    pub(crate) client_mod_attributes: PathList,
    pub(crate) server_mod_attributes: PathList,
    pub(crate) disable_comments: Vec<String>,
    /// The Rust side of every `extern_path`, to tell them from prost-build's relative paths.
    pub(crate) extern_rust_paths: Vec<String>,
}

/// Generates stubs for each service prost-build hands over.
pub(crate) struct Generator {
    pub(crate) options: StubOptions,
    pub(crate) taken: TakenNames,
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let tokens = service_tokens(&service, &self.options, &self.taken);
        buf.push('\n');
        buf.push_str(&tokens.to_string());
        buf.push('\n');
    }
}

/// The client and server modules of one service.
fn service_tokens(
    service: &prost_build::Service,
    options: &StubOptions,
    taken: &TakenNames,
) -> TokenStream {
    let ctx = context(service, options, taken);
    let proto_path = if service.package.is_empty() {
        format!(".{}", service.proto_name)
    } else {
        format!(".{}.{}", service.package, service.proto_name)
    };
    let parts = options.parts;
    let mut out = TokenStream::new();
    if parts.client && (parts.asynchronous || parts.blocking) {
        let mut items = TokenStream::new();
        let mut listed = Vec::new();
        if parts.asynchronous {
            items.extend(client::async_client(&ctx));
            listed.push(format!("[`{}`] (async)", ctx.stem("Client")));
        }
        if parts.blocking {
            items.extend(client::blocking_client(&ctx));
            listed.push(format!("[`{}`] (blocking)", ctx.stem("BlockingClient")));
        }
        let module = ident(&ctx.names.client_mod);
        let doc = inner_doc_line(&format!(
            "Clients for `{}`: {}.",
            ctx.full_name,
            listed.join(" and ")
        ));
        let attrs = attributes(paths::selected(&options.client_mod_attributes, &proto_path));
        out.extend(quote! {
            #attrs
            pub mod #module {
                #doc
                #items
            }
        });
    }
    if parts.server && (parts.asynchronous || parts.blocking) {
        let mut items = TokenStream::new();
        let mut listed = Vec::new();
        let full_name = &ctx.full_name;
        items.extend(quote! {
            /// The full name of the service, as in the paths of its methods.
            pub const SERVICE_NAME: &str = #full_name;
        });
        if parts.asynchronous {
            items.extend(server::async_server(&ctx));
            listed.push(format!(
                "implement [`{}`] and serve it with [`{}`]",
                ctx.names.trait_name,
                ctx.stem("Server")
            ));
        }
        if parts.blocking {
            items.extend(server::blocking_server(&ctx));
            listed.push(format!(
                "implement [`{}`] and serve it with [`{}`]",
                ctx.stem("Blocking"),
                ctx.stem("BlockingServer")
            ));
        }
        let module = ident(&ctx.names.server_mod);
        let doc = inner_doc_line(&format!(
            "Servers for `{}`: {}.",
            ctx.full_name,
            listed.join("; or ")
        ));
        let attrs = attributes(paths::selected(&options.server_mod_attributes, &proto_path));
        out.extend(quote! {
            #attrs
            pub mod #module {
                #doc
                #items
            }
        });
    }
    out
}
