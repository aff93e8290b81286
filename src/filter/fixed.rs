//! Failregexes whose host stands at a fixed distance from the start of the
//! match, so that a matching line needs no capture engine (the bounded
//! backtracker costs several times the DFA search on every matching line,
//! and on long nginx lines ten times):
//!
//! - fixed from both ends, `Login failure <HOST>` (14 bytes after the start,
//!   none before the end): the host is read off the match span;
//! - fixed from the start only, `^<HOST> - .* "GET /x"`: the host pattern
//!   alone, anchored where the host starts, gives the host's end, and the
//!   rest of the pattern, anchored there, must still reach the match's end.
//!
//! A regex that starts with a literal and ends with the host, `Login failure
//! <HOST>$`, takes a remainder that is a dotted quad without running an
//! automaton at all: every dotted quad is in the host pattern's language,
//! and `$` makes the remainder the whole host.
//!
//! A regex of any start that ends with a separator the host cannot hold,
//! then the host, then `$` (`^[A-Z]+ Login failure <HOST>$`): the host can
//! only be what follows the separator's last occurrence. When that is a
//! dotted quad, the regex matches exactly when its part before the host
//! matches up to there: one capture-free search of a shorter regex.
//!
//! Owns only these decisions, made once per regex from its syntax tree, and
//! the two small searches of the second kind. It must stay exact: the regex
//! crate's leftmost-first search tries the host's alternatives in order and
//! keeps the first after which the rest matches, so when the rest matches
//! after the host pattern's own first match, that is the host the captures
//! would give; when it does not, the caller falls back to the captures. It
//! says nothing when a `user` group is wanted too or the shape is other.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use regex_automata::{meta, Anchored, Input};
use regex_syntax::hir::{Hir, HirKind};

use super::{tags, text};

/// A host found without captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it stands in the text.
    pub span: Range<usize>,
    /// The address, when finding the host already read it.
    pub addr: Option<IpAddr>,
}

/// How to find the host of one failregex without captures.
// One per failregex, built once: boxing the lead's finder to even the
// variants out would cost a pointer chase on every matching line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum HostAt {
    /// At a place of the regex's match that `shape` says; the match is
    /// found through `lead` when the regex starts with a literal.
    InMatch { shape: Shape, lead: Option<Lead> },
    /// The host ends the text and follows the last `sep` (a byte it cannot
    /// hold); `prefix` is the regex up to the host, anchored at the end. No
    /// match of the whole regex is searched for.
    Suffix { sep: u8, prefix: Box<meta::Regex> },
}

/// A regex that starts with a literal: its leftmost match starts at the
/// first occurrence of the literal where the rest of the regex, anchored
/// right after it, matches; so the match is found by searching forward
/// only (an unanchored search also runs backward from the match's end to
/// find its start), and the automaton never walks the literal's bytes,
/// which the literal search has already read.
#[derive(Debug, Clone)]
pub struct Lead {
    literal: memchr::memmem::Finder<'static>,
    /// Everything after the literal.
    rest: Box<meta::Regex>,
    /// `rest` is the host group, then the end of the text, and the group
    /// takes every dotted quad: a remainder that is one matches `rest`.
    quad_to_end: bool,
}

impl Lead {
    /// The match's span, and the host when it was read as a dotted quad.
    fn find(&self, text: &[u8]) -> Option<(Range<usize>, Option<Ipv4Addr>)> {
        let len = self.literal.needle().len();
        let mut from = 0;
        while let Some(i) = text.get(from..).and_then(|t| self.literal.find(t)) {
            let at = from + i;
            if self.quad_to_end {
                if let Some(quad) = text::dotted_quad(&text[at + len..]) {
                    return Some((at..text.len(), Some(quad.into())));
                }
            }
            let input = Input::new(text)
                .span(at + len..text.len())
                .anchored(Anchored::Yes);
            if let Some(m) = self.rest.search(&input) {
                return Some((at..m.end(), None));
            }
            from = at + 1;
        }
        None
    }
}

