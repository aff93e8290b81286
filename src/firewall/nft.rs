//! nftables backend: [`NftFirewall`] turns jails and bans into one `inet` table.
//!
//! Owns exactly one table (family `inet`, name from config, default
//! [`DEFAULT_TABLE`]): its base chain [`CHAIN`] (hook input, priority -10,
//! policy accept), while some jail has `chains: [.., forward]` a second base
//! chain [`FORWARD_CHAIN`] (hook forward, priority -10) with those jails'
//! rules, four sets per jail and the rules that match them (comment
//! `banwarden:J`), plus, when a jail blocks all protocols, one rule letting IPv6
//! neighbour discovery through. The sets of jail `J`:
//! - `J_v4`, `J_v6` ([`SetKind::Exact`]): `flags timeout`, the network address
//!   of each banned net whose length is the jail's prefix; the rule masks the
//!   source (`ip6 saddr & ffff:ffff:ffff:ffff:: @J_v6` for a /64 jail, plain
//!   `ip saddr @J_v4` at /32). Nearly every ban lands here.
//! - `J_v4net`, `J_v6net` ([`SetKind::Net`]): `flags interval, timeout`, bans of
//!   any other length (a manual /24 in a /32 jail, a host in a /64 jail). These
//!   must stay small: before each transaction nft reads every element of the
//!   table's interval sets (with 10,000 in one, a one-ban transaction took
//!   ~30 ms instead of ~4).
//!
//! It must never touch anything outside that table (no `flush ruleset`, no other
//! tables), never run `nft` through a shell, and never run one transaction per
//! ban: every [`Firewall`] call is one `nft -f -` transaction (`setup` in
//! JSON, `nft -j -f -`; element changes in nft's own syntax, which nft parses
//! several times faster; `setup` and `intact` also list the table tersely;
//! `setup` lists the elements of the sets that stay), run in-process through
//! libnftables when it loads ([`libnft`]), else by the `nft` command.
//!
//! The JSON is built in [`json`] with the `nftables` crate's schema types;
//! element commands are planned in [`plan`]; listings are read in [`listing`].
//! Behaviour of nft 1.0.6 that the code relies on (checked in a network
//! namespace):
//! - `add table|chain|set|element` is idempotent when the object exists with the
//!   same spec; `add set`/`add chain` with a *different* spec fails, so
//!   `setup` deletes and recreates such objects.
//! - JSON input ignores a set's `comment`, so the granularity of an exact set's
//!   elements is read back from the mask in the rule that matches it: when the
//!   jail's prefix changed, `setup` recreates the jail's sets of that family.
//! - `delete element` of an absent element fails the whole transaction, so a
//!   delete of an element that may be absent is preceded by an `add` of it.
//! - A plain `add element` may keep the old timeout (kernel dependent), so a ban
//!   of an element that may be present is `add`, `delete`, `add`. But a
//!   transaction that deletes an element takes the kernel ~15 ms instead of
//!   ~2 (kernel 6.18), so the backend remembers what every set holds (read
//!   back by `setup`, updated by each good transaction) and bans an element
//!   known to be absent with one `add`: the usual case, a new offender.
//! - `flush chain` followed by `delete set` in one transaction works: the rules
//!   referencing the set are gone by then.
//! - Interval sets reject overlapping elements, and the guard `add` above
//!   followed by the `add` of an overlapping element in the same transaction
//!   fails. So for interval sets the backend trusts what it knows they hold
//!   and emits the minimal form: no guard for known elements, one `add` for
//!   new ones, overlaps resolved by `NetBook` (a wider ban replaces the
//!   narrower ones).

mod json;
mod libnft;
mod listing;
mod plan;
mod run;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::schema::{FlushObject, NfCmd, NfListObject, Nftables, SetType};

use self::json::{
    chain_obj, forward_chain_obj, is_host, jail_rules, nd_rule, set_obj, table_obj, FAMILIES,
};
use self::listing::{parse_set_elements, parse_table_state, ChainState, TableState};
pub(crate) use self::plan::{Change, NetBook};
use self::plan::{Planner, Shadow, ShadowDelta, EXPIRY_SLACK};
use super::{BanEntry, Firewall, FirewallError, FirewallOp, JailRules, Protocol, SetKind};
use crate::UnixTime;

