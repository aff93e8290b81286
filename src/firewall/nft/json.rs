//! Construction of the nft JSON objects: table, chain, sets, rules and set
//! elements, with the `nftables` crate's schema types. Pure functions; nothing
//! here runs nft.
//!
//! A jail's rules, per family: one matching the plain set of network addresses
//! ([`SetKind::Exact`]) against the source address masked to the jail's prefix
//! (`ip saddr & 255.255.255.0 == @J_v4`; no mask at /32 or /128), and one
//! matching the interval set of other-length bans (`ip saddr == @J_v4net`).
//! nft 1.0.6 lists the masked match as
//! `{"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "ip",
//! "field": "saddr"}}, "255.255.255.0"]}, "right": "@J_v4"}}` and accepts it
//! back in that form (checked in a network namespace).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use nftables::expr::{
    BinaryOperation, CTDir, Elem, Expression, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Prefix, Range, SetItem, CT,
};
use nftables::schema::{
    Chain, Element, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Counter, Match, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::{
    set_name, CHAIN, CHAIN_PRIORITY, FORWARD_CHAIN, FORWARD_PRIORITY, RULE_COMMENT_PREFIX,
};
use crate::firewall::{JailRules, PortRange, Protocol, SetKind, Verdict};

/// The address families: nft payload protocol, a sample address (for set names)
/// and the set type.
pub(crate) const FAMILIES: [(&str, IpAddr, SetType); 2] = [
    ("ip", IpAddr::V4(Ipv4Addr::UNSPECIFIED), SetType::Ipv4Addr),
    ("ip6", IpAddr::V6(Ipv6Addr::UNSPECIFIED), SetType::Ipv6Addr),
];

pub(crate) fn table_obj(table: &str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::INet,
        name: Cow::Owned(table.to_string()),
        handle: None,
    })
}

/// A set of `ty` addresses with timeouts; `interval` adds `flags interval`.
pub(crate) fn set_obj(
    table: &str,
    name: &str,
    ty: SetType,
    interval: bool,
) -> NfListObject<'static> {
    let mut flags = HashSet::new();
    flags.insert(SetFlag::Timeout);
    if interval {
        flags.insert(SetFlag::Interval);
    }
    NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(name.to_string()),
        handle: None,
        set_type: SetTypeValue::Single(ty),
        policy: None,
        flags: Some(flags),
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

/// The chain [`CHAIN`]; `base`: with its hook, priority and policy (for `add`),
/// else just its name (for `flush`/`delete`).
pub(crate) fn chain_obj(table: &str, base: bool) -> Chain<'static> {
    base_chain(table, CHAIN, NfHook::Input, CHAIN_PRIORITY, base)
}

/// The chain [`FORWARD_CHAIN`] (hook forward), as [`chain_obj`].
pub(crate) fn forward_chain_obj(table: &str, base: bool) -> Chain<'static> {
    base_chain(
        table,
        FORWARD_CHAIN,
        NfHook::Forward,
        FORWARD_PRIORITY,
        base,
    )
}

fn base_chain(
    table: &str,
    name: &'static str,
    hook: NfHook,
    prio: i32,
    base: bool,
) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Borrowed(name),
        newname: None,
        handle: None,
        _type: base.then_some(NfChainType::Filter),
        hook: base.then_some(hook),
        prio: base.then_some(prio),
        dev: None,
        policy: base.then_some(NfChainPolicy::Accept),
    }
}

/// Elements to add to or delete from set `name`.
pub(crate) fn element_obj(
    table: &str,
    name: &str,
    elem: Vec<Expression<'static>>,
) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(name.to_string()),
        elem: Cow::Owned(elem),
    })
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

