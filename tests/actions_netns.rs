//! Actions and filter health with the real daemon in a network namespace:
//! a real HTTP server on the namespace's loopback receives the webhooks,
//! bans are checked in the namespace's nft sets.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::http::{HttpServer, Reply};
use common::netns::{eventually, exec, skip_unless_privileged, NetPair};

/// Starts the daemon and waits until it answers `status`: its control
/// server starts after the sources, so lines appended from then on are read
/// (the socket alone accepts before the sources exist, and a file never seen
/// without dates starts at its end).
fn start(pair: &NetPair, cfg: &ConfigDir, table: &str) -> Daemon {
    let daemon = Daemon::start(&pair.srv, cfg, table);
    assert!(
        eventually(Duration::from_secs(10), || cfg
            .cli(&["status"])
            .status
            .success()),
        "{}",
        daemon.stderr()
    );
    daemon
}

fn jail(extra: &str) -> String {
    format!("  maxretry: 2\n  findtime: 10m\n  bantime: 3s\n{extra}")
}

#[test]
fn webhook_gets_bans_in_one_batch_with_a_token_and_then_the_unbans() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwact";
    let server = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let cfg = ConfigDir::app(table, "");
    cfg.write("token", "tok-42\n");
    with_metrics(&cfg);
    cfg.write(
        "jails/app.yaml",
        &format!(
            "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n{}",
            jail(&format!(
                "  actions:\n    - webhook: {}\n      headers:\n        Authorization: {{file: {}, prefix: 'Bearer '}}\n      batch_wait: 1s\n",
                server.url(),
                cfg.path().join("token").display()
            ))
        ),
    );
    let daemon = start(&pair, &cfg, table);
    cfg.append(
        "app.log",
        &(failures("198.51.100.1", 2) + &failures("198.51.100.2", 2)),
    );
    let got_bans = eventually(Duration::from_secs(10), || !server.requests().is_empty());
    assert!(got_bans, "no webhook call:\n{}", daemon.stderr());
    let first = &server.requests()[0];
    assert_eq!(first.header("authorization"), Some("Bearer tok-42"));
    let events = first.json()["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let addrs: Vec<&str> = events
        .iter()
        .filter_map(|e| e["address"].as_str())
        .collect();
    assert_eq!(
        addrs,
        ["198.51.100.1", "198.51.100.2"],
        "two bans, one call"
    );
    assert_eq!(events[0]["event"], "ban");
    assert_eq!(events[0]["jail"], "app");
    assert_eq!(events[0]["failures"], 2);
    assert_eq!(events[0]["bantime"], 3);
    assert_eq!(
        events[0]["lines"],
        serde_json::json!(["Login failure 198.51.100.1", "Login failure 198.51.100.1"])
    );
    assert_eq!(events[1]["lines"][1], "Login failure 198.51.100.2");
    // The bans expire after 3 s: the unbans follow, cause expiry.
    let unbans = eventually(Duration::from_secs(20), || {
        server
            .requests()
            .iter()
            .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["event"] == "unban" && e["cause"] == "expiry")
            .count()
            == 2
    });
    assert!(unbans, "{:?}\n{}", server.requests(), daemon.stderr());
    assert!(
        !daemon.stderr().contains("tok-42"),
        "the token reached the log"
    );
    let want = "banwarden_action_calls_total{jail=\"app\",action=\"webhook-0\",result=\"ok\"}";
    assert!(
        eventually(Duration::from_secs(5), || metrics(&pair).contains(want)),
        "{}",
        metrics(&pair)
    );
}

