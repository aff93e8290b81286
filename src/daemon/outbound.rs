//! The daemon's side of actions and filter health: turns bans, unbans and
//! jail counters into action events (queued, never awaited) and health
//! flags (logged once per change, shown in status and metrics).
//!
//! Must not wait on an action or do I/O of its own: the line path only
//! remembers the line that triggered a ban.

use std::collections::HashMap;
use std::time::Instant;

use ipnet::IpNet;

use super::Daemon;
use crate::actions::{nth_line, ActionEvent, Actions, EventKind};
use crate::health::{Health, Problem};
use crate::jail::engine::Observer;
use crate::jail::{BanDecision, Verdict};
use crate::source::SourceEvent;
use crate::store::BanRecord;
use crate::UnixTime;

/// What the daemon keeps for actions and health.
#[derive(Default)]
pub(crate) struct Outbound {
    pub actions: Actions,
    pub health: Health,
    /// The line that triggered each ban decided since the last `record`.
    lines: HashMap<(String, IpNet), String>,
}

impl Daemon {
    /// Feeds an event to the engine; when a jail has actions, remembers the
    /// line behind each ban it decides.
    pub(super) fn engine_handle(
        &mut self,
        ev: &SourceEvent,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
    ) {
        let out_b = &mut self.outbound;
        let actions = &out_b.actions;
        let lines = &mut out_b.lines;
        let mut observe = |rec: &crate::scan::Rec, _t: UnixTime, v: &Verdict| {
            let Verdict::Ban(b) = v else { return };
            if !actions.wants(&b.jail, EventKind::Ban) {
                return;
            }
            let text = match ev {
                SourceEvent::Lines { data, .. } => nth_line(data, rec.line),
                SourceEvent::Entries { entries, .. } => entries
                    .get(rec.line as usize)
                    .and_then(|(_, e)| nth_line(e, 0)),
                _ => None,
            };
            if let Some(t) = text {
                lines.insert((b.jail.clone(), b.net), t);
            }
        };
        let observer: Observer<'_> = &mut observe;
        self.running
            .engine
            .handle_observed(ev, now, out, Some(observer));
    }

    /// Queues a ban event for each decision whose jail has actions.
    pub(super) fn announce_bans(&mut self, decisions: &[BanDecision], now: UnixTime) {
        let o = &mut self.outbound;
        for b in decisions {
            let line = o.lines.remove(&(b.jail.clone(), b.net));
            if !o.actions.wants(&b.jail, EventKind::Ban) {
                continue;
            }
            let ev = ActionEvent::new(
                EventKind::Ban,
                &b.jail,
                b.net,
                now,
                b.expires,
                b.failures,
                b.count,
                line.into_iter().collect(),
            );
            o.actions.notify(&ev);
        }
        o.lines.clear();
    }

    /// Queues an unban event (`cause`: expiry or manual).
    pub(super) fn announce_unban(&mut self, r: &BanRecord, cause: &str) {
        let a = &mut self.outbound.actions;
        if !a.wants(&r.jail, EventKind::Unban) {
            return;
        }
        let mut ev = ActionEvent::new(
            EventKind::Unban,
            &r.jail,
            r.net,
            r.banned_at,
            r.expires,
            0,
            r.count,
            Vec::new(),
        );
        ev.cause = Some(cause.to_string());
        a.notify(&ev);
    }

    /// Once a second: updates filter health, logs each change once and
    /// sets the metric.
    pub(super) fn check_health(&mut self) {
        let config = &self.running.config;
        let jails = self.running.engine.jails.iter().map(|rt| {
            let name = rt.jail.settings.name.as_str();
            let spec = config.jail(name).map(|j| j.health).unwrap_or_default();
            (name, rt.filter.name(), rt.stats, spec)
        });
        let changes = self.outbound.health.check(jails, Instant::now());
        for c in changes {
            let after = config
                .jail(&c.jail)
                .and_then(|j| j.health.after)
                .unwrap_or_default();
            if c.flagged {
                tracing::warn!(jail = %c.jail, problem = c.problem.as_str(), "jail unhealthy: {}", c.problem.describe(after));
            } else {
                tracing::info!(jail = %c.jail, problem = c.problem.as_str(), "jail healthy again");
            }
            if let Some(m) = &self.metrics {
                m.set_unhealthy(&c.jail, c.problem.as_str(), c.flagged);
            }
        }
    }

    /// `status` lines for `jail`'s health problems.
    pub(super) fn health_of(&self, jail: &str) -> Vec<String> {
        let after = self
            .running
            .config
            .jail(jail)
            .and_then(|j| j.health.after)
            .unwrap_or_default();
        self.outbound
            .health
            .problems(jail)
            .iter()
            .map(|p: &Problem| p.describe(after))
            .collect()
    }
}
