//! Filter health: flags a jail whose sources produced no line for its
//! `health.after` (default 7 days), whose filter matched nothing that long
//! while its sources kept growing, or whose matched lines mostly carry no
//! date the filter could read.
//!
//! Owns the per-jail bookkeeping, fed once a second with each jail's
//! counters and a monotonic clock; reports transitions (logged once each by
//! the daemon). Must not read sources or change jails: it only watches
//! counters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::HealthSpec;
use crate::jail::engine::JailStats;

/// Fewest matched lines over which the undated share is judged.
const MIN_DATED_SAMPLE: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Problem {
    /// The jail's sources produced no line for `after`.
    NoLines,
    /// Lines kept coming, but the filter matched none for `after`.
    NoMatches,
    /// Most matched lines had no date the filter could read.
    Undated,
}

impl Problem {
    pub const ALL: [Problem; 3] = [Problem::NoLines, Problem::NoMatches, Problem::Undated];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::NoLines => "no_lines",
            Problem::NoMatches => "no_matches",
            Problem::Undated => "undated",
        }
    }

    /// What an operator reads in `status` and the log.
    pub fn describe(self, after: Duration) -> String {
        let t = human(after);
        match self {
            Problem::NoLines => format!(
                "no line from its sources for {t}: is the log path, journal match or unit name still right?"
            ),
            Problem::NoMatches => format!(
                "lines keep coming but the filter matched none for {t}: has the program changed its messages or its name?"
            ),
            Problem::Undated => {
                "most matched lines carry no date the filter can read: check its datepattern".into()
            }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A problem that appeared or went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub jail: String,
    pub problem: Problem,
    pub flagged: bool,
}

#[derive(Debug)]
struct JailHealth {
    filter: String,
    /// Counters at the last check.
    lines: u64,
    matched: u64,
    /// When `lines` last grew (or watching began).
    line_at: Instant,
    /// The first time lines came without a match since the last match.
    unmatched_since: Option<Instant>,
    /// Start of the undated-share window: when, and the counters then.
    dated_since: Instant,
    dated_base: (u64, u64),
    problems: Vec<Problem>,
}

/// Health of every jail the daemon runs.
#[derive(Debug, Default)]
pub struct Health {
    jails: HashMap<String, JailHealth>,
}

impl Health {
    /// Checks each `(jail, filter, counters, settings)`; returns what changed.
    /// A jail seen for the first time, or with another filter, starts afresh.
    pub fn check<'a>(
        &mut self,
        jails: impl IntoIterator<Item = (&'a str, &'a str, JailStats, HealthSpec)>,
        now: Instant,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for (name, filter, st, spec) in jails {
            seen.push(name.to_string());
            let h = self
                .jails
                .entry(name.to_string())
                .or_insert_with(|| fresh(filter, &st, now));
            if h.filter != filter {
                *h = fresh(filter, &st, now);
            }
            if st.matched != h.matched {
                h.unmatched_since = None;
            } else if st.lines != h.lines {
                h.unmatched_since.get_or_insert(now);
            }
            if st.lines != h.lines {
                h.line_at = now;
            }
            h.lines = st.lines;
            h.matched = st.matched;
            let Some(after) = spec.after else {
                for p in std::mem::take(&mut h.problems) {
                    changes.push(change(name, p, false));
                }
                continue;
            };
            let mut now_problems = Vec::new();
            if now.duration_since(h.line_at) >= after {
                now_problems.push(Problem::NoLines);
            } else if h
                .unmatched_since
                .is_some_and(|t| now.duration_since(t) >= after)
            {
                now_problems.push(Problem::NoMatches);
            }
            let (m0, u0) = h.dated_base;
            let (dm, du) = (st.matched.saturating_sub(m0), st.undated.saturating_sub(u0));
            let undated_flagged = h.problems.contains(&Problem::Undated);
            let undated = if dm >= MIN_DATED_SAMPLE {
                du as f64 > spec.undated_ratio * dm as f64
            } else {
                undated_flagged
            };
            if undated {
                now_problems.push(Problem::Undated);
            }
            if now.duration_since(h.dated_since) >= after && dm >= MIN_DATED_SAMPLE {
                h.dated_since = now;
                h.dated_base = (st.matched, st.undated);
            }
            for p in Problem::ALL {
                let was = h.problems.contains(&p);
                let is = now_problems.contains(&p);
                if was != is {
                    changes.push(change(name, p, is));
                }
            }
            h.problems = now_problems;
        }
        self.jails.retain(|k, _| seen.contains(k));
        changes
    }

    /// The problems of `jail` now.
    pub fn problems(&self, jail: &str) -> &[Problem] {
        self.jails.get(jail).map_or(&[], |h| &h.problems)
    }
}

