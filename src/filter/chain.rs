//! A pattern's captures from anchored lazy DFA searches, one piece of the
//! pattern after the other, instead of the backtracker (which costs
//! several times a DFA pass per byte on every matching line).
//!
//! The pattern, anchored at the start, is read as a concatenation of
//! pieces `X1 X2 ... Xm` (groups mark places between them). A
//! leftmost-first search tries `X1`'s paths in their order, and for each
//! every way the rest goes on, before `X1`'s next path; so when `X1`'s own
//! first successful path (the end an anchored leftmost-first DFA search of
//! `X1` alone reports) is followed by `X2`'s own first path from there,
//! and so on to `Xm`, that chain is the whole pattern's first successful
//! path: any path before it would take, in some piece, a path before that
//! piece's first successful one, which fails within the piece. When a
//! piece does not match where the chain has come to, the chain says
//! nothing (`Err`) and the caller runs the backtracker: the chain is exact
//! when it answers, and answers on the lines of the usual shape.
//!
//! A group's start or end must stand a fixed number of bytes from the
//! start or the end of its piece (`user \S+ from `: the user's end is 6
//! before the piece's), else the piece is cut there. An alternation whose
//! branches hold groups is a step of its own: its first branch that
//! matches from there (each branch searched alone, in order) is its first
//! path; a branch may be only groups around a group-free pattern. A group
//! inside a repetition makes the pattern unfit (`None`).
//!
//! Owns only the construction and the searches; which patterns take a
//! chain is `split`'s and `screen`'s, and it decides nothing about outcomes.

use regex_automata::nfa::thompson::backtrack::BoundedBacktracker;
use regex_automata::util::captures::{Captures, GroupInfo};
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::{Hir, HirKind};

use super::lazy::LazyDfa;

/// The steps of a pattern, over one DFA holding every piece.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    dfa: LazyDfa,
    steps: Vec<Step>,
    /// Slots of the whole match (start, end).
    whole: (usize, usize),
}

/// Where a group boundary stands in its piece's match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    FromStart(usize),
    FromEnd(usize),
}

#[derive(Debug, Clone)]
enum Step {
    /// Piece `pid`'s first path from where the chain is; slots set in it.
    Piece { pid: usize, marks: Vec<(usize, At)> },
    /// Slots set where the chain is (groups around nothing between pieces).
    Here(Vec<usize>),
    /// The first branch that matches from where the chain is: its pattern
    /// and the (start, end) slots of the groups around it.
    Alt(Vec<(usize, Vec<(usize, usize)>)>),
}

/// The pattern flattened: group boundaries between pieces of pattern.
enum Item {
    Open(u32),
    Close(u32),
    Plain(Hir),
    /// Branches: each its group-free core and the groups around it.
    Alt(Vec<(Hir, Vec<u32>)>),
    /// A place pieces must not span.
    Cut,
}

impl Chain {
    /// The chain of `parts` (a concatenation, in order: `Some` parts are
    /// flattened, `None` marks a place no piece may span), whose groups
    /// are `info`'s (pattern 0). `None`: a group stands where the chain
    /// cannot place it, or the DFA does not build.
    pub(super) fn new(parts: &[Option<&Hir>], info: &GroupInfo) -> Option<Chain> {
        let mut items = Vec::new();
        for p in parts {
            match p {
                Some(h) => flatten(h, &mut items)?,
                None => items.push(Item::Cut),
            }
        }
        let slot = |g: u32, end: bool| -> Option<usize> {
            let s = info.slot(PatternID::ZERO, usize::try_from(g).ok()?)?;
            Some(s + usize::from(end))
        };
        let mut b = Builder::default();
        for item in items {
            match item {
                Item::Open(g) => b.mark(slot(g, false)?),
                Item::Close(g) => b.mark(slot(g, true)?),
                Item::Plain(h) => b.plain(h),
                Item::Alt(branches) => {
                    b.finish();
                    let mut alt = Vec::with_capacity(branches.len());
                    for (core, groups) in branches {
                        let spans = groups
                            .iter()
                            .map(|&g| Some((slot(g, false)?, slot(g, true)?)))
                            .collect::<Option<Vec<_>>>()?;
                        alt.push((b.pattern(core), spans));
                    }
                    b.steps.push(Step::Alt(alt));
                }
                Item::Cut => b.finish(),
            }
        }
        b.finish();
        let hirs: Vec<&Hir> = b.patterns.iter().collect();
        let dfa = LazyDfa::per_pattern(&hirs)?;
        Some(Chain {
            dfa,
            steps: b.steps,
            whole: (slot(0, false)?, slot(0, true)?),
        })
    }

