//! A subnet a fail2ban filter captures (`<SUBNET>`), end to end with real
//! packets: the daemon, in a "server" network namespace, bans the captured
//! subnet (host bits cleared), so an address of it that the log never named
//! can no longer connect; a subnet that holds the server's own address
//! (`ignoreself`) is never banned.

mod common;

use std::time::Duration;

use common::daemon::{ConfigDir, Daemon};
use common::netns::{connects, eventually, listen, skip_unless_privileged, NetPair};

const PORT: u16 = 8081;

#[test]
fn a_captured_subnet_is_blocked_and_one_holding_the_server_is_not() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwsubnet";
    let cfg = ConfigDir::new(table);
    cfg.write(
        "fail2ban/filter.d/abuse.conf",
        "[Definition]\nfailregex = ^Abuse report for <SUBNET>$\n",
    );
    cfg.write(
        "jails/abuse.yaml",
        &format!(
            "abuse:\n  enabled: true\n  filter: {}\n  logpath: abuse.log\n  maxretry: 2\n  findtime: 10m\n  bantime: 1h\n  ports: [{PORT}]\n",
            cfg.path().join("fail2ban/filter.d/abuse.conf").display()
        ),
    );
    cfg.write("abuse.log", "");
    let mut daemon = Daemon::start(&pair.srv, &cfg, table);
    let _listener = listen(&pair.srv, &pair.srv_v4, PORT);
    let t = Duration::from_secs(1);
    assert!(
        connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t),
        "attacker must connect before any failure"
    );
    // The attackers' /31 (.2 and .3), written with the host bits of .3;
    // and the whole /24, which holds the server's own .1.
    let net = pair.atk_v4.rsplit_once('.').map(|(n, _)| n).expect("v4");
    let lines = format!(
        "Abuse report for {net}.0/24\nAbuse report for {net}.0/24\n\
         Abuse report for {net}.3/31\nAbuse report for {net}.3/31\n"
    );
    cfg.append("abuse.log", &lines);
    let blocked = eventually(Duration::from_secs(5), || {
        daemon.assert_alive();
        !connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t)
    });
    assert!(
        blocked,
        "{}, never named in the log, still connects:\n{}",
        pair.atk_v4,
        daemon.stderr()
    );
    assert!(!connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, t));
    let status = cfg.cli(&["bans", "--json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("{net}.2/31")), "{text}");
    assert!(!text.contains(&format!("{net}.0/24")), "{text}");
    assert!(
        daemon.stderr().contains("ignoreself"),
        "the /24 holds the server's address: ignored, and said so:\n{}",
        daemon.stderr()
    );
}
