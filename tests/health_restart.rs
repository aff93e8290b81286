//! Filter health with the real daemon: its clock survives a restart (the
//! times are kept in the state store), and a filter whose matched lines
//! mostly carry no date is flagged in `status` and in the metrics.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{failures, ConfigDir, Daemon};
use common::netns::{eventually, exec, skip_unless_privileged, NetPair};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn the_health_clock_and_last_match_survive_a_restart() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwhclock";
    // No bans: the test is about the filter's clock.
    let cfg = ConfigDir::app(table, "  maxretry: 100\n  health: {after: 5s}\n");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.60", 1));
    assert!(
        eventually(Duration::from_secs(10), || cfg.status("app")["last_match"]
            .as_i64()
            .is_some()),
        "{}\n{}",
        cfg.status("app"),
        daemon.stderr()
    );
    let before = cfg.status("app");
    let last_match = before["last_match"].as_i64().expect("last_match");
    assert_eq!(before["last_line"].as_i64(), Some(last_match));
    assert!(before["health"].is_null(), "{before}");
    assert!(daemon.stop().success());

    // Silent since that line for longer than `after`; then a restart.
    assert!(eventually(Duration::from_secs(30), || unix_now() > last_match + 6));
    let started = Instant::now();
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let after = cfg.status("app");
    assert_eq!(
        after["last_match"].as_i64(),
        Some(last_match),
        "{after}\n{}",
        daemon.stderr()
    );
    assert_eq!(after["last_line"].as_i64(), Some(last_match));
    // A clock started afresh could flag the silence no sooner than 5 s
    // after the daemon started; the kept one flags it at the first check.
    assert!(
        eventually(Duration::from_secs(20), || cfg
            .status("app")
            .to_string()
            .contains("no line from its sources for 5s")),
        "{}\n{}",
        cfg.status("app"),
        daemon.stderr()
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "flagged {took:?} after the restart: the clock started afresh\n{}",
        daemon.stderr()
    );
    // The human status shows the times too.
    let text = String::from_utf8_lossy(&cfg.cli(&["status", "app"]).stdout).into_owned();
    assert!(
        text.contains("last line: ") && text.contains("; last match: "),
        "{text}"
    );
}

const FETCH: &str = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9179/metrics').read().decode())";

#[test]
fn mostly_undated_matches_are_flagged_in_status_and_metrics() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwundated";
    let cfg = ConfigDir::app(table, "  maxretry: 100\n  health: {after: 1h}\n");
    let global = std::fs::read_to_string(cfg.path().join("banwarden.yaml")).expect("global");
    cfg.write(
        "banwarden.yaml",
        &format!("{global}metrics_listen: 127.0.0.1:9179\n"),
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let metrics =
        || String::from_utf8_lossy(&exec(&pair.srv, &["python3", "-c", FETCH]).stdout).into_owned();
    let series = "banwarden_jail_unhealthy{jail=\"app\",problem=\"undated\"}";
    assert!(
        eventually(Duration::from_secs(10), || metrics()
            .contains(&format!("{series} 0"))),
        "{}",
        metrics()
    );
    // The test filter's lines carry no date at all: fewer than ten matches
    // are too few to judge, twelve are enough.
    let lines: String = (1..=12)
        .map(|i| failures(&format!("198.51.100.{i}"), 1))
        .collect();
    cfg.append("app.log", &lines);
    let undated = "most matched lines carry no date the filter can read";
    assert!(
        eventually(Duration::from_secs(15), || cfg
            .status("app")
            .to_string()
            .contains(undated)),
        "{}\n{}",
        cfg.status("app"),
        daemon.stderr()
    );
    assert!(
        eventually(Duration::from_secs(10), || metrics()
            .contains(&format!("{series} 1"))),
        "{}",
        metrics()
    );
    let text = String::from_utf8_lossy(&cfg.cli(&["status", "app"]).stdout).into_owned();
    assert!(text.contains(&format!("warning: {undated}")), "{text}");
    let log = daemon.stderr();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("jail unhealthy") && l.contains("undated"))
            .count(),
        1,
        "logged once:\n{log}"
    );
}
