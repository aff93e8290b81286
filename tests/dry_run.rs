//! `banwarden dry-run`, driven through the real binary.
//!
//! - every shipped filter on its sample log (`tests/samples/NAME.log`, comment
//!   lines removed): exact counts and the exact set of captured hosts, forged
//!   addresses never among them;
//! - snapshots (insta) of the human and JSON reports on the sample logs;
//! - a jail simulation with a hand-checked timeline;
//! - the fast paths (literal prefilter, date cache, threads, chunking) give
//!   the same document as the plain path;
//! - inputs (gzip, stdin, `--line`), `--show`, exit codes and error messages.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::cli::bin;
use serde_json::Value;

/// 2024-06-01T00:00:00Z: the samples are dated late May 2024.
const NOW: &str = "2024-06-01T00:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dry-run` with a fixed clock and no colour.
fn dry_run() -> Command {
    let mut c = bin();
    c.args(["dry-run", "--now", NOW, "--color", "never"]);
    c
}

fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(out)))
}

/// Names of the samples that have expectations.
fn samples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/samples"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".expect.json"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The sample log without its comment and blank lines, in a temp file.
fn sample_log(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join(format!("tests/samples/{name}.log")))
        .expect("sample log");
    let mut out = String::new();
    for l in text.lines() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    let path = dir.join(format!("{name}.log"));
    std::fs::write(&path, out).expect("write log");
    path
}

fn addr(s: &str) -> IpAddr {
    s.parse::<IpAddr>()
        .unwrap_or_else(|_| panic!("`{s}` is not an address"))
        .to_canonical()
}

fn count(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

#[test]
fn every_shipped_filter_on_its_sample() {
    let names = samples();
    assert!(!names.is_empty(), "no tests/samples/*.expect.json");
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in names {
        let expect: Value = json(
            &std::fs::read(root().join(format!("tests/samples/{name}.expect.json")))
                .expect("expect"),
        );
        let log = sample_log(tmp.path(), &name);
        let out = dry_run()
            .arg(&log)
            .args([
                "--filter",
                &format!("filters/{name}.yaml"),
                "--json",
                "--top",
                "100000",
                "--all-dates",
            ])
            .current_dir(root())
            .output()
            .expect("run");
        let doc = json(&out.stdout);
        let ctx = format!("{name}: {}", String::from_utf8_lossy(&out.stderr));
        let matched = expect["matched"].as_u64().expect("matched");
        assert_eq!(
            out.status.code(),
            Some(if matched > 0 { 0 } else { 1 }),
            "{ctx}"
        );
        assert_eq!(
            count(&doc, &["lines", "matched"]),
            matched,
            "{ctx}: matched"
        );
        assert_eq!(
            count(&doc, &["lines", "missed"]),
            expect["missed"].as_u64().expect("missed"),
            "{ctx}: missed"
        );
        assert_eq!(
            count(&doc, &["lines", "ignored"]),
            expect["ignored"].as_u64().expect("ignored"),
            "{ctx}: ignored"
        );
        assert_eq!(
            count(&doc, &["lines", "bad_host"]),
            expect["bad_host"].as_u64().unwrap_or(0),
            "{ctx}: bad_host"
        );
        if let Some(u) = expect["undated"].as_u64() {
            assert_eq!(count(&doc, &["dates", "undated"]), u, "{ctx}: undated");
        }
        // The exact set of captured hosts, with their failure counts.
        let want: BTreeMap<IpAddr, u64> = expect["hosts"]
            .as_object()
            .expect("hosts")
            .iter()
            .map(|(k, n)| (addr(k), n.as_u64().expect("count")))
            .collect();
        let got: BTreeMap<IpAddr, u64> = doc["addresses"]["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|r| {
                (
                    addr(r["address"].as_str().expect("address")),
                    count(r, &["failures"]),
                )
            })
            .collect();
        assert_eq!(got, want, "{ctx}: hosts");
        assert_eq!(
            count(&doc, &["addresses", "distinct"]),
            want.len() as u64,
            "{ctx}"
        );
        for n in expect["never"].as_array().expect("never") {
            let n = addr(n.as_str().expect("never address"));
            assert!(
                !got.contains_key(&n),
                "{ctx}: forged address {n} was captured"
            );
        }
        if let Some(users) = expect["users"].as_object() {
            let want: BTreeMap<String, u64> = users
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().expect("n")))
                .collect();
            let got: BTreeMap<String, u64> = doc["users"]["top"]
                .as_array()
                .expect("users")
                .iter()
                .map(|r| {
                    (
                        r["user"].as_str().expect("user").to_string(),
                        count(r, &["failures"]),
                    )
                })
                .collect();
            assert_eq!(got, want, "{ctx}: users");
        }
        // Per-regex hits add up to the lines they account for.
        let fail_hits: u64 = doc["filter"]["failregex"]
            .as_array()
            .expect("failregex")
            .iter()
            .map(|r| count(r, &["hits"]))
            .sum();
        assert_eq!(
            fail_hits,
            matched + expect["bad_host"].as_u64().unwrap_or(0),
            "{ctx}: failregex hits"
        );
        let ignore_hits: u64 = doc["filter"]["ignoreregex"]
            .as_array()
            .expect("ignoreregex")
            .iter()
            .map(|r| count(r, &["hits"]))
            .sum();
        assert_eq!(
            ignore_hits,
            count(&doc, &["lines", "ignored"]),
            "{ctx}: ignoreregex hits"
        );
    }
}

