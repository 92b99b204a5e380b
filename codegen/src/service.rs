//! Stubs for one service: async and blocking clients, async and blocking server traits,
//! and the types that register an implementation with a server.
//!
//! Every generated method is one call to a generic helper of the `rsgrpc` runtime; the
//! routing and plumbing live there. Paths are absolute (`::rsgrpc::...`), so the generated
//! code needs no `use` items and triggers no unused-import lints.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::Parts;

/// Generates stubs for each service prost-build hands over.
pub(crate) struct Generator {
    pub(crate) parts: Parts,
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let tokens = service_tokens(&service, self.parts);
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

/// Documents a response stream type, linking to its method unless the method's name is a
/// raw identifier (which intra-doc links cannot name).
fn stream_doc(method: &str) -> TokenStream {
    match method.strip_prefix("r#") {
        Some(bare) => doc_line(&format!("The response stream of `{bare}`.")),
        None => doc_line(&format!("The response stream of [`Self::{method}`].")),
    }
}

fn doc_line(text: &str) -> TokenStream {
    let text = format!(" {text}");
    quote!(#[doc = #text])
}

/// Parses a Rust type path produced by prost-build (`super::Point`, `::prost_types::Empty`).
fn rust_type(path: &str) -> TokenStream {
    // prost-build only produces well-formed paths; a parse failure here is a bug in it.
    path.parse()
        .unwrap_or_else(|_| panic!("prost-build produced an invalid type path {path:?}"))
}

fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
}

struct MethodInfo<'a> {
    method: &'a prost_build::Method,
    kind: Kind,
    name: Ident,
    path: String,
    input: TokenStream,
    output: TokenStream,
    docs: Vec<TokenStream>,
    deprecated: TokenStream,
    stream_type: Ident,
}

fn methods(service: &prost_build::Service) -> Vec<MethodInfo<'_>> {
    service
        .methods
        .iter()
        .map(|method| {
            let kind = Kind::of(method);
            let path = format!(
                "/{}{}{}/{}",
                service.package,
                if service.package.is_empty() { "" } else { "." },
                service.proto_name,
                method.proto_name
            );
            let mut docs = doc_attrs(&method.comments);
            if !docs.is_empty() {
                docs.push(quote!(#[doc = ""]));
            }
            docs.push(doc_line(&format!("`{path}`: {} call.", kind.describe())));
            let deprecated = if method.options.deprecated() {
                quote!(#[deprecated])
            } else {
                quote!()
            };
            MethodInfo {
                method,
                kind,
                name: ident(&method.name),
                input: rust_type(&method.input_type),
                output: rust_type(&method.output_type),
                docs,
                deprecated,
                stream_type: format_ident!(
                    "{}Stream",
                    heck::AsUpperCamelCase(&method.proto_name).to_string()
                ),
                path,
            }
        })
        .collect()
}

fn service_tokens(service: &prost_build::Service, parts: Parts) -> TokenStream {
    let methods = methods(service);
    let full_name = if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    };
    let service_docs = doc_attrs(&service.comments);
    let service_deprecated = if service.options.deprecated() {
        quote!(#[deprecated])
    } else {
        quote!()
    };
    let any_deprecated =
        service.options.deprecated() || service.methods.iter().any(|m| m.options.deprecated());
    let ctx = ServiceCtx {
        allow_deprecated: if any_deprecated {
            quote!(#[allow(deprecated)])
        } else {
            quote!()
        },
        name: &service.name,
        full_name: &full_name,
        docs: &service_docs,
        deprecated: &service_deprecated,
        methods: &methods,
    };
    let mut out = TokenStream::new();
    if parts.client && parts.asynchronous {
        out.extend(async_client(&ctx));
    }
    if parts.client && parts.blocking {
        out.extend(blocking_client(&ctx));
    }
    if parts.server && parts.asynchronous {
        out.extend(async_server(&ctx));
    }
    if parts.server && parts.blocking {
        out.extend(blocking_server(&ctx));
    }
    out
}

struct ServiceCtx<'a> {
    /// `#[allow(deprecated)]` where the service or one of its methods is deprecated.
    allow_deprecated: TokenStream,
    name: &'a str,
    full_name: &'a str,
    docs: &'a [TokenStream],
    deprecated: &'a TokenStream,
    methods: &'a [MethodInfo<'a>],
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
}

fn client_struct(ctx: &ServiceCtx<'_>, name: &Ident, what: &str, example: &str) -> TokenStream {
    let docs = ctx.intro(what);
    let deprecated = ctx.deprecated;
    let allow = &ctx.allow_deprecated;
    let example = doc_line(example);
    quote! {
        #(#docs)*
        #[doc = ""]
        #example
        #[derive(Clone, Debug)]
        #deprecated
        pub struct #name {
            inner: ::rsgrpc::client::Client,
        }

        #allow
        impl #name {
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
        }
    }
}

