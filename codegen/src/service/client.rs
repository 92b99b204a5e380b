//! The async and the blocking client of a service, in `<service>_client`.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::kind::{ASYNC, BLOCKING, Flavour};
use super::method::{MethodInfo, ServiceCtx};
use super::tokens::{doc_line, method_link};

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
    if !flavour.asynchronous && !renamed_with.is_empty() {
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

pub(super) fn async_client(ctx: &ServiceCtx<'_>) -> TokenStream {
    client(
        ctx,
        ASYNC,
        &ctx.stem("Client"),
        "Async client",
        "Its methods return futures that run on any executor.",
    )
}

pub(super) fn blocking_client(ctx: &ServiceCtx<'_>) -> TokenStream {
    client(
        ctx,
        BLOCKING,
        &ctx.stem("BlockingClient"),
        "Blocking client",
        "Its methods block the calling thread; they need no async runtime and may be \
         called from inside one.",
    )
}

/// A client of `flavour`: its type, its own methods and one method per RPC (two for a
/// bidirectional RPC on the blocking client).
fn client(
    ctx: &ServiceCtx<'_>,
    flavour: Flavour,
    name: &Ident,
    what: &str,
    example: &str,
) -> TokenStream {
    let strukt = client_struct(ctx, flavour, name, what, example);
    let methods = ctx.methods.iter().map(|m| match &m.client_with {
        Some(with) if !flavour.asynchronous => blocking_bidi(m, with),
        _ => client_method(m, flavour),
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

/// A `flavour` client's method for an RPC: one call to the runtime's helper for its kind.
fn client_method(m: &MethodInfo<'_>, flavour: Flavour) -> TokenStream {
    let MethodInfo {
        client_name: method,
        path,
        docs,
        deprecated,
        client_attributes,
        client_allows,
        ..
    } = m;
    let (request, into_request) = m.client_request(flavour);
    let response = m.client_response(flavour);
    let helper = m.helper(flavour);
    let (asyncness, awaiting) = if flavour.asynchronous {
        (quote!(async), quote!(.await))
    } else {
        (quote!(), quote!())
    };
    quote! {
        #(#docs)*
        #deprecated
        #client_allows
        #client_attributes
        pub #asyncness fn #method(
            &self,
            request: #request,
        ) -> ::core::result::Result<::rsgrpc::Response<#response>, ::rsgrpc::Status> {
            self.inner.#helper(#path, request.#into_request())#awaiting
        }
    }
}

/// The blocking client's two methods for a bidirectional RPC: `txn()`, and `txn_with` for
/// a call whose `Request<()>` carries metadata and options (`with`).
fn blocking_bidi(m: &MethodInfo<'_>, with: &Ident) -> TokenStream {
    let MethodInfo {
        client_name: method,
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
