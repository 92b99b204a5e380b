//! Stubs for one service: async and blocking clients in `<service>_client`, async and
//! blocking server traits and the types that register an implementation in
//! `<service>_server` (see [`crate::names`] for why these names cannot clash).
//!
//! Every generated method is one call to a generic helper of the `rsgrpc` runtime; the
//! routing and plumbing live there. Paths are absolute (`::rsgrpc::...`,
//! `::core::marker::Send`) and messages are `super::Message`, so the generated code needs no
//! `use` items and no name in it can be shadowed.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::builder::Parts;
use crate::lints;
use crate::names::{self, ServiceNames, TakenNames};
use crate::paths::{self, PathList};

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl Kind {
    fn of(method: &prost_build::Method) -> Kind {
        match (method.client_streaming, method.server_streaming) {
            (false, false) => Kind::Unary,
            (false, true) => Kind::ServerStreaming,
            (true, false) => Kind::ClientStreaming,
            (true, true) => Kind::Bidi,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStreaming => "server streaming",
            Kind::ClientStreaming => "client streaming",
            Kind::Bidi => "bidirectional streaming",
        }
    }
}

/// `#[doc = "..."]` attributes from `.proto` comments, sanitised for rustdoc by prost-build.
fn doc_attrs(comments: &prost_build::Comments) -> Vec<TokenStream> {
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
fn stream_doc(method: &str) -> TokenStream {
    doc_line(&format!("The response stream of {}.", method_link(method)))
}

/// A link to the method `method` of `Self`, or its name in code when it is a raw
/// identifier (which intra-doc links cannot name).
fn method_link(method: &str) -> String {
    match method.strip_prefix("r#") {
        Some(bare) => format!("`{bare}`"),
        None => format!("[`Self::{method}`]"),
    }
}

fn doc_line(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#[doc = #text])
}

/// An inner doc line (`//!`): links in it resolve inside the module it documents.
fn inner_doc_line(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#![doc = #text])
}

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

fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
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

/// Attributes given as text, already checked by the builder.
fn attributes<'a>(values: impl Iterator<Item = &'a str>) -> TokenStream {
    values
        .filter_map(|value| value.parse::<TokenStream>().ok())
        .collect()
}

struct MethodInfo<'a> {
    method: &'a prost_build::Method,
    kind: Kind,
    /// The name in the server traits.
    name: Ident,
    /// The names in the clients (the call's differs when the RPC is named like a client's
    /// own method).
    client_names: names::ClientNames,
    client_name: Ident,
    /// The blocking client's method taking a `Request<()>`, for a bidirectional RPC.
    client_with: Option<Ident>,
    path: String,
    input: TokenStream,
    output: TokenStream,
    docs: Vec<TokenStream>,
    deprecated: TokenStream,
    stream_type: Ident,
    client_attributes: TokenStream,
    trait_attributes: TokenStream,
    /// Allows for clippy's naming conventions: for the clients' method taking a request,
    /// for the blocking client's bidirectional method without one, for its method with one,
    /// and for the traits.
    client_allows: TokenStream,
    bare_allows: TokenStream,
    with_allows: TokenStream,
    trait_allows: TokenStream,
}

struct ServiceCtx<'a> {
    /// `#[allow(deprecated)]` where the service or one of its methods is deprecated.
    allow_deprecated: TokenStream,
    names: ServiceNames,
    full_name: String,
    docs: Vec<TokenStream>,
    deprecated: TokenStream,
    methods: Vec<MethodInfo<'a>>,
    default_stubs: bool,
    client_attributes: TokenStream,
    server_attributes: TokenStream,
    trait_attributes: TokenStream,
}

