//! One lazy DFA pass over all of a fail2ban filter's failregexes, on
//! all-ASCII text, when every one is anchored at the start: it names the
//! failregex fail2ban would pick (the first that matches at all, as every
//! match starts at 0), with its first branch that can match when it is
//! split (`split::Split`), and reads a failregex that is not split with its
//! own chain of DFA searches (`chain`) or backtracker straight away. Where
//! the failregexes' literal prefixes allow, the pass runs over only those
//! that can start with the line's first byte.
//!
//! Owns the screen's construction and its two searches; it decides nothing
//! about outcomes (`matching` does), and is not used on text that is not
//! all ASCII.

use std::sync::OnceLock;

use regex_automata::nfa::thompson::backtrack::BoundedBacktracker;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, HalfMatch, Input, PatternID};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, Look};

use super::chain::Chain;
use super::lazy::LazyDfa;
use super::split::{ascii_hir, backtrack_captures, backtracker, Split};

/// One lazy DFA pass for all the failregexes of a filter, when every one
/// is anchored at the start (`^`) and has ASCII classes: all matches then
/// start at 0, so the leftmost-first winner is the first pattern that
/// matches at all, the failregex fail2ban would pick. A split failregex
/// takes part as its branches, each on its own (the pass then also says
/// its first branch that can match, see [`Split::first`]); one that is not
/// split then has its captures from its own backtracker, without the lazy
/// DFA pass its regex makes first (see [`Screen::captures`]).
#[derive(Debug, Clone)]
pub(super) struct Screen {
    /// The DFA of all the patterns, once a line needs it (see
    /// [`whole`](Self::whole)).
    re: OnceLock<Option<LazyDfa>>,
    /// Its patterns, for the DFAs built when a line first needs them.
    hirs: Vec<Hir>,
    /// The same search on only the patterns that can start with a line's
    /// first byte, when their literal prefixes say (see [`Dispatch`]).
    dispatch: Option<Dispatch>,
    /// Per pattern: its failregex, and its branch for a split one.
    ids: Vec<(usize, Option<usize>)>,
    /// Per failregex not split: its pattern (ASCII classes, only the
    /// groups matching reads), and its backtracker and chain once a line
    /// needs them.
    direct: Vec<Option<Direct>>,
}

impl Screen {
    /// `patterns`: each failregex as compiled, and its split when it is
    /// split (whose parts the screen takes, not parsed again).
    pub(super) fn new(patterns: &[(&str, Option<&Split>)]) -> Option<Screen> {
        let mut hirs = Vec::new();
        let mut ids = Vec::new();
        let mut direct = Vec::with_capacity(patterns.len());
        for (i, &(p, split)) in patterns.iter().enumerate() {
            if let Some(split) = split {
                let singles = split.singles()?;
                ids.extend((0..singles.len()).map(|k| (i, Some(k))));
                hirs.extend(singles);
                direct.push(None);
            } else {
                let hir = ascii_hir(p)?;
                if !hir.properties().look_set_prefix().contains(Look::Start) {
                    return None;
                }
                ids.push((i, None));
                direct.push(Some(Direct {
                    pattern: hirs.len(),
                    built: OnceLock::new(),
                }));
                hirs.push(hir);
            }
        }
        Some(Screen {
            re: OnceLock::new(),
            dispatch: Dispatch::new(&hirs),
            hirs,
            ids,
            direct,
        })
    }

    /// The DFA of all the patterns, built when a line first needs it (one
    /// no group serves). `Err`: it does not build.
    fn whole(&self) -> Result<&LazyDfa, ()> {
        self.re
            .get_or_init(|| LazyDfa::new(&self.hirs.iter().collect::<Vec<_>>()))
            .as_ref()
            .ok_or(())
    }

    /// [`new`](Self::new) for a filter's failregexes as compiled
    /// (`expanded`), each split where `split` says.
    pub(super) fn for_filter(expanded: &[String], split: &[Option<Split>]) -> Option<Screen> {
        let patterns: Vec<(&str, Option<&Split>)> = expanded
            .iter()
            .zip(split)
            .map(|(p, s)| (p.as_str(), s.as_ref()))
            .collect();
        Screen::new(&patterns)
    }

