//! A fleet of three daemons, each in its own network namespace with real
//! packets, sharing counts and bans through a real `redis-server` on a
//! private unix socket.

mod common;

use std::time::Duration;

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::fleet::{connected, link, node_config, FleetNet, Redis};
use common::netns::{connects, eventually, listen, skip_unless_privileged, ChildGuard};

const PORT: u16 = 8080;
const TABLE: &str = "bwfleet";
const JAIL: &str = "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  ports: [8080]\n";
/// Generous: the machine is shared and loaded.
const WITHIN: Duration = Duration::from_secs(15);

struct Fleet {
    net: FleetNet,
    redis: Redis,
    cfgs: Vec<ConfigDir>,
    daemons: Vec<Option<Daemon>>,
    _listeners: Vec<ChildGuard>,
}

impl Fleet {
    fn start() -> Fleet {
        let net = FleetNet::new();
        let redis = Redis::start();
        let prefix = format!("bwt{}", net.tag);
        let cfgs: Vec<ConfigDir> = (0..3)
            .map(|i| node_config(TABLE, JAIL, &redis, i, &prefix))
            .collect();
        let daemons = (0..3)
            .map(|i| Some(Daemon::start(&net.nodes[i], &cfgs[i], TABLE)))
            .collect();
        let listeners = (0..3)
            .map(|i| listen(&net.nodes[i], &net.node_v4[i], PORT))
            .collect();
        let f = Fleet {
            net,
            redis,
            cfgs,
            daemons,
            _listeners: listeners,
        };
        for i in 0..3 {
            f.wait_connected(i);
            // Each knows the two others (announced every 10 s).
            assert!(
                eventually(WITHIN, || link(&f.cfgs[i])["members"] == 2),
                "node {i} does not know the other two nodes:\n{}",
                f.log(i)
            );
        }
        f
    }

    fn wait_connected(&self, i: usize) {
        assert!(
            eventually(WITHIN, || connected(&self.cfgs[i])),
            "node {i} did not connect to the fleet:\n{}",
            self.log(i)
        );
    }

    fn log(&self, i: usize) -> String {
        self.daemons[i]
            .as_ref()
            .map(|d| d.stderr())
            .unwrap_or_default()
    }

    fn banned(&self, i: usize, addr: &str) -> bool {
        in_set(&self.net.nodes[i], TABLE, "app_v4", addr)
    }

    /// Waits until `addr` is banned (or not) on every node in `nodes`.
    fn wait_all(&self, nodes: &[usize], addr: &str, banned: bool, what: &str) {
        for &i in nodes {
            assert!(
                eventually(WITHIN, || self.banned(i, addr) == banned),
                "{what}: {addr} banned={} on node {i}, want {banned}\n{}",
                !banned,
                self.log(i)
            );
        }
    }

    fn attacker_connects(&self, i: usize) -> bool {
        connects(
            &self.net.atk,
            &self.net.atk_v4,
            &self.net.node_v4[i],
            PORT,
            Duration::from_secs(1),
        )
    }

    /// The `origin` that `bans --json` on node `i` names for `addr`.
    fn origin(&self, i: usize, addr: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.cli_ok(i, &["bans", "--json"])).expect("bans json");
        v["bans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["addr"] == addr)
            .map(|b| b["origin"].as_str().unwrap_or("(none)").to_string())
            .unwrap_or_else(|| format!("({addr} not banned)"))
    }

