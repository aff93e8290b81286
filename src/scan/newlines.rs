//! Where a chunk's lines end: the newlines of each 64-byte block found at
//! once as a bit mask, then read off bit by bit. Log lines are short (70
//! bytes on the Django benchmark), and a search per line spent more on
//! starting the search than on looking.
//!
//! Owns only finding `\n` bytes; it must report every one, in order, and
//! nothing else.

/// The offsets of the `\n` bytes of `data`, in order.
pub struct Newlines<'a> {
    data: &'a [u8],
    /// Start of the current block.
    block: usize,
    /// Newlines of the current block not yet reported (bit `i`: byte `block + i`).
    mask: u64,
}

impl<'a> Newlines<'a> {
    pub fn new(data: &'a [u8]) -> Newlines<'a> {
        Newlines {
            data,
            block: 0,
            mask: block_mask(data, 0),
        }
    }
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.block += 64;
            if self.block >= self.data.len() {
                return None;
            }
            self.mask = block_mask(self.data, self.block);
        }
        let i = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block + i)
    }
}

/// Bit `i` set where `data[at + i]` is `\n`, for the (up to) 64 bytes at `at`.
#[inline]
fn block_mask(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline: every processor this
        // target runs on has it.
        Some(block) => unsafe { mask64(block) },
        #[cfg(not(target_arch = "x86_64"))]
        Some(block) => mask64_words(block),
        None => data
            .get(at..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .fold(0, |m, (i, &b)| m | u64::from(b == b'\n') << i),
    }
}

/// The newline mask of 64 bytes: four 16-byte compares (SSE2 is part of
/// every x86-64 processor).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn mask64(block: &[u8]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    let nl = _mm_set1_epi8(b'\n' as i8);
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        i64::from_le_bytes(b)
    };
    let mut m = 0u64;
    for (k, c) in block.chunks_exact(16).enumerate() {
        let v = _mm_set_epi64x(word(&c[8..]), word(&c[..8]));
        let bits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32 & 0xffff;
        m |= u64::from(bits) << (16 * k);
    }
    m
}

/// The newline mask of 64 bytes, eight at a time (exact: no carry crosses
/// a byte, as the high bit is handled apart). For targets without SSE2.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn mask64_words(block: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut m = 0u64;
    for (k, c) in block.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let x = u64::from_le_bytes(b) ^ 0x0a0a_0a0a_0a0a_0a0a;
        // High bit of each byte set where that byte of x is zero.
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        for i in 0..8 {
            m |= ((zero >> (8 * i + 7)) & 1) << (8 * k + i);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_newline_in_order() {
        let mut data = Vec::new();
        for len in [0usize, 1, 62, 63, 64, 65, 127, 128, 129, 3, 200] {
            data.extend(std::iter::repeat_n(b'x', len));
            data.push(b'\n');
        }
        data.extend_from_slice(b"tail without newline");
        for start in 0..70 {
            let slice = &data[start..];
            let want: Vec<usize> = memchr::memchr_iter(b'\n', slice).collect();
            assert_eq!(
                Newlines::new(slice).collect::<Vec<_>>(),
                want,
                "from {start}"
            );
        }
        assert_eq!(Newlines::new(b"").count(), 0);
        for block in data.windows(64).step_by(7) {
            assert_eq!(mask64_words(block), block_mask(block, 0), "{block:?}");
        }
        let odd: Vec<u8> = (0..=255u8).cycle().take(64 * 5).collect();
        for block in odd.chunks_exact(64) {
            assert_eq!(mask64_words(block), block_mask(block, 0), "{block:?}");
        }
        assert_eq!(Newlines::new(&[b'\n'; 130]).count(), 130);
    }
}
