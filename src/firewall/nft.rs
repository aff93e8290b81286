//! nftables backend: [`NftFirewall`] turns jails and bans into one `inet` table.
//!
//! Owns exactly one table (family `inet`, name from config, default
//! [`DEFAULT_TABLE`]): its base chain [`CHAIN`] (hook input, priority -10,
//! policy accept), one set per jail and address family (`J_v4`, `J_v6`) and the
//! rules that match them (comment `banwarden:J`), plus, when a jail blocks all
//! protocols, one rule letting IPv6 neighbour discovery through. It must never
//! touch anything outside that table (no `flush ruleset`, no other tables), never
//! run `nft` through a shell, and never run one `nft` process per ban: every
//! [`Firewall`] call is one `nft -j -f -` transaction (`setup` and `intact` also
//! list the table tersely; `setup` lists the elements of interval sets).
//!
//! The JSON is built with the `nftables` crate's schema types. Behaviour of nft
//! 1.0.6 that the code relies on (checked in a network namespace):
//! - `add table|chain|set|element` is idempotent when the object exists with the
//!   same spec; `add set`/`add chain` with a *different* spec fails, so
//!   `setup` deletes and recreates such objects.
//! - `delete element` of an absent element fails the whole transaction, so a
//!   delete of an element that may be absent is preceded by an `add` of it.
//! - A plain `add element` may keep the old timeout (kernel dependent), so a ban
//!   of an element that may be present is `add`, `delete`, `add`.
//! - `flush chain` followed by `delete set` in one transaction works: the rules
//!   referencing the set are gone by then.
//! - Interval sets reject overlapping elements, and the guard `add` above
//!   followed by the `add` of an overlapping element in the same transaction
//!   fails. So for interval sets the backend keeps what it knows they hold (read
//!   back by `setup`, updated by each good transaction) and emits the minimal
//!   form: no guard for known elements, one `add` for new ones, overlaps
//!   resolved by `NetBook` (a wider ban replaces the narrower ones).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range,
};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, Nftables, Rule, Set, SetFlag, SetType,
    SetTypeValue, Table,
};
use nftables::stmt::{Counter, Match, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde_json::Value;

use super::{
    BanEntry, Firewall, FirewallError, FirewallOp, JailRules, PortRange, Protocol, Verdict,
};
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
    /// Jail → whether its sets take intervals, as of the last good `setup`.
    intervals: HashMap<String, bool>,
    /// What the interval sets hold (set name → elements), as of the last good
    /// transaction; `None`: unknown (no setup yet, or a failed one). The kernel
    /// rejects overlapping elements and mishandles some add/delete sequences of
    /// overlapping elements within one transaction, so for interval sets the
    /// exact commands depend on what is present.
    shadow: Option<HashMap<String, NetBook>>,
}

/// The name of jail `jail`'s set for the family of `addr`.
pub fn set_name(jail: &str, addr: IpAddr) -> String {
    format!("{jail}_{}", super::family_suffix(addr))
}

impl NftFirewall {
    /// `nft_cmd` is the argv prefix that runs nft, e.g. `["nft"]` or
    /// `["ip", "netns", "exec", "NS", "nft"]`. Empty means `["nft"]`.
    pub fn new(table: &str, nft_cmd: Vec<String>) -> Self {
        let nft_cmd = if nft_cmd.is_empty() {
            vec!["nft".to_string()]
        } else {
            nft_cmd
        };
        NftFirewall {
            table: table.to_string(),
            nft_cmd,
            intervals: HashMap::new(),
            shadow: None,
        }
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
        let mut out = self.list_set(&format!("{jail}_v4"))?;
        out.extend(self.list_set(&format!("{jail}_v6"))?);
        Ok(out)
    }

    fn list_set(&self, name: &str) -> Result<Vec<(IpNet, Option<u64>)>, FirewallError> {
        let json = self.run(&["-j", "list", "set", "inet", &self.table, name], None)?;
        parse_set_elements(&json)
    }

