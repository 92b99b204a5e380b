//! gRPC-Web on the server: which requests are gRPC-Web, CORS (preflight requests and the
//! headers of cross-origin responses), and what a gRPC-Web call sends differently from a
//! native one: its content type, its status as the body's last frame instead of HTTP
//! trailers, and, in the text form, base64.
//!
//! Everything else — routing, limits, quotas, deadlines, cancellation, handlers — is the
//! native call's: a gRPC-Web request body is gRPC's messages, so it goes through the same
//! call machinery ([`ServerStream`](super::stream::ServerStream)) with a [`WebCall`] beside it.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use crate::call::outgoing::Outgoing;
use crate::call::protocol::is_grpc_content_type;
use crate::call::web::{self, Form};

/// Request headers a page may always send: what gRPC-Web clients set.
const DEFAULT_ALLOWED_HEADERS: [&str; 7] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connect-protocol-version",
];

/// Response headers a page may always read: the status and the encoding.
const DEFAULT_EXPOSED_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
];

/// gRPC-Web for a server ([`ServerBuilder::grpc_web`](super::ServerBuilder::grpc_web)):
/// requests with content type `application/grpc-web` (and `+proto`) or
/// `application/grpc-web-text` (base64) are served by the same services as native gRPC
/// calls, with their status in the body, on the same port.
///
/// Cross-origin requests (a page on another origin than the server's, as browsers send
/// them) are refused unless their origin is allowed: by default a server answers only
/// requests without an `Origin` header (native clients, Node, curl) and pages of its own
/// origin. Allowing an origin answers its preflight requests and lets its pages read the
/// status, `grpc-message`, `grpc-status-details-bin` and the headers named in
/// [`expose_headers`](Self::expose_headers).
///
/// ```
/// use rsgrpc::server::{GrpcWeb, Server};
///
/// let web = GrpcWeb::new()
///     .allow_origin("https://app.example.com")
///     .allow_headers(["x-request-id"])
///     .expose_headers(["x-request-id"]);
/// let builder = Server::builder().grpc_web(web);
/// # drop(builder);
/// ```
#[derive(Clone, Debug)]
pub struct GrpcWeb {
    origins: Origins,
    allowed_headers: Vec<HeaderName>,
    exposed_headers: Vec<HeaderName>,
    max_age: Duration,
    credentials: bool,
}

#[derive(Clone, Debug)]
enum Origins {
    /// The server's own origin only.
    Own,
    /// These, and the server's own.
    List(Vec<HeaderValue>),
    Any,
}

impl Default for GrpcWeb {
    fn default() -> Self {
        GrpcWeb::new()
    }
}

impl GrpcWeb {
    /// gRPC-Web with no cross-origin access: requests without an `Origin` and pages of
    /// the server's own origin only.
    pub fn new() -> GrpcWeb {
        GrpcWeb {
            origins: Origins::Own,
            allowed_headers: Vec::new(),
            exposed_headers: Vec::new(),
            max_age: Duration::from_secs(24 * 60 * 60),
            credentials: false,
        }
    }

    /// Lets pages of `origin` (scheme, host and port as a browser sends them in `Origin`,
    /// such as `https://app.example.com` or `http://localhost:5173`) call the server.
    ///
    /// # Panics
    ///
    /// When `origin` is not a valid header value.
    pub fn allow_origin(mut self, origin: &str) -> GrpcWeb {
        let origin = HeaderValue::from_str(origin)
            .unwrap_or_else(|e| panic!("{origin:?} is not a valid origin: {e}"));
        match &mut self.origins {
            Origins::List(origins) => origins.push(origin),
            Origins::Own => self.origins = Origins::List(vec![origin]),
            Origins::Any => {}
        }
        self
    }

    /// Lets pages of every origin call the server (for public APIs and tests). Responses
    /// then never allow credentials, whatever [`allow_credentials`](Self::allow_credentials)
    /// says, as the CORS standard requires of a wildcard.
    pub fn allow_any_origin(mut self) -> GrpcWeb {
        self.origins = Origins::Any;
        self
    }

    /// Request headers (custom metadata) pages may send, beyond those gRPC-Web clients
    /// always set (`content-type`, `x-grpc-web`, `x-user-agent`, `grpc-timeout`,
    /// `grpc-encoding`, `grpc-accept-encoding`).
    ///
    /// # Panics
    ///
    /// When a name is not a valid header name.
    pub fn allow_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> GrpcWeb {
        self.allowed_headers
            .extend(names.into_iter().map(header_name));
        self
    }

    /// Response headers and trailers (custom metadata) pages may read, beyond
    /// `grpc-status`, `grpc-message`, `grpc-status-details-bin` and `grpc-encoding`.
    ///
    /// # Panics
    ///
    /// When a name is not a valid header name.
    pub fn expose_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> GrpcWeb {
        self.exposed_headers
            .extend(names.into_iter().map(header_name));
        self
    }

    /// How long browsers may cache a preflight answer (default 24 hours).
    pub fn max_age(mut self, max_age: Duration) -> GrpcWeb {
        self.max_age = max_age;
        self
    }

