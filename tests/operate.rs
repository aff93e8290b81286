//! Operating the daemon: the control socket and CLI, persistence across
//! restarts and crashes, escalation and IPv6 prefixes. Real binary, real nft,
//! inside a test network namespace.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::{failures, ConfigDir, Daemon};
use common::netns::{connects, eventually, exec, listen, skip_unless_privileged, NetPair};

const PORT: u16 = 8080;

fn config(table: &str, jail_extra: &str) -> ConfigDir {
    ConfigDir::app(
        table,
        &format!("  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  ports: [{PORT}]\n{jail_extra}"),
    )
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cli failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("json output")
}

/// Elements of a set with their seconds left (`None`: no timeout).
fn elements(pair: &NetPair, table: &str, set: &str) -> Vec<(String, Option<u64>)> {
    let out = exec(&pair.srv, &["nft", "-j", "list", "set", "inet", table, set]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut found = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        for e in item["set"]["elem"].as_array().into_iter().flatten() {
            let (val, left) = match &e["elem"] {
                serde_json::Value::Null => (e.clone(), None),
                el => (el["val"].clone(), el["expires"].as_u64()),
            };
            let text = match &val {
                serde_json::Value::String(s) => s.clone(),
                other if other["prefix"].is_object() => {
                    format!(
                        "{}/{}",
                        other["prefix"]["addr"].as_str().unwrap_or(""),
                        other["prefix"]["len"]
                    )
                }
                other => other.to_string(),
            };
            found.push((text, left));
        }
    }
    found
}

#[test]
fn ban_unban_status_and_reload_through_the_socket() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwctl";
    let cfg = config(table, "");
    let mut daemon = Daemon::start(&pair.srv, &cfg, table);

    let status = json(&cfg.cli(&["status", "--json"]));
    assert_eq!(status["jails"][0]["name"], "app", "{status}");
    assert!(
        status["files"].as_array().is_some_and(|f| !f.is_empty()),
        "watched files missing: {status}"
    );

    ok(&cfg.cli(&["ban", "app", "192.0.2.10", "--for", "5m"]));
    ok(&cfg.cli(&["ban", "app", "192.0.2.11"]));
    let bans = json(&cfg.cli(&["bans", "--json"]));
    assert_eq!(bans["bans"].as_array().map(Vec::len), Some(2), "{bans}");
    assert!(eventually(Duration::from_secs(2), || elements(
        &pair, table, "app_v4"
    )
    .len()
        == 2));
    let left = elements(&pair, table, "app_v4")
        .into_iter()
        .find(|(a, _)| a == "192.0.2.10")
        .and_then(|(_, l)| l);
    assert!(
        left.is_some_and(|l| l <= 300 && l > 280),
        "--for 5m gave {left:?}"
    );

    let jail = json(&cfg.cli(&["status", "app", "--json"]));
    assert_eq!(jail["maxretry"], 3);
    assert_eq!(jail["bans"].as_array().map(Vec::len), Some(2));
    let human = ok(&cfg.cli(&["status", "app"]));
    assert!(human.contains("192.0.2.10"), "{human}");

    ok(&cfg.cli(&["unban", "192.0.2.10"]));
    assert!(eventually(Duration::from_secs(2), || elements(
        &pair, table, "app_v4"
    )
    .len()
        == 1));
    ok(&cfg.cli(&["unban", "--all"]));
    assert!(eventually(Duration::from_secs(2), || elements(
        &pair, table, "app_v4"
    )
    .is_empty()));

    // A broken config is reported to the caller; the running one stays.
    cfg.write("jails/app.local.yaml", "app:\n  maxretry: lots\n");
    let out = cfg.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app.local.yaml:2:13") && err.contains("unchanged"),
        "{err}"
    );
    cfg.append("app.log", &failures("198.51.100.9", 3));
    assert!(
        eventually(Duration::from_secs(2), || elements(&pair, table, "app_v4")
            .len()
            == 1),
        "{}",
        daemon.stderr()
    );

    // ignore lifts the ban and keeps the address from being banned again.
    ok(&cfg.cli(&["ignore", "198.51.100.9"]));
    assert!(eventually(Duration::from_secs(2), || elements(
        &pair, table, "app_v4"
    )
    .is_empty()));
    // Lines are handled in order: once a later offender is banned, the
    // ignored address's failures have been read too.
    cfg.append(
        "app.log",
        &(failures("198.51.100.9", 3) + &failures("198.51.100.77", 3)),
    );
    assert!(
        eventually(Duration::from_secs(5), || elements(&pair, table, "app_v4")
            .iter()
            .any(|(a, _)| a == "198.51.100.77")),
        "{}",
        daemon.stderr()
    );
    let els = elements(&pair, table, "app_v4");
    assert_eq!(els.len(), 1, "the ignored address was banned: {els:?}");
    daemon.assert_alive();
}

