//! fail2ban's multi-line buffer (`maxlines` > 1): the last `maxlines` lines
//! of a stream, each with its date cut out, are joined with `\n` (and a
//! final `\n`) and matched as one text, the failregexes in multi-line mode
//! (`^` and `$` at line ends), as fail2ban's `findFailure` does. A match
//! takes the lines it spans out of the buffer, except those a `<SKIPLINES>`
//! passed over: they stay for later matches. The match counts at the time of
//! the line that completed it.
//!
//! Owns the per-stream buffer (at most `maxlines` lines, each at most the
//! reader's line limit) and the bookkeeping of which lines a match used. It
//! lives in the stream's `LineState`, never shared; compiled patterns and
//! what an outcome means stay in `Filter`.

use std::collections::VecDeque;
use std::ops::Range;

use super::backtrack::Caps;
use super::compile::captures;
use super::sessions::{SessionMatch, Sessions};
use super::text::subnet_of;
use super::{Filter, Outcome, Spans};

/// The most lines a filter may buffer; fail2ban's own filters use up to 20.
pub const MAX_LINES: usize = 1000;

/// The recent lines of one stream.
#[derive(Debug, Default)]
pub struct LineBuffer {
    lines: VecDeque<Vec<u8>>,
    joined: Vec<u8>,
    /// Emptied line buffers, reused.
    spare: Vec<Vec<u8>>,
}

impl LineBuffer {
    /// Appends `text`, dropping the oldest lines beyond `max`, and joins
    /// the buffer into one text.
    fn push(&mut self, text: &[u8], max: usize) {
        let mut line = self.spare.pop().unwrap_or_default();
        line.clear();
        line.extend_from_slice(text);
        self.lines.push_back(line);
        while self.lines.len() > max.max(1) {
            if let Some(old) = self.lines.pop_front() {
                self.spare.push(old);
            }
        }
        self.joined.clear();
        for l in &self.lines {
            self.joined.extend_from_slice(l);
            self.joined.push(b'\n');
        }
    }

    /// Keeps lines `[..first]`, then `skipped` (in order), then `[end..]`.
    fn take_out(&mut self, first: usize, end: usize, skipped: &[usize]) {
        let mut kept = VecDeque::with_capacity(self.lines.len());
        for (i, l) in self.lines.drain(..).enumerate() {
            if i < first || i >= end || skipped.contains(&i) {
                kept.push_back(l);
            } else {
                self.spare.push(l);
            }
        }
        self.lines = kept;
    }

    fn clear(&mut self) {
        self.spare.extend(self.lines.drain(..));
    }
}

/// The number of the line (0-based) of `text` that holds byte `at`.
fn line_of(text: &[u8], at: usize) -> usize {
    memchr::memchr_iter(b'\n', &text[..at.min(text.len())]).count()
}

