//! HTTPS webhooks end to end: the real daemon in a network namespace posts
//! its batches over TLS to a real rustls server on the namespace's loopback,
//! whose certificate comes from a CA made for the test. A webhook that
//! trusts the CA (`ca_file:`) gets the documented JSON; one that does not is
//! refused by its own TLS check, which is logged once with a hint, counted,
//! and holds up no ban.

mod common;

use std::time::Duration;

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::http::{HttpServer, Reply};
use common::netns::{eventually, exec, skip_unless_privileged, NetPair};
use common::tls::TlsFiles;

const FETCH: &str = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9179/metrics').read().decode())";

fn metrics(pair: &NetPair) -> String {
    String::from_utf8_lossy(&exec(&pair.srv, &["python3", "-c", FETCH]).stdout).into_owned()
}

#[test]
fn a_ban_is_posted_over_tls_to_a_trusted_endpoint_and_an_untrusted_one_fails_cleanly() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwtls";
    let cfg = ConfigDir::app(table, "");
    let tls = TlsFiles::new(cfg.path());
    let server = HttpServer::start_tls_in(&pair.srv, Reply::Statuses(vec![200]), &tls);
    let global = std::fs::read_to_string(cfg.path().join("banwarden.yaml")).expect("global");
    cfg.write(
        "banwarden.yaml",
        &format!("{global}metrics_listen: 127.0.0.1:9179\n"),
    );
    cfg.write(
        "jails/app.yaml",
        &format!(
            "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  maxretry: 2\n  bantime: 1h\n  actions:\n    - name: trusted\n      webhook: {url}\n      ca_file: ca.pem\n      batch_wait: 10ms\n    - name: untrusted\n      webhook: {url}\n      batch_wait: 10ms\n      retries: 3\n",
            url = server.https_url(),
        ),
    );
    let check = cfg.cli(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    assert!(
        eventually(Duration::from_secs(10), || cfg
            .cli(&["status"])
            .status
            .success()),
        "{}",
        daemon.stderr()
    );
    cfg.append("app.log", &failures("198.51.100.77", 2));
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "app_v4",
            "198.51.100.77"
        )),
        "not banned:\n{}",
        daemon.stderr()
    );
    assert!(
        eventually(Duration::from_secs(15), || !server.requests().is_empty()),
        "no POST over TLS:\n{}",
        daemon.stderr()
    );
    let post = &server.requests()[0];
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body = post.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["action"], "trusted");
    let event = &body["events"][0];
    assert_eq!(event["event"], "ban");
    assert_eq!(event["jail"], "app");
    assert_eq!(event["address"], "198.51.100.77");
    assert_eq!(event["failures"], 2);
    assert_eq!(event["bantime"], 3600);
    assert_eq!(event["ban_count"], 1);
    assert!(event["banned_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(event["expires"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(event["lines"][1], "Login failure 198.51.100.77");

    // The untrusted webhook: refused by its own certificate check, logged
    // with what to do about it, counted, and not retried (it cannot succeed).
    let failed =
        "banwarden_action_calls_total{jail=\"app\",action=\"untrusted\",result=\"error\"} 1";
    let dropped = "banwarden_action_events_dropped_total{jail=\"app\",action=\"untrusted\"} 1";
    assert!(
        eventually(Duration::from_secs(15), || {
            let m = metrics(&pair);
            m.contains(failed) && m.contains(dropped)
        }),
        "{}\n{}",
        metrics(&pair),
        daemon.stderr()
    );
    let log = daemon.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("action failed") && l.contains("untrusted"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("certificate") && lines[0].contains("ca_file"),
        "{}",
        lines[0]
    );
    assert!(!log.contains("/hook"), "the URL's path reached the log");
    assert_eq!(
        server.requests().len(),
        1,
        "only the trusted call got through"
    );
    // A second ban is as prompt as the first: the failing action is no brake.
    cfg.append("app.log", &failures("198.51.100.78", 2));
    assert!(eventually(Duration::from_secs(5), || in_set(
        &pair.srv,
        table,
        "app_v4",
        "198.51.100.78"
    )));
    assert!(
        eventually(Duration::from_secs(15), || server.requests().len() == 2),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn a_ca_file_that_is_not_a_certificate_is_a_located_config_error() {
    let cfg = ConfigDir::app("bwtlschk", "");
    cfg.write("ca.pem", "not a certificate\n");
    cfg.write(
        "jails/app.yaml",
        "app:\n  enabled: true\n  filter: app\n  logpath: app.log\n  actions:\n    - webhook: https://hooks.example/x\n      ca_file: ca.pem\n    - webhook: http://hooks.example/y\n      ca_file: ca.pem\n",
    );
    let out = cfg.cli(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("app.yaml:7:16: app.actions[0].ca_file")
            && err.contains("holds no certificate"),
        "{err}"
    );
    assert!(
        err.contains("app.actions[1].ca_file: only an https:// webhook checks certificates"),
        "{err}"
    );
}