/// The netmask of a `len`-bit prefix in the family of `sample`.
pub(crate) fn netmask(sample: IpAddr, len: u8) -> IpAddr {
    match sample {
        IpAddr::V4(_) => {
            let bits = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(_) => {
            let bits = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// The length of the prefix whose netmask is `mask`, if it is one.
pub(crate) fn mask_len(mask: IpAddr) -> Option<u8> {
    let (ones, zeros, max) = match mask {
        IpAddr::V4(m) => {
            let b = u32::from(m);
            (b.leading_ones(), b.trailing_zeros(), 32)
        }
        IpAddr::V6(m) => {
            let b = u128::from(m);
            (b.leading_ones(), b.trailing_zeros(), 128)
        }
    };
    (ones + zeros == max).then(|| u8::try_from(ones).ok())?
}

/// `<l3> saddr [& mask] == @set`: the source address, masked to `prefix` when
/// that is shorter than the family's maximum.
fn saddr_match(l3: &'static str, sample: IpAddr, prefix: u8, set: String) -> Statement<'static> {
    let max = if sample.is_ipv4() { 32 } else { 128 };
    let left = if prefix < max {
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
            payload(l3, "saddr"),
            Expression::String(Cow::Owned(netmask(sample, prefix).to_string())),
        )))
    } else {
        payload(l3, "saddr")
    };
    Statement::Match(Match {
        left,
        right: Expression::String(Cow::Owned(format!("@{set}"))),
        op: Operator::EQ,
    })
}

/// Lets IPv6 neighbour discovery through this chain: an all-protocol ban of an
/// on-link neighbour would otherwise stop the host from resolving it, so not
/// even a reject could be delivered. (Ends only this chain: other chains still
/// see the packet.)
pub(crate) fn nd_rule(table: &str) -> Rule<'static> {
    let types = ["nd-neighbor-solicit", "nd-neighbor-advert"]
        .into_iter()
        .map(|t| SetItem::Element(Expression::String(Cow::Borrowed(t))))
        .collect();
    Rule {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Borrowed(CHAIN),
        expr: Cow::Owned(vec![
            Statement::Match(Match {
                left: payload("icmpv6", "type"),
                right: Expression::Named(NamedExpression::Set(types)),
                op: Operator::EQ,
            }),
            Statement::Accept(None),
        ]),
        handle: None,
        index: None,
        comment: Some(Cow::Borrowed("banwarden (neighbour discovery)")),
    }
}

/// The rules of one jail in every chain its `chains` name: per family and set
/// kind, the set match, the protocol and port match, a counter and the
/// verdict.
pub(crate) fn jail_rules(table: &str, jail: &JailRules) -> Vec<Rule<'static>> {
    let mut rules = Vec::new();
    if jail.chains.input {
        rules.extend(chain_rules(table, jail, CHAIN));
    }
    if jail.chains.forward {
        rules.extend(chain_rules(table, jail, FORWARD_CHAIN));
    }
    rules
}

/// The rules of one jail in `chain`. In the forward chain the ports are those
/// the client addressed (`ct original proto-dst`): a Docker-published port is
/// DNATed to the container's port before the forward hook, and `ports` name
/// what the client sees, as they do in the input chain.
fn chain_rules(table: &str, jail: &JailRules, chain: &'static str) -> Vec<Rule<'static>> {
    let forward = chain == FORWARD_CHAIN;
    let l4 = match jail.protocol {
        Protocol::All => None,
        Protocol::Tcp => Some("tcp"),
        Protocol::Udp => Some("udp"),
    };
    // (extra match, verdict) per rule.
    let mut variants: Vec<(Option<Statement<'static>>, Statement<'static>)> = Vec::new();
    let proto_match = l4.map(|proto| match jail.ports.as_slice() {
        [] => l4proto_match(proto),
        ports => dport_match(proto, ports, forward),
    });
    match (jail.verdict, jail.protocol) {
        (Verdict::Drop, _) => variants.push((proto_match, Statement::Drop(None))),
        (Verdict::Reject, Protocol::Tcp) => variants.push((proto_match, tcp_reset())),
        (Verdict::Reject, Protocol::Udp) => variants.push((proto_match, Statement::Reject(None))),
        (Verdict::Reject, Protocol::All) => {
            // TCP gets a reset; everything else the family's default (ICMP port
            // unreachable).
            variants.push((Some(l4proto_match("tcp")), tcp_reset()));
            variants.push((None, Statement::Reject(None)));
        }
    }
    let mut rules = Vec::new();
    for (l3, sample, _) in FAMILIES {
        let max = if sample.is_ipv4() { 32 } else { 128 };
        for (kind, prefix) in [
            (SetKind::Exact, jail.prefix_len(sample)),
            (SetKind::Net, max),
        ] {
            let saddr = saddr_match(l3, sample, prefix, set_name(&jail.name, sample, kind));
            for (extra, verdict) in &variants {
                let mut expr = vec![saddr.clone()];
                if let (true, Some(proto), false) = (forward, l4, jail.ports.is_empty()) {
                    // `ct ... proto-dst` needs the transport named first.
                    expr.push(l4proto_match(proto));
                }
                expr.extend(extra.clone());
                expr.push(Statement::Counter(Counter::Anonymous(None)));
                expr.push(verdict.clone());
                rules.push(Rule {
                    family: NfFamily::INet,
                    table: Cow::Owned(table.to_string()),
                    chain: Cow::Borrowed(chain),
                    expr: Cow::Owned(expr),
                    handle: None,
                    index: None,
                    comment: Some(Cow::Owned(format!("{RULE_COMMENT_PREFIX}{}", jail.name))),
                });
            }
        }
    }
    rules
}

fn tcp_reset() -> Statement<'static> {
    Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None)))
}