    /// Lets allowed origins send credentials (cookies, HTTP authentication) with their
    /// calls (off by default).
    pub fn allow_credentials(mut self, allow: bool) -> GrpcWeb {
        self.credentials = allow;
        self
    }

    /// Whether `origin` may call a server reached as `authority`.
    fn allows(&self, origin: &HeaderValue, authority: Option<&str>) -> bool {
        let own = authority.is_some_and(|authority| {
            origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .is_some_and(|(_, host)| host.eq_ignore_ascii_case(authority))
        });
        own || match &self.origins {
            Origins::Own => false,
            Origins::List(origins) => origins.contains(origin),
            Origins::Any => true,
        }
    }

    /// The CORS headers of an answer to `origin`.
    fn cors_headers(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if self.credentials && !matches!(self.origins, Origins::Any) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// The answer to a preflight request that `allows` the origin.
    fn preflight(&self, origin: &HeaderValue) -> http::Response<()> {
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        self.cors_headers(origin, headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            list(DEFAULT_ALLOWED_HEADERS, &self.allowed_headers),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age.as_secs()),
        );
        response
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes())
        .unwrap_or_else(|e| panic!("{name:?} is not a valid header name: {e}"))
}

/// `defaults` and `more`, comma-separated.
fn list<const N: usize>(defaults: [&str; N], more: &[HeaderName]) -> HeaderValue {
    let names: Vec<&str> = defaults
        .into_iter()
        .chain(more.iter().map(HeaderName::as_str))
        .collect();
    // Header names are valid header values.
    HeaderValue::from_str(&names.join(",")).unwrap_or(HeaderValue::from_static(""))
}

/// What a new stream is.
pub(super) enum Kind {
    /// A native gRPC call.
    Native,
    /// A gRPC-Web call.
    Web(Box<WebCall>),
    /// Not a call: answer with this, and no more.
    Answer(http::Response<()>),
}

/// Classifies a request by its method, content type and origin. With gRPC-Web off
/// (`web` is `None`), only native calls are calls.
pub(super) fn classify(parts: &Parts, web: Option<&GrpcWeb>) -> Kind {
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let http_error = |status: StatusCode| {
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        Kind::Answer(response)
    };
    let Some(web) = web else {
        if parts.method != Method::POST {
            tracing::debug!(method = %parts.method, "rejecting a non-POST request");
            return http_error(StatusCode::METHOD_NOT_ALLOWED);
        }
        if !is_grpc_content_type(content_type) {
            tracing::debug!(?content_type, "rejecting a non-grpc content-type");
            return http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        return Kind::Native;
    };
    let origin = parts.headers.get(header::ORIGIN);
    let authority = parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    if parts.method == Method::OPTIONS {
        let Some(origin) = origin else {
            return http_error(StatusCode::METHOD_NOT_ALLOWED);
        };
        if !parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return http_error(StatusCode::METHOD_NOT_ALLOWED);
        }
        if !web.allows(origin, authority) {
            tracing::debug!(
                ?origin,
                "refusing a preflight request from an origin not allowed"
            );
            return http_error(StatusCode::FORBIDDEN);
        }
        return Kind::Answer(web.preflight(origin));
    }
    if parts.method != Method::POST {
        tracing::debug!(method = %parts.method, "rejecting a non-POST request");
        return http_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    let form = match Form::of(content_type) {
        Some(form) => form,
        None if is_grpc_content_type(content_type) => return Kind::Native,
        None => {
            tracing::debug!(
                ?content_type,
                "rejecting a content-type neither grpc nor grpc-web"
            );
            return http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    };
    let mut headers = HeaderMap::new();
    if let Some(origin) = origin {
        if !web.allows(origin, authority) {
            tracing::debug!(
                ?origin,
                "refusing a grpc-web call from an origin not allowed"
            );
            return http_error(StatusCode::FORBIDDEN);
        }
        web.cors_headers(origin, &mut headers);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            list(DEFAULT_EXPOSED_HEADERS, &web.exposed_headers),
        );
    }
    Kind::Web(Box::new(WebCall { form, headers }))
}

/// What a gRPC-Web call sends differently.
#[derive(Debug)]
pub(super) struct WebCall {
    form: Form,
    /// Added to the response headers: CORS.
    headers: HeaderMap,
}

impl WebCall {
    /// Response headers: the gRPC-Web content type for the form, and CORS.
    pub(super) fn head(&self, response: &mut http::Response<()>) {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.form.content_type());
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
    }

    /// Whether request bodies are base64.
    pub(super) fn text(&self) -> bool {
        self.form == Form::Text
    }

    /// Response bytes as sent: base64 in the text form.
    pub(super) fn body(&self, bytes: Outgoing) -> Outgoing {
        match self.form {
            Form::Binary => bytes,
            Form::Text => web::encode_text(&bytes.into_bytes()).into(),
        }
    }

    /// The status and trailing metadata, as the body's last frame.
    pub(super) fn trailers(&self, trailers: &HeaderMap) -> Outgoing {
        self.body(web::trailers_frame(trailers).into())
    }
}