fn change(jail: &str, problem: Problem, flagged: bool) -> Change {
    Change {
        jail: jail.to_string(),
        problem,
        flagged,
    }
}

fn fresh(filter: &str, st: &JailStats, now: Instant) -> JailHealth {
    JailHealth {
        filter: filter.to_string(),
        lines: st.lines,
        matched: st.matched,
        line_at: now,
        unmatched_since: None,
        dated_since: now,
        dated_base: (st.matched, st.undated),
        problems: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secs: u64) -> HealthSpec {
        HealthSpec {
            after: Some(Duration::from_secs(secs)),
            undated_ratio: 0.5,
        }
    }

    fn st(lines: u64, matched: u64, undated: u64) -> JailStats {
        JailStats {
            lines,
            matched,
            undated,
            ..JailStats::default()
        }
    }

    #[test]
    fn silence_then_lines_without_matches_then_recovery() {
        let mut h = Health::default();
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        assert!(h.check([("a", "f", st(0, 0, 0), spec(10))], t0).is_empty());
        assert!(h
            .check([("a", "f", st(0, 0, 0), spec(10))], s(9))
            .is_empty());
        let c = h.check([("a", "f", st(0, 0, 0), spec(10))], s(10));
        assert_eq!(c, vec![change("a", Problem::NoLines, true)]);
        // Lines arrive but never match: after 10 s of that, NoMatches.
        let c = h.check([("a", "f", st(5, 0, 0), spec(10))], s(11));
        assert_eq!(c, vec![change("a", Problem::NoLines, false)]);
        assert!(h
            .check([("a", "f", st(50, 0, 0), spec(10))], s(15))
            .is_empty());
        assert!(h
            .check([("a", "f", st(55, 0, 0), spec(10))], s(20))
            .is_empty());
        let c = h.check([("a", "f", st(60, 0, 0), spec(10))], s(21));
        assert_eq!(c, vec![change("a", Problem::NoMatches, true)]);
        assert_eq!(h.problems("a"), &[Problem::NoMatches]);
        let c = h.check([("a", "f", st(61, 1, 0), spec(10))], s(22));
        assert_eq!(c, vec![change("a", Problem::NoMatches, false)]);
    }

    #[test]
    fn mostly_undated_matches_are_flagged_and_off_clears_everything() {
        let mut h = Health::default();
        let t0 = Instant::now();
        h.check([("a", "f", st(0, 0, 0), spec(100))], t0);
        let c = h.check([("a", "f", st(20, 20, 15), spec(100))], t0);
        assert_eq!(c, vec![change("a", Problem::Undated, true)]);
        let off = HealthSpec {
            after: None,
            undated_ratio: 0.5,
        };
        let c = h.check([("a", "f", st(20, 20, 15), off)], t0);
        assert_eq!(c, vec![change("a", Problem::Undated, false)]);
        let mut h = Health::default();
        h.check([("a", "f", st(0, 0, 0), spec(100))], t0);
        assert!(h
            .check([("a", "f", st(20, 20, 2), spec(100))], t0)
            .is_empty());
    }
}
