//! Filters: compiled regexes that turn one log line into "failure by ADDR",
//! "ignored" or "missed", plus the line's timestamp.
//!
//! Owns regex compilation (tags, error positions) and per-line matching. It keeps
//! no state between lines and knows nothing of jails, windows or firewalls.
//!
//! Matching follows fail2ban's model so its filters map onto this one: the
//! timestamp is found first and cut out of the line (`[10/Oct/2000:13:55:36
//! -0700]` leaves `[]`), the optional `prefregex` must match the rest and its
//! `content` group is what `failregex` and `ignoreregex` see; a failregex matches
//! anywhere unless anchored with `^`/`$`.

mod backtrack;
mod build;
mod chain;
mod compile;
pub mod date;
mod date_cache;
mod f2b_tags;
mod fixed;
mod head;
mod jobs;
mod lazy;
mod matching;
mod multiline;
mod nfa_bound;
pub mod prefilter;
mod prefilter_literals;
mod prefilter_search;
mod py_rewrite;
mod py_syntax;
pub mod python;
mod screen;
mod sessions;
mod split;
pub mod tags;
#[cfg(test)]
mod tests;
mod text;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use regex::bytes::{CaptureLocations, Regex, RegexSet, RegexSetBuilder};

use crate::UnixTime;
use backtrack::Slow;
pub use backtrack::BACKTRACK_LIMIT;
pub(crate) use compile::REGEX_SIZE_LIMIT;
use compile::{compile_one, err, Builder, Compiled, LazyRegex, Re};
use date::{DateDetector, DateError, DateMatch};
use jobs::Pending;
pub use matching::{Examined, SessionLine};
pub use multiline::MAX_LINES;
pub use prefilter::Prefilter;
pub use sessions::SessionMatch;
use text::{cut_date, parse_host_quick, trim_eol};
pub use text::{parse_host, MIN_SUBNET_PREFIX};

/// A filter as written, before compilation: plain strings, so config files and
/// importers (fail2ban `filter.d/*.conf`) both map onto it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub name: String,
    pub description: String,
    pub prefregex: Option<String>,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub datepattern: Option<String>,
    /// How the patterns are written.
    pub dialect: Dialect,
    /// fail2ban's `logtimezone`: the zone of dates without an offset
    /// (`UTC`, `UTC+0200`, `UTC-05`, or a zone name); the system's if unset.
    pub logtimezone: Option<String>,
    /// fail2ban's `maxlines`: with more than 1, the failregexes match the
    /// stream's last `maxlines` lines joined by `\n` (multi-line mode).
    /// 0 and 1 match each line alone.
    pub maxlines: usize,
}

/// The syntax a filter's patterns are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// banwarden's: the `regex` crate's syntax with `<HOST>`, `<ADDR>`, `<F-NAME>`.
    #[default]
    Native,
    /// fail2ban's: Python regexes with fail2ban's tags (`<HOST>` also takes a
    /// DNS name, a bad host here), `<F-NOFAIL>` marking matches that are not
    /// failures. What the `regex` crate cannot express runs on the
    /// backtracking fallback with a bounded cost per line.
    Fail2ban,
}

/// Which pattern of a filter an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternRef {
    Prefregex,
    Failregex(usize),
    Ignoreregex(usize),
    Datepattern,
}

impl std::fmt::Display for PatternRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternRef::Prefregex => write!(f, "prefregex"),
            PatternRef::Failregex(i) => write!(f, "failregex[{i}]"),
            PatternRef::Ignoreregex(i) => write!(f, "ignoreregex[{i}]"),
            PatternRef::Datepattern => write!(f, "datepattern"),
        }
    }
}

/// A filter that does not compile. `offset` is a byte offset into the pattern
/// as the user wrote it (tags included), so callers can point at it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{which}: {message}\n    {pattern}\n    {caret:>width$}", caret = "^", width = self.offset + 1)]
pub struct FilterError {
    pub which: PatternRef,
    pub pattern: String,
    pub offset: usize,
    pub message: String,
}

/// What a line amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// No failregex matched (or the prefregex did not).
    Missed,
    /// A failregex matched, but so did ignoreregex number `regex`.
    Ignored { regex: usize },
    /// Failregex number `regex` matched but its host is not an IP address.
    BadHost { regex: usize },
    /// A failure by `host`.
    Failure {
        regex: usize,
        host: IpAddr,
        /// A subnet the failregex captured (fail2ban's `<SUBNET>`,
        /// `<ADDR>/<CIDR>`): its length, `host` then its network address.
        /// `None`: the address alone.
        prefix: Option<u8>,
        user: Option<&'a [u8]>,
    },
}

