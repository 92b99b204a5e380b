//! What a method's stubs vary by: its RPC kind (which sides stream) and the flavour of the
//! stub (async or blocking).
//!
//! The kind is read once per method ([`Kind::of`], the only place that tells the four kinds
//! apart) and the emitters ask the method for its types and its runtime helper in a
//! [`Flavour`], so one emitter writes a piece of both flavours' stubs for every kind.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::method::MethodInfo;

/// An RPC's kind, as the stubs need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Kind {
    /// Whether the client sends a stream of requests.
    pub(super) client_streaming: bool,
    /// Whether the server sends a stream of responses.
    pub(super) server_streaming: bool,
    /// What the docs call it: "unary", "server streaming", ...
    pub(super) describe: &'static str,
    /// The runtime's helper for it, which the clients call and the servers register with:
    /// `unary`, `server_streaming`, `client_streaming` or `bidi_streaming`, after the
    /// flavour's prefix.
    helper: &'static str,
}

impl Kind {
    /// The kind of `method`.
    pub(super) fn of(method: &prost_build::Method) -> Kind {
        let (describe, helper) = match (method.client_streaming, method.server_streaming) {
            (false, false) => ("unary", "unary"),
            (false, true) => ("server streaming", "server_streaming"),
            (true, false) => ("client streaming", "client_streaming"),
            (true, true) => ("bidirectional streaming", "bidi_streaming"),
        };
        Kind {
            client_streaming: method.client_streaming,
            server_streaming: method.server_streaming,
            describe,
            helper,
        }
    }

    /// Whether both sides stream.
    pub(super) fn is_bidi(self) -> bool {
        self.client_streaming && self.server_streaming
    }

    /// Whether neither side streams.
    pub(super) fn is_unary(self) -> bool {
        !self.client_streaming && !self.server_streaming
    }
}

/// What the async and the blocking stubs differ in, for the pieces both write alike.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flavour {
    /// Whether client methods are `async fn`s that await the runtime's helper.
    pub(super) asynchronous: bool,
    /// Put before the name of a runtime helper: `blocking_` or nothing.
    helper_prefix: &'static str,
    /// The runtime's stream of received messages: `Streaming` (a `Stream`) or
    /// `BlockingStreaming` (an `Iterator`).
    stream: &'static str,
    /// What a client method takes for a stream of requests, and its method that makes the
    /// call's request of it.
    request_stream: &'static str,
    into_request_stream: &'static str,
}

/// The async stubs.
pub(super) const ASYNC: Flavour = Flavour {
    asynchronous: true,
    helper_prefix: "",
    stream: "Streaming",
    request_stream: "IntoStreamingRequest",
    into_request_stream: "into_streaming_request",
};

/// The blocking stubs.
pub(super) const BLOCKING: Flavour = Flavour {
    asynchronous: false,
    helper_prefix: "blocking_",
    stream: "BlockingStreaming",
    request_stream: "IntoIterRequest",
    into_request_stream: "into_iter_request",
};

impl Flavour {
    /// `::rsgrpc::Streaming<message>` or `::rsgrpc::BlockingStreaming<message>`.
    fn stream_of(self, message: &TokenStream) -> TokenStream {
        let stream = format_ident!("{}", self.stream);
        quote!(::rsgrpc::#stream<#message>)
    }
}

impl MethodInfo<'_> {
    /// The runtime helper a `flavour` client calls for this method, and a `flavour` server
    /// registers its handler with.
    pub(super) fn helper(&self, flavour: Flavour) -> Ident {
        format_ident!("{}{}", flavour.helper_prefix, self.kind.helper)
    }

    /// The type of a `flavour` client method's request parameter, and the method of it
    /// that makes the call's request.
    pub(super) fn client_request(&self, flavour: Flavour) -> (TokenStream, Ident) {
        let input = &self.input;
        if self.kind.client_streaming {
            let request = format_ident!("{}", flavour.request_stream);
            (
                quote!(impl ::rsgrpc::#request<Message = #input>),
                format_ident!("{}", flavour.into_request_stream),
            )
        } else {
            (
                quote!(impl ::rsgrpc::IntoRequest<#input>),
                format_ident!("into_request"),
            )
        }
    }

    /// What a `flavour` client method's `Response` carries: the message, or a stream of
    /// them.
    pub(super) fn client_response(&self, flavour: Flavour) -> TokenStream {
        if self.kind.server_streaming {
            flavour.stream_of(&self.output)
        } else {
            self.output.clone()
        }
    }

    /// The request a `flavour` server handler takes: a `Request` of the message, or of a
    /// stream of them.
    pub(super) fn server_request(&self, flavour: Flavour) -> TokenStream {
        let input = if self.kind.client_streaming {
            flavour.stream_of(&self.input)
        } else {
            self.input.clone()
        };
        quote!(::rsgrpc::Request<#input>)
    }
}
