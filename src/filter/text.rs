//! What the filter does with a line's text around matching: cutting the
//! date out (and mapping spans back into the line), trimming line ends, and
//! reading a captured host as an address.
//!
//! Owns these byte-level helpers; no regex runs here.

use std::net::IpAddr;

use super::date::DateMatch;
use super::Spans;

/// Parses a captured host: plain or bracketed, v4-mapped IPv6 folded to IPv4.
pub fn parse_host(raw: &[u8]) -> Option<IpAddr> {
    let raw = raw
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .unwrap_or(raw);
    let s = std::str::from_utf8(raw).ok()?;
    let ip: IpAddr = s.parse().ok()?;
    Some(ip.to_canonical())
}

/// [`parse_host`], reading a plain dotted-quad IPv4 address straight from
/// the bytes (as `Ipv4Addr`'s parser would: four decimal octets up to 255,
/// no leading zeros); anything else goes to [`parse_host`].
pub(super) fn parse_host_quick(raw: &[u8]) -> Option<IpAddr> {
    let quad = || {
        let mut octets = [0u8; 4];
        let mut parts = raw.split(|&b| b == b'.');
        for o in &mut octets {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || (p.len() > 1 && p[0] == b'0') {
                return None;
            }
            let mut v: u16 = 0;
            for &b in p {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u16::from(b - b'0');
            }
            *o = u8::try_from(v).ok()?;
        }
        parts.next().is_none().then_some(octets)
    };
    match quad() {
        Some(o) => Some(IpAddr::from(o)),
        None => parse_host(raw),
    }
}

/// Where the text a filter matches stands in the original line: a head date
/// leaves a suffix at `base`; a date mid-line is cut out at `at`, `len` long.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    base: usize,
    mid: Option<(usize, usize)>,
}

impl Cut {
    /// Maps spans in the matched text back to byte offsets in the line.
    pub(super) fn spans_in_line(self, spans: Spans) -> Spans {
        let map = |o: usize| match self.mid {
            Some((at, len)) if o >= at => o + len,
            _ => o + self.base,
        };
        let range = |r: std::ops::Range<usize>| {
            let start = map(r.start);
            start..map(r.end).max(start)
        };
        Spans {
            host: spans.host.map(range),
            user: spans.user.map(range),
        }
    }
}

/// Cuts `date` out of `line` the fail2ban way: a date at the head leaves the
/// rest (leading blanks trimmed) with no copy; a date mid-line is removed
/// into `buf` (`[10/Oct/2000:13:55:36 -0700]` leaves `[]`).
/// `keep_blanks`: fail2ban's way, the blanks after a head date stay.
pub(super) fn cut_date<'l>(
    line: &'l [u8],
    date: Option<DateMatch>,
    buf: &'l mut Vec<u8>,
    keep_blanks: bool,
) -> (&'l [u8], Cut) {
    let whole = Cut { base: 0, mid: None };
    match date {
        Some(d) if d.end > line.len() || d.start > d.end => (line, whole),
        None => (line, whole),
        Some(d) if d.start == 0 => {
            let rest = &line[d.end..];
            let rest = if keep_blanks { rest } else { trim_start(rest) };
            (
                rest,
                Cut {
                    base: line.len() - rest.len(),
                    mid: None,
                },
            )
        }
        Some(d) => {
            buf.clear();
            buf.extend_from_slice(&line[..d.start]);
            buf.extend_from_slice(&line[d.end..]);
            (
                &buf[..],
                Cut {
                    base: 0,
                    mid: Some((d.start, d.end - d.start)),
                },
            )
        }
    }
}

pub(super) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(super) fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    &s[n..]
}
