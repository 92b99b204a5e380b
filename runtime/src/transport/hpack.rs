//! HPACK decoding (RFC 7541): header blocks back into name-value pairs, keeping the
//! sender's dynamic table.
//!
//! A block is a sequence of representations, each starting with a pattern of its first
//! byte's high bits:
//!
//! ```text
//!  1xxxxxxx  indexed field                  (7-bit index)
//!  01xxxxxx  literal, added to the table    (6-bit name index, 0: literal name)
//!  001xxxxx  dynamic table size update      (5-bit size; only at the start of a block)
//!  0001xxxx  literal, never indexed         (4-bit name index)
//!  0000xxxx  literal, not indexed           (4-bit name index)
//! ```
//!
//! Index 1 to 61 is the static table, 62 on the dynamic table, newest first. The table
//! holds at most the size the receiver allows (what its `SETTINGS_HEADER_TABLE_SIZE`
//! announced), each entry counting its name and value plus 32 bytes.
//!
//! Decoding costs time in proportion to the block's length whatever it holds: Huffman
//! strings are decoded with a table built once per process (a decoder that builds its
//! code table per string lets a peer buy milliseconds of the poller's time with a few
//! kilobytes of one-character strings).

use std::collections::VecDeque;
use std::fmt;

mod huffman;

use huffman::HuffmanError;

/// Why a header block does not decode. The connection cannot go on: the table may no
/// longer match the sender's (a `COMPRESSION_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer too large to be a length or an index.
    Overflow,
    /// Index 0, or past the end of both tables.
    BadIndex(usize),
    /// A table size update over the size allowed, or after a field.
    BadSizeUpdate,
    /// A Huffman-coded string with EOS or bad padding.
    Huffman,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::Overflow => f.write_str("integer too large in header block"),
            HpackError::BadIndex(index) => write!(f, "header table index {index} is not in use"),
            HpackError::BadSizeUpdate => {
                f.write_str("header table size update too large or not at the block's start")
            }
            HpackError::Huffman => f.write_str("Huffman-coded string does not decode"),
        }
    }
}

impl From<HuffmanError> for HpackError {
    fn from(_: HuffmanError) -> HpackError {
        HpackError::Huffman
    }
}

/// The largest capacity of a Huffman-decoding buffer kept from one block to the next.
const KEPT_BUFFER: usize = 1024;

/// An entry of the dynamic table: name and value in one allocation.
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    /// Its size as the table counts it (RFC 7541, section 4.1).
    fn size(&self) -> usize {
        self.bytes.len() + 32
    }
}

/// The decoding side of one HPACK context (one direction of one connection).
pub(crate) struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    /// What the entries count.
    size: usize,
    /// The table's size now (the last size update, initially `allowed`).
    max_size: usize,
    /// The largest size the sender may set.
    allowed: usize,
    /// Huffman-decoded strings of the current field.
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder whose sender may use a dynamic table of up to `allowed` bytes.
    pub(crate) fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: allowed,
            allowed,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes one whole header block, calling `field` with each name and value in order.
    ///
    /// # Errors
    ///
    /// A block that does not decode; fields before the error have been passed on.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut name_buf = std::mem::take(&mut self.name_buf);
        let mut value_buf = std::mem::take(&mut self.value_buf);
        let result = self.decode_with(block, field, &mut name_buf, &mut value_buf);
        // Kept for the next block unless a long string grew them: a large header's
        // buffers are not held for the connection's life.
        for (kept, buf) in [
            (&mut self.name_buf, name_buf),
            (&mut self.value_buf, value_buf),
        ] {
            if buf.capacity() <= KEPT_BUFFER {
                *kept = buf;
            }
        }
        result
    }

    fn decode_with(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
        name_buf: &mut Vec<u8>,
        value_buf: &mut Vec<u8>,
    ) -> Result<(), HpackError> {
        let mut fields = 0usize;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                let (name, value) = self.get(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                if fields > 0 {
                    return Err(HpackError::BadSizeUpdate);
                }
                let size = integer(&mut block, 5)?;
                if size > self.allowed {
                    return Err(HpackError::BadSizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                let indexing = first & 0x40 != 0;
                let name_index = integer(&mut block, if indexing { 6 } else { 4 })?;
                let literal_name = match name_index {
                    0 => Some(string(&mut block, name_buf)?),
                    _ => None,
                };
                let value = string(&mut block, value_buf)?.unwrap_or(value_buf);
                let name = match literal_name {
                    Some(raw) => raw.unwrap_or(name_buf),
                    None => self.get(name_index)?.0,
                };
                field(name, value);
                if indexing {
                    let entry = Entry {
                        bytes: [name, value].concat().into_boxed_slice(),
                        name_len: name.len(),
                    };
                    self.insert(entry);
                }
            }
            fields += 1;
        }
        Ok(())
    }

    /// The field at `index` of the static or dynamic table.
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex(0)),
            1..=61 => Ok(STATIC[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|entry| (entry.name(), entry.value()))
                .ok_or(HpackError::BadIndex(index)),
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some(oldest) = self.table.pop_back() else {
                break;
            };
            self.size -= oldest.size();
        }
    }

    /// Adds a field as the newest entry; one larger than the table empties it and is not
    /// kept (RFC 7541, section 4.4).
    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        self.evict(size);
        if self.size + size <= self.max_size {
            self.size += size;
            self.table.push_front(entry);
        }
    }
}

