//! Compiling one pattern of a filter: tags expanded (native or fail2ban
//! dialect), Python syntax translated, the `regex` crate's automaton built,
//! with the backtracking fallback for what it cannot express; errors placed
//! in the text the user wrote.
//!
//! Owns pattern compilation only; it never matches a line.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use regex::bytes::Regex;
use regex_syntax::hir::Hir;

use super::backtrack::{Caps, Slow};
use super::py_rewrite::{self, Dups};
use super::{f2b_tags, python, tags, Dialect, FilterError, PatternRef};

/// Largest compiled regex a filter may hold (bytes of NFA); the `fixed`
/// searches are built with the same limit.
pub(crate) const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// One pattern compiled.
pub(super) struct Compiled {
    /// For the regex crate: the pattern, or a superset of it when `slow` is set.
    pub(super) re: Regex,
    /// The text of `re` (for the regex sets).
    pub(super) screen: String,
    pub(super) exp: tags::Expanded,
    pub(super) hir: Hir,
    /// The exact pattern on the backtracking fallback.
    pub(super) slow: Option<Slow>,
    /// Whether matches need the general captures path.
    pub(super) general: bool,
    /// Group names the rewrite into regular syntax repeated (`py_rewrite`).
    pub(super) dups: Option<Dups>,
    /// `re` with ASCII classes, for text that is all ASCII (see [`ascii`]).
    pub(super) ascii: Option<Regex>,
    /// Whether `py_rewrite` rewrote the pattern (conditionals enumerated).
    pub(super) rewritten: bool,
}

/// Captures of `re`, or of `slow` (screened by `re`) when set.
pub(super) fn captures<'t>(re: &Regex, slow: Option<&Slow>, text: &'t [u8]) -> Option<Caps<'t>> {
    captures_named(re, slow, None, text)
}

/// [`captures`], with the group names a rewritten pattern repeats.
pub(super) fn captures_named<'t>(
    re: &Regex,
    slow: Option<&Slow>,
    dups: Option<&'t Dups>,
    text: &'t [u8],
) -> Option<Caps<'t>> {
    match slow {
        None => re.captures(text).map(|c| Caps::Fast(c, dups)),
        Some(s) => {
            if !re.is_match(text) {
                return None;
            }
            s.captures(text).ok().flatten()
        }
    }
}