    /// Writes the pattern's captures on `text` into `caps` (made for
    /// `info`), as a leftmost-first search anchored at 0 gives them.
    /// `Err`: the chain cannot say (a piece fails where it came to, or a
    /// DFA gave up): the caller searches another way.
    pub(super) fn captures(&self, text: &[u8], caps: &mut Captures) -> Result<(), ()> {
        caps.set_pattern(None);
        let slots = caps.slots_mut();
        slots.iter_mut().for_each(|s| *s = None);
        self.dfa.with_cache(|dfa, cache| {
            // `Ok(None)`: no match; `Err`: the DFA gave up.
            let mut search = |pid: usize, from: usize| -> Result<Option<usize>, ()> {
                let pid = PatternID::new(pid).map_err(|_| ())?;
                let input = Input::new(text)
                    .range(from..)
                    .anchored(Anchored::Pattern(pid));
                let found = dfa.try_search_fwd(cache, &input).map_err(|_| ())?;
                Ok(found.map(|m| m.offset()))
            };
            let mut set = |slot: usize, at: usize| -> Result<(), ()> {
                *slots.get_mut(slot).ok_or(())? = Some(NonMaxUsize::new(at).ok_or(())?);
                Ok(())
            };
            let mut pos = 0;
            for step in &self.steps {
                match step {
                    Step::Piece { pid, marks } => {
                        let end = search(*pid, pos)?.ok_or(())?;
                        for &(slot, at) in marks {
                            let at = match at {
                                At::FromStart(n) => pos + n,
                                At::FromEnd(n) => end.checked_sub(n).ok_or(())?,
                            };
                            set(slot, at)?;
                        }
                        pos = end;
                    }
                    Step::Here(marks) => {
                        for &slot in marks {
                            set(slot, pos)?;
                        }
                    }
                    Step::Alt(branches) => {
                        let mut found = None;
                        for (pid, spans) in branches {
                            if let Some(end) = search(*pid, pos)? {
                                found = Some((end, spans));
                                break;
                            }
                        }
                        let (end, spans) = found.ok_or(())?;
                        for &(s, e) in spans {
                            set(s, pos)?;
                            set(e, end)?;
                        }
                        pos = end;
                    }
                }
            }
            set(self.whole.0, 0)?;
            set(self.whole.1, pos)
        })?;
        caps.set_pattern(Some(PatternID::ZERO));
        Ok(())
    }