/// Where a failregex's captures stand, as byte ranges (for display: dry-run
/// highlights the host and user it read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    pub host: Option<std::ops::Range<usize>>,
    pub user: Option<std::ops::Range<usize>>,
}

/// Matching state of one stream (a file, a journal, a command, one worker's
/// run of chunks) for one filter, made by [`Filter::new_state`]; never shared
/// between streams or filters. It only saves work: reused capture slots, a
/// buffer for lines with a date cut out of their middle, and the date cache.
/// A line's outcome and date never depend on it.
#[derive(Debug)]
pub struct LineState {
    buf: Vec<u8>,
    /// Per failregex: slots, the host group, the user groups (`user`,
    /// then fail2ban's `alt_user`, `alt_user_N`).
    locs: Vec<(CaptureLocations, Option<usize>, Vec<usize>)>,
    dates: date_cache::DateCache,
    /// fail2ban's multi-line sessions (`<F-MLFID>`), bounded.
    sessions: sessions::Sessions,
    /// fail2ban's multi-line buffer (`maxlines`), bounded.
    lines: multiline::LineBuffer,
}

/// A compiled filter. Shared read-only between threads.
#[derive(Debug, Clone)]
pub struct Filter {
    pub spec: FilterSpec,
    /// Unicode automata (see `compile::LazyRegex`: built when first used
    /// where an ASCII copy serves all-ASCII text).
    prefregex: Option<LazyRegex>,
    /// The fallback engine for the prefregex, when it needs one.
    prefregex_slow: Option<Slow>,
    /// Group names the prefregex's rewrite repeated (see `py_rewrite`).
    prefregex_dups: Option<py_rewrite::Dups>,
    /// The prefregex and failregexes with ASCII classes, for all-ASCII
    /// text (fail2ban dialect, fast path; see `compile::ascii`).
    prefregex_ascii: Option<Regex>,
    fail_ascii: Vec<Option<Regex>>,
    /// The prefregex matched up to its content only, where it allows (see
    /// `split::Head`; all-ASCII text).
    prefregex_head: Option<split::Head>,
    /// Per failregex: its alternation split (see `split::Split`; all-ASCII
    /// text), for the patterns `py_rewrite` enumerated.
    fail_split: Vec<Option<split::Split>>,
    /// All failregexes in one pass, where they allow (see `screen::Screen`;
    /// all-ASCII text, the general path).
    fail_screen: Option<screen::Screen>,
    /// Per failregex: which optional groups it has (the others are not
    /// looked up).
    fail_optional: Vec<backtrack::Optional>,
    /// Per failregex: the fallback engine, when the regex crate cannot
    /// express it (then `fail` holds a superset that screens lines).
    fail_slow: Vec<Option<Slow>>,
    /// Per failregex: group names its rewrite repeated (see `py_rewrite`).
    fail_dups: Vec<Option<py_rewrite::Dups>>,
    /// Per ignoreregex: the same.
    ignore_slow: Vec<Option<Slow>>,
    /// Whether the prefregex names sessions (`<F-MLFID>`, fail2ban).
    mlfid: bool,
    /// Lines matched together (1: each alone; see `multiline`).
    maxlines: usize,
    /// Whether a line must go through the general captures path
    /// (fallback patterns, `<F-NOFAIL>`, several host groups).
    general: bool,
    /// Lines a fallback pattern gave up on (its bound reached).
    too_slow: Arc<AtomicU64>,
    prefix_host: bool,
    fail_set: RegexSet,
    fail: Vec<LazyRegex>,
    /// Per failregex: how to find the host without captures, when its
    /// shape allows (see `fixed`).
    host_at: Vec<Option<fixed::HostAt>>,
    ignore_set: RegexSet,
    dates: DateDetector,
    /// Per failregex: literal sets one of which every match contains, best
    /// first (from the syntax tree `compile` builds anyway).
    literal_sets: Vec<Vec<Vec<Vec<u8>>>>,
    /// The candidate-line prefilter built from them, if every failregex has
    /// one; built when first asked for (dry-run builds its own, from a
    /// sample of its input).
    prefilter: OnceLock<Option<Prefilter>>,
}

impl Filter {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Lines on which a fallback pattern reached its backtracking bound
    /// (each counted as a miss), since the filter was compiled.
    pub fn too_slow(&self) -> u64 {
        self.too_slow.load(Ordering::Relaxed)
    }