/// `ban`, `unban` and `ignore` answer once nft has applied the change: the
/// element is there (or gone) the moment the command returns, every time.
#[test]
fn control_commands_return_when_the_kernel_has_the_change() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwsync";
    let cfg = config(table, "");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let has = |addr: &str| {
        elements(&pair, table, "app_v4")
            .iter()
            .any(|(a, _)| a == addr)
    };
    for round in 0..80 {
        let addr = format!("192.0.2.{}", round % 200 + 1);
        ok(&cfg.cli(&["ban", "app", &addr]));
        assert!(
            has(&addr),
            "round {round}: `ban` returned before nft had {addr}"
        );
        ok(&cfg.cli(&["unban", &addr]));
        assert!(
            !has(&addr),
            "round {round}: `unban` returned with {addr} still in the set\n{}",
            daemon.stderr()
        );
    }
    for round in 0..10 {
        let addr = format!("198.51.100.{}", round + 1);
        ok(&cfg.cli(&["ban", "app", &addr]));
        ok(&cfg.cli(&["ignore", &addr, "--for", "1h"]));
        assert!(
            !has(&addr),
            "round {round}: `ignore` returned with {addr} banned"
        );
    }
    // reload re-runs the setup with the current bans before it answers.
    ok(&cfg.cli(&["ban", "app", "203.0.113.9"]));
    pair.srv_nft(&["delete", "table", "inet", table]);
    ok(&cfg.cli(&["reload"]));
    assert!(
        has("203.0.113.9"),
        "`reload` returned before the table was rebuilt"
    );
}

#[test]
fn an_unprivileged_client_is_refused() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwperm";
    let cfg = config(table, "");
    // Let `nobody` reach the socket directory and the binary.
    let _ = Command::new("chmod")
        .args(["0755"])
        .arg(cfg.path())
        .status();
    let _daemon = Daemon::start(&pair.srv, &cfg, table);
    let _ = Command::new("chmod")
        .args(["0755"])
        .arg(cfg.path().join("run"))
        .status();
    let out = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_banwarden"),
            "ban",
            "app",
            "192.0.2.1",
            "--socket",
        ])
        .arg(cfg.socket())
        .output()
        .expect("runuser");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    assert!(elements(&pair, table, "app_v4").is_empty());
}

#[test]
fn client_says_plainly_when_the_daemon_is_not_running() {
    let cfg = ConfigDir::new("bwnone");
    let out = cfg.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("banwarden is not running"), "{err}");
}

#[test]
fn restart_restores_bans_with_their_remaining_time() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwrestore";
    let cfg = config(table, "");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.20", 3));
    assert!(
        eventually(Duration::from_secs(2), || elements(&pair, table, "app_v4")
            .len()
            == 1),
        "{}",
        daemon.stderr()
    );
    let bans = json(&cfg.cli(&["bans", "--json"]));
    let expires = bans["bans"][0]["expires"].as_i64().expect("an expiry");
    assert!(daemon.stop().success());
    // Wipe the kernel state: what comes back comes from the store.
    pair.srv_nft(&["delete", "table", "inet", table]);
    // The daemon stays down until the clock shows 2 s off the ban's time.
    assert!(eventually(Duration::from_secs(10), || banwarden::now()
        >= expires - 600 + 2));
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let now = banwarden::now();
    let els = elements(&pair, table, "app_v4");
    assert_eq!(els.len(), 1, "{els:?}\n{}", daemon.stderr());
    let left = els[0].1.unwrap_or(0) as i64;
    assert!(
        (expires - now - 2..=expires - now).contains(&left) && left <= 598,
        "remaining time {left} s, expected the ban's own {} s left",
        expires - now
    );

    // Lines written while the daemon was down are read, and none twice.
    assert!(daemon.stop().success());
    cfg.append("app.log", &failures("198.51.100.21", 2));
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &failures("198.51.100.21", 1));
    assert!(
        eventually(Duration::from_secs(2), || elements(&pair, table, "app_v4")
            .iter()
            .any(|(a, _)| a == "198.51.100.21")),
        "failures written while down were not counted:\n{}",
        daemon.stderr()
    );
    let jail = json(&cfg.cli(&["status", "app", "--json"]));
    assert_eq!(
        jail["counters"]["failures"], 3,
        "lines counted twice or lost: {jail}"
    );
}

#[test]
fn kill_9_during_a_burst_loses_no_ban_that_nft_had() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwkill";
    let cfg = config(table, "");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let burst: String = (0..3000)
        .map(|i| failures(&format!("198.19.{}.{}", i / 250, i % 250 + 1), 3))
        .collect();
    cfg.append("app.log", &burst);
    assert!(eventually(Duration::from_secs(10), || !elements(
        &pair, table, "app_v4"
    )
    .is_empty()));
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    drop(daemon);
    let had: Vec<String> = elements(&pair, table, "app_v4")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(!had.is_empty());
    pair.srv_nft(&["delete", "table", "inet", table]);
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(10), || {
            let now: Vec<String> = elements(&pair, table, "app_v4")
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            had.iter().all(|a| now.contains(a))
        }),
        "bans nft had before kill -9 are missing after restart ({} had)\n{}",
        had.len(),
        daemon.stderr()
    );
    // The rest of the burst is read on restart: every address ends up banned.
    assert!(
        eventually(Duration::from_secs(20), || elements(&pair, table, "app_v4")
            .len()
            == 3000),
        "{} of 3000 banned",
        elements(&pair, table, "app_v4").len()
    );
}

