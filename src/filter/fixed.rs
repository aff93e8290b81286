//! Failregexes whose host stands at a fixed distance from both ends of the
//! match: `Login failure <HOST>` (14 bytes after the start, none before the
//! end), `^<HOST> port [0-9]{2}$`. For those the host is read off the match
//! span, so a matching line costs only the regex's DFA search, not a capture
//! engine (the bounded backtracker cost twice the search on every match).
//!
//! Owns only that decision, made once per regex from its syntax tree. It must
//! stay exact: it says `Some` only when every match of the regex has the host
//! group at those offsets (the parts before and after it match a fixed number
//! of bytes, whatever they match), and `None` when a `user` group is wanted
//! too or the shape is anything else.

use regex_syntax::hir::{Hir, HirKind};

use super::tags;

/// Bytes before and after the host group in every match of `regex` (as
/// expanded from tags), or `None` when they vary or a `user` group exists.
pub fn host_offsets(regex: &str) -> Option<(usize, usize)> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(regex)
        .ok()?;
    if has_group(&hir, tags::USER_GROUP) {
        return None;
    }
    let items: &[Hir] = match hir.kind() {
        HirKind::Concat(items) => items,
        _ => std::slice::from_ref(&hir),
    };
    let at = items.iter().position(|h| is_group(h, tags::HOST_GROUP))?;
    let width = |part: &[Hir]| {
        let p = Hir::concat(part.to_vec());
        let p = p.properties();
        match (p.minimum_len(), p.maximum_len()) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        }
    };
    Some((width(&items[..at])?, width(&items[at + 1..])?))
}

fn is_group(h: &Hir, name: &str) -> bool {
    matches!(h.kind(), HirKind::Capture(c) if c.name.as_deref() == Some(name))
}

fn has_group(h: &Hir, name: &str) -> bool {
    match h.kind() {
        HirKind::Capture(c) => c.name.as_deref() == Some(name) || has_group(&c.sub, name),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(|h| has_group(h, name)),
        HirKind::Repetition(r) => has_group(&r.sub, name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pattern: &str) -> Option<(usize, usize)> {
        host_offsets(&tags::expand(pattern).unwrap().regex)
    }

    #[test]
    fn fixed_parts_on_both_sides() {
        assert_eq!(offsets("Login failure <HOST>"), Some((14, 0)));
        assert_eq!(offsets("^Login failure <HOST>$"), Some((14, 0)));
        assert_eq!(offsets(r"^<HOST> port [0-9][0-9]$"), Some((0, 8)));
        assert_eq!(offsets(r"\bfrom <ADDR>:[0-9]{4}\b"), Some((5, 5)));
        assert_eq!(offsets("(?:GET|PUT) <HOST>"), Some((4, 0)));
    }

    #[test]
    fn anything_variable_or_a_user_means_captures() {
        assert_eq!(offsets("^[A-Z]+ Login failure <HOST>$"), None);
        assert_eq!(offsets(r"from <HOST> port \d+"), None);
        // `\d` is any Unicode digit: one to four bytes.
        assert_eq!(offsets(r"^<HOST> port \d\d$"), None);
        assert_eq!(offsets("(?:GET|POST) <HOST>"), None);
        assert_eq!(offsets("for <F-USER>x</F-USER> from <HOST>"), None);
        assert_eq!(offsets("(from <HOST>)"), None);
        // Unicode case folding makes `k` one or three bytes wide.
        assert_eq!(offsets("(?i)kill <HOST>"), None);
        assert_eq!(offsets("(?i-u)kill <HOST>"), Some((5, 0)));
    }
}