    /// Whether a line's outcome can depend on earlier lines of its stream
    /// (fail2ban's `<F-MLFID>` sessions, or its `maxlines` buffer): such a
    /// stream must be matched in order, through one state, every line.
    pub fn depends_on_earlier_lines(&self) -> bool {
        self.mlfid || self.maxlines > 1
    }

    /// Whether a stream must be matched by one worker, in order, every
    /// line (fail2ban's `maxlines` buffer). Sessions (`<F-MLFID>`) need not:
    /// their lines are matched anywhere and counted in order
    /// ([`examine_deferred`](Self::examine_deferred), [`count_session`](Self::count_session)).
    pub fn needs_one_worker(&self) -> bool {
        self.maxlines > 1
    }

    /// Whether [`examine_deferred`](Self::examine_deferred) can leave lines
    /// to their sessions (fail2ban `<F-MLFID>` without `maxlines`).
    pub fn defers_sessions(&self) -> bool {
        self.mlfid && self.maxlines <= 1
    }

    /// Fresh matching state for one stream read through this filter.
    pub fn new_state(&self) -> LineState {
        self.new_state_with(true)
    }

    /// [`new_state`](Self::new_state); `date_cache: false` runs the date
    /// detector on every line (for comparison: the answers are the same).
    pub fn new_state_with(&self, date_cache: bool) -> LineState {
        // The slots serve the single-line path without a prefregex, which
        // is not the general one; there the Unicode automata are built
        // anyway. Elsewhere the ASCII copy (same groups) says their shape
        // without building them.
        let locs = self
            .fail
            .iter()
            .zip(&self.fail_ascii)
            .map(|(re, ascii)| {
                let re: &Regex = match (ascii, self.general || self.prefregex.is_some()) {
                    (Some(ascii), true) => ascii,
                    _ => re,
                };
                let at = |g: &str| re.capture_names().position(|n| n == Some(g));
                let alt = tags::ALT_USER_GROUP;
                let users = [tags::USER_GROUP.to_string(), alt.to_string()]
                    .into_iter()
                    .chain((1..10).map(|n| format!("{alt}_{n}")))
                    .filter_map(|g| at(&g))
                    .collect();
                (re.capture_locations(), at(tags::HOST_GROUP), users)
            })
            .collect();
        LineState {
            buf: Vec::new(),
            locs,
            dates: date_cache::DateCache::new(&self.dates, date_cache),
            sessions: sessions::Sessions::default(),
            lines: multiline::LineBuffer::default(),
        }
    }

    /// The candidate-line prefilter: a line that holds none of its literals
    /// (not even where a date is cut out, see [`Prefilter::spans_cut`]) is
    /// missed. `None`: every line must be examined.
    pub fn prefilter(&self) -> Option<&Prefilter> {
        self.prefilter
            .get_or_init(|| self.prefilter_for(b""))
            .as_ref()
    }

    /// A prefilter whose literals are chosen to be rare in `sample` (the
    /// start of a log), from the same literal sets as [`prefilter`](Self::prefilter).
    /// A multi-line filter has none: every line must enter its buffer.
    pub fn prefilter_for(&self, sample: &[u8]) -> Option<Prefilter> {
        if self.maxlines > 1 {
            return None;
        }
        Prefilter::new(self, sample)
    }

