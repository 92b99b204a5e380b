//! HPACK's Huffman code (RFC 7541, section 5.2 and Appendix B), decoded four bits at a
//! time: a table, built once from the code, gives for each state of the decoder (an
//! inner node of the code's tree) and each nibble the next state and the symbol completed
//! on the way, if any. No code is shorter than five bits, so a nibble completes at most
//! one symbol.

use std::sync::OnceLock;

/// Why a Huffman-coded string does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HuffmanError {
    /// The string contains the EOS symbol.
    Eos,
    /// The padding is longer than seven bits or not a prefix of EOS (all ones).
    Padding,
}

/// One step of the decoder: where a nibble leads from a state.
#[derive(Clone, Copy, Default)]
struct Step {
    /// The state after the nibble.
    next: u8,
    /// The symbol completed by the nibble, plus one (0: none; 257: EOS, an error).
    emit: u16,
}

struct Table {
    /// `steps[state * 16 + nibble]`.
    steps: Vec<Step>,
    /// Whether a string may end in the state: it is reached from a symbol boundary by at
    /// most seven one bits, a prefix of EOS.
    accepting: [bool; 256],
}

/// Decodes `input`, appending the symbols to `out`.
pub(crate) fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let table = table();
    out.reserve(input.len() * 8 / 5);
    let mut state = 0usize;
    for &byte in input {
        for nibble in [byte >> 4, byte & 0xf] {
            let step = table.steps[state * 16 + usize::from(nibble)];
            match step.emit {
                0 => {}
                257 => return Err(HuffmanError::Eos),
                symbol => out.push((symbol - 1) as u8),
            }
            state = usize::from(step.next);
        }
    }
    if table.accepting[state] {
        Ok(())
    } else {
        Err(HuffmanError::Padding)
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// A node of the code's tree: children (inner nodes are `Inner(index)`) or a symbol.
#[derive(Clone, Copy)]
enum Node {
    Inner(usize),
    Leaf(u16),
}

fn build() -> Table {
    // The tree: inner nodes by index, each with its two children; the root is 0. The code
    // is complete, so every inner node ends up with both children.
    let mut children: Vec<[Option<Node>; 2]> = vec![[None, None]];
    for (symbol, &(code, len)) in CODES.iter().enumerate() {
        let mut node = 0;
        for i in (0..len).rev() {
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                children[node][bit] = Some(Node::Leaf(symbol as u16));
            } else {
                node = match children[node][bit] {
                    Some(Node::Inner(next)) => next,
                    _ => {
                        children.push([None, None]);
                        let next = children.len() - 1;
                        children[node][bit] = Some(Node::Inner(next));
                        next
                    }
                };
            }
        }
    }
    debug_assert_eq!(children.len(), 256, "257 leaves make 256 inner nodes");
    // The states a string may end in: the root, and the first seven nodes down the
    // all-ones path (EOS is thirty ones).
    let mut accepting = [false; 256];
    let mut node = 0;
    for _ in 0..8 {
        accepting[node] = true;
        match children[node][1] {
            Some(Node::Inner(next)) => node = next,
            _ => break,
        }
    }
    let mut steps = vec![Step::default(); 256 * 16];
    for (state, _) in children.iter().enumerate() {
        for nibble in 0..16u8 {
            let mut node = state;
            let mut emit = 0;
            for i in (0..4).rev() {
                let bit = usize::from((nibble >> i) & 1);
                match children[node][bit].expect("the code is complete") {
                    Node::Inner(next) => node = next,
                    Node::Leaf(symbol) => {
                        // EOS is the only symbol that needs 257; it sticks.
                        if emit != 257 {
                            emit = symbol + 1;
                        }
                        node = 0;
                    }
                }
            }
            steps[state * 16 + usize::from(nibble)] = Step {
                next: node as u8,
                emit,
            };
        }
    }
    Table { steps, accepting }
}

/// The code (RFC 7541, Appendix B): symbol `i` is `CODES[i]`, as (code, length in bits);
/// symbol 256 is EOS.
#[rustfmt::skip]
pub(super) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes with the code, padded with ones.
    fn encode(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &byte in input {
            let (code, len) = CODES[usize::from(byte)];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
        }
        out
    }

    fn decoded(input: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(input, &mut out).map(|()| out)
    }

    #[test]
    fn every_byte_and_mixed_strings_round_trip() {
        for byte in 0..=255u8 {
            for n in 1..=3 {
                let input = vec![byte; n];
                assert_eq!(decoded(&encode(&input)).unwrap(), input, "byte {byte}");
            }
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)).unwrap(), all);
        assert_eq!(decoded(&[]).unwrap(), b"");
        // A simple generator, so that many lengths and paddings are covered.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly printable, sometimes anything.
                    if x % 4 == 0 {
                        x as u8
                    } else {
                        b' ' + (x % 95) as u8
                    }
                })
                .collect();
            assert_eq!(decoded(&encode(&input)).unwrap(), input);
        }
    }

    #[test]
    fn the_rfc_examples_decode() {
        // RFC 7541, C.4.1 and C.6.1.
        assert_eq!(
            decoded(&[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff
            ])
            .unwrap(),
            b"www.example.com"
        );
        assert_eq!(decoded(&[0x64, 0x02]).unwrap(), b"302");
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): three bits of padding, which must be ones.
        assert_eq!(decoded(&[0b0001_1111]).unwrap(), b"a");
        assert_eq!(decoded(&[0b0001_1011]), Err(HuffmanError::Padding));
        // A whole byte of ones after a symbol boundary: padding of eight bits.
        assert_eq!(decoded(&[0b0001_1111, 0xff]), Err(HuffmanError::Padding));
        // EOS itself (thirty ones), then padding.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
    }
}
