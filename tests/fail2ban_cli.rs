//! fail2ban filter files where a filter is named, driven through the real
//! binary: `dry-run --filter PATH.conf[options]`, a jail's
//! `filter: fail2ban:NAME[options]` looked up in `fail2ban_dir`, and what
//! `check` says about an imported filter (what it cannot honour, which
//! patterns run on the backtracking fallback, each with file:line).
//!
//! The filter files are written here in fail2ban's format (includes,
//! `[DEFAULT]`, `%(...)s`, `<...>` substitution, `mode`), not taken from
//! fail2ban, so the test runs without it installed.

mod common;

use std::path::Path;

use common::cli::{bin, json_doc};
use predicates::prelude::*;

/// A fail2ban config dir with `filter.d/common.conf` and `filter.d/myapp.conf`.
fn fail2ban_dir(dir: &Path) {
    let f = dir.join("filter.d");
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(
        f.join("common.conf"),
        "[DEFAULT]\n_daemon = \\S*\n__prefix_line = \\s*\\S+ %(_daemon)s\\[\\d+\\]:\\s+\n",
    )
    .unwrap();
    std::fs::write(
        f.join("myapp.conf"),
        "[INCLUDES]\nbefore = common.conf\n\n[DEFAULT]\n_daemon = myapp\n\n\
         [Definition]\nmode = normal\n\
         failregex = ^%(__prefix_line)sfailed login for <F-USER>\\S+</F-USER> from <HOST>$\n\
         \x20           <mdre-<mode>>\n\
         mdre-normal =\n\
         mdre-aggressive = ^%(__prefix_line)sbad (?!ok)\\w+ from <HOST>$\n\
         ignoreregex = from 10\\.\n\
         maxlines = 2\n",
    )
    .unwrap();
}

const LOG: &str = "\
2024-05-30T10:00:00Z gate myapp[12]: failed login for root from 192.0.2.1
2024-05-30T10:00:01Z gate myapp[12]: bad token from 192.0.2.2
2024-05-30T10:00:02Z gate myapp[12]: failed login for bob from 10.0.0.1
2024-05-30T10:00:03Z gate other[12]: failed login for root from 192.0.2.3
2024-05-30T10:00:04Z gate myapp[12]: bad ok from 192.0.2.4
";

#[test]
fn dry_run_takes_a_fail2ban_filter_file_with_options() {
    let d = tempfile::tempdir().unwrap();
    fail2ban_dir(d.path());
    let log = d.path().join("app.log");
    std::fs::write(&log, LOG).unwrap();
    let conf = d.path().join("filter.d/myapp.conf");
    let run = |filter: String| {
        json_doc(
            bin()
                .args(["dry-run", "--now", "2024-06-01T00:00:00Z", "--json"])
                .arg(&log)
                .args(["--filter", &filter]),
        )
    };
    let (normal, notes) = run(conf.display().to_string());
    assert_eq!(normal["lines"]["matched"], 1, "{normal:#}");
    assert_eq!(normal["lines"]["ignored"], 1, "{normal:#}");
    assert!(!notes.contains("maxlines"), "maxlines is honoured: {notes}");
    // mode=aggressive adds the look-around regex: `bad token` counts,
    // `bad ok` does not (the fallback engine honours the look-ahead).
    let (aggressive, notes) = run(format!("{}[mode=aggressive]", conf.display()));
    assert_eq!(aggressive["lines"]["matched"], 2, "{aggressive:#}");
    assert!(
        notes.contains("failregex[1] runs on the backtracking fallback (look-around)"),
        "{notes}"
    );
}

#[test]
fn a_jail_names_a_fail2ban_filter_and_check_reports_what_it_cannot_honour() {
    let d = tempfile::tempdir().unwrap();
    let f2b = d.path().join("fail2ban");
    fail2ban_dir(&f2b);
    let cfg = d.path().join("cfg");
    std::fs::create_dir_all(cfg.join("jails")).unwrap();
    std::fs::write(
        cfg.join("banwarden.yaml"),
        format!("fail2ban_dir: {}\n", f2b.display()),
    )
    .unwrap();
    std::fs::write(
        cfg.join("jails/myapp.yaml"),
        "myapp:\n  filter: 'fail2ban:myapp[mode=aggressive]'\n  logpath: /var/log/myapp.log\n",
    )
    .unwrap();
    bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .stdout(predicate::str::contains("OK: 0 filters, 1 jails"))
        .stdout(predicate::str::contains(
            "myapp.conf:9: failregex[1] runs on the backtracking fallback (look-around)",
        ));
    // A missing fail2ban filter is an error located in the jail file.
    std::fs::write(
        cfg.join("jails/myapp.yaml"),
        "myapp:\n  filter: 'fail2ban:nope'\n  logpath: /var/log/myapp.log\n",
    )
    .unwrap();
    bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(predicate::str::contains("myapp.yaml:2:"))
        .stderr(predicate::str::contains("nope.conf: cannot read"));
}

