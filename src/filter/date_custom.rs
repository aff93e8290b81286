//! A filter's own `datepattern` (strftime-like `%` directives, fail2ban's
//! `{^LN-BEG}` and friends, `Epoch`, `TAI64N`...): compiled once into a
//! regex with one capture group per field, then read into a `UnixTime`.
//!
//! Owns that compilation and the reading of the captured fields. It must
//! not look for the built-in formats (the parent does) nor keep state
//! between lines.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    YearDay,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    Offset,
    ZoneName,
    Epoch,
    /// Unix time with milli- or microseconds run on (fail2ban's `LEPOCH`).
    LongEpoch,
    /// `@` and 24 hex digits (daemontools' TAI64N).
    Tai64n,
    Ignore,
}

const MONTHS: &str = "(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)";
const MONTHS_LONG: &str =
    "(?i:january|february|march|april|may|june|july|august|september|october|november|december)";
const WEEKDAYS: &str = "(?i:mon|tue|wed|thu|fri|sat|sun)";
pub(super) const EPOCH_RE: &str = r"(?-u:\b)[0-9]{9,11}(?:\.[0-9]+)?(?-u:\b)";

pub(super) fn directive(c: char) -> Option<(&'static str, Field)> {
    Some(match c {
        'Y' => ("[0-9]{4}", Field::Year4),
        'y' => ("[0-9]{2}", Field::Year2),
        'm' => ("[0-9]{1,2}", Field::Month),
        'd' => ("[0-9]{1,2}", Field::Day),
        'e' => (" ?[0-9]{1,2}", Field::Day),
        'j' => ("[0-9]{1,3}", Field::YearDay),
        'H' => ("[0-9]{1,2}", Field::Hour),
        'I' => ("[0-9]{1,2}", Field::Hour12),
        'p' => ("(?i:am|pm)", Field::AmPm),
        'M' => ("[0-9]{1,2}", Field::Minute),
        'S' => ("[0-9]{1,2}", Field::Second),
        'f' => ("[0-9]{1,9}", Field::Ignore),
        'b' => (MONTHS, Field::MonthName),
        'B' => (MONTHS_LONG, Field::MonthName),
        'a' => (WEEKDAYS, Field::Ignore),
        'z' => ("Z|[+-][0-9]{2}(?::?[0-9]{2})?", Field::Offset),
        'Z' => ("[A-Za-z]{1,5}", Field::ZoneName),
        's' => ("[0-9]{1,12}", Field::Epoch),
        _ => return None,
    })
}

/// A compiled `datepattern`: the regex and its directives' capture groups.
#[derive(Debug)]
pub(super) struct Custom {
    pub(super) re: regex::bytes::Regex,
    /// Each directive and the index of its group.
    pub(super) fields: Vec<(Field, usize)>,
    /// Groups that hold the date to cut (the first that took part); none:
    /// the whole match.
    pub(super) spans: Vec<usize>,
}

impl Custom {
    /// Literal text is matched literally; `\x` is a literal `x` (so fail2ban's
    /// `\[` works). Error positions are byte offsets into the pattern.
    pub(super) fn compile(pattern: &str) -> Result<Custom, DateError> {
        let err = |m: String| DateError::Pattern(format!("{m} in {pattern:?}"));
        let (mut re, body_start) = if let Some(rest) = pattern.strip_prefix("{^LN-BEG}") {
            ("^".to_string(), pattern.len() - rest.len())
        } else if pattern.starts_with('^') {
            ("^".to_string(), 1)
        } else {
            (String::new(), 0)
        };
        let mut fields = Vec::new();
        let mut chars = pattern[body_start..]
            .char_indices()
            .map(|(i, c)| (i + body_start, c));
        while let Some((i, c)) = chars.next() {
            let (piece, field) = match c {
                '%' => match chars.next() {
                    None => return Err(err(format!("dangling '%' at position {i}"))),
                    Some((_, '%')) => {
                        re.push('%');
                        continue;
                    }
                    Some((_, d)) => directive(d)
                        .ok_or_else(|| err(format!("unknown directive %{d} at position {i}")))?,
                },
                '\\' => match chars.next() {
                    None => return Err(err(format!("dangling '\\' at position {i}"))),
                    Some((_, l)) => {
                        re.push_str(&regex::escape(l.encode_utf8(&mut [0; 4])));
                        continue;
                    }
                },
                '{' | '}' => {
                    return Err(err(format!(
                        "unbalanced or unsupported '{c}' at position {i}"
                    )))
                }
                'E' if pattern[i..].starts_with("EPOCH") => {
                    chars.nth(3);
                    (EPOCH_RE, Field::Epoch)
                }
                _ => {
                    re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
                    continue;
                }
            };
            re.push('(');
            re.push_str(piece);
            re.push(')');
            fields.push(field);
        }
        if fields.iter().all(|f| *f == Field::Ignore) {
            return Err(err("no date or time directive".to_string()));
        }
        let re = regex::bytes::Regex::new(&re).map_err(|e| err(e.to_string()))?;
        let fields = fields
            .into_iter()
            .enumerate()
            .map(|(i, f)| (f, i + 1))
            .collect();
        Ok(Custom {
            re,
            fields,
            spans: Vec::new(),
        })
    }

