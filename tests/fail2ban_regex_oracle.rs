//! fail2ban-regex itself as the oracle: on a generated sshd log whose
//! connections interleave, reuse process ids and try several user names
//! before logging in, `dry-run` with fail2ban's own `sshd.conf` matches
//! exactly the lines `fail2ban-regex` matches, with the same host. This is
//! where session state shows (fail2ban's `<F-MLFID>` table of 100 open
//! connections, `<F-NOFAIL>`, `<F-MLFGAINED>`, `<F-MLFFORGET>`): a bigger or
//! differently evicted table counts logins as failures that fail2ban does
//! not. The filter is read from the installed package at test time (GPL).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::cli::{bin, json_doc};

const SSHD_CONF: &str = "/etc/fail2ban/filter.d/sshd.conf";

/// A deterministic sshd log: `n` lines (at most 7,500) from many concurrent
/// connections over 150 process ids (so ids come back while an earlier
/// connection with the same id was never closed), each trying one or two
/// user names, some logging in, some closing.
fn sshd_log(n: usize) -> String {
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move |m: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % m
    };
    let users = ["root", "admin", "alice", "oracle", "test", "deploy"];
    let mut out = String::new();
    for i in 0..n {
        let pid = 1000 + next(150);
        let ip = format!("198.51.{}.{}", next(4), 1 + next(200));
        let port = 1024 + next(60000);
        let user = users[next(users.len() as u64) as usize];
        // 25 lines a second: the whole log within fail2ban's 5 minutes of a
        // session (fail2ban-regex measures them on the wall clock, dry-run
        // in the lines' time, as the daemon reading live would).
        let (min, sec) = (i / 25 / 60, i / 25 % 60);
        let head = format!("Mar 10 01:{min:02}:{sec:02} web01 sshd[{pid}]:");
        let text = match next(10) {
            0..=3 => format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
            4 | 5 => format!("Failed password for {user} from {ip} port {port} ssh2"),
            6 | 7 => format!("Accepted publickey for {user} from {ip} port {port} ssh2"),
            8 => format!("Connection closed by {ip} port {port} [preauth]"),
            _ => format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"),
        };
        out.push_str(&format!("{head} {text}\n"));
    }
    out
}

#[test]
fn sshd_conf_matches_what_fail2ban_regex_matches_line_for_line() {
    let have = Path::new(SSHD_CONF).is_file()
        && Command::new("fail2ban-regex")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !common::fail2ban::installed(have, "fail2ban-regex") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("auth.log");
    std::fs::write(&log, sshd_log(6000)).unwrap();

    // fail2ban-regex: each failure's message and address.
    let out = Command::new("fail2ban-regex")
        .args(["-o", "row"])
        .arg(&log)
        .arg(SSHD_CONF)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `-o row` prints a Python list a failure: ['ADDR', time, {groups}].
    let theirs = String::from_utf8_lossy(&out.stdout);
    let mut f2b: Vec<String> = theirs
        .lines()
        .filter_map(|l| l.split('\'').nth(1).map(str::to_string))
        .collect();

    // banwarden: the hosts of the matched lines, in line order.
    let (doc, _) = json_doc(bin().arg("dry-run").arg(&log).args([
        "--filter", SSHD_CONF, "--show", "matched", "--max", "100000", "--json",
    ]));
    let ours: Vec<String> = doc["shown"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();

    // The same number of failures, and per address the same count.
    let tally = |v: &[String]| {
        let mut m = BTreeMap::new();
        for a in v {
            *m.entry(a.clone()).or_insert(0) += 1;
        }
        m
    };
    assert!(
        f2b.len() > 1000,
        "too few failures to say anything: {}",
        f2b.len()
    );
    assert_eq!(tally(&ours), tally(&f2b), "failures per address differ");
    assert_eq!(ours.len(), f2b.len());
    // And in the same order (both report in line order).
    f2b.truncate(ours.len());
    assert_eq!(ours, f2b);
}
