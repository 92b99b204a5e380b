//! Message framing, compression and the protobuf codec.
//!
//! Each message on the wire is a five-byte prefix (a compressed flag, then the length as a
//! big-endian `u32`) followed by the encoded message. Encoding, compression, decompression
//! and decoding happen on the caller's or handler's thread; the poller only splits frames.

use std::io::Read;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::status::Status;

/// Header naming the encoding of the messages a peer sends.
pub(crate) const GRPC_ENCODING: &str = "grpc-encoding";
/// Header listing the encodings a peer accepts.
pub(crate) const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
/// What this implementation accepts, as sent in `grpc-accept-encoding`: gzip always,
/// deflate and zstd when their features are on.
pub(crate) const ACCEPTED_ENCODINGS: &str = {
    #[cfg(all(feature = "deflate", feature = "zstd"))]
    let accepted = "gzip,deflate,zstd";
    #[cfg(all(feature = "deflate", not(feature = "zstd")))]
    let accepted = "gzip,deflate";
    #[cfg(all(not(feature = "deflate"), feature = "zstd"))]
    let accepted = "gzip,zstd";
    #[cfg(not(any(feature = "deflate", feature = "zstd")))]
    let accepted = "gzip";
    accepted
};

/// A message compression algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompressionEncoding {
    /// gzip (RFC 1952).
    Gzip,
    /// gRPC's `deflate`: the zlib format (RFC 1950), as gRPC C++, grpcio and tonic write
    /// it. Feature `deflate`.
    #[cfg(feature = "deflate")]
    Deflate,
    /// Zstandard (RFC 8878), at level 3 (zstd's default; tonic's too). Feature `zstd`.
    #[cfg(feature = "zstd")]
    Zstd,
}

impl CompressionEncoding {
    /// The name used in `grpc-encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionEncoding::Gzip => "gzip",
            #[cfg(feature = "deflate")]
            CompressionEncoding::Deflate => "deflate",
            #[cfg(feature = "zstd")]
            CompressionEncoding::Zstd => "zstd",
        }
    }

    /// Reads a `grpc-encoding` value: `Ok(None)` for identity, `Err` for an encoding this
    /// implementation does not support (or was built without).
    pub(crate) fn from_header(value: &[u8]) -> Result<Option<CompressionEncoding>, ()> {
        match value {
            b"identity" => Ok(None),
            b"gzip" => Ok(Some(CompressionEncoding::Gzip)),
            #[cfg(feature = "deflate")]
            b"deflate" => Ok(Some(CompressionEncoding::Deflate)),
            #[cfg(feature = "zstd")]
            b"zstd" => Ok(Some(CompressionEncoding::Zstd)),
            _ => Err(()),
        }
    }

    /// Whether a `grpc-accept-encoding` value lists this encoding.
    pub(crate) fn listed_in(self, accept: &[u8]) -> bool {
        accept
            .split(|b| *b == b',')
            .any(|e| e.trim_ascii() == self.as_str().as_bytes())
    }
}

/// A received message: its body and whether the compressed flag was set.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) compressed: bool,
    /// A gRPC-Web trailers frame (flag `0x80`): `body` is the trailer block.
    pub(crate) trailers: bool,
    pub(crate) body: Bytes,
}

/// Decompresses a received message body, refusing to produce more than `max_len` bytes, so
/// a small compressed "bomb" cannot make this allocate gigabytes.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` past the limit; `INTERNAL` for a body that is not valid in its
/// encoding.
pub(crate) fn decompress(
    encoding: CompressionEncoding,
    body: &[u8],
    max_len: usize,
) -> Result<Bytes, Status> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(2).min(max_len));
    // One byte past the limit is read, to tell "exactly the limit" from "more".
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    // The body is in memory: the decoders read it as a buffer (`bufread`), without a
    // buffer of their own to copy it through.
    let read = match encoding {
        CompressionEncoding::Gzip => flate2::bufread::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => flate2::bufread::ZlibDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => compressors::unzstd(body, limit, &mut out),
    };
    read.map_err(|e| {
        Status::internal(format!(
            "received a message that is not valid {}: {e}",
            encoding.as_str()
        ))
    })?;
    if out.len() > max_len {
        return Err(Status::resource_exhausted(format!(
            "received message decompresses to more than the limit of {max_len} bytes"
        )));
    }
    Ok(out.into())
}

/// The flag of a gRPC-Web trailers frame (the other flag bit, 0x01, is compression).
pub(crate) const TRAILERS_FLAG: u8 = 0x80;

/// Length of the message prefix.
pub(crate) const PREFIX_LEN: usize = 5;

