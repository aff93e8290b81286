//! Parsers for the value types of the config: durations, networks, ports, names.
//!
//! Each returns a message a user can act on; none knows where the value came from.

use std::net::IpAddr;

use ipnet::IpNet;

use super::raw::Scalar;
use crate::firewall::PortRange;
use crate::jail::{Increment, IncrementRule};

/// `10m`, `1h30m`, `2 days`, `600` (seconds). `-1` and `permanent` give `None`.
/// Built on jiff's "friendly" duration format; days are 24 hours.
pub fn parse_duration(s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s == "-1" || s.eq_ignore_ascii_case("permanent") {
        return Ok(None);
    }
    if let Ok(n) = s.parse::<i64>() {
        return if n > 0 {
            Ok(Some(n))
        } else {
            Err(format!(
                "`{s}`: a duration must be positive (or -1/permanent)"
            ))
        };
    }
    let span: jiff::Span = s
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 90s, 10m, 1h, 1d, 1h30m"))?;
    let secs = span
        .total((
            jiff::Unit::Second,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .map_err(|_| format!("`{s}`: use seconds to weeks (months and years vary in length)"))?;
    if secs < 1.0 {
        return Err(format!("`{s}`: a duration must be at least one second"));
    }
    Ok(Some(secs as i64))
}

/// An address or a CIDR network (`192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
}

/// A port, a range (`8000-8080`) or a well-known service name.
pub fn parse_ports(v: &Scalar) -> Result<PortRange, String> {
    let one = |s: &str| -> Result<u16, String> {
        if let Ok(p) = s.parse::<u16>() {
            return if p > 0 {
                Ok(p)
            } else {
                Err("port 0 is not a port".into())
            };
        }
        SERVICES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a port number, a range like 8000-8080, or a known service name"
                )
            })
    };
    match v {
        Scalar::Int(i) => u16::try_from(*i)
            .ok()
            .filter(|p| *p > 0)
            .map(|p| PortRange { lo: p, hi: p })
            .ok_or_else(|| format!("{i} is not a port (1-65535)")),
        Scalar::Text(s) => {
            let s = s.trim();
            if let Some((a, b)) = s.split_once('-') {
                let (lo, hi) = (one(a.trim())?, one(b.trim())?);
                if lo > hi {
                    return Err(format!("`{s}`: range is backwards"));
                }
                Ok(PortRange { lo, hi })
            } else {
                let p = one(s)?;
                Ok(PortRange { lo: p, hi: p })
            }
        }
    }
}

const SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("smtp", 25),
    ("http", 80),
    ("pop3", 110),
    ("imap", 143),
    ("https", 443),
    ("submission", 587),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
];

/// `bantime_increment`: `factor` or `durations`, with `maxtime`, `window`
/// (default 1 week) and `across_jails`.
pub fn increment(raw: &super::raw::RawIncrement) -> Result<Increment, String> {
    let dur =
        |v: &Scalar, what: &str| parse_duration(&v.to_string()).map_err(|e| format!("{what}: {e}"));
    let rule = match (&raw.factor, &raw.durations) {
        (Some(_), Some(_)) => return Err("give either factor or durations, not both".into()),
        (None, None) => {
            return Err("needs factor (e.g. 2) or durations (e.g. [1m, 5m, 1h, permanent])".into())
        }
        (Some(f), None) if *f >= 1.0 && f.is_finite() => IncrementRule::Factor(*f),
        (Some(f), None) => return Err(format!("factor {f} must be at least 1")),
        (None, Some(list)) if list.is_empty() => return Err("durations must not be empty".into()),
        (None, Some(list)) => IncrementRule::List(
            list.iter()
                .map(|d| dur(d, "durations"))
                .collect::<Result<_, _>>()?,
        ),
    };
    let maxtime = match &raw.maxtime {
        None => None,
        Some(v) => Some(
            dur(v, "maxtime")?.ok_or("maxtime cannot be permanent (leave it out for no cap)")?,
        ),
    };
    let window = match &raw.window {
        None => 7 * 86400,
        Some(v) => dur(v, "window")?.ok_or("window cannot be permanent")?,
    };
    Ok(Increment {
        rule,
        maxtime,
        window,
        across_jails: raw.across_jails.unwrap_or(false),
    })
}

/// Names usable as nft identifiers: a letter, then letters, digits, `_` or `-`.
pub fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Some(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Some(5400)));
        assert_eq!(parse_duration("1d"), Ok(Some(86400)));
        assert_eq!(parse_duration("45"), Ok(Some(45)));
        assert_eq!(parse_duration("-1"), Ok(None));
        assert_eq!(parse_duration("permanent"), Ok(None));
        assert!(parse_duration("10x").unwrap_err().contains("10m"));
        assert!(parse_duration("1mo").is_err());
        assert!(parse_duration("0").is_err());
    }

    #[test]
    fn nets() {
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.300").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports(&Scalar::Int(22)),
            Ok(PortRange { lo: 22, hi: 22 })
        );
        assert_eq!(
            parse_ports(&Scalar::Text("https".into())),
            Ok(PortRange { lo: 443, hi: 443 })
        );
        assert_eq!(
            parse_ports(&Scalar::Text("8000-8080".into())),
            Ok(PortRange { lo: 8000, hi: 8080 })
        );
        assert!(parse_ports(&Scalar::Int(70000)).is_err());
        assert!(parse_ports(&Scalar::Text("90-80".into())).is_err());
        assert!(parse_ports(&Scalar::Text("gopher".into())).is_err());
    }

    #[test]
    fn increments() {
        use super::super::raw::RawIncrement;
        let r = RawIncrement {
            factor: Some(2.0),
            maxtime: Some(Scalar::Text("1d".into())),
            ..Default::default()
        };
        let i = increment(&r).unwrap();
        assert_eq!(
            (i.rule.clone(), i.maxtime, i.window),
            (IncrementRule::Factor(2.0), Some(86400), 604800)
        );
        let r = RawIncrement {
            durations: Some(vec![
                Scalar::Text("1m".into()),
                Scalar::Text("permanent".into()),
            ]),
            ..Default::default()
        };
        assert_eq!(
            increment(&r).unwrap().rule,
            IncrementRule::List(vec![Some(60), None])
        );
        assert!(increment(&RawIncrement::default()).is_err());
        assert!(increment(&RawIncrement {
            factor: Some(0.5),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("nginx-http-auth"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(33)));
    }
}
