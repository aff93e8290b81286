//! A lazy DFA searched forward with a cache per thread, for the anchored
//! searches of `split` and `head` that only want a match's end and
//! pattern. A `meta::Regex` keeps its caches in a pool that every thread
//! but the first to use it reaches by its slow path, once per search; here
//! each thread keeps its own caches, dropped with the last copy of their
//! DFA (looked for when a thread meets a DFA it has no cache for).
//!
//! A line that keeps making new states (hostile text) makes the search
//! give up once the cache has been cleared three times, and its caller
//! searches another way; the next search starts with a fresh cache.
//!
//! Owns only the automaton, its caches and the search for the end of one
//! pattern's match (`pattern_end`); which searches run on it is its
//! callers'.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::{HalfMatch, Input, MatchKind};
use regex_syntax::hir::Hir;

use super::REGEX_SIZE_LIMIT;

/// Cache clears a search may cause before it may give up.
const CLEARS: usize = 3;

/// A leftmost-first lazy DFA over one or several patterns.
#[derive(Debug, Clone)]
pub(super) struct LazyDfa {
    dfa: Arc<DFA>,
}

thread_local! {
    /// The thread's caches, each beside its DFA (while that lives).
    static CACHES: RefCell<Vec<(Weak<DFA>, Cache)>> = const { RefCell::new(Vec::new()) };
}

impl LazyDfa {
    /// `None` when the patterns do not compile within the filters' size
    /// limit.
    pub(super) fn new(hirs: &[&Hir]) -> Option<LazyDfa> {
        Self::build(hirs, false)
    }

    fn build(hirs: &[&Hir], each: bool) -> Option<LazyDfa> {
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
            )
            .build_many_from_hir(hirs)
            .ok()?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .starts_for_each_pattern(each)
                    .cache_capacity(2 << 20)
                    // A line that keeps making new states (a hostile one:
                    // few bytes per state once the cache has been cleared
                    // this often) makes the search give up, and the caller
                    // takes its other way, as `meta::Regex` does.
                    .minimum_cache_clear_count(Some(CLEARS))
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa)
            .ok()?;
        Some(LazyDfa { dfa: Arc::new(dfa) })
    }

    /// [`new`](Self::new), also searchable for one pattern alone
    /// (`Anchored::Pattern`).
    pub(super) fn per_pattern(hirs: &[&Hir]) -> Option<LazyDfa> {
        Self::build(hirs, true)
    }

    /// The end and pattern of the leftmost-first match in `input` (whose
    /// start the caller anchors). `Err`: the DFA could not say (the caller
    /// searches another way).
    pub(super) fn search(&self, input: &Input<'_>) -> Result<Option<HalfMatch>, ()> {
        self.with_cache(|dfa, cache| dfa.try_search_fwd(cache, input).map_err(|_| ()))
    }

    /// Runs `f` with the DFA and this thread's cache for it: several
    /// searches for the price of one lookup.
    pub(super) fn with_cache<T>(
        &self,
        f: impl FnOnce(&DFA, &mut Cache) -> Result<T, ()>,
    ) -> Result<T, ()> {
        CACHES.with(|caches| {
            let mut caches = caches.borrow_mut();
            let at = match caches
                .iter()
                .position(|(d, _)| std::ptr::eq(d.as_ptr(), Arc::as_ptr(&self.dfa)))
            {
                Some(at) => at,
                None => {
                    caches.retain(|(d, _)| d.strong_count() > 0);
                    caches.push((Arc::downgrade(&self.dfa), self.dfa.create_cache()));
                    caches.len() - 1
                }
            };
            let (_, cache) = caches.get_mut(at).ok_or(())?;
            // After a search that gave up, the next line starts afresh
            // (an exhausted cache would give up on every line after it).
            if cache.clear_count() >= CLEARS {
                cache.reset(&self.dfa);
            }
            f(&self.dfa, cache)
        })
    }
}

