//! The multi-literal searcher behind the candidate prefilter: Teddy (the
//! SIMD searcher of `aho_corasick::packed`) called directly, in its fat form
//! (16 buckets) past [`FAT_ABOVE`] literals, with an Aho-Corasick automaton
//! where Teddy is unavailable (no SSSE3/AVX2, too many literals).
//!
//! Owns only finding where the first of a set of literals occurs. It must
//! not choose the literals (`prefilter_literals`) nor say what a hit means
//! (`prefilter`, the scan's walk).

use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, MatchKind};

/// More literals than this go to fat Teddy: slim Teddy's 8 buckets then hold
/// three or more literals each and it stops at many places that hold none
/// (25 halves of sshd.conf's literals on an sshd log: fat 16.5 ms, slim
/// 25.5 ms per 100 MB; at 16 and fewer slim is as fast or faster).
const FAT_ABOVE: usize = 16;

/// Finds the leftmost occurrence of any of a set of literals.
#[derive(Debug, Clone)]
pub(super) struct Searcher {
    /// Teddy straight away, when it can run here: spares the automaton's
    /// dispatch around the same Teddy search on every call.
    packed: Option<packed::Searcher>,
    /// Leftmost-first: fastest for "is there any".
    ac: AhoCorasick,
}

impl Searcher {
    /// `None` when the automaton cannot be built (too large).
    pub(super) fn new(literals: &[Vec<u8>]) -> Option<Searcher> {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(literals)
            .ok()?;
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .only_teddy(true)
            .only_teddy_fat(Some(literals.len() > FAT_ABOVE))
            .builder()
            .extend(literals)
            .build();
        Some(Searcher { packed, ac })
    }

    /// Offset of the first literal occurrence at or after `from` in `hay`
    /// (`None` also when `from` is past its end).
    #[inline]
    pub(super) fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        if from > hay.len() {
            return None;
        }
        match &self.packed {
            Some(p) => p
                .find_in(hay, aho_corasick::Span::from(from..hay.len()))
                .map(|m| m.start()),
            None => {
                let input = aho_corasick::Input::new(hay).range(from..);
                self.ac.find(input).map(|m| m.start())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("lit{i:02}x").into_bytes()).collect()
    }

    /// Teddy (slim or fat) finds what the automaton finds, from every
    /// starting point, in haystacks shorter and longer than its blocks.
    #[test]
    fn finds_where_the_automaton_finds() {
        for n in [1, 3, FAT_ABOVE, FAT_ABOVE + 1, 40] {
            let lits = literals(n);
            let s = Searcher::new(&lits).unwrap();
            let mut hay = b"lit0 xlit01xx".to_vec();
            for i in (0..n).rev().step_by(3) {
                hay.extend_from_slice(&b"filler text, no match here; "[..(i * 7) % 29]);
                hay.extend_from_slice(&lits[i]);
            }
            for from in 0..=hay.len() + 1 {
                let want = (from <= hay.len())
                    .then(|| {
                        let input = aho_corasick::Input::new(&hay).range(from..);
                        s.ac.find(input).map(|m| m.start())
                    })
                    .flatten();
                assert_eq!(s.find(&hay, from), want, "{n} literals, from {from}");
            }
            assert!(s.find(&hay, 0).is_some());
        }
    }
}