#[test]
fn snapshots_of_the_reports_on_the_samples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in samples() {
        let log = sample_log(tmp.path(), &name);
        // The temp path differs per run: name the input by its sample name.
        let text = std::fs::read(&log).expect("log");
        let run = |extra: &[&str]| {
            let out = dry_run()
                .arg("-")
                .args(["--filter", &format!("filters/{name}.yaml")])
                .args(extra)
                .write_stdin(text.clone())
                .current_dir(root())
                .output()
                .expect("run");
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        insta::assert_snapshot!(format!("human_{name}"), run(&[]));
        insta::assert_snapshot!(
            format!("json_{name}"),
            run(&["--json", "--show", "matched", "--max", "3"])
        );
    }
}

/// A config directory with one filter and one jail reading `log`.
fn jail_config(dir: &Path, log: &Path) {
    std::fs::create_dir_all(dir.join("filters")).expect("mkdir");
    std::fs::create_dir_all(dir.join("jails")).expect("mkdir");
    std::fs::write(
        dir.join("filters/app.yaml"),
        "description: test\nfailregex:\n  - '^auth failure for <F-USER>\\S+</F-USER> from <HOST>$'\nignoreregex:\n  - 'from 198\\.51\\.100\\.99$'\n",
    )
    .expect("filter");
    std::fs::write(
        dir.join("jails/app.yaml"),
        format!(
            "app:\n  enabled: false\n  filter: app\n  logpath: {}\n  maxretry: 3\n  findtime: 60\n  bantime: 100\n  ignoreself: false\n  ignoreip: [192.0.2.0/24]\n",
            log.display()
        ),
    )
    .expect("jail");
}

