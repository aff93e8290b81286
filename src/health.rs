//! Filter health: flags a jail whose sources produced no line for its
//! `health.after` (default 7 days), whose filter matched nothing that long
//! while its sources kept growing, or whose matched lines mostly carry no
//! date the filter could read.
//!
//! Owns the per-jail bookkeeping, fed once a second with each jail's
//! counters and the wall clock; reports transitions (logged once each by
//! the daemon). Its times ([`Times`]) outlive a restart: the daemon saves
//! them in the store and gives them back at start ([`Health::restore`]), so
//! a jail that matched nothing for six days and was restarted is flagged a
//! day later, not seven. Must not read sources or change jails: it only
//! watches counters.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::HealthSpec;
use crate::jail::engine::JailStats;
use crate::UnixTime;

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

/// A jail's health clock, as saved across restarts (wall-clock seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Times {
    /// The filter these times are about: another filter starts afresh.
    pub filter: String,
    /// When the sources last produced a line, or watching began.
    pub line_at: UnixTime,
    /// Since when lines come without a match, if they do.
    pub unmatched_since: Option<UnixTime>,
    /// When a line was last read, and last matched (for `status`).
    pub last_line: Option<UnixTime>,
    pub last_match: Option<UnixTime>,
}

#[derive(Debug)]
struct JailHealth {
    times: Times,
    /// Counters at the last check.
    lines: u64,
    matched: u64,
    /// Start of the undated-share window: when, and the counters then.
    dated_since: UnixTime,
    dated_base: (u64, u64),
    problems: Vec<Problem>,
}

/// Health of every jail the daemon runs.
#[derive(Debug, Default)]
pub struct Health {
    jails: HashMap<String, JailHealth>,
    /// Saved times not yet claimed by a running jail.
    saved: HashMap<String, Times>,
}

/// Whether `span` seconds reach `after`.
fn reached(span: i64, after: Duration) -> bool {
    span >= 0 && span as u64 >= after.as_secs()
}

impl Health {
    /// Times saved by an earlier run, taken up by each jail when first seen
    /// with the same filter.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = (String, Times)>) {
        self.saved.extend(saved);
    }

    /// Every jail's times, to save.
    pub fn times(&self) -> Vec<(String, Times)> {
        let mut out: Vec<_> = self
            .jails
            .iter()
            .map(|(name, h)| (name.clone(), h.times.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// `jail`'s times now.
    pub fn times_of(&self, jail: &str) -> Option<&Times> {
        self.jails.get(jail).map(|h| &h.times)
    }

    /// Checks each `(jail, filter, counters, settings)`; returns what changed.
    /// A jail seen for the first time starts from its saved times (same
    /// filter) or afresh; one with another filter starts afresh.
    pub fn check<'a>(
        &mut self,
        jails: impl IntoIterator<Item = (&'a str, &'a str, JailStats, HealthSpec)>,
        now: UnixTime,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for (name, filter, st, spec) in jails {
            seen.push(name.to_string());
            let saved = &mut self.saved;
            let h = self.jails.entry(name.to_string()).or_insert_with(|| {
                // Counted from zero: lines read before the first check
                // (the daemon's counters start with it) are news too.
                let mut h = fresh(filter, &JailStats::default(), now);
                if let Some(t) = saved.remove(name).filter(|t| t.filter == filter) {
                    h.times = t;
                }
                h
            });
            if h.times.filter != filter {
                *h = fresh(filter, &st, now);
            }
            let t = &mut h.times;
            if st.matched != h.matched {
                t.unmatched_since = None;
                t.last_match = Some(now);
            } else if st.lines != h.lines {
                t.unmatched_since.get_or_insert(now);
            }
            if st.lines != h.lines {
                t.line_at = now;
                t.last_line = Some(now);
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
            if reached(now - h.times.line_at, after) {
                now_problems.push(Problem::NoLines);
            } else if h
                .times
                .unmatched_since
                .is_some_and(|t| reached(now - t, after))
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
            if reached(now - h.dated_since, after) && dm >= MIN_DATED_SAMPLE {
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

fn fresh(filter: &str, st: &JailStats, now: UnixTime) -> JailHealth {
    JailHealth {
        times: Times {
            filter: filter.to_string(),
            line_at: now,
            unmatched_since: None,
            last_line: None,
            last_match: None,
        },
        lines: st.lines,
        matched: st.matched,
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
        let t0: UnixTime = 1_000_000;
        let s = |n: i64| t0 + n;
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
        let t0: UnixTime = 1_000_000;
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

    #[test]
    fn saved_times_carry_the_clock_across_a_restart() {
        let mut h = Health::default();
        let t0: UnixTime = 1_000_000;
        h.check([("a", "f", st(0, 0, 0), spec(10))], t0);
        h.check([("a", "f", st(5, 1, 0), spec(10))], t0 + 2);
        h.check([("a", "f", st(9, 1, 0), spec(10))], t0 + 4);
        let saved = h.times();
        assert_eq!(saved[0].1.last_match, Some(t0 + 2));
        assert_eq!(saved[0].1.unmatched_since, Some(t0 + 4));
        // A new run: counters start at zero, lines keep failing to match.
        let mut h = Health::default();
        h.restore(saved.clone());
        assert!(h
            .check([("a", "f", st(0, 0, 0), spec(10))], t0 + 8)
            .is_empty());
        let c = h.check([("a", "f", st(3, 0, 0), spec(10))], t0 + 14);
        assert_eq!(c, vec![change("a", Problem::NoMatches, true)]);
        assert_eq!(h.times_of("a").and_then(|t| t.last_match), Some(t0 + 2));
        // Saved times of another filter are not taken up.
        let mut h = Health::default();
        h.restore(saved);
        h.check([("a", "g", st(0, 0, 0), spec(10))], t0 + 8);
        assert_eq!(h.times_of("a").and_then(|t| t.last_match), None);
    }
}