impl Filter {
    /// Adds `text` (one line, its date cut out) to the stream's buffer and
    /// matches the buffer. Spans are offsets into `text` (a host or user
    /// on an earlier line has none).
    ///
    /// With `sessions` (a prefregex with `<F-MLFID>`), a match counts within
    /// the session the prefregex named on the buffer, as fail2ban merges it.
    pub(super) fn match_buffered<'l>(
        &self,
        text: &[u8],
        buffer: &'l mut LineBuffer,
        sessions: Option<&mut Sessions>,
        time: Option<crate::UnixTime>,
    ) -> (Outcome<'l>, Spans) {
        let none = Spans::default();
        buffer.push(text, self.maxlines);
        let last_at = buffer.joined.len() - text.len() - 1;
        // fail2ban: a prefregex sees the whole buffer, and its `content`
        // becomes the buffer (with the buffer's final `\n`). It is not in
        // multi-line mode: Python's `$` also matches before the final `\n`,
        // the `regex` crate's only at the end, so it runs without it.
        let mut session_id = None;
        let unterminated = buffer.joined.len() - 1;
        let (content_at, content_end, replaced) = match &self.prefregex {
            None => (0, buffer.joined.len(), false),
            Some(re) => match captures(
                re,
                self.prefregex_slow.as_ref(),
                &buffer.joined[..unterminated],
            ) {
                None => return (Outcome::Missed, none),
                Some(c) => {
                    if sessions.is_some() {
                        session_id = c.name("mlfid").map(|r| buffer.joined[r].to_vec());
                    }
                    match c.name("content") {
                        None => return (Outcome::Missed, none),
                        Some(r) if r.end == unterminated => (r.start, r.end + 1, true),
                        Some(r) => (r.start, r.end, true),
                    }
                }
            },
        };
        let found = {
            let content = &buffer.joined[content_at..content_end];
            (0..self.fail.len()).find_map(|i| {
                let caps = captures(&self.fail[i], self.fail_slow[i].as_ref(), content)?;
                Some((i, Matched::of(&caps, content, self.ignores(content, &caps))))
            })
        };
        let Some((regex, m)) = found else {
            if replaced {
                let content = &buffer.joined[content_at..content_end];
                let content = content.strip_suffix(b"\n").unwrap_or(content).to_vec();
                buffer.clear();
                buffer.push(&content, self.maxlines);
            }
            return (Outcome::Missed, none);
        };
        if replaced {
            buffer.clear();
        } else {
            let first = line_of(&buffer.joined, m.lines.start);
            let end = line_of(&buffer.joined, m.lines.end);
            let skipped: Vec<usize> = m
                .skipped
                .iter()
                .flat_map(|r| line_of(&buffer.joined, r.start)..line_of(&buffer.joined, r.end))
                .collect();
            buffer.take_out(first, end, &skipped);
        }
        let joined = &buffer.joined[..];
        let shift = |r: Range<usize>| (r.start + content_at)..(r.end + content_at);
        let host_r = m.host.map(shift);
        let user_r = m.user.map(shift);
        let in_last =
            |r: &Range<usize>| (r.start >= last_at).then(|| (r.start - last_at)..(r.end - last_at));
        let spans = Spans {
            host: host_r.as_ref().and_then(in_last),
            user: user_r.as_ref().and_then(in_last),
        };
        if let Some(i) = m.ignored {
            return (Outcome::Ignored { regex: i }, spans);
        }
        let user = user_r.map(|r| &joined[r]);
        let cidr_r = m.cidr.map(shift);
        let host = host_r.map(|r| subnet_of(joined, r, cidr_r));
        // A host that is no address (a DNS name) is a bad host, session or not.
        if let (Some(sessions), Some(id), false) =
            (sessions, session_id.as_deref(), matches!(host, Some(None)))
        {
            let s = SessionMatch {
                regex,
                host: host.flatten().map(|(h, _)| h),
                nofail: m.nofail,
                forget: m.forget,
                gained: m.gained,
            };
            return match sessions.count(id, s, user, time) {
                Some((r, host)) => (
                    Outcome::Failure {
                        regex: r,
                        host,
                        prefix: None,
                        user: user.filter(|_| r == regex),
                    },
                    spans,
                ),
                None => (Outcome::Missed, spans),
            };
        }
        self.outcome_of(regex, host, user, m.nofail || m.gained, spans)
    }

    /// The ignoreregex that matches the lines a failregex match spans, as
    /// fail2ban checks them.
    fn ignores(&self, content: &[u8], caps: &Caps<'_>) -> Option<usize> {
        if self.ignore_set.is_empty() {
            return None;
        }
        let whole = caps.name_at(0)?;
        let lines = whole_lines(content, whole);
        let text = &content[lines];
        self.ignore_set
            .matches(text)
            .iter()
            .find(|&i| match &self.ignore_slow[i] {
                None => true,
                Some(s) => s.is_match(text) == Ok(true),
            })
    }
}

/// What a failregex match on the buffer gave.
struct Matched {
    /// The whole lines the match spans (offsets in the content, the last
    /// line's `\n` included).
    lines: Range<usize>,
    /// What `<SKIPLINES>` passed over.
    skipped: Vec<Range<usize>>,
    host: Option<Range<usize>>,
    /// `<CIDR>` (a subnet's length, `<SUBNET>`).
    cidr: Option<Range<usize>>,
    user: Option<Range<usize>>,
    /// `<F-NOFAIL>`: not a failure.
    nofail: bool,
    /// `<F-MLFFORGET>`: the session ends.
    forget: bool,
    /// `<F-MLFGAINED>`: the session ends without failure.
    gained: bool,
    ignored: Option<usize>,
}

impl Matched {
    fn of(caps: &Caps<'_>, content: &[u8], ignored: Option<usize>) -> Matched {
        let whole = caps.name_at(0).unwrap_or(0..0);
        let skipped = (0..16)
            .map_while(|n| caps.name(&format!("skiplines{n}")))
            .collect();
        Matched {
            lines: whole_lines(content, whole),
            skipped,
            host: caps.host(),
            cidr: caps.name("cidr"),
            user: caps.user(),
            nofail: caps.name("nofail").is_some(),
            forget: caps.name("mlfforget").is_some(),
            gained: caps.name("mlfgained").is_some(),
            ignored,
        }
    }
}