fn async_client(ctx: &ServiceCtx<'_>) -> TokenStream {
    let name = format_ident!("{}Client", ctx.name);
    let strukt = client_struct(
        ctx,
        &name,
        "Async client",
        "Its methods return futures that run on any executor.",
    );
    let methods = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            path,
            input,
            output,
            docs,
            deprecated,
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
                    self.inner
                        .client_streaming(#path, request.into_streaming_request())
                        .await
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
                    self.inner
                        .bidi_streaming(#path, request.into_streaming_request())
                        .await
                }
            },
        };
        quote! {
            #(#docs)*
            #deprecated
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
    let name = format_ident!("{}BlockingClient", ctx.name);
    let strukt = client_struct(
        ctx,
        &name,
        "Blocking client",
        "Its methods block the calling thread; they need no async runtime and may be \
         called from inside one.",
    );
    let methods = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            path,
            input,
            output,
            docs,
            deprecated,
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
                    self.inner
                        .blocking_client_streaming(#path, request.into_iter_request())
                }
            },
            Kind::Bidi => quote! {
                pub fn #method(
                    &self,
                    request: impl ::rsgrpc::IntoRequest<()>,
                ) -> ::core::result::Result<
                    (::rsgrpc::RequestSender<#input>, ::rsgrpc::BlockingStreaming<#output>),
                    ::rsgrpc::Status,
                > {
                    self.inner.blocking_bidi_streaming(#path, request.into_request())
                }
            },
        };
        let extra = if m.kind == Kind::Bidi {
            doc_line(
                "Returns a sender for requests and an iterator of responses at once; pass `()` \
                 or a `Request<()>` carrying metadata and a timeout.",
            )
        } else {
            quote!()
        };
        quote! {
            #(#docs)*
            #extra
            #deprecated
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

fn server_struct(
    ctx: &ServiceCtx<'_>,
    server: &Ident,
    bound: &Ident,
    registration: TokenStream,
) -> TokenStream {
    let full_name = ctx.full_name;
    let allow = &ctx.allow_deprecated;
    let keep_inner = if ctx.methods.is_empty() {
        quote!(let _ = &inner;)
    } else {
        quote!()
    };
    let doc = doc_line(&format!(
        "Serves an implementation of [`{bound}`]: pass it to \
         `rsgrpc::server::ServerBuilder::add_service`."
    ));
    quote! {
        #doc
        #[derive(Debug)]
        pub struct #server<T> {
            inner: ::rsgrpc::codegen::Arc<T>,
        }

        #allow
        impl<T: #bound> #server<T> {
            /// Wraps an implementation.
            pub fn new(inner: T) -> Self {
                Self { inner: ::rsgrpc::codegen::Arc::new(inner) }
            }

            /// Wraps an implementation that is shared with other code.
            pub fn from_arc(inner: ::rsgrpc::codegen::Arc<T>) -> Self {
                Self { inner }
            }
        }

        #allow
        impl<T: #bound> ::core::convert::From<#server<T>> for ::rsgrpc::server::Service {
            fn from(server: #server<T>) -> Self {
                let inner = server.inner;
                #keep_inner
                ::rsgrpc::server::Service::builder(#full_name)
                    #registration
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

fn async_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let trait_name = format_ident!("{}", ctx.name);
    let server = format_ident!("{}Server", ctx.name);
    let trait_docs = ctx.intro("Async implementation");
    let deprecated = ctx.deprecated;
    let items = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            output,
            docs,
            deprecated,
            stream_type,
            ..
        } = m;
        let request = async_request_type(m);
        // Streaming responses are an associated type the implementation chooses.
        let (stream_decl, response) = if m.method.server_streaming {
            let stream_doc = stream_doc(&m.method.name);
            (
                quote! {
                    #stream_doc
                    type #stream_type: ::rsgrpc::codegen::Stream<
                        Item = ::core::result::Result<#output, ::rsgrpc::Status>,
                    > + Send + 'static;
                },
                quote!(Self::#stream_type),
            )
        } else {
            (quote!(), quote!(#output))
        };
        quote! {
            #stream_decl

            #(#docs)*
            #deprecated
            fn #method(
                &self,
                request: #request,
            ) -> impl ::rsgrpc::codegen::Future<
                Output = ::core::result::Result<::rsgrpc::Response<#response>, ::rsgrpc::Status>,
            > + Send;
        }
    });
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
        quote! {
            .#register(#proto_name, {
                let inner = inner.clone();
                move |request: #request| {
                    let inner = inner.clone();
                    async move { inner.#method(request).await }
                }
            })
        }
    });
    let server_struct = server_struct(ctx, &server, &trait_name, quote!(#(#registration)*));
    quote! {
        #(#trait_docs)*
        #[doc = ""]
        #[doc = " Methods may be written as `async fn`; their futures must be `Send`. Serve an"]
        #[doc = " implementation with the server type of the same name."]
        #deprecated
        pub trait #trait_name: Send + Sync + 'static {
            #(#items)*
        }

        #server_struct
    }
}

