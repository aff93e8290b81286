//! Cheaper captures of two shapes of fail2ban patterns on all-ASCII text,
//! each the same captures as the whole pattern's (ASCII classes, as
//! `compile::ascii`), found by a smaller search:
//!
//! - [`Head`]: a prefregex that ends in `(?P<content>.+)$`. On text without
//!   a newline, `.+$` takes whatever is left if one byte is, so the pattern
//!   up to the content takes the same choices when the content is written
//!   `(?P<content>.)`: the backtracker walks the line's prefix only, and the
//!   content runs to the end of the text.
//! - [`Split`]: a `^`-anchored pattern whose concatenation holds an
//!   alternation `P(?:A1|...|An)Q` (`py_rewrite`'s enumeration of
//!   conditionals). A multi-pattern lazy DFA over `PA1Q`, ..., `PAnQ` says
//!   in one pass which `PAkQ` is the first that matches at all; a branch
//!   `Aj` before it never leads to a match, so `P(?:Ak|...|An)Q` takes the
//!   same first successful path as the whole pattern (removing paths that
//!   all fail keeps the others' order), without exploring the branches
//!   that end in a failure on every line of the other shape. Its captures
//!   come from branch `k`'s chain of DFA searches (`chain`) where that
//!   reaches the end, else from the backtracker of `P(?:Ak|...|An)Q`.
//!
//! Owns these constructions and their searches; it decides nothing about
//! outcomes, and is not used on text that is not all ASCII.

use std::cell::RefCell;
use std::sync::OnceLock;

use regex_automata::meta;
use regex_automata::nfa::thompson::{self, backtrack, backtrack::BoundedBacktracker};
use regex_automata::util::captures::Captures;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

use super::chain::Chain;
use super::head::Ends;
use super::REGEX_SIZE_LIMIT;

/// `pattern` with ASCII classes (as `compile::ascii` compiles it), with
/// only the groups matching reads (see [`read`]).
pub(super) fn ascii_hir(pattern: &str) -> Option<Hir> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    Some(only_read(&hir, &mut 1))
}

/// Whether matching reads group `name` (`matching`, `text`; renamed
/// twins start with their base name). The others only cost the
/// backtracker their bookkeeping.
pub(super) fn read(name: &str) -> bool {
    [
        "host",
        "user",
        "alt_user",
        "nofail",
        "mlfforget",
        "mlfgained",
        "cidr",
        "content",
        "mlfid",
    ]
    .iter()
    .any(|g| name.starts_with(g))
}

/// `h` without the groups matching does not read, the others numbered
/// anew from `next` in their order (the same matches: groups do not
/// change which path wins).
fn only_read(h: &Hir, next: &mut u32) -> Hir {
    match h.kind() {
        HirKind::Capture(c) if c.name.as_deref().is_some_and(read) => {
            let index = *next;
            *next += 1;
            Hir::capture(hir::Capture {
                index,
                name: c.name.clone(),
                sub: Box::new(only_read(&c.sub, next)),
            })
        }
        HirKind::Capture(c) => only_read(&c.sub, next),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            sub: Box::new(only_read(&r.sub, next)),
            ..r.clone()
        }),
        HirKind::Concat(v) => Hir::concat(v.iter().map(|x| only_read(x, next)).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(|x| only_read(x, next)).collect()),
        _ => h.clone(),
    }
}

/// A regex built as `regex::bytes::Regex` builds one (leftmost-first, no
/// UTF-8 requirement on empty matches), with the filters' size limit.
pub(super) fn build(hirs: &[&Hir]) -> Option<meta::Regex> {
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .match_kind(regex_automata::MatchKind::LeftmostFirst)
                .utf8_empty(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .hybrid_cache_capacity(2 << 20),
        )
        .build_many_from_hir(hirs)
        .ok()
}

/// A prefregex ending in `(?P<content>.+)$`, matched up to the content's
/// first byte.
#[derive(Debug, Clone)]
pub(super) struct Head {
    re: meta::Regex,
    /// For a `^`-anchored head: its backtracker, run straight away (the
    /// match starts at 0 and the search stops at its first success, near
    /// the content's first byte), without `re`'s lazy DFA pass that finds
    /// the match's end first. `re` serves lines too long for it.
    anchored: Option<BoundedBacktracker>,
    /// Where the head's shape allows: its captures from two lazy DFA
    /// passes (`head::Ends`), before either backtracker.
    ends: Option<Ends>,
    /// The `content` group's index.
    content: usize,
}

