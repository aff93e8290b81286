//! The failure times of one address inside a jail's window, oldest first, at
//! most `maxretry` of them: kept inline (no allocation, no pointer to follow)
//! for the usual `maxretry` of up to four, in a `VecDeque` beyond.
//!
//! Owns only that storage; it knows nothing of windows or bans.

use std::collections::VecDeque;

use crate::UnixTime;

/// Times kept inline.
const INLINE: usize = 4;

#[derive(Debug, Clone)]
pub(crate) enum Ring {
    Inline { len: u8, t: [UnixTime; INLINE] },
    Heap(VecDeque<UnixTime>),
}

impl Ring {
    /// An empty ring for at most `cap` times.
    pub(crate) fn new(cap: usize) -> Ring {
        if cap <= INLINE {
            Ring::Inline {
                len: 0,
                t: [0; INLINE],
            }
        } else {
            Ring::Heap(VecDeque::with_capacity(cap.min(8)))
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Ring::Inline { len, .. } => usize::from(*len),
            Ring::Heap(d) => d.len(),
        }
    }

    pub(crate) fn front(&self) -> Option<UnixTime> {
        match self {
            Ring::Inline { len: 0, .. } => None,
            Ring::Inline { t, .. } => Some(t[0]),
            Ring::Heap(d) => d.front().copied(),
        }
    }

    pub(crate) fn back(&self) -> Option<UnixTime> {
        match self {
            Ring::Inline { len: 0, .. } => None,
            Ring::Inline { len, t } => Some(t[usize::from(*len) - 1]),
            Ring::Heap(d) => d.back().copied(),
        }
    }

    pub(crate) fn pop_front(&mut self) {
        match self {
            Ring::Inline { len: 0, .. } => {}
            Ring::Inline { len, t } => {
                t.copy_within(1..usize::from(*len), 0);
                *len -= 1;
            }
            Ring::Heap(d) => {
                d.pop_front();
            }
        }
    }

    /// Appends `time`; the caller keeps the length within the cap given to
    /// [`new`](Self::new) (an inline ring that is full spills to the heap).
    pub(crate) fn push_back(&mut self, time: UnixTime) {
        match self {
            Ring::Inline { len, t } if usize::from(*len) < INLINE => {
                t[usize::from(*len)] = time;
                *len += 1;
            }
            Ring::Inline { t, .. } => {
                let mut d: VecDeque<UnixTime> = t.iter().copied().collect();
                d.push_back(time);
                *self = Ring::Heap(d);
            }
            Ring::Heap(d) => d.push_back(time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both forms behave as a bounded queue, the inline one as a VecDeque.
    #[test]
    fn inline_and_heap_rings_agree_with_a_deque() {
        for cap in [1, 2, 4, 5, 9] {
            let mut r = Ring::new(cap);
            assert_eq!(matches!(r, Ring::Inline { .. }), cap <= INLINE);
            let mut d = VecDeque::new();
            for i in 0..40i64 {
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
        }
        let mut r = Ring::new(2);
        r.pop_front();
        assert_eq!((r.len(), r.front(), r.back()), (0, None, None));
        // Over the inline capacity: spills, keeps order.
        for i in 0..6 {
            r.push_back(i);
        }
        assert_eq!((r.len(), r.front(), r.back()), (6, Some(0), Some(5)));
    }
}
