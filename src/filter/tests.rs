use super::*;

fn spec(fail: &[&str], ignore: &[&str]) -> FilterSpec {
    FilterSpec {
        name: "t".into(),
        failregex: fail.iter().map(|s| s.to_string()).collect(),
        ignoreregex: ignore.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn outcome(f: &Filter, line: &str) -> String {
    match f.match_text(line.as_bytes()) {
        Outcome::Failure { host, user, .. } => {
            format!(
                "{host} {}",
                user.map(|u| String::from_utf8_lossy(u).into_owned())
                    .unwrap_or_default()
            )
        }
        other => format!("{other:?}"),
    }
}

#[test]
fn captures_host_and_user() {
    let f = Filter::compile(spec(
        &[r"^Failed password for <F-USER>\S+</F-USER> from <HOST> port \d+$"],
        &[],
    ))
    .unwrap();
    assert_eq!(
        outcome(&f, "Failed password for root from 1.2.3.4 port 22"),
        "1.2.3.4 root"
    );
    assert_eq!(
        outcome(&f, "Failed password for root from ::ffff:1.2.3.4 port 22"),
        "1.2.3.4 root"
    );
    assert_eq!(
        outcome(&f, "Accepted password for root from 1.2.3.4 port 22"),
        "Missed"
    );
}

#[test]
fn ignoreregex_wins_and_bad_host_reported() {
    let f = Filter::compile(spec(&["fail from <HOST>"], &["fail from 10\\."])).unwrap();
    assert_eq!(
        f.match_text(b"fail from 10.1.1.1"),
        Outcome::Ignored { regex: 0 }
    );
    assert_eq!(
        f.match_text(b"fail from 999.1.1.1"),
        Outcome::BadHost { regex: 0 }
    );
}

#[test]
fn second_failregex_reported_by_index() {
    let f = Filter::compile(spec(&["^a <HOST>$", "^b <HOST>$"], &[])).unwrap();
    assert!(matches!(
        f.match_text(b"b 2001:db8::1"),
        Outcome::Failure { regex: 1, .. }
    ));
}

#[test]
fn prefregex_content_feeds_failregex() {
    let mut s = spec(&["^Login failure <HOST>$"], &[]);
    s.prefregex = Some(r"^\S+ (?P<content>.+)$".into());
    let f = Filter::compile(s).unwrap();
    assert_eq!(
        outcome(&f, "ERROR Login failure 203.0.113.5"),
        "203.0.113.5 "
    );
    assert_eq!(outcome(&f, "nospace"), "Missed");
}

#[test]
fn regex_error_points_into_user_text() {
    let e = Filter::compile(spec(&["from <HOST> port (\\d+"], &[])).unwrap_err();
    assert_eq!(e.which, PatternRef::Failregex(0));
    assert_eq!(e.offset, "from <HOST> port ".len());
    assert!(e.to_string().contains("unclosed group"), "{e}");
}

#[test]
fn host_tag_required() {
    let e = Filter::compile(spec(&["Login failure"], &[])).unwrap_err();
    assert!(e.message.contains("<HOST>"));
    assert!(Filter::compile(FilterSpec {
        prefregex: Some("(?P<content>.*)".into()),
        ..spec(&[], &[])
    })
    .is_err());
}

#[test]
fn prefregex_without_content_rejected() {
    let mut s = spec(&["<HOST>"], &[]);
    s.prefregex = Some("^x".into());
    assert_eq!(Filter::compile(s).unwrap_err().which, PatternRef::Prefregex);
}

#[test]
fn invalid_utf8_lines_are_matched_as_bytes() {
    let f = Filter::compile(spec(&["from <HOST>$"], &[])).unwrap();
    assert!(matches!(
        f.match_text(b"\xff\xfe user from 1.2.3.4"),
        Outcome::Failure { .. }
    ));
}

#[test]
fn examine_in_two_halves_agrees_and_spans_point_into_the_line() {
    let mut s = spec(&[r"^<HOST> - \[\] login <F-USER>\S+</F-USER> failed$"], &[]);
    let f = Filter::compile(s.clone()).unwrap();
    let line: &[u8] = b"203.0.113.9 - [10/Oct/2000:13:55:36 -0700] login bob failed\n";
    let now = 1_000_000_000;
    let (mut s1, mut s2) = (f.new_state(), f.new_state());
    let (d1, o1) = f.examine(line, now, &mut s1);
    let o1 = format!("{o1:?}");
    let d2 = f.date(line, now, &mut s2);
    let (o2, spans) = f.examine_dated(line, d2, &mut s2);
    assert_eq!((d1, o1), (d2, format!("{o2:?}")));
    assert_eq!(&line[spans.host.unwrap()], b"203.0.113.9");
    assert_eq!(&line[spans.user.unwrap()], b"bob");
    // Date at the start, and a prefregex: offsets still point into the line.
    s.failregex = vec![r"^login <F-USER>\S+</F-USER> failed from <HOST>$".into()];
    s.prefregex = Some(r"^\S+ (?P<content>.+)$".into());
    let f = Filter::compile(s).unwrap();
    let line: &[u8] = b"2024-03-10 10:00:00 app: login eve failed from 2001:db8::5";
    let mut s2 = f.new_state();
    let d = f.date(line, now, &mut s2);
    let (o, spans) = f.examine_dated(line, d, &mut s2);
    assert!(matches!(o, Outcome::Failure { .. }), "{o:?}");
    assert_eq!(&line[spans.host.unwrap()], b"2001:db8::5");
    assert_eq!(&line[spans.user.unwrap()], b"eve");
}

#[test]
fn quick_host_parse_agrees_with_parse_host() {
    for raw in [
        "1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.4.5",
        "1..2.3",
        "1.2.3.4.",
        ".1.2.3",
        "1234.1.1.1",
        "",
        "[1.2.3.4]",
        "::ffff:1.2.3.4",
        "2001:db8::1",
        "[2001:db8::1]",
        "host.example",
        "1.2.3.a",
        "00.1.2.3",
        "1.2.3.00",
        "1.2.3.0",
        "100.200.250.199",
        "1.2.3.255",
        "1.2.3.256",
        "1.2.3.4 ",
        " 1.2.3.4",
        "1.2.3.-4",
        "1.2.3.1000",
        "111.111.111.1111",
    ] {
        assert_eq!(
            parse_host_quick(raw.as_bytes()),
            parse_host(raw.as_bytes()),
            "{raw:?}"
        );
    }
}

#[test]
fn host_read_off_the_match_agrees_with_captures() {
    let patterns = [
        "Login failure <HOST>",
        r"^<HOST> port [0-9][0-9]$",
        "(?:GET|PUT) <HOST>",
        r"from <ADDR>:[0-9]{4}\b",
        r"from <ADDR>:[0-9]{4}",
        // The host's end found by its own pattern, then the rest checked.
        r"^<HOST> port \d+$",
        r"from <HOST>(?::\d+)?\b",
        r"from <ADDR>:?[0-9a-f]* x",
        r#"^<HOST> - \S+ "GET"#,
        // A look-behind right after the leading literal reads the
        // literal's last byte, before the span the rest is searched in.
        r"failure\b<HOST>",
        // A remainder that is a dotted quad is taken without an automaton.
        "Login failure <HOST>$",
        "failure <ADDR>$",
        // The host after the last space, the rest matched up to it.
        "^[A-Z]+ Login failure <HOST>$",
        r"user .* from <HOST>$",
    ];
    let lines = [
        "ERROR Login failure 198.51.100.7",
        "Login failure 10.0.0.3 Login failure 10.0.0.4",
        "user x from y from 10.1.2.3",
        "user x from 10.1.2.3 from [2001:db8::1]",
        "ERROR Login failure 10.1.2.3 10.1.2.4",
        "error Login failure 10.1.2.3",
        "ERROR  Login failure 10.1.2.3",
        "Login failure\t10.1.2.3",
        "Login failure 01.2.3.4",
        "Login failure 0.0.0.0",
        "Login failure 1.2.3.4 ",
        "Login failure 1.2.3",
        "Login failure Login failure 2001:db8::1 x",
        "Login failure [2001:db8::1]",
        "Login failure 300.1.1.1",
        "Login failure ::ffff:1.2.3.4.",
        "Login failure x 1.2.3.4",
        "10.0.0.1 port 22",
        "[::1] port 22",
        "10.0.0.1 port 222",
        "PUT GET 1.2.3.4",
        "from 1.2.3.4:2222 from 5.6.7.8:1234",
        "from ::1:2222",
        "from x from 1.2.3.4:2222 from",
        "from ::1:22 x",
        "from 1.2.3.4: x",
        "from 1:2:3:4:5 x",
        "from 1.2.3.4 port 99",
        "10.0.0.1 - bob \"GET /\"",
        "[2001:db8::1] - - \"GET /\"",
        "1.2.3.4.5 - - \"GET",
        "failure1.2.3.4",
        "failure[2001:db8::1]",
        "",
    ];
    for p in patterns {
        let f = Filter::compile(spec(&[p], &[])).unwrap();
        assert!(f.host_at[0].is_some(), "{p}");
        let re = Regex::new(&tags::expand(p).unwrap().regex).unwrap();
        let mut fast = 0;
        for line in lines {
            let (o, spans) = f.match_text_spans(line.as_bytes());
            let want = re
                .captures(line.as_bytes())
                .map(|c| c.name(tags::HOST_GROUP).map(|m| m.range()));
            match &want {
                None => assert_eq!(o, Outcome::Missed, "{p} {line:?}"),
                Some(host) => assert_eq!(&spans.host, host, "{p} {line:?}"),
            }
            if let Some(found) = f.fixed_host(0, line.as_bytes()) {
                let addr = found.as_ref().and_then(|f| f.addr);
                let span = found.map(|f| f.span);
                assert_eq!(span, want.clone().flatten(), "{p} {line:?}");
                if let (Some(addr), Some(span)) = (addr, span) {
                    assert_eq!(Some(addr), parse_host(&line.as_bytes()[span]), "{line:?}");
                }
                fast += 1;
            }
        }
        assert!(fast > 0, "{p}: the captures were never spared");
    }
}

#[test]
fn host_falls_back_to_captures_when_the_rest_needs_a_shorter_host() {
    // The host pattern alone takes `1::2:3:5`; the whole regex gives
    // up the `:5` so that ` x` can follow.
    let f = Filter::compile(spec(&["^<HOST>:5 x+$"], &[])).unwrap();
    let line = b"1::2:3:5 x";
    assert_eq!(f.fixed_host(0, line), None);
    let (o, spans) = f.match_text_spans(line);
    assert!(matches!(o, Outcome::Failure { .. }), "{o:?}");
    assert_eq!(spans.host, Some(0..6));
}

#[test]
fn reuse_path_agrees_with_plain_path() {
    let now = 1_000_000_000;
    let filters = [
        spec(&[r"Login failure <HOST>"], &[]),
        spec(
            &[
                r"^<HOST> - \[\] login <F-USER>\S+</F-USER> failed$",
                r"denied <F-USER>\w+</F-USER> from <HOST>",
            ],
            &[r"from 10\."],
        ),
    ];
    let lines: [&[u8]; 9] = [
        b"2024-03-10 00:00:00,018 ERROR Login failure 198.51.100.7\n",
        b"2024-03-10 00:00:00,018 ERROR Login failure [2001:db8::1]\r\n",
        b"2024-03-10 00:00:00,018 ERROR Login failure 300.1.1.1\n",
        b"Login failure 01.2.3.4",
        b"203.0.113.9 - [10/Oct/2000:13:55:36 -0700] login bob failed\n",
        b"Mar 10 00:00:01 host app: denied eve from 192.0.2.1",
        b"Mar 10 00:00:01 host app: denied eve from 10.0.0.1",
        b"nothing here",
        b"",
    ];
    for s in filters {
        let f = Filter::compile(s).unwrap();
        let (mut buf, mut s2) = (Vec::new(), f.new_state());
        for line in lines {
            let d = f.date(line, now, &mut s2);
            let (o1, sp1) = f.examine_with_date(line, d, &mut buf);
            let a = format!("{o1:?} {sp1:?}");
            let (o2, sp2) = f.examine_dated(line, d, &mut s2);
            assert_eq!(a, format!("{o2:?} {sp2:?}"), "{line:?}");
        }
    }
}
