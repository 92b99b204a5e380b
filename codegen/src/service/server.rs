//! The async and the blocking server trait of a service and the types that register an
//! implementation, in `<service>_server`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::kind::{ASYNC, BLOCKING};
use super::method::{MethodInfo, ServiceCtx};
use super::tokens::{codegen_module, doc_line, ident, stream_doc};

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
    let codegen = codegen_module();
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
            inner: #codegen::Arc<#param>,
            settings: #codegen::ServiceSettings,
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
                Self::from_arc(#codegen::Arc::new(inner))
            }

            /// Wraps an implementation that is shared with other code.
            pub fn from_arc(inner: #codegen::Arc<#param>) -> Self {
                Self { inner, settings: #codegen::ServiceSettings::default() }
            }
        }

        #allow
        impl<#param> ::core::clone::Clone for #server<#param> {
            fn clone(&self) -> Self {
                Self {
                    inner: #codegen::Arc::clone(&self.inner),
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

/// The body of a method that is not implemented, for `generate_default_stubs`.
fn unimplemented(m: &MethodInfo<'_>) -> TokenStream {
    let message = format!("{} is not implemented", m.method.proto_name);
    quote!(::rsgrpc::Status::unimplemented(#message))
}

pub(super) fn async_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let codegen = codegen_module();
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
        let request = m.server_request(ASYNC);
        // Streaming responses are an associated type the implementation chooses, or with
        // default stubs (associated types cannot have defaults) a boxed stream.
        let (stream_decl, response) = match (m.kind.server_streaming, ctx.default_stubs) {
            (false, _) => (quote!(), quote!(#output)),
            (true, true) => (quote!(), quote!(::rsgrpc::BoxStream<#output>)),
            (true, false) => {
                let stream_doc = stream_doc(&m.method.name);
                (
                    quote! {
                        #stream_doc
                        type #stream_type: #codegen::Stream<
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
            ) -> impl #codegen::Future<
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
        let request = m.server_request(ASYNC);
        let register = m.helper(ASYNC);
        // Fully qualified, so that a method named like one of `Arc`'s (`clone`, `as_ref`)
        // still calls the trait.
        quote! {
            .#register(#proto_name, {
                let inner = #codegen::Arc::clone(&inner);
                move |request: #request| {
                    let inner = #codegen::Arc::clone(&inner);
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

pub(super) fn blocking_server(ctx: &ServiceCtx<'_>) -> TokenStream {
    let codegen = codegen_module();
    let trait_name = ctx.stem("Blocking");
    let server = ctx.stem("BlockingServer");
    let trait_docs = ctx.intro("Blocking implementation");
    let deprecated = &ctx.deprecated;
    let trait_attrs = &ctx.trait_attributes;
    let items = ctx.methods.iter().map(|m| {
        let MethodInfo {
            name: method,
            output,
            docs,
            deprecated,
            trait_attributes,
            trait_allows,
            ..
        } = m;
        let request = m.server_request(BLOCKING);
        // A server stream's responses go to a sink passed in.
        let (responses, returns, unused) = if m.kind.server_streaming {
            (
                quote!(responses: ::rsgrpc::ResponseSink<#output>,),
                quote!(()),
                quote!((request, responses)),
            )
        } else {
            (
                quote!(),
                quote!(::rsgrpc::Response<#output>),
                quote!(request),
            )
        };
        let signature = quote! {
            fn #method(
                &self,
                request: #request,
                #responses
            ) -> ::core::result::Result<#returns, ::rsgrpc::Status>
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
        let method = &m.name;
        let proto_name = &m.method.proto_name;
        let request = m.server_request(BLOCKING);
        let register = m.helper(BLOCKING);
        let call = quote!(<#param as #trait_name>::#method);
        let (params, call) = if m.kind.server_streaming {
            (
                quote!(request: #request, responses),
                quote!(#call(&inner, request, responses)),
            )
        } else {
            (quote!(request: #request), quote!(#call(&inner, request)))
        };
        // A unary handler is the call itself, a streaming one a block around it.
        let handler = if m.kind.is_unary() {
            call
        } else {
            quote!({ #call })
        };
        quote! {
            .#register(#proto_name, {
                let inner = #codegen::Arc::clone(&inner);
                move |#params| #handler
            })
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
