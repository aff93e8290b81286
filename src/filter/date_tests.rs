//! Unit tests of `date`.

use super::zone::to_datetime;
use super::*;
use jiff::civil::DateTime;

const NOW: i64 = 1_718_452_800; // 2024-06-15T12:00:00Z

fn ny() -> TimeZone {
    TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()
}
fn det(pattern: Option<&str>) -> DateDetector {
    DateDetector::with_time_zone(pattern, ny()).unwrap()
}
/// `...Z` is UTC, anything else New York local time (computed by jiff).
fn ts(s: &str) -> i64 {
    match s.parse::<Timestamp>() {
        Ok(t) => t.as_second(),
        Err(_) => ny().to_timestamp(s.parse().unwrap()).unwrap().as_second(),
    }
}
/// `"line | expected time | matched text"` (`-` for no match) holds for `d`.
fn check(d: &DateDetector, case: &str, format: &str) {
    let f: Vec<&str> = case.split(" | ").collect();
    let m = d.detect(f[0].as_bytes(), NOW);
    let got = m.map(|m| (m.ts, &f[0][m.start..m.end], format!("{:?}", m.format)));
    let want = (f[1] != "-").then(|| (ts(f[1]), f[2], format.to_string()));
    assert_eq!(got, want, "{case}");
}

#[test]
fn builtin_formats_values_and_spans() {
    let d = det(None);
    for case in [
        "Iso8601 | 2024-01-02T03:04:05Z sshd | 2024-01-02T03:04:05Z | 2024-01-02T03:04:05Z",
        "Iso8601 | 2024-01-02T03:04:05.123456+01:00 h | 2024-01-02T02:04:05Z | 2024-01-02T03:04:05.123456+01:00",
        "Iso8601 | 2024-01-02 03:04:05-0530 x | 2024-01-02T08:34:05Z | 2024-01-02 03:04:05-0530",
        "Iso8601 | 2024-01-02T03:04:05+05 x | 2024-01-01T22:04:05Z | 2024-01-02T03:04:05+05",
        "Iso8601 | [2024-01-02 03:04:05.9Z] x | 2024-01-02T03:04:05Z | 2024-01-02 03:04:05.9Z",
        "Iso8601 | <34>1 2003-10-11T22:14:15.003Z mymachine su | 2003-10-11T22:14:15Z | 2003-10-11T22:14:15.003Z",
        "Iso8601 | 2024-07-02T03:04:05 x | 2024-07-02T03:04:05 | 2024-07-02T03:04:05",
        "Iso8601 | host: at 2024-01-02T03:04:05Z x | 2024-01-02T03:04:05Z | 2024-01-02T03:04:05Z",
        "PythonLogging | 2015-03-10 21:31:23,899 - root | 2015-03-10T21:31:23 | 2015-03-10 21:31:23,899",
        "NginxAccess | 203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" | 2000-10-10T20:55:36Z | 10/Oct/2000:13:55:36 -0700",
        "NginxError | 2024/01/02 03:04:05 [error] 12#0: *1 x | 2024-01-02T03:04:05 | 2024/01/02 03:04:05",
        "Syslog | Jan  2 03:04:05 host sshd[1]: x | 2024-01-02T03:04:05 | Jan  2 03:04:05",
        "Syslog | Mar 9 03:04:05 host | 2024-03-09T03:04:05 | Mar 9 03:04:05",
        "Syslog | [Wed Oct 11 14:32:52.123456 2000] [error] | 2000-10-11T14:32:52 | Oct 11 14:32:52.123456 2000",
    ] {
        let (format, case) = case.split_once(" | ").unwrap();
        check(&d, case, format);
    }
}

#[test]
fn nginx_access_span_excludes_brackets() {
    let line = b"2001:db8::1 - bob [10/Oct/2000:13:55:36 +0000] \"GET /\"";
    let m = det(None).detect(line, NOW).unwrap();
    assert_eq!((line[m.start - 1], line[m.end]), (b'[', b']'));
    assert_eq!(m.ts, ts("2000-10-10T13:55:36Z"));
}

#[test]
fn system_zone_is_the_default() {
    let d = DateDetector::new(None).unwrap();
    let dt: DateTime = "2024-07-04T12:00:00".parse().unwrap();
    let want = TimeZone::system().to_timestamp(dt).unwrap().as_second();
    assert_eq!(
        d.detect(b"2024-07-04 12:00:00 x", NOW).map(|m| m.ts),
        Some(want)
    );
}

