//! Fuzzing on stable Rust: property tests that feed what an attacker or a
//! careless operator controls (config files, regex text, log lines as
//! arbitrary bytes, control socket lines, journalctl output) to the parsers
//! and matchers, and require an answer (a value or an error), never a panic.
//!
//! A short run is part of `cargo test`. The long run is
//! `BANWARDEN_FUZZ_CASES=100000 cargo test --release --test fuzz` (cases per
//! target). A failing case is shrunk and saved in
//! `tests/fuzz.proptest-regressions`, which is kept in the repository and
//! replayed first on every run. A seed corpus of hand-picked hostile inputs
//! per target (forged and overlong lines, invalid UTF-8, truncated and deeply
//! nested JSON, YAML alias bombs, catastrophic regexes) sits in
//! `tests/fuzz_corpus/<target>/`; every file there is replayed on every run.
//!
//! Also here: the differential test of the capture-free host paths
//! (`filter::fixed`) against the regex captures, on random lines that forge
//! addresses into user names, URLs and user agents.

use std::path::Path;
use std::sync::OnceLock;

use banwarden::filter::date::DateDetector;
use banwarden::filter::{Dialect, Filter, FilterSpec, Outcome};
use banwarden::source::journal::{JournalEntry, Matcher};
use proptest::prelude::*;

const NOW: i64 = 1_764_633_600; // 2025-12-02

/// Cases per target: `BANWARDEN_FUZZ_CASES`, else `short` (the quick run).
fn config(short: u32) -> ProptestConfig {
    let cases = std::env::var("BANWARDEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(short);
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/fuzz.proptest-regressions",
            ),
        )),
        ..ProptestConfig::default()
    }
}

/// Pieces of log lines and config text that parsers care about, so that
/// random strings reach past the first byte check.
const PIECES: &[&str] = &[
    "from ",
    " port ",
    "22",
    " ssh2",
    "Login failure ",
    "Failed password for ",
    "invalid user ",
    "1.2.3.4",
    "10.10.1.1",
    "127.0.0.1",
    "300.1.1.1",
    "::1",
    "[2001:db8::1]",
    "::ffff:192.0.2.1",
    "2001:db8::",
    " - - ",
    "\"GET /",
    "-",
    "?ip=198.51.100.9",
    " HTTP/1.1\" 401 0 \"-\" \"",
    "Mozilla/5.0 (from 203.0.113.5 port 1)",
    "2024-05-30 10:00:00",
    "2024-05-30T10:00:00.123+02:00",
    ",000",
    "Mar 10 00:00:01 ",
    "[10/Oct/2000:13:55:36 -0700]",
    "2024/05/30 10:00:00 ",
    "sshd[123]: ",
    ":",
    ".",
    " ",
    "\n",
    "\u{fffd}",
    "\\",
];

/// A line of pieces and random text, as bytes (invalid UTF-8 included).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::sample::select(PIECES).prop_map(|s| s.as_bytes().to_vec()),
        1 => "[ -~]{0,6}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

/// Addresses, real and malformed, as `<HOST>` might meet them.
const ADDRS: &[&str] = &[
    "192.0.2.1",
    "10.10.1.1",
    "127.0.0.1",
    "300.1.1.1",
    "1.2.3.4.5",
    "01.2.3.4",
    "::1",
    "[::1]",
    "2001:db8::1",
    "[2001:db8::1]",
    "::ffff:192.0.2.1",
    "1::2:3:5",
    "1:2:3:4:5",
    "",
];

