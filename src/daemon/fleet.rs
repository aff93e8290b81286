//! The daemon's side of the fleet: starting the link, handing it failures
//! and decisions of shared jails, and applying what other nodes decided
//! with this node's own rules (`ignoreip`/`ignoreself` and fleet members
//! are never banned, `fleet: local` jails take nothing from the fleet).
//!
//! Runs on the daemon's main task like everything that touches its state;
//! it never waits on Redis (the link is `crate::fleet`'s task).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{blocking, Daemon};
use crate::config::fleet::{FleetConfig, JailFleet};
use crate::config::Config;
use crate::events::{BanOrigin, Banned, InternalEvent, StoreError, StoreOp};
use crate::firewall::{BanEntry, FirewallOp};
use crate::fleet::{Action, Claim, Failure, Fleet, FromFleet, JailParams, Message, Start};
use crate::store::BanRecord;
use crate::UnixTime;

/// The next message from the fleet; never, without one.
pub(super) async fn recv(rx: &mut Option<UnboundedReceiver<FromFleet>>) -> Option<FromFleet> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Store key of the node's position in the fleet's stream.
const FLEET_POSITION: &str = "fleet";

/// The shared jails of `config` (none without a `fleet:` block).
pub(super) fn shared_jails(config: &Config) -> HashMap<String, JailParams> {
    if config.global.fleet.is_none() {
        return HashMap::new();
    }
    config
        .enabled_jails()
        .filter(|j| j.fleet == JailFleet::Shared)
        .map(|j| {
            (
                j.name.clone(),
                JailParams {
                    maxretry: j.settings.maxretry,
                    findtime: j.settings.findtime,
                    bantime: j.settings.bantime,
                },
            )
        })
        .collect()
}

/// Starts the link if the config has a `fleet:` block.
pub(super) fn start(
    config: &Config,
    store: &crate::store::Store,
    bans: &[BanRecord],
) -> Option<(Fleet, UnboundedReceiver<FromFleet>)> {
    let fc = config.global.fleet.clone()?;
    let jails = shared_jails(config);
    let position = store.cursor(FLEET_POSITION).ok().flatten();
    let now = crate::now();
    let active = bans
        .iter()
        .filter(|b| jails.contains_key(&b.jail) && b.expires.is_none_or(|e| e > now))
        .map(|b| Message {
            node: fc.node.clone(),
            action: ban_action(b),
            ms: crate::fleet::now_ms(),
        })
        .collect();
    let addresses = crate::jail::ignore::own_addresses()
        .into_iter()
        .filter(|a| !a.is_loopback() && !is_link_local(a))
        .collect();
    tracing::info!(node = %fc.node, redis = %fc.redacted(), shared = ?jails.keys().collect::<Vec<_>>(), "fleet: joining");
    Some(Fleet::spawn(Start {
        config: fc,
        jails,
        position,
        active,
        addresses,
    }))
}

/// The (jail, net) pairs `decisions` ban (empty without a fleet).
pub(super) fn banned_now(
    decisions: &[crate::jail::BanDecision],
    fleet: bool,
) -> HashSet<(String, IpNet)> {
    if !fleet {
        return HashSet::new();
    }
    decisions.iter().map(|d| (d.jail.clone(), d.net)).collect()
}

