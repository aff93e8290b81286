//! The daemon's side of actions and filter health: turns bans, unbans and
//! jail counters into action events (queued, never awaited) and health
//! flags (logged once per change, shown in status and metrics).
//!
//! Must not wait on an action or do I/O of its own: the line path only
//! remembers the line that triggered a ban.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use super::Daemon;
use crate::actions::{nth_line, ActionEvent, Actions, EventKind};
use crate::health::{Health, Problem, Times};
use crate::jail::engine::Observer;
use crate::jail::walker::Walked;
use crate::jail::{BanDecision, Verdict};
use crate::source::SourceEvent;
use crate::store::BanRecord;
use crate::UnixTime;

/// What the daemon keeps for actions and health.
#[derive(Default)]
pub(crate) struct Outbound {
    pub actions: Actions,
    pub health: Health,
    /// The lines behind each ban decided since the last `record`.
    lines: HashMap<(String, IpNet), Vec<String>>,
    /// The last failure lines of addresses not banned yet (while some jail
    /// has ban actions), bounded.
    recent: HashMap<IpAddr, VecDeque<String>>,
    /// Action counters at the last metrics update (ok, failed, dropped).
    reported: HashMap<(String, String), [u64; 3]>,
    /// The health times as last saved.
    health_saved: Option<String>,
}

/// The store key of the saved health times ([`crate::health::Times`]).
const HEALTH_KEY: &str = "health";

/// Most addresses whose recent failure lines are kept; beyond, the memory
/// is cleared (the lines are a courtesy, the ban is not affected).
const RECENT_ADDRESSES: usize = 1024;

/// Walks a chunk's lines forward, so finding each failure's line costs
/// only the distance from the previous one.
struct Cursor<'a> {
    data: &'a [u8],
    index: u32,
    offset: usize,
}

impl Cursor<'_> {
    fn line(&mut self, index: u32) -> Option<String> {
        if index < self.index {
            self.index = 0;
            self.offset = 0;
        }
        while self.index < index {
            let nl = memchr::memchr(b'\n', &self.data[self.offset..])?;
            self.offset += nl + 1;
            self.index += 1;
        }
        nth_line(&self.data[self.offset..], 0)
    }
}

impl Daemon {
    /// Feeds an event to the engine; when a jail has actions, remembers the
    /// line behind each ban it decides.
    pub(super) fn engine_handle(
        &mut self,
        walked: &mut Walked,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
    ) {
        let Walked { ev, chunks } = walked;
        let ev = &*ev;
        let o = &mut self.outbound;
        if !o.actions.any(EventKind::Ban) {
            self.running
                .engine
                .handle_walked(ev, chunks, now, out, None);
            return;
        }
        let (actions, lines, recent) = (&o.actions, &mut o.lines, &mut o.recent);
        // Most lines kept per address (the last ones): the largest
        // `maxmatches` of the jails with ban actions.
        let keep = actions.max_lines_kept();
        let mut cursor = match ev {
            SourceEvent::Lines { data, .. } => Some(Cursor {
                data,
                index: 0,
                offset: 0,
            }),
            _ => None,
        };
        // Lines already kept from this event (jails reading the same source
        // see the same line).
        let mut seen = std::collections::HashSet::new();
        let mut observe = |rec: &crate::scan::Rec, _t: UnixTime, v: &Verdict| {
            let Some(host) = rec.host else { return };
            if !matches!(v, Verdict::Counted { .. } | Verdict::Ban(_)) {
                return;
            }
            let text = if seen.insert(rec.line) {
                match (ev, cursor.as_mut()) {
                    (_, Some(c)) => c.line(rec.line),
                    (SourceEvent::Entries { entries, .. }, None) => entries
                        .get(rec.line as usize)
                        .and_then(|(_, e)| nth_line(e, 0)),
                    _ => None,
                }
            } else {
                None
            };
            if recent.len() >= RECENT_ADDRESSES && !recent.contains_key(&host) {
                recent.clear();
            }
            let kept = recent.entry(host).or_default();
            if let Some(t) = text.filter(|_| keep > 0) {
                if kept.len() >= keep {
                    kept.pop_front();
                }
                kept.push_back(t);
            }
            if let Verdict::Ban(b) = v {
                if actions.wants(&b.jail, EventKind::Ban) {
                    let mut l: Vec<String> = recent.remove(&host).unwrap_or_default().into();
                    let max = actions.max_lines(&b.jail);
                    if l.len() > max {
                        l.drain(..l.len() - max);
                    }
                    lines.insert((b.jail.clone(), b.net), l);
                }
            }
        };
        let observer: Observer<'_> = &mut observe;
        self.running
            .engine
            .handle_walked(ev, chunks, now, out, Some(observer));
    }

