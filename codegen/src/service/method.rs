//! What the stubs of one service and each of its methods are made of, worked out once from
//! prost-build's description and the builder's settings, for every emitter to read.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::StubOptions;
use super::kind::Kind;
use super::tokens::{attributes, doc_attrs, doc_line, ident};
use crate::lints;
use crate::names::{self, ServiceNames, TakenNames};
use crate::paths;

/// Rust types prost-build maps some well-known types to; they need no `super::`.
const BUILTIN_TYPES: &[&str] = &["()", "bool", "i32", "i64", "u32", "u64", "f32", "f64"];

/// The Rust type of a method's input or output, as seen from the stubs' modules: prost-build
/// gives paths relative to the package's module, which get a `super::`.
fn message_type(path: &str, options: &StubOptions) -> TokenStream {
    let external = options.extern_rust_paths.iter().any(|rust| {
        !rust.starts_with("super::")
            && !rust.starts_with("self::")
            && (path == rust || path.starts_with(&format!("{rust}::")))
    });
    let path = if path.starts_with("::")
        || path.starts_with("crate::")
        || BUILTIN_TYPES.contains(&path)
        || external
    {
        path.to_owned()
    } else {
        format!("super::{}", path.strip_prefix("self::").unwrap_or(path))
    };
    // prost-build produces well-formed paths; should one not parse, the user sees why.
    path.parse().unwrap_or_else(|_| {
        let message = format!("rsgrpc-codegen: cannot use {path:?} as a message type");
        quote!(::core::compile_error!(#message))
    })
}

/// Allows for the clippy lints a stub method trips by the name the proto gives it: a client
/// method (`&self` and the request, if any, returning a `Result` or a future of one) or a
/// server trait method (`&self`, the request and, for server streams, the response sink);
/// `params` counts `self`.
fn naming_allows(name: &str, in_trait: bool, params: usize) -> TokenStream {
    lints::allow(&lints::Method {
        name: name.strip_prefix("r#").unwrap_or(name),
        receiver: lints::Receiver::Ref,
        params,
        output: lints::Output::Other,
        in_trait,
    })
}

pub(super) struct MethodInfo<'a> {
    pub(super) method: &'a prost_build::Method,
    pub(super) kind: Kind,
    /// The name in the server traits.
    pub(super) name: Ident,
    /// The names in the clients (the call's differs when the RPC is named like a client's
    /// own method).
    pub(super) client_names: names::ClientNames,
    pub(super) client_name: Ident,
    /// The blocking client's method taking a `Request<()>`, for a bidirectional RPC.
    pub(super) client_with: Option<Ident>,
    pub(super) path: String,
    pub(super) input: TokenStream,
    pub(super) output: TokenStream,
    pub(super) docs: Vec<TokenStream>,
    pub(super) deprecated: TokenStream,
    pub(super) stream_type: Ident,
    pub(super) client_attributes: TokenStream,
    pub(super) trait_attributes: TokenStream,
    /// Allows for clippy's naming conventions: for the clients' method taking a request,
    /// for the blocking client's bidirectional method without one, for its method with one,
    /// and for the traits.
    pub(super) client_allows: TokenStream,
    pub(super) bare_allows: TokenStream,
    pub(super) with_allows: TokenStream,
    pub(super) trait_allows: TokenStream,
}

pub(super) struct ServiceCtx<'a> {
    /// `#[allow(deprecated)]` where the service or one of its methods is deprecated.
    pub(super) allow_deprecated: TokenStream,
    pub(super) names: ServiceNames,
    pub(super) full_name: String,
    pub(super) docs: Vec<TokenStream>,
    pub(super) deprecated: TokenStream,
    pub(super) methods: Vec<MethodInfo<'a>>,
    pub(super) default_stubs: bool,
    pub(super) client_attributes: TokenStream,
    pub(super) server_attributes: TokenStream,
    pub(super) trait_attributes: TokenStream,
}