/// Which node decided each restored ban (kept in the store with it).
pub(super) fn origins(bans: &[BanRecord]) -> HashMap<(String, IpNet), String> {
    bans.iter()
        .filter_map(|b| Some(((b.jail.clone(), b.net), b.origin.clone()?)))
        .collect()
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn ban_action(b: &BanRecord) -> Action {
    Action::Ban {
        jail: b.jail.clone(),
        net: b.net,
        expires: b.expires,
        count: b.count,
        at: b.banned_at,
    }
}

fn show(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl Daemon {
    /// After a reload: if the `fleet:` block changed (joined, left, or
    /// another URL, node, prefix or TLS file), drops the old link and starts
    /// one for the new block; the main loop takes its receiver from
    /// `fleet_rx_swap`. A new Redis or prefix is a new stream: it is read
    /// from its start (bans still in force there are applied), and this
    /// node's active bans are published there if that Redis is new to the
    /// fleet.
    pub(super) fn reconnect_fleet(&mut self, old: Option<FleetConfig>) {
        let new = self.running.config.global.fleet.clone();
        if old == new {
            return;
        }
        let same_stream = matches!((&old, &new), (Some(o), Some(n)) if o.redis == n.redis && o.prefix == n.prefix);
        if let Some(f) = self.fleet.take() {
            tracing::info!(node = %f.node, "fleet: leaving (the fleet block changed)");
        }
        self.members.clear();
        if same_stream {
            self.save_fleet_position();
        } else {
            self.fleet_position = None;
            let store = Arc::clone(&self.store);
            if let Err(e) = blocking(|| store.set_cursor(FLEET_POSITION, "0-0")) {
                tracing::warn!(error = %e, "could not reset the fleet stream position");
            }
        }
        let bans: Vec<BanRecord> = self.bans.values().cloned().collect();
        match start(&self.running.config, &self.store, &bans) {
            Some((f, rx)) => {
                self.fleet = Some(f);
                self.fleet_rx_swap = Some(Some(rx));
            }
            None => self.fleet_rx_swap = Some(None),
        }
    }

    /// Whether `jail`'s counts and bans go to the fleet.
    pub(super) fn is_shared(&self, jail: &str) -> bool {
        self.fleet.is_some()
            && self
                .running
                .config
                .jail(jail)
                .is_some_and(|j| j.fleet == JailFleet::Shared)
    }

    /// Makes the engine collect failures of shared jails (after start and reload).
    pub(super) fn install_fleet_tap(&mut self) {
        if self.fleet.is_none() {
            return;
        }
        let shared: Vec<bool> = self
            .running
            .engine
            .jails
            .iter()
            .map(|rt| self.is_shared(&rt.jail.settings.name))
            .collect();
        self.running.engine.tap = Some(crate::jail::engine::FleetTap {
            shared,
            failures: Vec::new(),
        });
        let members = self.members.clone();
        for net in members {
            self.allow_member(net);
        }
        if let Some(f) = &self.fleet {
            f.jails(shared_jails(&self.running.config));
        }
    }

    /// Pushes the link's counters to the metrics (once a second).
    pub(super) fn report_fleet_metrics(&mut self) {
        let (Some(m), Some(f)) = (&self.metrics, &self.fleet) else {
            return;
        };
        let now = f.status();
        let last = &self.fleet_reported;
        m.fleet("published", now.published.saturating_sub(last.published));
        m.fleet("received", now.received.saturating_sub(last.received));
        m.fleet("failed", now.failed.saturating_sub(last.failed));
        m.fleet("malformed", now.malformed.saturating_sub(last.malformed));
        m.set_fleet_connected(now.connected);
        self.fleet_reported = now;
    }

    /// Hands the failures the engine tapped to the link (never waits),
    /// but not those of addresses this node just banned: their ban goes to
    /// every node anyway, so counting them would only load Redis.
    pub(super) fn send_failures(&mut self, banned: &HashSet<(String, IpNet)>) {
        let (Some(fleet), Some(tap)) = (&self.fleet, self.running.engine.tap.as_mut()) else {
            return;
        };
        if tap.failures.is_empty() {
            return;
        }
        let mut failures: Vec<Failure> = std::mem::take(&mut tap.failures);
        if !banned.is_empty() {
            failures.retain(|f| !banned.contains(&(f.jail.clone(), f.net)));
        }
        fleet.count(failures);
    }

    /// Saves the fleet stream position if it moved (once a second, and on stop).
    pub(super) fn save_fleet_position(&mut self) {
        let Some(p) = self.fleet_position.take() else {
            return;
        };
        let store = Arc::clone(&self.store);
        if let Err(e) = blocking(|| store.set_cursor(FLEET_POSITION, &p)) {
            self.emit(StoreError::new(StoreOp::SaveFleetPosition, &e));
        }
    }

    /// Puts bans this node decided on the stream (shared jails only) and
    /// names this node as their origin.
    pub(super) fn publish_bans(&mut self, records: &[BanRecord], claim: Claim) {
        let Some(fleet) = &self.fleet else { return };
        let node = fleet.node.clone();
        for r in records {
            self.origins.insert((r.jail.clone(), r.net), node.clone());
        }
        for r in records {
            if self.is_shared(&r.jail) {
                if let Some(f) = &self.fleet {
                    f.publish(ban_action(r), claim);
                }
            }
        }
    }

    /// Puts a manual unban or ignore on the stream.
    pub(super) fn publish_action(&self, action: Action) {
        let Some(fleet) = &self.fleet else { return };
        if let Action::Unban { jail: Some(j), .. } = &action {
            if !self.is_shared(j) {
                return;
            }
        }
        fleet.publish(action, Claim::Always);
    }

    /// Applies a burst of what the fleet sent: bans in one store commit and
    /// one firewall batch, then the stream position.
    pub(super) fn fleet_in(
        &mut self,
        first: FromFleet,
        rx: &mut Option<UnboundedReceiver<FromFleet>>,
    ) -> Result<(), super::DaemonError> {
        let mut burst = vec![first];
        if let Some(rx) = rx.as_mut() {
            while burst.len() < 20_000 {
                match rx.try_recv() {
                    Ok(m) => burst.push(m),
                    Err(_) => break,
                }
            }
        }
        let now = crate::now();
        let mut records = Vec::new();
        let mut ops = Vec::new();
        let mut position = None;
        for m in burst {
            match m {
                FromFleet::Crossed { jail, net } => self.crossed(&jail, net, now, &mut ops),
                FromFleet::Remote(msgs) => {
                    for msg in msgs {
                        self.remote(msg, now, &mut records, &mut ops);
                    }
                }
                FromFleet::Members(addrs) => {
                    for a in addrs {
                        let net = IpNet::from(a);
                        if !self.members.contains(&net) {
                            tracing::info!(addr = %a, "fleet member: never banned here");
                            self.members.push(net);
                            self.allow_member(net);
                        }
                    }
                }
                FromFleet::Position(p) => position = Some(p),
            }
        }
        if !records.is_empty() {
            let store = Arc::clone(&self.store);
            if let Err(e) = blocking(|| store.record(&records, &[])) {
                self.emit(StoreError::new(StoreOp::RecordBans, &e));
            }
            for r in records {
                ops.push(FirewallOp::Ban(BanEntry {
                    jail: r.jail.clone(),
                    net: r.net,
                    expires: r.expires,
                }));
                self.bans.insert((r.jail.clone(), r.net), r);
            }
        }
        if !ops.is_empty() {
            self.worker
                .send(ops)
                .map_err(|_| super::DaemonError::Firewall("the firewall worker stopped".into()))?;
        }
        if position.is_some() {
            self.fleet_position = position;
        }
        Ok(())
    }

    fn allow_member(&mut self, net: IpNet) {
        for rt in &mut self.running.engine.jails {
            if !rt.jail.settings.ignore.nets().contains(&net) {
                rt.jail.settings.ignore.add(net);
            }
        }
    }

    /// The fleet-wide count crossed `maxretry` in this node's batch: this
    /// node decides the ban (escalation from its history) and publishes it.
    fn crossed(&mut self, jail: &str, net: IpNet, now: UnixTime, ops: &mut Vec<FirewallOp>) {
        if let Some(b) = self.bans.get(&(jail.to_string(), net)) {
            if b.expires.is_none_or(|e| e > now) {
                // Banned here already (this node's own count got there first).
                let b = b.clone();
                self.publish_bans(&[b], Claim::Always);
                return;
            }
        }
        let Some(rt) = self.running.engine.jail_mut(jail) else {
            return;
        };
        if let Some(reason) = rt.jail.settings.ignore.check(net.addr()) {
            tracing::info!(jail, addr = %show(&net), %reason, "fleet count crossed for an ignored address: never banned");
            return;
        }
        let mut decision = rt.jail.manual_ban(net, now, None);
        decision.failures = rt.jail.settings.maxretry;
        rt.stats.bans += 1;
        Banned {
            jail,
            net,
            failures: decision.failures,
            bantime: decision.bantime,
            origin: BanOrigin::FleetCount,
        }
        .emit(self.metrics.as_deref());
        let mut batch = vec![decision];
        ops.extend(self.record(&mut batch, now, Some(Claim::Always)));
    }

    /// Another node's message, under this node's rules.
    fn remote(
        &mut self,
        msg: Message,
        now: UnixTime,
        records: &mut Vec<BanRecord>,
        ops: &mut Vec<FirewallOp>,
    ) {
        let node = msg.node.clone();
        match msg.action {
            Action::Ban {
                jail,
                net,
                expires,
                count,
                at,
            } => {
                if expires.is_some_and(|e| e <= now) {
                    return;
                }
                if !self.is_shared(&jail) {
                    tracing::debug!(%jail, from = %node, "fleet ban for a jail not shared here: skipped");
                    return;
                }
                if let Some(b) = self.bans.get(&(jail.clone(), net)) {
                    let lasts = match (b.expires, expires) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(have), Some(want)) => have >= want,
                    };
                    // Banned here at least as long already.
                    if b.expires.is_none_or(|e| e > now) && lasts {
                        return;
                    }
                }
                let Some(rt) = self.running.engine.jail_mut(&jail) else {
                    return;
                };
                if let Some(reason) = rt.jail.settings.ignore.check(net.addr()) {
                    tracing::info!(%jail, addr = %show(&net), from = %node, %reason, "fleet ban refused: the address is never banned here");
                    return;
                }
                rt.jail.note_ban(net, expires);
                rt.jail.note_history(net, at.min(now));
                tracing::info!(%jail, addr = %show(&net), from = %node, "ban (from the fleet)");
                self.origins.insert((jail.clone(), net), node.clone());
                records.push(BanRecord {
                    jail,
                    net,
                    banned_at: at.min(now),
                    expires,
                    count,
                    origin: Some(node),
                });
            }
            Action::Unban { jail, net } => {
                if jail.as_ref().is_some_and(|j| !self.is_shared(j)) {
                    return;
                }
                tracing::info!(addr = %show(&net), from = %node, "unban (from the fleet)");
                self.lift(jail.as_deref(), net, records, ops);
            }
            Action::Ignore { net, until } => {
                if until.is_some_and(|u| u <= now) {
                    return;
                }
                tracing::info!(addr = %show(&net), from = %node, until = ?until, "ignore (from the fleet)");
                self.running.ignore(net, until);
                self.lift(None, net, records, ops);
            }
        }
    }

    /// Lifts bans of `net` (or inside it) in shared jails, without publishing.
    fn lift(
        &mut self,
        jail: Option<&str>,
        net: IpNet,
        records: &mut Vec<BanRecord>,
        ops: &mut Vec<FirewallOp>,
    ) {
        let covers = |have: &IpNet| have == &net || net.contains(have);
        records.retain(|r| !(jail.is_none_or(|j| j == r.jail) && covers(&r.net)));
        let keys: Vec<(String, IpNet)> = self
            .bans
            .keys()
            .filter(|(j, n)| jail.is_none_or(|want| want == j) && covers(n))
            .filter(|(j, _)| self.is_shared(j))
            .cloned()
            .collect();
        if keys.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        if let Err(e) = blocking(|| store.remove_bans(&keys)) {
            self.emit(StoreError::new(StoreOp::RemoveBans, &e));
        }
        for (j, n) in keys {
            self.bans.remove(&(j.clone(), n));
            self.origins.remove(&(j.clone(), n));
            if let Some(rt) = self.running.engine.jail_mut(&j) {
                rt.jail.forget_ban(&n);
            }
            if let Some(m) = &self.metrics {
                m.unbans(&j, crate::metrics::UnbanCause::Manual, 1);
            }
            ops.push(FirewallOp::Unban { jail: j, net: n });
        }
    }
}