fn l4proto_match(proto: &'static str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::L4proto,
        })),
        right: Expression::String(Cow::Borrowed(proto)),
        op: Operator::EQ,
    })
}

/// `<proto> dport PORTS`, or with `original` the destination port of the
/// connection as the client opened it (before any DNAT).
fn dport_match(proto: &'static str, ports: &[PortRange], original: bool) -> Statement<'static> {
    let one = |p: &PortRange| {
        if p.lo == p.hi {
            Expression::Number(u32::from(p.lo))
        } else {
            Expression::Range(Box::new(Range {
                range: [
                    Expression::Number(u32::from(p.lo)),
                    Expression::Number(u32::from(p.hi)),
                ],
            }))
        }
    };
    let right = match ports {
        [single] => one(single),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|p| SetItem::Element(one(p))).collect(),
        )),
    };
    let left = if original {
        Expression::Named(NamedExpression::CT(CT {
            key: Cow::Borrowed("proto-dst"),
            family: None,
            dir: Some(CTDir::Original),
        }))
    } else {
        payload(proto, "dport")
    };
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

pub(crate) fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// The element key for `net` in a set of `kind`: in an exact set its network
/// address; in an interval set a plain address for a host, else a prefix.
pub(crate) fn elem_key(net: &IpNet, kind: SetKind) -> Expression<'static> {
    let net = net.trunc();
    if kind == SetKind::Exact || is_host(&net) {
        Expression::String(Cow::Owned(net.network().to_string()))
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
            len: u32::from(net.prefix_len()),
        }))
    }
}

