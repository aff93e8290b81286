use super::*;
use crate::firewall::{PortRange, Verdict};
use serde_json::Value;

fn jail(
    name: &str,
    protocol: Protocol,
    ports: Vec<PortRange>,
    verdict: Verdict,
    v4: u8,
    v6: u8,
) -> JailRules {
    JailRules {
        name: name.to_string(),
        protocol,
        ports,
        verdict,
        ipv4_prefix: v4,
        ipv6_prefix: v6,
        chains: crate::firewall::Chains::default(),
    }
}

fn plain(name: &str, v4: u8, v6: u8) -> JailRules {
    jail(name, Protocol::All, vec![], Verdict::Drop, v4, v6)
}

fn entry(jail: &str, net: &str, expires: Option<UnixTime>) -> BanEntry {
    BanEntry {
        jail: jail.into(),
        net: net.parse().unwrap(),
        expires,
    }
}

fn n(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn cmds(doc: &Nftables<'_>) -> Vec<Value> {
    serde_json::to_value(doc).unwrap()["nftables"]
        .as_array()
        .unwrap()
        .clone()
}

/// (verb, set, number of elements) of each element command.
fn shape(c: &[Value]) -> Vec<(String, String, usize)> {
    c.iter()
        .filter_map(|o| {
            let (verb, body) = o.as_object()?.iter().next()?;
            let el = body.get("element")?;
            Some((
                verb.clone(),
                el["name"].as_str()?.to_string(),
                el["elem"].as_array()?.len(),
            ))
        })
        .collect()
}

fn s(v: &str, n: &str, k: usize) -> (String, String, usize) {
    (v.to_string(), n.to_string(), k)
}

#[test]
fn setup_on_missing_table_creates_everything() {
    let fw = NftFirewall::new("bw", vec![]);
    let jails = [jail(
        "ssh",
        Protocol::Tcp,
        vec![PortRange { lo: 22, hi: 22 }, PortRange { lo: 80, hi: 90 }],
        Verdict::Reject,
        32,
        64,
    )];
    let bans = [
        entry("ssh", "192.0.2.1/32", Some(1600)),
        entry("ssh", "2001:db8:0:7::/64", None),
        entry("ssh", "192.0.2.9/32", Some(900)), // expired
        entry("gone", "192.0.2.2/32", None),
        entry("ssh", "198.51.100.0/24", None),
        entry("ssh", "2001:db8::1/128", Some(2000)),
    ];
    let (doc, items, shadow) = fw.setup_batch(None, &HashMap::new(), &jails, &bans, 1000);
    assert_eq!(items, 4, "expired and unknown-jail bans are skipped");
    let c = cmds(&doc);
    let text = serde_json::to_string(&doc).unwrap();
    assert_eq!(
        c[0],
        serde_json::json!({"add": {"table": {"family": "inet", "name": "bw"}}})
    );
    assert_eq!(c[1]["add"]["chain"]["prio"], -10);
    assert_eq!(c[1]["add"]["chain"]["hook"], "input");
    assert!(c[2]["flush"]["chain"].is_object());
    let sets: Vec<(String, Value)> = c
        .iter()
        .filter_map(|o| o.get("add")?.get("set"))
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["flags"].clone()))
        .collect();
    let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["ssh_v4", "ssh_v4net", "ssh_v6", "ssh_v6net"]);
    assert_eq!(sets[0].1, serde_json::json!(["timeout"]));
    assert_eq!(sets[1].1.as_array().unwrap().len(), 2, "interval, timeout");
    assert!(text.contains(r#""right":"@ssh_v4""#), "{text}");
    assert!(text.contains(r#""right":"@ssh_v6net""#), "{text}");
    assert!(text.contains(r#""ffff:ffff:ffff:ffff::""#), "{text}");
    assert!(text.contains(r#"{"set":[22,{"range":[80,90]}]}"#), "{text}");
    assert!(text.contains(r#""reject":{"type":"tcp reset"}"#), "{text}");
    assert!(text.contains(r#""comment":"banwarden:ssh""#), "{text}");
    assert!(
        text.contains(r#"{"elem":{"val":"192.0.2.1","timeout":600"#),
        "{text}"
    );
    assert!(!text.contains("192.0.2.9"), "expired ban skipped: {text}");
    // The /64 is a plain network address in the exact set; the other lengths
    // go to the interval sets. All sets are new, so known to be empty: one
    // add each, no guard.
    let els = shape(&c);
    assert_eq!(
        els,
        vec![
            s("add", "ssh_v4", 1),
            s("add", "ssh_v4net", 1),
            s("add", "ssh_v6", 1),
            s("add", "ssh_v6net", 1),
        ]
    );
    let elem_of = |set: &str| {
        c.iter()
            .rev()
            .find_map(|o| {
                let el = o.get("add")?.get("element")?;
                (el["name"] == set).then(|| el["elem"][0].clone())
            })
            .unwrap()
    };
    assert_eq!(elem_of("ssh_v6"), serde_json::json!("2001:db8:0:7::"));
    assert_eq!(
        elem_of("ssh_v4net"),
        serde_json::json!({"prefix": {"addr": "198.51.100.0", "len": 24}})
    );
    assert_eq!(elem_of("ssh_v6net")["elem"]["val"], "2001:db8::1");
    assert_eq!(shadow["ssh_v4net"].iter().count(), 1);
    assert!(shadow["ssh_v6net"].contains(&n("2001:db8::1/128")));
    assert_eq!(shadow["ssh_v4"].get(&n("192.0.2.1/32")), Some(Some(1600)));
    assert_eq!(shadow["ssh_v6"].get(&n("2001:db8:0:7::/64")), Some(None));
}

#[test]
fn setup_repairs_wrong_sets_and_chain_and_drops_stale_ones() {
    let fw = NftFirewall::new("bw", vec![]);
    // ssh_v4 holds hosts and its rule is unmasked: right for a /32 jail. ssh_v6
    // also holds hosts, but the jail now counts /64s.
    let listing = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "bw", "handle": 1}},
      {"set": {"family": "inet", "name": "ssh_v4", "table": "bw", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"]}},
      {"set": {"family": "inet", "name": "ssh_v6", "table": "bw", "type": "ipv6_addr", "handle": 2, "flags": ["timeout"]}},
      {"set": {"family": "inet", "name": "ssh_v4net", "table": "bw", "type": "ipv4_addr", "handle": 6, "flags": ["interval", "timeout"]}},
      {"set": {"family": "inet", "name": "ssh_v6net", "table": "bw", "type": "ipv6_addr", "handle": 7, "flags": ["interval", "timeout"]}},
      {"set": {"family": "inet", "name": "old_v4", "table": "bw", "type": "ipv4_addr", "handle": 3, "flags": ["timeout"]}},
      {"set": {"family": "inet", "name": "web_v4", "table": "bw", "type": "ipv4_addr", "handle": 8, "flags": ["interval", "timeout"]}},
      {"set": {"family": "inet", "name": "mine", "table": "bw", "type": "ipv4_addr", "handle": 9}},
      {"chain": {"family": "inet", "table": "bw", "name": "input", "handle": 4, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
      {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 5, "comment": "banwarden:ssh", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@ssh_v4"}}, {"drop": null}]}},
      {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 10, "comment": "banwarden:ssh", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@ssh_v6"}}, {"drop": null}]}},
      {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 11, "comment": "banwarden:web", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@web_v4"}}, {"drop": null}]}}]}"#;
    let state = listing::parse_table_state(listing).unwrap();
    assert_eq!(state.rule_comments.len(), 3);
    // web_v4 is an interval set from before exact sets existed.
    let jails = [plain("ssh", 32, 64), plain("web", 32, 128)];
    let (doc, _, _) = fw.setup_batch(Some(&state), &HashMap::new(), &jails, &[], 0);
    let c = cmds(&doc);
    let deleted: Vec<&str> = c
        .iter()
        .filter_map(|o| o.get("delete"))
        .filter_map(|d| d.get("set").or_else(|| d.get("chain")))
        .filter_map(|s| s["name"].as_str())
        .collect();
    // the chain (wrong prio), old_v4, both v6 sets of ssh (granularity changed)
    // and web_v4 (interval flag); ssh_v4, ssh_v4net and `mine` stay.
    assert_eq!(
        deleted,
        vec!["input", "old_v4", "ssh_v6", "ssh_v6net", "web_v4"]
    );
    let text = serde_json::to_string(&c).unwrap();
    assert!(text.contains(r#""drop":null"#), "{text}");
    assert!(!text.contains("dport"), "{text}");
}

#[test]
fn apply_groups_elements_per_set_and_guards_deletes() {
    let mut fw = NftFirewall::new("bw", vec![]);
    fw.jails.insert("ssh".into(), plain("ssh", 32, 64));
    let ban = |net: &str, expires| FirewallOp::Ban(entry("ssh", net, expires));
    let unban = |net: &str| FirewallOp::Unban {
        jail: "ssh".into(),
        net: n(net),
    };
    let ops = [
        ban("192.0.2.1/32", Some(110)),
        ban("192.0.2.2/32", None),
        ban("2001:db8:0:1::/64", Some(200)),
        ban("2001:db8::/48", Some(200)),
        unban("192.0.2.3/32"),
        unban("192.0.2.2/32"),         // last op per element wins
        ban("192.0.2.4/32", Some(50)), // expired
    ];
    let (doc, items, _) = fw.apply_batch(&ops, 100).unwrap();
    assert_eq!(items, 5);
    let c = cmds(&doc);
    assert_eq!(
        shape(&c),
        vec![
            s("add", "ssh_v4", 3),
            s("delete", "ssh_v4", 3),
            s("add", "ssh_v4", 1),
            s("add", "ssh_v6", 1),
            s("delete", "ssh_v6", 1),
            s("add", "ssh_v6", 1),
            s("add", "ssh_v6net", 1),
            s("delete", "ssh_v6net", 1),
            s("add", "ssh_v6net", 1),
        ]
    );
    assert_eq!(
        c[0]["add"]["element"]["elem"][1],
        serde_json::json!("192.0.2.2"),
        "guard add of an unban"
    );
    assert_eq!(
        c[2]["add"]["element"]["elem"][0],
        serde_json::json!({"elem": {"val": "192.0.2.1", "timeout": 10, "expires": null, "comment": null, "counter": null}})
    );
    assert_eq!(
        c[5]["add"]["element"]["elem"][0]["elem"]["val"],
        serde_json::json!("2001:db8:0:1::")
    );
    assert_eq!(
        c[8]["add"]["element"]["elem"][0]["elem"]["val"],
        serde_json::json!({"prefix": {"addr": "2001:db8::", "len": 48}})
    );
    assert!(fw
        .apply_batch(&[ban("192.0.2.4/32", Some(50))], 100)
        .is_none());

    // Once the exact set's contents are known, a new ban is one add; a re-ban
    // still refreshes, and an unban is still guarded (elements added by hand).
    let mut book = NetBook::default();
    book.insert_unchecked(n("192.0.2.1/32"), Some(150));
    book.insert_unchecked(n("192.0.2.9/32"), Some(99)); // expired, within the slack
    book.insert_unchecked(n("192.0.2.8/32"), Some(90)); // long expired
    fw.shadow = Some(HashMap::from([("ssh_v4".to_string(), book)]));
    let ops = [
        ban("192.0.2.1/32", Some(300)),
        ban("192.0.2.7/32", Some(300)),
        ban("192.0.2.8/32", Some(300)),
        ban("192.0.2.9/32", Some(300)),
        unban("192.0.2.3/32"),
    ];
    let (doc, items, delta) = fw.apply_batch(&ops, 100).unwrap();
    assert_eq!(items, 5);
    let c = cmds(&doc);
    assert_eq!(
        shape(&c),
        vec![
            s("add", "ssh_v4", 3),
            s("delete", "ssh_v4", 3),
            s("add", "ssh_v4", 4),
        ]
    );
    assert_eq!(
        c[0]["add"]["element"]["elem"][1],
        serde_json::json!("192.0.2.3")
    );
    let mut after = fw.shadow.clone().unwrap();
    delta.apply_to(&mut after);
    let known: Vec<IpNet> = after["ssh_v4"].iter().map(|(k, _)| *k).collect();
    assert_eq!(
        known,
        [
            "192.0.2.1/32",
            "192.0.2.7/32",
            "192.0.2.8/32",
            "192.0.2.9/32"
        ]
        .map(n)
    );
    assert_eq!(after["ssh_v4"].get(&n("192.0.2.7/32")), Some(Some(300)));
}

#[test]
fn apply_to_interval_sets_uses_what_is_known_to_be_present() {
    let mut fw = NftFirewall::new("bw", vec![]);
    // A /16 jail: hosts and /24s are both "other lengths".
    fw.jails.insert("net".into(), plain("net", 16, 64));
    let mut book = NetBook::default();
    book.insert_unchecked(n("192.0.2.5/32"), Some(500));
    book.insert_unchecked(n("198.51.100.0/24"), None);
    fw.shadow = Some(HashMap::from([("net_v4net".to_string(), book)]));
    let ban = |net: &str, expires| FirewallOp::Ban(entry("net", net, expires));
    let unban = |net: &str| FirewallOp::Unban {
        jail: "net".into(),
        net: n(net),
    };

    // Absent, or only covered by a wider ban: nothing to send.
    assert!(fw
        .apply_batch(&[unban("203.0.113.1/32"), unban("198.51.100.7/32")], 100)
        .is_none());

    let (doc, items, delta) = fw
        .apply_batch(
            &[
                ban("192.0.2.0/24", Some(200)),
                ban("198.51.100.0/24", Some(900)),
            ],
            100,
        )
        .unwrap();
    let mut shadow = fw.shadow.clone().unwrap();
    delta.apply_to(&mut shadow);
    assert_eq!(items, 3);
    let c = cmds(&doc);
    // the present /24 is refreshed (add, delete, add); the present host is
    // deleted unguarded; the new /24 is added once.
    assert_eq!(
        shape(&c),
        vec![
            s("add", "net_v4net", 1),
            s("delete", "net_v4net", 2),
            s("add", "net_v4net", 2)
        ]
    );
    assert_eq!(
        c[1]["delete"]["element"]["elem"],
        serde_json::json!(["192.0.2.5", {"prefix": {"addr": "198.51.100.0", "len": 24}}])
    );
    let after: Vec<(IpNet, Option<UnixTime>)> =
        shadow["net_v4net"].iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        after,
        vec![
            (n("192.0.2.0/24"), Some(500)),
            (n("198.51.100.0/24"), Some(900))
        ]
    );
    // The /16s themselves are exact: a plain network address, known new.
    let (doc, _, _) = fw.apply_batch(&[ban("10.1.0.0/16", None)], 100).unwrap();
    let c = cmds(&doc);
    assert_eq!(shape(&c), vec![s("add", "net_v4", 1)]);
    assert_eq!(c[0]["add"]["element"]["elem"][0], "10.1.0.0");
}

#[test]
fn setup_resolves_overlaps_with_elements_already_in_an_interval_set() {
    let fw = NftFirewall::new("bw", vec![]);
    let jails = [plain("net", 16, 64)];
    let existing = HashMap::from([(
        "net_v4net".to_string(),
        vec![(n("192.0.2.5/32"), Some(100)), (n("198.51.100.0/24"), None)],
    )]);
    let bans = [
        entry("net", "192.0.2.0/24", Some(1050)),
        entry("net", "198.51.100.7/32", Some(1050)),
    ];
    let (doc, items, shadow) = fw.setup_batch(None, &existing, &jails, &bans, 1000);
    assert_eq!(items, 2);
    let after: Vec<IpNet> = shadow["net_v4net"].iter().map(|(n, _)| *n).collect();
    assert_eq!(after, vec![n("192.0.2.0/24"), n("198.51.100.0/24")]);

    let c = cmds(&doc);
    let elems: Vec<(String, Value)> = c
        .iter()
        .filter_map(|o| {
            let (verb, body) = o.as_object()?.iter().next()?;
            Some((verb.clone(), body.get("element")?["elem"].clone()))
        })
        .collect();
    // 192.0.2.5 is present: deleted without a guard; the /24 is new: added
    // once, with the later expiry; 198.51.100.7 is inside a permanent ban.
    assert_eq!(
        elems[0],
        ("delete".to_string(), serde_json::json!(["192.0.2.5"]))
    );
    assert_eq!(elems[1].0, "add");
    assert_eq!(elems[1].1[0]["elem"]["timeout"], 100);
    assert_eq!(
        elems[1].1[0]["elem"]["val"],
        serde_json::json!({"prefix": {"addr": "192.0.2.0", "len": 24}})
    );
    assert_eq!(elems.len(), 2);
}

#[test]
fn spawn_failure_is_reported() {
    let mut fw = NftFirewall::new("bw", vec!["/nonexistent/banwarden-nft".into()]);
    match fw.intact(&[]) {
        Err(FirewallError::Spawn { program, .. }) => {
            assert_eq!(program, "/nonexistent/banwarden-nft")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nft_failure_carries_stderr() {
    // `sh -c` stands in for nft here: prints to stderr and fails.
    let fw = NftFirewall::new(
        "bw",
        vec![
            "sh".into(),
            "-c".into(),
            "echo 'Error: nope' >&2; exit 1".into(),
            "sh".into(),
        ],
    );
    match fw.run(&["-j", "-f", "-"], Some(b"{}")) {
        Err(FirewallError::Nft(msg)) => assert_eq!(msg, "Error: nope"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn apply_in_nft_syntax_says_what_the_json_says() {
    let mut fw = NftFirewall::new("bw", vec![]);
    fw.jails.insert("ssh".into(), plain("ssh", 32, 64));
    let ops = [
        FirewallOp::Ban(entry("ssh", "192.0.2.1/32", Some(110))),
        FirewallOp::Ban(entry("ssh", "192.0.2.2/32", None)),
        FirewallOp::Ban(entry("ssh", "2001:db8::/48", Some(200))),
        FirewallOp::Unban {
            jail: "ssh".into(),
            net: n("192.0.2.3/32"),
        },
    ];
    let (text, items, _) = fw.apply_text(&ops, 100).unwrap().unwrap();
    assert_eq!(items, 4);
    assert_eq!(
        text,
        "add element inet bw ssh_v4 { 192.0.2.1 timeout 10s, 192.0.2.2, 192.0.2.3 }\n\
         delete element inet bw ssh_v4 { 192.0.2.1, 192.0.2.2, 192.0.2.3 }\n\
         add element inet bw ssh_v4 { 192.0.2.1 timeout 10s, 192.0.2.2 }\n\
         add element inet bw ssh_v6net { 2001:db8::/48 timeout 100s }\n\
         delete element inet bw ssh_v6net { 2001:db8::/48 }\n\
         add element inet bw ssh_v6net { 2001:db8::/48 timeout 100s }\n",
        "unknown contents: guard, delete, add (as in JSON)"
    );
    let (_, json_items, _) = fw.apply_batch(&ops, 100).unwrap();
    assert_eq!(json_items, items);
    // Nothing to do: no transaction at all.
    assert!(fw
        .apply_text(
            &[FirewallOp::Ban(entry("ssh", "192.0.2.4/32", Some(50)))],
            100
        )
        .is_none());
}