/// The encoded length of `message`, checked against the send limit.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` when the message is larger than `max_len` or than a prefix can
/// describe.
pub(crate) fn checked_len<M: Message>(message: &M, max_len: usize) -> Result<usize, Status> {
    let len = message.encoded_len();
    if len > max_len || u32::try_from(len).is_err() {
        return Err(Status::resource_exhausted(format!(
            "message of {len} bytes is larger than the send limit of {max_len} bytes"
        )));
    }
    Ok(len)
}

/// Appends `message`, uncompressed, with its prefix; `len` is its
/// [`checked_len`] and `buf` has room for `PREFIX_LEN + len` more bytes.
pub(crate) fn write_framed<M: Message>(message: &M, len: usize, buf: &mut BytesMut) {
    buf.reserve(PREFIX_LEN + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Cannot fail: the room was reserved above.
    let _ = message.encode(buf);
}

/// A `bytes::Bytes` field at least this long is not copied into its message's encoding:
/// the encoding refers to it, and it is written to the connection from where it is.
/// Shorter ones are copied: a copy of a few KiB costs less than the extra part of a
/// vectored write and the bookkeeping.
pub(crate) const SPLICE_MIN: usize = 8 * 1024;

/// One or more framed messages on their way out: their encoding in `buf`, except for
/// the long `Bytes` fields (see [`SPLICE_MIN`]) of a message encoded by
/// [`write_spliced`], which stay where they are and are listed in `splices`.
#[derive(Debug, Default)]
pub(crate) struct Framed {
    pub(crate) buf: BytesMut,
    /// The `Bytes` fields left out of `buf`, each with the length of `buf` it follows.
    pub(crate) splices: Vec<(usize, Bytes)>,
}

impl Framed {
    /// The framed messages' length on the wire.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() + self.splices.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// What it holds in memory: the buffer's capacity, room for more messages included,
    /// and the spliced fields.
    pub(crate) fn weight(&self) -> usize {
        self.buf.capacity() + self.splices.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Its buffer and spliced fields, for sending.
    pub(crate) fn into_parts(mut self) -> (BytesMut, Vec<(usize, Bytes)>) {
        (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.splices),
        )
    }
}

/// The spliced fields are the sender's values: a chunk dropped unsent on a poller (its
/// call ended) hands them to the reaper, as a user's value must not be dropped there.
impl Drop for Framed {
    fn drop(&mut self) {
        if !self.splices.is_empty() {
            crate::role::drop_off_poller(std::mem::take(&mut self.splices));
        }
    }
}

impl From<BytesMut> for Framed {
    fn from(buf: BytesMut) -> Framed {
        Framed {
            buf,
            splices: Vec::new(),
        }
    }
}

/// Encodes `message`, uncompressed, with its prefix (`len` is its [`checked_len`]), its
/// `Bytes` fields of [`SPLICE_MIN`] bytes or more spliced in instead of copied, into
/// `buf`, which becomes the new `Framed`'s buffer when nothing was spliced.
///
/// How much of a message is spliced is known only once it is encoded, so room for all
/// of it is reserved in `buf`, as for a message that is copied whole. When some was
/// spliced, what was copied moves to a buffer of its own size and `buf` comes back,
/// emptied, for reuse (most of it was never written to): `(framed, Some(buf))`.
pub(crate) fn write_spliced<M: Message>(
    message: &M,
    len: usize,
    mut buf: BytesMut,
) -> (Framed, Option<BytesMut>) {
    buf.reserve(PREFIX_LEN + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    let mut framed = Framed::from(buf);
    // Cannot fail: the room was reserved above.
    let _ = message.encode(&mut Splicer(&mut framed));
    if framed.splices.is_empty() {
        return (framed, None);
    }
    let copied = BytesMut::from(&framed.buf[..]);
    let mut spare = std::mem::replace(&mut framed.buf, copied);
    spare.clear();
    (framed, Some(spare))
}

/// prost's encoder writing into a [`Framed`]: everything goes into its buffer, except the
/// long `Bytes` fields, which prost hands over as a `Bytes` (`put`) and which are kept by
/// reference.
struct Splicer<'a>(&'a mut Framed);

// SAFETY: every method that touches memory is the buffer's own (`BytesMut`, whose
// implementation upholds `BufMut`'s contract): `chunk_mut` is the buffer's next free
// bytes, and `advance_mut` passes on to that same buffer the caller's promise that it
// initialised them. `put` either hands `src` to the buffer's own `put` or records it as a
// splice without writing anything.
#[allow(unsafe_code)]
unsafe impl BufMut for Splicer<'_> {
    fn remaining_mut(&self) -> usize {
        self.0.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: `cnt` bytes of the buffer's `chunk_mut` (which this type's
        // `chunk_mut` is) were initialised, as this method's caller guarantees.
        unsafe { self.0.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.0.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.0.buf.put_slice(src);
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        // prost puts a `Bytes` field as a clone of the `Bytes`, whose `copy_to_bytes`
        // is a slice of it, not a copy. Only that type is spliced: for any other `Buf`
        // (a `Vec<u8>` field comes as a `&[u8]`) `copy_to_bytes` would copy and
        // allocate. The type's name only picks the way; either way is correct.
        if src.remaining() >= SPLICE_MIN
            && std::any::type_name::<T>() == std::any::type_name::<Bytes>()
        {
            let at = self.0.buf.len();
            let len = src.remaining();
            self.0.splices.push((at, src.copy_to_bytes(len)));
        } else {
            self.0.buf.put(src);
        }
    }
}

/// Encodes a message with its prefix, ready to be sent as-is, compressed when asked.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` when the message is larger than `max_len` (before compression) or
/// than a prefix can describe.
pub(crate) fn encode<M: Message>(
    message: &M,
    max_len: usize,
    compression: Option<CompressionEncoding>,
) -> Result<Bytes, Status> {
    let len = checked_len(message, max_len)?;
    match compression {
        None => {
            let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
            write_framed(message, len, &mut buf);
            Ok(buf.freeze())
        }
        Some(encoding) => encode_compressed(message, encoding).map(BytesMut::freeze),
    }
}

/// As [`encode`], with the long `Bytes` fields of an uncompressed message spliced in (see
/// [`write_spliced`]), into a buffer of its own that more messages may be appended to.
///
/// # Errors
///
/// As [`encode`].
pub(crate) fn encode_framed<M: Message>(
    message: &M,
    max_len: usize,
    compression: Option<CompressionEncoding>,
) -> Result<Framed, Status> {
    let len = checked_len(message, max_len)?;
    match compression {
        None if PREFIX_LEN + len >= SPLICE_MIN => {
            Ok(write_spliced(message, len, BytesMut::new()).0)
        }
        None => {
            let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
            write_framed(message, len, &mut buf);
            Ok(Framed::from(buf))
        }
        Some(encoding) => encode_compressed(message, encoding).map(Framed::from),
    }
}

/// A message compressed with `encoding`, with its prefix.
fn encode_compressed<M: Message>(
    message: &M,
    encoding: CompressionEncoding,
) -> Result<BytesMut, Status> {
    let plain = message.encode_to_vec();
    let mut buf = Vec::with_capacity(PREFIX_LEN + plain.len() / 2 + 32);
    buf.extend_from_slice(&[1, 0, 0, 0, 0]);
    compress(encoding, &plain, &mut buf)
        .map_err(|e| Status::internal(format!("failed to compress message: {e}")))?;
    let compressed_len = u32::try_from(buf.len() - PREFIX_LEN).map_err(|_| {
        Status::resource_exhausted("compressed message is larger than a prefix can describe")
    })?;
    buf[1..PREFIX_LEN].copy_from_slice(&compressed_len.to_be_bytes());
    // Without a copy: the vector is the only owner of its buffer.
    Ok(BytesMut::from(Bytes::from(buf)))
}

/// Appends `plain` compressed with `encoding` to `out`.
fn compress(encoding: CompressionEncoding, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    match encoding {
        CompressionEncoding::Gzip => {
            // RFC 1952: no name, no time, "fastest" (XFL 4), unknown system.
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff]);
            compressors::deflate(compressors::Format::Raw, plain, out)?;
            let mut crc = flate2::Crc::new();
            crc.update(plain);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
            Ok(())
        }
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => compressors::deflate(compressors::Format::Zlib, plain, out),
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => compressors::zstd(plain, out),
    }
}

