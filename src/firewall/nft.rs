//! nftables backend: [`NftFirewall`] turns jails and bans into one `inet` table.
//!
//! Owns exactly one table (family `inet`, name from config, default
//! [`DEFAULT_TABLE`]): its base chain [`CHAIN`], one set per jail and address
//! family (`J_v4`, `J_v6`) and the rules that match them (comment
//! `banwarden:J`). It must never read-modify-write, flush or delete anything
//! outside that table, never run `nft` through a shell, and never run one `nft`
//! process per ban: every [`Firewall`] call is one `nft -j -f -` transaction
//! (plus, for `setup`, one terse listing of the table).
//!
//! The JSON is built with the `nftables` crate's schema types. Behaviour of nft
//! 1.0.6 that the code relies on (checked in a network namespace):
//! - `add table|chain|set|element` is idempotent when the object exists with the
//!   same spec; `add set`/`add chain` with a *different* spec fails, so
//!   `setup` deletes and recreates such objects.
//! - `delete element` of an absent element fails the whole transaction, so every
//!   delete is preceded by an `add` of the same element in the same transaction.
//! - A plain `add element` may keep the old timeout (kernel dependent), so a ban
//!   is written as `add` (guarantees presence), `delete`, `add` (fresh timeout).
//! - `flush chain` followed by `delete set` in one transaction works: the rules
//!   referencing the set are gone by then.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range};
use nftables::schema::{Chain, Element, FlushObject, NfCmd, NfListObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table};
use nftables::stmt::{Counter, Match, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::Value;

use super::{BanEntry, Firewall, FirewallError, FirewallOp, JailRules, PortRange, Protocol, Verdict};
use crate::UnixTime;

/// The table name used when the configuration names none.
pub const DEFAULT_TABLE: &str = "banwarden";
/// The one base chain in the table.
pub const CHAIN: &str = "input";
/// Hook priority of [`CHAIN`]: before the usual `filter` chains at 0.
pub const CHAIN_PRIORITY: i32 = -10;
/// Every rule carries the comment `banwarden:<jail>`.
pub const RULE_COMMENT_PREFIX: &str = "banwarden:";

/// The nftables backend. Cheap to clone; holds no kernel state of its own.
#[derive(Debug, Clone)]
pub struct NftFirewall {
    table: String,
    nft_cmd: Vec<String>,
}

/// The name of jail `jail`'s set for the family of `addr`.
pub fn set_name(jail: &str, addr: IpAddr) -> String {
    format!("{jail}_{}", super::family_suffix(addr))
}

impl NftFirewall {
    /// `nft_cmd` is the argv prefix that runs nft, e.g. `["nft"]` or
    /// `["ip", "netns", "exec", "NS", "nft"]`. Empty means `["nft"]`.
    pub fn new(table: &str, nft_cmd: Vec<String>) -> Self {
        let nft_cmd = if nft_cmd.is_empty() { vec!["nft".to_string()] } else { nft_cmd };
        NftFirewall { table: table.to_string(), nft_cmd }
    }

    /// The host's `nft` from `PATH`.
    pub fn system(table: &str) -> Self {
        Self::new(table, vec!["nft".to_string()])
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The elements of `jail`'s two sets (v4 then v6), each with the seconds left
    /// before it expires (`None`: permanent).
    pub fn list_elements(&self, jail: &str) -> Result<Vec<(IpNet, Option<u64>)>, FirewallError> {
        let mut out = Vec::new();
        for suffix in ["v4", "v6"] {
            let name = format!("{jail}_{suffix}");
            let json = self.run(&["-j", "list", "set", "inet", &self.table, &name], None)?;
            out.extend(parse_set_elements(&json)?);
        }
        Ok(out)
    }

    /// The table's chains, sets and rules (without set elements), or `None` when
    /// the table does not exist.
    fn state(&self) -> Result<Option<TableState>, FirewallError> {
        match self.run(&["-t", "-j", "list", "table", "inet", &self.table], None) {
            Ok(json) => parse_table_state(&json).map(Some),
            Err(FirewallError::Nft(msg)) if msg.contains("No such file or directory") && msg.contains("list table") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs one transaction.
    fn transact(&self, doc: &Nftables<'_>, what: &str, items: usize) -> Result<(), FirewallError> {
        let payload = serde_json::to_vec(doc).map_err(|e| FirewallError::Parse(format!("serialising the batch: {e}")))?;
        let started = Instant::now();
        self.run(&["-j", "-f", "-"], Some(&payload))?;
        tracing::debug!(
            table = %self.table,
            what,
            items,
            bytes = payload.len(),
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "nft transaction applied"
        );
        Ok(())
    }

    /// Runs `nft_cmd ++ args`, feeding `input` on stdin. Non-zero exit: the
    /// trimmed stderr as [`FirewallError::Nft`].
    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, FirewallError> {
        let (program, prefix) = match self.nft_cmd.split_first() {
            Some((p, rest)) => (p.as_str(), rest),
            None => ("nft", &[][..]),
        };
        let spawn_err = |source| FirewallError::Spawn { program: program.to_string(), source };
        let mut child = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let stdin = child.stdin.take();
        // Feed stdin from a second thread so a large payload cannot deadlock
        // against nft filling its stdout/stderr pipes.
        let (write_result, output) = std::thread::scope(|s| {
            let writer = s.spawn(move || match (stdin, input) {
                (Some(mut stdin), Some(data)) => stdin.write_all(data),
                _ => Ok(()),
            });
            let output = child.wait_with_output();
            let write_result = writer.join();
            (write_result, output)
        });
        let output = output.map_err(spawn_err)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            let msg = if stderr.is_empty() { format!("{program} exited with {}", output.status) } else { stderr };
            return Err(FirewallError::Nft(msg));
        }
        match write_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(FirewallError::Nft(format!("could not write the batch to {program}: {e}"))),
            Err(_) => return Err(FirewallError::Nft(format!("the thread feeding {program} panicked"))),
        }
        String::from_utf8(output.stdout).map_err(|e| FirewallError::Parse(format!("{program} printed invalid UTF-8: {e}")))
    }

    fn set_obj(&self, name: String, ty: SetType, intervals: bool) -> NfListObject<'static> {
        let mut flags = std::collections::HashSet::new();
        flags.insert(SetFlag::Timeout);
        if intervals {
            flags.insert(SetFlag::Interval);
        }
        NfListObject::Set(Box::new(Set {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            name: Cow::Owned(name),
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

    fn chain_obj(&self, base: bool) -> Chain<'static> {
        Chain {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            name: Cow::Borrowed(CHAIN),
            newname: None,
            handle: None,
            _type: base.then_some(NfChainType::Filter),
            hook: base.then_some(NfHook::Input),
            prio: base.then_some(CHAIN_PRIORITY),
            dev: None,
            policy: base.then_some(NfChainPolicy::Accept),
        }
    }

    /// The `setup` transaction for the table as `state` describes it.
    pub(crate) fn setup_batch(
        &self,
        state: Option<&TableState>,
        jails: &[JailRules],
        bans: &[BanEntry],
        now: UnixTime,
    ) -> (Nftables<'static>, usize) {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: Cow::Owned(self.table.clone()),
            handle: None,
        }));
        if let Some(chain) = state.and_then(|s| s.chain.as_ref()) {
            if !chain.is_expected() {
                batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain_obj(false))));
                batch.delete(NfListObject::Chain(self.chain_obj(false)));
            }
        }
        batch.add(NfListObject::Chain(self.chain_obj(true)));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(self.chain_obj(false))));

        // Sets: keep those that are wanted and right; delete the rest of ours.
        let mut wanted: HashMap<String, (SetType, bool)> = HashMap::new();
        for jail in jails {
            wanted.insert(format!("{}_v4", jail.name), (SetType::Ipv4Addr, jail.intervals));
            wanted.insert(format!("{}_v6", jail.name), (SetType::Ipv6Addr, jail.intervals));
        }
        if let Some(state) = state {
            for (name, set) in &state.sets {
                if !(name.ends_with("_v4") || name.ends_with("_v6")) {
                    continue; // not a name this daemon creates
                }
                let keep = wanted.get(name).is_some_and(|(ty, intervals)| set.matches(*ty, *intervals));
                if !keep {
                    batch.delete(self.set_obj(name.clone(), SetType::Ipv4Addr, false));
                }
            }
        }
        let mut names: Vec<_> = wanted.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, (ty, intervals)) in names {
            batch.add(self.set_obj(name.clone(), *ty, *intervals));
        }
        for jail in jails {
            for rule in self.jail_rules(jail) {
                batch.add(NfListObject::Rule(rule));
            }
        }

        let intervals: HashMap<&str, bool> = jails.iter().map(|j| (j.name.as_str(), j.intervals)).collect();
        let mut changes = SetChanges::default();
        for ban in bans {
            match intervals.get(ban.jail.as_str()) {
                None => tracing::warn!(jail = %ban.jail, net = %ban.net, "ban for a jail that has no rules; not loaded"),
                Some(false) if !is_host(&ban.net) => {
                    tracing::warn!(jail = %ban.jail, net = %ban.net, "prefix ban in a jail without `intervals`; not loaded")
                }
                Some(_) => changes.ban(ban, now),
            }
        }
        let items = changes.emit(&mut batch, &self.table);
        (batch.to_nftables(), items)
    }

    /// The `apply` transaction, or `None` when there is nothing to do.
    pub(crate) fn apply_batch(&self, ops: &[FirewallOp], now: UnixTime) -> Option<(Nftables<'static>, usize)> {
        let mut changes = SetChanges::default();
        for op in ops {
            match op {
                FirewallOp::Ban(ban) => changes.ban(ban, now),
                FirewallOp::Unban { jail, net } => changes.unban(jail, net),
            }
        }
        let mut batch = Batch::new();
        let items = changes.emit(&mut batch, &self.table);
        (items > 0).then(|| (batch.to_nftables(), items))
    }

    /// The rules of one jail: per family, the set match, the protocol and port
    /// match, a counter and the verdict.
    fn jail_rules(&self, jail: &JailRules) -> Vec<Rule<'static>> {
        let mut rules = Vec::new();
        for (l3, suffix) in [("ip", "v4"), ("ip6", "v6")] {
            let saddr = Statement::Match(Match {
                left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
                    protocol: Cow::Borrowed(l3),
                    field: Cow::Borrowed("saddr"),
                }))),
                right: Expression::String(Cow::Owned(format!("@{}_{suffix}", jail.name))),
                op: Operator::EQ,
            });
            let l4 = match jail.protocol {
                Protocol::All => None,
                Protocol::Tcp => Some("tcp"),
                Protocol::Udp => Some("udp"),
            };
            // (extra match, verdict) per rule.
            let mut variants: Vec<(Option<Statement<'static>>, Statement<'static>)> = Vec::new();
            let proto_match = l4.map(|proto| match jail.ports.as_slice() {
                [] => l4proto_match(proto),
                ports => dport_match(proto, ports),
            });
            match (jail.verdict, jail.protocol) {
                (Verdict::Drop, _) => variants.push((proto_match, Statement::Drop(None))),
                (Verdict::Reject, Protocol::Tcp) => variants.push((proto_match, tcp_reset())),
                (Verdict::Reject, Protocol::Udp) => variants.push((proto_match, Statement::Reject(None))),
                (Verdict::Reject, Protocol::All) => {
                    // TCP gets a reset; everything else the family's default
                    // (ICMP port unreachable).
                    variants.push((Some(l4proto_match("tcp")), tcp_reset()));
                    variants.push((None, Statement::Reject(None)));
                }
            }
            for (extra, verdict) in variants {
                let mut expr = vec![saddr.clone()];
                expr.extend(extra);
                expr.push(Statement::Counter(Counter::Anonymous(None)));
                expr.push(verdict);
                rules.push(Rule {
                    family: NfFamily::INet,
                    table: Cow::Owned(self.table.clone()),
                    chain: Cow::Borrowed(CHAIN),
                    expr: Cow::Owned(expr),
                    handle: None,
                    index: None,
                    comment: Some(Cow::Owned(format!("{RULE_COMMENT_PREFIX}{}", jail.name))),
                });
            }
        }
        rules
    }
}

