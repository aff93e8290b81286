//! The daemon's internal events, in the style of Vector's: each thing an
//! operator may want to know is one type here, and emitting it writes its
//! one log record (fixed message, structured fields, which the journal
//! keeps as `JAIL=`, `ADDR=`, `PATH=`...) and updates its metric. An event
//! is emitted once, where it is handled (the daemon; an action's task and
//! the fleet link for what only they see, onto their own counters), never
//! also where it was noticed (a source or the firewall worker reports it
//! through its channel and logs nothing).
//!
//! Owns the wording, level and fields of these records and which metric
//! each moves; decides nothing.

use std::path::Path;

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use ipnet::IpNet;

use crate::actions::ActionCounters;
use crate::fleet::FleetStatus;

use crate::metrics::{Metrics, UnbanCause};

/// One event: a log record and its metric.
pub trait InternalEvent {
    fn emit(self, metrics: Option<&Metrics>);
}

/// A source could not read something (a file, the journal, a command); it
/// keeps going.
pub struct SourceError<'a> {
    /// `file`, `journal` or `command`.
    pub kind: &'static str,
    pub message: &'a str,
}

impl InternalEvent for SourceError<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::warn!(source_kind = self.kind, error = %self.message, "source error");
        if let Some(m) = metrics {
            m.source_error(self.kind);
        }
    }
}

/// The file behind a watched path was rotated, truncated or recreated.
pub struct LogRotated<'a> {
    pub path: &'a Path,
    /// `renamed`, `truncated` or `recreated`.
    pub how: &'static str,
}

impl InternalEvent for LogRotated<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::info!(path = %self.path.display(), how = self.how, "log file rotated");
        if let Some(m) = metrics {
            m.rotation(self.how);
        }
    }
}

/// A host as its bare address (what `banwarden bans` shows and `journalctl
/// ADDR=203.0.113.7` finds), a network as CIDR.
fn addr(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// A ban length as the journal field shows it: seconds, or `permanent`.
fn bantime(b: Option<i64>) -> String {
    b.map_or_else(|| "permanent".to_string(), |s| s.to_string())
}

/// Who decided a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOrigin {
    /// The jail's own count reached `maxretry`.
    Jail,
    /// `banwarden ban` on the control socket.
    Manual,
    /// The fleet-wide count crossed `maxretry` in this node's batch.
    FleetCount,
}

/// An address (or network) was banned in a jail: `banwarden_bans_total{jail}`.
pub struct Banned<'a> {
    pub jail: &'a str,
    pub net: IpNet,
    /// Failures in the window when decided (0 for a manual ban).
    pub failures: u32,
    /// Seconds; `None`: permanent.
    pub bantime: Option<i64>,
    pub origin: BanOrigin,
}

impl InternalEvent for Banned<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        let (jail, addr, bantime) = (self.jail, addr(&self.net), bantime(self.bantime));
        match self.origin {
            BanOrigin::Jail => {
                tracing::info!(jail, %addr, failures = self.failures, %bantime, "ban")
            }
            BanOrigin::Manual => tracing::info!(jail, %addr, %bantime, "manual ban"),
            BanOrigin::FleetCount => {
                tracing::info!(jail, %addr, %bantime, "ban (fleet-wide count)")
            }
        }
        if let Some(m) = metrics {
            m.bans(jail, 1);
        }
    }
}

/// `ban --from`: many bans in one store commit and one nft transaction,
/// logged as one record; each counts in `banwarden_bans_total{jail}`.
pub struct BulkBanned<'a> {
    /// Bans per jail.
    pub per_jail: &'a [(String, u64)],
    /// Entries left out (allow-listed).
    pub skipped: usize,
}

impl InternalEvent for BulkBanned<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        let count: u64 = self.per_jail.iter().map(|(_, n)| n).sum();
        tracing::info!(count, skipped = self.skipped, "bulk ban");
        if let Some(m) = metrics {
            for (jail, n) in self.per_jail {
                m.bans(jail, *n);
            }
        }
    }
}

/// Bans lifted by an operator (`unban`): one record, and each ban in
/// `banwarden_unbans_total{jail,cause="manual"}`.
pub struct ManualUnban<'a> {
    pub bans: &'a [(String, IpNet)],
}

impl InternalEvent for ManualUnban<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        let count = self.bans.len();
        match self.bans {
            [(jail, net)] => tracing::info!(jail, addr = %addr(net), count, "manual unban"),
            _ => tracing::info!(count, "manual unban"),
        }
        if let Some(m) = metrics {
            for (jail, _) in self.bans {
                m.unbans(jail, UnbanCause::Manual, 1);
            }
        }
    }
}

/// Bans whose time ran out (the kernel already lifted them), per jail:
/// `banwarden_unbans_total{jail,cause="expiry"}`; a debug record.
pub struct BansExpired<'a> {
    pub jail: &'a str,
    pub count: u64,
}

impl InternalEvent for BansExpired<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::debug!(jail = self.jail, count = self.count, "bans expired");
        if let Some(m) = metrics {
            m.unbans(self.jail, UnbanCause::Expiry, self.count);
        }
    }
}

