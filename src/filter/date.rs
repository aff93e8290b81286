//! Timestamp detection in log lines: the built-in formats (syslog, ISO 8601,
//! Python logging, nginx access/error) and a filter's own `datepattern`.
//!
//! Owns: finding where a line's date stands and turning it into `UnixTime`.
//! Must not: allocate or run a regex on the built-in hot path, use interior
//! mutability (one detector is shared by threads), give a line an answer
//! that depends on the lines before it (per-stream caches only save work,
//! see `date_cache`), panic on any input, read the clock (`now` is passed
//! in), or know about failregexes, jails or firewalls.

use std::sync::{Arc, OnceLock};

use jiff::{tz::TimeZone, Timestamp};

use crate::UnixTime;

/// Which format a timestamp was found in (reported by dry-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DateFormat {
    /// `Mon DD HH:MM:SS` (year inferred), also ctime-like `Mon DD HH:MM:SS[.f] YYYY`.
    Syslog,
    /// ISO 8601 / RFC 3339: `2024-01-02T03:04:05[.fff][Z|±hh:mm]`, also with a space.
    Iso8601,
    /// Python logging: `2015-03-10 21:31:23,899`.
    PythonLogging,
    /// nginx access log: `[10/Oct/2000:13:55:36 -0700]`.
    NginxAccess,
    /// nginx error log: `2024/01/02 03:04:05`.
    NginxError,
    /// A filter's own `datepattern`.
    Custom,
    /// The journal's own time of an entry (its text is not searched).
    Journal,
}

/// A timestamp found in a line: its value and where it stands (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    pub ts: UnixTime,
    pub start: usize,
    pub end: usize,
    pub format: DateFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum DateError {
    #[error("invalid datepattern: {0}")]
    Pattern(String),
}

/// Where a date was found in its line: at a byte offset, or just after the
/// line's first `[` (nginx and Apache access logs, where the offset moves
/// with the length of the address before the bracket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    At(usize),
    Bracket,
}

impl Anchor {
    /// Where this anchor points in `line`, if anywhere.
    #[inline]
    pub fn position(self, line: &[u8]) -> Option<usize> {
        match self {
            Anchor::At(p) => Some(p),
            Anchor::Bracket => bracket(line),
        }
    }
}

/// Just after the first `[` near the start of `line`: where the search for a
/// date looks second, after the line's start.
#[inline]
fn bracket(line: &[u8]) -> Option<usize> {
    memchr::memchr(b'[', &line[..line.len().min(SCAN_BRACKET)]).map(|i| i + 1)
}

/// Finds timestamps in lines. Cheap to clone; shared by all lines of a filter.
#[derive(Debug, Clone)]
pub struct DateDetector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    zone: Zone,
    custom: Option<Custom>,
    /// fail2ban's reading of the built-in formats (zones around them, a
    /// weekday before), for its filters without a datepattern of their own.
    f2b: bool,
    /// Then tried where the built-in formats find nothing: fail2ban's
    /// default templates, compiled when a line first needs them (most logs
    /// never do, and they cost a few ms of every start).
    fallback: OnceLock<Option<Custom>>,
}

const SCAN_BRACKET: usize = 64;
const SCAN_START: usize = 80;
const FUTURE_SLACK: i64 = 2 * 86_400;

impl DateDetector {
    /// `datepattern` is a filter's optional pattern; `None` tries the built-in formats.
    ///
    /// A datepattern is literal text (`\x` for a literal `x`) with the directives
    /// `%Y %y %m %d %e %H %M %S %b %B %a %f %z %Z %j %p %I %s %%`; a leading `^`
    /// or `{^LN-BEG}` anchors it at line start, and `EPOCH` is a Unix time with
    /// optional fraction. `%Z` understands UTC/GMT/UT/Z and the common zone
    /// abbreviations (`PDT`, `CEST`: fixed offsets, see `date_abbr`); other
    /// names mean local time. Error messages give 0-based byte positions in the pattern.
    pub fn new(datepattern: Option<&str>) -> Result<DateDetector, DateError> {
        Self::with_time_zone(datepattern, TimeZone::system())
    }

    /// A fail2ban `datepattern` (Python regex with `%`-directives, `{^LN-BEG}`,
    /// `{DATE}`, `{NONE}`, `Epoch`, `TAI64N`..., one template a line; see
    /// `date_f2b`), in `tz` (fail2ban's `logtimezone`) or the system zone.
    pub fn fail2ban(datepattern: Option<&str>, tz: Option<TimeZone>) -> Result<Self, DateError> {
        let custom = match datepattern {
            None => None,
            Some(p) => f2b::compile(p)?,
        };
        // fail2ban's default templates read more than the built-in formats
        // (`Sun Jun 09 07:57:47 2013`, `11-Aug-2013 03:36:11.372`...), and
        // anywhere in the line from a word's start (`[28325:...] 22-06-2014
        // 09:56:12`), the line's start first.
        Ok(DateDetector {
            inner: Arc::new(Inner {
                zone: Zone::new(tz.unwrap_or_else(TimeZone::system)),
                f2b: custom.is_none(),
                custom,
                fallback: OnceLock::new(),
            }),
        })
    }

