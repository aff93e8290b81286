//! fail2ban's `datepattern`: Python regexes with `%`-directives (`%ExY` and
//! the other `%Ex` forms read as their plain directive), one template a line,
//! with `{^LN-BEG}` (the line's start, after at most two non-word
//! characters), `{DATE}` (the common formats), `{UNB}`, `{NONE}` (lines carry
//! no date), `Epoch`/`EPOCH`, `LEPOCH`, `TAI64N` and `ISO8601`.
//!
//! Owns turning such a pattern into the date module's `Custom`: a regex for
//! the `regex` crate (Python syntax translated, a back-reference relaxed to a
//! lazy gap) whose directive groups and cut span are known by index. As in
//! fail2ban, the part cut out of the line is the template's first unnamed
//! group when it has one, else the whole template. `{^LN-BEG}` or
//! `{DEFAULT}` alone means the built-in formats (`None`).

use super::custom::{directive, Field, EPOCH_RE};
use super::{Custom, DateError};
use crate::filter::python;
use crate::UnixTime;

/// The formats `{DATE}` stands for, most specific first.
const DATE_TEMPLATES: &[&str] = &[
    r"%ExY[-/.]%m[-/.]%d(?:T|\s+)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:[A-Z]{3,4} )?(?:%a )?%b\s+%d %H:%M:%S(?:\.%f)?(?: %ExY)?",
    r"%b\s+%d,? %ExY %H:%M:%S",
    r"%d/%b/%ExY[: ]%H:%M:%S(?:\s*%z)?",
    r"%m/%d/%ExY[: ]%H:%M:%S",
    r"%d-%b-%ExY %H:%M:%S(?:\.%f)?(?:\s*%z)?",
    r"%d-%m-%ExY %H:%M:%S",
    r"%d\.%m\.%ExY %H:%M:%S",
    r"%y%m%d\s+%H:%M:%S",
    "TAI64N",
    "EPOCH",
];

const LN_BEG: &str = "{^LN-BEG}";

/// fail2ban's default templates where no datepattern is set: the formats
/// at the line's start, else from a word's start anywhere in the line
/// (`[28325:00010-3735542592] 22-06-2014 09:56:12`) but for Unix times and
/// TAI64N, which fail2ban reads only at the start or after a `[`.
pub(super) fn default_templates() -> Result<Option<Custom>, DateError> {
    let mut pattern = format!("{LN_BEG}{{DATE}}");
    for t in DATE_TEMPLATES {
        if !matches!(*t, "TAI64N" | "EPOCH") {
            pattern.push_str("\n\\b");
            pattern.push_str(t);
        }
    }
    compile(&pattern)
}

/// Compiles a fail2ban datepattern; `None`: use the built-in formats.
pub(super) fn compile(pattern: &str) -> Result<Option<Custom>, DateError> {
    let err = |m: String| DateError::Pattern(format!("{m} in {pattern:?}"));
    let templates: Vec<&str> = pattern
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let builtin = |t: &str| {
        matches!(
            t.strip_prefix(LN_BEG).unwrap_or(t),
            "" | "{DEFAULT}" | "ISO8601"
        )
    };
    if templates.is_empty() || templates.iter().all(|t| builtin(t)) {
        return Ok(None);
    }
    if templates.contains(&"{NONE}") {
        // An empty class: never matches, so every line counts when read.
        let re = regex::bytes::Regex::new("[a&&b]").map_err(|e| err(e.to_string()))?;
        return Ok(Some(Custom {
            re,
            fields: Vec::new(),
            spans: Vec::new(),
        }));
    }
    let mut b = Builder::default();
    let mut alts = Vec::new();
    for (n, t) in templates.iter().enumerate() {
        let t = if builtin(t) { "{DATE}" } else { t };
        let (anchor, body) = match t.strip_prefix(LN_BEG) {
            Some(rest) => (r"^\W{0,2}", rest),
            None => match t.strip_prefix('^') {
                Some(rest) => ("^", rest),
                None => ("", t),
            },
        };
        let body = b.expand(&own_names(body, n)).map_err(err)?;
        let span = format!("s{n}");
        let body = match first_unnamed_group(&body) {
            Some(at) => format!("{}(?P<{span}>{}", &body[..at], &body[at + 1..]),
            None => format!("(?P<{span}>{body})"),
        };
        alts.push(format!("(?:{anchor}{body})"));
    }
    let joined = python::translate(&alts.join("|")).relaxed;
    let re = regex::bytes::Regex::new(&joined).map_err(|e| err(e.to_string()))?;
    let index = |name: &str| re.capture_names().position(|n| n == Some(name));
    let fields: Vec<(Field, usize)> = b
        .fields
        .iter()
        .enumerate()
        .filter_map(|(k, f)| index(&format!("f{k}")).map(|g| (*f, g)))
        .collect();
    if fields.iter().all(|(f, _)| *f == Field::Ignore) {
        return Err(err("no date or time directive".into()));
    }
    let spans = (0..templates.len())
        .filter_map(|n| index(&format!("s{n}")))
        .collect();
    Ok(Some(Custom { re, fields, spans }))
}