fn tcp_reset() -> Statement<'static> {
    Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None)))
}

fn l4proto_match(proto: &'static str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta { key: MetaKey::L4proto })),
        right: Expression::String(Cow::Borrowed(proto)),
        op: Operator::EQ,
    })
}

fn dport_match(proto: &'static str, ports: &[PortRange]) -> Statement<'static> {
    let one = |p: &PortRange| {
        if p.lo == p.hi {
            Expression::Number(u32::from(p.lo))
        } else {
            Expression::Range(Box::new(Range {
                range: [Expression::Number(u32::from(p.lo)), Expression::Number(u32::from(p.hi))],
            }))
        }
    };
    let right = match ports {
        [single] => one(single),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|p| nftables::expr::SetItem::Element(one(p))).collect(),
        )),
    };
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: Cow::Borrowed(proto),
            field: Cow::Borrowed("dport"),
        }))),
        right,
        op: Operator::EQ,
    })
}

fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// The element key for `net`: a plain address for a host, else a prefix.
fn elem_key(net: &IpNet) -> Expression<'static> {
    let net = net.trunc();
    if is_host(&net) {
        Expression::String(Cow::Owned(net.addr().to_string()))
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
            len: u32::from(net.prefix_len()),
        }))
    }
}

fn elem_with_timeout(net: &IpNet, timeout: Option<u32>) -> Expression<'static> {
    match timeout {
        None => elem_key(net),
        Some(t) => Expression::Named(NamedExpression::Elem(Elem {
            val: Box::new(elem_key(net)),
            timeout: Some(t),
            expires: None,
            comment: None,
            counter: None,
        })),
    }
}