#[test]
fn a_catastrophic_pattern_on_a_hostile_line_stops_at_its_bound_and_is_counted() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("evil.conf");
    // Nested quantifiers with overlapping alternatives and a look-ahead:
    // exponential for a backtracking engine on a run of `a`s that does not
    // end as the back-reference wants.
    std::fs::write(
        &conf,
        "[Definition]\nfailregex = ^((a|aa)+)+(?!x)\\1b from <HOST>$\n",
    )
    .unwrap();
    let log = d.path().join("evil.log");
    let hostile = format!("{}c b from 192.0.2.66", "a".repeat(40));
    std::fs::write(&log, format!("{hostile}\naab from 192.0.2.1\n")).unwrap();
    let started = std::time::Instant::now();
    let (doc, stderr) = json_doc(
        bin()
            .args(["dry-run", "--now", "2024-06-01T00:00:00Z", "--json"])
            .arg(&log)
            .arg("--filter")
            .arg(&conf),
    );
    assert_eq!(doc["lines"]["matched"], 1, "{doc:#}");
    assert_eq!(doc["lines"]["missed"], 1, "{doc:#}");
    assert!(
        stderr.contains("1 lines reached the backtracking bound"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// A fail2ban filter with sessions (`<F-MLFID>`): a failure line takes its
/// host from an earlier line of the same session. dry-run matches such a
/// stream in order through one state, as the daemon reads it, whatever
/// `--threads` and however small the chunks: the counts are those of one
/// thread (it used to lose the sessions that crossed a chunk).
#[test]
fn sessions_span_chunks_whatever_the_threads() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("filter.d");
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(
        f.join("sess.conf"),
        "[Definition]\n\
         prefregex = ^\\s*app\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^<F-NOFAIL>connect</F-NOFAIL> from <HOST>$\n\
         \x20           ^auth failed for \\S+$\n",
    )
    .unwrap();
    let mut log = String::new();
    for i in 0..3000 {
        let (pid, t) = (10_000 + i, i % 60);
        let host = format!("192.0.{}.{}", i / 250 % 250, i % 250 + 1);
        log.push_str(&format!(
            "2024-05-30T10:00:{t:02}Z app[{pid}]: connect from {host}\n"
        ));
        log.push_str(&format!(
            "2024-05-30T10:00:{t:02}Z app[{}]: other session {i} {}\n",
            pid + 50_000,
            "x".repeat(100)
        ));
        log.push_str(&format!(
            "2024-05-30T10:00:{t:02}Z app[{pid}]: auth failed for root\n"
        ));
    }
    let path = d.path().join("app.log");
    std::fs::write(&path, log).unwrap();
    let matched = |threads: &str| matched_in_chunks(&path, &f.join("sess.conf"), threads);
    assert_eq!(matched("1"), 3000);
    assert_eq!(matched("4"), 3000);
}

/// fail2ban's `maxlines`: the failregex matches the stream's last lines
/// joined, here a connection's first and last lines with a back-reference
/// and `<SKIPLINES>` over other connections' lines (which stay in the
/// buffer for their own matches). A pair further apart than `maxlines`
/// lines is not a failure. The stream is matched in order through one
/// buffer, whatever `--threads` and the chunk size.
#[test]
fn maxlines_joins_lines_whatever_the_threads() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("filter.d");
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(
        f.join("ml.conf"),
        "[Definition]\n\
         failregex = ^\\s*conn(?P<__c>\\d+) open from <HOST><SKIPLINES>\\s*conn(?P=__c) auth failed$\n\
         [Init]\nmaxlines = 5\n",
    )
    .unwrap();
    let mut log = String::new();
    for i in 0..2000 {
        let host = format!("192.0.{}.{}", i / 250 % 250, i % 250 + 1);
        let t = i % 60;
        // Two connections interleaved: open A, open B, fail A, fail B.
        let (a, b) = (2 * i, 2 * i + 1);
        log.push_str(&format!(
            "2024-05-30T10:00:{t:02}Z conn{a} open from {host}\n"
        ));
        log.push_str(&format!(
            "2024-05-30T10:00:{t:02}Z conn{b} open from 198.51.100.{}\n",
            i % 250 + 1
        ));
        log.push_str(&format!("2024-05-30T10:00:{t:02}Z conn{a} auth failed\n"));
        log.push_str(&format!("2024-05-30T10:00:{t:02}Z conn{b} auth failed\n"));
    }
    // Six lines apart: beyond maxlines = 5.
    log.push_str("2024-05-30T10:01:00Z conn9999999 open from 203.0.113.9\n");
    for _ in 0..5 {
        log.push_str("2024-05-30T10:01:00Z noise\n");
    }
    log.push_str("2024-05-30T10:01:00Z conn9999999 auth failed\n");
    let path = d.path().join("app.log");
    std::fs::write(&path, log).unwrap();
    let matched = |threads: &str| matched_in_chunks(&path, &f.join("ml.conf"), threads);
    assert_eq!(matched("1"), 4000);
    assert_eq!(matched("4"), 4000);
}

