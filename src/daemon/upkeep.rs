//! What the daemon does once a second (saving positions, lifting expired
//! bans from its book, sweeping counters once a minute, pushing metrics),
//! and how it takes the firewall worker's reports.
//!
//! It must not count lines or decide bans (the engine does), nor talk to
//! nft (the worker does).

use std::collections::HashMap;
use std::sync::Arc;

use super::{blocking, Daemon, HISTORY_HORIZON};
use crate::events::{
    BansExpired, FirewallFailed, FirewallRebuilt, InternalEvent, StoreError, StoreOp,
};
use crate::firewall::worker::WorkerEvent;
use crate::UnixTime;

impl Daemon {
    /// Once a second: save positions, forget expired bans, sweep counters.
    pub(super) fn tick(&mut self, now: UnixTime) {
        self.save_positions();
        self.save_fleet_position();
        let mut expired: HashMap<String, u64> = HashMap::new();
        let mut gone = Vec::new();
        self.bans.retain(|(jail, _), b| {
            let keep = b.expires.is_none_or(|e| e > now);
            if !keep {
                *expired.entry(jail.clone()).or_default() += 1;
                gone.push(b.clone());
            }
            keep
        });
        for b in &gone {
            self.announce_unban(b, "expiry");
        }
        self.check_health();
        self.report_action_metrics();
        for (jail, n) in &expired {
            self.emit(BansExpired { jail, count: *n });
        }
        self.report_metrics();
        self.report_fleet_metrics();
        // A one-second tick can be skipped under load: compare, do not divide.
        if now - self.last_sweep >= 60 {
            self.last_sweep = now;
            self.running.engine.sweep(now);
            self.forget_unfollowed_positions();
            self.save_health();
            let store = Arc::clone(&self.store);
            if let Err(e) = blocking(|| store.purge_expired(now, HISTORY_HORIZON)) {
                self.emit(StoreError::new(StoreOp::Purge, &e));
            }
        }
        self.running.expire_ignores(now);
        // Allow-list files (`file:` entries) are re-read when they change.
        crate::jail::allowfile::refresh(&self.running.config.allow_files());
    }

    /// Pushes counter deltas and gauges to the metrics, once a second (never
    /// per line: the hot path only bumps plain integers in the engine).
    pub(super) fn report_metrics(&mut self) {
        let Some(m) = &self.metrics else { return };
        for rt in &self.running.engine.jails {
            let name = &rt.jail.settings.name;
            let filter = rt.filter.name();
            let last = self.reported.get(name).copied().unwrap_or_default();
            let now = rt.stats;
            m.lines(name, filter, now.lines.saturating_sub(last.lines));
            m.matched(name, filter, now.matched.saturating_sub(last.matched));
            m.ignored_lines(
                name,
                filter,
                now.ignored_lines.saturating_sub(last.ignored_lines),
            );
            m.failures(name, now.failures.saturating_sub(last.failures));
            m.set_active_bans(
                name,
                self.bans.keys().filter(|(j, _)| j == name).count() as u64,
            );
            m.set_tracked(name, rt.jail.tracked() as u64);
            self.reported.insert(name.clone(), now);
        }
    }

    pub(super) fn worker_event(&mut self, ev: WorkerEvent) {
        let m = self.metrics.as_deref();
        match ev {
            WorkerEvent::Applied { took, .. } => {
                if let Some(m) = m {
                    m.nft_transaction(took, true);
                }
            }
            WorkerEvent::Failed {
                what,
                ops,
                error,
                again,
            } => FirewallFailed {
                what,
                ops,
                error: &error,
                again,
            }
            .emit(m),
            WorkerEvent::Rebuilt { reason, bans } => FirewallRebuilt {
                reason: &reason,
                bans,
            }
            .emit(m),
        }
    }
}
