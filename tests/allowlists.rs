//! `trusted_proxies` and `ignoreip: [file:...]` with the real binary: `check`
//! points at bad lines of list files; the daemon (in a test network
//! namespace, real nft) never bans a trusted proxy, warns about the jail
//! that captures it, refuses a manual ban of it, and re-reads an allow-list
//! file when it changes (keeping the old list when the new one is bad).

mod common;

use std::process::Output;
use std::time::Duration;

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::netns::{eventually, skip_unless_privileged, NetPair};

const WAIT: Duration = Duration::from_secs(10);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn banned(pair: &NetPair, table: &str, addr: &str) -> bool {
    in_set(&pair.srv, table, "app_v4", addr)
}

#[test]
fn check_reports_bad_lines_of_list_files_with_file_and_line() {
    let cfg = ConfigDir::app("bwchk", "  ignoreip: [192.0.2.1, file:allow.txt]\n");
    cfg.append(
        "banwarden.yaml",
        "trusted_proxies: [file:/nonexistent/proxies.txt]\n",
    );
    cfg.write(
        "allow.txt",
        "# office\n198.51.100.0/24\nexample.com   # a name\n\n10.0.0.300\n",
    );
    let out = cfg.cli(&["check"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let allow = cfg.path().join("allow.txt");
    for want in [
        format!(
            "{}:3:1: app.ignoreip[1]: `example.com` is not an IP address",
            allow.display()
        ),
        format!("{}:5:1: app.ignoreip[1]: `10.0.0.300`", allow.display()),
        "trusted_proxies[0]: cannot read /nonexistent/proxies.txt".to_string(),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    cfg.write("allow.txt", "# office\n198.51.100.0/24\n");
    cfg.write(
        "banwarden.yaml",
        &std::fs::read_to_string(cfg.path().join("banwarden.yaml"))
            .unwrap()
            .replace("/nonexistent/proxies.txt", "allow.txt"),
    );
    let out = cfg.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_trusted_proxy_is_never_banned_and_its_capture_is_reported() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwproxy";
    let cfg = ConfigDir::app(table, "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n");
    cfg.append(
        "banwarden.yaml",
        "trusted_proxies: [203.0.113.0/24, file:proxies.txt]\n",
    );
    cfg.write(
        "proxies.txt",
        &format!("# the load balancer\n{}\n", pair.atk_v4),
    );
    let mut daemon = Daemon::start(&pair.srv, &cfg, table);
    // The proxy's address five times (a filter reading the wrong field),
    // then a real offender: once it is banned, the proxy's lines were handled.
    cfg.append(
        "app.log",
        &(failures(&pair.atk_v4, 5) + &failures(&pair.atk2_v4, 3)),
    );
    assert!(
        eventually(WAIT, || banned(&pair, table, &pair.atk2_v4)),
        "the offender was not banned:\n{}",
        daemon.stderr()
    );
    assert!(
        !banned(&pair, table, &pair.atk_v4),
        "the trusted proxy was banned"
    );
    let log = daemon.stderr();
    assert_eq!(
        log.matches("this jail is capturing your proxy's address")
            .count(),
        1,
        "warned not exactly once:\n{log}"
    );
    let status = stdout(&cfg.cli(&["status"]));
    assert!(
        status.contains("WARNING: jail app: this jail is capturing your proxy's address"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&cfg.cli(&["status", "app", "--json"]).stdout).expect("json");
    assert!(
        json["proxy_warning"]
            .as_str()
            .is_some_and(|w| w.contains(&pair.atk_v4)),
        "{json}"
    );
    // A manual ban of a trusted proxy is refused, with the reason.
    let out = cfg.cli(&["ban", "app", "203.0.113.9"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("trusted proxy"), "{}", stderr(&out));
    daemon.assert_alive();
}

#[test]
fn an_allow_list_file_is_reread_when_it_changes() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwallow";
    let cfg = ConfigDir::app(
        table,
        "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  ignoreip: [file:allow.txt]\n",
    );
    cfg.write("allow.txt", "# nobody yet\n");
    let mut daemon = Daemon::start(&pair.srv, &cfg, table);

    cfg.write("allow.txt", &format!("# the office\n{}/32\n", pair.atk_v4));
    assert!(
        eventually(WAIT, || daemon.stderr().contains("allow-list file re-read")),
        "the changed file was not re-read:\n{}",
        daemon.stderr()
    );
    cfg.append(
        "app.log",
        &(failures(&pair.atk_v4, 3) + &failures(&pair.atk2_v4, 3)),
    );
    assert!(
        eventually(WAIT, || banned(&pair, table, &pair.atk2_v4)),
        "{}",
        daemon.stderr()
    );
    assert!(
        !banned(&pair, table, &pair.atk_v4),
        "an allow-listed address was banned"
    );

    // A bad line: the old list stays, and the log says so.
    cfg.write("allow.txt", &format!("{}\nnot-an-address\n", pair.atk_v4));
    assert!(
        eventually(WAIT, || daemon
            .stderr()
            .contains("the previous list stays in force")),
        "{}",
        daemon.stderr()
    );
    assert!(
        daemon.stderr().contains("first at line 2"),
        "{}",
        daemon.stderr()
    );
    // Once a control offender's ban is in, the allow-listed lines were handled.
    cfg.append(
        "app.log",
        &(failures(&pair.atk_v4, 3) + &failures("192.0.2.50", 3)),
    );
    assert!(
        eventually(WAIT, || banned(&pair, table, "192.0.2.50")),
        "{}",
        daemon.stderr()
    );
    assert!(
        !banned(&pair, table, &pair.atk_v4),
        "the old list was dropped"
    );
    daemon.assert_alive();
}
