//! An upper bound of the memory the `regex` crate's Thompson NFAs of a
//! pattern take (the forward one with its groups and the reverse one, each
//! held to the size limit on its own), read off the pattern's syntax tree
//! without building them.
//!
//! With it, `compile` knows that a fail2ban pattern's Unicode automaton
//! builds (its syntax is checked by the parse, its size by this bound) and
//! may leave it to be built when a line first needs it; a pattern whose
//! bound is over the limit is built at once, so the error is the regex
//! crate's own. Owns the arithmetic only: it builds and matches nothing.

use std::collections::HashMap;

use regex_syntax::hir::{Class, ClassUnicode, Hir, HirKind};
use regex_syntax::utf8::Utf8Sequences;

/// Bytes of one NFA state in the builder's accounting (its
/// `size_of::<State>()` is 32 on 64-bit targets), of one sparse
/// transition (8) and one union alternate (4), each taken twice over.
const STATE: usize = 64;
const TRANSITION: usize = 16;
const ALTERNATE: usize = 8;
/// What every NFA holds besides its pattern's states (start states, the
/// unanchored prefix, the match state, group 0), generously.
const FIXED: usize = 4096;
/// The multiplier of the class hash (FxHash's).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Per Unicode class (by its ranges): its bound, computed once per compile
/// (fail2ban's patterns repeat `\S`, `\s`, `\w` and `.` many times).
#[derive(Default)]
pub(super) struct Cache {
    /// By a hash of the ranges: the ranges and the bound.
    classes: HashMap<u64, Vec<Known>>,
}

/// A class's ranges and its bound.
type Known = (Vec<(char, char)>, usize);

impl Cache {
    /// A bound, in the builder's bytes, of the larger of the forward and the
    /// reverse NFA of `hir`, twice over (so that what this model misses
    /// cannot take a pattern over the limit unnoticed).
    pub(super) fn nfa_bytes(&mut self, hir: &Hir) -> usize {
        FIXED.saturating_add(self.walk(hir)).saturating_mul(2)
    }

    fn walk(&mut self, hir: &Hir) -> usize {
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => STATE,
            HirKind::Literal(l) => l.0.len().saturating_mul(STATE + TRANSITION),
            HirKind::Class(Class::Bytes(c)) => {
                STATE + STATE + c.ranges().len().saturating_mul(TRANSITION)
            }
            HirKind::Class(Class::Unicode(c)) => self.unicode(c),
            HirKind::Capture(c) => {
                let name = c.name.as_ref().map_or(0, |n| n.len());
                self.walk(&c.sub)
                    .saturating_add(2 * STATE + 64)
                    .saturating_add(name)
            }
            HirKind::Repetition(r) => {
                // The compiler copies the sub-pattern `max` times (bounded)
                // or `min` times plus a loop (unbounded), each with a union.
                let copies = match r.max {
                    Some(max) => max.max(1),
                    None => r.min.saturating_add(1),
                };
                let one = self.walk(&r.sub).saturating_add(2 * STATE + 2 * ALTERNATE);
                (copies as usize)
                    .saturating_mul(one)
                    .saturating_add(2 * STATE)
            }
            HirKind::Concat(subs) => subs
                .iter()
                .fold(STATE, |n, s| n.saturating_add(self.walk(s))),
            HirKind::Alternation(subs) => subs.iter().fold(2 * STATE, |n, s| {
                n.saturating_add(self.walk(s)).saturating_add(ALTERNATE)
            }),
        }
    }

    /// A Unicode class: all-ASCII, one sparse state; else its UTF-8
    /// automaton, at most a state and a transition per byte of each UTF-8
    /// sequence (forward, where suffixes are shared, or reverse, one
    /// alternate per sequence).
    fn unicode(&mut self, c: &ClassUnicode) -> usize {
        if c.is_ascii() {
            return STATE + STATE + c.ranges().len().saturating_mul(TRANSITION);
        }
        // A cheap hash (a class can have hundreds of ranges, looked up for
        // every class of every pattern), the ranges compared on a hit.
        let hash = c.iter().fold(0u64, |h, r| {
            let h = (h.rotate_left(5) ^ u64::from(u32::from(r.start()))).wrapping_mul(SEED);
            (h.rotate_left(5) ^ u64::from(u32::from(r.end()))).wrapping_mul(SEED)
        });
        let same = |key: &[(char, char)]| {
            key.len() == c.ranges().len()
                && key
                    .iter()
                    .zip(c.iter())
                    .all(|(k, r)| *k == (r.start(), r.end()))
        };
        let bucket = self.classes.entry(hash).or_default();
        if let Some((_, n)) = bucket.iter().find(|(key, _)| same(key)) {
            return *n;
        }
        let key: Vec<(char, char)> = c.iter().map(|r| (r.start(), r.end())).collect();
        let (mut bytes, mut seqs) = (0usize, 0usize);
        for &(start, end) in &key {
            for seq in Utf8Sequences::new(start, end) {
                bytes += seq.as_slice().len();
                seqs += 1;
            }
        }
        let n = (bytes + seqs + 2)
            .saturating_mul(STATE)
            .saturating_add(bytes.saturating_mul(TRANSITION))
            .saturating_add(seqs.saturating_mul(ALTERNATE));
        bucket.push((key, n));
        n
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn hir(pattern: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(pattern)
            .unwrap()
    }

    /// The regex crate's own NFA memory, forward and reverse, built with the
    /// size limit `compile` uses.
    fn actual(pattern: &str) -> usize {
        built(&hir(pattern))
    }

    /// [`actual`] of a syntax tree.
    pub(in crate::filter) fn built(h: &Hir) -> usize {
        use regex_automata::nfa::thompson;
        let fwd = thompson::Compiler::new()
            .configure(thompson::Config::new().utf8(false).shrink(false))
            .build_from_hir(h)
            .unwrap();
        let rev = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .shrink(false)
                    .reverse(true)
                    .which_captures(thompson::WhichCaptures::None),
            )
            .build_from_hir(h)
            .unwrap();
        fwd.memory_usage().max(rev.memory_usage())
    }

    /// The bound is above what the regex crate builds, for fail2ban-like
    /// patterns full of Unicode classes, and not wildly so (else every
    /// pattern would be built at once).
    #[test]
    fn the_bound_holds_the_nfas_the_regex_crate_builds() {
        let patterns = [
            r"^\S+\s+\w+ \S*(?:(?:\[\d+\])?:\s+)?(?P<content>.+)$",
            r"^[Ii](?:llegal|nvalid) user (?P<user>.*?) from (?P<host>\S+)(?: port \d+)?\s*$",
            r"(?i)^user (?:not known|unknown) \w{2,16}\s.{0,20}[\p{Greek}é]+ from \S+$",
            r"^(?:\w+ ){0,3}(?:authentication failure|error)(?: \S+){1,4}$",
            r"\b\w+\b",
            "plain text",
        ];
        let mut cache = Cache::default();
        for p in patterns {
            let (bound, actual) = (cache.nfa_bytes(&hir(p)), actual(p));
            assert!(bound >= actual, "{p}: bound {bound} < {actual}");
            assert!(bound < 40 * actual + 20_000, "{p}: bound {bound}, {actual}");
        }
    }

    /// A pattern over the size limit is over it by the bound too.
    #[test]
    fn a_pattern_too_large_is_over_the_limit() {
        let big = hir(r"^\w{300} \w{300} \w{300} \w{300} from \S+$");
        assert!(Cache::default().nfa_bytes(&big) > crate::filter::REGEX_SIZE_LIMIT);
    }
}