/// Where the host stands in every match.
#[derive(Debug, Clone)]
pub enum Shape {
    /// `before` bytes after the match's start, `after` before its end.
    Span { before: usize, after: usize },
    /// `before` bytes after the match's start; ends where `host` ends, if
    /// `rest` then matches to the match's end.
    Start {
        before: usize,
        host: Box<meta::Regex>,
        rest: Box<meta::Regex>,
    },
}

impl HostAt {
    /// The host in `text`, which `re` (the whole failregex) is searched in:
    /// `Some(None)` when `re` does not match, `None` when the captures
    /// must decide.
    #[inline]
    pub fn find(&self, re: &regex::bytes::Regex, text: &[u8]) -> Option<Option<Found>> {
        let (shape, lead) = match self {
            HostAt::Suffix { sep, prefix } => return suffix_host(*sep, prefix, text),
            HostAt::InMatch { shape, lead } => (shape, lead),
        };
        let (m, addr) = match lead {
            Some(lead) => match lead.find(text) {
                Some((m, quad)) => (m, quad.map(IpAddr::V4)),
                None => return Some(None),
            },
            None => match re.find(text) {
                Some(m) => (m.range(), None),
                None => return Some(None),
            },
        };
        let span = shape.host(text, m)?;
        Some(Some(Found { span, addr }))
    }
}

impl Shape {
    /// The host within `m`, a match of the whole regex in `text`; `None`:
    /// ask the captures.
    #[inline]
    fn host(&self, text: &[u8], m: Range<usize>) -> Option<Range<usize>> {
        match self {
            Shape::Span { before, after } => Some((m.start + before)..m.end.saturating_sub(*after)),
            Shape::Start { before, host, rest } => {
                let start = m.start + before;
                let anchored = |from: usize| {
                    Input::new(text)
                        .span(from..m.end)
                        .anchored(Anchored::Yes)
                        .earliest(false)
                };
                let h = host.search(&anchored(start))?;
                let r = rest.search(&anchored(h.end()))?;
                (r.end() == m.end).then_some(start..h.end())
            }
        }
    }
}

/// [`HostAt::find`] for [`HostAt::Suffix`]. The regex's part before the host
/// ends with `sep`, so a text without it cannot match; a host that is not a
/// dotted quad is left to the captures.
#[inline]
fn suffix_host(sep: u8, prefix: &meta::Regex, text: &[u8]) -> Option<Option<Found>> {
    let Some(i) = memchr::memrchr(sep, text) else {
        return Some(None);
    };
    let quad = text::dotted_quad(&text[i + 1..])?;
    let found = prefix.is_match(Input::new(&text[..=i])).then(|| Found {
        span: i + 1..text.len(),
        addr: Some(IpAddr::V4(quad.into())),
    });
    Some(found)
}

/// How a failregex (its syntax tree, as parsed for the regex itself) lets
/// its host be found without captures, or `None`.
pub fn host_at(hir: &Hir) -> Option<HostAt> {
    if has_group(hir, tags::USER_GROUP) || has_group(hir, tags::ALT_USER_GROUP) {
        return None;
    }
    let items: &[Hir] = match hir.kind() {
        HirKind::Concat(items) => items,
        _ => std::slice::from_ref(hir),
    };
    let at = items.iter().position(|h| is_group(h, tags::HOST_GROUP))?;
    // The regex crate's settings for byte regexes: empty matches may split
    // a UTF-8 sequence; its size limit.
    let build = |h: &Hir| {
        meta::Builder::new()
            .configure(
                meta::Config::new()
                    .utf8_empty(false)
                    .nfa_size_limit(Some(super::REGEX_SIZE_LIMIT)),
            )
            .build_from_hir(h)
            .ok()
            .map(Box::new)
    };
    let Some(before) = width(&items[..at]) else {
        let (sep, prefix) = suffix(items, at)?;
        let prefix = build(&prefix)?;
        return Some(HostAt::Suffix { sep, prefix });
    };
    let shape = match width(&items[at + 1..]) {
        Some(after) => Shape::Span { before, after },
        None => Shape::Start {
            before,
            host: build(&items[at])?,
            rest: build(&Hir::concat(items[at + 1..].to_vec()))?,
        },
    };
    let lead = match items.first().map(Hir::kind) {
        Some(HirKind::Literal(lit)) if !lit.0.is_empty() => Some(Lead {
            literal: memchr::memmem::Finder::new(&lit.0).into_owned(),
            rest: build(&Hir::concat(items[1..].to_vec()))?,
            quad_to_end: quad_to_end(&items[1..]),
        }),
        _ => None,
    };
    Some(HostAt::InMatch { shape, lead })
}