#[test]
fn escalation_doubles_the_ban() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwesc";
    let cfg = config(
        table,
        "  bantime_increment:\n    factor: 2\n    maxtime: 1h\n",
    );
    cfg.write(
        "jails/app.local.yaml",
        "app:\n  maxretry: 1\n  bantime: 2s\n",
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let mut lengths = Vec::new();
    for round in 0..3 {
        cfg.append("app.log", &failures("198.51.100.30", 1));
        assert!(
            eventually(Duration::from_secs(2), || !elements(&pair, table, "app_v4")
                .is_empty()),
            "round {round}\n{}",
            daemon.stderr()
        );
        let bans = json(&cfg.cli(&["bans", "--json"]));
        let b = &bans["bans"][0];
        lengths.push(b["expires"].as_i64().unwrap_or(0) - b["banned_at"].as_i64().unwrap_or(0));
        assert_eq!(b["count"], round + 1, "{bans}");
        assert!(eventually(Duration::from_secs(10), || elements(
            &pair, table, "app_v4"
        )
        .is_empty()));
        // The next round's failure must find the ban over in the daemon too.
        assert!(eventually(Duration::from_secs(5), || json(
            &cfg.cli(&["bans", "--json"])
        )["bans"]
            .as_array()
            .is_some_and(Vec::is_empty)));
    }
    assert_eq!(lengths, vec![2, 4, 8]);
}

#[test]
fn an_ipv6_64_is_banned_as_one_element() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwv6";
    let cfg = config(table, "");
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    let _listener = listen(&pair.srv, "::", PORT);
    let t = Duration::from_secs(1);
    assert!(connects(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, t));
    // Three addresses of one /64: one offender.
    let text = failures(&pair.atk_v6, 2) + &failures(&pair.atk_v6.replace("::2", "::99"), 1);
    cfg.append("app.log", &text);
    let bans = || json(&cfg.cli(&["bans", "--json"]));
    assert!(
        eventually(Duration::from_secs(2), || bans()["bans"]
            .as_array()
            .is_some_and(|b| b.len() == 1)),
        "{}",
        daemon.stderr()
    );
    let prefix = pair.atk_v6.replace("::2", "::/64");
    assert_eq!(bans()["bans"][0]["addr"], prefix);
    // The whole /64 is blocked, including an address that never failed.
    assert!(!connects(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, t));
}

#[test]
fn metrics_endpoint_serves_the_documented_series() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwmet";
    let cfg = config(table, "");
    let yaml = std::fs::read_to_string(cfg.path().join("banwarden.yaml")).expect("global config");
    cfg.write(
        "banwarden.yaml",
        &format!("{yaml}metrics_listen: 127.0.0.1:9179\n"),
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    cfg.append("app.log", &(failures("198.51.100.40", 3) + "noise\n"));
    assert!(
        eventually(Duration::from_secs(2), || elements(&pair, table, "app_v4")
            .len()
            == 1),
        "{}",
        daemon.stderr()
    );
    ok(&cfg.cli(&["unban", "198.51.100.40"]));
    const FETCH: &str = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9179/metrics').read().decode())";
    let mut body = String::new();
    let complete = eventually(Duration::from_secs(4), || {
        body = String::from_utf8_lossy(&exec(&pair.srv, &["python3", "-c", FETCH]).stdout)
            .into_owned();
        WANT.iter().all(|want| body.contains(want))
    });
    assert!(complete, "{body}");
    const WANT: [&str; 10] = [
        "banwarden_unbans_total{jail=\"app\",cause=\"manual\"} 1",
        "banwarden_lines_read_total{jail=\"app\",filter=\"app\"} 4",
        "banwarden_lines_matched_total{jail=\"app\",filter=\"app\"} 3",
        "banwarden_failures_total{jail=\"app\"} 3",
        "banwarden_bans_total{jail=\"app\"} 1",
        "banwarden_active_bans{jail=\"app\"} 0",
        "banwarden_nft_transactions_total{result=\"ok\"}",
        "banwarden_nft_transaction_seconds_bucket",
        "banwarden_source_errors_total",
        "banwarden_source_rotations_total",
    ];
    for want in WANT {
        assert!(body.contains(want), "missing {want} in\n{body}");
    }
    assert!(
        !body.contains("198.51.100.40"),
        "an address leaked into a label"
    );
}