    /// [`captures`](Self::captures) into a new `Captures` of `bt` (the
    /// pattern's backtracker). In debug builds (the tests) every answer is
    /// checked against `bt`'s own on the same text, so every line the test
    /// suites match checks the chain.
    pub(super) fn captures_for(&self, bt: &BoundedBacktracker, text: &[u8]) -> Option<Captures> {
        let mut caps = bt.create_captures();
        self.captures(text, &mut caps).ok()?;
        #[cfg(debug_assertions)]
        {
            let mut want = bt.create_captures();
            let input = Input::new(text).anchored(Anchored::Yes);
            if bt
                .try_search(&mut bt.create_cache(), &input, &mut want)
                .is_ok()
            {
                assert_eq!(
                    caps.slots(),
                    want.slots(),
                    "the chain and the backtracker disagree on {:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
        Some(caps)
    }
}

/// Whether `h` holds a capture group.
fn has_groups(h: &Hir) -> bool {
    h.properties().explicit_captures_len() > 0
}

/// `h` as items; `None` where a group is out of the chain's reach.
fn flatten(h: &Hir, out: &mut Vec<Item>) -> Option<()> {
    if !has_groups(h) {
        out.push(Item::Plain(h.clone()));
        return Some(());
    }
    match h.kind() {
        HirKind::Concat(parts) => {
            for p in parts {
                flatten(p, out)?;
            }
        }
        HirKind::Capture(c) => {
            out.push(Item::Open(c.index));
            flatten(&c.sub, out)?;
            out.push(Item::Close(c.index));
        }
        HirKind::Alternation(branches) => {
            let branches = branches.iter().map(peel).collect::<Option<Vec<_>>>()?;
            out.push(Item::Alt(branches));
        }
        _ => return None,
    }
    Some(())
}

/// A branch as its group-free core and the groups around it.
fn peel(mut h: &Hir) -> Option<(Hir, Vec<u32>)> {
    let mut groups = Vec::new();
    while let HirKind::Capture(c) = h.kind() {
        groups.push(c.index);
        h = &c.sub;
    }
    (!has_groups(h)).then(|| (h.clone(), groups))
}

/// The fixed length of `h`'s matches, if they have one.
fn fixed_len(h: &Hir) -> Option<usize> {
    let p = h.properties();
    match (p.minimum_len(), p.maximum_len()) {
        (Some(a), Some(b)) if a == b => Some(a),
        _ => None,
    }
}

/// Pieces being cut from the items.
#[derive(Default)]
struct Builder {
    patterns: Vec<Hir>,
    steps: Vec<Step>,
    /// The piece being built.
    hirs: Vec<Hir>,
    marks: Vec<(usize, At)>,
    /// The piece's fixed length so far (`None`: it varies).
    prefix: Option<usize>,
    /// Marks placed after a part that varies, each with the fixed length
    /// of the piece when it came: their place from the piece's end.
    pending: Vec<(usize, usize)>,
    /// The piece's length since its first pending mark (fixed).
    tail: usize,
    /// Whether `prefix` is meaningful (the piece has begun).
    started: bool,
}

impl Builder {
    fn begin(&mut self) {
        if !self.started {
            self.started = true;
            self.prefix = Some(0);
        }
    }

    fn mark(&mut self, slot: usize) {
        self.begin();
        match self.prefix {
            Some(n) => self.marks.push((slot, At::FromStart(n))),
            None => self.pending.push((slot, self.tail)),
        }
    }

    fn plain(&mut self, h: Hir) {
        self.begin();
        let len = fixed_len(&h);
        if !self.pending.is_empty() && len.is_none() {
            // The marks would stand at no fixed place: the piece ends here.
            self.finish();
            self.begin();
        }
        self.prefix = self.prefix.zip(len).map(|(a, b)| a + b);
        if !self.pending.is_empty() {
            self.tail += len.unwrap_or(0);
        }
        self.hirs.push(h);
    }

    fn pattern(&mut self, h: Hir) -> usize {
        self.patterns.push(h);
        self.patterns.len() - 1
    }

    /// Ends the piece being built.
    fn finish(&mut self) {
        let tail = self.tail;
        let mut marks = std::mem::take(&mut self.marks);
        marks.extend(
            self.pending
                .drain(..)
                .map(|(slot, at)| (slot, At::FromEnd(tail - at))),
        );
        let hirs = std::mem::take(&mut self.hirs);
        if hirs.is_empty() {
            if !marks.is_empty() {
                // Every mark of an empty piece stands where the chain is.
                self.steps
                    .push(Step::Here(marks.into_iter().map(|(s, _)| s).collect()));
            }
        } else {
            let pid = self.pattern(Hir::concat(hirs));
            self.steps.push(Step::Piece { pid, marks });
        }
        self.tail = 0;
        self.prefix = None;
        self.started = false;
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