/// For `items` = anything, a literal ending in a byte the host group
/// (`items[at]`, holding every dotted quad) cannot hold, the host, `$`:
/// that byte and the items before the host, then `$`.
fn suffix(items: &[Hir], at: usize) -> Option<(u8, Hir)> {
    let (before, host) = (items.get(..at)?, items.get(at)?);
    if !quad_to_end(items.get(at..)?) {
        return None;
    }
    let sep = match before.last().map(Hir::kind) {
        Some(HirKind::Literal(lit)) => *lit.0.last()?,
        _ => return None,
    };
    if !sep.is_ascii() || may_hold(host, sep) {
        return None;
    }
    let mut prefix = before.to_vec();
    prefix.push(Hir::look(regex_syntax::hir::Look::End));
    Some((sep, Hir::concat(prefix)))
}

/// Whether a match of `h` may hold the byte `b` (an ASCII one).
fn may_hold(h: &Hir, b: u8) -> bool {
    use regex_syntax::hir::Class;
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => false,
        HirKind::Literal(lit) => lit.0.contains(&b),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .any(|r| (r.start()..=r.end()).contains(&b)),
        HirKind::Class(Class::Unicode(c)) => {
            let b = char::from(b);
            c.ranges()
                .iter()
                .any(|r| (r.start()..=r.end()).contains(&b))
        }
        HirKind::Repetition(r) => may_hold(&r.sub, b),
        HirKind::Capture(c) => may_hold(&c.sub, b),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(|h| may_hold(h, b)),
    }
}

/// Whether `rest` is the host group, whose language holds every dotted
/// quad, and then the end of the text (`$` without `(?m)`).
fn quad_to_end(rest: &[Hir]) -> bool {
    use regex_syntax::hir::Look;
    match rest {
        [host, end] => {
            is_group(host, tags::HOST_GROUP)
                && takes_every_quad(host)
                && matches!(end.kind(), HirKind::Look(Look::End))
        }
        _ => false,
    }
}

/// Whether `h` matches every dotted quad whole: it is the IPv4 pattern
/// `<HOST>` and `<ADDR>` expand to, or a group or an alternation that holds
/// it (one branch that matches is enough for the text to match).
fn takes_every_quad(h: &Hir) -> bool {
    static QUAD: std::sync::OnceLock<Option<Hir>> = std::sync::OnceLock::new();
    let quad = QUAD.get_or_init(|| {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(tags::IPV4_RE)
            .ok()
    });
    match h.kind() {
        HirKind::Capture(c) => takes_every_quad(&c.sub),
        HirKind::Alternation(v) => v.iter().any(takes_every_quad),
        _ => quad.as_ref() == Some(h),
    }
}

/// The number of bytes every match of `part` spans, if it is always the same.
fn width(part: &[Hir]) -> Option<usize> {
    let p = Hir::concat(part.to_vec());
    let p = p.properties();
    match (p.minimum_len(), p.maximum_len()) {
        (Some(a), Some(b)) if a == b => Some(a),
        _ => None,
    }
}

fn is_group(h: &Hir, name: &str) -> bool {
    matches!(h.kind(), HirKind::Capture(c) if c.name.as_deref() == Some(name))
}