    /// The table's chains, sets and rules (without set elements), or `None` when
    /// the table does not exist.
    fn state(&self) -> Result<Option<TableState>, FirewallError> {
        match self.run(&["-t", "-j", "list", "table", "inet", &self.table], None) {
            Ok(json) => parse_table_state(&json).map(Some),
            Err(FirewallError::Nft(msg))
                if msg.contains("No such file or directory") && msg.contains("list table") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs one transaction.
    fn transact(&self, doc: &Nftables<'_>, what: &str, items: usize) -> Result<(), FirewallError> {
        let payload = serde_json::to_vec(doc)
            .map_err(|e| FirewallError::Parse(format!("serialising the batch: {e}")))?;
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
        let spawn_err = |source| FirewallError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
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
            let msg = if stderr.is_empty() {
                format!("{program} exited with {}", output.status)
            } else {
                stderr
            };
            return Err(FirewallError::Nft(msg));
        }
        match write_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(FirewallError::Nft(format!(
                    "could not write the batch to {program}: {e}"
                )))
            }
            Err(_) => {
                return Err(FirewallError::Nft(format!(
                    "the thread feeding {program} panicked"
                )))
            }
        }
        String::from_utf8(output.stdout)
            .map_err(|e| FirewallError::Parse(format!("{program} printed invalid UTF-8: {e}")))
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

    /// The `setup` transaction for the table as `state` describes it;
    /// `existing` holds the elements of the interval sets that stay.
    pub(crate) fn setup_batch(
        &self,
        state: Option<&TableState>,
        existing: &HashMap<String, Vec<(IpNet, Option<u64>)>>,
        jails: &[JailRules],
        bans: &[BanEntry],
        now: UnixTime,
    ) -> (Nftables<'static>, usize, HashMap<String, NetBook>) {
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
            wanted.insert(
                format!("{}_v4", jail.name),
                (SetType::Ipv4Addr, jail.intervals),
            );
            wanted.insert(
                format!("{}_v6", jail.name),
                (SetType::Ipv6Addr, jail.intervals),
            );
        }
        if let Some(state) = state {
            for (name, set) in &state.sets {
                if !(name.ends_with("_v4") || name.ends_with("_v6")) {
                    continue; // not a name this daemon creates
                }
                let keep = wanted
                    .get(name)
                    .is_some_and(|(ty, intervals)| set.matches(*ty, *intervals));
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
        if jails.iter().any(|j| j.protocol == Protocol::All) {
            batch.add(NfListObject::Rule(self.nd_rule()));
        }
        for jail in jails {
            for rule in self.jail_rules(jail) {
                batch.add(NfListObject::Rule(rule));
            }
        }

        // Bans, per set; interval sets go through a NetBook so they never
        // receive overlapping elements, also against elements already there.
        let intervals: HashMap<String, bool> = jails
            .iter()
            .map(|j| (j.name.clone(), j.intervals))
            .collect();
        let mut before: HashMap<String, NetBook> = HashMap::new();
        for jail in jails.iter().filter(|j| j.intervals) {
            for suffix in ["v4", "v6"] {
                let name = format!("{}_{suffix}", jail.name);
                let mut book = NetBook::default();
                for (net, left) in existing.get(&name).into_iter().flatten() {
                    let expires =
                        left.map(|l| now.saturating_add(i64::try_from(l).unwrap_or(i64::MAX)));
                    book.insert_unchecked(*net, expires);
                }
                before.insert(name, book);
            }
        }
        let mut plan = Planner::new(now, Some(&before));
        for ban in bans {
            match intervals.get(&ban.jail) {
                None => {
                    tracing::warn!(jail = %ban.jail, net = %ban.net, "ban for a jail that has no rules; not loaded")
                }
                Some(false) if !is_host(&ban.net) => {
                    tracing::warn!(jail = %ban.jail, net = %ban.net, "prefix ban in a jail without `intervals`; not loaded")
                }
                Some(&iv) => plan.ban(ban, Some(iv)),
            }
        }
        let (items, shadow) = plan.finish(&mut batch, &self.table);
        (batch.to_nftables(), items, shadow)
    }

    /// The `apply` transaction (`None` when there is nothing to do) and the
    /// interval sets' contents once it is applied.
    pub(crate) fn apply_batch(
        &self,
        ops: &[FirewallOp],
        now: UnixTime,
    ) -> Option<(Nftables<'static>, usize, HashMap<String, NetBook>)> {
        let mut plan = Planner::new(now, self.shadow.as_ref());
        for op in ops {
            match op {
                FirewallOp::Ban(ban) => plan.ban(ban, self.intervals.get(&ban.jail).copied()),
                FirewallOp::Unban { jail, net } => {
                    plan.unban(jail, net, self.intervals.get(jail).copied())
                }
            }
        }
        let mut batch = Batch::new();
        let (items, shadow) = plan.finish(&mut batch, &self.table);
        (items > 0).then(|| (batch.to_nftables(), items, shadow))
    }

    /// Lets IPv6 neighbour discovery through this chain: an all-protocol ban
    /// of an on-link neighbour would otherwise stop the host from resolving it,
    /// so not even a reject could be delivered. (Ends only this chain: other
    /// chains still see the packet.)
    fn nd_rule(&self) -> Rule<'static> {
        let types = ["nd-neighbor-solicit", "nd-neighbor-advert"]
            .into_iter()
            .map(|t| nftables::expr::SetItem::Element(Expression::String(Cow::Borrowed(t))))
            .collect();
        Rule {
            family: NfFamily::INet,
            table: Cow::Owned(self.table.clone()),
            chain: Cow::Borrowed(CHAIN),
            expr: Cow::Owned(vec![
                Statement::Match(Match {
                    left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                        PayloadField {
                            protocol: Cow::Borrowed("icmpv6"),
                            field: Cow::Borrowed("type"),
                        },
                    ))),
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

    /// The rules of one jail: per family, the set match, the protocol and port
    /// match, a counter and the verdict.
    fn jail_rules(&self, jail: &JailRules) -> Vec<Rule<'static>> {
        let mut rules = Vec::new();
        for (l3, suffix) in [("ip", "v4"), ("ip6", "v6")] {
            let saddr = Statement::Match(Match {
                left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                    PayloadField {
                        protocol: Cow::Borrowed(l3),
                        field: Cow::Borrowed("saddr"),
                    },
                ))),
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
                (Verdict::Reject, Protocol::Udp) => {
                    variants.push((proto_match, Statement::Reject(None)))
                }
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
        left: Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::L4proto,
        })),
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
            many.iter()
                .map(|p| nftables::expr::SetItem::Element(one(p)))
                .collect(),
        )),
    };
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: Cow::Borrowed(proto),
                field: Cow::Borrowed("dport"),
            },
        ))),
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