/// `maxmatches` caps the failure lines a ban event carries: the last ones.
#[test]
fn maxmatches_caps_the_lines_of_a_ban_event() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwactmm";
    let server = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let cfg = ConfigDir::app(table, "");
    cfg.write(
        "jails/app.yaml",
        &format!(
            "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  maxretry: 3\n  maxmatches: 1\n  actions:\n    - webhook: {}\n      batch_wait: 10ms\n      on: [ban]\n",
            server.url()
        ),
    );
    let daemon = start(&pair, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.9", 3));
    assert!(
        eventually(Duration::from_secs(10), || !server.requests().is_empty()),
        "no webhook call:\n{}",
        daemon.stderr()
    );
    let event = &server.requests()[0].json()["events"][0];
    assert_eq!(event["failures"], 3, "{event}");
    assert_eq!(
        event["lines"],
        serde_json::json!(["Login failure 198.51.100.9"]),
        "three failures, maxmatches 1: one line"
    );
}

const FETCH: &str = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9179/metrics').read().decode())";

fn metrics(pair: &NetPair) -> String {
    String::from_utf8_lossy(&exec(&pair.srv, &["python3", "-c", FETCH]).stdout).into_owned()
}

fn with_metrics(cfg: &ConfigDir) {
    let yaml = std::fs::read_to_string(cfg.path().join("banwarden.yaml")).expect("global");
    cfg.write(
        "banwarden.yaml",
        &format!("{yaml}metrics_listen: 127.0.0.1:9179\n"),
    );
}

#[test]
fn a_reload_points_actions_at_a_new_endpoint_and_a_bad_one_is_rejected() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwactrl";
    let old = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let new = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let jail_with = |url: &str| {
        format!(
            "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n{}",
            jail(&format!(
                "  actions:\n    - webhook: {url}\n      batch_wait: 10ms\n      on: [ban]\n"
            ))
        )
    };
    let cfg = ConfigDir::app(table, "");
    cfg.write("jails/app.yaml", &jail_with(&old.url()));
    let daemon = start(&pair, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.30", 2));
    assert!(
        eventually(Duration::from_secs(10), || old.requests().len() == 1),
        "{}",
        daemon.stderr()
    );
    // A bad action is refused with its location; the old one keeps running.
    cfg.write("jails/app.yaml", &jail_with("ftp://nowhere"));
    let out = cfg.cli(&["reload"]);
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && err.contains("app.yaml:9:16: app.actions[0].webhook"),
        "{err}"
    );
    cfg.write("jails/app.yaml", &jail_with(&new.url()));
    let out = cfg.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cfg.append("app.log", &failures("198.51.100.31", 2));
    assert!(
        eventually(Duration::from_secs(10), || new.requests().len() == 1),
        "{}",
        daemon.stderr()
    );
    assert_eq!(
        new.requests()[0].json()["events"][0]["address"],
        "198.51.100.31"
    );
    assert_eq!(old.requests().len(), 1);
}