impl ServiceCtx<'_> {
    pub(super) fn intro(&self, what: &str) -> Vec<TokenStream> {
        let mut docs = vec![doc_line(&format!("{what} for `{}`.", self.full_name))];
        if !self.docs.is_empty() {
            docs.push(quote!(#[doc = ""]));
            docs.extend(self.docs.iter().cloned());
        }
        docs
    }

    pub(super) fn stem(&self, suffix: &str) -> Ident {
        format_ident!("{}{}", self.names.stem, suffix)
    }
}

pub(super) fn context<'a>(
    service: &'a prost_build::Service,
    options: &StubOptions,
    taken: &TakenNames,
) -> ServiceCtx<'a> {
    let proto_path = if service.package.is_empty() {
        format!(".{}", service.proto_name)
    } else {
        format!(".{}.{}", service.package, service.proto_name)
    };
    let full_name = if service.package.is_empty() || !options.emit_package {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    };
    let comments_off = |path: &str| {
        options
            .disable_comments
            .iter()
            .any(|p| paths::selects(p, path))
    };
    let rpcs: Vec<names::Rpc<'_>> = service
        .methods
        .iter()
        .map(|method| names::Rpc {
            name: &method.name,
            with: Kind::of(method).is_bidi(),
        })
        .collect();
    let methods = service
        .methods
        .iter()
        .zip(names::client_names(&rpcs))
        .map(|(method, client_names)| {
            let kind = Kind::of(method);
            let method_path = format!("{proto_path}.{}", method.proto_name);
            let path = format!("/{full_name}/{}", method.proto_name);
            let mut docs = if comments_off(&method_path) {
                Vec::new()
            } else {
                doc_attrs(&method.comments)
            };
            if !docs.is_empty() {
                docs.push(quote!(#[doc = ""]));
            }
            docs.push(doc_line(&format!("`{path}`: {} call.", kind.describe)));
            let deprecated = if method.options.deprecated() {
                quote!(#[deprecated])
            } else {
                quote!()
            };
            // `self`, the request and, for a server stream, the blocking trait's sink.
            let trait_params = 2 + usize::from(kind.server_streaming);
            let with = client_names.call_with.as_deref();
            MethodInfo {
                method,
                kind,
                name: ident(&method.name),
                client_name: ident(&client_names.call),
                client_with: with.map(ident),
                client_allows: naming_allows(&client_names.call, false, 2),
                bare_allows: naming_allows(&client_names.call, false, 1),
                with_allows: with
                    .map_or_else(TokenStream::new, |with| naming_allows(with, false, 2)),
                trait_allows: naming_allows(&method.name, true, trait_params),
                client_names,
                input: message_type(&method.input_type, options),
                output: message_type(&method.output_type, options),
                docs,
                deprecated,
                stream_type: format_ident!(
                    "{}Stream",
                    heck::AsUpperCamelCase(&method.proto_name).to_string()
                ),
                path,
                client_attributes: attributes(paths::named(
                    &options.client_attributes,
                    &method_path,
                )),
                trait_attributes: attributes(paths::named(&options.trait_attributes, &method_path)),
            }
        })
        .collect();
    let any_deprecated =
        service.options.deprecated() || service.methods.iter().any(|m| m.options.deprecated());
    ServiceCtx {
        allow_deprecated: if any_deprecated {
            quote!(#[allow(deprecated, reason = "the proto deprecates this service or some of its methods")])
        } else {
            quote!()
        },
        names: ServiceNames::new(taken, &service.package, &service.proto_name),
        full_name,
        docs: if comments_off(&proto_path) {
            Vec::new()
        } else {
            doc_attrs(&service.comments)
        },
        deprecated: if service.options.deprecated() {
            quote!(#[deprecated])
        } else {
            quote!()
        },
        methods,
        default_stubs: options.default_stubs,
        client_attributes: attributes(paths::selected(&options.client_attributes, &proto_path)),
        server_attributes: attributes(paths::selected(&options.server_attributes, &proto_path)),
        trait_attributes: attributes(paths::selected(&options.trait_attributes, &proto_path)),
    }
}
