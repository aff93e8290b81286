//! A reload that removes a jail lifts its bans: its sets go from the
//! kernel, its bans from `bans` and from the state store (a restart does not
//! bring them back), and its actions get the unban events (cause `reload`)
//! before they stop. Real daemon in a network namespace, real HTTP server.

mod common;

use std::time::Duration;

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::http::{HttpServer, Reply};
use common::netns::{eventually, exec, skip_unless_privileged, NetPair};

fn app_jail(url: &str) -> String {
    format!(
        "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  maxretry: 2\n  bantime: 1h\n  actions:\n    - webhook: {url}\n      batch_wait: 10ms\n      min_interval: 0s\n"
    )
}

#[test]
fn removing_a_jail_lifts_its_bans_and_tells_its_actions() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwrmjail";
    let server = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let cfg = ConfigDir::app(table, "");
    cfg.write("jails/app.yaml", &app_jail(&server.url()));
    cfg.write(
        "jails/other.yaml",
        "other:\n  enabled: true\n  filter: app\n  logpath: other.log\n  maxretry: 2\n  bantime: 1h\n",
    );
    cfg.write("other.log", "");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.90", 2));
    cfg.append("other.log", &failures("198.51.100.91", 2));
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.90"
        ) && in_set(
            &pair.srv,
            table,
            "other_v4",
            "198.51.100.91"
        )),
        "{}",
        daemon.stderr()
    );
    let events = || -> Vec<serde_json::Value> {
        server
            .requests()
            .iter()
            .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || events().len() == 1),
        "{:?}\n{}",
        events(),
        daemon.stderr()
    );

    std::fs::remove_file(cfg.path().join("jails/app.yaml")).expect("remove the jail");
    let out = cfg.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(10), || events().len() == 2),
        "{:?}\n{}",
        events(),
        daemon.stderr()
    );
    let unban = &events()[1];
    assert_eq!(unban["event"], "unban");
    assert_eq!(unban["jail"], "app");
    assert_eq!(unban["address"], "198.51.100.90");
    assert_eq!(unban["cause"], "reload");
    let bans = String::from_utf8_lossy(&cfg.cli(&["bans", "--json"]).stdout).into_owned();
    assert!(!bans.contains("198.51.100.90"), "{bans}");
    assert!(
        bans.contains("198.51.100.91"),
        "the other jail keeps its bans: {bans}"
    );
    let sets = exec(&pair.srv, &["nft", "list", "sets", "inet"]);
    assert!(!String::from_utf8_lossy(&sets.stdout).contains("app_v4"));
    assert!(in_set(&pair.srv, table, "other_v4", "198.51.100.91"));
    assert!(
        daemon
            .stderr()
            .lines()
            .any(|l| l.contains("its bans are lifted") && l.contains("app")),
        "{}",
        daemon.stderr()
    );

    // The jail comes back after a restart: its old ban does not.
    assert!(daemon.stop().success());
    cfg.write("jails/app.yaml", &app_jail(&server.url()));
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        !in_set(&pair.srv, table, "app_v4", "198.51.100.90"),
        "{}",
        daemon.stderr()
    );
    assert!(in_set(&pair.srv, table, "other_v4", "198.51.100.91"));
    let bans = String::from_utf8_lossy(&cfg.cli(&["bans", "--json"]).stdout).into_owned();
    assert!(!bans.contains("198.51.100.90"), "{bans}");
}

#[test]
fn removing_an_action_keeps_the_bans_and_stops_its_events() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwrmact";
    let kept = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let gone = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let cfg = ConfigDir::app(table, "");
    let action = |url: &str| {
        format!("    - webhook: {url}\n      batch_wait: 10ms\n      min_interval: 0s\n")
    };
    let jail = |actions: &str| {
        format!("app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  maxretry: 2\n  bantime: 1h\n  actions:\n{actions}")
    };
    cfg.write(
        "jails/app.yaml",
        &jail(&(action(&kept.url()) + &action(&gone.url()))),
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.95", 2));
    assert!(
        eventually(Duration::from_secs(10), || kept.requests().len() == 1
            && gone.requests().len() == 1),
        "{}",
        daemon.stderr()
    );
    cfg.write("jails/app.yaml", &jail(&action(&kept.url())));
    assert!(cfg.cli(&["reload"]).status.success());
    cfg.append("app.log", &failures("198.51.100.96", 2));
    assert!(
        eventually(Duration::from_secs(10), || kept.requests().len() == 2),
        "{}",
        daemon.stderr()
    );
    assert!(
        in_set(&pair.srv, table, "app_v4", "198.51.100.95"),
        "the ban stays"
    );
    assert!(in_set(&pair.srv, table, "app_v4", "198.51.100.96"));
    assert_eq!(
        gone.requests().len(),
        1,
        "the removed action gets nothing more"
    );
    let events = kept.requests()[1].json()["events"].clone();
    assert_eq!(events[0]["address"], "198.51.100.96");
    assert_eq!(events[0]["event"], "ban");
}