fn has_group(h: &Hir, name: &str) -> bool {
    match h.kind() {
        // `alt_user` stands for `alt_user_N` too.
        HirKind::Capture(c) => {
            c.name.as_deref().is_some_and(|n| {
                n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('_'))
            }) || has_group(&c.sub, name)
        }
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(|h| has_group(h, name)),
        HirKind::Repetition(r) => has_group(&r.sub, name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(pattern: &str) -> Option<String> {
        let regex = tags::expand(pattern).unwrap().regex;
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(&regex)
            .unwrap();
        host_at(&hir).map(|h| {
            let (shape, lead) = match h {
                HostAt::Suffix { sep, .. } => return format!("suffix {:?}", char::from(sep)),
                HostAt::InMatch { shape, lead } => (shape, lead),
            };
            let lead = match &lead {
                Some(l) if l.quad_to_end => " lead quad",
                Some(_) => " lead",
                None => "",
            };
            match shape {
                Shape::Span { before, after } => format!("span {before} {after}{lead}"),
                Shape::Start { before, .. } => format!("start {before}{lead}"),
            }
        })
    }

    #[test]
    fn fixed_parts_on_both_sides() {
        let s = |b: usize, a: usize| Some(format!("span {b} {a}"));
        for (p, want) in [
            ("Login failure <HOST>", "span 14 0 lead"),
            ("Login failure <HOST>$", "span 14 0 lead quad"),
            ("Login failure <ADDR>$", "span 14 0 lead quad"),
            // `(?m)$` also ends before a newline: not the end of the text.
            ("(?m)Login failure <HOST>$", "span 14 0 lead"),
            ("Login failure <HOST> $", "span 14 1 lead"),
            (r"from <ADDR>:[0-9]{4}", "span 5 5 lead"),
        ] {
            assert_eq!(shape(p).as_deref(), Some(want), "{p}");
        }
        assert_eq!(shape("^Login failure <HOST>$"), s(14, 0));
        assert_eq!(shape(r"^<HOST> port [0-9][0-9]$"), s(0, 8));
        assert_eq!(shape(r"\bfrom <ADDR>:[0-9]{4}\b"), s(5, 5));
        assert_eq!(shape("(?:GET|PUT) <HOST>"), s(4, 0));
    }

    #[test]
    fn a_host_at_the_end_after_a_separator() {
        let s = |c: char| Some(format!("suffix {c:?}"));
        assert_eq!(shape("^[A-Z]+ Login failure <HOST>$"), s(' '));
        assert_eq!(shape(r"user .* from <ADDR>$"), s(' '));
        assert_eq!(shape(r"^\S+ client=<HOST>$"), s('='));
    }

    #[test]
    fn fixed_start_only() {
        let s = |b: usize| Some(format!("start {b}"));
        assert_eq!(shape(r#"^<HOST> - \S+ \[\] "GET"#), s(0));
        assert_eq!(shape(r"from <HOST> port \d+"), Some("start 5 lead".into()));
        // `\d` is any Unicode digit: one to four bytes.
        assert_eq!(shape(r"^<HOST> port \d\d$"), s(0));
    }

    #[test]
    fn anything_else_means_captures() {
        assert_eq!(shape("^[A-Z]+ Login failure <HOST>"), None);
        // The host may hold what would end the part before it.
        assert_eq!(shape(r"^[A-Z]+ Login failure:<HOST>$"), None);
        assert_eq!(shape(r"^[A-Z]+ Login failure \[<HOST>$"), None);
        assert_eq!(shape(r"^[A-Z]+ Login failure \S<HOST>$"), None);
        assert_eq!(shape("(?:GET|POST) <HOST>"), None);
        assert_eq!(shape("for <F-USER>x</F-USER> from <HOST>"), None);
        assert_eq!(shape("(from <HOST>)"), None);
        // Unicode case folding makes `k` one or three bytes wide.
        assert_eq!(shape("(?i)kill <HOST>"), None);
        assert_eq!(shape("(?i-u)kill <HOST>"), Some("span 5 0".into()));
    }
}