/// Seconds of timeout for a ban expiring at `expires`: `Some(None)` permanent,
/// `None` already expired (skip).
fn timeout_for(expires: Option<UnixTime>, now: UnixTime) -> Option<Option<u32>> {
    match expires {
        None => Some(None),
        Some(e) if e <= now => None,
        Some(e) => Some(Some(u32::try_from(e - now).unwrap_or(u32::MAX))),
    }
}

/// The net result of a list of ops, per set: last op per element wins.
#[derive(Default)]
struct SetChanges {
    /// set name → element → `Some(timeout)` ban / `None` unban.
    sets: BTreeMap<String, BTreeMap<IpNet, Option<Option<u32>>>>,
}

impl SetChanges {
    fn ban(&mut self, ban: &BanEntry, now: UnixTime) {
        let net = ban.net.trunc();
        let Some(timeout) = timeout_for(ban.expires, now) else {
            return; // already expired: nothing to add
        };
        let set = set_name(&ban.jail, net.addr());
        self.sets.entry(set).or_default().insert(net, Some(timeout));
    }

    fn unban(&mut self, jail: &str, net: &IpNet) {
        let net = net.trunc();
        let set = set_name(jail, net.addr());
        self.sets.entry(set).or_default().insert(net, None);
    }

    /// Appends the element commands; returns how many elements they touch.
    fn emit(self, batch: &mut Batch<'static>, table: &str) -> usize {
        let element = |name: &str, elem: Vec<Expression<'static>>| {
            NfListObject::Element(Element {
                family: NfFamily::INet,
                table: Cow::Owned(table.to_string()),
                name: Cow::Owned(name.to_string()),
                elem: Cow::Owned(elem),
            })
        };
        let mut items = 0;
        for (name, elems) in self.sets {
            let mut unbans = Vec::new();
            let mut bans = Vec::new();
            for (net, action) in elems {
                match action {
                    None => unbans.push(net),
                    Some(timeout) => bans.push((net, timeout)),
                }
            }
            items += unbans.len() + bans.len();
            if !unbans.is_empty() {
                // add-then-delete: deleting an absent element is not an error.
                let keys: Vec<_> = unbans.iter().map(elem_key).collect();
                batch.add(element(&name, keys.clone()));
                batch.delete(element(&name, keys));
            }
            if !bans.is_empty() {
                // add (presence), delete, add: the timeout is fresh either way.
                let full: Vec<_> = bans.iter().map(|(n, t)| elem_with_timeout(n, *t)).collect();
                let keys: Vec<_> = bans.iter().map(|(n, _)| elem_key(n)).collect();
                batch.add(element(&name, full.clone()));
                batch.delete(element(&name, keys));
                batch.add(element(&name, full));
            }
        }
        items
    }
}

