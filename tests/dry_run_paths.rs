//! `banwarden dry-run`'s fast paths (literal prefilter, date cache, sparse
//! date reading, threads, chunking) give the same document as the plain
//! path, on generated logs and on the shipped filters' samples.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;

use common::dry_run::*;
use serde_json::Value;

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
        let out = run_ok(
            dry_run()
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
                .args(extra),
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
    one_jail_config(
        &conf,
        "dp",
        "failregex:\n  - '^\\[\\] auth fail from <HOST>$'\ndatepattern: '%Y-%m-%d %H:%M:%S'\n",
        &format!("dp:\n  filter: dp\n  logpath: {}\n  maxretry: 3\n  findtime: 60\n  bantime: 30\n  ignoreself: false\n", log.display()),
    );
    let run = |extra: &[&str]| -> Value {
        let out = run_ok(
            dry_run()
                .args(["--jail", "dp", "--config"])
                .arg(&conf)
                .args(["--json", "--top", "1000"])
                .args(extra),
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
