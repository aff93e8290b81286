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
    BanEntry, Firewall, FirewallOp, JailRules, PortRange, Protocol, Verdict,
};
use common::netns::{connects, eventually, listen, probe, skip_unless_privileged, NetPair, Probe};
use ipnet::IpNet;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const PORT: u16 = 8022;
const OTHER_PORT: u16 = 9000;
/// Connect timeout for probes: a dropped SYN shows as a timeout.
const T: Duration = Duration::from_secs(1);

fn jail(
    name: &str,
    protocol: Protocol,
    ports: &[u16],
    verdict: Verdict,
    intervals: bool,
) -> JailRules {
    JailRules {
        name: name.to_string(),
        protocol,
        ports: ports.iter().map(|&p| PortRange { lo: p, hi: p }).collect(),
        verdict,
        intervals,
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
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
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
        &[jail("ssh", Protocol::Tcp, &[PORT], Verdict::Drop, false)],
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
    let banned_at = Instant::now();
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
    let wait = Duration::from_millis(3600).saturating_sub(banned_at.elapsed());
    std::thread::sleep(wait);
    assert!(
        eventually(Duration::from_secs(3), || connects(
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
            false,
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
        jail("ssh", Protocol::Tcp, &[PORT], Verdict::Drop, false),
        jail("nets", Protocol::All, &[], Verdict::Drop, true),
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
            jail("ssh", Protocol::Tcp, &[PORT], Verdict::Drop, false),
            jail("nets", Protocol::All, &[], Verdict::Drop, true),
        ],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    let addr = "192.0.2.10";
    let now = banwarden::now();
    fw.apply(
        &[
            ban("ssh", addr, Some(now + 100)),
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
            ban("nets", "192.0.2.128/25", Some(now + 1000)),
        ],
        now,
    )
    .expect("re-ban");
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
fn setup_is_idempotent_keeps_bans_and_reconciles_jails() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    let ssh = jail("ssh", Protocol::Tcp, &[22, PORT], Verdict::Drop, false);
    let old = jail("old", Protocol::Udp, &[53], Verdict::Reject, false);
    let now = banwarden::now();
    let initial = [BanEntry {
        jail: "ssh".into(),
        net: net("192.0.2.1"),
        expires: Some(now + 600),
    }];
    fw.setup(&[ssh.clone(), old.clone()], &initial, now)
        .expect("first setup");
    fw.apply(
        &[
            ban("ssh", "192.0.2.2", None),
            ban("ssh", "2001:db8:ffff::2", None),
        ],
        now,
    )
    .expect("ban");
    fw.setup(&[ssh.clone(), old.clone()], &[], now)
        .expect("second setup");
    assert!(fw.intact(&[ssh.clone(), old.clone()]).expect("intact"));
    let chain = pair.srv_nft(&["list", "chain", "inet", DEFAULT_TABLE, "input"]);
    assert_eq!(
        chain.matches("banwarden:ssh").count(),
        2,
        "one rule per family, not duplicated:\n{chain}"
    );
    assert!(
        chain.contains("hook input priority filter - 10;"),
        "{chain}"
    );
    let mut nets: Vec<IpNet> = fw
        .list_elements("ssh")
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    nets.sort();
    assert_eq!(
        nets,
        vec![net("192.0.2.1"), net("192.0.2.2"), net("2001:db8:ffff::2")],
        "bans survive a re-setup"
    );

    // Drop a jail, switch another to intervals (its sets must be recreated).
    let ssh_iv = JailRules {
        intervals: true,
        ..ssh.clone()
    };
    let later = [BanEntry {
        jail: "ssh".into(),
        net: net("192.0.2.0/28"),
        expires: None,
    }];
    fw.setup(std::slice::from_ref(&ssh_iv), &later, now)
        .expect("reconciling setup");
    let table = pair.srv_nft(&["-t", "list", "table", "inet", DEFAULT_TABLE]);
    assert!(
        !table.contains("old_v4") && !table.contains("banwarden:old"),
        "removed jail is gone:\n{table}"
    );
    assert!(table.contains("flags interval,timeout"), "{table}");
    assert!(fw.intact(&[ssh_iv]).expect("intact"));
    assert!(
        !fw.intact(&[ssh, old]).expect("intact"),
        "old jail missing, ssh flags differ"
    );
    assert_eq!(
        fw.list_elements("ssh").expect("list"),
        vec![(net("192.0.2.0/28"), None)]
    );
}

#[test]
fn setup_resolves_overlaps_with_existing_interval_elements() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    let nets = jail("nets", Protocol::All, &[], Verdict::Drop, true);
    let now = banwarden::now();
    fw.setup(std::slice::from_ref(&nets), &[], now)
        .expect("setup");
    fw.apply(
        &[
            ban("nets", "192.0.2.5", Some(now + 500)),
            ban("nets", "198.51.100.0/24", None),
        ],
        now,
    )
    .expect("ban");
    // A restarted daemon that only knows a wider ban and a narrower one.
    let bans = [
        BanEntry {
            jail: "nets".into(),
            net: net("192.0.2.0/24"),
            expires: Some(now + 100),
        },
        BanEntry {
            jail: "nets".into(),
            net: net("198.51.100.9"),
            expires: Some(now + 100),
        },
    ];
    fw.setup(&[nets], &bans, now)
        .expect("setup with overlapping bans");
    let mut got = fw.list_elements("nets").expect("list");
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, net("192.0.2.0/24"));
    assert!(
        got[0].1.is_some_and(|l| l > 400),
        "the wider ban took the longer expiry: {got:?}"
    );
    assert_eq!(got[1], (net("198.51.100.0/24"), None));
}

#[test]
fn intact_reports_a_missing_table_and_the_worker_rebuilds_it_with_current_bans() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let jails = vec![jail("ssh", Protocol::Tcp, &[PORT], Verdict::Drop, false)];
    let mut probe_fw = fw(&pair);
    assert!(!probe_fw
        .intact(&jails)
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
    pair.srv_nft(&["delete", "table", "inet", DEFAULT_TABLE]);
    assert!(!probe_fw.intact(&jails).expect("intact"));
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
fn worker_keeps_interval_sets_consistent() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let (etx, mut erx) = unbounded_channel();
    let opts = WorkerOptions {
        events: Some(etx),
        ..WorkerOptions::default()
    };
    let jails = vec![jail("nets", Protocol::Tcp, &[PORT], Verdict::Drop, true)];
    let (worker, ready) = spawn_worker(Box::new(fw(&pair)), jails, vec![], opts).expect("spawn");
    ready.blocking_recv().expect("setup result").expect("setup");
    let now = banwarden::now();
    worker
        .send(vec![ban("nets", &pair.atk_v4, Some(now + 600))])
        .expect("send");
    wait_event(&mut erx, Duration::from_secs(5), |e| {
        matches!(e, WorkerEvent::Applied { .. })
    });
    assert!(
        connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T),
        "only .2 is banned so far"
    );
    // .2/31 covers .2 and .3: the host element must make way for the prefix.
    let wider = format!("{}/31", pair.atk_v4);
    worker
        .send(vec![ban("nets", &wider, Some(now + 300))])
        .expect("send");
    wait_event(&mut erx, Duration::from_secs(5), |e| {
        matches!(e, WorkerEvent::Applied { .. })
    });
    assert_eq!(
        probe(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T),
        Probe::TimedOut,
        "second client now inside the banned prefix"
    );
    let elems = fw(&pair).list_elements("nets").expect("list");
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].0, net(&wider).trunc());
    assert!(
        elems[0].1.is_some_and(|l| l > 590),
        "took the longer expiry: {elems:?}"
    );
    worker.shutdown();
}