impl Firewall for NftFirewall {
    fn setup(&mut self, jails: &[JailRules], bans: &[BanEntry], now: UnixTime) -> Result<(), FirewallError> {
        let state = self.state()?;
        let (doc, items) = self.setup_batch(state.as_ref(), jails, bans, now);
        self.transact(&doc, "setup", items)
    }

    fn apply(&mut self, ops: &[FirewallOp], now: UnixTime) -> Result<(), FirewallError> {
        match self.apply_batch(ops, now) {
            Some((doc, items)) => self.transact(&doc, "apply", items),
            None => Ok(()),
        }
    }

    fn intact(&mut self, jails: &[JailRules]) -> Result<bool, FirewallError> {
        let Some(state) = self.state()? else {
            return Ok(false);
        };
        if !state.chain.as_ref().is_some_and(ChainState::is_expected) {
            return Ok(false);
        }
        for jail in jails {
            let v4 = state.sets.get(&format!("{}_v4", jail.name));
            let v6 = state.sets.get(&format!("{}_v6", jail.name));
            if !v4.is_some_and(|s| s.matches(SetType::Ipv4Addr, jail.intervals))
                || !v6.is_some_and(|s| s.matches(SetType::Ipv6Addr, jail.intervals))
            {
                return Ok(false);
            }
            let comment = format!("{RULE_COMMENT_PREFIX}{}", jail.name);
            if !state.rule_comments.iter().any(|c| *c == comment) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What a terse listing of the table says.
#[derive(Debug, Default)]
pub(crate) struct TableState {
    pub(crate) chain: Option<ChainState>,
    pub(crate) sets: BTreeMap<String, SetState>,
    /// Comments of the rules in [`CHAIN`].
    pub(crate) rule_comments: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct ChainState {
    ty: Option<String>,
    hook: Option<String>,
    prio: Option<i64>,
    policy: Option<String>,
}

impl ChainState {
    fn is_expected(&self) -> bool {
        self.ty.as_deref() == Some("filter")
            && self.hook.as_deref() == Some("input")
            && self.prio == Some(i64::from(CHAIN_PRIORITY))
            && self.policy.as_deref() == Some("accept")
    }
}

#[derive(Debug)]
pub(crate) struct SetState {
    ty: String,
    flags: BTreeSet<String>,
}

impl SetState {
    fn matches(&self, ty: SetType, intervals: bool) -> bool {
        let want_ty = match ty {
            SetType::Ipv4Addr => "ipv4_addr",
            SetType::Ipv6Addr => "ipv6_addr",
            _ => return false,
        };
        let mut want_flags = BTreeSet::from(["timeout".to_string()]);
        if intervals {
            want_flags.insert("interval".to_string());
        }
        self.ty == want_ty && self.flags == want_flags
    }
}

fn nft_objects(json: &str) -> Result<Vec<Value>, FirewallError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| FirewallError::Parse(format!("nft -j output: {e}")))?;
    match doc.get("nftables") {
        Some(Value::Array(objs)) => Ok(objs.clone()),
        _ => Err(FirewallError::Parse("nft -j output has no `nftables` array".to_string())),
    }
}

pub(crate) fn parse_table_state(json: &str) -> Result<TableState, FirewallError> {
    let mut state = TableState::default();
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    for obj in nft_objects(json)? {
        if let Some(chain) = obj.get("chain") {
            if chain.get("name").and_then(Value::as_str) == Some(CHAIN) {
                state.chain = Some(ChainState {
                    ty: str_of(chain, "type"),
                    hook: str_of(chain, "hook"),
                    prio: chain.get("prio").and_then(Value::as_i64),
                    policy: str_of(chain, "policy"),
                });
            }
        } else if let Some(set) = obj.get("set") {
            let Some(name) = str_of(set, "name") else { continue };
            let ty = match set.get("type") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(), // concatenated: never ours
                None => String::new(),
            };
            let flags = match set.get("flags") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                Some(Value::String(s)) => BTreeSet::from([s.clone()]),
                _ => BTreeSet::new(),
            };
            state.sets.insert(name, SetState { ty, flags });
        } else if let Some(rule) = obj.get("rule") {
            if rule.get("chain").and_then(Value::as_str) == Some(CHAIN) {
                if let Some(c) = str_of(rule, "comment") {
                    state.rule_comments.push(c);
                }
            }
        }
    }
    Ok(state)
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
                    let left = inner.get("expires").or_else(|| inner.get("timeout")).and_then(Value::as_u64);
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