/// The table name used when the configuration names none.
pub const DEFAULT_TABLE: &str = "banwarden";
/// The one base chain in the table.
pub const CHAIN: &str = "input";
/// Hook priority of [`CHAIN`]: before the usual `filter` chains at 0.
pub const CHAIN_PRIORITY: i32 = -10;
/// The base chain for routed traffic, created only while a jail has
/// `chains: [.., forward]`. Docker (iptables-nft's `FORWARD`/`DOCKER-USER`
/// and Docker 29's own nftables tables alike) filters forwarded traffic at
/// priority 0 (`filter`); at -10 this chain sees a packet first, after DNAT
/// (prerouting, -100) has already rewritten it to the container. A drop here
/// is final whatever Docker's chains would say; an accept lets them decide.
pub const FORWARD_CHAIN: &str = "forward";
/// Hook priority of [`FORWARD_CHAIN`].
pub const FORWARD_PRIORITY: i32 = -10;
/// Every rule carries the comment `banwarden:<jail>`.
pub const RULE_COMMENT_PREFIX: &str = "banwarden:";

/// The nftables backend. Cheap to clone; holds no kernel state of its own.
#[derive(Debug, Clone)]
pub struct NftFirewall {
    table: String,
    nft_cmd: Vec<String>,
    /// The jails as of the last good `setup`.
    jails: HashMap<String, JailRules>,
    /// What the sets hold (set name → elements), as of the last good
    /// transaction; `None`: unknown (no setup yet, or a failed one). The kernel
    /// rejects overlapping elements and mishandles some add/delete sequences of
    /// overlapping elements within one transaction, so for interval sets the
    /// exact commands depend on what is present; for exact sets it spares the
    /// slow delete when a ban is new.
    shadow: Option<Shadow>,
    /// When expired elements were last dropped from `shadow`.
    pruned_at: UnixTime,
}

/// How often `apply` drops expired elements from the shadow, seconds.
const PRUNE_EVERY: UnixTime = 60;

/// The name of jail `jail`'s set of `kind` for the family of `addr`: `J_v4`,
/// `J_v6` (exact) or `J_v4net`, `J_v6net` (other lengths).
pub fn set_name(jail: &str, addr: IpAddr, kind: SetKind) -> String {
    let family = super::family_suffix(addr);
    match kind {
        SetKind::Exact => format!("{jail}_{family}"),
        SetKind::Net => format!("{jail}_{family}net"),
    }
}