impl ServiceCtx<'_> {
    fn intro(&self, what: &str) -> Vec<TokenStream> {
        let mut docs = vec![doc_line(&format!("{what} for `{}`.", self.full_name))];
        if !self.docs.is_empty() {
            docs.push(quote!(#[doc = ""]));
            docs.extend(self.docs.iter().cloned());
        }
        docs
    }

    fn stem(&self, suffix: &str) -> Ident {
        format_ident!("{}{}", self.names.stem, suffix)
    }
}

fn context<'a>(
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
            with: Kind::of(method) == Kind::Bidi,
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
            docs.push(doc_line(&format!("`{path}`: {} call.", kind.describe())));
            let deprecated = if method.options.deprecated() {
                quote!(#[deprecated])
            } else {
                quote!()
            };
            let trait_params = match kind {
                Kind::ServerStreaming | Kind::Bidi => 3,
                Kind::Unary | Kind::ClientStreaming => 2,
            };
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
            items.extend(async_client(&ctx));
            listed.push(format!("[`{}`] (async)", ctx.stem("Client")));
        }
        if parts.blocking {
            items.extend(blocking_client(&ctx));
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
            items.extend(async_server(&ctx));
            listed.push(format!(
                "implement [`{}`] and serve it with [`{}`]",
                ctx.names.trait_name,
                ctx.stem("Server")
            ));
        }
        if parts.blocking {
            items.extend(blocking_server(&ctx));
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

/// The traits both clients derive, with the methods each brings: an RPC named like one of
/// them would shadow it (`client.clone()` would call `rpc Clone`).
const CLIENT_DERIVES: &[(&str, &[&str])] =
    &[("Clone", &["clone", "clone_from"]), ("Debug", &["fmt"])];

/// The methods both clients define themselves, whatever the service.
fn client_own_methods() -> TokenStream {
    quote! {
        /// A client sending its calls on `channel`; clones of a channel share one
        /// connection.
        pub fn new(channel: ::rsgrpc::Channel) -> Self {
            Self { inner: ::rsgrpc::client::Client::new(channel) }
        }

        /// A client for `target` (`http://host:port`) on a new channel; it connects on
        /// the first call.
        ///
        /// # Errors
        ///
        /// When the target cannot be parsed.
        pub fn connect_lazy(target: &str) -> ::core::result::Result<Self, ::rsgrpc::Error> {
            ::rsgrpc::Channel::new(target).map(Self::new)
        }

        /// The channel this client uses.
        pub fn channel(&self) -> &::rsgrpc::Channel {
            self.inner.channel()
        }

        /// Largest request message this client sends, overriding the channel's
        /// `max_send_message_size`; a larger one fails the call with
        /// `RESOURCE_EXHAUSTED` before anything of it is sent.
        #[must_use = "the setting applies to the returned client"]
        pub fn max_send_message_size(self, bytes: usize) -> Self {
            Self { inner: self.inner.max_send_message_size(bytes) }
        }

        /// Largest response message this client accepts, overriding the channel's
        /// `max_receive_message_size` (default 4 MiB); a larger one fails the call with
        /// `RESOURCE_EXHAUSTED`.
        #[must_use = "the setting applies to the returned client"]
        pub fn max_receive_message_size(self, bytes: usize) -> Self {
            Self { inner: self.inner.max_receive_message_size(bytes) }
        }

        /// Compresses the request messages of this client's calls with `encoding`,
        /// whatever the channel's setting; a request's own `set_send_compressed` or
        /// `set_send_uncompressed` still comes first.
        #[must_use = "the setting applies to the returned client"]
        pub fn send_compressed(self, encoding: ::rsgrpc::CompressionEncoding) -> Self {
            Self { inner: self.inner.send_compressed(encoding) }
        }

        /// A timeout for this client's calls that do not set their own
        /// (`Request::set_timeout`), overriding the channel's `timeout`; a service
        /// config's `timeout` for the method still caps it.
        #[must_use = "the setting applies to the returned client"]
        pub fn timeout(self, timeout: ::core::time::Duration) -> Self {
            Self { inner: self.inner.timeout(timeout) }
        }

        /// Whether this client's calls wait for a ready connection (until their
        /// deadline) instead of failing at once with `UNAVAILABLE` when the channel
        /// cannot connect, unless a call says otherwise
        /// (`Request::set_wait_for_ready`); overrides the channel's `wait_for_ready`
        /// and the service config's `waitForReady`.
        #[must_use = "the setting applies to the returned client"]
        pub fn wait_for_ready(self, wait: bool) -> Self {
            Self { inner: self.inner.wait_for_ready(wait) }
        }

        /// Runs `interceptor` around every call made through this client, after the
        /// channel's interceptors and those added before.
        #[must_use = "the interceptor applies to the returned client"]
        pub fn with_interceptor(
            self,
            interceptor: impl ::rsgrpc::interceptor::Interceptor,
        ) -> Self {
            Self { inner: self.inner.with_interceptor(interceptor) }
        }
    }
}

/// The names an RPC cannot take on a client: the methods the clients define
/// ([`client_own_methods`], read back from the code emitted) and those of the traits they
/// derive. Such an RPC gets a trailing underscore instead.
pub(crate) fn client_reserved_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let own = client_own_methods();
        let block: syn::ItemImpl = syn::parse2(quote!(impl Client { #own }))
            .expect("the clients' own methods are valid Rust");
        let mut names: Vec<String> = block
            .items
            .iter()
            .filter_map(|item| match item {
                syn::ImplItem::Fn(method) => Some(method.sig.ident.to_string()),
                _ => None,
            })
            .collect();
        for (_, methods) in CLIENT_DERIVES {
            names.extend(methods.iter().map(|m| (*m).to_owned()));
        }
        names
    })
}

/// Which client a piece of code is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Async,
    Blocking,
}

fn client_struct(
    ctx: &ServiceCtx<'_>,
    flavour: Flavour,
    name: &Ident,
    what: &str,
    example: &str,
) -> TokenStream {
    let docs = ctx.intro(what);
    let deprecated = &ctx.deprecated;
    let allow = &ctx.allow_deprecated;
    let attrs = &ctx.client_attributes;
    let example = doc_line(example);
    let renamed: Vec<String> = ctx
        .methods
        .iter()
        .filter(|m| m.client_names.call != m.client_names.call_wanted)
        .map(|m| format!("`{}` as `{}`", m.method.proto_name, m.client_names.call))
        .collect();
    let mut renamings = TokenStream::new();
    if !renamed.is_empty() {
        let line = doc_line(&format!(
            "RPCs named like this client's own methods are called with a trailing \
             underscore: {}.",
            renamed.join(", ")
        ));
        renamings.extend(quote!(#[doc = ""] #line));
    }
    let renamed_with: Vec<String> = ctx
        .methods
        .iter()
        .filter(|m| m.client_names.call_with != m.client_names.call_with_wanted)
        .filter_map(|m| {
            let with = m.client_names.call_with.as_ref()?;
            Some(format!("`{with}` for `{}`", m.method.proto_name))
        })
        .collect();
    if flavour == Flavour::Blocking && !renamed_with.is_empty() {
        let line = doc_line(&format!(
            "A bidirectional RPC's method taking a request gets a trailing underscore when \
             another method has its name: {}.",
            renamed_with.join(", ")
        ));
        renamings.extend(quote!(#[doc = ""] #line));
    }
    let derives = CLIENT_DERIVES
        .iter()
        .map(|(derive, _)| format_ident!("{derive}"));
    let own = client_own_methods();
    quote! {
        #(#docs)*
        #[doc = ""]
        #example
        #renamings
        #[derive(#(#derives),*)]
        #deprecated
        #attrs
        pub struct #name {
            inner: ::rsgrpc::client::Client,
        }

        #allow
        impl #name {
            #own
        }
    }
}

fn async_client(ctx: &ServiceCtx<'_>) -> TokenStream {
    let name = ctx.stem("Client");
    let strukt = client_struct(
        ctx,
        Flavour::Async,
        &name,
        "Async client",
        "Its methods return futures that run on any executor.",
    );
    let methods = ctx.methods.iter().map(|m| {
        let MethodInfo {
            client_name: method,
            path,
            input,
            output,
            docs,
            deprecated,
            client_attributes,
            client_allows,
            ..
        } = m;
        let body = match m.kind {
            Kind::Unary => quote! {
                pub async fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoRequest<#input>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status> {
                    self.inner.unary(#path, request.into_request()).await
                }
            },
            Kind::ServerStreaming => quote! {
                pub async fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoRequest<#input>,
                ) -> ::core::result::Result<
                    ::rsgrpc::Response<::rsgrpc::Streaming<#output>>,
                    ::rsgrpc::Status,
                > {
                    self.inner.server_streaming(#path, request.into_request()).await
                }
            },
            Kind::ClientStreaming => quote! {
                pub async fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoStreamingRequest<Message = #input>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status> {
                    self.inner.client_streaming(#path, request.into_streaming_request()).await
                }
            },
            Kind::Bidi => quote! {
                pub async fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoStreamingRequest<Message = #input>,
                ) -> ::core::result::Result<
                    ::rsgrpc::Response<::rsgrpc::Streaming<#output>>,
                    ::rsgrpc::Status,
                > {
                    self.inner.bidi_streaming(#path, request.into_streaming_request()).await
                }
            },
        };
        quote! {
            #(#docs)*
            #deprecated
            #client_allows
            #client_attributes
            #body
        }
    });
    let allow = &ctx.allow_deprecated;
    quote! {
        #strukt

        #allow
        impl #name {
            #(#methods)*
        }
    }
}

fn blocking_client(ctx: &ServiceCtx<'_>) -> TokenStream {
    let name = ctx.stem("BlockingClient");
    let strukt = client_struct(
        ctx,
        Flavour::Blocking,
        &name,
        "Blocking client",
        "Its methods block the calling thread; they need no async runtime and may be \
         called from inside one.",
    );
    let methods = ctx.methods.iter().map(|m| {
        let MethodInfo {
            client_name: method,
            path,
            input,
            output,
            docs,
            deprecated,
            client_attributes,
            client_allows,
            ..
        } = m;
        let body = match m.kind {
            Kind::Unary => quote! {
                pub fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoRequest<#input>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status> {
                    self.inner.blocking_unary(#path, request.into_request())
                }
            },
            Kind::ServerStreaming => quote! {
                pub fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoRequest<#input>,
                ) -> ::core::result::Result<
                    ::rsgrpc::Response<::rsgrpc::BlockingStreaming<#output>>,
                    ::rsgrpc::Status,
                > {
                    self.inner.blocking_server_streaming(#path, request.into_request())
                }
            },
            Kind::ClientStreaming => quote! {
                pub fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoIterRequest<Message = #input>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status> {
                    self.inner.blocking_client_streaming(#path, request.into_iter_request())
                }
            },
            Kind::Bidi => return blocking_bidi(m),
        };
        quote! {
            #(#docs)*
            #deprecated
            #client_allows
            #client_attributes
            #body
        }
    });
    let allow = &ctx.allow_deprecated;
    quote! {
        #strukt

        #allow
        impl #name {
            #(#methods)*
        }
    }
}

/// The blocking client's two methods for a bidirectional RPC: `txn()`, and `txn_with` for
/// a call whose `Request<()>` carries metadata and options.
fn blocking_bidi(m: &MethodInfo<'_>) -> TokenStream {
    let MethodInfo {
        client_name: method,
        client_with,
        path,
        input,
        output,
        docs,
        deprecated,
        client_attributes,
        bare_allows,
        with_allows,
        ..
    } = m;
    let Some(with) = client_with else {
        unreachable!("every bidirectional RPC has a method with a request");
    };
    let returns = quote! {
        ::core::result::Result<
            (::rsgrpc::RequestSender<#input>, ::rsgrpc::BlockingStreaming<#output>),
            ::rsgrpc::Status,
        >
    };
    let bare_doc = doc_line(&format!(
        "Starts the call and returns at once, without waiting for the server: a sender for \
         the requests (dropping it ends them) and an iterator of the responses (dropping it \
         cancels the call). For metadata, a timeout or other options of this call, use \
         [`Self::{with}`]."
    ));
    let with_summary = doc_line(&format!(
        "`{path}`: bidirectional streaming call with the metadata, timeout and other options \
         of `request` (`Request::new(())` and its setters)."
    ));
    let with_doc = doc_line(&format!(
        "Returns what {} returns, the call started the same way; use that method when the \
         call needs none of these.",
        method_link(&method.to_string())
    ));
    quote! {
        #(#docs)*
        #[doc = ""]
        #bare_doc
        #deprecated
        #bare_allows
        #client_attributes
        pub fn #method(&self) -> #returns {
            self.inner.blocking_bidi_streaming(#path, ::rsgrpc::Request::new(()))
        }

        #with_summary
        #[doc = ""]
        #with_doc
        #deprecated
        #with_allows
        #client_attributes
        pub fn #with(&self, request: ::rsgrpc::Request<()>) -> #returns {
            self.inner.blocking_bidi_streaming(#path, request)
        }
    }
}

/// The server types' type parameter: `T`, unless the trait itself is named `T`.
fn type_param(trait_name: &Ident) -> Ident {
    if trait_name == "T" {
        format_ident!("S")
    } else {
        format_ident!("T")
    }
}

fn server_struct(
    ctx: &ServiceCtx<'_>,
    server: &Ident,
    bound: &Ident,
    registration: TokenStream,
) -> TokenStream {
    let param = type_param(bound);
    let allow = &ctx.allow_deprecated;
    let attrs = &ctx.server_attributes;
    let keep_inner = if ctx.methods.is_empty() {
        quote!(let _ = &inner;)
    } else {
        quote!()
    };
    let doc = doc_line(&format!(
        "Serves an implementation of [`{bound}`]: pass it to \
         `rsgrpc::server::ServerBuilder::add_service`. Clones share the implementation."
    ));
    quote! {
        #doc
        #[derive(Debug)]
        #attrs
        pub struct #server<#param> {
            inner: ::rsgrpc::codegen::Arc<#param>,
            settings: ::rsgrpc::codegen::ServiceSettings,
        }

        #allow
        impl<#param> #server<#param> {
            /// The full name of the service, as in the paths of its methods.
            pub const SERVICE_NAME: &str = SERVICE_NAME;

            /// Largest request message this service accepts, overriding the server's
            /// `max_receive_message_size` (default 4 MiB); a larger one fails the call with
            /// `RESOURCE_EXHAUSTED`.
            #[must_use = "the setting applies to the returned server"]
            pub fn max_receive_message_size(self, bytes: usize) -> Self {
                Self { settings: self.settings.max_receive_message_size(bytes), ..self }
            }

            /// Largest response message this service sends, overriding the server's
            /// `max_send_message_size`; a larger one fails the call with
            /// `RESOURCE_EXHAUSTED`.
            #[must_use = "the setting applies to the returned server"]
            pub fn max_send_message_size(self, bytes: usize) -> Self {
                Self { settings: self.settings.max_send_message_size(bytes), ..self }
            }

            /// Compresses this service's responses with `encoding` for clients that accept
            /// it, whatever the server's setting.
            #[must_use = "the setting applies to the returned server"]
            pub fn send_compressed(self, encoding: ::rsgrpc::CompressionEncoding) -> Self {
                Self { settings: self.settings.send_compressed(encoding), ..self }
            }

            /// Runs `interceptor` around every call to this service, after the server's
            /// interceptors and those added before.
            #[must_use = "the interceptor applies to the returned server"]
            pub fn with_interceptor(
                self,
                interceptor: impl ::rsgrpc::interceptor::Interceptor,
            ) -> Self {
                Self { settings: self.settings.interceptor(interceptor), ..self }
            }
        }

        #allow
        impl<#param: #bound> #server<#param> {
            /// Wraps an implementation.
            pub fn new(inner: #param) -> Self {
                Self::from_arc(::rsgrpc::codegen::Arc::new(inner))
            }

            /// Wraps an implementation that is shared with other code.
            pub fn from_arc(inner: ::rsgrpc::codegen::Arc<#param>) -> Self {
                Self { inner, settings: ::rsgrpc::codegen::ServiceSettings::default() }
            }
        }

        #allow
        impl<#param> ::core::clone::Clone for #server<#param> {
            fn clone(&self) -> Self {
                Self {
                    inner: ::rsgrpc::codegen::Arc::clone(&self.inner),
                    settings: ::core::clone::Clone::clone(&self.settings),
                }
            }
        }

        #allow
        impl<#param: #bound> ::core::convert::From<#server<#param>> for ::rsgrpc::server::Service {
            fn from(server: #server<#param>) -> Self {
                let inner = server.inner;
                #keep_inner
                ::rsgrpc::server::Service::builder(SERVICE_NAME)
                    #registration
                    .settings(server.settings)
                    .build()
            }
        }
    }
}