    /// Like [`new`](Self::new), with `tz` instead of the system zone for dates without offset.
    pub fn with_time_zone(datepattern: Option<&str>, tz: TimeZone) -> Result<Self, DateError> {
        let custom = datepattern.map(Custom::compile).transpose()?;
        let zone = Zone::new(tz);
        Ok(DateDetector {
            inner: Arc::new(Inner {
                zone,
                custom,
                f2b: false,
                fallback: OnceLock::new(),
            }),
        })
    }

    /// Whether the built-in formats that carry a year place a date the
    /// same way whatever its seconds: the time is then that of the same
    /// minute plus the seconds (60 read as 59). True in a zone without
    /// changes of offset (UTC, most servers); elsewhere a change could fall
    /// inside a minute (local mean time, in the 19th century).
    pub fn seconds_are_linear(&self) -> bool {
        let tz = &self.inner.zone.tz;
        self.inner.custom.is_none()
            && (tz.to_fixed_offset().is_ok() || tz.following(Timestamp::MIN).next().is_none())
    }

    /// Whether the filter gave a `datepattern` (the built-in formats are not tried).
    pub fn has_datepattern(&self) -> bool {
        self.inner.custom.is_some()
    }

    /// Finds the line's timestamp. `now` anchors year inference for formats
    /// without a year. Local time zone unless the format carries an offset.
    /// The answer depends on the line and `now` only.
    pub fn detect(&self, line: &[u8], now: UnixTime) -> Option<DateMatch> {
        self.detect_anchored(line, now).map(|(m, _)| m)
    }

    /// [`detect`](Self::detect), also saying how a built-in date was found
    /// (`None` for a `datepattern`'s): the date cache needs it.
    pub(crate) fn detect_anchored(
        &self,
        line: &[u8],
        now: UnixTime,
    ) -> Option<(DateMatch, Option<Anchor>)> {
        if let Some(custom) = &self.inner.custom {
            return custom
                .detect(&self.inner.zone, line, now)
                .map(|m| (m, None));
        }
        match self.builtin_search(line, now) {
            // fail2ban reads a weekday before the date as part of it
            // (`[Thu Jul 11 01:21:41 2013]` leaves `[]`).
            Some((mut m, _)) if self.inner.f2b && weekday_before(line, m.start) => {
                m.start -= 4;
                Some((m, None))
            }
            Some((m, a)) => Some((m, Some(a))),
            None if self.inner.f2b => self
                .inner
                .fallback
                // Constant templates: they compile (a test holds them to it).
                .get_or_init(|| f2b::default_templates().ok().flatten())
                .as_ref()
                .and_then(|f| f.detect(&self.inner.zone, line, now))
                .map(|m| (m, None)),
            None => None,
        }
    }

    /// Whether a built-in date starts at the line's first byte (where the
    /// search looks first).
    #[inline]
    pub(crate) fn date_at_start(&self, line: &[u8], now: UnixTime) -> bool {
        self.inner.custom.is_none()
            && may_start_date(line)
            && self.builtin_at(line, 0, now).is_some()
    }

    /// The first date at the line's start, after its first `[`, or at the
    /// first place in its head where one starts; and how it was found.
    fn builtin_search(&self, line: &[u8], now: UnixTime) -> Option<(DateMatch, Anchor)> {
        if let Some(m) = self.builtin_at(line, 0, now) {
            return Some((m, Anchor::At(0)));
        }
        let bracket = bracket(line);
        if let Some(m) = bracket.and_then(|p| self.builtin_at(line, p, now)) {
            return Some((m, Anchor::Bracket));
        }
        (1..line.len().min(SCAN_START))
            .filter(|&p| Some(p) != bracket && line[p].is_ascii_alphanumeric())
            .find_map(|p| self.builtin_at(line, p, now))
            .map(|m| (m, Anchor::At(m.start)))
    }

    fn builtin_at(&self, line: &[u8], pos: usize, now: UnixTime) -> Option<DateMatch> {
        let mut p = parse_builtin(line, pos)?;
        // fail2ban's default templates also read a zone around the date.
        let start = match self.inner.f2b {
            true => f2b_zone(line, pos, &mut p),
            false => pos,
        };
        let ts = self.inner.zone.resolve(&p, now)?;
        Some(DateMatch {
            ts,
            start,
            end: p.end,
            format: p.format,
        })
    }
}

