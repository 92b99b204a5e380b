//! Call metadata: the custom headers and trailers of a gRPC call.
//!
//! Keys are lowercase ASCII (`0-9 a-z - _ .`). A key ending in `-bin` holds arbitrary bytes,
//! sent base64-encoded; any other key holds printable ASCII. Keys starting with `grpc-` are
//! reserved for the protocol and cannot be set, except `grpc-retry-pushback-ms`, by which a
//! server asks clients to delay (or, negative, to skip) retrying a call.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::error::{Error, Result};

/// Headers that belong to the protocol and are never shown as metadata.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "te",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
];

/// A metadata value: printable ASCII text, or bytes for `-bin` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataValue<'a> {
    /// The value of an ASCII key.
    Ascii(&'a str),
    /// The decoded value of a `-bin` key.
    Binary(Bytes),
}

/// Custom metadata of a call: request headers, response headers or trailers.
///
/// ```
/// use rsgrpc::MetadataMap;
///
/// let mut md = MetadataMap::new();
/// md.insert("x-request-id", "42").unwrap();
/// md.insert_bin("trace-context-bin", &[0, 1, 2][..]).unwrap();
/// assert_eq!(md.get("x-request-id"), Some("42"));
/// assert_eq!(md.get_bin("trace-context-bin").unwrap(), &[0, 1, 2][..]);
/// assert!(md.insert("grpc-status", "0").is_err());
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct MetadataMap {
    headers: HeaderMap,
}

impl MetadataMap {
    /// An empty map.
    pub fn new() -> MetadataMap {
        MetadataMap::default()
    }

    /// The number of values (a key with two values counts twice).
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the map holds no values.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Sets an ASCII key to `value`, replacing earlier values.
    ///
    /// # Errors
    ///
    /// When the key is invalid, reserved, or ends in `-bin`, or the value is not printable
    /// ASCII.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<()> {
        let (name, value) = ascii_entry(key, value)?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// Adds a value to an ASCII key, keeping earlier values.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn append(&mut self, key: &str, value: &str) -> Result<()> {
        let (name, value) = ascii_entry(key, value)?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Sets a binary (`-bin`) key to `value`, replacing earlier values.
    ///
    /// # Errors
    ///
    /// When the key is invalid, reserved, or does not end in `-bin`.
    pub fn insert_bin(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let name = binary_key(key)?;
        self.headers.insert(name, encode_binary(value.as_ref()));
        Ok(())
    }

    /// Adds a value to a binary (`-bin`) key, keeping earlier values.
    ///
    /// # Errors
    ///
    /// As [`insert_bin`](Self::insert_bin).
    pub fn append_bin(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let name = binary_key(key)?;
        self.headers.append(name, encode_binary(value.as_ref()));
        Ok(())
    }

    /// The first value of an ASCII key.
    pub fn get(&self, key: &str) -> Option<&str> {
        if key.ends_with("-bin") {
            return None;
        }
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// Every value of an ASCII key, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        if key.ends_with("-bin") {
            return Vec::new();
        }
        self.headers
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The first value of a binary key, decoded; `None` when absent or not valid base64.
    pub fn get_bin(&self, key: &str) -> Option<Bytes> {
        if !key.ends_with("-bin") {
            return None;
        }
        self.headers
            .get(key)
            .and_then(|v| decode_binary(v.as_bytes()).ok())
    }

    /// Every value of a binary key, decoded, in order (values that are not base64 skipped).
    pub fn get_all_bin(&self, key: &str) -> Vec<Bytes> {
        if !key.ends_with("-bin") {
            return Vec::new();
        }
        self.headers
            .get_all(key)
            .iter()
            .filter_map(|v| decode_binary(v.as_bytes()).ok())
            .collect()
    }

    /// Whether the key has at least one value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.headers.contains_key(key)
    }

    /// Removes every value of a key; returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        self.headers.remove(key).is_some()
    }

    /// Every key and value, in order; binary values are decoded.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetadataValue<'_>)> {
        self.headers.iter().filter_map(|(name, value)| {
            let key = name.as_str();
            let value = if key.ends_with("-bin") {
                MetadataValue::Binary(decode_binary(value.as_bytes()).ok()?)
            } else {
                MetadataValue::Ascii(value.to_str().ok()?)
            };
            Some((key, value))
        })
    }

    /// Adds every value of `other` to this map.
    pub fn extend(&mut self, other: MetadataMap) {
        let mut last = None;
        for (name, value) in other.headers {
            let name = match name {
                Some(name) => {
                    last = Some(name.clone());
                    name
                }
                None => match &last {
                    Some(name) => name.clone(),
                    None => continue,
                },
            };
            self.headers.append(name, value);
        }
    }

    /// The metadata in received headers: everything except pseudo-headers and the headers
    /// the protocol itself uses.
    pub(crate) fn from_headers(headers: &HeaderMap) -> MetadataMap {
        let mut md = MetadataMap::new();
        for (name, value) in headers {
            if RESERVED.contains(&name.as_str()) {
                continue;
            }
            md.headers.append(name.clone(), value.clone());
        }
        md
    }

    /// Writes the metadata into outgoing headers.
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
    }
}