/// Lines shaped like the failures the fixed shapes match, with attacker
/// text (random pieces, which may hold ` from ADDR port 22`) where a user
/// name, a URL or a user agent goes.
fn forged_line() -> impl Strategy<Value = Vec<u8>> {
    let addr = || proptest::sample::select(ADDRS);
    let ssh = (
        proptest::sample::select(
            &[
                "Failed password for ",
                "Failed password for invalid user ",
                "Login failure ",
                "GET ",
                "PUT ",
                "",
            ][..],
        ),
        line(),
        addr(),
        proptest::sample::select(
            &[" port 22 ssh2", " port 2222", ":2222", " port 22", "", " x"][..],
        ),
        line(),
    )
        .prop_map(|(head, user, a, tail, junk)| {
            let mut v = head.as_bytes().to_vec();
            v.extend(user);
            v.extend_from_slice(b" from ");
            v.extend_from_slice(a.as_bytes());
            v.extend_from_slice(tail.as_bytes());
            if junk.len() % 3 == 0 {
                v.extend(junk);
            }
            v
        });
    let web = (addr(), line(), line(), line()).prop_map(|(a, user, url, agent)| {
        let mut v = a.as_bytes().to_vec();
        v.extend_from_slice(b" - ");
        v.extend(user);
        v.extend_from_slice(b" [10/Oct/2000:13:55:36 -0700] \"GET /");
        v.extend(url);
        v.extend_from_slice(b" HTTP/1.1\" 401 0 \"-\" \"");
        v.extend(agent);
        v.push(b'"');
        v
    });
    let login = (
        proptest::sample::select(&["Login failure ", "ERROR Login failure ", ""][..]),
        addr(),
        proptest::sample::select(&["", " port 22", " port 2222"][..]),
        line(),
    )
        .prop_map(|(head, a, tail, junk)| {
            let mut v = head.as_bytes().to_vec();
            v.extend_from_slice(a.as_bytes());
            v.extend_from_slice(tail.as_bytes());
            if junk.len() % 2 == 0 {
                v.extend(junk);
            }
            v
        });
    prop_oneof![ssh, web, login]
}

fn spec(failregex: Vec<String>, datepattern: Option<String>) -> FilterSpec {
    FilterSpec {
        name: "fuzz".into(),
        description: String::new(),
        prefregex: None,
        failregex,
        ignoreregex: vec![],
        datepattern,
        ..FilterSpec::default()
    }
}

/// The shipped filters, compiled once for all cases.
fn shipped_filters() -> &'static [Filter] {
    static FILTERS: OnceLock<Vec<Filter>> = OnceLock::new();
    FILTERS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("filters");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("filters/") {
            let path = entry.expect("dir entry").path();
            out.push(banwarden::config::load_filter_file(&path).expect("shipped filter"));
        }
        out
    })
}

/// A date is found inside the line, or none.
fn answer_date(line: &[u8], now: i64) {
    let d = DateDetector::new(None).expect("default detector");
    if let Some(m) = d.detect(line, now) {
        assert!(m.start <= m.end && m.end <= line.len(), "{m:?}");
    }
}

/// Every shipped filter classifies the line; a failure names a host.
fn answer_line(line: &[u8]) {
    for f in shipped_filters() {
        let mut state = f.new_state();
        let (_, outcome) = f.examine(line, NOW, &mut state);
        if let Outcome::Failure { host, .. } = outcome {
            assert!(!host.to_string().is_empty());
        }
    }
}

/// A regex compiles in either dialect or is refused; what compiles matches
/// `line` (or not).
fn answer_regex(regex: &str, datepattern: Option<String>, fail2ban: bool, line: &[u8]) {
    let mut spec = spec(vec![regex.to_string()], datepattern);
    if fail2ban {
        spec.dialect = Dialect::Fail2ban;
    }
    if let Ok(f) = Filter::compile(spec) {
        let mut state = f.new_state();
        let _ = f.examine(line, NOW, &mut state);
        let _ = f.match_text_spans(line);
    }
}

/// A config directory loads or is refused with a message.
fn answer_config(global: &str, jail: &[u8], filter: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path();
    std::fs::create_dir_all(p.join("jails")).expect("mkdir");
    std::fs::create_dir_all(p.join("filters")).expect("mkdir");
    std::fs::write(p.join("banwarden.yaml"), global).expect("write");
    std::fs::write(p.join("jails/app.yaml"), jail).expect("write");
    std::fs::write(
        p.join("filters/app.yaml"),
        format!("failregex:\n  - '{filter}'\n"),
    )
    .expect("write");
    if let Err(e) = banwarden::config::load(p) {
        assert!(!e.to_string().is_empty());
    }
}

