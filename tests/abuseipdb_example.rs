//! The shipped AbuseIPDB action (contrib/abuseipdb) against a real HTTP
//! server on loopback standing in for the API: it reports each banned
//! address once, also across restarts, and backs off on HTTP 429.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::http::{HttpServer, Reply};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/abuseipdb/banwarden-abuseipdb"
);

fn batch(addrs: &[&str]) -> String {
    let events: Vec<serde_json::Value> = addrs
        .iter()
        .map(|a| serde_json::json!({"event": "ban", "jail": "sshd", "address": a, "failures": 5}))
        .collect();
    serde_json::json!({"version": 1, "action": "abuseipdb", "events": events}).to_string()
}

/// Runs the script as banwarden would; its exit code.
fn run(server: &HttpServer, dir: &std::path::Path, stdin: &str) -> i32 {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args(["--key-file"])
        .arg(dir.join("key"))
        .args(["--categories", "18,22", "--state"])
        .arg(dir.join("state.json"))
        .args(["--endpoint", &server.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 runs the script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write batch");
    child.wait().expect("wait").code().unwrap_or(-1)
}

fn reported(server: &HttpServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| url_ip(&r.body).filter(|_| r.header("key") == Some("k-1")))
        .collect()
}

fn url_ip(body: &str) -> Option<String> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix("ip="))
        .map(|v| v.replace("%3A", ":"))
}

#[test]
fn reports_each_address_once_even_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("key"), "k-1\n").expect("key");
    let server = HttpServer::start(Reply::Statuses(vec![200]));
    assert_eq!(
        run(&server, dir.path(), &batch(&["192.0.2.1", "2001:db8::1"])),
        0
    );
    assert_eq!(reported(&server), ["192.0.2.1", "2001:db8::1"]);
    assert!(server.requests()[0].body.contains("categories=18%2C22"));
    // A new process (as after a restart of banwarden) with the same bans.
    assert_eq!(
        run(&server, dir.path(), &batch(&["192.0.2.1", "192.0.2.2"])),
        0
    );
    assert_eq!(reported(&server), ["192.0.2.1", "2001:db8::1", "192.0.2.2"]);
}

#[test]
fn a_429_stops_reporting_until_the_api_allows_it_again() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("key"), "k-1\n").expect("key");
    let server = HttpServer::start(Reply::Statuses(vec![200, 429, 200]));
    // The second report hits the rate limit: exit 75, banwarden retries later.
    assert_eq!(
        run(
            &server,
            dir.path(),
            &batch(&["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        ),
        75
    );
    assert_eq!(server.requests().len(), 2);
    // Retried within Retry-After (120 s): no call at all.
    assert_eq!(
        run(
            &server,
            dir.path(),
            &batch(&["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        ),
        75
    );
    assert_eq!(
        server.requests().len(),
        2,
        "called the API while rate limited"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state.json")).expect("state"),
    )
    .expect("JSON state");
    assert!(state["reported"]["192.0.2.1"].is_i64(), "{state}");
    assert!(state["reported"]["192.0.2.2"].is_null(), "{state}");
    assert!(state["blocked_until"].as_i64().unwrap_or(0) > 0, "{state}");
}