    /// The first failregex that matches `text` (all ASCII), with its first
    /// branch that can when it is split. `Err`: the lazy DFA could not
    /// say (the caller tries each failregex in turn).
    pub(super) fn first(&self, text: &[u8]) -> Result<Option<Screened>, ()> {
        let input = Input::new(text).anchored(Anchored::Yes);
        let m = match (&self.dispatch, text.first()) {
            (Some(d), Some(&b)) => match d.search(b, &input, &self.hirs) {
                Some(m) => m?,
                None => self.whole()?.search(&input)?,
            },
            _ => self.whole()?.search(&input)?,
        };
        Ok(m.and_then(|m| {
            let &(regex, branch) = self.ids.get(m.pattern().as_usize())?;
            Some(Screened {
                regex,
                branch,
                end: m.offset(),
            })
        }))
    }

    /// Failregex `i`'s captures on `text` (all ASCII) when
    /// [`first`](Self::first) named it and it is not split: its chain of
    /// DFA searches (`chain`) when it has one and that reaches the end;
    /// else its backtracker, anchored at 0 where all its matches start,
    /// run straight away (the screen's pass stands for the lazy DFA pass
    /// its regex would make first), over the text up to the end of the
    /// match the screen found (the failregex's own, as no earlier one
    /// matches: its first successful path lies within, and every path
    /// before it fails there as it fails on the whole text). `None`: split,
    /// or the text is too long for the backtracker's bound (the caller runs
    /// the regex).
    pub(super) fn captures(&self, first: &Screened, text: &[u8]) -> Option<Captures> {
        let d = self.direct.get(first.regex)?.as_ref()?;
        let (bt, chain) = d
            .built
            .get_or_init(|| {
                let hir = self.hirs.get(d.pattern)?;
                let bt = backtracker(hir)?;
                let chain = Chain::new(&[Some(hir)], bt.get_nfa().group_info());
                Some((bt, chain))
            })
            .as_ref()?;
        if let Some(caps) = chain.as_ref().and_then(|c| c.captures_for(bt, text)) {
            return Some(caps);
        }
        let input = Input::new(text).range(..first.end).anchored(Anchored::Yes);
        let caps = backtrack_captures(bt, &input).ok()?;
        caps.is_match().then_some(caps)
    }
}

/// The screen's patterns grouped by the first bytes they can start with
/// (from their literal prefixes): a line is searched only with the group of
/// its first byte, in the screen's order, as no other pattern can match it
/// (all are anchored at 0). Smaller automata, and a line no pattern can
/// start with is not searched at all. Each group's DFA is built when a line
/// first needs it.
#[derive(Debug, Clone)]
struct Dispatch {
    /// Per byte: its group, or [`NONE`] when no pattern starts with it.
    by_byte: Box<[u8; 256]>,
    groups: Vec<Group>,
}

/// A byte no pattern starts with.
const NONE: u8 = u8::MAX;

/// The patterns (screen indices, in order) a first byte leaves, and
/// their DFA once built.
#[derive(Debug, Clone)]
struct Group {
    patterns: Vec<usize>,
    dfa: OnceLock<Option<LazyDfa>>,
}

impl Dispatch {
    /// `None` when the first bytes do not narrow the search (some pattern
    /// may start with any byte wherever another could), or would make too
    /// many groups.
    fn new(hirs: &[Hir]) -> Option<Dispatch> {
        let firsts: Vec<Option<[bool; 256]>> = hirs.iter().map(first_bytes).collect();
        let mut by_byte = Box::new([NONE; 256]);
        let mut groups: Vec<Group> = Vec::new();
        for b in 0..256 {
            let patterns: Vec<usize> = (0..hirs.len())
                .filter(|&i| firsts[i].is_none_or(|f| f[b]))
                .collect();
            if patterns.is_empty() {
                continue;
            }
            if patterns.len() == hirs.len() {
                return None;
            }
            let g = match groups.iter().position(|g| g.patterns == patterns) {
                Some(g) => g,
                None => {
                    groups.push(Group {
                        patterns,
                        dfa: OnceLock::new(),
                    });
                    groups.len() - 1
                }
            };
            by_byte[b] = u8::try_from(g).ok().filter(|&g| g != NONE)?;
        }
        Some(Dispatch { by_byte, groups })
    }

