//! Compiling one pattern of a filter: tags expanded (native or fail2ban
//! dialect), Python syntax translated, the `regex` crate's automaton built
//! (a fail2ban pattern's Unicode automaton, beside its ASCII copy, when a
//! line first needs it if `nfa_bound` shows it builds, else at once, on
//! either of the compile's threads, and waited for before the filter
//! exists), with
//! the backtracking fallback for what it cannot express; errors placed in
//! the text the user wrote.
//!
//! Owns pattern compilation only; it never matches a line.

use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use regex::bytes::Regex;
use regex_syntax::hir::Hir;

use super::backtrack::{Caps, Slow};
use super::jobs::{Jobs, Pending};
use super::nfa_bound;
use super::py_rewrite::{self, Dups};
use super::{f2b_tags, python, tags, Dialect, FilterError, PatternRef};

/// Largest compiled regex a filter may hold (bytes of NFA); the `fixed`
/// searches are built with the same limit.
pub(crate) const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// The regex crate's automaton of a pattern while the filter is compiled:
/// built, being built by the compile's helper thread ([`Builder`]), or
/// known to build and left for later ([`LazyRegex`]). The Unicode automata
/// of fail2ban's `\S`/`\w` patterns are most of a fail2ban filter's
/// start-up, and all-ASCII lines run in their ASCII copies: where a
/// pattern's NFAs are within the size limit by `nfa_bound` (its syntax was
/// checked by the parse), its Unicode automaton is built when a line first
/// needs it. A pattern over the bound is built at once, and every pending
/// build is waited for before the filter exists, so a pattern that does
/// not build is still an error of `compile`.
pub(super) enum Re {
    Ready(Regex),
    /// Over the bound: to be built at once ([`start`](Re::start)ed on the
    /// helper, or built where it is waited for).
    Unbuilt {
        pattern: String,
        multi_line: bool,
    },
    Building(Pending<Result<Regex, regex::Error>>),
    Deferred(LazyRegex),
}

impl Re {
    /// The automaton, or the error that names `which`.
    pub(super) fn wait(self, which: PatternRef, pattern: &str) -> Result<LazyRegex, FilterError> {
        let built = match self {
            Re::Ready(re) => return Ok(LazyRegex::Built(re)),
            Re::Deferred(re) => return Ok(re),
            Re::Unbuilt {
                pattern,
                multi_line,
            } => Some(unicode(&pattern, multi_line, REGEX_SIZE_LIMIT)),
            Re::Building(pending) => pending.wait(),
        };
        match built {
            Some(Ok(re)) => Ok(LazyRegex::Built(re)),
            Some(Err(e)) => Err(err(which, pattern, 0, &e.to_string())),
            None => Err(err(which, pattern, 0, "the regex build stopped")),
        }
    }

    /// An automaton to build (or a deferred one, for a filter whose every
    /// line will use it) started on the helper thread.
    pub(super) fn start(self, builder: &mut Builder) -> Re {
        let (pattern, multi_line) = match self {
            Re::Deferred(LazyRegex::Later(later)) => (later.pattern.clone(), later.multi_line),
            Re::Unbuilt {
                pattern,
                multi_line,
            } => (pattern, multi_line),
            re => return re,
        };
        Re::Building(builder.spawn(move || unicode(&pattern, multi_line, REGEX_SIZE_LIMIT)))
    }
}

/// A pattern's automaton in a filter: built, or (a fail2ban pattern's
/// Unicode automaton, known to build, whose ASCII copy serves all-ASCII
/// text) built the first time it is used, once for all clones of the
/// filter.
#[derive(Debug, Clone)]
pub(super) enum LazyRegex {
    Built(Regex),
    Later(Arc<Later>),
}

#[derive(Debug)]
pub(super) struct Later {
    pattern: String,
    multi_line: bool,
    /// The ASCII copy: what serves if the build fails after all.
    ascii: Regex,
    built: OnceLock<Regex>,
}

impl Deref for LazyRegex {
    type Target = Regex;

    fn deref(&self) -> &Regex {
        match self {
            LazyRegex::Built(re) => re,
            LazyRegex::Later(later) => later.built.get_or_init(|| later.build()),
        }
    }
}

