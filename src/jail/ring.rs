//! The failure times of one address inside a jail's window, oldest first, at
//! most `maxretry` of them, as whole seconds in a `u32` (1970 to 2106; times
//! outside are clamped). A jail picks one layout for all its addresses from
//! its `maxretry`: inline arrays of 2, 4 or 8 times (no allocation, no pointer
//! to follow), a `VecDeque` beyond.
//!
//! Owns only that storage; it knows nothing of windows or bans.

use std::collections::VecDeque;

use crate::UnixTime;

/// A failure time as stored: seconds since 1970, clamped to `u32`.
pub(crate) type Stamp = u32;

/// `time` as stored (clamped to 1970..2106).
pub(crate) fn stamp(time: UnixTime) -> Stamp {
    time.clamp(0, UnixTime::from(u32::MAX)) as Stamp
}

/// A bounded queue of failure times; the caller keeps the length within the
/// cap given to [`Times::with_cap`].
pub(crate) trait Times {
    fn with_cap(cap: usize) -> Self;
    fn len(&self) -> usize;
    fn front(&self) -> Option<Stamp>;
    fn back(&self) -> Option<Stamp>;
    fn pop_front(&mut self);
    /// Appends `time`; when full (only possible if the caller broke the cap),
    /// the oldest time is dropped first.
    fn push_back(&mut self, time: Stamp);
}

/// Up to `N` times inline: `4 * N + 4` bytes, aligned to 4.
#[derive(Debug, Clone)]
pub(crate) struct Inline<const N: usize> {
    len: u8,
    t: [Stamp; N],
}

impl<const N: usize> Times for Inline<N> {
    fn with_cap(_cap: usize) -> Self {
        Inline { len: 0, t: [0; N] }
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    fn front(&self) -> Option<Stamp> {
        (self.len > 0).then(|| self.t[0])
    }

    fn back(&self) -> Option<Stamp> {
        usize::from(self.len).checked_sub(1).map(|i| self.t[i])
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            // The whole array, a fixed size (a few moves, no `memmove`
            // call); what lands past the new length is never read.
            self.t.copy_within(1.., 0);
            self.len -= 1;
        }
    }

    fn push_back(&mut self, time: Stamp) {
        if usize::from(self.len) == N {
            self.pop_front();
        }
        self.t[usize::from(self.len)] = time;
        self.len += 1;
    }
}

impl Times for VecDeque<Stamp> {
    fn with_cap(cap: usize) -> Self {
        VecDeque::with_capacity(cap.min(8))
    }

    fn len(&self) -> usize {
        VecDeque::len(self)
    }

    fn front(&self) -> Option<Stamp> {
        VecDeque::front(self).copied()
    }

    fn back(&self) -> Option<Stamp> {
        VecDeque::back(self).copied()
    }

    fn pop_front(&mut self) {
        VecDeque::pop_front(self);
    }

    fn push_back(&mut self, time: Stamp) {
        VecDeque::push_back(self, time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout behaves as a bounded queue, like a VecDeque.
    fn agrees_with_a_deque<T: Times>(cap: usize) {
        let mut r = T::with_cap(cap);
        let mut d = VecDeque::new();
        for i in 0..40u32 {
            if i % 7 == 3 {
                r.pop_front();
                d.pop_front();
            }
            if r.len() == cap {
                r.pop_front();
                d.pop_front();
            }
            r.push_back(i);
            d.push_back(i);
            assert_eq!(
                (r.len(), r.front(), r.back()),
                (d.len(), d.front().copied(), d.back().copied()),
                "cap {cap}, step {i}"
            );
        }
        for _ in 0..cap + 1 {
            r.pop_front();
        }
        assert_eq!((r.len(), r.front(), r.back()), (0, None, None));
    }

    #[test]
    fn every_layout_is_a_bounded_queue() {
        agrees_with_a_deque::<Inline<2>>(1);
        agrees_with_a_deque::<Inline<2>>(2);
        agrees_with_a_deque::<Inline<4>>(3);
        agrees_with_a_deque::<Inline<4>>(4);
        agrees_with_a_deque::<Inline<8>>(5);
        agrees_with_a_deque::<Inline<8>>(8);
        agrees_with_a_deque::<VecDeque<Stamp>>(9);
    }

    #[test]
    fn a_full_inline_queue_drops_its_oldest() {
        let mut r = Inline::<2>::with_cap(2);
        for t in [1, 2, 3] {
            r.push_back(t);
        }
        assert_eq!((r.len(), r.front(), r.back()), (2, Some(2), Some(3)));
    }

    #[test]
    fn stamps_clamp_to_the_u32_range() {
        assert_eq!(stamp(-5), 0);
        assert_eq!(stamp(1_700_000_000), 1_700_000_000);
        assert_eq!(stamp(i64::MAX), u32::MAX);
    }

    /// The layouts a million tracked addresses pay for.
    #[test]
    fn inline_layouts_are_small() {
        assert_eq!(std::mem::size_of::<Inline<2>>(), 12);
        assert_eq!(std::mem::size_of::<Inline<4>>(), 20);
        assert_eq!(std::mem::align_of::<Inline<4>>(), 4);
    }
}
