//! The bytes of a call's messages as h2 sends them: [`Outgoing`], a chunk's own buffer
//! with the long `Bytes` fields of its messages spliced in where they belong, written
//! with vectored I/O instead of being copied into the encoding.

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::chunks::ChunkPool;
use crate::transport::lent::{Lent, Loan};

/// HTTP/2's smallest `SETTINGS_MAX_FRAME_SIZE` (RFC 9113, section 6.5.2): a frame of this
/// size is full for a peer that allows no more, and every peer allows this much. A sender
/// with a large message queued behind the one it is sending hands h2 the current one in
/// multiples of this and joins the tail to the start of the next (HTTP/2 frames carry no
/// message boundaries), so that large messages go out in full frames, not four and a
/// 5-byte one per 64 KiB message.
pub(crate) const MIN_MAX_FRAME: usize = 16_384;

/// How many of `len` pending bytes to hand h2 now, with a message of `behind` bytes queued
/// after them: whole frames' worth when that message fills frames of its own, else all.
/// Zero (for `len` > 0): join that message to them first.
pub(crate) fn frame_aligned(len: usize, behind: Option<usize>) -> usize {
    if behind.is_some_and(|next| next >= MIN_MAX_FRAME) {
        len / MIN_MAX_FRAME * MIN_MAX_FRAME
    } else {
        len
    }
}

/// Bytes on their way to h2, in one or more parts, none of them copied to be joined.
///
/// A message whose `Bytes` field was left out of its encoding (see
/// [`codec::Framed`](crate::codec::Framed)) goes out as the encoding's parts with the
/// field's bytes between them; h2 takes any [`Buf`], splits it into DATA frames and writes
/// each frame's parts with one vectored write. Other `Outgoing`s may be appended (see
/// [`Outgoing::append`]), so that h2 frames them together.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outgoing {
    /// The first part not yet sent; empty only when nothing is left.
    first: Bytes,
    /// The parts after it, none empty.
    rest: VecDeque<Bytes>,
    /// What is left of these parts (`first` and `rest`).
    own: usize,
    /// What is left in all, with `appended`.
    len: usize,
    /// What these parts come from, when spliced parts are among them: held until they are
    /// sent.
    owner: Option<Arc<Owner>>,
    /// These parts' entry among the connection's [`Lent`] buffers, while they are with h2.
    loan: Option<Arc<Loan>>,
    /// What was appended after these parts, each with what it holds, in order: none empty
    /// and none with an `appended` of its own; empty when these parts are all sent.
    appended: VecDeque<Outgoing>,
}

/// The buffer a spliced [`Outgoing`] was framed into and the fields spliced into it.
///
/// Holding the buffer keeps it from being taken back (and what it and the fields hold
/// from being released from the connection's quota, see
/// [`Spent`](super::chunks::Spent)) while h2 still has a spliced part to write. The
/// fields are the sender's values: the last reference to one may be this, and dropping it
/// may run the sender's code (`Bytes::from_owner`), so they go back to the sender's side
/// through [`ChunkPool::release`] instead of being dropped on the poller.
struct Owner {
    _buf: Bytes,
    fields: Vec<Bytes>,
    pool: ChunkPool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.pool.release(std::mem::take(&mut self.fields));
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner")
            .field("fields", &self.fields.len())
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    /// `buf` with `splices` (each after that many bytes of `buf`, in order) put in place;
    /// the spliced fields go back to `pool` once all is sent.
    pub(crate) fn spliced(buf: Bytes, splices: Vec<(usize, Bytes)>, pool: &ChunkPool) -> Outgoing {
        if splices.is_empty() {
            return Outgoing::from(buf);
        }
        let mut out = Outgoing::default();
        let mut fields = Vec::with_capacity(splices.len());
        let mut from = 0;
        for (at, part) in splices {
            out.push(buf.slice(from..at));
            fields.push(part.clone());
            out.push(part);
            from = at;
        }
        out.push(buf.slice(from..));
        out.owner = Some(Arc::new(Owner {
            _buf: buf,
            fields,
            pool: pool.clone(),
        }));
        out
    }

    /// Lists the parts among `lent`'s while any of them is with h2 (until they are sent
    /// or this is dropped), so that the writer under h2 can hold what h2 writes of them
    /// instead of copying it, with the spliced fields' owner (whose drop hands them to the
    /// sender's side). Not listed when `lent` is full.
    pub(crate) fn lend(&mut self, lent: &Lent) {
        if self.own > 0 && self.loan.is_none() {
            let parts = std::iter::once(&self.first).chain(&self.rest);
            let owner = self
                .owner
                .clone()
                .map(|owner| owner as Arc<dyn Send + Sync>);
            self.loan = lent.lend(parts, owner).map(Arc::new);
        }
        for appended in &mut self.appended {
            appended.lend(lent);
        }
    }