/// Every file of `tests/fuzz_corpus/` goes through its target, each of them
/// in both of its forms where a target has two (regex: both dialects).
#[test]
fn the_seed_corpus_is_answered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for target in ["line", "control", "journal", "regex", "config"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(target))
            .expect("corpus directory")
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            match target {
                "line" => {
                    answer_date(&data, NOW);
                    answer_line(&data);
                }
                "control" => {
                    let _ = banwarden::control::protocol::parse_request(&data);
                }
                "journal" => {
                    if let Ok(entry) = JournalEntry::parse_json(&data) {
                        let _ = (entry.line(), entry.time());
                    }
                }
                "regex" => {
                    let regex = String::from_utf8_lossy(&data);
                    let line =
                        b"Dec  2 10:00:00 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa! 192.0.2.1";
                    answer_regex(&regex, None, false, line);
                    answer_regex(&regex, None, true, line);
                }
                _ => answer_config("", &data, "x <HOST>"),
            }
            *seen.entry(target.to_string()).or_default() += 1;
        }
    }
    assert!(
        seen.values().all(|&n| n >= 4),
        "a target without seeds: {seen:?}"
    );
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn date_detection_answers_any_bytes(line in line(), now in 0i64..4_000_000_000) {
        answer_date(&line, now);
    }

    #[test]
    fn shipped_filters_examine_any_bytes(line in line()) {
        answer_line(&line);
    }

    #[test]
    fn control_requests_are_parsed_or_refused(
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        cmd in "(status|bans|ban|unban|reload|ignore|x)",
        v in prop_oneof![Just("1".to_string()), "-?[0-9]{1,25}", Just("null".into()), Just("\"1\"".into())],
        field in "[ -~]{0,30}",
    ) {
        let _ = banwarden::control::protocol::parse_request(&raw);
        let text = format!(
            "{{\"v\":{v},\"cmd\":\"{cmd}\",\"jail\":{field:?},\"addr\":{field:?},\"seconds\":{v},\"all\":true}}"
        );
        let _ = banwarden::control::protocol::parse_request(text.as_bytes());
    }

    #[test]
    fn journal_lines_and_matches_are_parsed_or_refused(
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        msg in line(),
        ts in "-?[0-9]{0,22}",
        matches in proptest::collection::vec("[A-Z_+]{0,8}=?[ -~]{0,8}|\\+", 0..4),
    ) {
        let _ = JournalEntry::parse_json(&raw);
        let bytes: Vec<String> = msg.iter().map(u8::to_string).collect();
        let json = format!(
            "{{\"MESSAGE\":[{}],\"__REALTIME_TIMESTAMP\":\"{ts}\",\"_PID\":[\"1\",null],\"SYSLOG_IDENTIFIER\":null}}",
            bytes.join(",")
        );
        let entry = JournalEntry::parse_json(json.as_bytes());
        prop_assert!(entry.is_ok(), "{json}: {entry:?}");
        let entry = entry.unwrap_or_default();
        let _ = (entry.line(), entry.time());
        if let Ok(m) = Matcher::parse(&matches) {
            let _ = m.accepts(&entry);
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn filters_compile_from_any_regex_text_and_match_any_bytes(
        regex in prop_oneof![
            "[ -~]{0,40}",
            proptest::collection::vec(
                prop_oneof![
                    Just("<HOST>"), Just("<ADDR>"), Just("<F-USER>"), Just("</F-USER>"),
                    Just("^"), Just("$"), Just("(?:"), Just(")"), Just("\\S+"), Just(".*"),
                    Just("[0-9]{2,}"), Just("|"), Just("(?P<x>"), Just(" from "), Just("\\"),
                ],
                0..10,
            ).prop_map(|p| p.concat()),
        ],
        datepattern in proptest::option::of("[%A-Za-z :./^-]{0,12}"),
        fail2ban in any::<bool>(),
        line in line(),
    ) {
        answer_regex(&regex, datepattern, fail2ban, &line);
    }

    #[test]
    fn config_directories_load_or_report_errors(
        global in "[ -~\n]{0,80}",
        jail in prop_oneof![
            "[ -~\n]{0,80}",
            ("[a-z]{1,5}", "[0-9a-z:. -]{0,12}", "[0-9a-z]{0,5}").prop_map(|(k, v, w)| format!(
                "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  {k}: {v}\n  maxretry: {w}\n"
            )),
        ],
        filter in "[ -~\n]{0,60}",
    ) {
        answer_config(&global, jail.as_bytes(), &filter);
    }
}

/// Failregexes whose host `filter::fixed` finds without captures (fixed
/// from both ends, fixed from the start only, led by a literal or not, a
/// dotted quad after a leading literal or after the last separator at the
/// end of the line), and the shapes attackers forge against: a host after
/// ` from ` that a user name, URL or user agent can contain too.
const FIXED: &[&str] = &[
    "^Login failure <HOST>$",
    "Login failure <HOST>$",
    "^[A-Z]+ Login failure <HOST>$",
    r"^Failed password for .* from <ADDR>$",
    "Login failure <HOST>",
    r"from <HOST> port \d+",
    r"from <HOST> port \d+ ssh2$",
    r"^<HOST> port \d\d$",
    r"\bfrom <ADDR>:[0-9]{4}\b",
    r#"^<HOST> - \S+ \[[^\]]*\] "GET"#,
    r#"^<HOST> - - .*"GET /"#,
    r"(?:GET|PUT) <HOST>",
    r"^Failed password for (?:invalid user )?\S* from <HOST> port \d+ ssh2$",
];

/// Each of [`FIXED`] as a filter and as the plain regex with captures, once.
fn fixed_pairs() -> &'static [(&'static str, Filter, regex::bytes::Regex)] {
    static PAIRS: OnceLock<Vec<(&str, Filter, regex::bytes::Regex)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        FIXED
            .iter()
            .map(|p| {
                let f = Filter::compile(spec(vec![p.to_string()], None)).expect("filter");
                let expanded = banwarden::filter::tags::expand(p).expect("tags").regex;
                (*p, f, regex::bytes::Regex::new(&expanded).expect("regex"))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config(1000))]

    /// On any line the fast host extraction gives what the capture gives.
    #[test]
    fn capture_free_hosts_equal_the_regex_captures(
        line in prop_oneof![1 => line(), 4 => forged_line()],
    ) {
        for (p, f, re) in fixed_pairs() {
            let want = re
                .captures(&line)
                .map(|c| c.name(banwarden::filter::tags::HOST_GROUP).map(|m| m.range()));
            let (outcome, spans) = f.match_text_spans(&line);
            match want {
                None => prop_assert_eq!(outcome, Outcome::Missed, "{} on {:?}", p, line),
                Some(host) => prop_assert_eq!(spans.host, host, "{} on {:?}", p, line),
            }
        }
    }
}

#[test]
fn a_user_name_holding_an_address_does_not_get_it_banned() {
    // A peer daemon's fast path takes the first ` from ` and bans 10.10.1.1.
    let line = b"Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 22 ssh2";
    for p in [
        r"from <HOST> port \d+ ssh2$",
        r"^Failed password for (?:invalid user )?.* from <HOST> port \d+ ssh2$",
        r"^Failed password for .*from <HOST> port \d+ ssh2$",
    ] {
        let f = Filter::compile(spec(vec![p.to_string()], None)).expect("filter");
        match f.match_text_spans(line).0 {
            Outcome::Failure { host, .. } => assert_eq!(host.to_string(), "127.0.0.1", "{p}"),
            other => panic!("{p}: {other:?}"),
        }
    }
}
