//! The nftables backend and the batching worker against a real kernel, with
//! real packets between two network namespaces (see `common::netns`). Every nft
//! command runs inside the test's own server namespace; the host's ruleset is
//! never touched. Skipped (with a reason) when not privileged, unless
//! `BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1`.

mod common;

use std::time::{Duration, Instant};

use banwarden::firewall::nft::{NftFirewall, DEFAULT_TABLE};
use banwarden::firewall::worker::{spawn_worker, WorkerEvent, WorkerOptions};
use banwarden::firewall::{
    BanEntry, Chains, Firewall, FirewallOp, JailRules, PortRange, Protocol, Verdict,
};
use common::netns::{connects, eventually, listen, probe, skip_unless_privileged, NetPair, Probe};
use ipnet::IpNet;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Set granularity, reconciliation and volume.
#[path = "firewall_netns/sets.rs"]
mod sets;

const PORT: u16 = 8022;
const OTHER_PORT: u16 = 9000;
/// Connect timeout for probes: a dropped SYN shows as a timeout.
const T: Duration = Duration::from_secs(1);

/// The configuration's default granularity: hosts for IPv4, /64s for IPv6.
const DEFAULT_PREFIXES: (u8, u8) = (32, 64);

fn jail(
    name: &str,
    protocol: Protocol,
    ports: &[u16],
    verdict: Verdict,
    (ipv4_prefix, ipv6_prefix): (u8, u8),
) -> JailRules {
    JailRules {
        name: name.to_string(),
        protocol,
        ports: ports.iter().map(|&p| PortRange { lo: p, hi: p }).collect(),
        verdict,
        ipv4_prefix,
        ipv6_prefix,
        chains: Chains::default(),
    }
}

fn net(addr: &str) -> IpNet {
    addr.parse::<IpNet>()
        .unwrap_or_else(|_| IpNet::from(addr.parse::<std::net::IpAddr>().expect("an address")))
}

fn ban(jail: &str, addr: &str, expires: Option<i64>) -> FirewallOp {
    FirewallOp::Ban(BanEntry {
        jail: jail.to_string(),
        net: net(addr),
        expires,
    })
}

fn unban(jail: &str, addr: &str) -> FirewallOp {
    FirewallOp::Unban {
        jail: jail.to_string(),
        net: net(addr),
    }
}

fn fw(pair: &NetPair) -> NftFirewall {
    NftFirewall::new(DEFAULT_TABLE, pair.nft_cmd())
}

fn left_for(fw: &NftFirewall, jail: &str, addr: &str) -> Option<Option<u64>> {
    let n = net(addr);
    fw.list_elements(jail)
        .expect("list elements")
        .into_iter()
        .find(|(e, _)| *e == n)
        .map(|(_, left)| left)
}

fn wait_event(
    rx: &mut UnboundedReceiver<WorkerEvent>,
    within: Duration,
    pred: impl Fn(&WorkerEvent) -> bool,
) -> WorkerEvent {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(e) if pred(&e) => return e,
            Ok(e) => seen.push(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    panic!("expected event did not come within {within:?}; saw {seen:?}");
}

#[test]
fn ban_blocks_attacker_until_expiry_and_spares_the_second_client() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let mut fw = fw(&pair);
    fw.setup(
        &[jail(
            "ssh",
            Protocol::Tcp,
            &[PORT],
            Verdict::Drop,
            DEFAULT_PREFIXES,
        )],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    assert!(
        connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        "before the ban"
    );

    let now = banwarden::now();
    fw.apply(&[ban("ssh", &pair.atk_v4, Some(now + 3))], now)
        .expect("apply");
    assert_eq!(
        probe(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        Probe::TimedOut,
        "banned address is dropped"
    );
    assert!(
        connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T),
        "second client unaffected"
    );
    assert!(
        connects(&pair.atk, &pair.atk_v6, &pair.srv_v6, PORT, T),
        "the v6 address of the same host is not banned"
    );

    // The kernel expires the element by itself.
    assert!(
        eventually(Duration::from_secs(10), || connects(
            &pair.atk,
            &pair.atk_v4,
            &pair.srv_v4,
            PORT,
            T
        )),
        "connects again after expiry"
    );
    assert_eq!(
        left_for(&fw, "ssh", &pair.atk_v4),
        None,
        "the element is gone"
    );
}

#[test]
fn ipv6_ban_and_unban() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let mut fw = fw(&pair);
    fw.setup(
        &[jail(
            "web",
            Protocol::Tcp,
            &[80, PORT],
            Verdict::Drop,
            DEFAULT_PREFIXES,
        )],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    assert!(connects(&pair.atk, &pair.atk_v6, &pair.srv_v6, PORT, T));

    fw.apply(&[ban("web", &pair.atk_v6, None)], banwarden::now())
        .expect("ban");
    assert_eq!(
        left_for(&fw, "web", &pair.atk_v6),
        Some(None),
        "permanent ban has no timeout"
    );
    assert_eq!(
        probe(&pair.atk, &pair.atk_v6, &pair.srv_v6, PORT, T),
        Probe::TimedOut
    );
    assert!(
        connects(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, T),
        "second v6 client unaffected"
    );
    assert!(
        connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        "v4 of the same host unaffected"
    );

    fw.apply(&[unban("web", &pair.atk_v6)], banwarden::now())
        .expect("unban");
    assert_eq!(left_for(&fw, "web", &pair.atk_v6), None);
    assert!(
        connects(&pair.atk, &pair.atk_v6, &pair.srv_v6, PORT, T),
        "connects after unban"
    );
}

#[test]
fn unban_of_absent_address_is_not_an_error() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    let jails = [
        jail(
            "ssh",
            Protocol::Tcp,
            &[PORT],
            Verdict::Drop,
            DEFAULT_PREFIXES,
        ),
        jail("nets", Protocol::All, &[], Verdict::Drop, (16, 64)),
    ];
    fw.setup(&jails, &[], banwarden::now()).expect("setup");
    let now = banwarden::now();
    fw.apply(
        &[
            unban("ssh", "192.0.2.1"),
            unban("ssh", "2001:db8:ffff::1"),
            unban("nets", "192.0.2.0/24"),
            unban("nets", "2001:db8:ffff::/64"),
        ],
        now,
    )
    .expect("unbans of absent elements succeed");
    // Ban and unban of the same address in one batch: the last op wins.
    fw.apply(
        &[ban("ssh", "192.0.2.7", None), unban("ssh", "192.0.2.7")],
        now,
    )
    .expect("ban+unban");
    assert!(fw.list_elements("ssh").expect("list").is_empty());
}