    /// Appends `other`'s bytes, so that h2 frames them together with these (a DATA frame
    /// may run across the boundary). What each holds is let go once its own bytes are
    /// sent.
    pub(crate) fn append(&mut self, mut other: Outgoing) {
        if other.len == 0 {
            return;
        }
        if self.len == 0 {
            *self = other;
            return;
        }
        self.len += other.len;
        let after = std::mem::take(&mut other.appended);
        other.len = other.own;
        self.appended.push_back(other);
        self.appended.extend(after);
    }

    /// Appends a part of its own (nothing, when it is empty), before anything is appended.
    fn push(&mut self, part: Bytes) {
        debug_assert!(self.appended.is_empty());
        if part.is_empty() {
            return;
        }
        self.own += part.len();
        self.len += part.len();
        if self.first.is_empty() {
            self.first = part;
        } else {
            self.rest.push_back(part);
        }
    }

    /// Takes these parts, with what they hold, as an `Outgoing` of their own; what was
    /// appended takes their place.
    fn take_own(&mut self) -> Outgoing {
        let mut after = std::mem::take(&mut self.appended);
        let mut own = std::mem::take(self);
        let left = own.len - own.own;
        own.len = own.own;
        if let Some(mut next) = after.pop_front() {
            next.len = left;
            next.appended = after;
            *self = next;
        }
        own
    }

    /// How many bytes are left.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the first `n` bytes (all of them, when fewer are left) as their own
    /// `Outgoing`, each part with what it holds.
    pub(crate) fn split_to(&mut self, n: usize) -> Outgoing {
        if n >= self.len {
            return std::mem::take(self);
        }
        let mut head = Outgoing::default();
        while head.len < n {
            let want = n - head.len;
            if self.own <= want {
                head.append(self.take_own());
                continue;
            }
            // Within these parts: both halves hold what they come from.
            let mut cut = Outgoing {
                owner: self.owner.clone(),
                loan: self.loan.clone(),
                ..Outgoing::default()
            };
            while cut.len < want {
                let left = want - cut.len;
                if self.first.len() <= left {
                    let part = std::mem::replace(
                        &mut self.first,
                        self.rest.pop_front().unwrap_or_default(),
                    );
                    cut.push(part);
                } else {
                    cut.push(self.first.split_to(left));
                }
            }
            self.own -= want;
            self.len -= want;
            head.append(cut);
        }
        head
    }

    /// All that is left as one `Bytes`: copied when it is in more than one part.
    pub(crate) fn into_bytes(self) -> Bytes {
        if self.rest.is_empty() && self.appended.is_empty() {
            return self.first;
        }
        let mut joined = Vec::with_capacity(self.len);
        for part in self.parts() {
            joined.extend_from_slice(part);
        }
        Bytes::from(joined)
    }

    /// The parts left, in order, appended ones too.
    fn parts(&self) -> impl Iterator<Item = &Bytes> {
        let own = std::iter::once(&self.first).chain(&self.rest);
        let appended = self
            .appended
            .iter()
            .flat_map(|o| std::iter::once(&o.first).chain(&o.rest));
        own.chain(appended).filter(|part| !part.is_empty())
    }
}

impl From<Bytes> for Outgoing {
    fn from(bytes: Bytes) -> Outgoing {
        Outgoing {
            len: bytes.len(),
            own: bytes.len(),
            first: bytes,
            rest: VecDeque::new(),
            owner: None,
            loan: None,
            appended: VecDeque::new(),
        }
    }
}

