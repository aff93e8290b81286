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
//! path, and the branch's own chain places the groups inside it (it must
//! end where the branch's search did). `X?` is the alternation `X|` (`X??`
//! is `|X`); a group inside any other repetition makes the pattern unfit
//! (`None`).
//!
//! Owns only the construction and the searches; which patterns take a
//! chain is `split`'s and `screen`'s, and it decides nothing about outcomes.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::backtrack::BoundedBacktracker;
use regex_automata::util::captures::{Captures, GroupInfo};
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::{Hir, HirKind};

use super::lazy::{pattern_end, LazyDfa};

/// The steps of a pattern, over one DFA holding every piece.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    dfa: LazyDfa,
    steps: Vec<Step>,
    /// Slots of the whole match (start, end).
    whole: (usize, usize),
}

/// Where a group boundary stands in its piece's match.
#[derive(Debug, Clone, Copy)]
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
    /// An alternation (or an optional part) holding groups: its first
    /// branch that matches alone from where the chain is (each branch's
    /// whole pattern searched in turn) takes its first path.
    Alt(Vec<Branch>),
}

#[derive(Debug, Clone)]
struct Branch {
    /// The branch's whole pattern.
    pid: usize,
    then: Then,
}

/// Where a branch's groups stand.
#[derive(Debug, Clone)]
enum Then {
    /// Around the whole branch: (start, end) slots.
    Spans(Vec<(usize, usize)>),
    /// As the branch's own chain says, which must end where its search did.
    Steps(Vec<Step>),
}

/// The pattern flattened: group boundaries between pieces of pattern.
enum Item {
    Open(u32),
    Close(u32),
    Plain(Hir),
    /// Branches in order: each its whole pattern and its groups.
    Alt(Vec<(Hir, Groups)>),
    /// A place pieces must not span.
    Cut,
}

/// A branch's groups, as flattened.
enum Groups {
    /// Groups around a group-free pattern (the branch's whole one).
    Around(Vec<u32>),
    Inside(Vec<Item>),
}

/// Slot numbers of the groups of pattern 0 of a `GroupInfo`.
struct Slots<'i>(&'i GroupInfo);

impl Slots<'_> {
    fn of(&self, g: u32, end: bool) -> Option<usize> {
        let s = self.0.slot(PatternID::ZERO, usize::try_from(g).ok()?)?;
        Some(s + usize::from(end))
    }
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
        let slots = Slots(info);
        let mut patterns = Vec::new();
        let steps = steps(items, &slots, &mut patterns)?;
        let hirs: Vec<&Hir> = patterns.iter().collect();
        let dfa = LazyDfa::per_pattern(&hirs)?;
        Some(Chain {
            dfa,
            steps,
            whole: (slots.of(0, false)?, slots.of(0, true)?),
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
            let mut run = Run {
                dfa,
                cache,
                text,
                slots,
            };
            let end = run.steps(&self.steps, 0)?;
            run.set(self.whole.0, 0)?;
            run.set(self.whole.1, end)
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

/// One line's walk along a chain.
struct Run<'a> {
    dfa: &'a DFA,
    cache: &'a mut Cache,
    text: &'a [u8],
    slots: &'a mut [Option<NonMaxUsize>],
}

impl Run<'_> {
    /// Pattern `pid`'s first path from `from`: its end, `Ok(None)` when it
    /// does not match there, `Err` when the DFA gave up.
    fn search(&mut self, pid: usize, from: usize) -> Result<Option<usize>, ()> {
        let pid = PatternID::new(pid).map_err(|_| ())?;
        let input = Input::new(self.text)
            .range(from..)
            .anchored(Anchored::Pattern(pid));
        pattern_end(self.dfa, self.cache, &input)
    }

    fn set(&mut self, slot: usize, at: usize) -> Result<(), ()> {
        *self.slots.get_mut(slot).ok_or(())? = Some(NonMaxUsize::new(at).ok_or(())?);
        Ok(())
    }

    /// Walks `steps` from `pos`; where they end.
    fn steps(&mut self, steps: &[Step], mut pos: usize) -> Result<usize, ()> {
        for step in steps {
            match step {
                Step::Piece { pid, marks } => {
                    let end = self.search(*pid, pos)?.ok_or(())?;
                    for &(slot, at) in marks {
                        let at = match at {
                            At::FromStart(n) => pos + n,
                            At::FromEnd(n) => end.checked_sub(n).ok_or(())?,
                        };
                        self.set(slot, at)?;
                    }
                    pos = end;
                }
                Step::Here(marks) => {
                    for &slot in marks {
                        self.set(slot, pos)?;
                    }
                }
                Step::Alt(branches) => {
                    let mut found = None;
                    for b in branches {
                        if let Some(end) = self.search(b.pid, pos)? {
                            found = Some((b, end));
                            break;
                        }
                    }
                    let (b, end) = found.ok_or(())?;
                    match &b.then {
                        Then::Spans(spans) => {
                            for &(s, e) in spans {
                                self.set(s, pos)?;
                                self.set(e, end)?;
                            }
                        }
                        // The branch's first path is its chain's, when
                        // that reaches the branch's end.
                        Then::Steps(steps) => {
                            if self.steps(steps, pos)? != end {
                                return Err(());
                            }
                        }
                    }
                    pos = end;
                }
            }
        }
        Ok(pos)
    }
}

