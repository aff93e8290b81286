//! Reading `nft -j list` output: the table's chain, sets and rules
//! ([`TableState`]) and set elements.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::schema::SetType;
use serde_json::Value;

use super::json::mask_len;
use super::{CHAIN, CHAIN_PRIORITY, FORWARD_CHAIN, FORWARD_PRIORITY};
use crate::firewall::FirewallError;

/// What a terse listing of the table says.
#[derive(Debug, Default)]
pub(crate) struct TableState {
    pub(crate) chain: Option<ChainState>,
    /// The chain [`FORWARD_CHAIN`], when it exists.
    pub(crate) forward: Option<ChainState>,
    /// Comments of the rules in [`FORWARD_CHAIN`].
    pub(crate) forward_comments: Vec<String>,
    pub(crate) sets: BTreeMap<String, SetState>,
    /// Comments of the rules in [`CHAIN`].
    pub(crate) rule_comments: Vec<String>,
    /// Set name → the prefix length the rules in [`CHAIN`] mask the source
    /// address to before looking it up in that set (the family's maximum when
    /// unmasked; `u8::MAX` when rules disagree). This is how the granularity of
    /// an exact set's elements is known across restarts.
    pub(crate) set_prefix: BTreeMap<String, u8>,
}

#[derive(Debug)]
pub(crate) struct ChainState {
    ty: Option<String>,
    hook: Option<String>,
    prio: Option<i64>,
    policy: Option<String>,
}

impl ChainState {
    pub(crate) fn is_expected(&self) -> bool {
        self.is(("input", CHAIN_PRIORITY))
    }

    /// Whether this is the forward chain as [`FORWARD_CHAIN`] is created.
    pub(crate) fn is_expected_forward(&self) -> bool {
        self.is(("forward", FORWARD_PRIORITY))
    }

    fn is(&self, (hook, prio): (&str, i32)) -> bool {
        self.ty.as_deref() == Some("filter")
            && self.hook.as_deref() == Some(hook)
            && self.prio == Some(i64::from(prio))
            && self.policy.as_deref() == Some("accept")
    }
}

#[derive(Debug)]
pub(crate) struct SetState {
    ty: String,
    flags: BTreeSet<String>,
}

impl SetState {
    /// Whether the set has type `ty` and exactly the flags `timeout` and, when
    /// `interval`, `interval`.
    pub(crate) fn matches(&self, ty: SetType, interval: bool) -> bool {
        let want_ty = match ty {
            SetType::Ipv4Addr => "ipv4_addr",
            SetType::Ipv6Addr => "ipv6_addr",
            _ => return false,
        };
        let mut want_flags = BTreeSet::from(["timeout".to_string()]);
        if interval {
            want_flags.insert("interval".to_string());
        }
        self.ty == want_ty && self.flags == want_flags
    }
}

fn nft_objects(json: &str) -> Result<Vec<Value>, FirewallError> {
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| FirewallError::Parse(format!("nft -j output: {e}")))?;
    match doc.get("nftables") {
        Some(Value::Array(objs)) => Ok(objs.clone()),
        _ => Err(FirewallError::Parse(
            "nft -j output has no `nftables` array".to_string(),
        )),
    }
}

pub(crate) fn parse_table_state(json: &str) -> Result<TableState, FirewallError> {
    let mut state = TableState::default();
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    for obj in nft_objects(json)? {
        if let Some(chain) = obj.get("chain") {
            let found = ChainState {
                ty: str_of(chain, "type"),
                hook: str_of(chain, "hook"),
                prio: chain.get("prio").and_then(Value::as_i64),
                policy: str_of(chain, "policy"),
            };
            match chain.get("name").and_then(Value::as_str) {
                Some(CHAIN) => state.chain = Some(found),
                Some(FORWARD_CHAIN) => state.forward = Some(found),
                _ => {}
            }
        } else if let Some(set) = obj.get("set") {
            let Some(name) = str_of(set, "name") else {
                continue;
            };
            let ty = match set.get("type") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(), // concatenated: never ours
                None => String::new(),
            };
            let flags = match set.get("flags") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => BTreeSet::from([s.clone()]),
                _ => BTreeSet::new(),
            };
            state.sets.insert(name, SetState { ty, flags });
        } else if let Some(rule) = obj.get("rule") {
            let comments = match rule.get("chain").and_then(Value::as_str) {
                Some(CHAIN) => &mut state.rule_comments,
                Some(FORWARD_CHAIN) => &mut state.forward_comments,
                _ => continue,
            };
            if let Some(c) = str_of(rule, "comment") {
                comments.push(c);
            }
            for stmt in rule
                .get("expr")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some((set, len)) = stmt.get("match").and_then(saddr_lookup) {
                    let known = state.set_prefix.entry(set).or_insert(len);
                    if *known != len {
                        *known = u8::MAX;
                    }
                }
            }
        }
    }
    Ok(state)
}

/// Whether an `nft -j list chains` output holds `table`'s chain as set up.
pub(crate) fn chain_present(json: &str, table: &str) -> Result<bool, FirewallError> {
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(nft_objects(json)?.iter().any(|obj| {
        obj.get("chain").is_some_and(|chain| {
            str_of(chain, "family").as_deref() == Some("inet")
                && str_of(chain, "table").as_deref() == Some(table)
                && str_of(chain, "name").as_deref() == Some(CHAIN)
                && ChainState {
                    ty: str_of(chain, "type"),
                    hook: str_of(chain, "hook"),
                    prio: chain.get("prio").and_then(Value::as_i64),
                    policy: str_of(chain, "policy"),
                }
                .is_expected()
        })
    }))
}