impl Buf for Outgoing {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        &self.first
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(self.parts()) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt <= self.len,
            "advanced {cnt} bytes past the {} left",
            self.len
        );
        while cnt > 0 {
            let k = cnt.min(self.first.len());
            self.first.advance(k);
            self.own -= k;
            self.len -= k;
            cnt -= k;
            if self.first.is_empty() {
                self.first = self.rest.pop_front().unwrap_or_default();
            }
            if self.own == 0 {
                // These parts are sent: let go of what they hold now, not when h2 drops
                // its frame.
                drop(self.take_own());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Bytes, Outgoing) {
        let buf = Bytes::from_static(b"headtail");
        let out = Outgoing::spliced(
            buf.clone(),
            vec![
                (4, Bytes::from_static(b"-middle-")),
                (8, Bytes::from_static(b"!")),
            ],
            &ChunkPool::default(),
        );
        (buf, out)
    }

    fn collect(mut out: Outgoing) -> Vec<u8> {
        let mut v = Vec::new();
        while out.has_remaining() {
            let chunk = out.chunk().to_vec();
            out.advance(chunk.len());
            v.extend_from_slice(&chunk);
        }
        v
    }

    #[test]
    fn spliced_parts_are_read_in_place_and_in_order() {
        let (_, out) = sample();
        assert_eq!(out.len(), 17);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = out.chunks_vectored(&mut slices);
        let parts: Vec<&[u8]> = slices[..n].iter().map(|s| &s[..]).collect();
        assert_eq!(parts, [&b"head"[..], b"-middle-", b"tail", b"!"]);
        // Fewer slots than parts: as many as fit.
        let mut two = [IoSlice::new(&[]); 2];
        assert_eq!(out.chunks_vectored(&mut two), 2);
        assert_eq!(collect(out), b"head-middle-tail!");
    }

    #[test]
    fn split_to_cuts_anywhere_and_keeps_the_rest() {
        for n in 0..=18 {
            let (_, mut out) = sample();
            let head = out.split_to(n);
            let whole = b"head-middle-tail!";
            let cut = n.min(whole.len());
            assert_eq!(head.len(), cut);
            assert_eq!(out.len(), whole.len() - cut);
            assert_eq!(collect(head), &whole[..cut], "split at {n}");
            assert_eq!(collect(out), &whole[cut..], "split at {n}");
        }
    }

    #[test]
    fn the_buffer_is_held_until_everything_is_sent() {
        let buf = Bytes::from(b"0123456789".to_vec());
        let mut out = Outgoing::spliced(
            buf.clone(),
            vec![(10, Bytes::from_static(b"x"))],
            &ChunkPool::default(),
        );
        let mut mine = buf;
        // Its own bytes written, the spliced byte not yet: still held.
        out.advance(10);
        assert!(!mine.is_unique());
        out.advance(1);
        assert!(mine.is_unique(), "let go once all was sent");
        mine.clear();
    }

    #[test]
    fn into_bytes_joins_only_when_it_must() {
        let one = Outgoing::from(Bytes::from_static(b"one"));
        assert_eq!(one.into_bytes(), Bytes::from_static(b"one"));
        let (_, out) = sample();
        assert_eq!(out.into_bytes(), Bytes::from_static(b"head-middle-tail!"));
    }

    /// An `Outgoing` of `text` spliced after its first byte (so that it holds its buffer
    /// until sent), and the buffer.
    fn held(text: &[u8]) -> (Bytes, Outgoing) {
        let buf = Bytes::from(text[..1].to_vec());
        let out = Outgoing::spliced(
            buf.clone(),
            vec![(1, Bytes::copy_from_slice(&text[1..]))],
            &ChunkPool::default(),
        );
        (buf, out)
    }

    #[test]
    fn appended_bytes_follow_and_each_holds_until_its_own_are_sent() {
        let (a, first) = held(b"first");
        let (b, second) = held(b"second");
        let (c, third) = held(b"third");
        let mut out = first;
        out.append(Outgoing::default());
        let mut rest = second;
        rest.append(third);
        out.append(rest);
        assert_eq!(out.len(), 16);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = out.chunks_vectored(&mut slices);
        let parts: Vec<&[u8]> = slices[..n].iter().map(|s| &s[..]).collect();
        assert_eq!(parts, [&b"f"[..], b"irst", b"s", b"econd", b"t", b"hird"]);
        // A frame may end anywhere, across a boundary too; what is split off holds only
        // what its own bytes need.
        let head = out.split_to(7);
        assert!(!a.is_unique() && !b.is_unique() && !c.is_unique());
        assert_eq!(collect(head), b"firstse");
        assert!(a.is_unique(), "let go once its bytes were sent");
        assert!(!b.is_unique(), "held until its bytes are sent");
        let mut out = out;
        out.advance(4);
        assert!(b.is_unique(), "let go once its bytes were sent");
        assert!(!c.is_unique());
        assert_eq!(collect(out), b"third");
        assert!(c.is_unique());
        // Appended to nothing: the same as the one appended.
        let mut out = Outgoing::default();
        out.append(Outgoing::from(Bytes::from_static(b"only")));
        assert_eq!(collect(out), b"only");
    }

    #[test]
    fn split_to_cuts_joined_bytes_anywhere() {
        let whole = b"firstsecondthird";
        for n in 0..=whole.len() + 1 {
            let mut out = held(b"first").1;
            out.append(held(b"second").1);
            out.append(held(b"third").1);
            let head = out.split_to(n);
            let cut = n.min(whole.len());
            assert_eq!((head.len(), out.len()), (cut, whole.len() - cut));
            assert_eq!(collect(head), &whole[..cut], "split at {n}");
            assert_eq!(collect(out.clone()), &whole[cut..], "split at {n}");
            assert_eq!(out.into_bytes(), &whole[cut..]);
        }
    }

    #[test]
    fn appended_parts_are_lent_with_their_own() {
        let lent = Lent::default();
        let one = Bytes::from(vec![1; 4096]);
        let two = Bytes::from(vec![2; 4096]);
        let mut out = Outgoing::from(one.clone());
        out.append(Outgoing::from(two.clone()));
        out.lend(&lent);
        assert!(lent.find(&one).is_some() && lent.find(&two).is_some());
        // The first one's bytes sent: only its entry ends.
        out.advance(4096);
        assert!(lent.find(&one).is_none());
        assert!(lent.find(&two).is_some());
        drop(out);
        assert!(lent.find(&two).is_none());
    }

    #[test]
    #[should_panic(expected = "past the")]
    fn advancing_past_the_end_is_a_bug() {
        let (_, mut out) = sample();
        out.advance(18);
    }
}