/// A change to one set's elements, as [`NetBook`] plans it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Add or refresh, expiring at the given time (`None`: permanent).
    Add(IpNet, Option<UnixTime>),
    Remove(IpNet),
}

/// Whether a ban expiring at `a` lasts at least as long as one expiring at `b`
/// (`None`: permanent).
pub(crate) fn outlives(a: Option<UnixTime>, b: Option<UnixTime>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

fn later(a: Option<UnixTime>, b: Option<UnixTime>) -> Option<UnixTime> {
    if outlives(a, b) {
        a
    } else {
        b
    }
}

/// The elements of one set (one jail, one family) and their expiry, kept free of
/// overlaps when the set is an interval set: the kernel rejects an element that
/// overlaps another, and a failed element fails the whole transaction.
///
/// Rules for interval sets: a ban inside a wider banned net is already enforced
/// (the wider one is extended if the new ban outlives it); a ban of a wider net
/// swallows the narrower ones (removed, their expiry folded in); unbanning a net
/// that is only covered by a wider ban does nothing.
#[derive(Debug, Default, Clone)]
pub(crate) struct NetBook {
    nets: BTreeMap<IpNet, Option<UnixTime>>,
}

impl NetBook {
    /// Inserts without any overlap check (elements read back from the kernel).
    pub(crate) fn insert_unchecked(&mut self, net: IpNet, expires: Option<UnixTime>) {
        self.nets.insert(net.trunc(), expires);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&IpNet, &Option<UnixTime>)> {
        self.nets.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub(crate) fn contains(&self, net: &IpNet) -> bool {
        self.nets.contains_key(&net.trunc())
    }

    /// Forgets entries that expired at or before `now`.
    pub(crate) fn prune(&mut self, now: UnixTime) {
        self.nets.retain(|_, e| e.is_none_or(|e| e > now));
    }

    /// The strictly wider net in the book that contains `net`, if any.
    pub(crate) fn covering(&self, net: &IpNet) -> Option<(IpNet, Option<UnixTime>)> {
        let net = net.trunc();
        (0..net.prefix_len()).rev().find_map(|len| {
            let wider = IpNet::new(net.addr(), len).ok()?.trunc();
            self.nets.get(&wider).map(|e| (wider, *e))
        })
    }

    /// The strictly narrower nets in the book inside `net`.
    fn covered(&self, net: &IpNet) -> Vec<(IpNet, Option<UnixTime>)> {
        if is_host(net) {
            return Vec::new();
        }
        let (Ok(lo), Ok(hi)) = (
            IpNet::new(net.network(), 0),
            IpNet::new(net.broadcast(), net.max_prefix_len()),
        ) else {
            return Vec::new();
        };
        self.nets
            .range(lo..=hi)
            .filter(|(n, _)| *n != net && net.contains(*n))
            .map(|(n, e)| (*n, *e))
            .collect()
    }

    /// Records a ban; returns the element changes that realise it.
    pub(crate) fn ban(
        &mut self,
        net: IpNet,
        expires: Option<UnixTime>,
        intervals: bool,
    ) -> Vec<Change> {
        let net = net.trunc();
        if !intervals {
            self.nets.insert(net, expires);
            return vec![Change::Add(net, expires)];
        }
        if let Some((wider, wider_expires)) = self.covering(&net) {
            if outlives(wider_expires, expires) {
                return Vec::new();
            }
            self.nets.insert(wider, expires);
            return vec![Change::Add(wider, expires)];
        }
        let mut changes = Vec::new();
        let mut expires = expires;
        for (inner, inner_expires) in self.covered(&net) {
            self.nets.remove(&inner);
            expires = later(expires, inner_expires);
            changes.push(Change::Remove(inner));
        }
        self.nets.insert(net, expires);
        changes.push(Change::Add(net, expires));
        changes
    }

    /// Records an unban; returns the element changes that realise it.
    pub(crate) fn unban(&mut self, net: IpNet, intervals: bool) -> Vec<Change> {
        let net = net.trunc();
        if self.nets.remove(&net).is_none() && intervals && self.covering(&net).is_some() {
            return Vec::new();
        }
        vec![Change::Remove(net)]
    }
}

/// What to do with one element in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Add with this timeout. `present`: whether the element is in the set
    /// (`None`: unknown).
    Ban {
        timeout: Option<u32>,
        present: Option<bool>,
    },
    Unban {
        present: Option<bool>,
    },
}

/// Turns ops into per-set element commands: last op per element wins.
struct Planner<'a> {
    now: UnixTime,
    /// Interval sets' contents before the transaction (`None`: unknown).
    before: Option<&'a HashMap<String, NetBook>>,
    /// Interval sets' contents after it (only those touched, plus `before`).
    after: BTreeMap<String, NetBook>,
    sets: BTreeMap<String, BTreeMap<IpNet, Action>>,
}

