//! The engine: routes each line from a source through the filters of the jails
//! that read that source, and collects the ban decisions.
//!
//! Owned by exactly one task (no locks on the hot path). It never does I/O: the
//! caller feeds it [`SourceEvent`]s and applies the decisions it returns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::filter::{Filter, Outcome, Scratch};
use crate::jail::{BanDecision, Jail, Verdict};
use crate::source::{SourceEvent, SourceId};
use crate::UnixTime;

/// Counters of one jail, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JailStats {
    pub lines: u64,
    pub undated: u64,
    pub matched: u64,
    pub ignored_lines: u64,
    pub missed: u64,
    pub bad_host: u64,
    pub failures: u64,
    pub ignored_addresses: u64,
    pub too_old: u64,
    pub bans: u64,
    /// Lines skipped by sources (over the length cap).
    pub skipped: u64,
}

pub struct JailRuntime {
    pub jail: Jail,
    pub filter: Arc<Filter>,
    pub stats: JailStats,
}

pub struct Engine {
    pub jails: Vec<JailRuntime>,
    /// Source id → indices into `jails`.
    routes: Vec<Vec<usize>>,
    scratch: Scratch,
    /// Last time an ignored address was logged, to keep a flood from flooding the log.
    ignore_logged: HashMap<IpAddr, UnixTime>,
}

impl Engine {
    pub fn new(jails: Vec<JailRuntime>, routes: Vec<Vec<usize>>) -> Engine {
        Engine {
            jails,
            routes,
            scratch: Scratch::default(),
            ignore_logged: HashMap::new(),
        }
    }

    /// Handles one source event; ban decisions are appended to `out`.
    pub fn handle(&mut self, ev: &SourceEvent, now: UnixTime, out: &mut Vec<BanDecision>) {
        match ev {
            SourceEvent::Lines {
                source,
                data,
                read_time,
                ..
            } => {
                for line in data.split_inclusive(|b| *b == b'\n') {
                    self.line(*source, line, *read_time, now, out);
                }
            }
            SourceEvent::Entries {
                source, entries, ..
            } => {
                for (ts, text) in entries {
                    self.entry(*source, *ts, text, now, out);
                }
            }
            SourceEvent::Skipped { source, count, .. } => {
                for &j in self.routes.get(*source).map(Vec::as_slice).unwrap_or(&[]) {
                    self.jails[j].stats.skipped += count;
                }
            }
            SourceEvent::Rotated { .. } | SourceEvent::Error { .. } => {}
        }
    }

    /// One raw log line (timestamp inside, falling back to `read_time`).
    pub fn line(
        &mut self,
        source: SourceId,
        line: &[u8],
        read_time: UnixTime,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
    ) {
        let Some(route) = self.routes.get(source) else {
            return;
        };
        for &j in route {
            let rt = &mut self.jails[j];
            let (date, outcome) = rt.filter.examine(line, now, &mut self.scratch);
            if date.is_none() {
                rt.stats.undated += 1;
            }
            let time = date.map_or(read_time, |d| d.ts);
            if let Some(ban) = apply(rt, outcome, time, now, &mut self.ignore_logged) {
                out.push(ban);
            }
        }
    }

    /// One entry that carries its own timestamp (journal); `text` has no date.
    pub fn entry(
        &mut self,
        source: SourceId,
        ts: UnixTime,
        text: &[u8],
        now: UnixTime,
        out: &mut Vec<BanDecision>,
    ) {
        let Some(route) = self.routes.get(source) else {
            return;
        };
        for &j in route {
            let rt = &mut self.jails[j];
            let outcome = rt.filter.match_text(text);
            if let Some(ban) = apply(rt, outcome, ts, now, &mut self.ignore_logged) {
                out.push(ban);
            }
        }
    }

    /// Periodic clean-up of expired bans and stale counters.
    pub fn sweep(&mut self, now: UnixTime) {
        for rt in &mut self.jails {
            rt.jail.sweep(now);
        }
    }