/// The timeline, checked by hand (times are seconds after 2024-03-10T00:00:00Z,
/// T0 = 1710028800):
///
/// | t   | line                         | jail                                   |
/// |-----|------------------------------|----------------------------------------|
/// | 0   | A fails                      | A: 1                                   |
/// | 10  | A fails                      | A: 2                                   |
/// | 15  | B fails                      | B: 1                                   |
/// | 20  | A fails                      | A: 3 → ban A at 20, until 120          |
/// | 20  | (no date) A fails            | time 20 (previous line): already banned |
/// | 30  | C fails (ignoreip)           | never banned                           |
/// | 31  | C fails                      | never banned                           |
/// | 32  | C fails                      | never banned                           |
/// | 50  | A fails                      | already banned                         |
/// | 80  | B fails                      | B: 1 (15 left the 60 s window at 75)   |
/// | 119 | A fails                      | already banned (ban ends at 120)       |
/// | 120 | A fails                      | A: 1 (ban expired: counting restarts)  |
/// | 121 | D ignoreregex line           | not a failure                          |
/// | 130 | B fails                      | B: 2                                   |
/// | 135 | A fails                      | A: 2                                   |
/// | 139 | B fails                      | B: 3 → ban B at 139, until 239         |
/// | 140 | A fails                      | A: 3 → re-ban A at 140, until 240      |
/// | 141 | other text                   | missed                                 |
#[test]
fn jail_simulation_timeline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("app.log");
    let t = |s: u32| format!("2024-03-10T00:{:02}:{:02}Z", s / 60, s % 60);
    let (a, b, c) = ("203.0.113.1", "203.0.113.2", "192.0.2.7");
    let mut text = String::new();
    let mut line = |time: Option<u32>, msg: String| {
        if let Some(s) = time {
            text.push_str(&t(s));
            text.push(' ');
        }
        text.push_str(&msg);
        text.push('\n');
    };
    let fail = |who: &str, user: &str| format!("auth failure for {user} from {who}");
    line(Some(0), fail(a, "root"));
    line(Some(10), fail(a, "root"));
    line(Some(15), fail(b, "admin"));
    line(Some(20), fail(a, "root"));
    line(None, fail(a, "root"));
    line(Some(30), fail(c, "x"));
    line(Some(31), fail(c, "x"));
    line(Some(32), fail(c, "x"));
    line(Some(50), fail(a, "root"));
    line(Some(80), fail(b, "admin"));
    line(Some(119), fail(a, "root"));
    line(Some(120), fail(a, "root"));
    line(Some(121), fail("198.51.100.99", "y"));
    line(Some(130), fail(b, "admin"));
    line(Some(135), fail(a, "root"));
    line(Some(139), fail(b, "admin"));
    line(Some(140), fail(a, "root"));
    line(Some(141), "something else".into());
    std::fs::write(&log, &text).expect("log");
    let conf = tmp.path().join("conf");
    jail_config(&conf, &log);

    // No LOG: the jail's logpath is read.
    let out = dry_run()
        .args(["--jail", "app", "--config"])
        .arg(&conf)
        .arg("--json")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out.stdout);
    let t0 = 1_710_028_800i64;
    let jail = &doc["jail"];
    let bans: Vec<(String, i64, u64, i64, u64)> = jail["bans"]
        .as_array()
        .expect("bans")
        .iter()
        .map(|b| {
            (
                b["address"].as_str().expect("address").to_string(),
                b["at"].as_i64().expect("at") - t0,
                count(b, &["failures"]),
                b["expires"].as_i64().expect("expires") - t0,
                count(b, &["line"]),
            )
        })
        .collect();
    assert_eq!(
        bans,
        vec![
            (a.to_string(), 20, 3, 120, 4),
            (b.to_string(), 139, 3, 239, 16),
            (a.to_string(), 140, 3, 240, 17)
        ]
    );
    assert_eq!(count(jail, &["bans_total"]), 3);
    assert_eq!(count(jail, &["failures"]), 16);
    assert_eq!(count(jail, &["already_banned"]), 3);
    assert_eq!(count(jail, &["ignored_failures"]), 3);
    assert_eq!(jail["ignored"][0]["address"], c);
    assert_eq!(count(&jail["ignored"][0], &["failures"]), 3);
    assert_eq!(jail["ignored"][0]["reason"], "in ignoreip 192.0.2.0/24");
    assert_eq!(jail["bantime"], 100);
    assert_eq!(jail["findtime"], 60);
    assert_eq!(count(&doc, &["lines", "read"]), 18);
    assert_eq!(count(&doc, &["lines", "matched"]), 16);
    assert_eq!(count(&doc, &["lines", "ignored"]), 1);
    assert_eq!(count(&doc, &["lines", "missed"]), 1);
    assert_eq!(count(&doc, &["dates", "undated"]), 1);
    assert_eq!(count(&doc["filter"]["ignoreregex"][0], &["hits"]), 1);
    assert_eq!(doc["users"]["top"][0]["user"], "root");
    assert_eq!(count(&doc["users"]["top"][0], &["failures"]), 9);

    // The human report says the same; snapshot it.
    let out = dry_run()
        .arg(&log)
        .args(["--jail", "app", "--config"])
        .arg(&conf)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let human = String::from_utf8_lossy(&out.stdout).replace(&log.display().to_string(), "app.log");
    insta::assert_snapshot!("human_jail_timeline", human);
}