    fn jail(name: &str, protocol: Protocol, ports: Vec<PortRange>, verdict: Verdict, intervals: bool) -> JailRules {
        JailRules { name: name.to_string(), protocol, ports, verdict, intervals }
    }

    fn json(doc: &Nftables<'_>) -> Value {
        serde_json::to_value(doc).unwrap()
    }

    fn cmds(v: &Value) -> Vec<Value> {
        v["nftables"].as_array().unwrap().clone()
    }

    #[test]
    fn setup_on_missing_table_creates_everything() {
        let fw = NftFirewall::new("bw", vec![]);
        let jails = [jail("ssh", Protocol::Tcp, vec![PortRange { lo: 22, hi: 22 }, PortRange { lo: 80, hi: 90 }], Verdict::Reject, false)];
        let bans = [
            BanEntry { jail: "ssh".into(), net: "192.0.2.1/32".parse().unwrap(), expires: Some(1600) },
            BanEntry { jail: "ssh".into(), net: "2001:db8::1/128".parse().unwrap(), expires: None },
            BanEntry { jail: "ssh".into(), net: "192.0.2.9/32".parse().unwrap(), expires: Some(900) },
            BanEntry { jail: "gone".into(), net: "192.0.2.2/32".parse().unwrap(), expires: None },
            BanEntry { jail: "ssh".into(), net: "192.0.2.0/24".parse().unwrap(), expires: None },
        ];
        let (doc, items) = fw.setup_batch(None, &jails, &bans, 1000);
        assert_eq!(items, 2, "expired, unknown-jail and prefix-without-intervals bans are skipped");
        let v = json(&doc);
        let c = cmds(&v);
        assert_eq!(c[0], serde_json::json!({"add": {"table": {"family": "inet", "name": "bw"}}}));
        assert_eq!(c[1]["add"]["chain"]["prio"], -10);
        assert_eq!(c[1]["add"]["chain"]["hook"], "input");
        assert!(c[2]["flush"]["chain"].is_object());
        let text = v.to_string();
        assert!(text.contains(r#""right":"@ssh_v4""#), "{text}");
        assert!(text.contains(r#""right":"@ssh_v6""#), "{text}");
        assert!(text.contains(r#"{"set":[22,{"range":[80,90]}]}"#), "{text}");
        assert!(text.contains(r#""reject":{"type":"tcp reset"}"#), "{text}");
        assert!(text.contains(r#""comment":"banwarden:ssh""#), "{text}");
        assert!(text.contains(r#"{"elem":{"val":"192.0.2.1","timeout":600"#), "{text}");
        assert!(text.contains(r#""2001:db8::1""#), "{text}");
        assert!(!text.contains("192.0.2.9"), "expired ban must be skipped: {text}");
    }

    #[test]
    fn setup_repairs_wrong_sets_and_chain_and_drops_stale_ones() {
        let fw = NftFirewall::new("bw", vec![]);
        let listing = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "bw", "handle": 1}},
          {"set": {"family": "inet", "name": "ssh_v4", "table": "bw", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"]}},
          {"set": {"family": "inet", "name": "ssh_v6", "table": "bw", "type": "ipv6_addr", "handle": 2, "flags": ["timeout"]}},
          {"set": {"family": "inet", "name": "old_v4", "table": "bw", "type": "ipv4_addr", "handle": 3, "flags": ["timeout"]}},
          {"chain": {"family": "inet", "table": "bw", "name": "input", "handle": 4, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
          {"rule": {"family": "inet", "table": "bw", "chain": "input", "handle": 5, "comment": "banwarden:ssh", "expr": []}}]}"#;
        let state = parse_table_state(listing).unwrap();
        assert_eq!(state.rule_comments, vec!["banwarden:ssh".to_string()]);
        let jails = [jail("ssh", Protocol::All, vec![], Verdict::Drop, true)];
        let (doc, _) = fw.setup_batch(Some(&state), &jails, &[], 0);
        let c = cmds(&json(&doc));
        let deleted: Vec<&str> = c
            .iter()
            .filter_map(|o| o.get("delete"))
            .filter_map(|d| d.get("set").or_else(|| d.get("chain")))
            .filter_map(|s| s["name"].as_str())
            .collect();
        // the chain (wrong prio), both ssh sets (no interval flag), and old_v4
        assert_eq!(deleted, vec!["input", "old_v4", "ssh_v4", "ssh_v6"]);
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""drop":null"#), "{text}");
        assert!(!text.contains("dport"), "{text}");
    }

    #[test]
    fn apply_groups_elements_per_set_and_guards_deletes() {
        let fw = NftFirewall::new("bw", vec![]);
        let ban = |net: &str, expires| FirewallOp::Ban(BanEntry { jail: "ssh".into(), net: net.parse().unwrap(), expires });
        let ops = [
            ban("192.0.2.1/32", Some(110)),
            ban("192.0.2.2/32", None),
            ban("2001:db8::/48", Some(200)),
            FirewallOp::Unban { jail: "ssh".into(), net: "192.0.2.3/32".parse().unwrap() },
            // last op per element wins
            FirewallOp::Unban { jail: "ssh".into(), net: "192.0.2.2/32".parse().unwrap() },
            ban("192.0.2.4/32", Some(50)), // expired
        ];
        let (doc, items) = fw.apply_batch(&ops, 100).unwrap();
        assert_eq!(items, 4);
        let c = cmds(&json(&doc));
        let shape: Vec<(String, String, usize)> = c
            .iter()
            .map(|o| {
                let (verb, body) = o.as_object().unwrap().iter().next().unwrap();
                let el = &body["element"];
                (verb.clone(), el["name"].as_str().unwrap().to_string(), el["elem"].as_array().unwrap().len())
            })
            .collect();
        let s = |v: &str, n: &str, k| (v.to_string(), n.to_string(), k);
        assert_eq!(
            shape,
            vec![
                s("add", "ssh_v4", 2),
                s("delete", "ssh_v4", 2),
                s("add", "ssh_v4", 1),
                s("delete", "ssh_v4", 1),
                s("add", "ssh_v4", 1),
                s("add", "ssh_v6", 1),
                s("delete", "ssh_v6", 1),
                s("add", "ssh_v6", 1),
            ]
        );
        assert_eq!(c[2]["add"]["element"]["elem"][0], serde_json::json!({"elem": {"val": "192.0.2.1", "timeout": 10, "expires": null, "comment": null, "counter": null}}));
        assert_eq!(c[5]["add"]["element"]["elem"][0]["elem"]["val"], serde_json::json!({"prefix": {"addr": "2001:db8::", "len": 48}}));
        assert!(fw.apply_batch(&[ban("192.0.2.4/32", Some(50))], 100).is_none());
    }

    #[test]
    fn reject_all_rejects_tcp_with_reset_and_the_rest_by_default() {
        let fw = NftFirewall::new("bw", vec![]);
        let rules = fw.jail_rules(&jail("x", Protocol::All, vec![], Verdict::Reject, false));
        assert_eq!(rules.len(), 4);
        let text = serde_json::to_string(&rules).unwrap();
        assert!(text.contains(r#""right":"tcp""#), "{text}");
        assert!(text.contains(r#""reject":null"#), "{text}");
        let udp = fw.jail_rules(&jail("u", Protocol::Udp, vec![], Verdict::Drop, false));
        let text = serde_json::to_string(&udp).unwrap();
        assert!(text.contains(r#"{"meta":{"key":"l4proto"}},"right":"udp""#), "{text}");
    }

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
    fn spawn_failure_is_reported() {
        let mut fw = NftFirewall::new("bw", vec!["/nonexistent/banwarden-nft".into()]);
        match fw.intact(&[]) {
            Err(FirewallError::Spawn { program, .. }) => assert_eq!(program, "/nonexistent/banwarden-nft"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nft_failure_carries_stderr() {
        // `sh -c` stands in for nft here: prints to stderr and fails.
        let fw = NftFirewall::new("bw", vec!["sh".into(), "-c".into(), "echo 'Error: nope' >&2; exit 1".into(), "sh".into()]);
        match fw.run(&["-j", "-f", "-"], Some(b"{}")) {
            Err(FirewallError::Nft(msg)) => assert_eq!(msg, "Error: nope"),
            other => panic!("{other:?}"),
        }
    }
}