#[test]
fn syslog_year_inference() {
    let d = DateDetector::with_time_zone(None, TimeZone::UTC).unwrap();
    for (now, line, want) in [
        (
            "2025-01-01T10:00:00Z",
            "Dec 31 23:59:59 h",
            "2024-12-31T23:59:59Z",
        ),
        (
            "2025-01-01T10:00:00Z",
            "Jan  2 00:00:00 h",
            "2025-01-02T00:00:00Z",
        ),
        (
            "2025-01-01T10:00:00Z",
            "Jan  5 00:00:00 h",
            "2024-01-05T00:00:00Z",
        ),
        (
            "2024-12-31T00:00:00Z",
            "Dec 31 12:00:00 h",
            "2024-12-31T12:00:00Z",
        ),
        (
            "2025-03-01T00:00:00Z",
            "Feb 29 12:00:00 h",
            "2024-02-29T12:00:00Z",
        ),
    ] {
        let got = d.detect(line.as_bytes(), ts(now)).map(|m| m.ts);
        assert_eq!(got, Some(ts(want)), "{line} at {now}");
    }
    // The year is now's year in the local zone: 2024-12-31 22:00 in New York.
    let got = det(None).detect(b"Jan  1 00:30:00 h", ts("2025-01-01T03:00:00Z"));
    assert_eq!(got.map(|m| m.ts), Some(ts("2024-01-01T00:30:00")));
}

#[test]
fn zone_table_agrees_with_jiff() {
    let zones = [
        "EST5EDT,M3.2.0,M11.1.0",
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
    ];
    for tz in zones.map(|z| TimeZone::posix(z).unwrap()) {
        let zone = Zone::new(tz.clone());
        assert!(zone.offsets.len() > 500 && !zone.local_index.is_empty());
        let starts = [
            "2023-01-01T00:00:00Z",
            "1850-01-01T00:00:00Z",
            "2250-01-01T00:00:00Z",
        ];
        let samples = starts
            .iter()
            .flat_map(|s| (0..30_000).map(move |i| ts(s) + i * 1_799));
        let edges = zone.local.iter().flat_map(|k| [k - 1, *k, k + 1]);
        for local in samples.chain(edges) {
            let dt = to_datetime(local).unwrap();
            let want = tz
                .to_ambiguous_timestamp(dt)
                .compatible()
                .unwrap()
                .as_second();
            assert_eq!(zone.local_to_utc(local), Some(want), "{dt}");
            let off = tz
                .to_offset(Timestamp::from_second(local).unwrap())
                .seconds();
            assert_eq!(zone.offset_at(local), off, "{local}");
        }
    }
}

#[test]
fn civil_arithmetic_round_trips() {
    for days in (-800_000..800_000).step_by(97) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), Some(days));
    }
    assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
}

#[test]
fn invalid_dates_do_not_match() {
    let d = det(None);
    for line in [
        "2024-13-02T03:04:05Z",
        "2023-02-29 03:04:05",
        "2024-02-30T00:00:00Z",
        "2024-01-02T25:04:05Z",
        "2024-01-02T03:60:05Z",
        "2024-01-02T03:04:056",
        "Feb 30 03:04:05 x",
        "Jan 32 03:04:05",
        "Jan  2 24:00:00",
        "32/Oct/2000:13:55:36 -0700",
        "10/Foo/2000:13:55:36 -0700",
        "2024/01/02 03:04:65",
        "2024/01/02T03:04:05",
        "Xjan  2 03:04:05",
        "12024-01-02T03:04:05Z",
        "2024-00-10 01:02:03",
    ] {
        assert_eq!(d.detect(line.as_bytes(), NOW), None, "{line}");
    }
    assert!(d.detect(b"2024-02-29T00:00:00Z", NOW).is_some());
}

#[test]
fn truncated_formats_do_not_match() {
    let d = det(None);
    for text in [
        "2024-01-02T03:04:05",
        "Jan  2 03:04:05",
        "10/Oct/2000:13:55:36",
        "2024/01/02 03:04:05",
    ] {
        for n in 0..text.len() {
            assert_eq!(
                d.detect(&text.as_bytes()[..n], NOW),
                None,
                "{:?}",
                &text[..n]
            );
        }
        assert_eq!(
            d.detect(text.as_bytes(), NOW).map(|m| m.end),
            Some(text.len())
        );
    }
}