    /// Tells jails that escalate `across_jails` about bans made by the others.
    pub fn share_history(&mut self, bans: &[BanDecision]) {
        for rt in &mut self.jails {
            if !rt
                .jail
                .settings
                .increment
                .as_ref()
                .is_some_and(|i| i.across_jails)
            {
                continue;
            }
            for b in bans {
                if b.jail != rt.jail.settings.name {
                    rt.jail.note_history(b.net, b.at);
                }
            }
        }
    }

    pub fn jail_mut(&mut self, name: &str) -> Option<&mut JailRuntime> {
        self.jails.iter_mut().find(|j| j.jail.settings.name == name)
    }
}

fn apply(
    rt: &mut JailRuntime,
    outcome: Outcome<'_>,
    time: UnixTime,
    now: UnixTime,
    ignore_logged: &mut HashMap<IpAddr, UnixTime>,
) -> Option<BanDecision> {
    rt.stats.lines += 1;
    let host = match outcome {
        Outcome::Missed => {
            rt.stats.missed += 1;
            return None;
        }
        Outcome::Ignored { .. } => {
            rt.stats.ignored_lines += 1;
            return None;
        }
        Outcome::BadHost { regex } => {
            rt.stats.bad_host += 1;
            tracing::debug!(jail = %rt.jail.settings.name, regex, "failregex matched but the host is not an IP address");
            return None;
        }
        Outcome::Failure { host, .. } => host,
    };
    rt.stats.matched += 1;
    match rt.jail.failure(host, time, now) {
        Verdict::Counted { .. } => {
            rt.stats.failures += 1;
            None
        }
        Verdict::Ban(ban) => {
            rt.stats.failures += 1;
            rt.stats.bans += 1;
            tracing::info!(jail = %ban.jail, addr = %ban.net, failures = ban.failures, bantime = ?ban.bantime, "ban");
            Some(ban)
        }
        Verdict::AlreadyBanned => None,
        Verdict::TooOld => {
            rt.stats.too_old += 1;
            None
        }
        Verdict::Ignored(reason) => {
            rt.stats.ignored_addresses += 1;
            if ignore_logged.len() > 4096 {
                ignore_logged.clear();
            }
            let last = ignore_logged.entry(host).or_insert(i64::MIN);
            if now.saturating_sub(*last) >= 60 {
                *last = now;
                tracing::info!(jail = %rt.jail.settings.name, addr = %host, %reason, "failure from an ignored address: never banned");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;
    use crate::jail::{IgnoreList, JailSettings};

    fn engine() -> Engine {
        let filter = Filter::compile(FilterSpec {
            name: "f".into(),
            failregex: vec!["^fail from <HOST>$".into()],
            ..Default::default()
        })
        .unwrap();
        let jail = Jail::new(JailSettings::new(
            "j",
            2,
            600,
            Some(60),
            IgnoreList::new(vec!["192.0.2.0/24".parse().unwrap()], false),
        ));
        Engine::new(
            vec![JailRuntime {
                jail,
                filter: Arc::new(filter),
                stats: JailStats::default(),
            }],
            vec![vec![0]],
        )
    }

    #[test]
    fn lines_in_one_chunk_ban_once() {
        let mut e = engine();
        let mut out = Vec::new();
        let data = b"fail from 198.51.100.1\nnoise\nfail from 198.51.100.1\nfail from 198.51.100.1\nfail from 192.0.2.1\n".to_vec();
        let ev = SourceEvent::Lines {
            source: 0,
            path: Arc::new("/x".into()),
            data,
            read_time: 1000,
            pos: crate::source::FilePos {
                path: "/x".into(),
                dev: 0,
                ino: 0,
                offset: 0,
                fingerprint: 0,
            },
        };
        e.handle(&ev, 1000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].net.to_string(), "198.51.100.1/32");
        let s = e.jails[0].stats;
        assert_eq!(
            (
                s.lines,
                s.matched,
                s.missed,
                s.bans,
                s.ignored_addresses,
                s.undated
            ),
            (5, 4, 1, 1, 1, 5)
        );
    }

    #[test]
    fn unknown_source_is_ignored() {
        let mut e = engine();
        let mut out = Vec::new();
        e.line(7, b"fail from 198.51.100.1\n", 0, 0, &mut out);
        e.entry(7, 0, b"fail from 198.51.100.1", 0, &mut out);
        assert!(out.is_empty());
    }
}