impl<'a> Planner<'a> {
    fn new(now: UnixTime, before: Option<&'a HashMap<String, NetBook>>) -> Self {
        Planner {
            now,
            before,
            after: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    /// The working copy of interval set `name`.
    fn book(&mut self, name: &str) -> &mut NetBook {
        let (now, before) = (self.now, self.before);
        self.after.entry(name.to_string()).or_insert_with(|| {
            let mut book = before
                .and_then(|b| b.get(name))
                .cloned()
                .unwrap_or_default();
            book.prune(now);
            book
        })
    }

    fn present(&self, name: &str, net: &IpNet) -> Option<bool> {
        self.before
            .map(|b| b.get(name).is_some_and(|book| book.contains(net)))
    }

    /// `intervals`: the jail's flag; `None` for a jail not set up (passed
    /// through as a plain set).
    fn ban(&mut self, ban: &BanEntry, intervals: Option<bool>) {
        if ban.expires.is_some_and(|e| e <= self.now) {
            return; // already expired: nothing to add
        }
        let name = set_name(&ban.jail, ban.net.addr());
        if intervals == Some(true) {
            let changes = self.book(&name).ban(ban.net, ban.expires, true);
            self.record(&name, changes, true);
        } else {
            self.record(
                &name,
                vec![Change::Add(ban.net.trunc(), ban.expires)],
                false,
            );
        }
    }

    fn unban(&mut self, jail: &str, net: &IpNet, intervals: Option<bool>) {
        let name = set_name(jail, net.addr());
        if intervals == Some(true) {
            let changes = self.book(&name).unban(*net, true);
            self.record(&name, changes, true);
        } else {
            self.record(&name, vec![Change::Remove(net.trunc())], false);
        }
    }

    fn record(&mut self, name: &str, changes: Vec<Change>, interval: bool) {
        for change in changes {
            let (net, action) = match change {
                Change::Add(net, expires) => {
                    let Some(timeout) = timeout_for(expires, self.now) else {
                        continue;
                    };
                    let present = if interval {
                        self.present(name, &net)
                    } else {
                        None
                    };
                    (net, Action::Ban { timeout, present })
                }
                Change::Remove(net) => {
                    let present = if interval {
                        self.present(name, &net)
                    } else {
                        None
                    };
                    (net, Action::Unban { present })
                }
            };
            self.sets
                .entry(name.to_string())
                .or_default()
                .insert(net, action);
        }
    }

    /// Appends the element commands; returns how many elements they touch and
    /// the interval sets' contents afterwards.
    ///
    /// Per set, at most three commands:
    /// 1. `add` the elements whose presence must be guaranteed: unbans of
    ///    elements that may be absent (deleting an absent element fails the
    ///    transaction) and bans of elements that may be present (so that …)
    /// 2. `delete` every unbanned element and those re-banned ones (… a plain
    ///    `add` of a present element may keep its old timeout);
    /// 3. `add` every banned element with its timeout.
    ///
    /// In interval sets presence is known, so known-absent unbans are skipped,
    /// known-present ones deleted without the guard, and new elements added
    /// once: the kernel mishandles a guard `add` of an element followed by the
    /// add of an overlapping one in the same transaction.
    fn finish(self, batch: &mut Batch<'static>, table: &str) -> (usize, HashMap<String, NetBook>) {
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
            let (mut guard, mut delete, mut add) = (Vec::new(), Vec::new(), Vec::new());
            for (net, action) in elems {
                match action {
                    Action::Unban {
                        present: Some(false),
                    } => continue,
                    Action::Unban {
                        present: Some(true),
                    } => delete.push(elem_key(&net)),
                    Action::Unban { present: None } => {
                        guard.push(elem_key(&net));
                        delete.push(elem_key(&net));
                    }
                    Action::Ban {
                        timeout,
                        present: Some(false),
                    } => add.push(elem_with_timeout(&net, timeout)),
                    Action::Ban {
                        timeout,
                        present: _,
                    } => {
                        guard.push(elem_with_timeout(&net, timeout));
                        delete.push(elem_key(&net));
                        add.push(elem_with_timeout(&net, timeout));
                    }
                }
                items += 1;
            }
            for (is_add, elems) in [(true, guard), (false, delete), (true, add)] {
                if elems.is_empty() {
                    continue;
                }
                if is_add {
                    batch.add(element(&name, elems));
                } else {
                    batch.delete(element(&name, elems));
                }
            }
        }
        let mut shadow: HashMap<String, NetBook> = self.before.cloned().unwrap_or_default();
        shadow.extend(self.after);
        (items, shadow)
    }
}

impl Firewall for NftFirewall {
    fn setup(
        &mut self,
        jails: &[JailRules],
        bans: &[BanEntry],
        now: UnixTime,
    ) -> Result<(), FirewallError> {
        let state = self.state()?;
        // Interval sets that stay: their elements, so new bans cannot overlap them.
        let mut existing = HashMap::new();
        if let Some(state) = &state {
            for jail in jails.iter().filter(|j| j.intervals) {
                for (suffix, ty) in [("v4", SetType::Ipv4Addr), ("v6", SetType::Ipv6Addr)] {
                    let name = format!("{}_{suffix}", jail.name);
                    if state.sets.get(&name).is_some_and(|s| s.matches(ty, true)) {
                        existing.insert(name.clone(), self.list_set(&name)?);
                    }
                }
            }
        }
        let (doc, items, shadow) = self.setup_batch(state.as_ref(), &existing, jails, bans, now);
        match self.transact(&doc, "setup", items) {
            Ok(()) => {
                self.intervals = jails
                    .iter()
                    .map(|j| (j.name.clone(), j.intervals))
                    .collect();
                self.shadow = Some(shadow);
                Ok(())
            }
            Err(e) => {
                self.shadow = None;
                Err(e)
            }
        }
    }