    /// The leftmost-first match of the patterns (`hirs`, the screen's) that
    /// can start with `first` (the input's first byte), as the whole screen
    /// would report it. `None`: this group's DFA did not build (the caller
    /// searches with the whole screen).
    fn search(
        &self,
        first: u8,
        input: &Input<'_>,
        hirs: &[Hir],
    ) -> Option<Result<Option<HalfMatch>, ()>> {
        let g = match self.by_byte[usize::from(first)] {
            NONE => return Some(Ok(None)),
            g => self.groups.get(usize::from(g))?,
        };
        let dfa = g
            .dfa
            .get_or_init(|| {
                let group: Option<Vec<&Hir>> = g.patterns.iter().map(|&i| hirs.get(i)).collect();
                LazyDfa::new(&group?)
            })
            .as_ref()?;
        Some(dfa.search(input).map(|m| {
            m.and_then(|m| {
                let p = *g.patterns.get(m.pattern().as_usize())?;
                Some(HalfMatch::new(PatternID::new(p).ok()?, m.offset()))
            })
        }))
    }
}

/// The bytes a match of `hir` can start with, from its literal prefixes;
/// `None` when any byte could (or the prefixes are not all known).
fn first_bytes(hir: &Hir) -> Option<[bool; 256]> {
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let mut set = [false; 256];
    for lit in seq.literals()? {
        set[usize::from(*lit.as_bytes().first()?)] = true;
    }
    Some(set)
}

/// A failregex the screen reads on its own: its pattern (among the
/// screen's), and its backtracker and chain (if it has one) once a line
/// needs them.
#[derive(Debug, Clone)]
struct Direct {
    pattern: usize,
    built: OnceLock<Option<(BoundedBacktracker, Option<Chain>)>>,
}