/// fail2ban's sessions (`<F-MLFID>` in the prefregex) together with
/// `maxlines` > 1: the prefregex sees the buffer, and a match counts within
/// the session it names, as in fail2ban. The expected hosts are what
/// `fail2ban-regex -v` 1.0.2 reports for the same file and log: the
/// `<F-NOFAIL>` lines give their session its host, a failure without one
/// takes it, `<F-MLFFORGET>` ends the session (the next failure of app[1]
/// waits for a host that never comes), and a waiting failure (app[3])
/// takes the host of the session's later `<F-NOFAIL>` line.
#[test]
fn sessions_and_maxlines_combine_as_in_fail2ban() {
    let d = tempfile::tempdir().unwrap();
    let filter = d.path().join("mlf.conf");
    std::fs::write(
        &filter,
        "[Definition]\n\
         prefregex = ^\\s*<F-MLFID>\\S+ app\\[\\d+\\]:</F-MLFID> <F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^<F-NOFAIL>connect from</F-NOFAIL> <HOST>$\n\
         \x20           ^auth failed for <F-USER>\\S+</F-USER>$\n\
         \x20           ^<F-MLFFORGET>bye</F-MLFFORGET>$\n\
         maxlines = 2\n",
    )
    .unwrap();
    let log = d.path().join("app.log");
    std::fs::write(
        &log,
        "2024-05-30T10:00:00 gate app[1]: connect from 192.0.2.1\n\
         2024-05-30T10:00:01 gate app[2]: connect from 192.0.2.2\n\
         2024-05-30T10:00:02 gate app[1]: auth failed for root\n\
         2024-05-30T10:00:03 gate app[2]: auth failed for bob\n\
         2024-05-30T10:00:04 gate app[1]: auth failed for root\n\
         2024-05-30T10:00:05 gate app[1]: bye\n\
         2024-05-30T10:00:06 gate app[1]: auth failed for root\n\
         2024-05-30T10:00:07 gate app[3]: auth failed for eve\n\
         2024-05-30T10:00:08 gate app[3]: connect from 192.0.2.3\n",
    )
    .unwrap();
    let (doc, stderr) = json_doc(
        bin()
            .args(["dry-run", "--now", "2024-06-01T00:00:00Z", "--json"])
            .args(["--show", "matched"])
            .arg(&log)
            .arg("--filter")
            .arg(&filter),
    );
    assert!(
        !stderr.contains("MLFID"),
        "nothing to say any more: {stderr}"
    );
    let got: Vec<(u64, String)> = doc["shown"]["lines"]
        .as_array()
        .expect("shown lines")
        .iter()
        .map(|l| {
            let host = l["host"].as_str().unwrap_or("-").to_string();
            (l["line"].as_u64().expect("line"), host)
        })
        .collect();
    let want: Vec<(u64, String)> = [
        (3, "192.0.2.1"),
        (4, "192.0.2.2"),
        (5, "192.0.2.1"),
        (6, "192.0.2.1"),
        (9, "192.0.2.3"),
    ]
    .iter()
    .map(|(n, h)| (*n, h.to_string()))
    .collect();
    assert_eq!(got, want, "{doc:#}");
}

/// dry-run's `lines.matched` for `log` with fail2ban filter file `filter`,
/// with `threads` threads and 4 KiB chunks (so that streams cross chunks).
fn matched_in_chunks(log: &Path, filter: &Path, threads: &str) -> serde_json::Value {
    let (doc, stderr) = json_doc(
        bin()
            .args(["dry-run", "--now", "2024-06-01T00:00:00Z", "--json"])
            .args(["--threads", threads, "--chunk-kib", "4"])
            .arg(log)
            .arg("--filter")
            .arg(filter),
    );
    assert!(!stderr.contains("not supported"), "{stderr}");
    doc["lines"]["matched"].clone()
}