/// Many lines, short chunks, one or two threads, with and without the
/// prefilter and the date cache: the same document every time.
#[test]
fn fast_paths_agree_with_the_plain_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("big.log");
    let mut f = std::fs::File::create(&log).expect("create");
    let mut n = 0u64;
    for i in 0..20_000u64 {
        let s = i / 7;
        let (h, m, sec) = (s / 3600 % 24, s / 60 % 60, s % 60);
        let ms = i * 37 % 1000;
        match i % 11 {
            0 => writeln!(f, "2024-03-10 {h:02}:{m:02}:{sec:02},{ms:03} ERROR Login failure 203.0.{}.{}", i % 7, i % 200 + 1),
            1 => writeln!(f, "Traceback (most recent call last): Login failure 198.51.100.{}", i % 50),
            2 => writeln!(f, "Mar 10 {h:02}:{m:02}:{sec:02} web01 app: Login failure 2001:db8::{:x}", i % 300),
            3 => writeln!(f, "1.2.3.4 - - [10/Mar/2024:{h:02}:{m:02}:{sec:02} +0100] \"GET / HTTP/1.1\" Login failure 192.0.2.{}", i % 9),
            4 => writeln!(f, "2024-03-10T{h:02}:{m:02}:{sec:02}.{ms:03}Z Login failure 999.1.1.1"),
            _ => writeln!(f, "2024-03-10 {h:02}:{m:02}:{sec:02},{ms:03} INFO request done {i}"),
        }
        .expect("write");
        n += 1;
    }
    writeln!(
        f,
        "2024-03-10 23:59:59,999 ERROR Login failure 203.0.113.250 (no newline follows)"
    )
    .expect("write");
    write!(f, "Login failure 203.0.113.251").expect("write");
    drop(f);
    n += 2;
    let run = |extra: &[&str]| -> Value {
        let out = dry_run()
            .arg(&log)
            .args([
                "--regex",
                "Login failure <HOST>",
                "--ignoreregex",
                r"failure 203\.0\.3\.",
                "--json",
                "--top",
                "1000",
            ])
            .args(extra)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v = json(&out.stdout);
        v["filter"]["prefilter"] = Value::Null;
        v["lines"]["examined"] = Value::Null;
        v
    };
    let plain = run(&["--threads", "1", "--no-prefilter", "--no-date-cache"]);
    assert_eq!(count(&plain, &["lines", "read"]), n);
    assert!(count(&plain, &["lines", "matched"]) > 1000);
    assert!(count(&plain, &["lines", "bad_host"]) > 1000);
    assert!(count(&plain, &["lines", "ignored"]) > 100);
    assert!(count(&plain, &["dates", "undated"]) > 1000);
    for extra in [
        &["--threads", "1"][..],
        &["--threads", "2", "--chunk-kib", "4"],
        &["--threads", "3", "--chunk-kib", "16", "--no-date-cache"],
        &["--threads", "2", "--chunk-kib", "8", "--no-prefilter"],
    ] {
        assert_eq!(run(extra), plain, "{extra:?}");
    }
}