#[test]
fn garbage_and_invalid_utf8() {
    let m = det(None)
        .detect(b"\xff\xfe 2024-01-02T03:04:05Z \xc3(", NOW)
        .unwrap();
    assert_eq!((m.start, m.end, m.ts), (3, 23, ts("2024-01-02T03:04:05Z")));
    let dets = [
        det(None),
        det(Some("%d/%b/%Y %H:%M:%S")),
        det(Some("EPOCH")),
    ];
    let (mut x, alphabet) = (
        0x9e37_79b9_7f4a_7c15_u64,
        b"0123456789-:/ TZ+.,[]JanFebOct\xff\xc3",
    );
    for _ in 0..20_000 {
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        };
        let line: Vec<u8> = (0..next() % 90).map(|_| next()).collect();
        for m in dets.iter().filter_map(|d| d.detect(&line, NOW)) {
            assert!(m.start < m.end && m.end <= line.len());
        }
    }
    for now in [i64::MIN, -1, i64::MAX] {
        // Years beyond jiff's range are refused, not overflowed.
        assert_eq!(
            dets[0].detect(b"Jan  2 03:04:05 x", now).is_some(),
            now == -1
        );
        assert!(dets[1].detect(b"02/Jan/2024 03:04:05 x", now).is_some());
    }
    assert_eq!(dets[0].detect(b"", NOW), None);
    assert_eq!(dets[0].detect(b"\x00\x01\xff\xfe\xfd", NOW), None);
}