/// Compressors kept between messages: setting one up costs more than compressing a small
/// message (miniz_oxide's deflate state is about 300 KB zeroed, whose pages go back to the
/// system when it is freed and are faulted in again by the next one; a zstd context sizes
/// its tables for each new frame).
mod compressors {
    use flate2::{Compress, Compression, FlushCompress, Status};

    use crate::limits::KEPT_COMPRESSORS;
    #[cfg(feature = "zstd")]
    use crate::limits::KEPT_ZSTD_CONTEXT;

    /// What a kept compressor makes (a gzip wrapper is written around a raw deflate
    /// stream).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum Format {
        Raw,
        #[cfg(feature = "deflate")]
        Zlib,
        #[cfg(feature = "zstd")]
        Zstd,
        /// zstd decompression.
        #[cfg(feature = "zstd")]
        Unzstd,
    }

    pub(super) enum Engine {
        Deflate(Compress),
        #[cfg(feature = "zstd")]
        Zstd(zstd::bulk::Compressor<'static>),
        #[cfg(feature = "zstd")]
        Unzstd(zstd::zstd_safe::DCtx<'static>),
    }

    /// Compressors ready for their next message, at most [`KEPT_COMPRESSORS`] of each
    /// format.
    pub(super) struct Kept(std::sync::Mutex<Vec<(Format, Engine)>>);

    /// The process's. (A process-wide static stays on `std`'s mutex, as in `crate::sync`.)
    static KEPT: Kept = Kept::new();

    impl Kept {
        pub(super) const fn new() -> Kept {
            Kept(std::sync::Mutex::new(Vec::new()))
        }

        fn list(&self) -> std::sync::MutexGuard<'_, Vec<(Format, Engine)>> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// A kept compressor of `format`, or a new one.
        pub(super) fn take(&self, format: Format) -> std::io::Result<Engine> {
            let taken = {
                let mut list = self.list();
                let at = list.iter().position(|(f, _)| *f == format);
                at.map(|at| list.swap_remove(at).1)
            };
            if let Some(engine) = taken {
                return Ok(engine);
            }
            Ok(match format {
                Format::Raw => Engine::Deflate(Compress::new(Compression::fast(), false)),
                #[cfg(feature = "deflate")]
                Format::Zlib => Engine::Deflate(Compress::new(Compression::fast(), true)),
                #[cfg(feature = "zstd")]
                Format::Zstd => Engine::Zstd(zstd::bulk::Compressor::new(
                    zstd::DEFAULT_COMPRESSION_LEVEL,
                )?),
                #[cfg(feature = "zstd")]
                Format::Unzstd => Engine::Unzstd(zstd::zstd_safe::DCtx::create()),
            })
        }

        /// Keeps `engine` ready for another message, unless enough of its format are
        /// kept already.
        pub(super) fn give_back(&self, format: Format, mut engine: Engine) {
            match &mut engine {
                Engine::Deflate(compress) => compress.reset(),
                // A zstd context that grew past the bound is let go. (Each message is a
                // frame of its own: `compress2` starts one, and the decoder resets its
                // context's session when it takes it.)
                #[cfg(feature = "zstd")]
                Engine::Zstd(compressor) => {
                    if compressor.context_mut().sizeof() > KEPT_ZSTD_CONTEXT {
                        return;
                    }
                }
                #[cfg(feature = "zstd")]
                Engine::Unzstd(context) => {
                    if context.sizeof() > KEPT_ZSTD_CONTEXT {
                        return;
                    }
                }
            }
            let mut list = self.list();
            if list.iter().filter(|(f, _)| *f == format).count() < KEPT_COMPRESSORS {
                list.push((format, engine));
            } else {
                drop(list);
            }
        }

        #[cfg(test)]
        pub(super) fn count(&self, format: Format) -> usize {
            self.list().iter().filter(|(f, _)| *f == format).count()
        }
    }

    /// Appends `plain` deflated to `out`, with a kept compressor (or a new one) that is
    /// kept afterwards.
    pub(super) fn deflate(format: Format, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        #[cfg_attr(
            not(feature = "zstd"),
            expect(
                irrefutable_let_patterns,
                reason = "an engine is only deflate without zstd"
            )
        )]
        let Engine::Deflate(mut compress) = KEPT.take(format)? else {
            unreachable!("deflate formats hold deflate compressors")
        };
        let result = run(&mut compress, plain, out);
        KEPT.give_back(format, Engine::Deflate(compress));
        result
    }

    fn run(compress: &mut Compress, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(256));
            }
            // `compress_vec` writes into the spare capacity only; `total_in` counts from
            // the last reset.
            let done = usize::try_from(compress.total_in()).unwrap_or(usize::MAX);
            let status = compress
                .compress_vec(&plain[done.min(plain.len())..], out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                return Ok(());
            }
        }
    }

    /// Appends `plain` as a zstd frame to `out`, with a kept context (or a new one).
    #[cfg(feature = "zstd")]
    pub(super) fn zstd(plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let Engine::Zstd(mut compressor) = KEPT.take(Format::Zstd)? else {
            unreachable!("the zstd format holds zstd contexts")
        };
        let start = out.len();
        out.resize(start + zstd::zstd_safe::compress_bound(plain.len()), 0);
        let result = compressor.compress_to_buffer(plain, &mut out[start..]);
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        KEPT.give_back(Format::Zstd, Engine::Zstd(compressor));
        result.map(drop)
    }

    /// Decompresses the zstd frames of `body` into `out`, at most `limit` bytes, with a
    /// kept context (or a new one). The streaming decoder allocates by what it produces,
    /// whatever size the frame header claims.
    #[cfg(feature = "zstd")]
    pub(super) fn unzstd(body: &[u8], limit: u64, out: &mut Vec<u8>) -> std::io::Result<usize> {
        use std::io::Read;
        let Engine::Unzstd(mut context) = KEPT.take(Format::Unzstd)? else {
            unreachable!("the zstd decoding format holds zstd decoding contexts")
        };
        let read = zstd::stream::read::Decoder::with_context(body, &mut context)
            .take(limit)
            .read_to_end(out);
        KEPT.give_back(Format::Unzstd, Engine::Unzstd(context));
        read
    }
}

