//! The rewrite is exact: on every line, the rewritten pattern in the `regex`
//! crate matches where Python's (fancy-regex, the fallback) does, with the
//! same span for every group (renamed duplicates merged back).

use super::*;
use crate::filter::python;
use crate::filter::{Dialect, Filter, FilterSpec, Outcome};

/// A failregex of the shape of fail2ban's sshd "Failed ..." one (written
/// for this test): a conditional on an optional group, a conditional inside
/// an alternative that decides another group, tempered dots before a
/// literal and before the end.
const FAILED: &str = r"^Failed (?:(?P<nofail>publickey)|\S+) for (?P<ci>invalid user )?(?P<user>(?P<cu>\S+)|(?(ci)(?:(?! from ).)*?|[^:]+)) from (?P<host>\d+(?:\.\d+){3})(?: port \d+)?(?: ssh\d*)?(?(cu): |(?:(?:(?! from ).)*)$)";

/// A deterministic stream of pseudo-random numbers (no crate needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Lines made of `heads` followed by random `tokens`, each separated by a
/// space, or nothing now and then.
fn corpus(heads: &[&str], tokens: &[&str], n: usize) -> Vec<String> {
    let mut r = Lcg(7);
    (0..n)
        .map(|_| {
            let mut s = heads[r.next(heads.len())].to_string();
            for _ in 0..r.next(9) {
                if r.next(5) > 0 {
                    s.push(' ');
                }
                s.push_str(tokens[r.next(tokens.len())]);
            }
            s
        })
        .collect()
}

/// Asserts the rewrite of `p` runs in the regex crate and agrees with
/// Python's meaning on every line; returns how many lines matched.
fn assert_exact(p: &str, lines: &[String]) -> usize {
    let r = rewrite(p).unwrap_or_else(|| panic!("not rewritten: {p}"));
    let t = python::translate(&r.pattern);
    assert!(
        !t.needs_fallback(),
        "{}: still needs {:?}",
        r.pattern,
        t.needs
    );
    let fast = regex::bytes::Regex::new(&t.relaxed).unwrap();
    let exact = python::translate(p).exact;
    let slow = fancy_regex::Regex::new(&exact).unwrap();
    let names: Vec<String> = slow.capture_names().flatten().map(String::from).collect();
    let mut matched = 0;
    for line in lines {
        let want = slow.captures(line.as_bytes()).unwrap();
        let got = fast.captures(line.as_bytes());
        assert_eq!(want.is_some(), got.is_some(), "{p}\non {line:?}");
        let (Some(want), Some(got)) = (want, got) else {
            continue;
        };
        matched += 1;
        assert_eq!(
            want.get(0).map(|m| m.range()),
            got.get(0).map(|m| m.range())
        );
        let caps = crate::filter::backtrack::Caps::Fast(got, Some(&r.dups));
        for name in &names {
            let want = want.name(name).map(|m| m.range());
            assert_eq!(want, caps.name(name), "group {name} of {p}\non {line:?}");
        }
    }
    assert_split_exact(&t.relaxed, &r.dups, lines);
    matched
}

/// Where the rewritten pattern can be split (`split::Split`), its first
/// possible branch and the captures from there are the whole pattern's
/// on every (ASCII) line.
fn assert_split_exact(pattern: &str, dups: &Dups, lines: &[String]) {
    let Some(split) = crate::filter::split::Split::new(pattern) else {
        return;
    };
    let whole = regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap();
    // The groups matching reads (the split keeps only those).
    let names: Vec<&str> = whole
        .capture_names()
        .flatten()
        .filter(|n| crate::filter::split::read(n))
        .collect();
    for line in lines.iter().map(|l| l.as_bytes()) {
        let want = whole.captures(line);
        let got = split.first(line).map(|k| split.captures(k, line).unwrap());
        let (Some(want), Some(got)) = (want, got) else {
            assert!(
                split.first(line).is_none() && !whole.is_match(line),
                "{pattern}\non {line:?}"
            );
            continue;
        };
        let got = got.expect("the first possible branch matches");
        let want = crate::filter::backtrack::Caps::Fast(want, Some(dups));
        let got = crate::filter::backtrack::Caps::Meta(got, Some(dups));
        for name in names.iter().chain(&["user", "host"]) {
            assert_eq!(
                want.name(name),
                got.name(name),
                "split: group {name} of {pattern}\non {line:?}"
            );
        }
        assert_eq!(want.name_at(0), got.name_at(0));
    }
}