#[test]
fn the_quick_start_check_never_rejects_a_date() {
    let heads = [
        "2024-03-10 00:00:00,018 x",
        "2024/03/10 00:00:00 x",
        "2024-03-10T00:00:00Z x",
        "10/Mar/2024:00:00:00 +0000] x",
        "Mar 10 00:00:00 x",
        "mar  1 00:00:00 x",
        "DEC 31 23:59:59 2023 x",
    ];
    for h in heads {
        assert!(super::parse_builtin(h.as_bytes(), 0).is_some(), "{h}");
        assert!(super::may_start_date(h.as_bytes()), "{h}");
    }
    for b in ["203.0.113.5 - - [", "2001:db8::1 - -", "", "-", "[10/Mar"] {
        assert!(!super::may_start_date(b.as_bytes()), "{b}");
    }
    // Every byte string of a few bytes: the check lets through all that parse.
    let alphabet = b"0123/:-Mar ";
    let mut buf = *b"2024-03-10 00:00:00";
    for i in 0..5 {
        for &c in alphabet {
            let mut b = buf;
            b[i] = c;
            if super::parse_builtin(&b, 0).is_some() {
                assert!(
                    super::may_start_date(&b),
                    "{:?}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
    }
    buf[0] = b'x';
    assert!(super::parse_builtin(&buf, 0).is_none());
}

#[test]
fn a_line_gets_the_same_date_whatever_came_before() {
    let d = det(None);
    let nginx = b"198.51.100.2 - - [10/Oct/2000:13:55:36 +0000] \"GET /\"";
    let (m, anchor) = d.detect_anchored(nginx, NOW).unwrap();
    assert_eq!(m.ts, ts("2000-10-10T13:55:36Z"));
    assert_eq!(anchor, Some(Anchor::Bracket));
    // Two dates: the one at the start wins, after any line.
    let both = b"2024-03-10 00:00:00 [10/Oct/2000:13:55:36 +0000] x";
    assert_eq!(d.detect(both, NOW).map(|m| m.start), Some(0));
    let (m, anchor) = d.detect_anchored(both, NOW).unwrap();
    assert_eq!((m.start, anchor), (0, Some(Anchor::At(0))));
    assert!(d.date_at_start(both, NOW));
    assert!(!d.date_at_start(nginx, NOW));
}

#[test]
fn detector_is_shareable() {
    fn shareable<T: Clone + Send + Sync>() {}
    shareable::<DateDetector>();
}

#[test]
fn datepatterns() {
    for case in [
        "^%Y%m%d %H%M%S | 20240102 030405 x | 2024-01-02T03:04:05 | 20240102 030405",
        "^%Y%m%d %H%M%S | x 20240102 030405 | -",
        "{^LN-BEG}%Y-%m-%d %H:%M | 2024-01-02 03:04 x | 2024-01-02T03:04:00 | 2024-01-02 03:04",
        "{^LN-BEG}%Y-%m-%d %H:%M |  2024-01-02 03:04 x | -",
        "at %d.%m.%Y %H:%M | failed at 02.01.2024 03:04 from x | 2024-01-02T03:04:00 | at 02.01.2024 03:04",
        "%b %e %H:%M:%S | x Jan  2 03:04:05 y | 2024-01-02T03:04:05 | Jan  2 03:04:05",
        "%b %e %H:%M:%S | x Dec 24 03:04:05 y | 2023-12-24T03:04:05 | Dec 24 03:04:05",
        "%I:%M %p %Y-%m-%d | 12:30 AM 2024-01-02 | 2024-01-02T00:30:00 | 12:30 AM 2024-01-02",
        "%I:%M %p %Y-%m-%d | 01:00 pm 2024-01-02 | 2024-01-02T13:00:00 | 01:00 pm 2024-01-02",
        "%I:%M %p %Y-%m-%d | 13:00 pm 2024-01-02 | -",
        "%Y-%m-%dT%H:%M:%S.%f%z | t=2024-01-02T03:04:05.5+0200; | 2024-01-02T01:04:05Z | 2024-01-02T03:04:05.5+0200",
        "%j/%Y %H:%M:%S %Z | 032/2024 10:00:00 UTC | 2024-02-01T10:00:00Z | 032/2024 10:00:00 UTC",
        "%j/%Y %H:%M:%S %Z | 366/2023 10:00:00 UTC | -",
        "%a %B %d, %y %H:%M:%S | Tue January 02, 24 03:04:05 | 2024-01-02T03:04:05 | Tue January 02, 24 03:04:05",
        "EPOCH | audit(1700000000.123:42): x | 2023-11-14T22:13:20Z | 1700000000.123",
        "^EPOCH | x 1700000000 | -",
        "t=%s | a t=1700000000 b | 2023-11-14T22:13:20Z | t=1700000000",
        r"\[%d/%b/%Y:%H:%M:%S %z\] | h [10/Oct/2000:13:55:36 -0700] x | 2000-10-10T20:55:36Z | [10/Oct/2000:13:55:36 -0700]",
        "^%Y/%m/%d | 2024-01-02T03:04:05Z | -",
        "%H:%M:%S | at 03:04:05 | 2024-06-15T03:04:05 | 03:04:05",
        "%Y-%m-%d | 2024-02-30 then 2024-03-01 | 2024-03-01T00:00:00 | 2024-03-01",
        "%% %Y-%m-%d | 50% 2024-03-01 | 2024-03-01T00:00:00 | % 2024-03-01",
    ] {
        let (pattern, case) = case.split_once(" | ").unwrap();
        check(&det(Some(pattern)), case, "Custom");
    }
}

#[test]
fn bad_datepatterns_name_the_problem() {
    for (pattern, needle) in [
        ("%Y-%Q", "unknown directive %Q at position 3"),
        ("%Y %", "dangling '%' at position 3"),
        ("%Y\\", "dangling '\\' at position 2"),
        ("{^LN-BEG %Y", "'{' at position 0"),
        ("%Y}", "'}' at position 2"),
        ("hello", "no date"),
        ("%a %f", "no date"),
    ] {
        let err = DateDetector::new(Some(pattern)).unwrap_err().to_string();
        assert!(err.contains(needle), "{pattern}: {err}");
    }
}

/// `cargo test --release --lib filter::date -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_ns_per_line() {
    let d = DateDetector::new(None).unwrap();
    type Make = fn(usize) -> String;
    let kinds: [(&str, Make); 4] = [
        ("syslog", |i| {
            format!(
                "Jan {:2} {:02}:{:02}:{:02} host sshd[42]: Failed password",
                i % 28 + 1,
                i % 24,
                i % 60,
                i % 59
            )
        }),
        ("python", |i| {
            format!(
                "2015-03-{:02} 21:{:02}:{:02},899 - root - WARNING x",
                i % 28 + 1,
                i % 60,
                i % 59
            )
        }),
        ("iso-z", |i| {
            format!("2024-01-{:02}T03:04:{:02}.123Z host x", i % 28 + 1, i % 60)
        }),
        ("nginx", |i| {
            format!(
                "203.0.113.{} - - [{:02}/Oct/2000:13:55:36 -0700] \"GET /\"",
                i % 250,
                i % 28 + 1
            )
        }),
    ];
    for (name, make) in kinds {
        let lines: Vec<String> = (0..1000).map(make).collect();
        let (mut sum, mut ns) = (0i64, f64::MAX);
        for _round in 0..5 {
            let start = std::time::Instant::now();
            for l in (0..1000).flat_map(|_| &lines) {
                let m = d.detect(l.as_bytes(), NOW);
                sum = sum.wrapping_add(std::hint::black_box(m).map_or(0, |m| m.ts));
            }
            ns = ns.min(start.elapsed().as_nanos() as f64 / 1e6);
        }
        println!("{name:7} {ns:6.1} ns/line, best of 5 x 1M (checksum {sum})");
    }
}

#[test]
fn a_time_of_day_alone_is_today_unless_that_is_later_than_now() {
    // NOW is 2024-06-15 08:00 in New York.
    let d = det(Some("^%H:%M:%S"));
    let at = |line: &str| d.detect(line.as_bytes(), NOW).map(|m| m.ts);
    assert_eq!(at("07:59:00 x"), Some(ts("2024-06-15T07:59:00")));
    assert_eq!(
        at("08:00:01 x"),
        Some(ts("2024-06-14T08:00:01")),
        "a time later than now is yesterday's (fail2ban's rollover at midnight)"
    );
}

/// fail2ban's default templates read a zone around the date: `(?:\s*%z)?`
/// after a numeric date, `(?:%Z )?` before a syslog one; banwarden's own
/// dialect does not.
#[test]
fn fail2ban_dates_take_a_zone_around_them() {
    let f = DateDetector::fail2ban(None, Some(ny())).unwrap();
    for case in [
        "2005-06-21 14:55:10 UTC machine | 2005-06-21T14:55:10Z | 2005-06-21 14:55:10 UTC",
        "2005-06-21 14:55:11 GMT machine | 2005-06-21T14:55:11Z | 2005-06-21 14:55:11 GMT",
        "2019-11-26 01:04:49.008 +08:00 [WRN] | 2019-11-25T17:04:49Z | 2019-11-26 01:04:49.008 +08:00",
        "2019-11-26 01:04:49  -0130 x | 2019-11-26T02:34:49Z | 2019-11-26 01:04:49  -0130",
        "2019-11-26 01:04:49 +25 x | 2019-11-26T01:04:49 | 2019-11-26 01:04:49",
        "[PDT Apr 16 21:05:29] error | 2024-04-17T04:05:29Z | PDT Apr 16 21:05:29",
        "[CEST Aug  6 10:14:52] error | 2023-08-06T08:14:52Z | CEST Aug  6 10:14:52",
        "[XYZ Apr 16 21:05:29] error | 2024-04-16T21:05:29 | Apr 16 21:05:29",
    ] {
        let parts: Vec<&str> = case.split(" | ").collect();
        let m = f.detect(parts[0].as_bytes(), NOW).expect(case);
        assert_eq!(
            (m.ts, &parts[0][m.start..m.end]),
            (ts(parts[1]), parts[2]),
            "{case}"
        );
    }
    // A date after a prefix, from a word's start (fail2ban's default
    // templates are not anchored), but not a Unix time in the middle.
    let line = "[28325:00010-3735542592] 22-06-2014 09:56:12   smtp: x";
    let m = f.detect(line.as_bytes(), NOW).expect("domino");
    assert_eq!(
        (m.ts, &line[m.start..m.end]),
        (ts("2014-06-22T09:56:12"), "22-06-2014 09:56:12")
    );
    assert_eq!(f.detect(b"[28325:00010-3735542592] no date", NOW), None);
    // banwarden's own dialect leaves the zone in the text.
    let native = det(None);
    let m = native
        .detect(b"2005-06-21 14:55:10 UTC machine", NOW)
        .unwrap();
    assert_eq!((m.end, m.ts), (19, ts("2005-06-21T14:55:10")));
}
