//! Matching one line's text (its date already cut out) against a filter:
//! the prefregex and its `content`, which failregex wins (one pass for all,
//! the fallback engine only for its own patterns), ignoreregex, the host
//! and user captures, and fail2ban's sessions for `<F-MLFID>` filters.
//!
//! Owns the single-line outcome; the multi-line buffer is `multiline`'s,
//! dates are `date`'s. Keeps no state of its own between lines.

use super::backtrack::{Caps, Slow};
use super::compile::{captures_named, LazyRegex};
use super::date::DateMatch;
use super::text::{cut_date, subnet_of, trim_eol};
use super::{sessions, tags, Dialect, Filter, LineState, Outcome, Spans};
use crate::UnixTime;

/// A line of a fail2ban `<F-MLFID>` session whose failregex matched: what
/// it carries, before its session says how it counts (in line order,
/// see [`Filter::count_session`]).
#[derive(Debug, Clone, Copy)]
pub struct SessionLine<'l> {
    /// The session (what the prefregex's `<F-MLFID>` took).
    pub id: &'l [u8],
    pub m: sessions::SessionMatch,
    pub user: Option<&'l [u8]>,
}

/// What matching one line gave: an outcome, or a session line whose
/// outcome its session decides.
#[derive(Debug, Clone, Copy)]
pub enum Examined<'l> {
    Done(Outcome<'l>),
    Session(SessionLine<'l>),
}

impl Filter {
    /// [`match_text_spans`](Self::match_text_spans); with `sessions`, a
    /// fail2ban `<F-MLFID>` filter's lines count within their session
    /// (`time`: the line's).
    pub(super) fn match_inner<'l>(
        &self,
        text: &'l [u8],
        sessions: Option<&mut sessions::Sessions>,
        time: Option<UnixTime>,
    ) -> (Outcome<'l>, Spans) {
        match (self.match_deferred(text, sessions.is_some()), sessions) {
            ((Examined::Done(o), spans), _) => (o, spans),
            ((Examined::Session(line), spans), Some(sessions)) => {
                (Self::session_outcome(sessions, line, time), spans)
            }
            // Not asked for (`defer` false).
            ((Examined::Session(_), spans), None) => (Outcome::Missed, spans),
        }
    }

    /// [`examine_dated`](Self::examine_dated), except that a line of a
    /// fail2ban session comes back as [`Examined::Session`], matched but not
    /// counted: [`count_session`](Self::count_session) says, with the
    /// stream's state, in line order, what it amounts to. The state here
    /// only lends its buffers (any worker's will do).
    pub fn examine_deferred<'l>(
        &self,
        line: &'l [u8],
        date: Option<DateMatch>,
        state: &'l mut LineState,
    ) -> (Examined<'l>, Spans) {
        if !self.defers_sessions() {
            let (o, spans) = self.examine_dated(line, date, state);
            return (Examined::Done(o), spans);
        }
        let (text, cut) = cut_date(
            trim_eol(line),
            date,
            &mut state.buf,
            self.spec.dialect == Dialect::Fail2ban,
        );
        let (ex, spans) = self.match_deferred(text, true);
        (ex, cut.spans_in_line(spans))
    }

    /// [`match_text_in`](Self::match_text_in) for a journal entry, with a
    /// session line left to [`count_session`](Self::count_session) as
    /// [`examine_deferred`](Self::examine_deferred) does (`time`: the
    /// entry's).
    pub fn match_entry_deferred<'l>(
        &self,
        text: &'l [u8],
        time: Option<UnixTime>,
        state: &'l mut LineState,
    ) -> (Examined<'l>, Spans) {
        if !self.defers_sessions() {
            let (o, spans) = self.match_text_in(text, time, state);
            return (Examined::Done(o), spans);
        }
        self.match_deferred(text, true)
    }

    /// How a session line counts, in its stream's `state` (lines of a
    /// stream in order); `time` is the line's (a session lasts
    /// [`SESSION_SECONDS`](sessions::SESSION_SECONDS) from its first).
    pub fn count_session<'u>(
        &self,
        state: &mut LineState,
        line: SessionLine<'u>,
        time: Option<UnixTime>,
    ) -> Outcome<'u> {
        Self::session_outcome(&mut state.sessions, line, time)
    }

    /// How a session line counts in `sessions` (its stream's, in order).
    pub(super) fn session_outcome<'u>(
        sessions: &mut sessions::Sessions,
        line: SessionLine<'u>,
        time: Option<UnixTime>,
    ) -> Outcome<'u> {
        match sessions.count(line.id, line.m, line.user, time) {
            Some((r, host)) => Outcome::Failure {
                regex: r,
                host,
                prefix: None,
                user: line.user.filter(|_| r == line.m.regex),
            },
            None => Outcome::Missed,
        }
    }

    /// Matches `text` without state: with `defer`, a line of a session
    /// (fail2ban `<F-MLFID>`) comes back as [`Examined::Session`] for its
    /// session to decide; else as if it had no session.
    pub(super) fn match_deferred<'l>(&self, text: &'l [u8], defer: bool) -> (Examined<'l>, Spans) {
        let done = |o: Outcome<'l>, spans| (Examined::Done(o), spans);
        let none = Spans::default();
        let mut prefix_caps = None;
        let mut content_at = 0;
        // All-ASCII text (the usual log line) runs in the ASCII-class
        // regexes, where there are: same matches, smaller automata.
        let ascii = text.is_ascii();
        let content = match &self.prefregex {
            None => text,
            Some(re) => match self.prefix_captures(re, text, ascii) {
                None => return done(Outcome::Missed, none),
                Some(c) => {
                    let content = c.name("content").map_or(&b""[..], |m| {
                        content_at = m.start;
                        &text[m]
                    });
                    prefix_caps = Some(c);
                    content
                }
            },
        };
        let picked = if self.general {
            self.select_general(content, ascii)
        } else {
            self.select(content).map(|r| (r, None))
        };
        let (regex, mut found) = match picked {
            Ok(p) => p,
            Err(outcome) => return done(outcome, none),
        };
        let mut flags = (false, false, false);
        let mut cidr_m = None;
        let (host_m, user_m) = match self.fixed_host(regex, content) {
            Some(None) => return done(Outcome::Missed, none),
            Some(host) => (host.map(|f| f.span), None),
            None => match found
                .take()
                .or_else(|| self.fail_captures(regex, content, ascii))
            {
                None => return done(Outcome::Missed, none),
                Some(caps) => {
                    let o = self.fail_optional[regex];
                    let has = |on: bool, g: &str| on && caps.name(g).is_some();
                    flags = (
                        has(o.nofail, "nofail"),
                        has(o.mlfforget, "mlfforget"),
                        has(o.mlfgained, "mlfgained"),
                    );
                    cidr_m = o.cidr.then(|| caps.name("cidr")).flatten();
                    (caps.host(), caps.user_in(o.alt_user))
                }
            },
        };
        let (nofail, forget, gained) = flags;
        // Ranges in the content, moved into the text; what the failregex
        // does not capture, the prefregex may have.
        let in_text = |r: std::ops::Range<usize>| (r.start + content_at)..(r.end + content_at);
        let from_prefix = |g| prefix_caps.as_ref().and_then(|c| c.name(g));
        let host_m = host_m
            .map(in_text)
            .or_else(|| from_prefix(tags::HOST_GROUP).filter(|_| self.prefix_host));
        let user_m = user_m
            .map(in_text)
            .or_else(|| from_prefix(tags::USER_GROUP));
        let cidr_m = cidr_m.map(in_text);
        let (host, prefix) = match host_m.clone().and_then(|r| subnet_of(text, r, cidr_m)) {
            Some((host, prefix)) => (Some(host), prefix),
            None => (None, None),
        };
        let user = user_m.clone().map(|r| &text[r]);
        let spans = Spans {
            host: host_m,
            user: user_m,
        };
        let session = prefix_caps.as_ref().and_then(|c| c.name("mlfid"));
        // A host that is no address (a DNS name) is a bad host, session or not.
        let bad_host = host.is_none() && spans.host.is_some();
        if let (true, Some(id), false) = (defer && self.mlfid, session, bad_host) {
            let m = sessions::SessionMatch {
                regex,
                host,
                nofail,
                forget,
                gained,
            };
            let line = SessionLine {
                id: &text[id],
                m,
                user,
            };
            return (Examined::Session(line), spans);
        }
        let found = match host {
            Some(host) => Some(Some((host, prefix))),
            None if spans.host.is_some() => Some(None),
            None => None,
        };
        let (outcome, spans) = self.outcome_of(regex, found, user, nofail || gained, spans);
        done(outcome, spans)
    }

    /// How a failregex match counts when no session decides (fail2ban's
    /// rule, for single lines and `maxlines` buffers alike): with
    /// `<F-NOFAIL>` or `<F-MLFGAINED>` (`harmless`) it is no failure; with
    /// an address it is one; a host that is no address (`Some(None)`: a
    /// DNS name, a subnet too wide) is a bad host; with no host group at
    /// all it is nothing in fail2ban's dialect (such a failregex names the
    /// host of an earlier line of its session) and a bad host in
    /// banwarden's. The spans go with it, except for a harmless match.
    pub(super) fn outcome_of<'u>(
        &self,
        regex: usize,
        host: Option<Option<(std::net::IpAddr, Option<u8>)>>,
        user: Option<&'u [u8]>,
        harmless: bool,
        spans: Spans,
    ) -> (Outcome<'u>, Spans) {
        if harmless {
            return (Outcome::Missed, Spans::default());
        }
        match host {
            Some(Some((host, prefix))) => (
                Outcome::Failure {
                    regex,
                    host,
                    prefix,
                    user,
                },
                spans,
            ),
            Some(None) => (Outcome::BadHost { regex }, spans),
            None if self.spec.dialect == Dialect::Fail2ban => (Outcome::Missed, spans),
            None => (Outcome::BadHost { regex }, spans),
        }
    }

    /// The prefregex's captures on `text`: on all-ASCII text, matched up
    /// to its content where its shape allows (`filter::head`). Its Unicode
    /// automaton is only built (`re` dereferenced) for text that needs it.
    fn prefix_captures<'t>(
        &'t self,
        re: &'t LazyRegex,
        text: &'t [u8],
        ascii: bool,
    ) -> Option<Caps<'t>> {
        if let (true, Some(head)) = (ascii, &self.prefregex_head) {
            if let Ok(caps) = head.captures(text) {
                return caps.map(|c| Caps::Meta(c, self.prefregex_dups.as_ref()));
            }
        }
        let re = self
            .prefregex_ascii
            .as_ref()
            .filter(|_| ascii)
            .unwrap_or_else(|| &**re);
        captures_named(
            re,
            self.prefregex_slow.as_ref(),
            self.prefregex_dups.as_ref(),
            text,
        )
    }

    /// Failregex `i`'s captures on `content`: on all-ASCII text, only its
    /// branches from the first that can match, where it is split
    /// (`split::Split`).
    fn fail_captures<'t>(&'t self, i: usize, content: &'t [u8], ascii: bool) -> Option<Caps<'t>> {
        if let (true, Some(split)) = (ascii, &self.fail_split[i]) {
            let k = split.first(content)?;
            if let Ok(caps) = split.captures(k, content) {
                return caps.map(|c| Caps::Meta(c, self.fail_dups[i].as_ref()));
            }
        }
        captures_named(
            self.fail_re(i, ascii),
            self.fail_slow[i].as_ref(),
            self.fail_dups[i].as_ref(),
            content,
        )
    }

    /// Failregex `i`, its ASCII-class version for all-ASCII text if it has one.
    #[inline]
    fn fail_re(&self, i: usize, ascii: bool) -> &regex::bytes::Regex {
        match &self.fail_ascii[i] {
            Some(a) if ascii => a,
            _ => &self.fail[i],
        }
    }

    /// For a failregex whose host `fixed` can find: `Some(Some(host))`
    /// when it matches `text`, `Some(None)` when it does not. `None`: the
    /// regex needs its captures.
    #[inline]
    pub(super) fn fixed_host(
        &self,
        regex: usize,
        text: &[u8],
    ) -> Option<Option<super::fixed::Found>> {
        self.host_at
            .get(regex)?
            .as_ref()?
            .find(&self.fail[regex], text)
    }

    /// Which failregex wins on `content`, or why none counts (missed, or an
    /// ignoreregex matched). One pass over the line for all failregexes; a
    /// lone failregex without ignoreregex goes straight to its captures.
    pub(super) fn select(&self, content: &[u8]) -> Result<usize, Outcome<'static>> {
        if self.fail.len() == 1 && self.ignore_set.is_empty() {
            return Ok(0);
        }
        let regex = self.first_fail(content).ok_or(Outcome::Missed)?;
        match self.ignore_set.matches(content).iter().next() {
            Some(i) => Err(Outcome::Ignored { regex: i }),
            None => Ok(regex),
        }
    }

    fn first_fail(&self, content: &[u8]) -> Option<usize> {
        if self.fail.len() == 1 {
            return self.fail[0].is_match(content).then_some(0);
        }
        self.fail_set.matches(content).iter().next()
    }

    /// [`select`](Self::select) where fallback patterns take part: the
    /// sets (built from their supersets) name the candidates, the fallback
    /// decides for its own; one that hits its bound counts as no match.
    /// The fallback's captures of the winner come along (not run twice).
    fn select_general<'t>(
        &'t self,
        content: &'t [u8],
        ascii: bool,
    ) -> Result<(usize, Option<Caps<'t>>), Outcome<'static>> {
        let confirm = |slow: Option<&Slow>| slow.is_none_or(|s| s.is_match(content) == Ok(true));
        // Each regex's own lazy DFA, in order: the set's overlapping search
        // falls back to the PikeVM on fail2ban's many Unicode-class regexes.
        // A split regex's screen is that DFA, and says where its captures
        // start (taken along, not searched for twice).
        let screened = match (ascii, &self.fail_screen) {
            (true, Some(screen)) => match screen.first(content) {
                Ok(Some(first)) => Some(first),
                Ok(None) => return Err(Outcome::Missed),
                Err(()) => None,
            },
            _ => None,
        };
        let (regex, caps) = match screened {
            // No fallback patterns here: the screen's winner is the one.
            Some(first) => {
                let i = first.regex;
                let caps = match (first.branch, &self.fail_split[i], &self.fail_screen) {
                    (Some(k), Some(split), _) => split.captures(k, content).ok().flatten(),
                    // Not wanted where `fixed` finds the host.
                    (None, None, Some(screen))
                        if self.host_at.get(i).is_some_and(Option::is_none) =>
                    {
                        screen.captures(&first, content)
                    }
                    _ => None,
                };
                (i, caps.map(|c| Caps::Meta(c, self.fail_dups[i].as_ref())))
            }
            None => self.first_general(content, ascii)?,
        };
        if self.ignore_set.is_empty() {
            return Ok((regex, caps));
        }
        match self
            .ignore_set
            .matches(content)
            .iter()
            .find(|&i| confirm(self.ignore_slow[i].as_ref()))
        {
            Some(i) => Err(Outcome::Ignored { regex: i }),
            None => Ok((regex, caps)),
        }
    }

    /// The first failregex that matches `content`, one after the other
    /// (the fallback's captures of it, or a split one's, come along).
    fn first_general<'t>(
        &'t self,
        content: &'t [u8],
        ascii: bool,
    ) -> Result<(usize, Option<Caps<'t>>), Outcome<'static>> {
        (0..self.fail.len())
            .find_map(|i| {
                if let (true, Some(split)) = (ascii, &self.fail_split[i]) {
                    let k = split.first(content)?;
                    // On `Err` (too long), `fail_captures` runs the whole regex.
                    let caps = split.captures(k, content).ok().flatten();
                    return Some((i, caps.map(|c| Caps::Meta(c, self.fail_dups[i].as_ref()))));
                }
                if !self.fail_re(i, ascii).is_match(content) {
                    return None;
                }
                match &self.fail_slow[i] {
                    None => Some((i, None)),
                    Some(s) => match s.captures(content) {
                        Ok(Some(c)) => Some((i, Some(c))),
                        _ => None,
                    },
                }
            })
            .ok_or(Outcome::Missed)
    }
}