/// Whether `name` is one this daemon gives its sets.
fn is_our_set_name(name: &str) -> bool {
    ["_v4", "_v6", "_v4net", "_v6net"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A set a jail needs.
#[derive(Debug, Clone)]
pub(crate) struct SetSpec {
    ty: SetType,
    kind: SetKind,
    /// The family's exact set and the jail's prefix for the family: both sets
    /// of a family are recreated when the exact set's granularity changed.
    exact: String,
    prefix: u8,
}

/// Every set `jails` need, by name.
fn wanted_sets(jails: &[JailRules]) -> BTreeMap<String, SetSpec> {
    let mut wanted = BTreeMap::new();
    for jail in jails {
        for (_, sample, ty) in FAMILIES {
            let exact = set_name(&jail.name, sample, SetKind::Exact);
            for kind in [SetKind::Exact, SetKind::Net] {
                let spec = SetSpec {
                    ty,
                    kind,
                    exact: exact.clone(),
                    prefix: jail.prefix_len(sample),
                };
                wanted.insert(set_name(&jail.name, sample, kind), spec);
            }
        }
    }
    wanted
}

/// Whether set `name` exists as `spec` wants it, with elements of the wanted
/// granularity (as the rules matching the exact set say).
fn keeps(state: &TableState, name: &str, spec: &SetSpec) -> bool {
    state
        .sets
        .get(name)
        .is_some_and(|s| s.matches(spec.ty, spec.kind == SetKind::Net))
        && state.set_prefix.get(&spec.exact) == Some(&spec.prefix)
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
            jails: HashMap::new(),
            shadow: None,
            pruned_at: UnixTime::MIN,
        }
    }

    /// The host's `nft` from `PATH`.
    pub fn system(table: &str) -> Self {
        Self::new(table, vec!["nft".to_string()])
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The bans in `jail`'s sets (v4 exact, v4 net, v6 exact, v6 net), each with
    /// the seconds left before it expires (`None`: permanent). Elements of an
    /// exact set come back as nets of the length its rule masks to.
    pub fn list_elements(&self, jail: &str) -> Result<Vec<(IpNet, Option<u64>)>, FirewallError> {
        let Some(state) = self.state()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (_, sample, _) in FAMILIES {
            for kind in [SetKind::Exact, SetKind::Net] {
                let name = set_name(jail, sample, kind);
                if !state.sets.contains_key(&name) {
                    continue;
                }
                let len = match kind {
                    SetKind::Exact => state.set_prefix.get(&name).copied(),
                    SetKind::Net => None,
                };
                for (net, left) in self.list_set(&name)? {
                    let net = match len {
                        Some(len) if len <= net.max_prefix_len() => {
                            IpNet::new(net.addr(), len).map_or(net, |n| n.trunc())
                        }
                        _ => net,
                    };
                    out.push((net, left));
                }
            }
        }
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

    /// Which set of `jail` holds `net`. A jail not set up is taken to count
    /// hosts.
    fn route(&self, jail: &str, net: &IpNet) -> (String, SetKind) {
        let kind = match self.jails.get(jail) {
            Some(rules) => rules.kind_of(net),
            None if is_host(net) => SetKind::Exact,
            None => SetKind::Net,
        };
        (set_name(jail, net.addr(), kind), kind)
    }

    /// The `setup` transaction for the table as `state` describes it, and
    /// what the sets hold once it is applied; `existing` holds the elements of
    /// the sets that stay (as `nft list set` gives them).
    pub(crate) fn setup_batch(
        &self,
        state: Option<&TableState>,
        existing: &HashMap<String, Vec<(IpNet, Option<u64>)>>,
        jails: &[JailRules],
        bans: &[BanEntry],
        now: UnixTime,
    ) -> (Nftables<'static>, usize, Shadow) {
        let table = self.table.as_str();
        let mut batch = Batch::new();
        batch.add(table_obj(table));
        if let Some(chain) = state.and_then(|s| s.chain.as_ref()) {
            if !chain.is_expected() {
                batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain_obj(table, false))));
                batch.delete(NfListObject::Chain(chain_obj(table, false)));
            }
        }
        batch.add(NfListObject::Chain(chain_obj(table, true)));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain_obj(table, false))));
        // The forward chain exists only while a jail asks for it.
        let forward = jails.iter().any(|j| j.chains.forward);
        if let Some(chain) = state.and_then(|s| s.forward.as_ref()) {
            if !forward || !chain.is_expected_forward() {
                batch.add_cmd(NfCmd::Flush(FlushObject::Chain(forward_chain_obj(
                    table, false,
                ))));
                batch.delete(NfListObject::Chain(forward_chain_obj(table, false)));
            }
        }
        if forward {
            batch.add(NfListObject::Chain(forward_chain_obj(table, true)));
            batch.add_cmd(NfCmd::Flush(FlushObject::Chain(forward_chain_obj(
                table, false,
            ))));
        }

        // Sets: keep those that are wanted and right; delete the rest of ours.
        let wanted = wanted_sets(jails);
        if let Some(state) = state {
            for name in state.sets.keys() {
                if !is_our_set_name(name) {
                    continue; // not a name this daemon creates
                }
                if !wanted
                    .get(name)
                    .is_some_and(|spec| keeps(state, name, spec))
                {
                    batch.delete(set_obj(table, name, SetType::Ipv4Addr, false));
                }
            }
        }
        for (name, spec) in &wanted {
            batch.add(set_obj(table, name, spec.ty, spec.kind == SetKind::Net));
        }
        if jails.iter().any(|j| j.protocol == Protocol::All) {
            batch.add(NfListObject::Rule(nd_rule(table)));
        }
        for jail in jails {
            for rule in jail_rules(table, jail) {
                batch.add(NfListObject::Rule(rule));
            }
        }

        // Bans, against what the sets already hold: the interval sets never
        // receive overlapping elements, and new bans in exact sets are plain
        // adds. Exact sets list network addresses: back to nets.
        let mut before = Shadow::new();
        for (name, spec) in &wanted {
            let mut book = NetBook::default();
            for (net, left) in existing.get(name).into_iter().flatten() {
                let net = match spec.kind {
                    SetKind::Exact => IpNet::new(net.addr(), spec.prefix).unwrap_or(*net),
                    SetKind::Net => *net,
                };
                let expires =
                    left.map(|l| now.saturating_add(i64::try_from(l).unwrap_or(i64::MAX)));
                book.insert_unchecked(net, expires);
            }
            before.insert(name.clone(), book);
        }
        let rules: HashMap<&str, &JailRules> = jails.iter().map(|j| (j.name.as_str(), j)).collect();
        let mut plan = Planner::new(now, Some(&before));
        for ban in bans {
            let Some(rules) = rules.get(ban.jail.as_str()) else {
                tracing::warn!(jail = %ban.jail, net = %ban.net, "ban for a jail that has no rules; not loaded");
                continue;
            };
            let kind = rules.kind_of(&ban.net);
            plan.ban(
                &set_name(&ban.jail, ban.net.addr(), kind),
                kind,
                ban.net,
                ban.expires,
            );
        }
        let (items, delta) = plan.finish(&mut batch, table);
        delta.apply_to(&mut before);
        (batch.to_nftables(), items, before)
    }

    /// The element changes of `ops` against what the sets hold.
    fn planner(&self, ops: &[FirewallOp], now: UnixTime) -> Planner<'_> {
        let mut plan = Planner::new(now, self.shadow.as_ref());
        for op in ops {
            match op {
                FirewallOp::Ban(ban) => {
                    let (name, kind) = self.route(&ban.jail, &ban.net);
                    plan.ban(&name, kind, ban.net, ban.expires);
                }
                FirewallOp::Unban { jail, net } => {
                    let (name, kind) = self.route(jail, net);
                    plan.unban(&name, kind, *net);
                }
            }
        }
        plan
    }

    /// The `apply` transaction in nft's own syntax, which nft reads much
    /// faster than JSON (a bulk ban of 100,000 elements); `None` when there is
    /// nothing to do, `Some(Err(()))` when a name cannot be written unquoted
    /// (then [`apply_batch`](Self::apply_batch)'s JSON is used).
    #[allow(clippy::type_complexity)]
    pub(crate) fn apply_text(
        &self,
        ops: &[FirewallOp],
        now: UnixTime,
    ) -> Option<Result<(String, usize, ShadowDelta), ()>> {
        let plan = self.planner(ops, now);
        match plan.finish_text(&self.table) {
            None => Some(Err(())),
            Some((_, 0, _)) => None,
            Some(done) => Some(Ok(done)),
        }
    }

    /// The `apply` transaction (`None` when there is nothing to do) and what
    /// it changes in the shadow.
    pub(crate) fn apply_batch(
        &self,
        ops: &[FirewallOp],
        now: UnixTime,
    ) -> Option<(Nftables<'static>, usize, ShadowDelta)> {
        let plan = self.planner(ops, now);
        let mut batch = Batch::new();
        let (items, delta) = plan.finish(&mut batch, &self.table);
        (items > 0).then(|| (batch.to_nftables(), items, delta))
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
        // Sets that stay: their elements, so that new bans cannot overlap those
        // of interval sets, and are known to be new in exact sets.
        let mut existing = HashMap::new();
        if let Some(state) = &state {
            for (name, spec) in wanted_sets(jails) {
                if keeps(state, &name, &spec) {
                    let elems = self.list_set(&name)?;
                    existing.insert(name, elems);
                }
            }
        }
        let (doc, items, shadow) = self.setup_batch(state.as_ref(), &existing, jails, bans, now);
        match self.transact(&doc, "setup", items) {
            Ok(()) => {
                self.jails = jails.iter().map(|j| (j.name.clone(), j.clone())).collect();
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
        let delta = match self.apply_text(ops, now) {
            Some(Ok((text, items, delta))) => {
                self.transact_text(&text, "apply", items)?;
                delta
            }
            Some(Err(())) => {
                let Some((doc, items, delta)) = self.apply_batch(ops, now) else {
                    return Ok(());
                };
                self.transact(&doc, "apply", items)?;
                delta
            }
            None => return Ok(()),
        };
        if let Some(shadow) = &mut self.shadow {
            delta.apply_to(shadow);
            if now.saturating_sub(self.pruned_at) >= PRUNE_EVERY {
                self.pruned_at = now;
                for book in shadow.values_mut() {
                    book.prune(now.saturating_sub(EXPIRY_SLACK));
                }
            }
        }
        Ok(())
    }

    fn present(&mut self, _jails: &[JailRules]) -> Result<bool, FirewallError> {
        // `list chains` is the one listing nft (1.0.6) answers without
        // fetching every set element.
        let json = self.run(&["-j", "list", "chains", "inet"], None)?;
        listing::chain_present(&json, &self.table)
    }

    fn intact(&mut self, jails: &[JailRules]) -> Result<bool, FirewallError> {
        let Some(state) = self.state()? else {
            return Ok(false);
        };
        if !state.chain.as_ref().is_some_and(ChainState::is_expected) {
            return Ok(false);
        }
        for (name, spec) in wanted_sets(jails) {
            // The set is right and a rule matches it (unmasked for a net set).
            let max = if spec.ty == SetType::Ipv4Addr {
                32
            } else {
                128
            };
            let matched = match spec.kind {
                SetKind::Exact => spec.prefix,
                SetKind::Net => max,
            };
            if !keeps(&state, &name, &spec) || state.set_prefix.get(&name) != Some(&matched) {
                return Ok(false);
            }
        }
        let forward = jails.iter().any(|j| j.chains.forward);
        if forward != state.forward.is_some()
            || state
                .forward
                .as_ref()
                .is_some_and(|c| !c.is_expected_forward())
        {
            return Ok(false);
        }
        for jail in jails {
            let comment = format!("{RULE_COMMENT_PREFIX}{}", jail.name);
            if jail.chains.input && !state.rule_comments.contains(&comment) {
                return Ok(false);
            }
            if jail.chains.forward && !state.forward_comments.contains(&comment) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