/// What [`Screen::first`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Screened {
    /// The failregex.
    pub(super) regex: usize,
    /// Its first branch that can match, when it is split.
    pub(super) branch: Option<usize>,
    /// Where the screen's match ends: the failregex's own match's end when
    /// it is not split (the branch's when it is).
    pub(super) end: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::split::tests::{lines, whole};

    #[test]
    fn the_screen_names_the_first_failregex_that_matches() {
        let patterns = [
            r"^Failed (?:\S+) for (?:(?P<u>root)|(?P<v>\S+)) from",
            r"^Failed \S+ for",
            r"^(?:x|y) from",
            r"^y",
        ];
        let splits: Vec<Option<Split>> = patterns.iter().map(|p| Split::new(p)).collect();
        let flags: Vec<(&str, Option<&Split>)> = patterns
            .iter()
            .zip(&splits)
            .map(|(p, s)| (*p, s.as_ref()))
            .collect();
        assert!(flags[0].1.is_some() && flags[1].1.is_none());
        let screen = Screen::new(&flags).unwrap();
        let res: Vec<regex::bytes::Regex> = patterns.iter().map(|p| whole(p)).collect();
        for line in [
            "Failed password for root from",
            "Failed password for bob from",
            "Failed password for bob",
            "y from",
            "y",
            "x",
            "",
        ] {
            let want = res.iter().position(|r| r.is_match(line.as_bytes()));
            let got = screen.first(line.as_bytes()).unwrap();
            assert_eq!(want, got.map(|f| f.regex), "{line:?}");
        }
        // A failregex anchored nowhere: no screen.
        assert!(Screen::new(&[(r"^a", None), (r"b", None)]).is_none());
    }

    #[test]
    fn the_first_byte_narrows_the_search_to_the_patterns_that_can_start_with_it() {
        let patterns = [
            r"^Failed (?:\S+) for (?P<u>\S+) from",
            r"^[aA]uth(?:entication)? failure",
            r"^\S+ from (?P<host>\S+)",
            r"^(?:Failed|x) from",
            r"^(?:A|b)?c",
        ];
        let flags: Vec<(&str, Option<&Split>)> = patterns.iter().map(|p| (*p, None)).collect();
        let screen = Screen::new(&flags).unwrap();
        let dispatch = screen.dispatch.as_ref().expect("narrowed");
        let group = |b: u8| match dispatch.by_byte[usize::from(b)] {
            NONE => vec![],
            g => dispatch.groups[usize::from(g)].patterns.clone(),
        };
        assert_eq!(group(b'F'), [0, 2, 3]);
        assert_eq!(group(b'a'), [1, 2]);
        assert_eq!(group(b'A'), [1, 2, 4]);
        assert_eq!(group(b'c'), [2, 4]);
        // Too wide a class for the literal prefixes: any byte may start it.
        assert_eq!(group(b'q'), [2]);
        assert_eq!(group(b' '), [2]);
        // The group's search says what the whole screen's says.
        let mut found = [0; 5];
        for line in [
            "Failed password for bob from 1",
            "Failed from x",
            "Fail from x",
            "auth failure",
            "Authentication failure from a",
            "Ac",
            "bc",
            "c",
            "c from d",
            "x from y",
            "x from",
            " from y",
            "",
        ] {
            let input = Input::new(line).anchored(Anchored::Yes);
            let whole = screen.whole().unwrap().search(&input).unwrap();
            let narrowed = match line.as_bytes().first() {
                Some(&b) => dispatch.search(b, &input, &screen.hirs).unwrap().unwrap(),
                None => whole,
            };
            assert_eq!(narrowed, whole, "{line:?}");
            if let Some(m) = whole {
                found[m.pattern().as_usize()] += 1;
            }
        }
        assert!(found.iter().all(|&n| n > 0), "{found:?}");
        // A line no pattern can start: not searched at all.
        let few = Screen::new(&[(r"^ab", None), (r"^c+d", None)]).unwrap();
        let dispatch = few.dispatch.as_ref().expect("narrowed");
        assert_eq!(dispatch.by_byte[usize::from(b'x')], NONE);
        assert_eq!(few.first(b"xab"), Ok(None));
        assert_eq!(few.first(b"ccd").map(|m| m.map(|m| m.regex)), Ok(Some(1)));
        // A pattern that can start with any byte, and one of those bytes
        // leaves them all: nothing to narrow.
        let any = [(r"^.+x", None), (r"^ab", None)];
        assert!(Screen::new(&any).unwrap().dispatch.is_none());
    }

    #[test]
    fn a_failregex_the_screen_names_gives_the_whole_patterns_groups() {
        let patterns = [
            r"^(?:Failed|Accepted) (?P<nofail>\S+)? ?for (?P<user>.*?) from (?P<host>\S+)(?: port \d+)?\s*$",
            r"^(?P<user>\S*)(?:\s+(?P<host>sshd|\S+:))?(?P<x>\s*)$",
            r"^(?:x|(?P<mlfforget>:))(?P<host>.*)",
        ];
        let flags: Vec<(&str, Option<&Split>)> = patterns.iter().map(|p| (*p, None)).collect();
        let screen = Screen::new(&flags).unwrap();
        let res: Vec<regex::bytes::Regex> = patterns.iter().map(|p| whole(p)).collect();
        let mut found = [0; 3];
        let mut shapes: Vec<String> = lines();
        shapes.extend(
            lines()
                .iter()
                .map(|l| format!("Failed {l} for {l} from {l}")),
        );
        for line in shapes {
            let line = line.as_bytes();
            let Some(first) = screen.first(line).unwrap() else {
                assert!(res.iter().all(|r| !r.is_match(line)), "{line:?}");
                continue;
            };
            let i = first.regex;
            assert_eq!(first.branch, None);
            let want = res[i].captures(line).unwrap();
            assert_eq!(first.end, want.get(0).unwrap().end(), "{i} on {line:?}");
            let got = screen
                .captures(&first, line)
                .unwrap_or_else(|| panic!("{i} on {line:?}"));
            for (g, name) in res[i].capture_names().enumerate() {
                let w = want.get(g).map(|m| m.range());
                let got = match name {
                    // `x` is not read: not captured.
                    Some("x") => continue,
                    Some(n) => got.get_group_by_name(n),
                    None => got.get_group(g),
                };
                assert_eq!(w, got.map(|s| s.range()), "{i} group {g} on {line:?}");
            }
            found[i] += 1;
        }
        assert!(found.iter().all(|&n| n > 20), "{found:?}");
    }
}