#[test]
fn an_sshd_shaped_failregex_matches_as_python_does() {
    let heads = [
        "Failed password for ",
        "Failed publickey for ",
        "Failed password for invalid user ",
        "Failed publickey for invalid user ",
        "Failed none for invalid user",
        "Failed ",
    ];
    let tokens = [
        "from",
        "from",
        "1.2.3.4",
        "port",
        "22",
        "ssh2",
        ":",
        "root:",
        "a:b",
        "x",
        "fromx",
        "xfrom",
        "invalid",
        "user",
        "from ",
        "ssh2:",
        "RSA",
        "SHA256:abc",
        "from 1.2.3.4",
        "from 1.2.3.4 port 22 ssh2",
        "from 1.2.3.4 port 22 ssh2:",
        "from 1.2.3.4 ssh2: RSA",
    ];
    let mut lines = corpus(&heads, &tokens, 20_000);
    lines.extend(
        [
            "Failed password for root from 1.2.3.4 port 22 ssh2",
            "Failed password for invalid user a from b from 1.2.3.4 port 22 ssh2",
            "Failed password for invalid user  from 1.2.3.4",
            "Failed password for invalid user from from 1.2.3.4 port 22",
            "Failed publickey for root from 1.2.3.4 port 22 ssh2: RSA SHA256:x",
            "Failed publickey for a b from 1.2.3.4 port 22 ssh2: RSA from 5.6.7.8",
            "Failed password for a:b from 1.2.3.4 port 22 ssh2 from",
            "Failed password for x y from 1.2.3.4 from 5.6.7.8",
            "Failed password for invalid user x from 1.2.3.4 port 22 ssh2 fromx",
            "Failed password for invalid user x from 1.2.3.4 x from ",
        ]
        .map(String::from),
    );
    let rewritten = python::translate(&rewrite(FAILED).unwrap().pattern).relaxed;
    assert!(crate::filter::split::Split::new(&rewritten).is_some());
    let matched = assert_exact(FAILED, &lines);
    // The corpus reaches the pattern's branches, not just its misses.
    assert!(matched > 1000, "only {matched} lines matched");
}

#[test]
fn every_combination_of_conditionals_keeps_its_order() {
    let lines = corpus(&[""], &["x", "y", "z", "w", "1", "2", "xx"], 5_000);
    // Greedy and lazy optional groups, a conditional without a no-branch,
    // a conditional inside the group of an alternative.
    for p in [
        r"^(?P<a>x)?x?y(?(a)z|w)",
        r"^(?P<a>x)??(?P<b>x*)(?(a)1|2)",
        r"(?P<a>x )?(?P<u>(?P<b>y)|(?(a)z|w+))(?(b)1)(?P<t>.*)$",
        r"^(?P<a>y)?(?:(?P<b>x)|x x)(?(b) z(?(a) 1| 2)|(?P<c>.))",
    ] {
        let lines: Vec<String> = lines.iter().map(|l| l.trim().to_string()).collect();
        assert!(assert_exact(p, &lines) > 0, "{p} never matched");
    }
}