/// A reload (SIGHUP, `systemctl reload`, `banwarden reload`) took the new
/// configuration: `banwarden_reloads_total{result="ok"}`.
pub struct Reloaded<'a> {
    pub jails: &'a [String],
}

impl InternalEvent for Reloaded<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::info!(jails = ?self.jails, "configuration reloaded");
        if let Some(m) = metrics {
            m.reload(true);
        }
    }
}

/// A reload was refused (the configuration has errors): the old one keeps
/// running. `banwarden_reloads_total{result="error"}`.
pub struct ReloadRejected<'a> {
    pub errors: &'a dyn std::fmt::Display,
}

impl InternalEvent for ReloadRejected<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::error!(errors = %self.errors, "reload rejected; the old configuration keeps running");
        if let Some(m) = metrics {
            m.reload(false);
        }
    }
}

/// What the daemon failed to write to its state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Bans (with the positions of the lines handled so far).
    RecordBans,
    /// Read positions of log files.
    SavePositions,
    /// The journal cursor.
    SaveCursor,
    /// Forgetting positions of files no longer followed.
    ForgetPositions,
    /// Purging expired bans and old history.
    Purge,
    /// Removing bans (unbans that came from the fleet).
    RemoveBans,
    /// The fleet stream position.
    SaveFleetPosition,
}

impl StoreOp {
    /// The `op` label of `banwarden_store_errors_total`.
    pub const ALL: [&'static str; 7] = [
        "record_bans",
        "save_positions",
        "save_cursor",
        "forget_positions",
        "purge",
        "remove_bans",
        "save_fleet_position",
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL[self as usize]
    }
}

/// The state file refused a write; the daemon keeps going (a ban is applied
/// anyway). `banwarden_store_errors_total{op}`.
pub struct StoreError<'a> {
    pub op: StoreOp,
    pub error: &'a dyn std::fmt::Display,
}

impl<'a> StoreError<'a> {
    pub fn new(op: StoreOp, error: &'a dyn std::fmt::Display) -> Self {
        StoreError { op, error }
    }
}

impl InternalEvent for StoreError<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        let (op, error) = (self.op.as_str(), self.error);
        match self.op {
            StoreOp::RecordBans => tracing::error!(
                op,
                %error,
                "could not record bans; they are applied but would not survive a restart"
            ),
            StoreOp::SavePositions => tracing::warn!(op, %error, "could not save file positions"),
            StoreOp::SaveCursor => tracing::warn!(op, %error, "could not save the journal cursor"),
            StoreOp::ForgetPositions => {
                tracing::warn!(op, %error, "could not forget file positions")
            }
            StoreOp::Purge => {
                tracing::warn!(op, %error, "could not purge expired bans from the store")
            }
            StoreOp::RemoveBans => {
                tracing::error!(op, %error, "could not remove bans from the state store")
            }
            StoreOp::SaveFleetPosition => {
                tracing::warn!(op, %error, "could not save the fleet stream position")
            }
        }
        if let Some(m) = metrics {
            m.store_error(op);
        }
    }
}

/// Filter health flagged a jail's problem, or saw it clear (see `health`):
/// a warning or an info record, and `banwarden_jail_unhealthy{jail,problem}`.
pub struct JailHealth<'a> {
    pub jail: &'a str,
    /// `no_lines`, `no_matches` or `undated`.
    pub problem: &'static str,
    pub flagged: bool,
    /// What is wrong, in words (`detail` in the record).
    pub detail: &'a str,
}

impl InternalEvent for JailHealth<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        let (jail, problem) = (self.jail, self.problem);
        if self.flagged {
            tracing::warn!(jail, problem, detail = self.detail, "jail unhealthy");
        } else {
            tracing::info!(jail, problem, "jail healthy again");
        }
        if let Some(m) = metrics {
            m.set_unhealthy(jail, problem, self.flagged);
        }
    }
}

/// An action delivered a batch of ban/unban events.
pub struct ActionDelivered<'a> {
    pub jail: &'a str,
    pub action: &'a str,
    pub events: usize,
}

impl ActionDelivered<'_> {
    /// Logs it and moves the action's counters (the metrics'
    /// `banwarden_action_*` series read them).
    pub fn emit(self, counters: &ActionCounters) {
        tracing::debug!(jail = %self.jail, action = %self.action, events = self.events, "action delivered");
        counters.calls_ok.fetch_add(1, Ordering::Relaxed);
        counters
            .events_sent
            .fetch_add(self.events as u64, Ordering::Relaxed);
    }
}

/// An action call failed; it is tried again after `retry_in`.
pub struct ActionRetrying<'a> {
    pub jail: &'a str,
    pub action: &'a str,
    pub attempt: u32,
    pub retry_in: std::time::Duration,
    pub error: &'a dyn std::fmt::Display,
}