/// dry-run against the plain loop the daemon runs (`Filter::examine` on each
/// line in order): same counts, same hosts with the same first and last times.
#[test]
fn agrees_with_the_plain_filter_loop() {
    use banwarden::filter::{Filter, FilterSpec, Outcome};
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("mixed.log");
    let mut text = String::new();
    for i in 0..3000u32 {
        let s = i / 3;
        let (m, sec) = (s / 60 % 60, s % 60);
        let line = match i % 9 {
            0 => format!("2024-03-10 10:{m:02}:{sec:02},{:03} ERROR Login failure 203.0.113.{}\r\n", i % 1000, i % 17),
            1 => format!("Login failure 198.51.100.{} (no date)\n", i % 5),
            2 => format!("Mar 10 10:{m:02}:{sec:02} host app: Login failure 2001:db8::{:x}\r\r\n", i % 11),
            3 => format!("5.6.7.8 - - [10/Mar/2024:10:{m:02}:{sec:02} +0200] \"GET /\" Login failure 192.0.2.{}\n", i % 4),
            4 => format!("2024-03-10T10:{m:02}:{sec:02}Z Login failure 10.0.0.{} ignored\n", i % 3),
            5 => "\n".to_string(),
            _ => format!("2024-03-10 10:{m:02}:{sec:02},000 INFO nothing {i}\n"),
        };
        text.push_str(&line);
    }
    std::fs::write(&log, &text).expect("write");
    let spec = FilterSpec {
        name: "t".into(),
        failregex: vec!["Login failure <HOST>".into()],
        ignoreregex: vec![r"ignored$".into()],
        ..Default::default()
    };
    // TZ must be the same as the binary's (UTC in these tests).
    std::env::set_var("TZ", "UTC");
    let filter = Filter::compile(spec).expect("filter");
    let now = 1_717_200_000;
    let mut scratch = filter.new_state();
    let (mut matched, mut ignored, mut missed, mut undated) = (0u64, 0u64, 0u64, 0u64);
    let mut undated_matches = 0u64;
    let mut hosts: BTreeMap<IpAddr, (u64, i64, i64)> = BTreeMap::new();
    let mut prev: Option<i64> = None;
    let mut pending: Vec<IpAddr> = Vec::new();
    for line in text.as_bytes().split_inclusive(|b| *b == b'\n') {
        let (date, outcome) = filter.examine(line, now, &mut scratch);
        if date.is_none() {
            undated += 1;
            if outcome != Outcome::Missed {
                undated_matches += 1;
            }
        }
        if let Some(d) = date {
            for h in pending.drain(..) {
                let e = hosts.entry(h).or_insert((0, d.ts, d.ts));
                e.0 += 1;
                e.2 = d.ts;
            }
            prev = Some(d.ts);
        }
        match outcome {
            Outcome::Failure { host, .. } => {
                matched += 1;
                match date.map(|d| d.ts).or(prev) {
                    Some(t) => {
                        let e = hosts.entry(host).or_insert((0, t, t));
                        e.0 += 1;
                        e.2 = t;
                    }
                    None => pending.push(host),
                }
            }
            Outcome::Ignored { .. } => ignored += 1,
            Outcome::Missed => missed += 1,
            Outcome::BadHost { .. } => panic!("no bad host here"),
        }
    }
    for extra in [
        &["--threads", "1", "--no-prefilter", "--no-date-cache"][..],
        &["--chunk-kib", "4"],
        &["--chunk-kib", "4", "--all-dates"],
    ] {
        let out = dry_run()
            .arg(&log)
            .args([
                "--regex",
                "Login failure <HOST>",
                "--ignoreregex",
                "ignored$",
                "--json",
                "--top",
                "1000",
            ])
            .args(extra)
            .output()
            .expect("run");
        let doc = json(&out.stdout);
        let ctx = format!("{extra:?}");
        assert_eq!(count(&doc, &["lines", "matched"]), matched, "{ctx}");
        assert_eq!(count(&doc, &["lines", "ignored"]), ignored, "{ctx}");
        assert_eq!(count(&doc, &["lines", "missed"]), missed, "{ctx}");
        assert_eq!(count(&doc, &["lines", "undated"]), undated_matches, "{ctx}");
        // Dates are looked for on every line unless the walk is sparse.
        if count(&doc, &["dates", "checked"]) == count(&doc, &["lines", "read"]) {
            assert_eq!(count(&doc, &["dates", "undated"]), undated, "{ctx}");
        } else {
            assert!(
                !extra.contains(&"--all-dates"),
                "{ctx}: --all-dates was sparse"
            );
        }
        let got: BTreeMap<IpAddr, (u64, i64, i64)> = doc["addresses"]["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|r| {
                let t = |k: &str| r[k].as_i64().expect("time");
                (
                    addr(r["address"].as_str().expect("address")),
                    (count(r, &["failures"]), t("first"), t("last")),
                )
            })
            .collect();
        assert_eq!(got, hosts, "{ctx}");
    }
}