/// Expands the tags of `pattern` and compiles it, with its syntax tree (for
/// `fixed`) and errors placed in the text the user wrote. `multi_line`: `^`
/// and `$` also match at line ends (fail2ban's `maxlines` > 1).
pub(super) fn compile_one(
    which: PatternRef,
    pattern: &str,
    dialect: Dialect,
    multi_line: bool,
    too_slow: &Arc<AtomicU64>,
) -> Result<Compiled, FilterError> {
    let mut exp = match dialect {
        Dialect::Native => tags::expand(pattern),
        Dialect::Fail2ban => f2b_tags::expand(pattern),
    }
    .map_err(|e| err(which, pattern, e.offset, &e.message))?;
    let mut slow = None;
    let mut general = false;
    let mut dups = None;
    let mut rewrote = false;
    if dialect == Dialect::Fail2ban {
        let mut t = python::translate(&exp.regex);
        general = ["(?P<nofail>", "(?P<mlfgained>", "(?P<host_1>", "(?P<cidr>"]
            .iter()
            .any(|g| exp.regex.contains(g));
        // Conditionals and tempered dots written as plain alternations run
        // in the regex crate (the multi-line buffer reads captures by their
        // own names: not there).
        if t.needs_fallback() && !multi_line {
            if let Some(r) = rewritten(&exp.regex) {
                general |= !r.1.is_empty();
                dups = Some(r.1).filter(|d| !d.is_empty());
                t = r.0;
                rewrote = true;
            }
        }
        if t.needs_fallback() {
            general = true;
            let exact = if multi_line {
                format!("(?m){}", t.exact)
            } else {
                t.exact.clone()
            };
            slow = Some(
                Slow::compile(&exact, too_slow.clone())
                    .map_err(|e| err(which, pattern, 0, &format!("fallback engine: {e}")))?,
            );
        }
        exp.regex = t.relaxed;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .multi_line(multi_line)
        .build()
        .parse(&exp.regex)
        .map_err(|e| {
            let (span, msg) = match &e {
                regex_syntax::Error::Parse(p) => (p.span().start.offset, p.kind().to_string()),
                regex_syntax::Error::Translate(t) => (t.span().start.offset, t.kind().to_string()),
                other => (0, other.to_string()),
            };
            err(which, pattern, exp.original_offset(span), &msg)
        })?;
    let re = regex::bytes::RegexBuilder::new(&exp.regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .multi_line(multi_line)
        .build()
        .map_err(|e| err(which, pattern, 0, &e.to_string()))?;
    let ascii = (dialect == Dialect::Fail2ban && slow.is_none() && !multi_line)
        .then(|| ascii(&exp.regex))
        .flatten();
    Ok(Compiled {
        ascii,
        rewritten: rewrote,
        re,
        screen: exp.regex.clone(),
        exp,
        hir,
        slow,
        general,
        dups,
    })
}

/// `pattern` compiled without Unicode: `\S`, `\w`, `\d`, `\s`, `.` and
/// negated classes as byte classes. On text that is all ASCII it matches
/// exactly where the Unicode regex does, with the same groups (on ASCII
/// text the Unicode classes and case folding hold only their ASCII
/// members), and its automata are a fraction of the size: fail2ban's
/// Unicode-class patterns run several times faster on the usual ASCII
/// logs. `None` when the pattern needs Unicode (a `\p{..}` class).
fn ascii(pattern: &str) -> Option<Regex> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// `pattern` rewritten by `py_rewrite` and translated, when that leaves
/// nothing for the fallback and the regex crate parses it.
fn rewritten(pattern: &str) -> Option<(python::Translated, Dups)> {
    let r = py_rewrite::rewrite(pattern)?;
    let t = python::translate(&r.pattern);
    if t.needs_fallback() {
        return None;
    }
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(&t.relaxed)
        .ok()?;
    Some((t, r.dups))
}

pub(super) fn err(which: PatternRef, pattern: &str, offset: usize, message: &str) -> FilterError {
    FilterError {
        which,
        pattern: pattern.to_string(),
        offset,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::{Dialect, Filter, FilterSpec, Outcome};

    /// The ASCII-class regexes run only on all-ASCII text: a line with a
    /// Unicode letter or space is matched by the Unicode regex, as Python
    /// matches it.
    #[test]
    fn unicode_text_keeps_unicode_classes() {
        let f = Filter::compile(FilterSpec {
            name: "u".into(),
            prefregex: Some(r"^\S+\s+<F-CONTENT>.+</F-CONTENT>$".into()),
            failregex: vec![r"^user <F-USER>\w+</F-USER>\s+from <HOST>$".into()],
            dialect: Dialect::Fail2ban,
            ..Default::default()
        })
        .unwrap();
        let user = |line: &str| match f.match_text(line.as_bytes()) {
            Outcome::Failure { user, .. } => {
                Some(String::from_utf8_lossy(user.unwrap_or_default()).into_owned())
            }
            _ => None,
        };
        assert_eq!(user("host user bob from 192.0.2.1").as_deref(), Some("bob"));
        // Non-ASCII word characters, and a no-break space (Unicode `\s`).
        assert_eq!(
            user("hôst user jösé from 192.0.2.1").as_deref(),
            Some("jösé")
        );
        assert_eq!(
            user("host user bob\u{a0}from 192.0.2.1").as_deref(),
            Some("bob")
        );
        // An em space is `\s` in Unicode (and in Python), not in ASCII
        // classes: with those the prefix would take `host\u{2003}user`.
        assert_eq!(
            user("host\u{2003}user bob from 192.0.2.1").as_deref(),
            Some("bob")
        );
    }
}