/// Directives in the order their groups `f0`, `f1`... were written.
#[derive(Default)]
struct Builder {
    fields: Vec<Field>,
}

impl Builder {
    fn group(&mut self, piece: &str, field: Field) -> String {
        let k = self.fields.len();
        self.fields.push(field);
        format!("(?P<f{k}>{piece})")
    }

    /// Replaces directives and keywords in one template's body.
    fn expand(&mut self, body: &str) -> Result<String, String> {
        match body {
            "Epoch" | "EPOCH" => return Ok(self.group(EPOCH_RE, Field::Epoch)),
            "LEPOCH" => {
                return Ok(self.group(
                    r"(?-u:\b)[0-9]{10}(?:[0-9]{3}(?:[0-9]{3})?)?(?:\.[0-9]+)?(?-u:\b)",
                    Field::LongEpoch,
                ))
            }
            "TAI64N" => return Ok(self.group("@[0-9a-fA-F]{24}", Field::Tai64n)),
            "ISO8601" => return self.expand(DATE_TEMPLATES[0]),
            _ => {}
        }
        let mut out = String::with_capacity(body.len() * 2);
        let mut rest = body;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("{DATE}") {
                let alts = DATE_TEMPLATES
                    .iter()
                    .map(|t| self.expand(t).map(|e| format!("(?:{e})")))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push_str(&format!("(?:{})", alts.join("|")));
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix("{UNB}") {
                rest = r;
                continue;
            }
            match c {
                '\\' => {
                    let len = rest[1..].chars().next().map_or(0, char::len_utf8);
                    out.push_str(&rest[..1 + len]);
                    rest = &rest[1 + len..];
                }
                '%' => {
                    let r = &rest[1..];
                    let r = r.strip_prefix("Ex").unwrap_or(r);
                    let Some(d) = r.chars().next() else {
                        return Err("dangling '%'".into());
                    };
                    rest = &r[d.len_utf8()..];
                    if d == '%' {
                        out.push('%');
                        continue;
                    }
                    let (piece, field) = match d {
                        'A' => (WEEKDAYS_LONG, Field::Ignore),
                        'k' => (" ?[0-9]{1,2}", Field::Hour),
                        'l' => (" ?[0-9]{1,2}", Field::Hour12),
                        // fail2ban's zones: `%z` also takes UTC and GMT,
                        // `%Z` upper-case names only.
                        'z' => ("Z|UTC|GMT|[+-][01][0-9](?::?[0-9]{2})?", Field::Offset),
                        'Z' => ("Z|[A-Z]{3,5}", Field::ZoneName),
                        _ => directive(d).ok_or_else(|| format!("unknown directive %{d}"))?,
                    };
                    let g = self.group(piece, field);
                    out.push_str(&g);
                }
                _ => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        Ok(out)
    }
}

const WEEKDAYS_LONG: &str = "(?i:monday|tuesday|wednesday|thursday|friday|saturday|sunday)";

/// The template's own group names made unique among templates
/// (`(?P<_sep>` and `(?P=_sep)` in template 2 become `_sep_t2`).
fn own_names(body: &str, n: usize) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    let mut rest = body;
    while let Some(at) = rest.find("(?P") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let open = tail.chars().next();
        let end = tail.find(['>', ')']);
        match (open, end) {
            (Some('<' | '='), Some(e)) => {
                out.push_str(&tail[..e]);
                out.push_str(&format!("_t{n}"));
                rest = &tail[e..];
            }
            _ => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Byte offset of the first `(` that opens an unnamed capture group.
fn first_unnamed_group(re: &str) -> Option<usize> {
    let b = re.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class && b.get(i + 1) != Some(&b'?') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// TAI64N `@4000000037c219bf2ef02e94`: seconds since 1970 plus 2^62, TAI.
/// Like fail2ban, the TAI-UTC offset is not subtracted.
pub(super) fn tai64n(t: &[u8]) -> Option<UnixTime> {
    let hex = std::str::from_utf8(t.strip_prefix(b"@")?.get(..16)?).ok()?;
    let v = u64::from_str_radix(hex, 16).ok()?;
    i64::try_from(v.checked_sub(1 << 62)?).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{DateDetector, DateFormat};
    use jiff::tz::TimeZone;

    #[test]
    fn the_default_templates_compile_and_read_what_the_built_in_formats_do_not() {
        // Compiled when a line first needs them: an error would only
        // show as dates not found, so it is caught here.
        assert!(matches!(super::default_templates(), Ok(Some(_))));
        let d = DateDetector::fail2ban(None, Some(TimeZone::UTC)).unwrap();
        let plain = DateDetector::with_time_zone(None, TimeZone::UTC).unwrap();
        for line in ["09.06.2013 07:57:47 x", "Jun 09, 2013 07:57:47 x"] {
            let now = 1_376_200_000;
            assert!(plain.detect(line.as_bytes(), now).is_none(), "{line}");
            assert!(d.detect(line.as_bytes(), now).is_some(), "{line}");
        }
    }

    fn found(pattern: &str, line: &str) -> Option<(i64, String)> {
        let d = DateDetector::fail2ban(Some(pattern), Some(TimeZone::UTC)).unwrap();
        d.detect(line.as_bytes(), 1_124_013_600)
            .map(|m| (m.ts, line[m.start..m.end].to_string()))
    }

    #[test]
    fn directives_groups_and_keywords_read_as_fail2ban_reads_them() {
        assert_eq!(
            found(
                r"{^LN-BEG}%ExY(?P<_sep>[-/.])%m(?P=_sep)%d[T ]%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
                "2005-08-14 12:00:01,123 fail"
            ),
            Some((1_124_020_801, "2005-08-14 12:00:01,123".into()))
        );
        assert_eq!(
            super::own_names("(?P<_sep>-)x(?P=_sep)", 2),
            "(?P<_sep_t2>-)x(?P=_sep_t2)"
        );
        // The first unnamed group is what is cut out.
        assert_eq!(
            found(r"^[^\[]*\[({DATE})", "x [Sun Aug 14 12:00:01 2005] y"),
            Some((1_124_020_801, "Sun Aug 14 12:00:01 2005".into()))
        );
        assert_eq!(
            found("{^LN-BEG}Epoch", "1124020801.5 x").map(|f| f.0),
            Some(1_124_020_801)
        );
        assert_eq!(
            found("{^LN-BEG}TAI64N", "@4000000042ff3281000000 x").map(|f| f.0),
            None,
            "23 hex digits are not TAI64N"
        );
        assert!(found("{^LN-BEG}TAI64N", "@4000000042ff328100000000 x").is_some());
        // `%%` is a literal percent: no directive left.
        assert!(DateDetector::fail2ban(Some("^%%b-%%d"), None).is_err());
        let none = DateDetector::fail2ban(Some("{NONE}"), None).unwrap();
        assert_eq!(none.detect(b"2005-08-14 12:00:01 x", 0), None);
        let builtin = DateDetector::fail2ban(Some("{^LN-BEG}"), None).unwrap();
        assert!(!builtin.has_datepattern());
        // logtimezone: the zone of dates without an offset.
        let zurich = super::super::parse_zone("UTC+0200").unwrap();
        let d = DateDetector::fail2ban(Some("^%m/%d/%Y %H:%M:%S"), Some(zurich)).unwrap();
        assert_eq!(
            d.detect(b"08/14/2005 14:00:01 x", 0).unwrap().ts,
            1_124_020_801
        );
        assert!(super::super::parse_zone("UTC+2x").is_err());
        assert!(super::super::parse_zone("Nowhere/Atlantis").is_err());
        assert_eq!(super::super::parse_zone("GMT").unwrap(), TimeZone::UTC);
        let d = DateDetector::fail2ban(Some("^%m/%d/%Y %H:%M:%S"), Some(TimeZone::UTC)).unwrap();
        let m = d.detect(b"08/14/2005 12:00:01 x", 0).unwrap();
        assert_eq!((m.ts, m.format), (1_124_020_801, DateFormat::Custom));
    }
}
