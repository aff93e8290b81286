//! Set granularity (exact sets of network addresses, interval sets for other
//! lengths), reconciliation by `setup`, and volume.

use super::*;

#[test]
fn a_64_jail_bans_the_whole_64_with_one_plain_element() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let _l = listen(&pair.srv, "::", PORT);
    let mut fw = fw(&pair);
    let web = jail(
        "web",
        Protocol::Tcp,
        &[PORT],
        Verdict::Drop,
        DEFAULT_PREFIXES,
    );
    fw.setup(std::slice::from_ref(&web), &[], banwarden::now())
        .expect("setup");
    let chain = pair.srv_nft(&["list", "chain", "inet", DEFAULT_TABLE, "input"]);
    assert!(
        chain.contains("ip6 saddr & ffff:ffff:ffff:ffff:: == @web_v6"),
        "{chain}"
    );
    assert!(chain.contains("ip saddr @web_v4 "), "{chain}");
    assert!(connects(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, T));

    // The jail counted 2001:db8:X::2 as 2001:db8:X::/64.
    let prefix = IpNet::new(net(&pair.atk_v6).addr(), 64)
        .expect("a /64")
        .trunc();
    let now = banwarden::now();
    fw.apply(
        &[FirewallOp::Ban(BanEntry {
            jail: "web".into(),
            net: prefix,
            expires: Some(now + 600),
        })],
        now,
    )
    .expect("ban");
    let set = pair.srv_nft(&["-j", "list", "set", "inet", DEFAULT_TABLE, "web_v6"]);
    assert!(
        set.contains(&format!(r#""val": "{}""#, prefix.network())),
        "the network address as a plain element: {set}"
    );
    let elems = fw.list_elements("web").expect("list");
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0].0, prefix);
    assert!(elems[0].1.is_some_and(|l| l > 590), "{elems:?}");
    assert_eq!(
        probe(&pair.atk, &pair.atk_v6, &pair.srv_v6, PORT, T),
        Probe::TimedOut,
        "the offender is blocked"
    );
    assert_eq!(
        probe(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, T),
        Probe::TimedOut,
        "so is the second client in the same /64"
    );
    assert!(
        connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, T),
        "IPv4 unaffected"
    );
    assert!(fw.intact(std::slice::from_ref(&web)).expect("intact"));

    // A manual /24 in this /32 jail goes to the interval set, and blocks both
    // IPv4 clients until it is lifted.
    let v4net = format!("{}/24", pair.atk_v4);
    fw.apply(&[ban("web", &v4net, None)], now).expect("ban /24");
    let v4 = pair.srv_nft(&["-j", "list", "set", "inet", DEFAULT_TABLE, "web_v4net"]);
    assert!(v4.contains(r#""len": 24"#), "{v4}");
    for src in [&pair.atk_v4, &pair.atk2_v4] {
        assert_eq!(
            probe(&pair.atk, src, &pair.srv_v4, PORT, T),
            Probe::TimedOut,
            "{src}"
        );
    }
    fw.apply(
        &[unban("web", &v4net), unban("web", &prefix.to_string())],
        now,
    )
    .expect("unban");
    assert!(fw.list_elements("web").expect("list").is_empty());
    assert!(connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, T));
    assert!(connects(&pair.atk, &pair.atk2_v6, &pair.srv_v6, PORT, T));
}

