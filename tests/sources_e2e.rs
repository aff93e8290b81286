//! The daemon bans from command streams and from the journal, end to end.
//!
//! There is no journald in the test environment, so the journal jail reads a
//! journal file written by `systemd-journal-remote` (`journal.files`); the
//! daemon's code path is the same journalctl reader as for the system journal.
//! Not covered here: following the live system journal and its rotation.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::daemon::{ConfigDir, Daemon};
use common::journal::journalctl_reads;
use common::netns::{eventually, skip_unless_privileged, NetPair};

fn in_set(pair: &NetPair, table: &str, set: &str, addr: &str) -> bool {
    common::daemon::in_set(&pair.srv, table, set, addr)
}

/// The CLI's JSON answer, or Null (with the error printed) if it failed.
fn cli_json(cfg: &ConfigDir, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_banwarden"))
        .args(args)
        .arg("--json")
        .arg("--config")
        .arg(cfg.path())
        .output()
        .expect("cli");
    if !out.status.success() {
        eprintln!(
            "banwarden {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn a_command_stream_feeds_a_jail() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwcmd";
    let cfg = ConfigDir::new(table);
    cfg.write(
        "filters/app.yaml",
        "failregex:\n  - '^Login failure <HOST>$'\n",
    );
    cfg.write(
        "jails/app.yaml",
        "app:\n  enabled: true\n  filter: app\n  command: [/bin/sh, -c, 'for i in 1 2 3; do echo Login failure 198.51.100.50; done; exec sleep 60']\n  maxretry: 3\n",
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(5), || in_set(
            &pair,
            table,
            "app_v4",
            "198.51.100.50"
        )),
        "{}",
        daemon.stderr()
    );
}

fn write_journal(path: &Path, entries: &[(i64, &str)], first_mono: u64) -> bool {
    let mut export = Vec::new();
    for (i, (ts, msg)) in entries.iter().enumerate() {
        write!(
            export,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=5b9a4c2f7e1d4a8b9c0d1e2f3a4b5c6d\n\
             _SYSTEMD_UNIT=ssh.service\nSYSLOG_IDENTIFIER=sshd\n_PID=4242\nMESSAGE={msg}\n\n",
            ts * 1_000_000,
            first_mono + i as u64 * 1000
        )
        .expect("export");
    }
    common::journal::write_export(path, &export)
}

#[test]
fn a_journal_jail_bans_and_resumes_at_its_cursor() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwjournal";
    let cfg = ConfigDir::new(table);
    let now = jiff::Timestamp::now().as_second();
    let msg = "Failed password for root from 198.51.100.60 port 2222 ssh2";
    let journal = cfg.path().join("ssh.journal");
    // Without a stored cursor the reader starts findtime back: a failure
    // logged before the daemon first ran counts toward the ban.
    if !write_journal(
        &journal,
        &[
            (now - 900, msg), // before findtime (600 s): not counted
            (now - 5, msg),
        ],
        1_000_000,
    ) {
        return;
    }
    cfg.write(
        "filters/ssh.yaml",
        "failregex:\n  - '^sshd\\[\\d+\\]: Failed password for \\S+ from <HOST> port \\d+ ssh2$'\n",
    );
    cfg.write(
        "jails/ssh.yaml",
        "ssh:\n  enabled: true\n  filter: ssh\n  journal:\n    match: [_SYSTEMD_UNIT=ssh.service]\n    files: [ssh.journal]\n  maxretry: 3\n",
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    // Once its journalctl runs, entries stamped from now on follow.
    assert!(
        eventually(Duration::from_secs(10), || journalctl_reads(&journal)),
        "no journalctl reads {}\n{}",
        journal.display(),
        daemon.stderr()
    );
    let now = jiff::Timestamp::now().as_second();
    write_journal(&journal, &[(now, msg), (now, msg)], 2_000_000);
    assert!(
        eventually(Duration::from_secs(5), || in_set(
            &pair,
            table,
            "ssh_v4",
            "198.51.100.60"
        )),
        "{}",
        daemon.stderr()
    );
    let status = cli_json(&cfg, &["status", "ssh"]);
    assert_eq!(status["counters"]["failures"], 3, "{status}");
    // An entry written while the daemon is down is read after the restart
    // (from the saved cursor), and the earlier ones are not read again.
    assert!(daemon.stop().success());
    let other = "Failed password for root from 198.51.100.61 port 2222 ssh2";
    write_journal(
        &journal,
        &[(jiff::Timestamp::now().as_second(), other)],
        3_000_000,
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let mut status = serde_json::Value::Null;
    let read = eventually(Duration::from_secs(5), || {
        status = cli_json(&cfg, &["status", "ssh"]);
        status["counters"]["lines"] == 1
    });
    assert!(
        read,
        "expected exactly the one entry written while down: {status}\n{}",
        daemon.stderr()
    );
    // Entries are read in order: once a later one is counted, a second
    // reading of the earlier ones would have been counted before it.
    let marker = "Failed password for root from 198.51.100.62 port 2222 ssh2";
    write_journal(
        &journal,
        &[(jiff::Timestamp::now().as_second(), marker)],
        4_000_000,
    );
    assert!(
        eventually(Duration::from_secs(5), || cli_json(
            &cfg,
            &["status", "ssh"]
        )["counters"]["lines"]
            .as_u64()
            .is_some_and(|n| n >= 2)),
        "{}",
        daemon.stderr()
    );
    assert_eq!(cli_json(&cfg, &["status", "ssh"])["counters"]["lines"], 2);
}

#[test]
fn dry_run_reads_the_journal_with_matches_and_since() {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("t.journal");
    let now = jiff::Timestamp::now().as_second();
    let fail = |a: &str| format!("Failed password for root from {a} port 2222 ssh2");
    let entries = [
        (now - 7200, fail("198.51.100.70")),
        (now - 60, fail("198.51.100.71")),
        (now - 30, fail("198.51.100.71")),
    ];
    let refs: Vec<(i64, &str)> = entries.iter().map(|(t, m)| (*t, m.as_str())).collect();
    if !write_journal(&journal, &refs, 5_000_000) {
        return;
    }
    let filter = dir.path().join("ssh.yaml");
    std::fs::write(
        &filter,
        "failregex:\n  - '^sshd\\[\\d+\\]: Failed password for \\S+ from <HOST> port \\d+ ssh2$'\n",
    )
    .expect("filter");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_banwarden"))
            .args(["dry-run", "--json", "--filter"])
            .arg(&filter)
            .arg("--journal-file")
            .arg(&journal)
            .args(extra)
            .output()
            .expect("dry-run");
        // Exit 1 means "matched nothing", still with a report.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    // --since one hour ago: the entry from two hours ago is left out.
    let since = (now - 3600).to_string();
    let doc = run(&["--journal", "_SYSTEMD_UNIT=ssh.service", "--since", &since]);
    assert_eq!(doc["lines"]["matched"], 2, "{doc}");
    assert_eq!(
        doc["dates"]["undated"], 0,
        "entry times must be used: {doc}"
    );
    // A match that selects nothing reads nothing.
    let doc = run(&[
        "--journal",
        "_SYSTEMD_UNIT=nginx.service",
        "--since",
        &since,
    ]);
    assert_eq!(doc["lines"]["read"], 0, "{doc}");
}