/// The steps of `items`, their pieces added to `patterns`; `None` where a
/// group has no slot.
fn steps(items: Vec<Item>, slots: &Slots<'_>, patterns: &mut Vec<Hir>) -> Option<Vec<Step>> {
    let mut b = Builder::new(std::mem::take(patterns));
    let built = (|| {
        for item in items {
            match item {
                Item::Open(g) => b.mark(slots.of(g, false)?),
                Item::Close(g) => b.mark(slots.of(g, true)?),
                Item::Plain(h) => b.plain(h),
                Item::Alt(branches) => {
                    b.finish();
                    let mut alt = Vec::with_capacity(branches.len());
                    for (whole, groups) in branches {
                        let then = match groups {
                            Groups::Around(groups) => Then::Spans(
                                groups
                                    .iter()
                                    .map(|&g| Some((slots.of(g, false)?, slots.of(g, true)?)))
                                    .collect::<Option<Vec<_>>>()?,
                            ),
                            Groups::Inside(items) => {
                                Then::Steps(steps(items, slots, &mut b.patterns)?)
                            }
                        };
                        alt.push(Branch {
                            pid: b.pattern(whole),
                            then,
                        });
                    }
                    b.steps.push(Step::Alt(alt));
                }
                Item::Cut => b.finish(),
            }
        }
        b.finish();
        Some(())
    })();
    *patterns = std::mem::take(&mut b.patterns);
    built.map(|()| b.steps)
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
            let branches = branches.iter().map(branch).collect::<Option<Vec<_>>>()?;
            out.push(Item::Alt(branches));
        }
        // `X?` tries `X` first, then nothing: `X|` (`X??`: `|X`).
        HirKind::Repetition(r) if r.min == 0 && r.max == Some(1) => {
            let (x, none) = (branch(&r.sub)?, (Hir::empty(), Groups::Around(Vec::new())));
            out.push(Item::Alt(match r.greedy {
                true => vec![x, none],
                false => vec![none, x],
            }));
        }
        _ => return None,
    }
    Some(())
}

/// A branch as its whole pattern and its groups: around a group-free
/// pattern when that is all it is.
fn branch(mut h: &Hir) -> Option<(Hir, Groups)> {
    let whole = h.clone();
    let mut groups = Vec::new();
    while let HirKind::Capture(c) = h.kind() {
        groups.push(c.index);
        h = &c.sub;
    }
    if !has_groups(h) {
        return Some((h.clone(), Groups::Around(groups)));
    }
    let mut items = Vec::new();
    flatten(&whole, &mut items)?;
    Some((whole, Groups::Inside(items)))
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
struct Builder {
    patterns: Vec<Hir>,
    steps: Vec<Step>,
    /// The piece being built.
    hirs: Vec<Hir>,
    marks: Vec<(usize, At)>,
    /// The piece's fixed length so far (`None`: it varies; a piece not
    /// begun yet is empty, of length 0).
    prefix: Option<usize>,
    /// Marks placed after a part that varies, each with the fixed length
    /// of the piece when it came: their place from the piece's end.
    pending: Vec<(usize, usize)>,
    /// The piece's length since its first pending mark (fixed).
    tail: usize,
}

impl Builder {
    /// A builder adding its pieces to `patterns`.
    fn new(patterns: Vec<Hir>) -> Builder {
        Builder {
            patterns,
            steps: Vec::new(),
            hirs: Vec::new(),
            marks: Vec::new(),
            prefix: Some(0),
            pending: Vec::new(),
            tail: 0,
        }
    }

    fn mark(&mut self, slot: usize) {
        match self.prefix {
            Some(n) => self.marks.push((slot, At::FromStart(n))),
            None => self.pending.push((slot, self.tail)),
        }
    }

    fn plain(&mut self, h: Hir) {
        let len = fixed_len(&h);
        if !self.pending.is_empty() && len.is_none() {
            // The marks would stand at no fixed place: the piece ends here.
            self.finish();
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
        self.prefix = Some(0);
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