#[test]
fn setup_is_idempotent_keeps_bans_and_reconciles_jails() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    let ssh = jail(
        "ssh",
        Protocol::Tcp,
        &[22, PORT],
        Verdict::Drop,
        DEFAULT_PREFIXES,
    );
    let old = jail(
        "old",
        Protocol::Udp,
        &[53],
        Verdict::Reject,
        DEFAULT_PREFIXES,
    );
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
        4,
        "one rule per set, not duplicated:\n{chain}"
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

    // Drop a jail, make another count /28s: its v4 sets hold hosts, so they
    // are recreated (the v6 ones stay, with their elements).
    let ssh28 = JailRules {
        ipv4_prefix: 28,
        ..ssh.clone()
    };
    let later = [BanEntry {
        jail: "ssh".into(),
        net: net("192.0.2.0/28"),
        expires: None,
    }];
    fw.setup(std::slice::from_ref(&ssh28), &later, now)
        .expect("reconciling setup");
    let table = pair.srv_nft(&["-t", "list", "table", "inet", DEFAULT_TABLE]);
    assert!(
        !table.contains("old_v4") && !table.contains("banwarden:old"),
        "removed jail is gone:\n{table}"
    );
    assert!(
        table.contains("ip saddr & 255.255.255.240 == @ssh_v4"),
        "{table}"
    );
    assert!(fw.intact(std::slice::from_ref(&ssh28)).expect("intact"));
    assert!(
        !fw.intact(&[ssh, old]).expect("intact"),
        "old jail missing, ssh's granularity differs"
    );
    let v4 = pair.srv_nft(&["-j", "list", "set", "inet", DEFAULT_TABLE, "ssh_v4"]);
    assert!(
        v4.contains(r#""elem": ["192.0.2.0"]"#),
        "a plain element: {v4}"
    );
    assert_eq!(
        fw.list_elements("ssh").expect("list"),
        vec![(net("192.0.2.0/28"), None), (net("2001:db8:ffff::2"), None)]
    );
}

#[test]
fn setup_resolves_overlaps_with_existing_interval_elements() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let mut fw = fw(&pair);
    let nets = jail("nets", Protocol::All, &[], Verdict::Drop, (16, 64));
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
    let jails = vec![jail(
        "nets",
        Protocol::Tcp,
        &[PORT],
        Verdict::Drop,
        (16, 64),
    )];
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
        &[jail(
            "ssh",
            Protocol::Tcp,
            &[22],
            Verdict::Drop,
            DEFAULT_PREFIXES,
        )],
        &[],
        banwarden::now(),
    )
    .expect("setup");
    let lone_empty = median_lone_ban(&mut fw, 1);
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
    assert_eq!(
        fw.list_elements("ssh").expect("list").len(),
        10_000 + 9,
        "with the nine lone bans"
    );
    // nft reads every element of a table's interval sets before each
    // transaction, so with 10,000 in an interval set one ban cost ~30 ms; a
    // plain set costs nothing per transaction.
    let lone_full = median_lone_ban(&mut fw, 2);
    println!(
        "one ban, median of 9: {lone_empty:?} with empty sets, {lone_full:?} beside 10,000 bans"
    );
    let table = pair.srv_nft(&["-t", "list", "table", "inet", DEFAULT_TABLE]);
    assert!(
        table.contains("set ssh_v4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n"),
        "the hosts of a /64 jail go to a plain set:\n{table}"
    );
    // With interval sets this took 14 s; a plain set takes a fraction of one.
    assert!(
        took < Duration::from_secs(5) && took_again < Duration::from_secs(5),
        "{took:?} / {took_again:?}"
    );

    // Through the worker: many small sends end up in few transactions.
    let (etx, mut erx) = unbounded_channel();
    let opts = WorkerOptions {
        events: Some(etx),
        ..WorkerOptions::default()
    };
    let (worker, ready) = spawn_worker(
        Box::new(fw.clone()),
        vec![jail(
            "ssh",
            Protocol::Tcp,
            &[22],
            Verdict::Drop,
            DEFAULT_PREFIXES,
        )],
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

/// The median time of nine one-ban transactions (203.0.113.`round`x).
fn median_lone_ban(fw: &mut NftFirewall, round: u8) -> Duration {
    let mut took: Vec<Duration> = (0..9u8)
        .map(|i| {
            let op = ban("ssh", &format!("203.0.113.{}", round * 10 + i), None);
            let started = Instant::now();
            fw.apply(&[op], banwarden::now()).expect("one ban");
            started.elapsed()
        })
        .collect();
    took.sort();
    took[4]
}