impl LazyRegex {
    /// Whether the automaton exists yet.
    #[cfg(test)]
    pub(super) fn is_built(&self) -> bool {
        match self {
            LazyRegex::Built(_) => true,
            LazyRegex::Later(later) => later.built.get().is_some(),
        }
    }
}

impl Later {
    /// Within the limit by `nfa_bound`, the build does not fail; if it does
    /// (the bound wrong), it is built without the limit, and failing that
    /// the ASCII copy serves (matching only ASCII classes): logged, never
    /// a panic on the line path.
    fn build(&self) -> Regex {
        let e = match unicode(&self.pattern, self.multi_line, REGEX_SIZE_LIMIT) {
            Ok(re) => return re,
            Err(e) => e,
        };
        tracing::warn!(pattern = %self.pattern, error = %e, "filter regex over its size bound");
        match unicode(&self.pattern, self.multi_line, usize::MAX) {
            Ok(re) => re,
            Err(e) => {
                tracing::error!(pattern = %self.pattern, error = %e, "filter regex did not build");
                self.ascii.clone()
            }
        }
    }
}

/// The regex crate's (Unicode) automaton of `pattern`.
fn unicode(pattern: &str, multi_line: bool, size_limit: usize) -> Result<Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .size_limit(size_limit)
        .multi_line(multi_line)
        .build()
}

/// What one filter compile shares between its patterns: the helper thread
/// and the NFA bounds of the Unicode classes seen so far.
#[derive(Default)]
pub(super) struct Builder {
    jobs: Jobs,
    bounds: Bounds,
}

/// The NFA bounds of the Unicode classes seen so far, for the patterns
/// compiled on either thread.
pub(super) type Bounds = Arc<Mutex<nfa_bound::Cache>>;

impl Builder {
    pub(super) fn bounds(&self) -> Bounds {
        self.bounds.clone()
    }

    /// A part of the filter built on the helper thread (or where it is
    /// waited for).
    pub(super) fn spawn<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pending<T> {
        self.jobs.spawn(work)
    }
}

/// One pattern compiled.
pub(super) struct Compiled {
    /// For the regex crate: the pattern, or a superset of it when `slow` is
    /// set (perhaps still building: [`Re`]).
    pub(super) re: Re,
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
    bounds: &Bounds,
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
    // Where an ASCII copy will serve all-ASCII lines, the Unicode automaton
    // (several times larger) is built when first used if it is known to
    // build, else by the caller (on the helper thread while the rest is
    // assembled); otherwise here.
    let with_ascii = dialect == Dialect::Fail2ban && slow.is_none() && !multi_line;
    let ascii = with_ascii.then(|| ascii(&exp.regex)).flatten();
    let fits = |hir: &Hir| {
        let mut bounds = bounds.lock().unwrap_or_else(PoisonError::into_inner);
        bounds.nfa_bytes(hir) <= REGEX_SIZE_LIMIT
    };
    let re = match &ascii {
        Some(a) if fits(&hir) => Re::Deferred(LazyRegex::Later(Arc::new(Later {
            pattern: exp.regex.clone(),
            multi_line,
            ascii: a.clone(),
            built: OnceLock::new(),
        }))),
        _ if with_ascii => Re::Unbuilt {
            pattern: exp.regex.clone(),
            multi_line,
        },
        _ => Re::Ready(
            unicode(&exp.regex, multi_line, REGEX_SIZE_LIMIT)
                .map_err(|e| err(which, pattern, 0, &e.to_string()))?,
        ),
    };
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