/// Reads an integer with an `n`-bit prefix (RFC 7541, section 5.1).
fn integer(block: &mut &[u8], n: u32) -> Result<usize, HpackError> {
    let (&first, rest) = block.split_first().ok_or(HpackError::Truncated)?;
    *block = rest;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    // Four continuation bytes reach 2^28, far beyond any length or index a block can
    // hold; a fifth is refused rather than risking overflow.
    for shift in (0..28).step_by(7) {
        let (&byte, rest) = block.split_first().ok_or(HpackError::Truncated)?;
        *block = rest;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HpackError::Overflow)
}

/// Reads a string (RFC 7541, section 5.2): a raw one is returned as it is in the block, a
/// Huffman-coded one is decoded into `buf` (and `None` returned).
fn string<'b>(block: &mut &'b [u8], buf: &mut Vec<u8>) -> Result<Option<&'b [u8]>, HpackError> {
    let huffman = block.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(HpackError::Truncated);
    }
    let (bytes, rest) = block.split_at(len);
    *block = rest;
    if huffman {
        buf.clear();
        huffman::decode(bytes, buf)?;
        Ok(None)
    } else {
        Ok(Some(bytes))
    }
}

/// The static table (RFC 7541, Appendix A): index `i` is `STATIC[i - 1]`.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
        let mut out = Vec::new();
        decoder
            .decode(block, |name, value| {
                out.push((name.to_vec(), value.to_vec()))
            })
            .map(|()| out)
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Decodes a sequence of blocks on one connection with ours and with loona-hpack (an
    /// independent decoder), which must agree with each other and with `expected`.
    fn check_sequence(table_size: usize, blocks: &[(&str, Fields, usize)]) {
        let mut ours = Decoder::new(table_size);
        let mut theirs = loona_hpack::Decoder::new();
        theirs.set_max_table_size(table_size);
        for (i, (block, expected, size)) in blocks.iter().enumerate() {
            let block = hex(block);
            assert_eq!(
                &theirs.decode(&block).unwrap(),
                expected,
                "block {i} (loona)"
            );
            assert_eq!(&decode(&mut ours, &block).unwrap(), expected, "block {i}");
            assert_eq!(ours.size, *size, "block {i}: table size");
        }
    }

    const AUTHORITY: (&str, &str) = (":authority", "www.example.com");

    #[test]
    fn the_rfc_request_examples_decode_with_and_without_huffman() {
        let first = fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            AUTHORITY,
        ]);
        let second = fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            AUTHORITY,
            ("cache-control", "no-cache"),
        ]);
        let third = fields(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            AUTHORITY,
            ("custom-key", "custom-value"),
        ]);
        // RFC 7541, C.3: literals.
        check_sequence(
            4096,
            &[
                (
                    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                    first.clone(),
                    57,
                ),
                ("8286 84be 5808 6e6f 2d63 6163 6865", second.clone(), 110),
                (
                    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                    third.clone(),
                    164,
                ),
            ],
        );
        // C.4: the same, Huffman-coded.
        check_sequence(
            4096,
            &[
                ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", first, 57),
                ("8286 84be 5886 a8eb 1064 9cbf", second, 110),
                (
                    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                    third,
                    164,
                ),
            ],
        );
    }

    #[test]
    fn the_rfc_response_examples_evict_from_a_small_table() {
        // RFC 7541, C.5: a 256-byte table, so each response evicts older entries.
        let location = ("location", "https://www.example.com");
        check_sequence(
            256,
            &[
                (
                    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420
                     3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77
                     7777 2e65 7861 6d70 6c65 2e63 6f6d",
                    fields(&[
                        (":status", "302"),
                        ("cache-control", "private"),
                        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                        location,
                    ]),
                    222,
                ),
                (
                    "4803 3330 37c1 c0bf",
                    fields(&[
                        (":status", "307"),
                        ("cache-control", "private"),
                        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                        location,
                    ]),
                    222,
                ),
                (
                    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
                     3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a
                     584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33
                     3630 303b 2076 6572 7369 6f6e 3d31",
                    fields(&[
                        (":status", "200"),
                        ("cache-control", "private"),
                        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                        location,
                        ("content-encoding", "gzip"),
                        (
                            "set-cookie",
                            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
                        ),
                    ]),
                    215,
                ),
            ],
        );
    }

    #[test]
    fn what_loona_encodes_decodes_the_same_over_many_blocks() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut decoder = Decoder::new(4096);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200 {
            let list: Fields = (0..next() % 12)
                .map(|_| {
                    // Names and values repeat often (so the table is used and evicts).
                    let name = format!("x-h{}", next() % 20).into_bytes();
                    let value = vec![b'a' + (next() % 26) as u8; (next() % 300) as usize];
                    (name, value)
                })
                .collect();
            let block = encoder.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
            assert_eq!(decode(&mut decoder, &block).unwrap(), list, "round {round}");
        }
    }

    #[test]
    fn table_size_updates_apply_at_the_start_of_a_block_only() {
        let mut decoder = Decoder::new(4096);
        // Adds custom-key: custom-value (54 bytes).
        let add = hex("400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65");
        decode(&mut decoder, &add).unwrap();
        assert_eq!(decoder.size, 54);
        // Size 0 then 4096 (two updates are allowed): the table is emptied, so index 62
        // is gone.
        assert_eq!(
            decode(&mut decoder, &[0x20, 0x3f, 0xe1, 0x1f, 0xbe]),
            Err(HpackError::BadIndex(62))
        );
        assert_eq!(decoder.size, 0);
        // Over what we allow.
        assert_eq!(
            decode(&mut Decoder::new(4096), &[0x3f, 0xe2, 0x1f]),
            Err(HpackError::BadSizeUpdate)
        );
        // After a field.
        assert_eq!(
            decode(&mut Decoder::new(4096), &[0x82, 0x20]),
            Err(HpackError::BadSizeUpdate)
        );
        // A table of 0 keeps nothing, and what was added is still passed on.
        let mut none = Decoder::new(0);
        let got = decode(&mut none, &add).unwrap();
        assert_eq!(got, fields(&[("custom-key", "custom-value")]));
        assert_eq!((none.size, none.table.len()), (0, 0));
    }

    #[test]
    fn buffers_grown_by_a_long_string_are_not_kept() {
        let mut decoder = Decoder::new(4096);
        // A Huffman value of 3,000 'a's (00011, five bits each), then a short one.
        let mut bits = [0, 0, 0, 1, 1].repeat(3000);
        while bits.len() % 8 != 0 {
            bits.push(1);
        }
        let huffman: Vec<u8> = bits
            .chunks(8)
            .map(|byte| byte.iter().fold(0u8, |b, bit| b << 1 | bit))
            .collect();
        // Literal without indexing, name :path (4), then the value's length: 127 in the
        // prefix (with the Huffman bit), the rest in two continuation bytes.
        let rest = huffman.len() - 127;
        let mut long = vec![0x04, 0xff, (rest % 128) as u8 | 0x80, (rest / 128) as u8];
        long.extend(huffman);
        let got = decode(&mut decoder, &long).unwrap();
        assert_eq!(got[0].1.len(), 3000);
        assert_eq!(decoder.value_buf.capacity(), 0);
        decode(&mut decoder, &[0x04, 0x81, 0x1f]).unwrap();
        assert!(decoder.value_buf.capacity() > 0);
    }

    /// The time of the fastest of three decodings of `block`.
    fn fastest(block: &[u8]) -> std::time::Duration {
        (0..3)
            .map(|_| {
                let mut decoder = Decoder::new(4096);
                let start = std::time::Instant::now();
                let mut n = 0;
                decoder.decode(block, |_, _| n += 1).unwrap();
                assert_eq!(n, block.len() / 3);
                start.elapsed()
            })
            .min()
            .unwrap()
    }

    #[test]
    fn huffman_strings_cost_about_what_raw_ones_do() {
        // 5,000 fields of one character each, in 15 KB: Huffman-coded ('a', then three
        // bits of padding) and raw. A decoder that builds its code table per string takes
        // hundreds of times longer on the first.
        let huffman = [0x01u8, 0x81, 0x1f].repeat(5000);
        let raw = [0x01u8, 0x01, b'a'].repeat(5000);
        let (huffman, raw) = (fastest(&huffman), fastest(&raw));
        assert!(
            huffman < raw * 10 + std::time::Duration::from_millis(2),
            "Huffman {huffman:?}, raw {raw:?}"
        );
    }

    #[test]
    fn broken_blocks_are_refused() {
        let cases: &[(&[u8], HpackError)] = &[
            (&[0x80], HpackError::BadIndex(0)),
            (&[0xbe], HpackError::BadIndex(62)),
            (&[0xff], HpackError::Truncated),
            (&[0xff, 0x80, 0x80, 0x80, 0x80, 0x01], HpackError::Overflow),
            // Literal, new name, name length 5 but 2 bytes.
            (&[0x40, 0x05, b'a', b'b'], HpackError::Truncated),
            // Literal with a name index past the tables.
            (&[0x0f, 0x30, 0x00], HpackError::BadIndex(63)),
            // A value missing.
            (&[0x04], HpackError::Truncated),
            // A Huffman value of eight one bits (padding too long).
            (&[0x04, 0x81, 0xff], HpackError::Huffman),
        ];
        for (block, error) in cases {
            assert_eq!(
                decode(&mut Decoder::new(4096), block),
                Err(*error),
                "{block:02x?}"
            );
        }
    }
}