/// From the start of the line where `r` starts to the end of the line
/// where it ends (its `\n` included), as fail2ban finds the matched lines.
fn whole_lines(content: &[u8], r: Range<usize>) -> Range<usize> {
    let probe = (r.start + 1).min(content.len());
    let start = memchr::memrchr(b'\n', &content[..probe]).map_or(0, |i| i + 1);
    let from = r.end.saturating_sub(1).min(content.len());
    let end = memchr::memchr(b'\n', &content[from..]).map_or(content.len(), |i| from + i + 1);
    start..end.max(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Dialect, Filter, FilterSpec};

    fn filter(fail: &[&str], maxlines: usize) -> Filter {
        Filter::compile(FilterSpec {
            name: "t".into(),
            failregex: fail.iter().map(|s| s.to_string()).collect(),
            dialect: Dialect::Fail2ban,
            maxlines,
            ..Default::default()
        })
        .unwrap()
    }

    fn run(f: &Filter, lines: &[&str]) -> Vec<String> {
        let mut state = f.new_state();
        lines
            .iter()
            .map(
                |l| match f.match_text_in(l.as_bytes(), None, &mut state).0 {
                    Outcome::Failure { host, .. } => host.to_string(),
                    Outcome::Missed => "-".into(),
                    other => format!("{other:?}"),
                },
            )
            .collect()
    }

    #[test]
    fn a_failure_spanning_two_lines_counts_on_the_second() {
        let f = filter(&[r"^conn (\d+) from <HOST>\nconn \1 failed$"], 2);
        assert_eq!(
            run(
                &f,
                &["conn 7 from 192.0.2.1", "conn 7 failed", "conn 7 failed"]
            ),
            ["-", "192.0.2.1", "-"],
            "the matched lines leave the buffer: the third line has no partner"
        );
    }

    #[test]
    fn lines_older_than_maxlines_are_forgotten() {
        let f = filter(&[r"^conn (\d+) from <HOST>\n(?:.*\n)*?conn \1 failed$"], 2);
        assert_eq!(
            run(&f, &["conn 7 from 192.0.2.1", "noise", "conn 7 failed"]),
            ["-", "-", "-"]
        );
        let f = filter(&[r"^conn (\d+) from <HOST>\n(?:.*\n)*?conn \1 failed$"], 3);
        assert_eq!(
            run(&f, &["conn 7 from 192.0.2.1", "noise", "conn 7 failed"]),
            ["-", "-", "192.0.2.1"]
        );
    }

    #[test]
    fn skipped_lines_stay_for_later_matches() {
        let f = filter(
            &[r"^open (?P<__c>\d+) <HOST><SKIPLINES>close (?P=__c) bad$"],
            10,
        );
        let lines = [
            "open 1 192.0.2.1",
            "open 2 192.0.2.2",
            "close 1 bad",
            "close 2 bad",
        ];
        // `open 2` lies between `open 1` and `close 1`: skipped, so kept.
        assert_eq!(run(&f, &lines), ["-", "-", "192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn an_ignoreregex_sees_the_matched_lines() {
        let f = Filter::compile(FilterSpec {
            name: "t".into(),
            failregex: vec![r"^user (\S+) from <HOST>\n\S+ failed$".into()],
            ignoreregex: vec![r"^user admin ".into()],
            dialect: Dialect::Fail2ban,
            maxlines: 2,
            ..Default::default()
        })
        .unwrap();
        let out = run(
            &f,
            &[
                "user admin from 192.0.2.1",
                "x failed",
                "user bob from 192.0.2.2",
                "x failed",
            ],
        );
        assert_eq!(out, ["-", "Ignored { regex: 0 }", "-", "192.0.2.2"]);
    }

    #[test]
    fn whole_lines_cover_the_match() {
        let t = b"aa\nbb\ncc\n";
        assert_eq!(whole_lines(t, 4..5), 3..6);
        assert_eq!(whole_lines(t, 1..7), 0..9);
        // fail2ban: a match that starts on a `\\n` starts on the next line.
        assert_eq!(whole_lines(t, 2..3), 3..3);
        assert_eq!(line_of(t, 3), 1);
        assert_eq!(line_of(t, 9), 3);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let f = filter(&[r"^never <HOST>$"], 3);
        let mut state = f.new_state();
        for _ in 0..100 {
            f.match_text_in(b"noise line", None, &mut state);
        }
        assert_eq!(state.lines.lines.len(), 3);
    }
}