#[test]
fn bans_land_in_nft_promptly_while_the_webhook_hangs() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwhang";
    let server = HttpServer::start_in(&pair.srv, Reply::Hang);
    let cfg = ConfigDir::app(
        table,
        &jail(&format!(
            "  actions:\n    - webhook: {}\n      timeout: 60s\n      batch_wait: 10ms\n      min_interval: 0s\n",
            server.url()
        )),
    );
    let daemon = start(&pair, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.10", 2));
    assert!(
        eventually(Duration::from_secs(5), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.10"
        )),
        "{}",
        daemon.stderr()
    );
    // The endpoint now holds a call open without answering.
    assert!(
        eventually(Duration::from_secs(10), || server.requests().len() == 1),
        "the webhook was not called:\n{}",
        daemon.stderr()
    );
    // Later bans are not held up by it.
    let start = Instant::now();
    cfg.append("app.log", &failures("198.51.100.11", 2));
    assert!(
        eventually(Duration::from_secs(5), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.11"
        )),
        "ban delayed by a hung webhook:\n{}",
        daemon.stderr()
    );
    println!("ban with a hung webhook took {:?}", start.elapsed());
    assert_eq!(server.requests().len(), 1, "one call in flight at a time");
    // SIGTERM is not held up by the hung call either (its timeout is 60 s).
    let start = Instant::now();
    assert!(daemon.stop().success());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_silent_or_unmatched_source_is_flagged_in_status_log_and_metrics() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwhealth";
    let cfg = ConfigDir::app(table, "  health: {after: 2s}\n");
    with_metrics(&cfg);
    let daemon = start(&pair, &cfg, table);
    let status = || cfg.status("app");
    let health = |want: &str| {
        let s = status();
        let text = s.to_string();
        text.contains(want)
    };
    assert!(
        eventually(Duration::from_secs(15), || health(
            "no line from its sources for 2s"
        )),
        "{}\n{}",
        status(),
        daemon.stderr()
    );
    let metric = |want: &str| metrics(&pair).contains(want);
    assert!(eventually(Duration::from_secs(5), || metric(
        "banwarden_jail_unhealthy{jail=\"app\",problem=\"no_lines\"} 1"
    )));
    // Lines that never match, kept coming: flagged as the filter's fault.
    let end = Instant::now() + Duration::from_secs(20);
    let mut flagged = false;
    while Instant::now() < end && !flagged {
        cfg.append(
            "app.log",
            "sshd-session[1]: Failed password for root from 1.2.3.4\n",
        );
        flagged = eventually(Duration::from_millis(300), || {
            health("lines keep coming but the filter matched none for 2s")
        });
    }
    assert!(flagged, "{}\n{}", status(), daemon.stderr());
    assert!(!health("no line from its sources"), "{}", status());
    // A match clears it.
    cfg.append("app.log", &failures("198.51.100.20", 1));
    assert!(
        eventually(Duration::from_secs(10), || status()["health"].is_null()),
        "{}",
        status()
    );
    let log = daemon.stderr();
    let flagged = |p: &str| {
        log.lines()
            .filter(|l| l.contains("jail unhealthy") && l.contains(p))
            .count()
    };
    assert_eq!(flagged("no_matches"), 1, "logged once:\n{log}");
    assert!(flagged("no_lines") >= 1, "{log}");
    assert!(log.contains("jail healthy again"), "{log}");
}

#[test]
fn the_shipped_abuseipdb_action_reports_an_address_once_across_restarts() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwabuse";
    let api = HttpServer::start_in(&pair.srv, Reply::Statuses(vec![200]));
    let cfg = ConfigDir::app(table, "");
    cfg.write("abuseipdb.key", "k-9\n");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/abuseipdb/banwarden-abuseipdb"
    );
    cfg.write(
        "jails/app.yaml",
        &format!(
            "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n{}",
            jail(&format!(
                "  actions:\n    - name: abuseipdb\n      exec: [{script}, --key-file, {key}, --state, {state}, --endpoint, {url}]\n      on: [ban]\n      batch_wait: 10ms\n",
                key = cfg.path().join("abuseipdb.key").display(),
                state = cfg.path().join("abuseipdb.json").display(),
                url = api.url(),
            ))
        ),
    );
    let reported = || -> Vec<String> {
        api.requests()
            .iter()
            .filter(|r| r.header("key") == Some("k-9"))
            .filter_map(|r| {
                r.body
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ip="))
                    .map(String::from)
            })
            .collect()
    };
    let daemon = start(&pair, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.50", 2));
    assert!(
        eventually(Duration::from_secs(15), || reported() == ["198.51.100.50"]),
        "{:?}\n{}",
        api.requests(),
        daemon.stderr()
    );
    // The 3 s ban expires; banwarden restarts; the address fails again.
    assert!(eventually(Duration::from_secs(15), || !in_set(
        &pair.srv,
        table,
        "app_v4",
        "198.51.100.50"
    )));
    daemon.stop();
    let daemon = start(&pair, &cfg, table);
    cfg.append(
        "app.log",
        &(failures("198.51.100.50", 2) + &failures("198.51.100.51", 2)),
    );
    assert!(
        eventually(Duration::from_secs(15), || reported().len() == 2),
        "{:?}\n{}",
        api.requests(),
        daemon.stderr()
    );
    let log = daemon.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("198.51.100.50") && l.contains("failures")),
        "not banned again:\n{log}"
    );
    assert_eq!(
        reported(),
        ["198.51.100.50", "198.51.100.51"],
        "reported again after a restart"
    );
}