    fn apply(&mut self, ops: &[FirewallOp], now: UnixTime) -> Result<(), FirewallError> {
        let Some((doc, items, shadow)) = self.apply_batch(ops, now) else {
            return Ok(());
        };
        self.transact(&doc, "apply", items)?;
        if self.shadow.is_some() {
            self.shadow = Some(shadow);
        }
        Ok(())
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
            if !state.rule_comments.contains(&comment) {
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
            if chain.get("name").and_then(Value::as_str) == Some(CHAIN) {
                state.chain = Some(ChainState {
                    ty: str_of(chain, "type"),
                    hook: str_of(chain, "hook"),
                    prio: chain.get("prio").and_then(Value::as_i64),
                    policy: str_of(chain, "policy"),
                });
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

    fn jail(
        name: &str,
        protocol: Protocol,
        ports: Vec<PortRange>,
        verdict: Verdict,
        intervals: bool,
    ) -> JailRules {
        JailRules {
            name: name.to_string(),
            protocol,
            ports,
            verdict,
            intervals,
        }
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
        let jails = [jail(
            "ssh",
            Protocol::Tcp,
            vec![PortRange { lo: 22, hi: 22 }, PortRange { lo: 80, hi: 90 }],
            Verdict::Reject,
            false,
        )];
        let bans = [
            BanEntry {
                jail: "ssh".into(),
                net: "192.0.2.1/32".parse().unwrap(),
                expires: Some(1600),
            },
            BanEntry {
                jail: "ssh".into(),
                net: "2001:db8::1/128".parse().unwrap(),
                expires: None,
            },
            BanEntry {
                jail: "ssh".into(),
                net: "192.0.2.9/32".parse().unwrap(),
                expires: Some(900),
            },
            BanEntry {
                jail: "gone".into(),
                net: "192.0.2.2/32".parse().unwrap(),
                expires: None,
            },
            BanEntry {
                jail: "ssh".into(),
                net: "192.0.2.0/24".parse().unwrap(),
                expires: None,
            },
        ];
        let (doc, items, _) = fw.setup_batch(None, &HashMap::new(), &jails, &bans, 1000);
        assert_eq!(
            items, 2,
            "expired, unknown-jail and prefix-without-intervals bans are skipped"
        );
        let v = json(&doc);
        let c = cmds(&v);
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            c[0],
            serde_json::json!({"add": {"table": {"family": "inet", "name": "bw"}}})
        );
        assert_eq!(c[1]["add"]["chain"]["prio"], -10);
        assert_eq!(c[1]["add"]["chain"]["hook"], "input");
        assert!(c[2]["flush"]["chain"].is_object());
        assert!(text.contains(r#""right":"@ssh_v4""#), "{text}");
        assert!(text.contains(r#""right":"@ssh_v6""#), "{text}");
        assert!(text.contains(r#"{"set":[22,{"range":[80,90]}]}"#), "{text}");
        assert!(text.contains(r#""reject":{"type":"tcp reset"}"#), "{text}");
        assert!(text.contains(r#""comment":"banwarden:ssh""#), "{text}");
        assert!(
            text.contains(r#"{"elem":{"val":"192.0.2.1","timeout":600"#),
            "{text}"
        );
        assert!(text.contains(r#""2001:db8::1""#), "{text}");
        assert!(
            !text.contains("192.0.2.9"),
            "expired ban must be skipped: {text}"
        );
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
        let (doc, _, _) = fw.setup_batch(Some(&state), &HashMap::new(), &jails, &[], 0);
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
        let ban = |net: &str, expires| {
            FirewallOp::Ban(BanEntry {
                jail: "ssh".into(),
                net: net.parse().unwrap(),
                expires,
            })
        };
        let ops = [
            ban("192.0.2.1/32", Some(110)),
            ban("192.0.2.2/32", None),
            ban("2001:db8::/48", Some(200)),
            FirewallOp::Unban {
                jail: "ssh".into(),
                net: "192.0.2.3/32".parse().unwrap(),
            },
            // last op per element wins
            FirewallOp::Unban {
                jail: "ssh".into(),
                net: "192.0.2.2/32".parse().unwrap(),
            },
            ban("192.0.2.4/32", Some(50)), // expired
        ];
        let (doc, items, _) = fw.apply_batch(&ops, 100).unwrap();
        assert_eq!(items, 4);
        let c = cmds(&json(&doc));
        let shape: Vec<(String, String, usize)> = c
            .iter()
            .map(|o| {
                let (verb, body) = o.as_object().unwrap().iter().next().unwrap();
                let el = &body["element"];
                (
                    verb.clone(),
                    el["name"].as_str().unwrap().to_string(),
                    el["elem"].as_array().unwrap().len(),
                )
            })
            .collect();
        let s = |v: &str, n: &str, k| (v.to_string(), n.to_string(), k);
        assert_eq!(
            shape,
            vec![
                s("add", "ssh_v4", 3),
                s("delete", "ssh_v4", 3),
                s("add", "ssh_v4", 1),
                s("add", "ssh_v6", 1),
                s("delete", "ssh_v6", 1),
                s("add", "ssh_v6", 1),
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
            serde_json::json!({"prefix": {"addr": "2001:db8::", "len": 48}})
        );
        assert!(fw
            .apply_batch(&[ban("192.0.2.4/32", Some(50))], 100)
            .is_none());
    }

    #[test]
    fn apply_to_interval_sets_uses_what_is_known_to_be_present() {
        let n = |s: &str| -> IpNet { s.parse().unwrap() };
        let mut fw = NftFirewall::new("bw", vec![]);
        fw.intervals.insert("net".into(), true);
        let mut book = NetBook::default();
        book.insert_unchecked(n("192.0.2.5/32"), Some(500));
        book.insert_unchecked(n("198.51.100.0/24"), None);
        fw.shadow = Some(HashMap::from([("net_v4".to_string(), book)]));
        let ban = |net: &str, expires| {
            FirewallOp::Ban(BanEntry {
                jail: "net".into(),
                net: n(net),
                expires,
            })
        };
        let unban = |net: &str| FirewallOp::Unban {
            jail: "net".into(),
            net: n(net),
        };

        // Absent, or only covered by a wider ban: nothing to send.
        assert!(fw
            .apply_batch(&[unban("203.0.113.1/32"), unban("198.51.100.7/32")], 100)
            .is_none());

        let (doc, items, shadow) = fw
            .apply_batch(
                &[
                    ban("192.0.2.0/24", Some(200)),
                    ban("198.51.100.0/24", Some(900)),
                ],
                100,
            )
            .unwrap();
        assert_eq!(items, 3);
        let c = cmds(&json(&doc));
        let verbs: Vec<String> = c
            .iter()
            .map(|o| o.as_object().unwrap().keys().next().unwrap().clone())
            .collect();
        // the present /24 is refreshed (add, delete, add); the present host is
        // deleted unguarded; the new /24 is added once.
        assert_eq!(verbs, vec!["add", "delete", "add"]);
        assert_eq!(c[0]["add"]["element"]["elem"].as_array().unwrap().len(), 1);
        assert_eq!(
            c[1]["delete"]["element"]["elem"],
            serde_json::json!(["192.0.2.5", {"prefix": {"addr": "198.51.100.0", "len": 24}}])
        );
        assert_eq!(c[2]["add"]["element"]["elem"].as_array().unwrap().len(), 2);
        let after: Vec<(IpNet, Option<UnixTime>)> =
            shadow["net_v4"].iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            after,
            vec![
                (n("192.0.2.0/24"), Some(500)),
                (n("198.51.100.0/24"), Some(900))
            ]
        );
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
        assert!(
            text.contains(r#"{"meta":{"key":"l4proto"}},"right":"udp""#),
            "{text}"
        );
    }

    #[test]
    fn setup_resolves_overlaps_with_elements_already_in_an_interval_set() {
        let fw = NftFirewall::new("bw", vec![]);
        let jails = [jail("net", Protocol::All, vec![], Verdict::Drop, true)];
        let existing = HashMap::from([(
            "net_v4".to_string(),
            vec![
                ("192.0.2.5/32".parse().unwrap(), Some(100)),
                ("198.51.100.0/24".parse().unwrap(), None),
            ],
        )]);
        let bans = [
            BanEntry {
                jail: "net".into(),
                net: "192.0.2.0/24".parse().unwrap(),
                expires: Some(1050),
            },
            BanEntry {
                jail: "net".into(),
                net: "198.51.100.7/32".parse().unwrap(),
                expires: Some(1050),
            },
        ];
        let (doc, items, shadow) = fw.setup_batch(None, &existing, &jails, &bans, 1000);
        assert_eq!(items, 2);
        let after: Vec<IpNet> = shadow["net_v4"].iter().map(|(n, _)| *n).collect();
        assert_eq!(
            after,
            vec![
                "192.0.2.0/24".parse::<IpNet>().unwrap(),
                "198.51.100.0/24".parse().unwrap()
            ]
        );

        let c = cmds(&json(&doc));
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
    fn netbook_keeps_interval_sets_free_of_overlaps() {
        let n = |s: &str| -> IpNet { s.parse().unwrap() };
        let mut book = NetBook::default();
        assert_eq!(
            book.ban(n("10.0.0.5/32"), Some(100), true),
            vec![Change::Add(n("10.0.0.5/32"), Some(100))]
        );
        assert_eq!(
            book.ban(n("10.0.0.6/32"), None, true),
            vec![Change::Add(n("10.0.0.6/32"), None)]
        );
        assert_eq!(book.ban(n("10.0.1.6/32"), Some(5), true).len(), 1);
        // a wider ban swallows the narrower ones, keeping the longest expiry
        assert_eq!(
            book.ban(n("10.0.0.0/24"), Some(50), true),
            vec![
                Change::Remove(n("10.0.0.5/32")),
                Change::Remove(n("10.0.0.6/32")),
                Change::Add(n("10.0.0.0/24"), None)
            ]
        );
        assert_eq!(book.iter().count(), 2);
        // inside a permanent wider ban: nothing to do; unban of the inner host: nothing either
        assert!(book.ban(n("10.0.0.9/32"), Some(1000), true).is_empty());
        assert!(book.unban(n("10.0.0.9/32"), true).is_empty());
        // a host ban outliving its covering prefix extends the prefix
        assert_eq!(
            book.ban(n("10.0.1.0/25"), Some(10), true),
            vec![
                Change::Remove(n("10.0.1.6/32")),
                Change::Add(n("10.0.1.0/25"), Some(10))
            ]
        );
        assert_eq!(
            book.ban(n("10.0.1.1/32"), Some(20), true),
            vec![Change::Add(n("10.0.1.0/25"), Some(20))]
        );
        // v6 and v4 do not mix; host bits are cleared
        assert_eq!(
            book.ban(n("2001:db8::1/64"), None, true),
            vec![Change::Add(n("2001:db8::/64"), None)]
        );
        assert_eq!(
            book.covering(&n("2001:db8::77/128")),
            Some((n("2001:db8::/64"), None))
        );
        assert_eq!(
            book.unban(n("2001:db8::/64"), true),
            vec![Change::Remove(n("2001:db8::/64"))]
        );
        // absent and uncovered: a (guarded) remove
        assert_eq!(
            book.unban(n("192.0.2.1/32"), true),
            vec![Change::Remove(n("192.0.2.1/32"))]
        );
        book.prune(15);
        assert_eq!(
            book.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![n("10.0.0.0/24"), n("10.0.1.0/25")]
        );
        // without intervals: plain map
        let mut flat = NetBook::default();
        flat.ban(n("10.0.0.5/32"), Some(1), false);
        assert_eq!(
            flat.ban(n("10.0.0.5/32"), Some(2), false),
            vec![Change::Add(n("10.0.0.5/32"), Some(2))]
        );
        assert!(!flat.is_empty());
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
}
