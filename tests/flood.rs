//! A burst appended at once to a tailed file (several reads, walked and
//! counted chunk by chunk) is counted as `dry-run --jail` counts the same
//! file: every line, the same bans, although the burst overruns `max_tracked` so that which addresses
//! reach `maxretry` depends on the order the lines are counted in. Real
//! binary, real nft, inside a test network namespace.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::daemon::{set_elements, ConfigDir, Daemon};
use common::netns::{eventually, skip_unless_privileged, NetPair};

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run cli");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The `i`-th of the tests' distinct addresses (10.0.0.1, 10.0.0.2, ...).
fn addr(i: u32) -> String {
    format!("10.{}.{}.{}", i / 62500, i / 250 % 250, i % 250 + 1)
}

/// Three rounds over 2,500 addresses, all at one time: with `max_tracked`
/// at 1,000 each round evicts the lowest addresses of the table before
/// their third failure, so only an exact order gives dry-run's bans.
fn burst() -> String {
    let at = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(60))
        .expect("a time in range");
    let stamp = at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let mut text = String::new();
    for round in 0..3 {
        for i in 0..2500u32 {
            // Each round in another order, so evictions cut across them.
            let i = if round == 1 { 2499 - i } else { i };
            text += &format!("{stamp} Login failure {}\n", addr(i));
        }
    }
    text
}

#[test]
fn a_burst_overrunning_max_tracked_is_counted_as_dry_run_counts_it() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwflood";
    let jail = "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  max_tracked: 1000\n";
    let cfg = ConfigDir::app(table, jail);
    let text = burst();
    assert!(text.len() > 256 * 1024, "several reads");
    cfg.write("expected.log", &text);
    let want = json(
        Command::new(env!("CARGO_BIN_EXE_banwarden"))
            .args(["dry-run", "--json", "--jail", "app", "--config"])
            .arg(cfg.path())
            .arg(cfg.path().join("expected.log")),
    );
    let want_bans: BTreeSet<String> = want["jail"]["bans"]
        .as_array()
        .expect("dry-run's bans")
        .iter()
        .map(|b| {
            let a = b["address"].as_str().expect("address");
            a.trim_end_matches("/32").to_string()
        })
        .collect();
    assert!(
        !want_bans.is_empty() && want_bans.len() < 2500,
        "evictions decide some bans: {}",
        want_bans.len()
    );

    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &text);
    let mut s = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(30), || {
            s = cfg.status("app");
            s["counters"]["lines"].as_u64() == Some(7500)
        }),
        "not every line was read: {s}\n{}",
        daemon.stderr()
    );
    assert_eq!(s["counters"]["failures"], want["jail"]["failures"], "{s}");
    assert_eq!(
        s["counters"]["bans"].as_u64(),
        Some(want_bans.len() as u64),
        "{s}"
    );
    let mut got = BTreeSet::new();
    assert!(eventually(Duration::from_secs(10), || {
        got = set_elements(&pair.srv, table, "app_v4");
        got.len() >= want_bans.len()
    }));
    assert_eq!(got, want_bans);
}

/// A reload while a burst is still being read and walked: what the old
/// sources sent is counted before they restart, and the new ones resume
/// after it, so every line is counted once (none lost, none read twice).
#[test]
fn a_reload_in_the_middle_of_a_burst_counts_every_line_once() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwflrl";
    let cfg = ConfigDir::app(table, "  maxretry: 3\n");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let lines = |from: u32, n: u32| -> String {
        (from..from + n)
            .map(|i| format!("Login failure {}\n", addr(i)))
            .collect()
    };
    // Distinct addresses, one failure each: about 3 MB, a dozen reads.
    cfg.append("app.log", &lines(0, 120_000));
    let reload = cfg.cli(&["reload"]);
    assert!(
        reload.status.success(),
        "reload: {}\n{}",
        String::from_utf8_lossy(&reload.stderr),
        daemon.stderr()
    );
    // Read after any line read twice would be: once these are counted, a
    // line counted twice would show.
    cfg.append("app.log", &lines(120_000, 1_000));
    let mut s = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(30), || {
            s = cfg.status("app");
            s["counters"]["lines"].as_u64() >= Some(121_000)
        }),
        "not every line was read: {s}\n{}",
        daemon.stderr()
    );
    assert_eq!(s["counters"]["lines"].as_u64(), Some(121_000), "{s}");
    assert_eq!(s["counters"]["failures"].as_u64(), Some(121_000), "{s}");
}