/// The end of the leftmost-first match in `input`, which the caller
/// anchors to one pattern (`Anchored::Pattern`): the same answer as
/// `try_search_fwd`'s, without asking each match state which pattern it
/// holds (a read of the state's own record, a tenth of a chain's time when
/// the DFA has many patterns). The DFAs here are built without UTF-8 mode,
/// so no empty match is moved off the middle of a code point, as the
/// crate's search would do in that mode. `Err`: the DFA gave up.
pub(super) fn pattern_end(
    dfa: &DFA,
    cache: &mut Cache,
    input: &Input<'_>,
) -> Result<Option<usize>, ()> {
    let text = input.haystack();
    let (start, end) = (input.start(), input.end());
    if start > end {
        return Ok(None);
    }
    let mut sid = dfa.start_state_forward(cache, input).map_err(|_| ())?;
    let mut found = None;
    cache.search_start(start);
    for at in start..end {
        let byte = *text.get(at).ok_or(())?;
        // A state not yet computed, or a tagged one: the slow way.
        let fast = (!sid.is_tagged())
            .then(|| dfa.next_state_untagged(cache, sid, byte))
            .filter(|next| !next.is_unknown());
        sid = match fast {
            Some(next) => next,
            None => {
                cache.search_update(at);
                dfa.next_state(cache, sid, byte).map_err(|_| ())?
            }
        };
        if sid.is_tagged() {
            // Matches show one byte late: this one ends at `at`.
            if sid.is_match() {
                found = Some(at);
            } else if sid.is_dead() {
                cache.search_finish(at);
                return Ok(found);
            } else if sid.is_quit() {
                cache.search_finish(at);
                return Err(());
            }
        }
    }
    sid = match text.get(end) {
        Some(&byte) => dfa.next_state(cache, sid, byte),
        None => dfa.next_eoi_state(cache, sid),
    }
    .map_err(|_| ())?;
    cache.search_finish(end);
    if sid.is_quit() {
        return Err(());
    }
    Ok(if sid.is_match() { Some(end) } else { found })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::{Anchored, PatternID};

    fn hir(p: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(p)
            .unwrap()
    }

    #[test]
    fn the_end_and_pattern_are_the_leftmost_first_ones() {
        let (a, b) = (hir(r"^a+b?"), hir(r"^a*c"));
        let dfa = LazyDfa::new(&[&a, &b]).unwrap();
        let end = |t: &str| {
            dfa.search(&Input::new(t).anchored(Anchored::Yes))
                .unwrap()
                .map(|m| (m.pattern().as_usize(), m.offset()))
        };
        assert_eq!(end("aab"), Some((0, 3)));
        assert_eq!(end("aac"), Some((0, 2)));
        assert_eq!(end("c"), Some((1, 1)));
        assert_eq!(end("x"), None);
        let other = LazyDfa::new(&[&hir(r"^x")]).unwrap();
        assert!(other.search(&Input::new("x")).unwrap().is_some());
    }

    #[test]
    fn a_line_that_keeps_making_states_gives_up_instead_of_spinning() {
        // The 20th byte from the end decides: 2^20 states, a few per byte.
        let dfa = LazyDfa::new(&[&hir(r"^(?:a|b)*a(?:a|b){19}x")]).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let text: Vec<u8> = (0..200_000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng & 1 == 0 {
                    b'a'
                } else {
                    b'b'
                }
            })
            .collect();
        let input = Input::new(&text).anchored(Anchored::Yes);
        assert_eq!(dfa.search(&input), Err(()));
        // A usual line still gets its answer from the same DFA.
        let mut usual = vec![b'a'; 20];
        usual.push(b'x');
        let found = dfa.search(&Input::new(&usual).anchored(Anchored::Yes));
        assert_eq!(found.map(|m| m.map(|m| m.offset())), Ok(Some(21)));
    }

    #[test]
    fn a_patterns_end_is_the_one_the_crates_search_finds() {
        let patterns = [
            r"a+b?",
            r"a*?c",
            r"\S+ from ",
            r"(?:\s|$)",
            r"\bx\b",
            r"(?:port \d+|on \S+)?\s*$",
            r"[^:]+",
            r"",
        ];
        let hirs: Vec<Hir> = patterns.iter().map(|p| hir(p)).collect();
        let dfa = LazyDfa::per_pattern(&hirs.iter().collect::<Vec<_>>()).unwrap();
        let texts = [
            "",
            "a",
            "aab",
            "aac",
            "c",
            "x",
            " x y",
            "ab x",
            "bob from ",
            "a:b from c",
            "port 22 ",
            "on eth0",
            "port x",
            "  ",
            "x\n",
            "aaaab from port 1",
        ];
        let mut answered = 0;
        dfa.with_cache(|d, cache| {
            for (p, text) in (0..patterns.len()).flat_map(|p| texts.iter().map(move |t| (p, t))) {
                let pid = PatternID::new(p).unwrap();
                for from in 0..=text.len() {
                    for to in from..=text.len() {
                        let input = Input::new(text)
                            .range(from..to)
                            .anchored(Anchored::Pattern(pid));
                        let want = d.try_search_fwd(cache, &input).unwrap();
                        let got = pattern_end(d, cache, &input).unwrap();
                        assert_eq!(got, want.map(|m| m.offset()), "{p} {text:?} {from}..{to}");
                        answered += usize::from(got.is_some());
                    }
                }
            }
            Ok(())
        })
        .unwrap();
        assert!(answered > 300, "{answered}");
    }

    #[test]
    fn a_dropped_dfa_leaves_no_cache_behind() {
        let count = || CACHES.with(|c| c.borrow().len());
        let keep = LazyDfa::new(&[&hir("^k")]).unwrap();
        keep.search(&Input::new("k")).unwrap();
        let base = count();
        for _ in 0..10 {
            let dfa = LazyDfa::new(&[&hir("^d")]).unwrap();
            assert!(dfa.search(&Input::new("d")).unwrap().is_some());
        }
        // Each new one swept the dead ones before it.
        assert_eq!(count(), base + 1);
        assert!(keep.search(&Input::new("k")).unwrap().is_some());
        assert_eq!(count(), base + 1);
    }
}