/// fail2ban's zones around its default dates (its templates'
/// `(?:\s*%z)?` after a numeric date, `(?:%Z )?` before a syslog one):
/// after a `Y-m-d H:M:S` date without an offset, up to two blanks and
/// `Z`, `UTC`, `GMT` or `±hh[[:]mm]` (` +08:00`); before a syslog date, a
/// zone name and a blank (`[PDT Apr 16 21:05:29]`), when `abbr` knows it.
/// Sets `p`'s offset and end; returns where the date starts.
fn f2b_zone(b: &[u8], pos: usize, p: &mut Parsed) -> usize {
    if p.offset.is_some() {
        return pos;
    }
    match p.format {
        DateFormat::Syslog => {
            let Some(head) = pos.checked_sub(1).and_then(|e| b.get(..e)) else {
                return pos;
            };
            if !is(b, pos - 1, b' ') {
                return pos;
            }
            let len = head
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_uppercase())
                .count();
            let at = head.len() - len;
            let bounded = at == 0 || !head[at - 1].is_ascii_alphanumeric();
            match abbr::offset_of(&head[at..]) {
                Some(o) if bounded && (1..=5).contains(&len) => {
                    p.offset = Some(o);
                    at
                }
                _ => pos,
            }
        }
        DateFormat::Iso8601 | DateFormat::PythonLogging | DateFormat::NginxError => {
            let blanks = b
                .get(p.end..)
                .unwrap_or_default()
                .iter()
                .take(3)
                .take_while(|&&c| c == b' ' || c == b'\t')
                .count();
            let i = p.end + blanks;
            if blanks > 2 {
                return pos;
            }
            let zone = if b.get(i..i + 3).is_some_and(|z| z == b"UTC" || z == b"GMT") {
                Some((0, i + 3))
            } else if is(b, i, b'Z') {
                Some((0, i + 1))
            } else if matches!(b.get(i), Some(b'+' | b'-'))
                && matches!(b.get(i + 1), Some(b'0' | b'1'))
            {
                parse_offset(b, i).filter(|&(_, end)| !digit_at(b, end))
            } else {
                None
            };
            if let Some((o, end)) = zone {
                p.offset = Some(o);
                p.end = end;
            }
            pos
        }
        _ => pos,
    }
}

/// Whether a built-in date could start `b` (a quick check before parsing:
/// what every built-in parser needs first). Never false where
/// `parse_builtin(b, 0)` would succeed.
#[inline(always)]
fn may_start_date(b: &[u8]) -> bool {
    match b.first() {
        Some(c) if c.is_ascii_digit() => {
            is(b, 2, b'/')
                || (digit_at(b, 1)
                    && digit_at(b, 2)
                    && digit_at(b, 3)
                    && matches!(b.get(4), Some(b'-' | b'/')))
        }
        Some(c) => c.is_ascii_alphabetic(),
        None => false,
    }
}

/// fail2ban's `logtimezone`: `UTC`, `UTC+0200`, `UTC-05`, `+01:00`, or a
/// zone name (`Europe/Zurich`).
pub fn parse_zone(s: &str) -> Result<TimeZone, DateError> {
    let bad = || {
        DateError::Pattern(format!(
            "logtimezone {s:?}: expected UTC, UTC+HHMM or a zone name"
        ))
    };
    let t = s.trim();
    let rest = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    if rest.is_empty() {
        return Ok(TimeZone::UTC);
    }
    if rest.starts_with(['+', '-']) {
        let (secs, used) = parse_offset(rest.as_bytes(), 0).ok_or_else(bad)?;
        if used != rest.len() {
            return Err(bad());
        }
        let off = jiff::tz::Offset::from_seconds(secs).map_err(|_| bad())?;
        return Ok(TimeZone::fixed(off));
    }
    TimeZone::get(t).map_err(|_| bad())
}

/// Whether `Mon ` ... `Sun ` stands just before `at`.
fn weekday_before(line: &[u8], at: usize) -> bool {
    let Some(w) = at.checked_sub(4).and_then(|s| line.get(s..at)) else {
        return false;
    };
    w[3] == b' '
        && [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"]
            .iter()
            .any(|d| w[..3].eq_ignore_ascii_case(&d[..]))
}

#[path = "date_abbr.rs"]
mod abbr;
#[path = "date_builtin.rs"]
mod builtin;
use builtin::{digit_at, is, month_abbr, parse_builtin, parse_offset, Parsed};
#[path = "date_custom.rs"]
mod custom;
use custom::Custom;
#[path = "date_f2b.rs"]
mod f2b;
#[path = "date_zone.rs"]
mod zone;
use zone::{civil_from_days, days_from_civil, Zone};

#[cfg(test)]
#[path = "date_tests.rs"]
mod tests;
