//! Compiling one pattern of a filter: tags expanded (native or fail2ban
//! dialect), Python syntax translated, the `regex` crate's automaton built
//! (a fail2ban pattern's Unicode automaton on the compile's `Builder`
//! thread, waited for before the filter exists), with the backtracking
//! fallback for what it cannot express; errors placed in the text the user
//! wrote.
//!
//! Owns pattern compilation only; it never matches a line.

use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};

use regex::bytes::Regex;
use regex_syntax::hir::Hir;

use super::backtrack::{Caps, Slow};
use super::py_rewrite::{self, Dups};
use super::{f2b_tags, python, tags, Dialect, FilterError, PatternRef};

/// Largest compiled regex a filter may hold (bytes of NFA); the `fixed`
/// searches are built with the same limit.
pub(crate) const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// The regex crate's automaton of a pattern, built, or being built by the
/// compile's [`Builder`] thread: the Unicode automata of fail2ban's
/// `\S`/`\w` patterns are most of a fail2ban filter's start-up, and the
/// rest of the filter (ASCII copies, the split and screen automata, the
/// date reader) is assembled meanwhile. Every pending build is waited for
/// before the filter exists, so a pattern that does not build is still an
/// error of `compile`.
pub(super) enum Re {
    Ready(Regex),
    Building(mpsc::Receiver<Result<Regex, regex::Error>>),
}

impl Re {
    /// The automaton, or the error that names `which`.
    pub(super) fn wait(self, which: PatternRef, pattern: &str) -> Result<Regex, FilterError> {
        let built = match self {
            Re::Ready(re) => return Ok(re),
            Re::Building(rx) => rx.recv(),
        };
        match built {
            Ok(Ok(re)) => Ok(re),
            Ok(Err(e)) => Err(err(which, pattern, 0, &e.to_string())),
            Err(_) => Err(err(which, pattern, 0, "the regex build stopped")),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// One thread per filter compile that builds automata in the order asked
/// (started on the first; it ends when the builder is dropped, after the
/// last build it was given).
#[derive(Default)]
pub(super) struct Builder {
    jobs: Option<mpsc::Sender<Job>>,
}

impl Builder {
    /// `build` run on the thread, or here when no thread can be started.
    fn build(
        &mut self,
        build: impl FnOnce() -> Result<Regex, regex::Error> + Send + 'static,
    ) -> Re {
        if self.jobs.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("banwarden-regex".into())
                .spawn(move || rx.into_iter().for_each(|job| job()));
            if started.is_ok() {
                self.jobs = Some(tx);
            }
        }
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(build());
        });
        // Without a thread (or with one gone) the job comes back: run here.
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return Re::Building(result),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        job();
        Re::Building(result)
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
    builder: &mut Builder,
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
    let build = {
        let regex = exp.regex.clone();
        move || {
            regex::bytes::RegexBuilder::new(&regex)
                .size_limit(REGEX_SIZE_LIMIT)
                .multi_line(multi_line)
                .build()
        }
    };
    // Where an ASCII copy will serve all-ASCII lines, the Unicode automaton
    // (several times larger) is built on the builder's thread while the
    // copy and the rest of the filter are; otherwise here.
    let with_ascii = dialect == Dialect::Fail2ban && slow.is_none() && !multi_line;
    let re = match with_ascii {
        true => builder.build(build),
        false => Re::Ready(build().map_err(|e| err(which, pattern, 0, &e.to_string()))?),
    };
    let ascii = with_ascii.then(|| ascii(&exp.regex)).flatten();
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