/// The request an async handler takes: a message, or a stream of them.
fn async_request_type(m: &MethodInfo<'_>) -> TokenStream {
    let input = &m.input;
    if m.method.client_streaming {
        quote!(::rsgrpc::Request<::rsgrpc::Streaming<#input>>)
    } else {
        quote!(::rsgrpc::Request<#input>)
    }
}

/// The body of a method that is not implemented, for `generate_default_stubs`.
fn unimplemented(m: &MethodInfo<'_>) -> TokenStream {
    let message = format!("{} is not implemented", m.method.proto_name);
    quote!(::rsgrpc::Status::unimplemented(#message))
}

fn async_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let trait_name = ident(&ctx.names.trait_name);
    let server = ctx.stem("Server");
    let trait_docs = ctx.intro("Async implementation");
    let deprecated = &ctx.deprecated;
    let trait_attrs = &ctx.trait_attributes;
    let items = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            output,
            docs,
            deprecated,
            stream_type,
            trait_attributes,
            trait_allows,
            ..
        } = m;
        let request = async_request_type(m);
        // Streaming responses are an associated type the implementation chooses, or with
        // default stubs (associated types cannot have defaults) a boxed stream.
        let (stream_decl, response) = match (m.method.server_streaming, ctx.default_stubs) {
            (false, _) => (quote!(), quote!(#output)),
            (true, true) => (quote!(), quote!(::rsgrpc::BoxStream<#output>)),
            (true, false) => {
                let stream_doc = stream_doc(&m.method.name);
                (
                    quote! {
                        #stream_doc
                        type #stream_type: ::rsgrpc::codegen::Stream<
                            Item = ::core::result::Result<#output, ::rsgrpc::Status>,
                        > + ::core::marker::Send + 'static;
                    },
                    quote!(Self::#stream_type),
                )
            }
        };
        let signature = quote! {
            fn #method(
                &self,
                request: #request,
            ) -> impl ::rsgrpc::codegen::Future<
                Output = ::core::result::Result<::rsgrpc::Response<#response>, ::rsgrpc::Status>,
            > + ::core::marker::Send
        };
        let body = if ctx.default_stubs {
            let status = unimplemented(m);
            quote! {
                #signature {
                    let _ = request;
                    ::core::future::ready(::core::result::Result::Err(#status))
                }
            }
        } else {
            quote!(#signature;)
        };
        quote! {
            #stream_decl

            #(#docs)*
            #deprecated
            #trait_allows
            #trait_attributes
            #body
        }
    });
    let param = type_param(&trait_name);
    let registration = ctx.methods.iter().map(|m| {
        let method = &m.name;
        let proto_name = &m.method.proto_name;
        let request = async_request_type(m);
        let register = match m.kind {
            Kind::Unary => quote!(unary),
            Kind::ServerStreaming => quote!(server_streaming),
            Kind::ClientStreaming => quote!(client_streaming),
            Kind::Bidi => quote!(bidi_streaming),
        };
        // Fully qualified, so that a method named like one of `Arc`'s (`clone`, `as_ref`)
        // still calls the trait.
        quote! {
            .#register(#proto_name, {
                let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                move |request: #request| {
                    let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                    async move { <#param as #trait_name>::#method(&inner, request).await }
                }
            })
        }
    });
    let server_struct = server_struct(ctx, &server, &trait_name, quote!(#(#registration)*));
    let how = if ctx.default_stubs {
        quote! {
            #[doc = ""]
            #[doc = " Every method has a default that fails with `UNIMPLEMENTED`, so an"]
            #[doc = " implementation may provide only some; streaming methods return a"]
            #[doc = " boxed stream."]
        }
    } else {
        quote!()
    };
    quote! {
        #(#trait_docs)*
        #[doc = ""]
        #[doc = " Methods may be written as `async fn`; their futures must be `Send`. They run on"]
        #[doc = " rsgrpc's executor, never on its network threads; a server built inside a tokio"]
        #[doc = " runtime polls them with that runtime entered, so tokio timers, `tokio::spawn`"]
        #[doc = " and tokio I/O work in them. Serve an implementation with the server type of the"]
        #[doc = " same name."]
        #how
        #deprecated
        #trait_attrs
        pub trait #trait_name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#items)*
        }

        #server_struct
    }
}

fn blocking_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let trait_name = ctx.stem("Blocking");
    let server = ctx.stem("BlockingServer");
    let trait_docs = ctx.intro("Blocking implementation");
    let deprecated = &ctx.deprecated;
    let trait_attrs = &ctx.trait_attributes;
    let items = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            input,
            output,
            docs,
            deprecated,
            trait_attributes,
            trait_allows,
            ..
        } = m;
        let (signature, unused) = match m.kind {
            Kind::Unary => (
                quote! {
                    fn #method(
                        &self,
                        request: ::rsgrpc::Request<#input>,
                    ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status>
                },
                quote!(request),
            ),
            Kind::ServerStreaming => (
                quote! {
                    fn #method(
                        &self,
                        request: ::rsgrpc::Request<#input>,
                        responses: ::rsgrpc::ResponseSink<#output>,
                    ) -> ::core::result::Result<(), ::rsgrpc::Status>
                },
                quote!((request, responses)),
            ),
            Kind::ClientStreaming => (
                quote! {
                    fn #method(
                        &self,
                        request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                    ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status>
                },
                quote!(request),
            ),
            Kind::Bidi => (
                quote! {
                    fn #method(
                        &self,
                        request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                        responses: ::rsgrpc::ResponseSink<#output>,
                    ) -> ::core::result::Result<(), ::rsgrpc::Status>
                },
                quote!((request, responses)),
            ),
        };
        let body = if ctx.default_stubs {
            let status = unimplemented(m);
            quote! {
                #signature {
                    let _ = #unused;
                    ::core::result::Result::Err(#status)
                }
            }
        } else {
            quote!(#signature;)
        };
        quote! {
            #(#docs)*
            #deprecated
            #trait_allows
            #trait_attributes
            #body
        }
    });
    let param = type_param(&trait_name);
    let registration = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            input,
            ..
        } = m;
        let proto_name = &m.method.proto_name;
        let call = quote!(<#param as #trait_name>::#method);
        match m.kind {
            Kind::Unary => quote! {
                .blocking_unary(#proto_name, {
                    let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                    move |request: ::rsgrpc::Request<#input>| #call(&inner, request)
                })
            },
            Kind::ServerStreaming => quote! {
                .blocking_server_streaming(#proto_name, {
                    let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                    move |request: ::rsgrpc::Request<#input>, responses| {
                        #call(&inner, request, responses)
                    }
                })
            },
            Kind::ClientStreaming => quote! {
                .blocking_client_streaming(#proto_name, {
                    let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                    move |request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>| {
                        #call(&inner, request)
                    }
                })
            },
            Kind::Bidi => quote! {
                .blocking_bidi_streaming(#proto_name, {
                    let inner = ::rsgrpc::codegen::Arc::clone(&inner);
                    move |request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                          responses| {
                        #call(&inner, request, responses)
                    }
                })
            },
        }
    });
    let server_struct = server_struct(ctx, &server, &trait_name, quote!(#(#registration)*));
    let how = if ctx.default_stubs {
        quote! {
            #[doc = ""]
            #[doc = " Every method has a default that fails with `UNIMPLEMENTED`, so an"]
            #[doc = " implementation may provide only some."]
        }
    } else {
        quote!()
    };
    quote! {
        #(#trait_docs)*
        #[doc = ""]
        #[doc = " Methods run on the runtime's worker pool, never on its network threads, and may"]
        #[doc = " block. Serve an implementation with the server type of the same name."]
        #how
        #deprecated
        #trait_attrs
        pub trait #trait_name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#items)*
        }

        #server_struct
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::WITH_SUFFIX;
    use prost_types::{
        DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
        ServiceDescriptorProto,
    };
    use std::collections::{BTreeMap, BTreeSet};

    /// A file with one service whose RPCs are named after `names` (in upper camel case).
    fn service_named(names: &[String]) -> FileDescriptorSet {
        let rpcs: Vec<(String, bool)> = names.iter().map(|n| (n.clone(), false)).collect();
        service_of(&rpcs)
    }

    /// A file with one service whose RPCs are given as their names (in upper camel case)
    /// and whether they are bidirectional (or unary).
    fn service_of(rpcs: &[(String, bool)]) -> FileDescriptorSet {
        let method = |(name, bidi): &(String, bool)| MethodDescriptorProto {
            name: Some(heck::AsUpperCamelCase(name).to_string()),
            input_type: Some(".p.M".to_owned()),
            output_type: Some(".p.M".to_owned()),
            client_streaming: Some(*bidi),
            server_streaming: Some(*bidi),
            ..MethodDescriptorProto::default()
        };
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("p.proto".to_owned()),
                package: Some("p".to_owned()),
                syntax: Some("proto3".to_owned()),
                message_type: vec![DescriptorProto {
                    name: Some("M".to_owned()),
                    ..DescriptorProto::default()
                }],
                service: vec![ServiceDescriptorProto {
                    name: Some("S".to_owned()),
                    method: rpcs.iter().map(method).collect(),
                    ..ServiceDescriptorProto::default()
                }],
                ..FileDescriptorProto::default()
            }],
        }
    }

    /// The methods of each client type generated for `set`, by type name, in order.
    fn client_methods(set: &FileDescriptorSet) -> BTreeMap<String, Vec<String>> {
        let files = crate::Builder::new()
            .generate(set, &["p.proto".to_owned()])
            .unwrap();
        let file = syn::parse_file(&files[0].content).unwrap();
        let mut methods: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in &file.items {
            let syn::Item::Mod(module) = item else {
                continue;
            };
            if module.ident != "s_client" {
                continue;
            }
            for item in &module.content.as_ref().unwrap().1 {
                if let syn::Item::Impl(block) = item {
                    let syn::Type::Path(ty) = &*block.self_ty else {
                        continue;
                    };
                    let ty = ty.path.segments.last().unwrap().ident.to_string();
                    for item in &block.items {
                        if let syn::ImplItem::Fn(f) = item {
                            methods
                                .entry(ty.clone())
                                .or_default()
                                .push(f.sig.ident.to_string());
                        }
                    }
                }
            }
        }
        methods
    }

    fn assert_unique(client: &str, methods: &[String]) {
        let unique: BTreeSet<&String> = methods.iter().collect();
        assert_eq!(unique.len(), methods.len(), "{client}: {methods:?}");
    }

    #[test]
    fn the_reserved_names_are_what_the_clients_emit() {
        let names = client_reserved_names();
        for expected in [
            "new",
            "connect_lazy",
            "channel",
            "max_send_message_size",
            "max_receive_message_size",
            "send_compressed",
            "timeout",
            "wait_for_ready",
            "with_interceptor",
            "clone",
            "clone_from",
            "fmt",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
    }

    #[test]
    fn every_reserved_name_as_an_rpc_leaves_each_client_method_unique() {
        let names = client_reserved_names().to_vec();
        let methods = client_methods(&service_named(&names));
        assert_eq!(methods.len(), 2);
        for (client, methods) in methods {
            assert_unique(&client, &methods);
            for name in &names {
                assert!(methods.contains(&format!("{name}_")), "{client}: {name}");
                if !CLIENT_DERIVES
                    .iter()
                    .any(|(_, m)| m.contains(&name.as_str()))
                {
                    assert!(methods.contains(name), "{client}: its own {name}");
                }
            }
        }
    }

    #[test]
    fn bidirectional_rpcs_beside_rpcs_named_like_their_with_methods_leave_each_unique() {
        // Every reserved name as a bidirectional RPC and, after `With`, as a unary one;
        // `Txn` beside `TxnWith` and `TxnWithWith`, all bidirectional; the bare suffix.
        let mut rpcs: Vec<(String, bool)> = Vec::new();
        for name in client_reserved_names() {
            rpcs.push((name.clone(), true));
            rpcs.push((format!("{name}{WITH_SUFFIX}"), false));
        }
        for name in ["txn", "txn_with", "txn_with_with", "with"] {
            rpcs.push((name.to_owned(), true));
        }
        let methods = client_methods(&service_of(&rpcs));
        let blocking = &methods["SBlockingClient"];
        let asynchronous = &methods["SClient"];
        assert_unique("SBlockingClient", blocking);
        assert_unique("SClient", asynchronous);
        for name in client_reserved_names() {
            // The RPCs named like the client's own methods, and those named like their
            // `_with` methods, which the latter yield to.
            for method in [
                format!("{name}_"),
                format!("{name}{WITH_SUFFIX}"),
                format!("{name}{WITH_SUFFIX}_"),
            ] {
                assert!(blocking.contains(&method), "{method}: {blocking:?}");
            }
            assert!(asynchronous.contains(&format!("{name}{WITH_SUFFIX}")));
            assert!(!asynchronous.contains(&format!("{name}{WITH_SUFFIX}_")));
        }
        for method in [
            "txn",
            "txn_with_",
            "txn_with",
            "txn_with_with_",
            "txn_with_with",
            "txn_with_with_with",
            "with",
            "with_with",
        ] {
            assert!(
                blocking.iter().any(|m| m == method),
                "{method}: {blocking:?}"
            );
        }
        // The async client has only the RPCs' names.
        assert_eq!(
            asynchronous.len(),
            blocking.len() - client_reserved_names().len() - 4
        );
    }
}
