//! [`Response`]: a message (or a response stream) with its metadata.

use crate::metadata::MetadataMap;

/// A gRPC response: the message (or response stream), response headers and trailers.
///
/// A handler fills in the metadata it wants sent; a client reads what the server sent.
///
/// ```
/// let mut response = rsgrpc::Response::new(42u32);
/// response.metadata_mut().insert("x-served-by", "a").unwrap();
/// response.trailers_mut().insert("x-cost", "3").unwrap();
/// assert_eq!(*response.get_ref(), 42);
/// ```
#[derive(Debug)]
pub struct Response<T> {
    metadata: MetadataMap,
    message: T,
    trailers: MetadataMap,
    compress: bool,
    /// Client side: the message arrived compressed.
    message_compressed: bool,
}

impl<T> Response<T> {
    /// A response with empty metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: MetadataMap::new(),
            message,
            trailers: MetadataMap::new(),
            compress: true,
            message_compressed: false,
        }
    }

    pub(crate) fn from_parts(metadata: MetadataMap, message: T, trailers: MetadataMap) -> Self {
        Response {
            metadata,
            message,
            trailers,
            compress: true,
            message_compressed: false,
        }
    }

    pub(crate) fn with_message_compressed(mut self, compressed: bool) -> Self {
        self.message_compressed = compressed;
        self
    }

    /// Client side: whether the response message arrived compressed (for a call with one
    /// response; a response stream tells per message).
    pub fn message_compressed(&self) -> bool {
        self.message_compressed
    }

    /// The response headers' metadata.
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// Mutable access to the response headers' metadata.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// The trailing metadata. On the client it is filled once the call completed (for a
    /// streaming response, read it from the stream once it ended).
    pub fn trailers(&self) -> &MetadataMap {
        &self.trailers
    }

    /// Mutable access to the trailing metadata, sent by a handler with the final status.
    pub fn trailers_mut(&mut self) -> &mut MetadataMap {
        &mut self.trailers
    }

    /// Server side: whether the response messages are compressed, when the call compresses
    /// at all (the server was built with `send_compressed` and the client accepts it); on
    /// by default.
    pub fn set_compression(&mut self, enabled: bool) {
        self.compress = enabled;
    }

    pub(crate) fn compress(&self) -> bool {
        self.compress
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// Mutable access to the message.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message, dropping the metadata.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Splits into headers' metadata, message and trailers.
    pub fn into_parts(self) -> (MetadataMap, T, MetadataMap) {
        (self.metadata, self.message, self.trailers)
    }

    /// Replaces the message, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            metadata: self.metadata,
            message: f(self.message),
            trailers: self.trailers,
            compress: self.compress,
            message_compressed: self.message_compressed,
        }
    }
}