#[test]
fn reban_refreshes_the_timeout() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    fw.setup(
        &[
            jail(
                "ssh",
                Protocol::Tcp,
                &[PORT],
                Verdict::Drop,
                DEFAULT_PREFIXES,
            ),
            jail("nets", Protocol::All, &[], Verdict::Drop, (16, 64)),
        ],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    let addr = "192.0.2.10";
    let v6net = "2001:db8:5::/64"; // exact in a /64 jail
    let now = banwarden::now();
    fw.apply(
        &[
            ban("ssh", addr, Some(now + 100)),
            ban("ssh", v6net, Some(now + 100)),
            ban("nets", "192.0.2.128/25", Some(now + 100)),
        ],
        now,
    )
    .expect("ban");
    let first = left_for(&fw, "ssh", addr).flatten().expect("timed element");
    assert!((95..=100).contains(&first), "{first}");

    fw.apply(
        &[
            ban("ssh", addr, Some(now + 1000)),
            ban("ssh", v6net, Some(now + 1000)),
            ban("nets", "192.0.2.128/25", Some(now + 1000)),
        ],
        now,
    )
    .expect("re-ban");
    let v6 = left_for(&fw, "ssh", v6net).flatten().expect("timed /64");
    assert!(v6 > 990, "the /64 refreshed: {v6}");
    let second = left_for(&fw, "ssh", addr).flatten().expect("timed element");
    assert!(
        second > first && second > 990,
        "refreshed: {first} -> {second}"
    );
    let prefix = left_for(&fw, "nets", "192.0.2.128/25")
        .flatten()
        .expect("timed prefix");
    assert!(prefix > 990, "prefix refreshed too: {prefix}");

    // A re-ban sets the new expiry, also when it is shorter.
    fw.apply(&[ban("ssh", addr, Some(now + 50))], now)
        .expect("shorter re-ban");
    let third = left_for(&fw, "ssh", addr).flatten().expect("timed element");
    assert!(third <= 50, "{third}");
    // A permanent re-ban drops the timeout.
    fw.apply(&[ban("ssh", addr, None)], now)
        .expect("permanent re-ban");
    assert_eq!(left_for(&fw, "ssh", addr), Some(None));
}