/// With a `datepattern`, dates are only looked for on lines that may match;
/// everything else (counts, hosts, times, bans) is the same as dating every
/// line, including literals that only appear once the date is cut out, and
/// undated failures taking the time of the dated line before them.
#[test]
fn sparse_dates_agree_with_all_dates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("dp.log");
    let mut text = String::new();
    for i in 0..6000u32 {
        let s = i / 4;
        let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
        let line = match i % 10 {
            0 => format!(
                "[2024-03-10 {h:02}:{m:02}:{sec:02}] auth fail from 203.0.113.{}\n",
                i % 13
            ),
            1 => format!("[] auth fail from 198.51.100.{}\n", i % 7),
            2 => format!("no date here at all {i}\n"),
            3 => format!(
                "[2024-03-10 {h:02}:{m:02}:{sec:02}] auth ok from 192.0.2.{}\n",
                i % 5
            ),
            4 => format!("[2024-03-10 {h:02}:{m:02}:{sec:02}] x [] auth fail from 1.2.3.4\n"),
            _ => format!("[2024-03-10 {h:02}:{m:02}:{sec:02}] GET /index {i}\n"),
        };
        text.push_str(&line);
    }
    std::fs::write(&log, &text).expect("write");
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(conf.join("filters")).expect("mkdir");
    std::fs::create_dir_all(conf.join("jails")).expect("mkdir");
    std::fs::write(
        conf.join("filters/dp.yaml"),
        "failregex:\n  - '^\\[\\] auth fail from <HOST>$'\ndatepattern: '%Y-%m-%d %H:%M:%S'\n",
    )
    .expect("filter");
    std::fs::write(
        conf.join("jails/dp.yaml"),
        format!("dp:\n  filter: dp\n  logpath: {}\n  maxretry: 3\n  findtime: 60\n  bantime: 30\n  ignoreself: false\n", log.display()),
    )
    .expect("jail");
    let run = |extra: &[&str]| -> Value {
        let out = dry_run()
            .args(["--jail", "dp", "--config"])
            .arg(&conf)
            .args(["--json", "--top", "1000"])
            .args(extra)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out.stdout)
    };
    let mut all = run(&["--all-dates", "--threads", "1"]);
    assert_eq!(count(&all, &["dates", "checked"]), 6000);
    assert_eq!(count(&all, &["dates", "undated"]), 1200);
    assert_eq!(count(&all, &["lines", "matched"]), 1200);
    assert!(count(&all["jail"], &["bans_total"]) > 10);
    all["dates"]["checked"] = Value::Null;
    all["dates"]["undated"] = Value::Null;
    all["dates"]["formats"] = Value::Null;
    all["lines"]["examined"] = Value::Null;
    for extra in [
        &[][..],
        &["--threads", "1", "--chunk-kib", "4"],
        &["--threads", "2", "--chunk-kib", "8"],
    ] {
        let mut v = run(extra);
        assert!(
            count(&v, &["dates", "checked"]) < 6000,
            "{extra:?}: sparse dates not used"
        );
        v["dates"]["checked"] = Value::Null;
        v["dates"]["undated"] = Value::Null;
        v["dates"]["formats"] = Value::Null;
        v["lines"]["examined"] = Value::Null;
        assert_eq!(v, all, "{extra:?}");
    }
}

