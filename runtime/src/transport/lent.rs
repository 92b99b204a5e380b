//! Buffers lent to h2, findable by address: what lets the writer under h2
//! ([`Gathered`](super::gather::Gathered)) keep a frame's bytes without copying them.
//!
//! h2 writes a DATA frame as two slices, its 9-byte header and the frame's bytes, the
//! latter borrowed from the buffer it was given to send. To gather frames into fewer,
//! larger writes, the writer must keep their bytes past the call that handed them over;
//! a slice that lies in a listed buffer it keeps as a [`Held`]: a reference to the same
//! bytes, with what the buffer came with (for a call's chunk, the owner of the fields
//! spliced into it, so that they go back to the sender's side as when h2 lets go of
//! them), instead of a copy.

use std::sync::Arc;

use bytes::{Buf, Bytes};

use crate::sync::Mutex;

/// How many parts a [`Lent`] lists at most: past that, what h2 writes is copied. Bounds
/// the time a look-up takes.
const MAX_LENT_PARTS: usize = 64;

/// What a lent part comes with, kept as long as any of its bytes are held.
pub(crate) type Keep = Arc<dyn Send + Sync>;

/// The buffers a connection's h2 holds to send, by address.
#[derive(Clone, Default)]
pub(crate) struct Lent(Arc<Mutex<LentParts>>);

#[derive(Default)]
struct LentParts {
    /// The last id given to a [`Loan`].
    next: u64,
    /// Oldest first, each loan's parts together and in order.
    parts: Vec<LentPart>,
}

struct LentPart {
    id: u64,
    part: Bytes,
    /// Dropped after `part` (declared after it).
    keep: Option<Keep>,
}

impl Lent {
    /// Lists `parts`, with `keep`, until the returned [`Loan`] is dropped; `None` (not
    /// listed) when the list is full.
    pub(crate) fn lend<'a>(
        &self,
        parts: impl Iterator<Item = &'a Bytes> + Clone,
        keep: Option<Keep>,
    ) -> Option<Loan> {
        let mut lent = self.0.lock();
        if lent.parts.len() + parts.clone().count() > MAX_LENT_PARTS {
            return None;
        }
        lent.next += 1;
        let id = lent.next;
        for part in parts {
            lent.parts.push(LentPart {
                id,
                part: part.clone(),
                keep: keep.clone(),
            });
        }
        Some(Loan {
            lent: self.clone(),
            id,
        })
    }

    /// The listed bytes `slice` is, as their own reference, or `None` when it does not lie
    /// within one listed part.
    pub(crate) fn find(&self, slice: &[u8]) -> Option<Held> {
        let start = slice.as_ptr() as usize;
        let end = start + slice.len();
        let lent = self.0.lock();
        lent.parts.iter().find_map(|lent| {
            let from = lent.part.as_ptr() as usize;
            (from <= start && end <= from + lent.part.len()).then(|| Held {
                bytes: lent.part.slice(start - from..end - from),
                _keep: lent.keep.clone(),
            })
        })
    }

    /// How many parts are listed.
    #[cfg(test)]
    pub(crate) fn listed(&self) -> usize {
        self.0.lock().parts.len()
    }
}

/// Parts listed among a [`Lent`]'s; dropping it takes them off the list.
pub(crate) struct Loan {
    lent: Lent,
    id: u64,
}

impl Drop for Loan {
    fn drop(&mut self) {
        let gone: Vec<LentPart> = {
            let mut lent = self.lent.0.lock();
            let parts = &mut lent.parts;
            let Some(from) = parts.iter().position(|p| p.id == self.id) else {
                return;
            };
            let to = from + parts[from..].iter().take_while(|p| p.id == self.id).count();
            parts.drain(from..to).collect()
        };
        // Outside the lock: what a part came with may have work to do when dropped.
        drop(gone);
    }
}

impl std::fmt::Debug for Loan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan").field("id", &self.id).finish()
    }
}

/// Bytes of a lent buffer a writer keeps until they are written, with what the buffer
/// came with.
pub(crate) struct Held {
    bytes: Bytes,
    /// Dropped after `bytes` (declared after it).
    _keep: Option<Keep>,
}

impl Held {
    /// The bytes not yet written.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `n` more bytes are written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.bytes.advance(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_found_only_within_one_listed_part_and_only_while_it_is_lent() {
        let lent = Lent::default();
        let a = Bytes::from(vec![1; 100]);
        let b = Bytes::from(vec![2; 100]);
        let loan = lent.lend([&a, &b].into_iter(), None).unwrap();
        let held = lent.find(&a[10..60]).unwrap();
        assert_eq!(held.bytes().as_ptr(), a[10..].as_ptr(), "the same bytes");
        assert_eq!(held.bytes().len(), 50);
        assert!(lent.find(&b[..]).is_some());
        // Not in a listed part: a copy, and a slice running past the end of its part.
        let copy = a.to_vec();
        assert!(lent.find(&copy[..]).is_none());
        let whole = a.slice(..);
        assert!(lent.find(&whole[..]).is_some());
        // Across two parts of one buffer: not within one part.
        let c = Bytes::from(vec![4; 200]);
        let halves = [c.slice(..100), c.slice(100..)];
        let split = lent.lend(halves.iter(), None).unwrap();
        assert!(lent.find(&c[90..100]).is_some());
        assert!(lent.find(&c[90..110]).is_none());
        drop(split);
        drop(whole);
        let mut other = Bytes::from(vec![3; 10]);
        assert!(lent.find(&other[..]).is_none());
        drop(loan);
        assert_eq!(lent.listed(), 0);
        assert!(lent.find(&a[..]).is_none());
        // What was found is still held after the loan is over.
        assert!(!a.is_unique());
        drop(held);
        assert!(a.is_unique());
        other.clear();
    }

    #[test]
    fn a_full_list_lends_nothing_and_loans_leave_in_any_order() {
        let lent = Lent::default();
        let parts: Vec<Bytes> = (0..MAX_LENT_PARTS)
            .map(|i| Bytes::from(vec![i as u8; 8]))
            .collect();
        let first = lent.lend(parts[..2].iter(), None).unwrap();
        let rest = lent.lend(parts[2..].iter(), None).unwrap();
        let extra = Bytes::from(vec![0; 8]);
        assert!(lent.lend(std::iter::once(&extra), None).is_none());
        drop(first);
        assert_eq!(lent.listed(), MAX_LENT_PARTS - 2);
        assert!(lent.find(&parts[5][..]).is_some());
        assert!(lent.find(&parts[0][..]).is_none());
        let again = lent.lend(std::iter::once(&extra), None).unwrap();
        drop(rest);
        assert_eq!(lent.listed(), 1);
        drop(again);
        assert_eq!(lent.listed(), 0);
    }
}
