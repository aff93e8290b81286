//! fail2ban's `<SUBNET>` and `<ADDR>/<CIDR>` tags, driven through the real
//! binary (`dry-run --jail`): a captured subnet is counted and banned as
//! that subnet, host bits cleared; a subnet that overlaps the allow-list is
//! never banned; a prefix wider than /8 (a `/0` would be every address) is
//! a bad host, never a ban.
//!
//! The filter is written here in fail2ban's format, not taken from fail2ban.

mod common;

use std::path::Path;

use common::cli::{bin, json_doc};

/// A config dir whose jail `abuse` reads `log` through a fail2ban filter
/// with `<SUBNET>` and `<ADDR>/<CIDR>`.
fn config(dir: &Path, log: &Path) -> std::path::PathBuf {
    let f2b = dir.join("fail2ban/filter.d");
    std::fs::create_dir_all(&f2b).unwrap();
    std::fs::write(
        f2b.join("abuse.conf"),
        "[Definition]\n\
         failregex = ^\\s*abuse report for <SUBNET>$\n\
         \x20           ^\\s*probe from <ADDR>/<CIDR> port \\d+$\n\
         \x20           ^\\s*single from <HOST>$\n",
    )
    .unwrap();
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(cfg.join("jails")).unwrap();
    std::fs::write(
        cfg.join("banwarden.yaml"),
        format!("fail2ban_dir: {}\n", dir.join("fail2ban").display()),
    )
    .unwrap();
    std::fs::write(
        cfg.join("jails/abuse.yaml"),
        format!(
            "abuse:\n  filter: 'fail2ban:abuse'\n  logpath: {}\n  maxretry: 2\n  findtime: 1h\n  bantime: 10m\n  ignoreip: [203.0.113.77]\n",
            log.display()
        ),
    )
    .unwrap();
    cfg
}

const LOG: &str = "\
2024-05-30T10:00:00Z abuse report for 198.51.100.7/24
2024-05-30T10:00:01Z abuse report for 198.51.100.200/24
2024-05-30T10:00:02Z abuse report for 203.0.113.0/24
2024-05-30T10:00:03Z abuse report for 203.0.113.0/24
2024-05-30T10:00:04Z abuse report for 192.0.2.1/0
2024-05-30T10:00:05Z abuse report for 192.0.2.1/0
2024-05-30T10:00:06Z abuse report for 192.0.2.1/40
2024-05-30T10:00:07Z probe from 2001:db8:77::5/48 port 22
2024-05-30T10:00:08Z probe from 2001:db8:77:1::9/48 port 22
2024-05-30T10:00:09Z abuse report for 192.0.2.9
2024-05-30T10:00:10Z single from 192.0.2.9
";

#[test]
fn a_captured_subnet_is_banned_as_that_subnet_unless_it_is_silly_or_ignored() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("abuse.log");
    std::fs::write(&log, LOG).unwrap();
    let cfg = config(d.path(), &log);
    let (doc, _) = json_doc(
        bin()
            .args(["dry-run", "--now", "2024-05-30T10:00:30Z", "--json"])
            .args(["--jail", "abuse", "--config"])
            .arg(&cfg),
    );
    let bans: Vec<&str> = doc["jail"]["bans"]
        .as_array()
        .expect("bans")
        .iter()
        .map(|b| b["address"].as_str().expect("address"))
        .collect();
    // Host bits cleared: both reports name 198.51.100.0/24, one offender.
    // The address without a prefix is itself (192.0.2.9, two failures).
    assert_eq!(
        bans,
        vec!["198.51.100.0/24", "2001:db8:77::/48", "192.0.2.9"],
        "{doc:#}"
    );
    // /0 and /40 are refused: bad hosts, never counted.
    assert_eq!(doc["lines"]["bad_host"], 3, "{doc:#}");
    // 203.0.113.0/24 holds the ignored 203.0.113.77: never banned.
    let ignored = &doc["jail"]["ignored"];
    assert_eq!(ignored[0]["address"], "203.0.113.0/24", "{doc:#}");
    assert_eq!(ignored[0]["failures"], 2, "{doc:#}");
    assert!(
        ignored[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("203.0.113.77")),
        "{doc:#}"
    );
    // The per-address table names the subnets as subnets.
    let top: Vec<&str> = doc["addresses"]["top"]
        .as_array()
        .expect("top")
        .iter()
        .map(|a| a["address"].as_str().expect("address"))
        .collect();
    assert!(top.contains(&"198.51.100.0/24"), "{top:?}");
    assert!(top.contains(&"2001:db8:77::/48"), "{top:?}");
}
