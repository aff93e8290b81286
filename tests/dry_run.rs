//! `banwarden dry-run`, driven through the real binary: what it finds.
//!
//! - every shipped filter on its sample log (`tests/samples/NAME.log`, comment
//!   lines removed): exact counts and the exact set of captured hosts, forged
//!   addresses never among them;
//! - snapshots (insta) of the human and JSON reports on the sample logs;
//! - a jail simulation with a hand-checked timeline.
//!
//! The fast paths are held to the plain one in `dry_run_paths.rs`; inputs,
//! options, exit codes and errors are in `dry_run_cli.rs`.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use common::dry_run::*;
use serde_json::Value;

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
    one_jail_config(
        dir,
        "app",
        "description: test\nfailregex:\n  - '^auth failure for <F-USER>\\S+</F-USER> from <HOST>$'\nignoreregex:\n  - 'from 198\\.51\\.100\\.99$'\n",
        &format!(
            "app:\n  enabled: false\n  filter: app\n  logpath: {}\n  maxretry: 3\n  findtime: 60\n  bantime: 100\n  ignoreself: false\n  ignoreip: [192.0.2.0/24]\n",
            log.display()
        ),
    );
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
    let out = run_ok(
        dry_run()
            .args(["--jail", "app", "--config"])
            .arg(&conf)
            .arg("--json"),
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