    /// The Unicode automata build on the builder's thread while the filter
    /// is assembled, yet a compile error is the first pattern's that fails,
    /// as when each was built in turn: here one whose Unicode automaton is
    /// over the size limit (its ASCII copy is small) before one that does
    /// not parse.
    #[test]
    fn a_pattern_that_builds_too_large_is_the_error_in_its_turn() {
        use crate::filter::PatternRef;
        let compile = |failregex: Vec<&str>| {
            Filter::compile(FilterSpec {
                name: "big".into(),
                failregex: failregex.into_iter().map(String::from).collect(),
                dialect: Dialect::Fail2ban,
                ..Default::default()
            })
        };
        let big = r"^\w{300} \w{300} \w{300} \w{300} from <HOST>$";
        let e = compile(vec!["^ok from <HOST>$", big, "^(unclosed <HOST>$"]).unwrap_err();
        assert_eq!(e.which, PatternRef::Failregex(1), "{e}");
        assert!(e.message.contains("size limit"), "{e}");
        let e = compile(vec!["^(unclosed <HOST>$", big]).unwrap_err();
        assert_eq!(e.which, PatternRef::Failregex(0), "{e}");
        assert!(compile(vec!["^ok from <HOST>$", "^also <HOST>$"]).is_ok());
    }

    /// A fail2ban filter on the general path (here `<F-NOFAIL>`) matches
    /// all-ASCII lines in its ASCII copies: its Unicode automata are built
    /// by the first line that needs them, not by the compile.
    #[test]
    fn unicode_automata_wait_for_the_first_line_that_needs_them() {
        let f = Filter::compile(FilterSpec {
            name: "u".into(),
            prefregex: Some(r"^\S+\s+<F-CONTENT>.+</F-CONTENT>$".into()),
            failregex: vec![
                r"^<F-NOFAIL>user</F-NOFAIL> <F-USER>\w+</F-USER>\s+from <HOST>$".into(),
                r"^bad user <F-USER>\w+</F-USER>\s+from <HOST>$".into(),
            ],
            dialect: Dialect::Fail2ban,
            ..Default::default()
        })
        .unwrap();
        let built = |f: &Filter| {
            let fail = f.fail.iter().filter(|r| r.is_built()).count();
            (f.prefregex.as_ref().is_some_and(|r| r.is_built()), fail)
        };
        assert_eq!(built(&f), (false, 0));
        let _state = f.new_state();
        let bad = |line: &str| match f.match_text(line.as_bytes()) {
            Outcome::Failure { user, .. } => user.map(|u| String::from_utf8_lossy(u).into_owned()),
            _ => None,
        };
        assert_eq!(
            bad("host bad user bob from 192.0.2.1").as_deref(),
            Some("bob")
        );
        assert_eq!(built(&f), (false, 0));
        assert_eq!(
            bad("hôst bad user jösé from 192.0.2.1").as_deref(),
            Some("jösé")
        );
        assert!(built(&f).0 && built(&f).1 >= 1, "{:?}", built(&f));
    }

    /// Every automaton left to be built later, of every filter fail2ban
    /// installs (read at test time), is within its bound, and the regex
    /// crate's NFAs are within the bound: the size check `compile` skips
    /// for them could not have failed.
    #[test]
    fn installed_fail2ban_filters_build_within_their_bounds() {
        use super::{nfa_bound, LazyRegex};
        let dir = std::path::Path::new("/etc/fail2ban");
        let entries = std::fs::read_dir(dir.join("filter.d")).expect("fail2ban is installed");
        let (mut deferred, mut filters) = (0, 0);
        let mut cache = nfa_bound::Cache::default();
        for entry in entries.flatten() {
            let path = entry.path();
            let (Some(stem), Some("conf")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let Ok(c) = crate::fail2ban::compile_ref(&format!("fail2ban:{stem}"), dir, dir) else {
                continue;
            };
            filters += 1;
            for re in c.filter.fail.iter().chain(&c.filter.prefregex) {
                let LazyRegex::Later(later) = re else {
                    continue;
                };
                let hir = regex_syntax::ParserBuilder::new()
                    .utf8(false)
                    .multi_line(later.multi_line)
                    .build()
                    .parse(&later.pattern)
                    .unwrap();
                let (bound, built) = (cache.nfa_bytes(&hir), nfa_bound::tests::built(&hir));
                assert!(
                    bound <= super::REGEX_SIZE_LIMIT,
                    "{stem}: {}",
                    later.pattern
                );
                assert!(
                    built <= bound,
                    "{stem}: {built} > {bound}: {}",
                    later.pattern
                );
                deferred += 1;
            }
        }
        assert!(
            filters > 50 && deferred > 50,
            "{filters} filters, {deferred} patterns"
        );
    }

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