/// Decodes a message body (without its prefix).
///
/// # Errors
///
/// `INTERNAL` when the bytes are not a valid encoding of `M`.
pub(crate) fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(|e| {
        Status::internal(format!("failed to decode {}: {e}", short_type_name::<M>())).with_source(e)
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Received chunks shorter than this are copied together instead of kept as they are: a
/// few bytes sliced out of a large receive buffer would keep that whole buffer alive.
const COPY_BELOW: usize = 4096;

/// Splits a byte stream into message bodies, one at a time as the receiver has room for
/// them: bytes wait here, at their wire size, until a message is wanted.
///
/// The length prefix is checked against the receive limit before any room for the body is
/// reserved, so an oversized message is refused after five bytes. A body that lies within
/// one received chunk is sliced out of it without copying; one that spans chunks is copied
/// once, when all of it is here.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    /// Received bytes not yet split into messages, in order: large chunks as they came,
    /// small ones copied together. The first one is `head` (kept apart, so that a call
    /// whose message comes in one chunk needs no queue).
    head: Bytes,
    chunks: std::collections::VecDeque<Bytes>,
    /// Small chunks copied together: the latest received bytes, after `chunks`.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    buffered: usize,
    max_len: usize,
    /// Whether the peer declared a `grpc-encoding` we support, so compressed messages are
    /// expected.
    compressed_allowed: bool,
    /// The prefix (flag byte, length) of the message being assembled, once read.
    current: Option<(u8, usize)>,
    /// Whether a gRPC-Web trailers frame (flag `0x80`) may come.
    trailers_allowed: bool,
    /// Whether small chunks are kept as they came rather than copied together.
    keep_small: bool,
}

impl FrameDecoder {
    pub(crate) fn new(max_len: usize) -> FrameDecoder {
        FrameDecoder {
            head: Bytes::new(),
            chunks: std::collections::VecDeque::new(),
            tail: BytesMut::new(),
            buffered: 0,
            max_len,
            compressed_allowed: false,
            current: None,
            trailers_allowed: false,
            keep_small: false,
        }
    }

    /// Keeps small received chunks as they came, without copying: for a call that takes
    /// one message, handed to its handler at once, so that the slice it is of a larger
    /// receive buffer is not kept alive long.
    pub(crate) fn keep_small_chunks(&mut self) {
        self.keep_small = true;
    }

    /// Largest message accepted, compressed or not.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Accepts a gRPC-Web trailers frame (a gRPC-Web response).
    pub(crate) fn allow_trailers(&mut self) {
        self.trailers_allowed = true;
    }

    /// Accepts compressed messages from now on (the peer declared their encoding).
    pub(crate) fn allow_compressed(&mut self) {
        self.compressed_allowed = true;
    }

    /// Bytes received and not yet handed out as messages (prefixes of handed-out
    /// messages excluded).
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Stores received bytes; [`next_frame`](Self::next_frame) splits them.
    pub(crate) fn feed(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.buffered += chunk.len();
        if chunk.len() < COPY_BELOW && !self.keep_small {
            self.tail.extend_from_slice(&chunk);
            return;
        }
        if !self.tail.is_empty() {
            let tail = self.tail.split().freeze();
            self.push_chunk(tail);
        }
        self.push_chunk(chunk);
    }

    fn push_chunk(&mut self, chunk: Bytes) {
        if self.head.is_empty() && self.chunks.is_empty() {
            self.head = chunk;
        } else {
            self.chunks.push_back(chunk);
        }
    }

    /// The first buffered bytes, as one chunk (empty when nothing is buffered).
    fn front(&mut self) -> &mut Bytes {
        if self.head.is_empty() {
            if let Some(next) = self.chunks.pop_front() {
                self.head = next;
            } else if !self.tail.is_empty() {
                self.head = std::mem::take(&mut self.tail).freeze();
            }
        }
        &mut self.head
    }

    /// Moves the first `dst.len()` buffered bytes into `dst`; the caller checked that
    /// there are that many.
    fn copy_out(&mut self, mut dst: &mut [u8]) {
        while !dst.is_empty() {
            let front = self.front();
            if front.is_empty() {
                unreachable!("copy_out is only asked for buffered bytes");
            }
            let n = front.len().min(dst.len());
            dst[..n].copy_from_slice(&front[..n]);
            front.advance(n);
            self.buffered -= n;
            dst = &mut dst[n..];
        }
    }

    /// The next whole message, or `None` until more bytes arrive.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` for a message over the limit; `INTERNAL` for a compressed
    /// message (no compression was negotiated) or an invalid flag byte.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, Status> {
        let (flag, len) = match self.current {
            Some(current) => current,
            None => {
                if self.buffered < PREFIX_LEN {
                    return Ok(None);
                }
                let mut prefix = [0u8; PREFIX_LEN];
                self.copy_out(&mut prefix);
                let current = self.read_prefix(&prefix)?;
                self.current = Some(current);
                current
            }
        };
        if self.buffered < len {
            return Ok(None);
        }
        self.current = None;
        let compressed = flag & 1 == 1;
        let trailers = flag & TRAILERS_FLAG != 0;
        if len == 0 {
            return Ok(Some(Frame {
                compressed,
                trailers,
                body: Bytes::new(),
            }));
        }
        let front = self.front();
        let body = if front.len() >= len {
            // Within one chunk: a slice of it, no copy.
            let body = front.split_to(len);
            self.buffered -= len;
            body
        } else {
            let mut body = BytesMut::with_capacity(len);
            while body.len() < len {
                let want = len - body.len();
                let front = self.front();
                if front.is_empty() {
                    unreachable!("a whole message's bytes are buffered");
                }
                let n = front.len().min(want);
                body.extend_from_slice(&front[..n]);
                front.advance(n);
                self.buffered -= n;
            }
            body.freeze()
        };
        Ok(Some(Frame {
            compressed,
            trailers,
            body,
        }))
    }

    /// Feeds received bytes and appends every complete message to `out`.
    ///
    /// # Errors
    ///
    /// As [`next_frame`](Self::next_frame).
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn push(&mut self, chunk: Bytes, out: &mut Vec<Frame>) -> Result<(), Status> {
        self.feed(chunk);
        while let Some(frame) = self.next_frame()? {
            out.push(frame);
        }
        Ok(())
    }

    fn read_prefix(&self, prefix: &[u8]) -> Result<(u8, usize), Status> {
        let flag = prefix[0];
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        match flag {
            0 => {}
            TRAILERS_FLAG if self.trailers_allowed => {}
            1 if self.compressed_allowed => {}
            1 => {
                return Err(Status::internal(
                    "received a compressed message, but the peer sent no grpc-encoding",
                ));
            }
            other => {
                return Err(Status::internal(format!(
                    "received a message with invalid compressed flag {other}"
                )));
            }
        }
        if len > self.max_len {
            return Err(Status::resource_exhausted(format!(
                "received message of {len} bytes is larger than the limit of {} bytes",
                self.max_len
            )));
        }
        Ok((flag, len))
    }

    /// Whether a message was cut off mid-way (bytes received but not a whole message).
    pub(crate) fn has_partial(&self) -> bool {
        self.current.is_some() || self.buffered > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_messages_across_any_chunking() {
        let bodies: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 7]).collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        for chunk_len in [1, 2, 3, 5, 7, 64, wire.len()] {
            let mut dec = FrameDecoder::new(1024);
            let mut out = Vec::new();
            for chunk in wire.chunks(chunk_len) {
                dec.push(Bytes::copy_from_slice(chunk), &mut out).unwrap();
            }
            assert!(!dec.has_partial());
            let got: Vec<Vec<u8>> = out.iter().map(|f| f.body.to_vec()).collect();
            assert_eq!(got, bodies, "chunk length {chunk_len}");
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let mut dec = FrameDecoder::new(10);
        let mut out = Vec::new();
        let prefix = [0, 0xff, 0xff, 0xff, 0xff];
        let err = dec
            .push(Bytes::copy_from_slice(&prefix), &mut out)
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(dec.buffered(), 0, "nothing of the body is held");
    }

    #[test]
    fn compressed_flag_without_encoding_is_internal() {
        let mut dec = FrameDecoder::new(10);
        let err = dec
            .push(Bytes::from_static(&[1, 0, 0, 0, 0]), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        let err = FrameDecoder::new(10)
            .push(Bytes::from_static(&[7, 0, 0, 0, 0]), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }

    #[test]
    fn truncated_message_is_reported_as_partial() {
        let mut dec = FrameDecoder::new(10);
        let mut out = Vec::new();
        dec.push(Bytes::from_static(&[0, 0, 0, 0, 3, 1]), &mut out)
            .unwrap();
        assert!(out.is_empty());
        assert!(dec.has_partial());
    }

    #[test]
    fn encode_respects_the_send_limit() {
        let msg = prost_types_like::Blob { data: vec![1; 100] };
        assert_eq!(
            encode(&msg, 10, None).unwrap_err().code(),
            Code::ResourceExhausted
        );
        let framed = encode(&msg, 1000, None).unwrap();
        let mut out = Vec::new();
        FrameDecoder::new(1000).push(framed, &mut out).unwrap();
        let back: prost_types_like::Blob = decode(out.pop().unwrap().body).unwrap();
        assert_eq!(back, msg);
    }

    /// Every encoding this build has.
    fn encodings() -> Vec<CompressionEncoding> {
        ACCEPTED_ENCODINGS
            .split(',')
            .map(|name| {
                CompressionEncoding::from_header(name.as_bytes())
                    .unwrap()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn each_encoding_round_trips_and_sets_the_flag() {
        let msg = prost_types_like::Blob {
            data: vec![7; 10_000],
        };
        for encoding in encodings() {
            let framed = encode(&msg, usize::MAX, Some(encoding)).unwrap();
            assert_eq!(framed[0], 1);
            assert!(
                framed.len() < 1000,
                "10 kB of one byte should compress well with {encoding:?}"
            );
            let mut out = Vec::new();
            let mut dec = FrameDecoder::new(1 << 20);
            assert_eq!(
                dec.push(framed.clone(), &mut out).unwrap_err().code(),
                Code::Internal,
                "compressed without a declared encoding"
            );
            let mut dec = FrameDecoder::new(1 << 20);
            dec.allow_compressed();
            dec.push(framed, &mut out).unwrap();
            let frame = out.pop().unwrap();
            assert!(frame.compressed);
            let plain = decompress(encoding, &frame.body, 1 << 20).unwrap();
            assert_eq!(decode::<prost_types_like::Blob>(plain).unwrap(), msg);
        }
    }

    #[test]
    fn one_compressor_serves_message_after_message() {
        // Large, small, empty and large again, through the kept compressors: each message
        // is its own stream (the compressor was reset between them).
        let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let messages: [&[u8]; 4] = [&large, b"small", b"", &large[..70_000]];
        for encoding in encodings() {
            for message in messages {
                let mut out = Vec::new();
                compress(encoding, message, &mut out).unwrap();
                assert_eq!(
                    &decompress(encoding, &out, 1 << 20).unwrap()[..],
                    message,
                    "{encoding:?}"
                );
            }
        }
    }

    #[test]
    fn at_most_the_budget_of_compressors_is_kept() {
        use compressors::{Format, Kept};
        let kept = Kept::new();
        let taken: Vec<_> = (0..2 * crate::limits::KEPT_COMPRESSORS)
            .map(|_| kept.take(Format::Raw).unwrap())
            .collect();
        assert_eq!(kept.count(Format::Raw), 0);
        for compress in taken {
            kept.give_back(Format::Raw, compress);
        }
        assert_eq!(kept.count(Format::Raw), crate::limits::KEPT_COMPRESSORS);
        // What is kept is used again before anything new is made.
        let again = kept.take(Format::Raw).unwrap();
        assert_eq!(kept.count(Format::Raw), crate::limits::KEPT_COMPRESSORS - 1);
        kept.give_back(Format::Raw, again);
        assert_eq!(kept.count(Format::Raw), crate::limits::KEPT_COMPRESSORS);
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_zstd_context_that_grew_past_its_bound_is_let_go() {
        use compressors::{Engine, Format, Kept};
        let kept = Kept::new();
        let frame = |size: usize| {
            let Ok(Engine::Zstd(mut compressor)) = kept.take(Format::Zstd) else {
                unreachable!("a zstd context")
            };
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            compressor.compress(&plain).unwrap();
            kept.give_back(Format::Zstd, Engine::Zstd(compressor));
        };
        frame(1024);
        assert_eq!(kept.count(Format::Zstd), 1);
        // At the default level, a megabyte's frame takes the context to about 1.3 MB.
        frame(1 << 20);
        assert_eq!(kept.count(Format::Zstd), 0);
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        // 64 MiB of zeros compress to at most about 64 KiB: a small bomb.
        let zeros = vec![0u8; 64 << 20];
        for encoding in encodings() {
            let mut bomb = Vec::new();
            compress(encoding, &zeros, &mut bomb).unwrap();
            assert!(bomb.len() < 1 << 20, "{encoding:?}");
            let err = decompress(encoding, &bomb, 4 << 20).unwrap_err();
            assert_eq!(err.code(), Code::ResourceExhausted, "{encoding:?}");
            // Exactly the limit is accepted.
            let mut exact = Vec::new();
            compress(encoding, &zeros[..4 << 20], &mut exact).unwrap();
            assert_eq!(
                decompress(encoding, &exact, 4 << 20).unwrap().len(),
                4 << 20
            );
            let err = decompress(encoding, b"not compressed at all", 4 << 20).unwrap_err();
            assert_eq!(err.code(), Code::Internal, "{encoding:?}");
            assert!(err.message().contains(encoding.as_str()), "{err}");
        }
    }

    #[test]
    fn accept_encoding_lists_are_parsed() {
        assert!(CompressionEncoding::Gzip.listed_in(b"identity, gzip"));
        assert!(CompressionEncoding::Gzip.listed_in(b"gzip"));
        assert!(!CompressionEncoding::Gzip.listed_in(b"deflate,identity"));
        assert_eq!(CompressionEncoding::from_header(b"identity"), Ok(None));
        assert_eq!(
            CompressionEncoding::from_header(b"gzip"),
            Ok(Some(CompressionEncoding::Gzip))
        );
        assert!(CompressionEncoding::from_header(b"snappy").is_err());
        #[cfg(all(feature = "deflate", feature = "zstd"))]
        {
            assert_eq!(ACCEPTED_ENCODINGS, "gzip,deflate,zstd");
            assert!(CompressionEncoding::Zstd.listed_in(b"identity,deflate, zstd"));
            assert!(!CompressionEncoding::Deflate.listed_in(b"gzip,zstd"));
        }
    }

    /// The bytes `framed` stands for, its splices put in place.
    fn wire(framed: &Framed) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from = 0;
        for (at, bytes) in &framed.splices {
            out.extend_from_slice(&framed.buf[from..*at]);
            out.extend_from_slice(bytes);
            from = *at;
        }
        out.extend_from_slice(&framed.buf[from..]);
        out
    }

    fn plain(message: &impl Message) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn long_bytes_fields_are_spliced_in_not_copied() {
        let payload = Bytes::from(vec![7u8; SPLICE_MIN]);
        let message = prost_types_like::Shared {
            name: "before".into(),
            payload: payload.clone(),
            short: Bytes::from(vec![9u8; SPLICE_MIN - 1]),
            index: 42,
        };
        let framed = encode_framed(&message, usize::MAX, None).unwrap();
        assert_eq!(framed.splices.len(), 1, "only the long field is spliced");
        let (at, spliced) = &framed.splices[0];
        assert_eq!(spliced.as_ptr(), payload.as_ptr(), "the sender's own bytes");
        assert_eq!(spliced.len(), SPLICE_MIN);
        // The prefix, the name and the field's tag and length come before it.
        assert_eq!(*at, PREFIX_LEN + 2 + "before".len() + 1 + 2);
        assert_eq!(framed.len(), PREFIX_LEN + message.encoded_len());
        assert_eq!(wire(&framed), plain(&message));
        assert_eq!(
            framed.weight(),
            framed.buf.capacity() + SPLICE_MIN,
            "what it holds, the spliced field included"
        );
        // What was not spliced did not need a buffer for all of the message.
        assert!(framed.buf.capacity() < message.encoded_len());
    }

    #[test]
    fn vec_fields_short_messages_and_compressed_ones_are_copied() {
        let vec = prost_types_like::Blob {
            data: vec![1; 2 * SPLICE_MIN],
        };
        let framed = encode_framed(&vec, usize::MAX, None).unwrap();
        assert!(framed.splices.is_empty());
        assert_eq!(&framed.buf[..], plain(&vec));
        let short = prost_types_like::Shared {
            payload: Bytes::from(vec![1; 100]),
            ..Default::default()
        };
        let framed = encode_framed(&short, usize::MAX, None).unwrap();
        assert!(framed.splices.is_empty());
        assert_eq!(&framed.buf[..], plain(&short));
        let long = prost_types_like::Shared {
            payload: Bytes::from(vec![1; 2 * SPLICE_MIN]),
            ..Default::default()
        };
        let framed = encode_framed(&long, usize::MAX, Some(CompressionEncoding::Gzip)).unwrap();
        assert!(framed.splices.is_empty());
        assert_eq!(framed.buf[0], 1, "compressed");
        // And the one-buffer form never splices.
        assert_eq!(&encode(&long, usize::MAX, None).unwrap()[..], plain(&long));
    }

    #[test]
    fn spliced_messages_decode_as_they_were_sent() {
        let message = prost_types_like::Shared {
            name: "n".into(),
            payload: Bytes::from((0..3 * SPLICE_MIN).map(|i| i as u8).collect::<Vec<_>>()),
            short: Bytes::from_static(b"s"),
            index: 7,
        };
        let framed = encode_framed(&message, usize::MAX, None).unwrap();
        let mut decoder = FrameDecoder::new(usize::MAX);
        let mut out = Vec::new();
        decoder.push(Bytes::from(wire(&framed)), &mut out).unwrap();
        assert_eq!(
            decode::<prost_types_like::Shared>(out.pop().unwrap().body).unwrap(),
            message
        );
    }

    mod prost_types_like {
        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct Blob {
            #[prost(bytes = "vec", tag = "1")]
            pub(crate) data: Vec<u8>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub(crate) struct Shared {
            #[prost(string, tag = "1")]
            pub(crate) name: String,
            #[prost(bytes = "bytes", tag = "2")]
            pub(crate) payload: bytes::Bytes,
            #[prost(bytes = "bytes", tag = "3")]
            pub(crate) short: bytes::Bytes,
            #[prost(uint32, tag = "4")]
            pub(crate) index: u32,
        }
    }
}