    pub(super) fn detect(&self, zone: &Zone, line: &[u8], now: UnixTime) -> Option<DateMatch> {
        self.re.captures_iter(line).find_map(|caps| {
            let m = self
                .spans
                .iter()
                .find_map(|&g| caps.get(g))
                .or_else(|| caps.get(0))?;
            let ts = self.value(zone, &caps, now)?;
            Some(DateMatch {
                ts,
                start: m.start(),
                end: m.end(),
                format: DateFormat::Custom,
            })
        })
    }

    fn value(&self, zone: &Zone, caps: &regex::bytes::Captures, now: UnixTime) -> Option<UnixTime> {
        let num = |t: &[u8]| -> Option<u32> {
            let t = t.trim_ascii_start();
            (!t.is_empty() && t.len() <= 9 && t.iter().all(u8::is_ascii_digit))
                .then(|| t.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
        };
        let (mut year, mut mo, mut d, mut yday) = (None, None, None, None);
        let (mut h, mut mi, mut s, mut h12, mut pm, mut offset) = (0, 0, 0, None, false, None);
        let mut dated = false;
        for &(field, group) in &self.fields {
            let Some(t) = caps.get(group).map(|m| m.as_bytes()) else {
                continue;
            };
            dated |= field != Field::Ignore;
            match field {
                Field::Year4 => year = Some(i64::from(num(t)?)),
                Field::Year2 => {
                    let y = num(t)?;
                    year = Some(i64::from(y + if y < 69 { 2000 } else { 1900 }));
                }
                Field::Month => mo = Some(num(t)?),
                Field::MonthName => mo = Some(month_abbr(t, 0)?),
                Field::Day => d = Some(num(t)?),
                Field::YearDay => yday = Some(num(t)?),
                Field::Hour => h = num(t)?,
                Field::Hour12 => h12 = Some(num(t)?),
                Field::AmPm => pm = t[0] | 0x20 == b'p',
                Field::Minute => mi = num(t)?,
                Field::Second => s = num(t)?,
                Field::Offset => {
                    offset = Some(match parse_offset(t, 0) {
                        Some((o, _)) => o,
                        None => abbr::offset_of(t)?,
                    })
                }
                Field::ZoneName => {
                    let utc = [&b"UTC"[..], b"GMT", b"UT", b"Z"]
                        .iter()
                        .any(|z| t.eq_ignore_ascii_case(z));
                    // fail2ban's `%Z` also reads zone abbreviations.
                    offset = offset.or(utc.then_some(0)).or_else(|| abbr::offset_of(t));
                }
                Field::Epoch => {
                    let int = t.split(|&c| c == b'.').next()?;
                    return std::str::from_utf8(int).ok()?.parse().ok();
                }
                Field::LongEpoch => {
                    let int = t.split(|&c| c == b'.').next()?;
                    return std::str::from_utf8(int.get(..10)?).ok()?.parse().ok();
                }
                Field::Tai64n => return f2b::tai64n(t),
                Field::Ignore => {}
            }
        }
        // fail2ban: a template that matched without a date or time (its
        // `()`, e.g. `^WARNING:()**`) leaves the line undated.
        if !dated {
            return None;
        }
        if let Some(h12) = h12 {
            if !(1..=12).contains(&h12) {
                return None;
            }
            h = h12 % 12 + if pm { 12 } else { 0 };
        }
        let (mo, d) = match (mo, d, yday) {
            (Some(mo), Some(d), _) => (mo, d),
            (None, None, Some(yday)) => {
                let y = *year.get_or_insert_with(|| civil_from_days(zone.local_days(now)).0);
                if !(1..=366).contains(&yday) {
                    return None;
                }
                let (yy, mo, d) = civil_from_days(days_from_civil(y, 1, 1)? + i64::from(yday) - 1);
                (yy == y).then_some((mo, d))?
            }
            (None, None, None) if year.is_none() => {
                // A time of day alone: today's, or yesterday's when that
                // would be later than now (fail2ban's rollover at midnight).
                let today = zone.local_days(now);
                let at_day = |days: i64| {
                    let (y, mo, d) = civil_from_days(days);
                    zone.resolve(&Parsed::new(Some(y), mo, d, (h, mi, s), offset), now)
                };
                return match at_day(today)? {
                    ts if ts > now => at_day(today - 1),
                    ts => Some(ts),
                };
            }
            (None, None, None) => {
                let (y, mo, d) = civil_from_days(zone.local_days(now));
                year = year.or(Some(y));
                (mo, d)
            }
            _ => return None,
        };
        zone.resolve(&Parsed::new(year, mo, d, (h, mi, s), offset), now)
    }
}