#[test]
fn intact_reports_a_missing_table_and_the_worker_rebuilds_it_with_current_bans() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let jails = vec![jail(
        "ssh",
        Protocol::Tcp,
        &[PORT],
        Verdict::Drop,
        DEFAULT_PREFIXES,
    )];
    let mut probe_fw = fw(&pair);
    assert!(!probe_fw
        .intact(&jails)
        .expect("a missing table is not an error"));
    assert!(!probe_fw
        .present(&jails)
        .expect("a missing table is not an error"));

    let (etx, mut erx) = unbounded_channel();
    let opts = WorkerOptions {
        check_interval: Duration::from_millis(200),
        events: Some(etx),
        ..WorkerOptions::default()
    };
    let (worker, ready) =
        spawn_worker(Box::new(fw(&pair)), jails.clone(), vec![], opts).expect("spawn");
    ready.blocking_recv().expect("setup result").expect("setup");
    assert!(probe_fw.intact(&jails).expect("intact"));
    assert!(probe_fw.present(&jails).expect("present"));

    let now = banwarden::now();
    worker
        .send(vec![ban("ssh", &pair.atk_v4, Some(now + 600))])
        .expect("send");
    wait_event(&mut erx, Duration::from_secs(5), |e| {
        matches!(e, WorkerEvent::Applied { .. })
    });
    assert_eq!(
        probe(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        Probe::TimedOut
    );

    // Someone flushes our table (`nft delete table`, `systemctl restart nftables`).
    // (The worker checks every 200 ms: on a loaded machine it may have
    // rebuilt the table before a probe here could see it missing, so what
    // `intact` and `present` say of a missing table is checked above.)
    pair.srv_nft(&["delete", "table", "inet", DEFAULT_TABLE]);
    wait_event(&mut erx, Duration::from_secs(5), |e| {
        matches!(e, WorkerEvent::Rebuilt { .. })
    });
    assert!(probe_fw.intact(&jails).expect("intact"));
    let left = left_for(&probe_fw, "ssh", &pair.atk_v4)
        .expect("ban survived")
        .expect("with its timeout");
    assert!(left > 590, "{left}");
    assert_eq!(
        probe(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        Probe::TimedOut,
        "blocked again"
    );
    assert_eq!(worker.active_bans().len(), 1);

    // Shutdown leaves the bans in the kernel.
    worker.shutdown();
    assert!(
        left_for(&probe_fw, "ssh", &pair.atk_v4).is_some(),
        "bans stay after shutdown"
    );
}

#[test]
fn a_lone_ban_is_applied_without_waiting() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let (etx, mut erx) = unbounded_channel();
    let opts = WorkerOptions {
        events: Some(etx),
        ..WorkerOptions::default()
    };
    let jails = vec![jail(
        "ssh",
        Protocol::Tcp,
        &[PORT],
        Verdict::Drop,
        DEFAULT_PREFIXES,
    )];
    let (worker, ready) = spawn_worker(Box::new(fw(&pair)), jails, vec![], opts).expect("spawn");
    ready.blocking_recv().expect("setup result").expect("setup");
    let now = banwarden::now();
    let mut took: Vec<Duration> = (0..50u32)
        .map(|i| {
            let started = Instant::now();
            worker
                .send(vec![ban("ssh", &format!("198.19.0.{i}"), Some(now + 600))])
                .expect("send");
            wait_event(&mut erx, Duration::from_secs(5), |e| {
                matches!(e, WorkerEvent::Applied { ops: 1, .. })
            });
            started.elapsed()
        })
        .collect();
    took.sort();
    let (p50, p99) = (took[25], took[49]);
    println!(
        "lone ban, send to applied (nft run via `ip netns exec` included): p50 {p50:?}, max {p99:?}"
    );
    assert!(p50 < Duration::from_secs(1), "{took:?}");
    worker.shutdown();
}

#[test]
fn reject_verdict_refuses_quickly() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let mut fw = fw(&pair);
    fw.setup(
        &[
            jail(
                "tcprej",
                Protocol::Tcp,
                &[PORT],
                Verdict::Reject,
                DEFAULT_PREFIXES,
            ),
            jail(
                "allrej",
                Protocol::All,
                &[],
                Verdict::Reject,
                DEFAULT_PREFIXES,
            ),
        ],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    fw.apply(
        &[
            ban("tcprej", &pair.atk_v4, None),
            ban("allrej", &pair.atk_v6, None),
        ],
        banwarden::now(),
    )
    .expect("ban");
    for (src, dst) in [(&pair.atk_v4, &pair.srv_v4), (&pair.atk_v6, &pair.srv_v6)] {
        let started = Instant::now();
        assert_eq!(
            probe(&pair.atk, src, dst, PORT, Duration::from_secs(3)),
            Probe::Refused,
            "{src}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused quickly, not timed out"
        );
    }
    assert!(connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T));
}

#[test]
fn protocol_all_without_ports_blocks_everything() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l1 = listen(&pair.srv, "::", PORT);
    let _l2 = listen(&pair.srv, "::", OTHER_PORT);
    let mut fw = fw(&pair);
    fw.setup(
        &[
            jail("all", Protocol::All, &[], Verdict::Drop, DEFAULT_PREFIXES),
            jail(
                "ssh",
                Protocol::Tcp,
                &[PORT],
                Verdict::Drop,
                DEFAULT_PREFIXES,
            ),
        ],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    fw.apply(&[ban("ssh", &pair.atk2_v4, None)], banwarden::now())
        .expect("ban");
    assert!(
        connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, OTHER_PORT, T),
        "the port jail only blocks its port"
    );
    assert_eq!(
        probe(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T),
        Probe::TimedOut
    );

    fw.apply(&[ban("all", &pair.atk_v4, None)], banwarden::now())
        .expect("ban");
    for port in [PORT, OTHER_PORT] {
        assert_eq!(
            probe(&pair.atk, &pair.atk_v4, &pair.srv_v4, port, T),
            Probe::TimedOut,
            "port {port}"
        );
    }
}