impl Head {
    /// `None` unless `pattern` (ASCII classes) is a concatenation ending
    /// in a greedy `(?P<content>C+)` and the end of the text, where `C`
    /// takes every byte but the newline.
    pub(super) fn new(pattern: &str) -> Option<Head> {
        let hir = ascii_hir(pattern)?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let [rest @ .., cap, end] = parts.as_slice() else {
            return None;
        };
        if *end.kind() != HirKind::Look(Look::End) {
            return None;
        }
        let HirKind::Capture(c) = cap.kind() else {
            return None;
        };
        if c.name.as_deref() != Some("content") {
            return None;
        }
        let HirKind::Repetition(r) = c.sub.kind() else {
            return None;
        };
        if r.min != 1 || r.max.is_some() || !r.greedy || !all_but_newline(&r.sub) {
            return None;
        }
        let mut head = rest.to_vec();
        head.push(Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: r.sub.clone(),
        }));
        let content = usize::try_from(c.index).ok()?;
        let ends = Ends::new(&head);
        let head = Hir::concat(head);
        let anchored = head
            .properties()
            .look_set_prefix()
            .contains(Look::Start)
            .then(|| backtracker(&head))
            .flatten();
        Some(Head {
            re: build(&[&head])?,
            anchored,
            ends,
            content,
        })
    }

    /// The whole pattern's captures on `text`, which must be all ASCII;
    /// `None` when it does not match. Text with a newline is not for the
    /// head (`Err`): the caller matches it with the whole pattern.
    pub(super) fn captures(&self, text: &[u8]) -> Result<Option<Captures>, ()> {
        if memchr::memchr(b'\n', text).is_some() {
            return Err(());
        }
        let by_ends = self.ends.as_ref().and_then(|ends| {
            let mut caps = self.re.create_captures();
            ends.captures(text, &mut caps).ok().map(|_| caps)
        });
        let mut caps = match (by_ends, &self.anchored) {
            (Some(caps), _) => caps,
            // The same first successful path as `re`'s (both leftmost-first
            // from 0, the text around the match the same).
            (None, Some(bt)) => {
                match backtrack_captures(bt, &Input::new(text).anchored(Anchored::Yes)) {
                    Ok(caps) => caps,
                    Err(()) => self.re_captures(text),
                }
            }
            (None, None) => self.re_captures(text),
        };
        if !caps.is_match() {
            return Ok(None);
        }
        // The content, and the whole match, run to the end of the text.
        let to = NonMaxUsize::new(text.len());
        let ends = [
            caps.group_info().slot(PatternID::ZERO, 0),
            caps.group_info().slot(PatternID::ZERO, self.content),
        ];
        for slot in ends.into_iter().flatten() {
            // The end slot follows the start slot.
            if let Some(s) = caps.slots_mut().get_mut(slot + 1) {
                *s = to;
            }
        }
        Ok(Some(caps))
    }
}

impl Head {
    /// `re`'s captures on `text`.
    fn re_captures(&self, text: &[u8]) -> Captures {
        let mut caps = self.re.create_captures();
        self.re.search_captures(&Input::new(text), &mut caps);
        caps
    }
}

/// Whether `h` is a class of every byte but (perhaps) the newline.
fn all_but_newline(h: &Hir) -> bool {
    let HirKind::Class(Class::Bytes(c)) = h.kind() else {
        return false;
    };
    let mut next = 0u16;
    for r in c.ranges() {
        let (s, e) = (u16::from(r.start()), u16::from(r.end()));
        if s > next && !(s == next + 1 && next == u16::from(b'\n')) {
            return false;
        }
        next = next.max(e + 1);
    }
    next == 256
}

/// A `^`-anchored pattern with an alternation in its concatenation.
#[derive(Debug, Clone)]
pub(super) struct Split {
    /// Pattern `k`: the concatenation with branch `k` alone.
    screen: meta::Regex,
    /// Per `k`: the concatenation with branches `k..` only, run by the
    /// backtracker straight away (the screen's pass stands for the lazy
    /// DFA pass a `meta::Regex` would make first).
    tails: Vec<BoundedBacktracker>,
    /// The concatenation's parts, and which is the alternation.
    parts: Vec<Hir>,
    at: usize,
    /// Per `k`: the chain of the concatenation with branch `k` in the
    /// alternation's place, built when a line first needs it.
    chains: Vec<OnceLock<Option<Chain>>>,
}

thread_local! {
    /// The backtrackers' scratch space (sized for each search), one per
    /// thread, reset for the backtracker that uses it: a fresh one per
    /// line would cost an allocation.
    static CACHE: RefCell<Option<backtrack::Cache>> = const { RefCell::new(None) };
}

