//! The built-in formats' byte parsers for the date detector: syslog,
//! numeric year-month-day (ISO 8601, Python logging, nginx error), nginx
//! access, with the digits, month names, times, fractions and offsets they
//! are made of. Each reads a date starting at a given place, or says none
//! stands there.
//!
//! Owns only reading those bytes into a `Parsed`; placing it in time (the
//! year, the zone) is the detector's, and it never searches a line.

use super::DateFormat;

/// A date-time read from a line, not yet placed in time.
pub(super) struct Parsed {
    pub(super) year: Option<i64>,
    pub(super) mo: u32,
    pub(super) d: u32,
    pub(super) hms: (u32, u32, u32),
    pub(super) offset: Option<i32>,
    pub(super) end: usize,
    pub(super) format: DateFormat,
}

impl Parsed {
    /// A date a `datepattern` gave.
    pub(super) fn new(
        year: Option<i64>,
        mo: u32,
        d: u32,
        hms: (u32, u32, u32),
        offset: Option<i32>,
    ) -> Self {
        Parsed {
            year,
            mo,
            d,
            hms,
            offset,
            end: 0,
            format: DateFormat::Custom,
        }
    }
}

fn digit(b: &[u8], i: usize) -> Option<u32> {
    let c = *b.get(i)?;
    c.is_ascii_digit().then(|| u32::from(c - b'0'))
}
fn d2(b: &[u8], i: usize) -> Option<u32> {
    Some(digit(b, i)? * 10 + digit(b, i + 1)?)
}
fn d4(b: &[u8], i: usize) -> Option<u32> {
    Some(d2(b, i)? * 100 + d2(b, i + 2)?)
}
pub(super) fn is(b: &[u8], i: usize, c: u8) -> bool {
    b.get(i) == Some(&c)
}
pub(super) fn digit_at(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(u8::is_ascii_digit)
}

/// Three-letter English month abbreviation, any case.
pub(super) fn month_abbr(b: &[u8], i: usize) -> Option<u32> {
    let t = b.get(i..i + 3)?;
    let m = match &[t[0] | 0x20, t[1] | 0x20, t[2] | 0x20] {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// `HH:MM:SS` at `i`.
fn hms(b: &[u8], i: usize) -> Option<(u32, u32, u32)> {
    if !is(b, i + 2, b':') || !is(b, i + 5, b':') {
        return None;
    }
    Some((d2(b, i)?, d2(b, i + 3)?, d2(b, i + 6)?))
}

/// Skips `<sep>digits` at `i` (a fraction of a second, truncated away).
fn skip_frac(b: &[u8], mut i: usize, sep: u8) -> usize {
    if is(b, i, sep) && digit_at(b, i + 1) {
        i += 1;
        while digit_at(b, i) {
            i += 1;
        }
    }
    i
}

/// `Z`, `±hh:mm`, `±hhmm` or `±hh` at `i`: (offset seconds, end).
pub(super) fn parse_offset(b: &[u8], i: usize) -> Option<(i32, usize)> {
    let sign = match *b.get(i)? {
        b'Z' | b'z' => return Some((0, i + 1)),
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hh = d2(b, i + 1)?;
    let (mm, end) = if is(b, i + 3, b':') {
        (d2(b, i + 4)?, i + 6)
    } else if let Some(mm) = d2(b, i + 3) {
        (mm, i + 5)
    } else {
        (0, i + 3)
    };
    (hh <= 25 && mm <= 59).then(|| (sign * (hh * 3600 + mm * 60) as i32, end))
}

pub(super) fn parse_builtin(b: &[u8], pos: usize) -> Option<Parsed> {
    if pos > 0 && b.get(pos - 1)?.is_ascii_alphanumeric() {
        return None;
    }
    let p = if digit_at(b, pos) {
        if is(b, pos + 2, b'/') {
            nginx_access(b, pos)?
        } else {
            numeric_ymd(b, pos)?
        }
    } else {
        syslog(b, pos)?
    };
    (!digit_at(b, p.end)).then_some(p)
}

/// `Mon DD HH:MM:SS[.frac][ YYYY]`, the day maybe space-padded or one digit.
fn syslog(b: &[u8], pos: usize) -> Option<Parsed> {
    let mo = month_abbr(b, pos)?;
    if !is(b, pos + 3, b' ') {
        return None;
    }
    let (d, mut i) = if is(b, pos + 4, b' ') {
        (digit(b, pos + 5)?, pos + 6)
    } else if let Some(d) = d2(b, pos + 4) {
        (d, pos + 6)
    } else {
        (digit(b, pos + 4)?, pos + 5)
    };
    if !is(b, i, b' ') {
        return None;
    }
    let hms = hms(b, i + 1)?;
    i = skip_frac(b, i + 9, b'.');
    let mut year = None;
    if is(b, i, b' ') && !b.get(i + 5).is_some_and(u8::is_ascii_alphanumeric) {
        if let Some(y) = d4(b, i + 1) {
            year = Some(i64::from(y));
            i += 5;
        }
    }
    let format = DateFormat::Syslog;
    Some(Parsed {
        year,
        mo,
        d,
        hms,
        offset: None,
        end: i,
        format,
    })
}

/// ISO 8601 / Python logging (`YYYY-MM-DD`) or nginx error (`YYYY/MM/DD`).
fn numeric_ymd(b: &[u8], pos: usize) -> Option<Parsed> {
    let y = d4(b, pos)?;
    let sep = *b.get(pos + 4)?;
    if !(sep == b'-' || sep == b'/') || !is(b, pos + 7, sep) {
        return None;
    }
    let (mo, d) = (d2(b, pos + 5)?, d2(b, pos + 8)?);
    let t = *b.get(pos + 10)?;
    if !(t == b' ' || (sep == b'-' && (t == b'T' || t == b't'))) {
        return None;
    }
    let hms = hms(b, pos + 11)?;
    let mut i = pos + 19;
    let (mut format, mut offset) = (DateFormat::NginxError, None);
    if sep == b'-' {
        format = if is(b, i, b',') && digit_at(b, i + 1) {
            DateFormat::PythonLogging
        } else {
            DateFormat::Iso8601
        };
        i = skip_frac(b, skip_frac(b, i, b'.'), b',');
        if let Some((o, end)) = parse_offset(b, i) {
            (offset, i) = (Some(o), end);
        }
    }
    let year = Some(i64::from(y));
    Some(Parsed {
        year,
        mo,
        d,
        hms,
        offset,
        end: i,
        format,
    })
}

/// nginx access `DD/Mon/YYYY:HH:MM:SS[ ±hhmm]` (the text between the brackets).
fn nginx_access(b: &[u8], pos: usize) -> Option<Parsed> {
    let d = d2(b, pos)?;
    let mo = month_abbr(b, pos + 3)?;
    if !is(b, pos + 6, b'/') || !is(b, pos + 11, b':') {
        return None;
    }
    let year = Some(i64::from(d4(b, pos + 7)?));
    let hms = hms(b, pos + 12)?;
    let (mut offset, mut end) = (None, pos + 20);
    if is(b, end, b' ') && matches!(b.get(end + 1), Some(b'+' | b'-')) {
        if let Some((o, e)) = parse_offset(b, end + 1) {
            (offset, end) = (Some(o), e);
        }
    }
    let format = DateFormat::NginxAccess;
    Some(Parsed {
        year,
        mo,
        d,
        hms,
        offset,
        end,
        format,
    })
}