    /// Finds the line's time (`None`: no recognisable timestamp) and matches it.
    /// `line` may end in `\n`; `now` anchors year inference.
    pub fn examine<'l>(
        &self,
        line: &'l [u8],
        now: UnixTime,
        state: &'l mut LineState,
    ) -> (Option<DateMatch>, Outcome<'l>) {
        let date = self.date(line, now, state);
        (date, self.examine_dated(line, date, state).0)
    }

    /// The first half of [`examine`](Self::examine): the line's time only
    /// (the scan dates every line, and examines only those its prefilter
    /// cannot rule out). `line` may end in `\n`.
    #[inline(always)]
    pub fn date(&self, line: &[u8], now: UnixTime, state: &mut LineState) -> Option<DateMatch> {
        let raw = line.strip_suffix(b"\n").unwrap_or(line);
        state.dates.detect(&self.dates, raw, now)
    }

    /// The second half of [`examine`](Self::examine): cuts `date` (as
    /// [`date`](Self::date) found it on this line) out and matches the rest,
    /// reusing the state's capture slots. The spans are byte offsets into
    /// `line`.
    pub fn examine_dated<'l>(
        &self,
        line: &'l [u8],
        date: Option<DateMatch>,
        state: &'l mut LineState,
    ) -> (Outcome<'l>, Spans) {
        if self.maxlines > 1 {
            let LineState {
                buf,
                lines,
                sessions,
                ..
            } = state;
            let (text, cut) = cut_date(
                trim_eol(line),
                date,
                buf,
                self.spec.dialect == Dialect::Fail2ban,
            );
            let sessions = self.mlfid.then_some(sessions);
            let (outcome, spans) = self.match_buffered(text, lines, sessions, date.map(|d| d.ts));
            return (outcome, cut.spans_in_line(spans));
        }
        if self.prefregex.is_some() || self.general {
            let LineState { buf, sessions, .. } = state;
            let sessions = self.mlfid.then_some(sessions);
            let (text, cut) = cut_date(
                trim_eol(line),
                date,
                buf,
                self.spec.dialect == Dialect::Fail2ban,
            );
            let (outcome, spans) = self.match_inner(text, sessions, date.map(|d| d.ts));
            return (outcome, cut.spans_in_line(spans));
        }
        let LineState { buf, locs, .. } = state;
        let (text, cut) = cut_date(
            trim_eol(line),
            date,
            buf,
            self.spec.dialect == Dialect::Fail2ban,
        );
        let none = Spans::default();
        let regex = match self.select(text) {
            Ok(regex) => regex,
            Err(outcome) => return (outcome, none),
        };
        let (host_m, user_m, read) = match self.fixed_host(regex, text) {
            Some(None) => return (Outcome::Missed, none),
            Some(Some(found)) => (Some(found.span), None, found.addr),
            None => {
                let Some((slots, host_g, user_g)) = locs.get_mut(regex) else {
                    return (Outcome::Missed, none);
                };
                if self.fail[regex].captures_read(slots, text).is_none() {
                    return (Outcome::Missed, none);
                }
                let group = |g: Option<usize>| g.and_then(|g| slots.get(g)).map(|(s, e)| s..e);
                // The first user group with text, else the first that took part.
                let user = user_g
                    .iter()
                    .filter_map(|g| group(Some(*g)))
                    .find(|r| !r.is_empty())
                    .or_else(|| user_g.iter().find_map(|g| group(Some(*g))));
                (group(*host_g), user, None)
            }
        };
        let host = read.or_else(|| host_m.clone().and_then(|r| parse_host_quick(&text[r])));
        let user = user_m.clone().map(|r| &text[r]);
        let spans = cut.spans_in_line(Spans {
            host: host_m,
            user: user_m,
        });
        match host {
            Some(host) => (
                Outcome::Failure {
                    regex,
                    host,
                    prefix: None,
                    user,
                },
                spans,
            ),
            None => (Outcome::BadHost { regex }, spans),
        }
    }

    /// [`examine_dated`](Self::examine_dated) with captures allocated per
    /// line (the reference in tests).
    #[cfg(test)]
    fn examine_with_date<'l>(
        &self,
        line: &'l [u8],
        date: Option<DateMatch>,
        buf: &'l mut Vec<u8>,
    ) -> (Outcome<'l>, Spans) {
        let (text, cut) = cut_date(
            trim_eol(line),
            date,
            buf,
            self.spec.dialect == Dialect::Fail2ban,
        );
        let (outcome, spans) = self.match_text_spans(text);
        (outcome, cut.spans_in_line(spans))
    }

    /// Matches text that has no timestamp (already cut out, or a journal message).
    pub fn match_text<'l>(&self, text: &'l [u8]) -> Outcome<'l> {
        self.match_text_spans(text).0
    }

    /// [`match_text`](Self::match_text), also saying where the host and user
    /// captures stand in `text` (for display).
    pub fn match_text_spans<'l>(&self, text: &'l [u8]) -> (Outcome<'l>, Spans) {
        self.match_inner(text, None, None)
    }

    /// [`match_text_spans`](Self::match_text_spans) for a stream's text
    /// without a date in it (journal entries; `time` is the entry's): the
    /// stream's state carries a fail2ban filter's sessions (`<F-MLFID>`)
    /// from entry to entry.
    pub fn match_text_in<'l>(
        &self,
        text: &'l [u8],
        time: Option<UnixTime>,
        state: &'l mut LineState,
    ) -> (Outcome<'l>, Spans) {
        if self.maxlines > 1 {
            let sessions = self.mlfid.then_some(&mut state.sessions);
            return self.match_buffered(text, &mut state.lines, sessions, time);
        }
        self.match_inner(text, self.mlfid.then_some(&mut state.sessions), time)
    }
}