/// The date cache against the detector on the sample logs.
#[test]
fn date_cache_agrees_on_the_samples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in samples() {
        let log = sample_log(tmp.path(), &name);
        let run = |extra: &[&str]| {
            let out = dry_run()
                .arg(&log)
                .args([
                    "--filter",
                    &format!("filters/{name}.yaml"),
                    "--json",
                    "--show",
                    "matched",
                    "--show",
                    "missed",
                ])
                .args(extra)
                .current_dir(root())
                .output()
                .expect("run");
            json(&out.stdout)
        };
        assert_eq!(
            run(&[]),
            run(&["--no-date-cache", "--threads", "1"]),
            "{name}"
        );
    }
}

#[test]
fn gzip_stdin_and_plain_inputs_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = sample_log(tmp.path(), "sshd");
    let text = std::fs::read(&log).expect("log");
    let gz = tmp.path().join("sshd.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&text).expect("gzip");
    std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
    let run = |arg: &Path, stdin: Option<Vec<u8>>| {
        let mut c = dry_run();
        c.arg(arg)
            .args(["--filter", "filters/sshd.yaml", "--json"])
            .current_dir(root());
        if let Some(s) = stdin {
            c.write_stdin(s);
        }
        let mut v = json(&c.output().expect("run").stdout);
        v["inputs"] = Value::Null;
        // The prefilter picks its literals on a sample of a file (not stdin).
        v["filter"]["prefilter"] = Value::Null;
        v["lines"]["examined"] = Value::Null;
        v
    };
    let plain = run(&log, None);
    assert_eq!(run(&gz, None), plain);
    assert_eq!(run(Path::new("-"), Some(text)), plain);

    // Two inputs: counts add up, lines are numbered per input.
    let out = dry_run()
        .arg(&gz)
        .arg(&log)
        .args(["--filter", "filters/sshd.yaml", "--json"])
        .current_dir(root())
        .output()
        .expect("run");
    let doc = json(&out.stdout);
    assert_eq!(
        count(&doc, &["lines", "read"]),
        2 * count(&plain, &["lines", "read"])
    );
    assert_eq!(
        count(&doc["inputs"][1], &["lines"]),
        count(&plain, &["lines", "read"])
    );
}