impl fmt::Debug for MetadataMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Binary values may be credentials or opaque blobs: show only their size.
        let mut map = f.debug_map();
        for (name, value) in &self.headers {
            if name.as_str().ends_with("-bin") {
                map.entry(
                    &name.as_str(),
                    &format_args!("<{} base64 bytes>", value.len()),
                );
            } else {
                map.entry(&name.as_str(), &value);
            }
        }
        map.finish()
    }
}

fn check_key(key: &str) -> Result<HeaderName> {
    if key.is_empty() {
        return Err(Error::invalid_metadata("metadata key is empty"));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !matches!(c, '0'..='9' | 'a'..='z' | '-' | '_' | '.'))
    {
        return Err(Error::invalid_metadata(format!(
            "metadata key {key:?} has {bad:?}; keys are lowercase 0-9 a-z - _ ."
        )));
    }
    // A server may ask clients to delay or skip retries (gRPC's retry design).
    let settable = key == "grpc-retry-pushback-ms";
    if (key.starts_with("grpc-") && !settable) || RESERVED.contains(&key) {
        return Err(Error::invalid_metadata(format!(
            "metadata key {key:?} is reserved for the grpc protocol"
        )));
    }
    HeaderName::from_bytes(key.as_bytes())
        .map_err(|_| Error::invalid_metadata(format!("metadata key {key:?} is not a header name")))
}

fn ascii_entry(key: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    if key.ends_with("-bin") {
        return Err(Error::invalid_metadata(format!(
            "metadata key {key:?} ends in -bin: use insert_bin for binary values"
        )));
    }
    let name = check_key(key)?;
    if let Some(bad) = value.bytes().find(|b| !(0x20..=0x7e).contains(b)) {
        return Err(Error::invalid_metadata(format!(
            "value of metadata key {key:?} has byte {bad:#04x}; ascii values are printable ascii \
             (use a -bin key for other bytes)"
        )));
    }
    let value = HeaderValue::from_str(value).map_err(|_| {
        Error::invalid_metadata(format!(
            "value of metadata key {key:?} is not a header value"
        ))
    })?;
    Ok((name, value))
}

fn binary_key(key: &str) -> Result<HeaderName> {
    if !key.ends_with("-bin") {
        return Err(Error::invalid_metadata(format!(
            "metadata key {key:?} does not end in -bin: binary values need a -bin key"
        )));
    }
    check_key(key)
}

/// Base64-encodes a binary value (with padding, as gRPC senders do).
pub(crate) fn encode_binary(value: &[u8]) -> HeaderValue {
    let encoded = STANDARD.encode(value);
    HeaderValue::from_str(&encoded).expect("base64 is always a valid header value")
}

/// Decodes a binary value; receivers accept both padded and unpadded base64.
pub(crate) fn decode_binary(raw: &[u8]) -> std::result::Result<Bytes, base64::DecodeError> {
    let trimmed = raw.strip_suffix(b"==").or_else(|| raw.strip_suffix(b"="));
    STANDARD_NO_PAD
        .decode(trimmed.unwrap_or(raw))
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_round_trip_for_every_length() {
        let mut md = MetadataMap::new();
        for len in 0..64usize {
            let value: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            md.insert_bin("blob-bin", &value).unwrap();
            assert_eq!(md.get_bin("blob-bin").unwrap(), &value[..], "len {len}");
        }
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        assert_eq!(&decode_binary(b"AAE").unwrap()[..], &[0, 1]);
        assert_eq!(&decode_binary(b"AAE=").unwrap()[..], &[0, 1]);
        assert!(decode_binary(b"not base64!").is_err());
    }

    #[test]
    fn keys_are_validated() {
        let mut md = MetadataMap::new();
        assert!(md.insert("Upper", "x").is_err());
        assert!(md.insert("", "x").is_err());
        assert!(md.insert("grpc-timeout", "1S").is_err());
        assert!(md.insert("content-type", "x").is_err());
        assert!(md.insert("key-bin", "x").is_err());
        assert!(md.insert_bin("key", b"x").is_err());
        assert!(md.insert("key", "line\nbreak").is_err());
        assert!(md.insert("key", "é").is_err());
        md.insert("ok_key.v1", "fine value").unwrap();
        assert_eq!(md.get("ok_key.v1"), Some("fine value"));
    }

    #[test]
    fn append_keeps_order_and_iter_decodes() {
        let mut md = MetadataMap::new();
        md.append("k", "1").unwrap();
        md.append("k", "2").unwrap();
        md.append_bin("b-bin", b"\xff").unwrap();
        assert_eq!(md.get_all("k"), vec!["1", "2"]);
        let entries: Vec<_> = md.iter().collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[2],
            ("b-bin", MetadataValue::Binary(Bytes::from_static(b"\xff")))
        );
    }

    #[test]
    fn reserved_headers_are_not_metadata() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-user", HeaderValue::from_static("u"));
        let md = MetadataMap::from_headers(&headers);
        assert_eq!(md.len(), 1);
        assert_eq!(md.get("x-user"), Some("u"));
    }

    #[test]
    fn debug_hides_binary_values() {
        let mut md = MetadataMap::new();
        md.insert_bin("secret-bin", b"hunter2").unwrap();
        let shown = format!("{md:?}");
        assert!(!shown.contains("aHVudGVyMg"), "{shown}");
    }
}