impl Split {
    /// `None` unless `pattern` (ASCII classes) is a concatenation that
    /// starts with `^` and holds an alternation (the last one is split).
    pub(super) fn new(pattern: &str) -> Option<Split> {
        let (parts, at) = Self::concat(pattern)?;
        let (singles, tails) = Self::branches(&parts, at)?;
        let screen = build(&singles.iter().collect::<Vec<_>>())?;
        let tails = tails.iter().map(backtracker).collect::<Option<Vec<_>>>()?;
        Some(Split {
            screen,
            chains: tails.iter().map(|_| OnceLock::new()).collect(),
            tails,
            parts,
            at,
        })
    }

    /// The parts of `pattern`'s concatenation (ASCII classes) and the
    /// index of its last alternation, when it starts with `^`.
    fn concat(pattern: &str) -> Option<(Vec<Hir>, usize)> {
        let hir = ascii_hir(pattern)?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        if *parts.first()?.kind() != HirKind::Look(Look::Start) {
            return None;
        }
        let at = parts
            .iter()
            .rposition(|p| matches!(p.kind(), HirKind::Alternation(_)))?;
        Some((parts.clone(), at))
    }

    /// The chain of tail `k`: the parts before the alternation, branch `k`
    /// and the parts after, each on its own (no piece spans the branch's
    /// edges). When branch `k` matches where the parts before it end, it is
    /// the first path of the alternation of branches `k..` there.
    pub(super) fn chain(&self, k: usize) -> Option<&Chain> {
        let cell = self.chains.get(k)?;
        cell.get_or_init(|| {
            let HirKind::Alternation(alts) = self.parts.get(self.at)?.kind() else {
                return None;
            };
            let mut parts: Vec<Option<&Hir>> = self.parts[..self.at].iter().map(Some).collect();
            parts.extend([None, Some(alts.get(k)?), None]);
            parts.extend(self.parts[self.at + 1..].iter().map(Some));
            Chain::new(&parts, self.tails.get(k)?.get_nfa().group_info())
        })
        .as_ref()
    }

    /// The concatenation with each branch alone, in order (without the
    /// tails [`branches`](Self::branches) also builds).
    pub(super) fn singles(&self) -> Option<Vec<Hir>> {
        let alts = Self::alternatives(&self.parts, self.at)?;
        Some(
            alts.iter()
                .map(|a| Self::with(&self.parts, self.at, a.clone()))
                .collect(),
        )
    }

    /// The concatenation with each branch alone, and with the branches
    /// from each on.
    #[cfg(test)]
    pub(super) fn parts(pattern: &str) -> Option<(Vec<Hir>, Vec<Hir>)> {
        let (parts, at) = Self::concat(pattern)?;
        Self::branches(&parts, at)
    }

    /// The concatenation (whose alternation is part `at`) with each branch
    /// alone, and with the branches from each on.
    fn branches(parts: &[Hir], at: usize) -> Option<(Vec<Hir>, Vec<Hir>)> {
        let alts = Self::alternatives(parts, at)?;
        let singles = alts
            .iter()
            .map(|a| Self::with(parts, at, a.clone()))
            .collect();
        let tails = (0..alts.len())
            .map(|k| Self::with(parts, at, Hir::alternation(alts[k..].to_vec())))
            .collect();
        Some((singles, tails))
    }

    /// The branches of part `at`, the alternation.
    fn alternatives(parts: &[Hir], at: usize) -> Option<&[Hir]> {
        match parts.get(at)?.kind() {
            HirKind::Alternation(alts) => Some(alts),
            _ => None,
        }
    }

    /// The concatenation with `branches` in place of part `at`.
    fn with(parts: &[Hir], at: usize, branches: Hir) -> Hir {
        let mut v = parts[..at].to_vec();
        v.push(branches);
        v.extend_from_slice(&parts[at + 1..]);
        Hir::concat(v)
    }

    /// Which branch first matches `text` (all ASCII), if any.
    pub(super) fn first(&self, text: &[u8]) -> Option<usize> {
        self.screen
            .search(&Input::new(text))
            .map(|m| m.pattern().as_usize())
    }