    fn cli_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.cfgs[i].cli(args);
        assert!(
            out.status.success(),
            "banwarden {args:?} on node {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn failures_spread_over_three_nodes_ban_everywhere_and_unban_everywhere() {
    if skip_unless_privileged() {
        return;
    }
    let f = Fleet::start();
    let atk = f.net.atk_v4.clone();
    for i in 0..3 {
        assert!(
            f.attacker_connects(i),
            "attacker blocked before any failure"
        );
    }
    // One failure per node: each under maxretry (3), three fleet-wide.
    for i in 0..3 {
        f.cfgs[i].append("app.log", &failures(&atk, 1));
        // In order, so the third is the one that crosses.
        assert!(
            eventually(WITHIN, || f
                .cli_ok(i, &["status", "app", "--json"])
                .contains(&atk)
                || f.banned(i, &atk)),
            "node {i} did not count the failure:\n{}",
            f.log(i)
        );
    }
    f.wait_all(&[0, 1, 2], &atk, true, "spread failures");
    for i in 0..3 {
        assert!(
            !f.attacker_connects(i),
            "attacker still connects to node {i}"
        );
    }
    // Exactly one ban, decided by one node, named as its origin everywhere.
    let origins: Vec<String> = (0..3)
        .map(|i| {
            let v: serde_json::Value =
                serde_json::from_str(&f.cli_ok(i, &["bans", "--json"])).expect("bans json");
            v["bans"][0]["origin"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert!(
        origins[0].starts_with('n') && origins.iter().all(|o| o == &origins[0]),
        "origins differ or are missing: {origins:?}"
    );
    let decided: usize = (0..3)
        .filter(|&i| f.log(i).contains("ban (fleet-wide count)"))
        .count();
    let local: usize = (0..3).filter(|&i| f.log(i).contains("failures=3")).count();
    assert_eq!(decided + local, 1, "not exactly one ban decision");

    // A manual unban on one node opens every node.
    f.cli_ok(1, &["unban", &atk]);
    f.wait_all(&[0, 1, 2], &atk, false, "unban on node 1");
    for i in 0..3 {
        assert!(
            eventually(WITHIN, || f.attacker_connects(i)),
            "node {i} still drops"
        );
    }

    // A manual ban on one node reaches all; ignore on another lifts it everywhere.
    f.cli_ok(2, &["ban", "app", "198.51.100.9"]);
    f.wait_all(&[0, 1, 2], "198.51.100.9", true, "manual ban on node 2");
    f.cli_ok(0, &["ignore", "198.51.100.9", "--for", "1h"]);
    f.wait_all(&[0, 1, 2], "198.51.100.9", false, "ignore on node 0");
    f.cfgs[1].append("app.log", &failures("198.51.100.9", 3));
    assert!(
        eventually(WITHIN, || f
            .log(1)
            .contains("failure from an ignored address")),
        "node 1 does not ignore what node 0 ignored:\n{}",
        f.log(1)
    );
    assert!(!f.banned(1, "198.51.100.9"));

    // Fleet members are never banned: node 1's address fails on node 0.
    let member = f.net.node_v4[1].clone();
    f.cfgs[0].append("app.log", &failures(&member, 3));
    assert!(
        eventually(WITHIN, || f.log(0).lines().any(
            |l| l.contains(&member) && l.contains("failure from an ignored address")
        )),
        "node 0 did not refuse to ban fleet member {member}:\n{}",
        f.log(0)
    );
    assert!(!f.banned(0, &member));

    // A malformed entry is counted and skipped.
    let prefix = format!("bwt{}", f.net.tag);
    f.redis.command(&format!(
        "XADD {prefix}:events * v 1 node evil kind ban jail app net not-an-address"
    ));
    assert!(
        eventually(WITHIN, || link(&f.cfgs[0])["malformed"] == 1),
        "malformed entry not counted:\n{}",
        f.cli_ok(0, &["status", "--json"])
    );
    for d in f.daemons.iter().flatten() {
        assert!(!d.stderr().contains("panicked"));
    }
}

#[test]
fn redis_down_local_bans_go_on_and_reach_the_others_when_it_is_back() {
    if skip_unless_privileged() {
        return;
    }
    let mut f = Fleet::start();
    let atk = f.net.atk_v4.clone();
    f.redis.kill();
    // Node 0 bans alone while Redis is away.
    f.cfgs[0].append("app.log", &failures(&atk, 3));
    f.wait_all(&[0], &atk, true, "local ban with Redis down");
    assert!(!f.attacker_connects(0));
    assert!(
        eventually(WITHIN, || !connected(&f.cfgs[0])),
        "status still says connected with Redis down"
    );
    assert!(!f.banned(1, &atk) && !f.banned(2, &atk));
    // Redis comes back empty: the ban made meanwhile reaches the others.
    f.redis.restart();
    for i in 0..3 {
        f.wait_connected(i);
    }
    f.wait_all(&[1, 2], &atk, true, "ban made while Redis was down");
    for i in 1..3 {
        assert!(
            !f.attacker_connects(i),
            "attacker still connects to node {i}"
        );
    }
}

#[test]
fn a_stopped_node_catches_up_on_restart_skipping_expired_bans() {
    if skip_unless_privileged() {
        return;
    }
    let mut f = Fleet::start();
    let d2 = f.daemons[2].take().expect("node 2");
    assert!(d2.stop().success());
    f.cli_ok(0, &["ban", "app", "198.51.100.20"]);
    f.cli_ok(1, &["ban", "app", "198.51.100.21", "--for", "2s"]);
    f.wait_all(&[0, 1], "198.51.100.20", true, "ban while node 2 is down");
    // The short ban expires before node 2 is back.
    f.wait_all(&[0, 1], "198.51.100.21", false, "short ban expiry");
    f.daemons[2] = Some(Daemon::start(&f.net.nodes[2], &f.cfgs[2], TABLE));
    f.wait_connected(2);
    f.wait_all(&[2], "198.51.100.20", true, "catch-up after restart");
    assert!(!f.banned(2, "198.51.100.21"), "an expired ban was applied");
    assert_eq!(f.origin(2, "198.51.100.20"), "n0");

    // The node that decided a ban stays named after a restart: node 0's own
    // ban (never read back from the stream) and node 1's received one.
    for i in [0, 1] {
        let d = f.daemons[i].take().expect("node");
        assert!(d.stop().success());
        f.daemons[i] = Some(Daemon::start(&f.net.nodes[i], &f.cfgs[i], TABLE));
        f.wait_connected(i);
        assert_eq!(f.origin(i, "198.51.100.20"), "n0", "node {i} after restart");
    }
}
