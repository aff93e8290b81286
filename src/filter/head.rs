//! A prefregex head's captures (`split::Head`) found by lazy DFA passes
//! instead of the backtracker, where the head's shape lets the ends of two
//! leftmost-first matches say them:
//!
//! - `^ R (?P<content>.)`, no group read in `R`: the end of `^R.` is one
//!   past the content's start;
//! - `^ (?P<g>M) R (?P<content>.)`, no group read in `M` nor `R`, and `R`
//!   (no look-around) matches the empty string: every way `M` matches,
//!   ending before the end of the text, goes on to a match of the head
//!   (`R` empty, the content's `.` takes any byte of a text without a
//!   newline), so the head's first successful path is `M`'s own: `g` ends
//!   where `^M` does (when that is before the end of the text; else the
//!   caller backtracks), and the content starts one before the end of
//!   `R.` from there.
//!
//! Owns only these constructions and their two searches; the head's
//! groups, its fallbacks and the content's end are `split::Head`'s.

use regex_automata::util::captures::Captures;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Anchored, Input, PatternID};
use regex_syntax::hir::{Hir, HirKind, Look};

use super::lazy::LazyDfa;

/// The DFAs of a head of one of the two shapes.
#[derive(Debug, Clone)]
pub(super) struct Ends {
    /// `^M` and the index of its group `g`, when the head has one.
    group: Option<(LazyDfa, usize)>,
    /// `R` followed by the content's first byte (`^R.` without a group).
    rest: LazyDfa,
    /// The content's group index.
    content: usize,
}

impl Ends {
    /// `parts`: the head's concatenation (only the groups matching reads),
    /// ending in the content's group of one byte class that
    /// takes every byte but perhaps the newline. `None` unless it has one
    /// of the two shapes.
    pub(super) fn new(parts: &[Hir]) -> Option<Ends> {
        let [start, middle @ .., last] = parts else {
            return None;
        };
        if *start.kind() != HirKind::Look(Look::Start) {
            return None;
        }
        let HirKind::Capture(c) = last.kind() else {
            return None;
        };
        let first_byte = (*c.sub).clone();
        let no_groups = |h: &[Hir]| {
            h.iter()
                .all(|p| p.properties().explicit_captures_len() == 0)
        };
        let (group, r) = match middle {
            [g, r @ ..] if matches!(g.kind(), HirKind::Capture(_)) => {
                let HirKind::Capture(g) = g.kind() else {
                    return None;
                };
                let r_hir = Hir::concat(r.to_vec());
                let empty_anywhere = r_hir.properties().minimum_len() == Some(0)
                    && r_hir.properties().look_set().is_empty();
                if !no_groups(std::slice::from_ref(&g.sub)) || !no_groups(r) || !empty_anywhere {
                    return None;
                }
                let m = Hir::concat(vec![start.clone(), (*g.sub).clone()]);
                let index = usize::try_from(g.index).ok()?;
                (Some((LazyDfa::new(&[&m])?, index)), r.to_vec())
            }
            r => {
                if !no_groups(r) {
                    return None;
                }
                let mut v = vec![start.clone()];
                v.extend_from_slice(r);
                (None, v)
            }
        };
        let mut r = r;
        r.push(first_byte);
        Some(Ends {
            group,
            rest: LazyDfa::new(&[&Hir::concat(r)])?,
            content: usize::try_from(c.index).ok()?,
        })
    }

    /// Writes the head's captures on `text` (all ASCII, no newline) into
    /// `caps` (the head's groups), the content's end and the whole match's
    /// at the content's first byte's end as a search of the head would.
    /// `Ok(false)`: the head does not match. `Err`: the shape's condition
    /// does not hold on this text (the caller backtracks).
    pub(super) fn captures(&self, text: &[u8], caps: &mut Captures) -> Result<bool, ()> {
        caps.set_pattern(None);
        let anchored = |from: usize| Input::new(text).range(from..).anchored(Anchored::Yes);
        let group_end = match &self.group {
            None => None,
            Some((m, index)) => match m.search(&anchored(0)) {
                Ok(Some(found)) if found.offset() < text.len() => Some((found.offset(), *index)),
                _ => return Err(()),
            },
        };
        let from = group_end.map_or(0, |(end, _)| end);
        let after = match self.rest.search(&anchored(from)) {
            Ok(Some(found)) => found.offset(),
            // Without a group, `^R.` is the whole head; with one, `R.`
            // always matches before the end of the text.
            Ok(None) if group_end.is_none() => return Ok(false),
            _ => return Err(()),
        };
        let content_at = after.checked_sub(1).ok_or(())?;
        // Slot numbers first: the group table is then not held (nor
        // cloned, a count shared by every thread) while the slots change.
        let slot = |group: usize| caps.group_info().slot(PatternID::ZERO, group).ok_or(());
        let whole = slot(0)?;
        let content = slot(self.content)?;
        let group = match group_end {
            Some((end, index)) => Some((slot(index)?, end)),
            None => None,
        };
        let slots = caps.slots_mut();
        slots.iter_mut().for_each(|s| *s = None);
        let mut set = |at: usize, (start, end): (usize, usize)| -> Result<(), ()> {
            let span = slots.get_mut(at..at + 2).ok_or(())?;
            span[0] = NonMaxUsize::new(start);
            span[1] = NonMaxUsize::new(end);
            Ok(())
        };
        set(whole, (0, after))?;
        set(content, (content_at, after))?;
        if let Some((at, end)) = group {
            set(at, (0, end))?;
        }
        caps.set_pattern(Some(PatternID::ZERO));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::split::ascii_hir;
    use regex_syntax::hir::{self, Hir};

    /// The head of `pattern` (a prefregex ending in `(?P<content>.+)$`)
    /// as `split::Head` makes it, and its `Ends`.
    fn ends(pattern: &str) -> Option<(Ends, regex_automata::meta::Regex)> {
        let hir = ascii_hir(pattern).unwrap();
        let HirKind::Concat(parts) = hir.kind() else {
            panic!("{pattern}: no concatenation");
        };
        let [rest @ .., cap, _end] = parts.as_slice() else {
            panic!("{pattern}: too short");
        };
        let HirKind::Capture(c) = cap.kind() else {
            panic!("{pattern}: no content");
        };
        let HirKind::Repetition(r) = c.sub.kind() else {
            panic!("{pattern}: no content repetition");
        };
        let mut head = rest.to_vec();
        head.push(Hir::capture(hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: r.sub.clone(),
        }));
        let e = Ends::new(&head)?;
        Some((
            e,
            crate::filter::split::build(&[&Hir::concat(head)]).unwrap(),
        ))
    }

