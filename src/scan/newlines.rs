//! Where a chunk's lines end: the newlines of each 64-byte block found at
//! once as a bit mask, then read off bit by bit. Log lines are short (70
//! bytes on the Django benchmark), and a search per line spent more on
//! starting the search than on looking.
//!
//! Also counts a chunk's lines in bulk, and those over [`MAX_LINE`] by
//! jumps of that length (the sparse walk passes most lines unseen).
//!
//! Owns only finding and counting `\n` bytes; it must report every one, in
//! order, and nothing else.

use super::MAX_LINE;

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

/// How many lines of `data` (the last one may lack its `\n`) are over
/// [`MAX_LINE`]: a search back from [`MAX_LINE`] bytes ahead per step, not a
/// search per line (lines are counted where the walk passes them).
pub(super) fn count_long(data: &[u8]) -> u64 {
    let (mut long, mut start) = (0u64, 0usize);
    while start < data.len() {
        let window = &data[start..data.len().min(start + MAX_LINE + 1)];
        match memchr::memrchr(b'\n', window) {
            // Every line starting up to that newline ends by it: none is long.
            Some(j) => start += j + 1,
            None => {
                long += u64::from(window.len() > MAX_LINE);
                start = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i + 1);
            }
        }
    }
    long
}

/// Lines in `rest` (the last one may lack its `\n`).
pub(super) fn count_lines(rest: &[u8]) -> u64 {
    let partial = !rest.is_empty() && rest.last() != Some(&b'\n');
    memchr::memchr_iter(b'\n', rest).count() as u64 + u64::from(partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The long-line count jumps [`MAX_LINE`] bytes at a time and the
    /// lines are counted in bulk: both find what a line-by-line count finds,
    /// at the length limit and at the chunk's end, with or without a final
    /// newline.
    #[test]
    fn lines_and_long_lines_are_counted_as_line_by_line() {
        let lens = [0, 1, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 3 * MAX_LINE];
        let mut cases = 0;
        for &a in &lens {
            for &b in &lens {
                for &c in &lens {
                    for end in [&b"\n"[..], b""] {
                        let data = [
                            &vec![b'x'; a][..],
                            b"\n",
                            &vec![b'y'; b],
                            b"\n",
                            &vec![b'z'; c],
                            end,
                        ]
                        .concat();
                        let mut lines: Vec<&[u8]> = data.split(|&x| x == b'\n').collect();
                        if data.last() == Some(&b'\n') {
                            lines.pop();
                        }
                        let long = lines.iter().filter(|l| l.len() > MAX_LINE).count() as u64;
                        assert_eq!(count_long(&data), long, "{a} {b} {c} {end:?}");
                        assert_eq!(
                            count_lines(&data),
                            lines.len() as u64,
                            "{a} {b} {c} {end:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 432);
        assert_eq!((count_long(b""), count_lines(b"")), (0, 0));
    }

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