/// [`elem_key`] with a timeout in seconds (`None`: permanent).
pub(crate) fn elem_with_timeout(
    net: &IpNet,
    kind: SetKind,
    timeout: Option<u32>,
) -> Expression<'static> {
    match timeout {
        None => elem_key(net, kind),
        Some(t) => Expression::Named(NamedExpression::Elem(Elem {
            val: Box::new(elem_key(net, kind)),
            timeout: Some(t),
            expires: None,
            comment: None,
            counter: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jail(protocol: Protocol, verdict: Verdict, v4: u8, v6: u8) -> JailRules {
        JailRules {
            name: "j".into(),
            protocol,
            ports: vec![],
            verdict,
            ipv4_prefix: v4,
            ipv6_prefix: v6,
            chains: crate::firewall::Chains::default(),
        }
    }

    #[test]
    fn masks_round_trip() {
        let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(netmask(v4, 24).to_string(), "255.255.255.0");
        assert_eq!(netmask(v4, 32).to_string(), "255.255.255.255");
        assert_eq!(netmask(v6, 64).to_string(), "ffff:ffff:ffff:ffff::");
        assert_eq!(netmask(v6, 0).to_string(), "::");
        for len in [0u8, 8, 17, 32] {
            assert_eq!(mask_len(netmask(v4, len)), Some(len));
        }
        for len in [0u8, 48, 64, 127, 128] {
            assert_eq!(mask_len(netmask(v6, len)), Some(len));
        }
        assert_eq!(mask_len("255.0.255.0".parse().unwrap()), None);
    }

    #[test]
    fn exact_sets_match_the_masked_source_and_net_sets_the_plain_one() {
        let rules = jail_rules("bw", &jail(Protocol::All, Verdict::Drop, 32, 64));
        let v: Vec<serde_json::Value> = rules
            .iter()
            .map(|r| serde_json::to_value(&r.expr).unwrap()[0]["match"].clone())
            .collect();
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[0],
            json!({"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@j_v4"})
        );
        assert_eq!(v[1]["right"], "@j_v4net");
        assert_eq!(v[1]["left"]["payload"]["protocol"], "ip");
        assert_eq!(
            v[2],
            json!({"op": "==", "left": {"&": [{"payload": {"protocol": "ip6", "field": "saddr"}}, "ffff:ffff:ffff:ffff::"]}, "right": "@j_v6"})
        );
        assert_eq!(v[3]["right"], "@j_v6net");
        assert!(v[3]["left"].get("payload").is_some());
        let text = serde_json::to_string(&rules).unwrap();
        assert_eq!(text.matches(r#""comment":"banwarden:j""#).count(), 4);
    }

    #[test]
    fn reject_all_rejects_tcp_with_reset_and_the_rest_by_default() {
        let rules = jail_rules("bw", &jail(Protocol::All, Verdict::Reject, 24, 128));
        assert_eq!(rules.len(), 8, "2 families x 2 sets x 2 verdicts");
        let text = serde_json::to_string(&rules).unwrap();
        assert!(text.contains(r#""right":"tcp""#), "{text}");
        assert!(text.contains(r#""reject":null"#), "{text}");
        assert!(text.contains(r#""255.255.255.0""#), "{text}");
        assert!(!text.contains("ffff:"), "no v6 mask at /128: {text}");
        let udp = jail_rules("bw", &jail(Protocol::Udp, Verdict::Drop, 32, 64));
        let text = serde_json::to_string(&udp).unwrap();
        assert!(
            text.contains(r#"{"meta":{"key":"l4proto"}},"right":"udp""#),
            "{text}"
        );
    }

    #[test]
    fn element_keys_by_set_kind() {
        let n = |s: &str| -> IpNet { s.parse().unwrap() };
        let key = |s: &str, k| serde_json::to_value(elem_key(&n(s), k)).unwrap();
        assert_eq!(
            key("2001:db8:1::7/64", SetKind::Exact),
            json!("2001:db8:1::")
        );
        assert_eq!(key("192.0.2.1/32", SetKind::Exact), json!("192.0.2.1"));
        assert_eq!(key("192.0.2.1/32", SetKind::Net), json!("192.0.2.1"));
        assert_eq!(
            key("2001:db8::/48", SetKind::Net),
            json!({"prefix": {"addr": "2001:db8::", "len": 48}})
        );
        assert_eq!(
            serde_json::to_value(elem_with_timeout(
                &n("192.0.2.0/24"),
                SetKind::Exact,
                Some(9)
            ))
            .unwrap(),
            json!({"elem": {"val": "192.0.2.0", "timeout": 9, "expires": null, "comment": null, "counter": null}})
        );
    }

    #[test]
    fn forward_rules_match_the_port_the_client_addressed() {
        let mut j = jail(Protocol::Tcp, Verdict::Drop, 32, 64);
        j.ports = vec![PortRange { lo: 8080, hi: 8080 }];
        j.chains = crate::firewall::Chains {
            input: true,
            forward: true,
        };
        let rules = jail_rules("bw", &j);
        assert_eq!(rules.len(), 8, "2 chains x 2 families x 2 sets");
        let fwd: Vec<_> = rules.iter().filter(|r| r.chain == FORWARD_CHAIN).collect();
        assert_eq!(fwd.len(), 4);
        let text = serde_json::to_string(&fwd[0].expr).unwrap();
        assert!(
            text.contains(r#"{"meta":{"key":"l4proto"}},"right":"tcp""#)
                && text.contains(r#"{"ct":{"key":"proto-dst","dir":"original"}},"right":8080"#),
            "{text}"
        );
        let input = serde_json::to_string(&rules[0].expr).unwrap();
        assert!(input.contains(r#""field":"dport""#), "{input}");
    }
}