impl ActionRetrying<'_> {
    pub fn emit(self, counters: &ActionCounters) {
        tracing::warn!(jail = %self.jail, action = %self.action, error = %self.error, attempt = self.attempt, retry_in = ?self.retry_in, "action call failed; retrying");
        counters.calls_failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// An action call failed for good (retries spent, or an error retrying
/// cannot fix): its events are dropped.
pub struct ActionFailed<'a> {
    pub jail: &'a str,
    pub action: &'a str,
    pub events: usize,
    pub attempts: u32,
    pub error: &'a dyn std::fmt::Display,
}

impl ActionFailed<'_> {
    pub fn emit(self, counters: &ActionCounters) {
        tracing::error!(jail = %self.jail, action = %self.action, events = self.events, attempts = self.attempts, error = %self.error, "action failed; its events are dropped");
        counters.calls_failed.fetch_add(1, Ordering::Relaxed);
        counters
            .events_dropped
            .fetch_add(self.events as u64, Ordering::Relaxed);
    }
}

/// An event found its action's queue full and was dropped. `log`: whether
/// this drop is the one of the minute that is logged (the caller limits
/// the rate); every drop is counted.
pub struct ActionQueueFull<'a> {
    pub jail: &'a str,
    pub action: &'a str,
    pub queue: usize,
    pub log: bool,
}

impl ActionQueueFull<'_> {
    pub fn emit(self, counters: &ActionCounters) {
        if self.log {
            tracing::warn!(jail = %self.jail, action = %self.action, queue = self.queue, "action queue full: events dropped (the endpoint is slow or down)");
        }
        counters.events_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The fleet's link to Redis came up (again): the bans this node made
/// meanwhile (`published`) went out.
pub struct FleetLinkUp<'a> {
    pub node: &'a str,
    pub published: usize,
}

impl FleetLinkUp<'_> {
    /// Logs it and sets the link's status (`banwarden status`, metrics).
    pub fn emit(self, status: &Mutex<FleetStatus>) {
        tracing::info!(node = %self.node, published = self.published, "fleet link up");
        if let Ok(mut s) = status.lock() {
            s.connected = true;
            s.last_error = None;
            s.pending = 0;
        }
    }
}

/// The fleet's link to Redis went down; the node bans alone meanwhile.
/// `first`: the first failure since it was up (logged; the retries are not).
pub struct FleetLinkDown<'a> {
    pub redis: &'a str,
    pub error: &'a str,
    /// Messages kept for when the link is back.
    pub pending: usize,
    pub first: bool,
}

impl FleetLinkDown<'_> {
    pub fn emit(self, status: &Mutex<FleetStatus>) {
        if self.first {
            tracing::warn!(error = %self.error, redis = %self.redis, "fleet link down; banning locally, reconnecting");
        }
        if let Ok(mut s) = status.lock() {
            s.connected = false;
            s.last_error = Some(self.error.to_string());
            s.pending = self.pending;
        }
    }
}

/// The fleet's Redis URL cannot be used at all: this node bans alone.
pub struct FleetUnusable<'a> {
    pub redis: &'a str,
    pub error: &'a str,
}

impl FleetUnusable<'_> {
    pub fn emit(self, status: &Mutex<FleetStatus>) {
        tracing::error!(error = %self.error, redis = %self.redis, "fleet: cannot use the Redis URL; this node bans alone");
        if let Ok(mut s) = status.lock() {
            s.last_error = Some(self.error.to_string());
        }
    }
}

/// A stream entry that is no message of this fleet was skipped.
pub struct FleetMalformed<'a> {
    pub id: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl FleetMalformed<'_> {
    pub fn emit(self, status: &Mutex<FleetStatus>) {
        tracing::warn!(id = %self.id, error = %self.error, "fleet: skipped a malformed stream entry");
        if let Ok(mut s) = status.lock() {
            s.malformed += 1;
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;

/// The firewall could not apply a change (`what`: `transaction` after every
/// retry, `batch` when only some of its ops failed, `rebuild` of the table).
/// Noticed by the firewall worker, which reports it and logs nothing.
pub struct FirewallFailed<'a> {
    pub what: &'static str,
    /// How many changes did not go in (0 for a rebuild).
    pub ops: usize,
    pub error: &'a str,
    /// The same rebuild failing again, every check: logged at debug.
    pub again: bool,
}

impl InternalEvent for FirewallFailed<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        if self.again {
            tracing::debug!(what = self.what, error = %self.error, "firewall change failed again");
        } else {
            tracing::error!(what = self.what, ops = self.ops, error = %self.error, "firewall change failed");
        }
        if let Some(m) = metrics {
            m.nft_transaction(std::time::Duration::ZERO, false);
        }
    }
}

/// The firewall's table, sets or rules were missing or wrong (a flushed
/// ruleset, `systemctl restart nftables`) and were rebuilt with every
/// current ban.
pub struct FirewallRebuilt<'a> {
    pub reason: &'a str,
    pub bans: usize,
}

impl InternalEvent for FirewallRebuilt<'_> {
    fn emit(self, _: Option<&Metrics>) {
        tracing::warn!(reason = %self.reason, bans = self.bans, "firewall rebuilt");
    }
}
