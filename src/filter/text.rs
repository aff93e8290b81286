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

/// The widest subnet a filter may capture: a `<SUBNET>`/`<CIDR>` prefix shorter than this (a /0 would be every
/// address) is refused, the same floor as a jail's `ipv4_prefix` and
/// `ipv6_prefix`.
pub const MIN_SUBNET_PREFIX: u8 = 8;

/// Reads fail2ban's `<CIDR>` capture (the prefix length of a `<SUBNET>`)
/// for `host`: `Ok(None)` when it covers the whole address, `Ok(Some(len))`
/// for a subnet, `Err(())` for a length the
/// family cannot have or one shorter than [`MIN_SUBNET_PREFIX`]. A
/// v4-mapped IPv6 host (`::ffff:192.0.2.0/120`) has the length of its IPv4
/// part (/24), as the host is read as IPv4.
pub(super) fn parse_prefix(raw_host: &[u8], cidr: &[u8], host: IpAddr) -> Result<Option<u8>, ()> {
    if cidr.is_empty() || cidr.len() > 3 || !cidr.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let n: u16 = cidr
        .iter()
        .fold(0, |acc, &b| acc * 10 + u16::from(b - b'0'));
    let written_v6 = raw_host.contains(&b':');
    let len = match (written_v6, host) {
        (false, IpAddr::V4(_)) if n <= 32 => n,
        (true, IpAddr::V6(_)) if n <= 128 => n,
        // v4-mapped: the IPv4 part's length.
        (true, IpAddr::V4(_)) if (96..=128).contains(&n) => n - 96,
        _ => return Err(()),
    };
    let len = u8::try_from(len).map_err(|_| ())?;
    let max = if host.is_ipv4() { 32 } else { 128 };
    if len < MIN_SUBNET_PREFIX {
        return Err(());
    }
    Ok((len < max).then_some(len))
}

/// A failregex's host (`host_r`) and `<CIDR>` (`cidr_r`) captures in
/// `text` read as an address and, for a subnet, its length, host bits
/// cleared (`192.0.2.7/24` is `192.0.2.0`, 24). `None`: no address (a DNS
/// name, or a prefix [`parse_prefix`] refuses): a bad host.
pub(super) fn subnet_of(
    text: &[u8],
    host_r: std::ops::Range<usize>,
    cidr_r: Option<std::ops::Range<usize>>,
) -> Option<(IpAddr, Option<u8>)> {
    let raw = text.get(host_r)?;
    let host = parse_host(raw)?;
    let Some(cidr) = cidr_r.and_then(|r| text.get(r)) else {
        return Some((host, None));
    };
    match parse_prefix(raw, cidr, host).ok()? {
        None => Some((host, None)),
        Some(len) => {
            let net = ipnet::IpNet::new(host, len).ok()?.trunc();
            Some((net.addr(), Some(len)))
        }
    }
}

/// [`parse_host`], reading a plain dotted-quad IPv4 address straight from
/// the bytes (as `Ipv4Addr`'s parser would: four decimal octets up to 255,
/// no leading zeros); anything else goes to [`parse_host`].
pub(super) fn parse_host_quick(raw: &[u8]) -> Option<IpAddr> {
    match dotted_quad(raw) {
        Some(o) => Some(IpAddr::from(o)),
        None => parse_host(raw),
    }
}

/// The four octets of `raw` if it is exactly a dotted quad in
/// `Ipv4Addr`'s grammar, in one pass over the bytes (this runs on every
/// matching line of a flood).
#[inline]
pub(super) fn dotted_quad(raw: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if raw.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = raw.get(i).filter(|b| b.is_ascii_digit()) {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
            i += 1;
        }
        if i == start || (i - start > 1 && raw[start] == b'0') {
            return None;
        }
        *o = u8::try_from(v).ok()?;
    }
    (i == raw.len()).then_some(octets)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(host: &str, cidr: Option<&str>) -> Option<(String, Option<u8>)> {
        let text = format!("{host}/{}", cidr.unwrap_or(""));
        let cidr_r = cidr.map(|c| host.len() + 1..host.len() + 1 + c.len());
        subnet_of(text.as_bytes(), 0..host.len(), cidr_r).map(|(a, p)| (a.to_string(), p))
    }

    #[test]
    fn a_captured_subnet_is_normalised_and_silly_prefixes_are_refused() {
        let s = |a: &str, p| Some((a.to_string(), p));
        assert_eq!(subnet("192.0.2.77", Some("24")), s("192.0.2.0", Some(24)));
        assert_eq!(subnet("192.0.2.77", None), s("192.0.2.77", None));
        // A host's own length is no subnet.
        assert_eq!(subnet("192.0.2.77", Some("32")), s("192.0.2.77", None));
        assert_eq!(
            subnet("[2001:db8::7]", Some("48")),
            s("2001:db8::", Some(48))
        );
        // v4-mapped: the IPv4 part's length.
        assert_eq!(
            subnet("::ffff:192.0.2.9", Some("120")),
            s("192.0.2.0", Some(24))
        );
        assert_eq!(subnet("::ffff:192.0.2.9", Some("64")), None);
        // /0 would be every address: refused (a bad host), as is anything
        // wider than /8 or longer than the family allows.
        for bad in ["0", "7", "33", "999", "0024"] {
            assert_eq!(subnet("192.0.2.77", Some(bad)), None, "/{bad}");
        }
        assert_eq!(subnet("2001:db8::", Some("129")), None);
        assert_eq!(subnet("2001:db8::", Some("8")), s("2000::", Some(8)));
        assert_eq!(subnet("host.example", Some("24")), None);
    }
}