fn blocking_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let trait_name = format_ident!("{}Blocking", ctx.name);
    let server = format_ident!("{}BlockingServer", ctx.name);
    let trait_docs = ctx.intro("Blocking implementation");
    let deprecated = ctx.deprecated;
    let items = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            input,
            output,
            docs,
            deprecated,
            ..
        } = m;
        let signature = match m.kind {
            Kind::Unary => quote! {
                fn #method(
                    &self,
                    request: ::rsgrpc::Request<#input>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status>;
            },
            Kind::ServerStreaming => quote! {
                fn #method(
                    &self,
                    request: ::rsgrpc::Request<#input>,
                    responses: ::rsgrpc::ResponseSink<#output>,
                ) -> ::core::result::Result<(), ::rsgrpc::Status>;
            },
            Kind::ClientStreaming => quote! {
                fn #method(
                    &self,
                    request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                ) -> ::core::result::Result<::rsgrpc::Response<#output>, ::rsgrpc::Status>;
            },
            Kind::Bidi => quote! {
                fn #method(
                    &self,
                    request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                    responses: ::rsgrpc::ResponseSink<#output>,
                ) -> ::core::result::Result<(), ::rsgrpc::Status>;
            },
        };
        quote! {
            #(#docs)*
            #deprecated
            #signature
        }
    });
    let registration = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            input,
            ..
        } = m;
        let proto_name = &m.method.proto_name;
        match m.kind {
            Kind::Unary => quote! {
                .blocking_unary(#proto_name, {
                    let inner = inner.clone();
                    move |request: ::rsgrpc::Request<#input>| inner.#method(request)
                })
            },
            Kind::ServerStreaming => quote! {
                .blocking_server_streaming(#proto_name, {
                    let inner = inner.clone();
                    move |request: ::rsgrpc::Request<#input>, responses| {
                        inner.#method(request, responses)
                    }
                })
            },
            Kind::ClientStreaming => quote! {
                .blocking_client_streaming(#proto_name, {
                    let inner = inner.clone();
                    move |request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>| {
                        inner.#method(request)
                    }
                })
            },
            Kind::Bidi => quote! {
                .blocking_bidi_streaming(#proto_name, {
                    let inner = inner.clone();
                    move |request: ::rsgrpc::Request<::rsgrpc::BlockingStreaming<#input>>,
                          responses| {
                        inner.#method(request, responses)
                    }
                })
            },
        }
    });
    let server_struct = server_struct(ctx, &server, &trait_name, quote!(#(#registration)*));
    quote! {
        #(#trait_docs)*
        #[doc = ""]
        #[doc = " Methods run on the runtime's worker pool and may block. Serve an implementation"]
        #[doc = " with the server type of the same name."]
        #deprecated
        pub trait #trait_name: Send + Sync + 'static {
            #(#items)*
        }

        #server_struct
    }
}