    /// The whole pattern's captures on `text` (all ASCII), given
    /// [`first`](Self::first)'s answer `k`: from branch `k`'s chain, else
    /// the backtracker. `Err`: the text is too long for the backtracker's
    /// bound (the caller runs the whole pattern).
    pub(super) fn captures(&self, k: usize, text: &[u8]) -> Result<Option<Captures>, ()> {
        let bt = self.tails.get(k).ok_or(())?;
        if let Some(caps) = self.chain(k).and_then(|c| c.captures_for(bt, text)) {
            return Ok(Some(caps));
        }
        // All matches start at 0 (`^`); the whole text, since the screen's
        // end is branch `k`'s, not necessarily the whole pattern's.
        let caps = backtrack_captures(bt, &Input::new(text).anchored(Anchored::Yes))?;
        Ok(caps.is_match().then_some(caps))
    }
}

/// `bt`'s captures on `input`, in the thread's scratch space; `Err`: the
/// text is too long for the backtracker's bound.
pub(super) fn backtrack_captures(
    bt: &BoundedBacktracker,
    input: &Input<'_>,
) -> Result<Captures, ()> {
    let mut caps = bt.create_captures();
    CACHE
        .with(|c| {
            let mut c = c.borrow_mut();
            let cache = c.get_or_insert_with(|| bt.create_cache());
            // The cache is shared by every backtracker of the thread;
            // regex-automata requires it reset for the one it serves
            // (this keeps its buffers: the search clears them anyway).
            cache.reset(bt);
            bt.try_search(cache, input, &mut caps)
        })
        .map_err(|_| ())?;
    Ok(caps)
}

/// A bounded backtracker with captures, built as `meta::Regex` builds its
/// own (no UTF-8 requirement, the filters' size limit).
pub(super) fn backtracker(hir: &Hir) -> Option<BoundedBacktracker> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
        )
        .build_from_hir(hir)
        .ok()?;
    BoundedBacktracker::builder().build_from_nfa(nfa).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Lines built from pieces of syslog prefixes and sshd messages,
    /// every combination up to three pieces.
    pub(in crate::filter) fn lines() -> Vec<String> {
        let pieces = [
            "",
            " ",
            "web01 ",
            "sshd[12]: ",
            "sshd: ",
            "error: ",
            "fatal: ",
            "PAM: ",
            ":",
            "x",
            "Failed password",
            "\n",
            "  ",
        ];
        combinations(&pieces)
    }

    /// Every text of up to three of `pieces`, in every order.
    pub(in crate::filter) fn combinations(pieces: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    out.push(format!("{a}{b}{c}"));
                }
            }
        }
        out
    }

    pub(in crate::filter) fn whole(pattern: &str) -> regex::bytes::Regex {
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .unwrap()
    }

    #[test]
    fn a_prefregex_head_gives_the_whole_patterns_groups() {
        for p in [
            r"^(?P<mlfid>\s*(?:\S+\s+)?(?:sshd(?:\[\d+\])?:?\s+)?)(?:(?:error|fatal): (?:PAM: )?)?(?P<content>.+)$",
            r"^(?P<mlfid>\S*)\s*(?P<content>.+)$",
            r"(?P<mlfid>:)?(?P<content>.+)$",
        ] {
            let head = Head::new(p).unwrap_or_else(|| panic!("no head for {p}"));
            let re = whole(p);
            let mut matched = 0;
            for line in lines() {
                let line = line.as_bytes();
                let Ok(got) = head.captures(line) else {
                    assert!(line.contains(&b'\n'));
                    continue;
                };
                let want = re.captures(line);
                assert_eq!(want.is_some(), got.is_some(), "{p} on {line:?}");
                let (Some(want), Some(got)) = (want, got) else {
                    continue;
                };
                matched += 1;
                for (i, name) in re.capture_names().enumerate() {
                    let w = want.get(i).map(|m| m.range());
                    let g = match name {
                        Some(n) => got.get_group_by_name(n),
                        None => got.get_group(i),
                    };
                    assert_eq!(w, g.map(|s| s.range()), "{p} group {i} on {line:?}");
                }
            }
            assert!(matched > 100, "{p}: only {matched}");
        }
    }

    #[test]
    fn only_a_content_that_takes_the_rest_of_the_line_has_a_head() {
        for p in [
            r"^(?P<mlfid>\S+) (?P<content>.+)",
            r"^(?P<mlfid>\S+) (?P<content>.*)$",
            r"^(?P<mlfid>\S+) (?P<content>\S+)$",
            r"^(?P<mlfid>\S+) (?P<content>.+?)$",
            r"^(?P<mlfid>\S+) (?P<content>.+) x$",
            r"^a|(?P<content>.+)$",
        ] {
            assert!(Head::new(p).is_none(), "{p}");
        }
    }
}