#[test]
fn line_mode_and_exit_codes() {
    let out = dry_run()
        .args([
            "--line",
            "2024-03-10 10:00:00,000 ERROR Login failure 203.0.113.7",
            "--regex",
            "Login failure <HOST>",
            "--json",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&out.stdout);
    assert_eq!(doc["addresses"]["top"][0]["address"], "203.0.113.7");
    assert_eq!(doc["dates"]["formats"]["python-logging"], 1);
    assert_eq!(doc["addresses"]["top"][0]["first"], 1_710_064_800);

    // Matched nothing: exit 1, and the report says so.
    let out = dry_run()
        .args(["--line", "hello", "--regex", "Login failure <HOST>"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("matched nothing"));
}

#[test]
fn regex_errors_point_at_the_bad_part() {
    let out = dry_run()
        .args(["--line", "x", "--regex", r"from <HOST> port (\d+"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--regex #1") && err.contains("unclosed group"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let pat = lines
        .iter()
        .position(|l| l.trim_start().starts_with("from <HOST>"))
        .expect("pattern echoed");
    let caret = lines[pat + 1];
    assert_eq!(
        caret.find('^'),
        Some(lines[pat].find('(').expect("paren")),
        "{err}"
    );

    let out = dry_run()
        .args(["--line", "x", "--regex", "Login failure"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<HOST>"));

    let out = dry_run()
        .args(["--line", "x", "--regex", "<HOST>", "--ignoreregex", "a[b"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ignoreregex #1"));
}

#[test]
fn usage_and_config_errors_exit_2() {
    // Neither --filter, --regex nor --jail.
    assert_eq!(
        dry_run().arg("x.log").output().expect("run").status.code(),
        Some(2)
    );
    // Two of them.
    let out = dry_run()
        .args(["--line", "x", "--regex", "<HOST>", "--filter", "sshd"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A missing log.
    let out = dry_run()
        .args(["/nonexistent/x.log", "--regex", "<HOST>"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.log"));
    // An unknown filter name lists the known ones.
    let out = dry_run()
        .args(["--line", "x", "--filter", "nope", "--config"])
        .arg(root())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("sshd"), "{err}");
    // An unknown jail.
    let out = dry_run()
        .args(["--line", "x", "--jail", "nope", "--config"])
        .arg(root())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // A broken filter file: file, line and caret.
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "failregex:\n  - 'from <HOST> port (\\d+'\n").expect("write");
    let out = dry_run()
        .args(["--line", "x", "--filter"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2") && err.contains('^'), "{err}");
}

#[test]
fn filter_names_resolve_in_the_current_directory_without_config() {
    // /etc/banwarden is absent on test machines; the repository root is a config dir.
    if Path::new("/etc/banwarden").exists() {
        return;
    }
    let out = dry_run()
        .args(["--line", "May 30 10:00:01 gate sshd[4101]: Failed password for root from 203.0.113.10 port 40122 ssh2"])
        .args(["--filter", "sshd", "--json"])
        .current_dir(root())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = dry_run()
        .args(["--line", "x", "--filter", "sshd"])
        .current_dir(tmp.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn show_highlights_host_and_user() {
    let line = "May 30 10:00:01 gate sshd[4101]: Failed password for invalid user x from 6.6.6.6 port 22 from 203.0.113.10 port 40122 ssh2";
    let out = bin()
        .args([
            "dry-run",
            "--now",
            NOW,
            "--color",
            "always",
            "--show",
            "matched",
            "--filter",
            "filters/sshd.yaml",
            "--line",
            line,
        ])
        .current_dir(root())
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().expect("a shown line");
    // The host sshd wrote is highlighted, not the forged one in the user name.
    let host_at = first.find("203.0.113.10").expect("host");
    assert!(
        first[..host_at].ends_with('m'),
        "host not highlighted: {first:?}"
    );
    let forged = first.find("6.6.6.6").expect("forged");
    assert!(
        !first[..forged].ends_with('m'),
        "forged address highlighted: {first:?}"
    );
    assert!(first.contains("\u{1b}["), "{first:?}");

    // --max bounds --show; without colour there are no escapes.
    let lines = [
        "2024-03-10 10:00:00,000 ERROR Login failure 203.0.113.7",
        "2024-03-10 10:00:01,000 ERROR Login failure 203.0.113.8",
        "2024-03-10 10:00:02,000 ERROR Login failure 203.0.113.9",
        "2024-03-10 10:00:03,000 INFO fine",
    ];
    let mut c = dry_run();
    c.args([
        "--regex",
        "Login failure <HOST>",
        "--show",
        "matched",
        "--show",
        "missed",
        "--max",
        "2",
    ]);
    for l in lines {
        c.args(["--line", l]);
    }
    let out = c.output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'));
    let shown: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        shown,
        vec![
            "1: 2024-03-10 10:00:00,000 ERROR Login failure 203.0.113.7",
            "2: 2024-03-10 10:00:01,000 ERROR Login failure 203.0.113.8",
            "4: 2024-03-10 10:00:03,000 INFO fine",
        ]
    );
    let mut c = dry_run();
    c.args([
        "--regex",
        "Login failure <HOST>",
        "--show",
        "matched",
        "--json",
    ]);
    for l in lines {
        c.args(["--line", l]);
    }
    let doc = json(&c.output().expect("run").stdout);
    let first = &doc["shown"]["lines"][0];
    assert_eq!(first["host"], "203.0.113.7");
    let text = first["text"].as_str().expect("text");
    let span = first["host_span"].as_array().expect("span");
    let (s, e) = (
        span[0].as_u64().expect("s") as usize,
        span[1].as_u64().expect("e") as usize,
    );
    assert_eq!(&text[s..e], "203.0.113.7");
}