#[test]
fn ten_thousand_bans_in_one_transaction() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    fw.setup(
        &[jail("ssh", Protocol::Tcp, &[22], Verdict::Drop, false)],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    let now = banwarden::now();
    // 198.19.0.0 .. 198.19.39.15: set elements only, no traffic.
    let ops: Vec<FirewallOp> = (0..10_000u32)
        .map(|i| {
            ban(
                "ssh",
                &format!("198.19.{}.{}", i / 256, i % 256),
                Some(now + 600),
            )
        })
        .collect();
    let started = Instant::now();
    fw.apply(&ops, now).expect("10k bans");
    let took = started.elapsed();
    let started = Instant::now();
    fw.apply(&ops, now).expect("10k re-bans");
    let took_again = started.elapsed();
    println!("10,000 bans in one transaction: {took:?} (refreshing all 10,000: {took_again:?})");
    assert_eq!(fw.list_elements("ssh").expect("list").len(), 10_000);

    // Through the worker: many small sends end up in few transactions.
    let (etx, mut erx) = unbounded_channel();
    let opts = WorkerOptions {
        events: Some(etx),
        ..WorkerOptions::default()
    };
    let (worker, ready) = spawn_worker(
        Box::new(fw.clone()),
        vec![jail("ssh", Protocol::Tcp, &[22], Verdict::Drop, false)],
        vec![],
        opts,
    )
    .expect("spawn");
    ready.blocking_recv().expect("setup result").expect("setup");
    let started = Instant::now();
    for chunk in ops.chunks(100) {
        worker.send(chunk.to_vec()).expect("send");
    }
    let mut applied = 0;
    let mut transactions = 0;
    while applied < ops.len() {
        match wait_event(&mut erx, Duration::from_secs(10), |e| {
            matches!(e, WorkerEvent::Applied { .. } | WorkerEvent::Failed { .. })
        }) {
            WorkerEvent::Applied { ops, .. } => {
                applied += ops;
                transactions += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    println!(
        "worker: 10,000 bans in 100 sends -> {transactions} transaction(s), {:?}",
        started.elapsed()
    );
    assert!(transactions <= 5, "{transactions} transactions");
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
            jail("tcprej", Protocol::Tcp, &[PORT], Verdict::Reject, false),
            jail("allrej", Protocol::All, &[], Verdict::Reject, false),
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
            jail("all", Protocol::All, &[], Verdict::Drop, false),
            jail("ssh", Protocol::Tcp, &[PORT], Verdict::Drop, false),
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
