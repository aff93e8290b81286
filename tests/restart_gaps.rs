//! Lines written while the daemon was down, or before it first saw a file,
//! are counted: after a clean stop, after `kill -9`, and for a file with no
//! saved position (read from its first line within findtime). Real binary,
//! real nft, inside a test network namespace.

mod common;

use std::time::Duration;

use common::daemon::{failures, in_set, set_elements, ConfigDir, Daemon};
use common::netns::{eventually, skip_unless_privileged, NetPair};

fn config(table: &str) -> ConfigDir {
    ConfigDir::app(table, "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n")
}

/// How many addresses the namespace's `table` bans.
fn banned(pair: &NetPair, table: &str) -> usize {
    set_elements(&pair.srv, table, "app_v4").len()
}

/// `n` failures of `addr` stamped `ago` seconds before now (ISO 8601, UTC).
fn dated_failures(addr: &str, n: usize, ago: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(ago))
        .expect("a time in range");
    let stamp = at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    (0..n)
        .map(|_| format!("{stamp} Login failure {addr}\n"))
        .collect()
}

#[test]
fn failures_appended_while_stopped_to_a_file_that_had_no_line_are_counted_once() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwgap";
    let cfg = config(table);
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(daemon.stop().success());
    cfg.append("app.log", &failures("198.51.100.80", 3));
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.80"
        )),
        "failures written while down were not counted:\n{}",
        daemon.stderr()
    );
    // A later line handled means the earlier ones were read just once.
    cfg.append("app.log", "Login failure 198.51.100.81\n");
    let mut s = serde_json::Value::Null;
    assert!(eventually(Duration::from_secs(10), || {
        s = cfg.status("app");
        s["counters"]["failures"].as_u64().is_some_and(|n| n >= 4)
    }));
    assert_eq!(s["counters"]["failures"], 4, "{s}");
}

#[test]
fn a_file_never_seen_is_read_from_its_first_line_within_findtime() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwseek";
    let cfg = config(table);
    // Written before the daemon ever ran: one offender two hours ago (out
    // of the 10 minute findtime), one a minute ago.
    cfg.write(
        "app.log",
        &(dated_failures("198.51.100.90", 3, 7200)
            + &"2020-01-01 00:00:00 noise\n".repeat(5000)
            + &dated_failures("198.51.100.91", 3, 60)),
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.91"
        )),
        "failures within findtime before the first start were not counted:\n{}",
        daemon.stderr()
    );
    let s = cfg.status("app");
    assert_eq!(
        s["counters"]["lines"], 3,
        "read from the first line within findtime, no earlier: {s}"
    );
    assert!(!in_set(&pair.srv, table, "app_v4", "198.51.100.90"));
}

#[test]
fn failures_written_just_before_kill_9_to_a_new_file_are_all_banned_after_restart() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwgapkill";
    let cfg = config(table);
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let burst: String = (0..500)
        .map(|i| failures(&format!("198.19.{}.{}", i / 250, i % 250 + 1), 3))
        .collect();
    cfg.append("app.log", &burst);
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(20), || banned(&pair, table) == 500),
        "{} of 500 banned after kill -9\n{}",
        banned(&pair, table),
        daemon.stderr()
    );
}