#[test]
fn a_tempered_dot_before_the_end_or_its_literal_takes_the_same_span() {
    let lines = corpus(
        &["", "a ", "a from "],
        &[
            "from", "fro", "f", "x", "to", "from ", " ", "fromfrom", "xto",
        ],
        10_000,
    );
    for p in [
        r"^a(?P<rest>(?:(?! from ).)*)$",
        r"^(?P<u>(?:(?! from ).)*?) from (?P<h>\S+)",
        r"^(?P<u>(?:(?! from ).)*) from (?P<h>.*)",
        r"^(?P<u>(?:(?! to ).)*?) to (?P<h>\S*)$",
        r"(?P<u>x|(?:(?! from ).)*) from x",
    ] {
        assert!(assert_exact(p, &lines) > 0, "{p} never matched");
    }
}

#[test]
fn the_rewritten_text_has_no_conditional_and_no_look_around() {
    let r = rewrite(FAILED).unwrap();
    for gone in ["(?(", "(?!", "(?="] {
        assert!(!r.pattern.contains(gone), "{}", r.pattern);
    }
    // Four branches: the user group and the host group in each.
    let names = |b: &str| r.dups.iter().find(|(n, _)| n == b).map(|(_, v)| v.len());
    assert_eq!(names("user"), Some(4));
    assert_eq!(names("host"), Some(4));
    // The shared start stays outside the alternation.
    assert!(r
        .pattern
        .starts_with(r"^Failed (?:(?P<nofail>publickey)|\S+) for (?:"));
}

#[test]
fn what_it_cannot_rewrite_exactly_it_leaves_alone() {
    for p in [
        // Nothing to rewrite.
        r"^plain (?P<a>x)?$",
        // A tempered dot followed by something else than its literal or `$`.
        r"^(?:(?! from ).)*x",
        r"^(?:(?! from ).)* fro",
        // A literal whose ends differ, or whose end character recurs.
        r"^(?:(?!ab).)*$",
        r"^(?:(?! a b ).)*$",
        // Other quantifiers.
        r"^(?:(?! from ).)+$",
        // A group decided later, or by a repetition.
        r"^(?(a)x|y)(?P<a>z)",
        r"^(?P<a>x)*(?(a)y|z)",
        // Look-around of another kind, a back-reference.
        r"^(?=foo)\w+",
        r"^(?P<a>x)?(?(a)y)\1",
        // A conditional referring to another top-level alternative.
        r"^(?P<a>x)|(?(a)y|z)",
    ] {
        assert_eq!(rewrite(p), None, "{p}");
    }
}

#[test]
fn a_filter_with_such_a_failregex_needs_no_fallback_and_reads_every_branch() {
    let f = Filter::compile(FilterSpec {
        name: "t".into(),
        failregex: vec![FAILED.replace(r"(?P<host>\d+(?:\.\d+){3})", "<HOST>")],
        dialect: Dialect::Fail2ban,
        ..Default::default()
    })
    .unwrap();
    assert!(f.fallback_patterns().is_empty());
    let failure = |line: &str| match f.match_text(line.as_bytes()) {
        Outcome::Failure { host, user, .. } => Some((
            host.to_string(),
            String::from_utf8_lossy(user.unwrap_or_default()).into_owned(),
        )),
        _ => None,
    };
    let pair = |h: &str, u: &str| Some((h.to_string(), u.to_string()));
    assert_eq!(
        failure("Failed password for invalid user bob from 192.0.2.1 port 22 ssh2"),
        pair("192.0.2.1", "bob")
    );
    assert_eq!(
        failure("Failed password for invalid user b b from 192.0.2.2 port 22 ssh2"),
        pair("192.0.2.2", "b b")
    );
    assert_eq!(
        failure("Failed password for root from 192.0.2.3 port 22 ssh2"),
        pair("192.0.2.3", "root")
    );
    assert_eq!(
        failure("Failed password for a b from 192.0.2.4 port 22 ssh2"),
        pair("192.0.2.4", "a b")
    );
    // `publickey` is `<F-NOFAIL>`: no failure.
    assert_eq!(
        failure("Failed publickey for root from 192.0.2.5 port 22 ssh2: RSA"),
        None
    );
}
