//! `reload` applies a changed `fleet:` block: a node moved from one fleet
//! (key prefix) to another leaves the first, joins the second, catches up
//! on the bans already there and shares its own; a node whose block is
//! removed leaves the fleet; a bad block is rejected and the link keeps
//! running. Three daemons in their own namespaces, a real `redis-server`.

mod common;

use std::time::Duration;

use common::daemon::{in_set, ConfigDir, Daemon};
use common::fleet::{connected, link, node_config, FleetNet, Redis};
use common::netns::{eventually, skip_unless_privileged};

const TABLE: &str = "bwflrel";
const JAIL: &str = "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  ports: [8080]\n";
const WITHIN: Duration = Duration::from_secs(20);

fn ok(c: &ConfigDir, args: &[&str]) -> String {
    let out = c.cli(args);
    assert!(
        out.status.success(),
        "banwarden {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rewrites `banwarden.yaml`'s fleet block lines with `edit`.
fn edit_fleet(c: &ConfigDir, edit: impl Fn(&str) -> String) {
    let path = c.path().join("banwarden.yaml");
    let text = std::fs::read_to_string(&path).expect("read banwarden.yaml");
    c.write("banwarden.yaml", &edit(&text));
}

#[test]
fn reload_moves_a_node_to_another_fleet_and_out_of_it() {
    if skip_unless_privileged() {
        return;
    }
    let net = FleetNet::new();
    let redis = Redis::start();
    let (a, b) = (format!("bwra{}", net.tag), format!("bwrb{}", net.tag));
    // Nodes 0 and 1 in fleet A; node 2 alone in fleet B.
    let cfgs: Vec<ConfigDir> = (0..3)
        .map(|i| node_config(TABLE, JAIL, &redis, i, if i < 2 { &a } else { &b }))
        .collect();
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(&net.nodes[i], &cfgs[i], TABLE))
        .collect();
    let log = |i: usize| daemons[i].stderr();
    for (i, c) in cfgs.iter().enumerate() {
        assert!(
            eventually(WITHIN, || connected(c)),
            "node {i} not connected:\n{}",
            log(i)
        );
    }
    let banned = |i: usize, addr: &str| in_set(&net.nodes[i], TABLE, "app_v4", addr);

    // A ban in fleet A reaches node 1, not node 2 (in fleet B).
    ok(&cfgs[0], &["ban", "app", "198.51.100.60"]);
    assert!(eventually(WITHIN, || banned(1, "198.51.100.60")));
    assert!(!banned(2, "198.51.100.60"), "fleet B got fleet A's ban");

    // Node 2 moves to fleet A under a new name: it catches up on the ban
    // made there before it came, and its own bans reach the others.
    edit_fleet(&cfgs[2], |t| {
        t.replace(&format!("prefix: {b}"), &format!("prefix: {a}"))
            .replace("node: n2", "node: n2b")
    });
    ok(&cfgs[2], &["reload"]);
    assert!(
        eventually(WITHIN, || link(&cfgs[2])["node"] == "n2b"
            && connected(&cfgs[2])),
        "node 2 did not reconnect after reload: {}\n{}",
        link(&cfgs[2]),
        log(2)
    );
    assert!(
        eventually(WITHIN, || banned(2, "198.51.100.60")),
        "node 2 did not catch up on fleet A after the reload:\n{}",
        log(2)
    );
    ok(&cfgs[2], &["ban", "app", "198.51.100.61"]);
    for i in [0, 1] {
        assert!(
            eventually(WITHIN, || banned(i, "198.51.100.61")),
            "node 2's ban after the reload did not reach node {i}:\n{}",
            log(i)
        );
    }

    // A bad block is rejected with its field named; the link stays up.
    edit_fleet(&cfgs[2], |t| t.replace("node: n2b", "node: 'bad name!'"));
    let out = cfgs[2].cli(&["reload"]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a bad fleet block was accepted");
    assert!(text.contains("fleet.node"), "{text}");
    assert_eq!(link(&cfgs[2])["node"], "n2b");
    assert!(connected(&cfgs[2]));

    // Without a fleet block the node leaves: status shows no link, and
    // fleet A's new bans no longer reach it.
    edit_fleet(&cfgs[2], |t| {
        t.lines()
            .take_while(|l| !l.starts_with("fleet:"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    ok(&cfgs[2], &["reload"]);
    assert!(link(&cfgs[2]).is_null(), "still linked: {}", link(&cfgs[2]));
    ok(&cfgs[0], &["ban", "app", "198.51.100.62"]);
    assert!(eventually(WITHIN, || banned(1, "198.51.100.62")));
    assert!(
        !banned(2, "198.51.100.62"),
        "a node out of the fleet got its ban"
    );
    // Its earlier bans stay in force.
    assert!(banned(2, "198.51.100.60") && banned(2, "198.51.100.61"));
    for d in &daemons {
        assert!(!d.stderr().contains("panicked"));
    }
}