/// A match `<l3> saddr [& mask] == @set`: the set and the prefix length.
fn saddr_lookup(m: &Value) -> Option<(String, u8)> {
    let set = m.get("right")?.as_str()?.strip_prefix('@')?.to_string();
    let left = m.get("left")?;
    let (payload, len) = match left.get("&").and_then(Value::as_array) {
        Some(and) => {
            let mask: IpAddr = and.get(1)?.as_str()?.parse().ok()?;
            (and.first()?.get("payload")?, Some(mask_len(mask)?))
        }
        None => (left.get("payload")?, None),
    };
    if payload.get("field")?.as_str()? != "saddr" {
        return None;
    }
    let max = match payload.get("protocol")?.as_str()? {
        "ip" => 32,
        "ip6" => 128,
        _ => return None,
    };
    Some((set, len.unwrap_or(max)))
}

/// Elements of every set in an `nft -j list set` output.
pub(crate) fn parse_set_elements(json: &str) -> Result<Vec<(IpNet, Option<u64>)>, FirewallError> {
    let mut out = Vec::new();
    for obj in nft_objects(json)? {
        let Some(Value::Array(elems)) = obj.get("set").and_then(|s| s.get("elem")) else {
            continue;
        };
        for e in elems {
            match e.get("elem") {
                Some(inner) => {
                    let left = inner
                        .get("expires")
                        .or_else(|| inner.get("timeout"))
                        .and_then(Value::as_u64);
                    if let Some(net) = inner.get("val").and_then(parse_elem_value) {
                        out.push((net, left));
                    }
                }
                None => {
                    if let Some(net) = parse_elem_value(e) {
                        out.push((net, None));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn parse_elem_value(v: &Value) -> Option<IpNet> {
    match v {
        Value::String(s) => s.parse::<IpAddr>().ok().map(IpNet::from),
        Value::Object(_) => {
            if let Some(p) = v.get("prefix") {
                let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
                IpNet::new(addr, len).ok()
            } else if let Some(Value::Array(r)) = v.get("range") {
                // Only a degenerate range maps to one net.
                let lo: IpAddr = r.first()?.as_str()?.parse().ok()?;
                let hi: IpAddr = r.get(1)?.as_str()?.parse().ok()?;
                (lo == hi).then(|| IpNet::from(lo))
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_set_listing() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "q_v6", "table": "t",
          "type": "ipv6_addr", "handle": 9, "flags": ["interval", "timeout"], "elem": [
          {"elem": {"val": {"prefix": {"addr": "2001:db8::", "len": 48}}, "timeout": 600, "expires": 599}},
          "2001:db8:1::5", {"elem": {"val": "2001:db8:2::5", "timeout": 50, "expires": 49}}, {"range": ["10.0.0.1", "10.0.0.9"]}]}}]}"#;
        let got = parse_set_elements(listing).unwrap();
        assert_eq!(
            got,
            vec![
                ("2001:db8::/48".parse().unwrap(), Some(599)),
                ("2001:db8:1::5/128".parse().unwrap(), None),
                ("2001:db8:2::5/128".parse().unwrap(), Some(49)),
            ]
        );
        assert!(parse_set_elements("not json").is_err());
    }

    #[test]
    fn reads_each_sets_granularity_from_the_rules() {
        // As nft 1.0.6 lists `ip saddr @j_v4`, `ip6 saddr & ffff:ffff:ffff:ffff:: @j_v6`.
        let listing = r#"{"nftables": [
          {"set": {"family": "inet", "name": "j_v4", "table": "bw", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"]}},
          {"set": {"family": "inet", "name": "j_v6net", "table": "bw", "type": "ipv6_addr", "handle": 2, "flags": ["interval", "timeout"]}},
          {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 5, "comment": "banwarden:j", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@j_v4"}},
            {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 6, "comment": "banwarden:j", "expr": [
            {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "ip6", "field": "saddr"}}, "ffff:ffff:ffff:ffff::"]}, "right": "@j_v6"}},
            {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 7, "comment": "banwarden:k", "expr": [
            {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "ip", "field": "saddr"}}, "255.255.0.0"]}, "right": "@k_v4"}}, {"drop": null}]}},
          {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 8, "comment": "banwarden:k", "expr": [
            {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "ip", "field": "saddr"}}, "255.255.255.0"]}, "right": "@k_v4"}}, {"drop": null}]}}]}"#;
        let state = parse_table_state(listing).unwrap();
        assert_eq!(
            state.set_prefix,
            BTreeMap::from([
                ("j_v4".to_string(), 32),
                ("j_v6".to_string(), 64),
                ("k_v4".to_string(), u8::MAX),
            ])
        );
        assert!(state.sets["j_v4"].matches(SetType::Ipv4Addr, false));
        assert!(!state.sets["j_v4"].matches(SetType::Ipv4Addr, true));
        assert!(state.sets["j_v6net"].matches(SetType::Ipv6Addr, true));
        assert!(state.chain.is_none());
    }
}