    /// Texts of syslog prefixes and messages, every combination of up to
    /// three pieces (no newline: the head is not for such text).
    fn texts() -> Vec<String> {
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
            "[ID 1 a] ",
            "  ",
        ];
        crate::filter::split::tests::combinations(&pieces)
    }

    const SSHD: &str = r"^(?P<mlfid>(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?|[\[\(]?sshd(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?)(?:(?:error|fatal): (?:PAM: )?)?(?P<content>.+)$";

    #[test]
    fn the_dfa_ends_give_the_whole_patterns_captures_or_step_aside() {
        for (p, min_found) in [
            (SSHD, 1000),
            (r"^(?P<mlfid>\S*)\s*(?P<content>.+)$", 1000),
            (r"^(?P<mlfid>\s*\S*?)(?:x)?(?P<content>.+)$", 1000),
            // No group: `^R.` is the whole head, and may not match.
            (
                r"^\s*(?:\S+\s+)?(?:sshd(?:\[\d+\])?: )(?:error: )?(?P<content>.+)$",
                100,
            ),
            (r"^(?:web01|\S+:) (?P<content>.+)$", 100),
        ] {
            let (e, head) = ends(p).unwrap_or_else(|| panic!("no ends for {p}"));
            let whole = regex::bytes::RegexBuilder::new(p)
                .unicode(false)
                .build()
                .unwrap();
            let (mut found, mut aside, mut missed) = (0, 0, 0);
            for text in texts() {
                let text = text.as_bytes();
                let mut caps = head.create_captures();
                let Ok(matched) = e.captures(text, &mut caps) else {
                    aside += 1;
                    continue;
                };
                let want = whole.captures(text);
                assert_eq!(want.is_some(), matched, "{p} on {text:?}");
                let Some(want) = want else {
                    missed += 1;
                    continue;
                };
                found += 1;
                for (i, name) in whole.capture_names().enumerate().skip(1) {
                    let Some(name) = name else { continue };
                    let got = caps.get_group_by_name(name).map(|s| s.range());
                    let w = want.get(i).map(|m| m.range());
                    // The content runs to the end (`Head` sets it): its start here.
                    let (w, got) = match name {
                        "content" => (w.map(|r| r.start), got.map(|r| r.start)),
                        _ => (w.map(|r| r.end), got.map(|r| r.end)),
                    };
                    assert_eq!(w, got, "{p} group {name} on {text:?}");
                }
            }
            assert!(
                found >= min_found,
                "{p}: only {found} found ({aside} aside, {missed} missed)"
            );
            if p.contains(r"(?P<mlfid>\S*)") {
                // A text its `M` takes whole steps aside (the whole head
                // backtracks into `M`).
                let mut caps = head.create_captures();
                assert_eq!(e.captures(b"abc", &mut caps), Err(()), "{p}");
            }
        }
    }

    #[test]
    fn only_heads_of_the_two_shapes_have_dfa_ends() {
        for p in [
            // Not anchored.
            r"(?P<mlfid>\S+) (?P<content>.+)$",
            // `R` does not match the empty string.
            r"^(?P<mlfid>\S*) (?P<content>.+)$",
            // `R` looks around.
            r"^(?P<mlfid>\S*)\b(?P<content>.+)$",
            // A group read after the first.
            r"^(?P<mlfid>\S*)\s*(?P<host>\d+)?(?P<content>.+)$",
            // A group read inside the first.
            r"^(?P<mlfid>(?P<user>\S*))\s*(?P<content>.+)$",
            // A group read not first.
            r"^\s*(?P<mlfid>\S*)\s*(?P<content>.+)$",
        ] {
            assert!(ends(p).is_none(), "{p}");
        }
    }
}