    /// Queues a ban event for each decision whose jail has actions.
    pub(super) fn announce_bans(&mut self, decisions: &[BanDecision], now: UnixTime) {
        let o = &mut self.outbound;
        for b in decisions {
            let lines = o.lines.remove(&(b.jail.clone(), b.net));
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
                lines.unwrap_or_default(),
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
        let changes = self.outbound.health.check(jails, crate::now());
        for c in changes {
            let after = config
                .jail(&c.jail)
                .and_then(|j| j.health.after)
                .unwrap_or_default();
            crate::events::InternalEvent::emit(
                crate::events::JailHealth {
                    jail: &c.jail,
                    problem: c.problem.as_str(),
                    flagged: c.flagged,
                    detail: &c.problem.describe(after),
                },
                self.metrics.as_deref(),
            );
        }
        // Every jail has every series (0 when healthy), so alerts can rely on it.
        if let Some(m) = &self.metrics {
            for rt in &self.running.engine.jails {
                let name = &rt.jail.settings.name;
                let now = self.outbound.health.problems(name);
                for p in Problem::ALL {
                    m.set_unhealthy(name, p.as_str(), now.contains(&p));
                }
            }
        }
    }

    /// Pushes the actions' call counters to the metrics as deltas.
    pub(super) fn report_action_metrics(&mut self) {
        let Some(m) = &self.metrics else { return };
        for (jail, action, c) in self.outbound.actions.counters() {
            use std::sync::atomic::Ordering::Relaxed;
            let now = [
                c.calls_ok.load(Relaxed),
                c.calls_failed.load(Relaxed),
                c.events_dropped.load(Relaxed),
            ];
            let last = self
                .outbound
                .reported
                .insert((jail.clone(), action.clone()), now)
                .unwrap_or_default();
            // A restarted task (reload) counts from zero again.
            let d = |i: usize| now[i].checked_sub(last[i]).unwrap_or(now[i]);
            m.action(&jail, &action, d(0), d(1), d(2));
        }
    }

    /// Takes up the health times the last run saved (none: every jail
    /// starts its clock now).
    pub(super) fn restore_health(&mut self) {
        let saved = match self.store.cursor(HEALTH_KEY) {
            Ok(Some(json)) => json,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the saved filter health; its clock starts now");
                return;
            }
        };
        match serde_json::from_str::<Vec<(String, Times)>>(&saved) {
            Ok(times) => self.outbound.health.restore(times),
            Err(e) => {
                tracing::warn!(error = %e, "saved filter health unreadable; its clock starts now")
            }
        }
    }

    /// Saves the health times (once a minute and at shutdown: a crash
    /// loses at most a minute of a days-long clock).
    pub(super) fn save_health(&mut self) {
        let times = self.outbound.health.times();
        let Ok(json) = serde_json::to_string(&times) else {
            return;
        };
        if self.outbound.health_saved.as_deref() == Some(json.as_str()) {
            return;
        }
        let store = std::sync::Arc::clone(&self.store);
        match super::blocking(|| store.set_cursor(HEALTH_KEY, &json)) {
            Ok(()) => self.outbound.health_saved = Some(json),
            Err(e) => tracing::warn!(error = %e, "could not save the filter health"),
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

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursor_finds_lines_forward_and_after_a_restart_from_the_top() {
        let mut c = Cursor {
            data: b"a\nbb\nccc\n",
            index: 0,
            offset: 0,
        };
        assert_eq!(c.line(1).as_deref(), Some("bb"));
        assert_eq!(c.line(2).as_deref(), Some("ccc"));
        assert_eq!(c.line(0).as_deref(), Some("a"));
        assert_eq!(c.line(7), None);
    }
}
