//! The content screen of a filter with a `prefregex`: one unanchored
//! search over the whole (date-cut) line, built from every failregex's
//! regex-crate pattern with its assertions (`^`, `$`, `\b`...) and groups
//! removed. A line it finds nothing in cannot have a failregex matching its
//! `content`, so the prefregex's captures (a capture search on every
//! candidate line, the costliest part of fail2ban filters such as sshd's)
//! are skipped for it.
//!
//! Owns only that "cannot match" decision, which must stay sound: an
//! assertion only removes matches, so the pattern without assertions matches
//! a superset of strings, and `content` is a substring of the line, so any
//! failregex match in `content` is a match of the screen in the line. It
//! never decides that a line matches.

use regex_automata::meta;
use regex_syntax::hir::{Hir, HirKind, Repetition};

/// The screen, or `None` when it would not help (a failregex that matches
/// the empty string without its assertions) or cannot be built.
pub(super) fn build(fail: &[Hir]) -> Option<meta::Regex> {
    let stripped: Vec<Hir> = fail.iter().map(strip).collect();
    if stripped
        .iter()
        .any(|h| h.properties().minimum_len().is_none_or(|n| n == 0))
    {
        return None;
    }
    let config = meta::Config::new()
        .nfa_size_limit(Some(super::REGEX_SIZE_LIMIT))
        .utf8_empty(false);
    meta::Builder::new()
        .configure(config)
        .build_from_hir(&Hir::alternation(stripped))
        .ok()
}

/// Whether the screen lets `text` through (some failregex might match).
#[inline]
pub(super) fn may_match(screen: &meta::Regex, text: &[u8]) -> bool {
    screen.is_match(text)
}

/// `h` without look-around assertions and without capture groups.
fn strip(h: &Hir) -> Hir {
    match h.kind() {
        HirKind::Look(_) => Hir::empty(),
        HirKind::Capture(c) => strip(&c.sub),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(strip(&r.sub)),
            ..r.clone()
        }),
        HirKind::Concat(v) => Hir::concat(v.iter().map(strip).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.iter().map(strip).collect()),
        _ => h.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(p: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(p)
            .unwrap()
    }

    #[test]
    fn finds_what_an_anchored_failregex_would_match_inside_the_line() {
        let s = build(&[
            hir(r"^Failed \S+ for (?P<user>\S+) from (?P<host>\S+)\b$"),
            hir(r"^\bAccepted \w+ for"),
        ])
        .unwrap();
        // The content a prefregex would cut out stands inside the line.
        assert!(may_match(
            &s,
            b"host sshd[1]: Failed password for root from 192.0.2.1"
        ));
        assert!(may_match(&s, b"host sshd[1]: xAccepted publickey for a"));
        assert!(!may_match(&s, b"host sshd[1]: session opened for user a"));
        assert!(!may_match(&s, b""));
    }

    #[test]
    fn a_failregex_that_may_match_nothing_gives_no_screen() {
        assert!(build(&[hir(r"^Failed"), hir(r"^(?:x)?$")]).is_none());
        assert!(build(&[hir(r"^\b")]).is_none());
    }
}
