//! fail2ban's `bantime.increment` family (`bantime.factor`,
//! `bantime.formula`, `bantime.multipliers`, `bantime.maxtime`,
//! `bantime.overalljails`) as banwarden's `bantime_increment`.
//!
//! Owns that one mapping for `import`; what has no equivalent becomes a
//! finding there, never a silent drop.

use super::{Ctx, Increment, Level};
use crate::fail2ban::jails::{parse_bool, parse_time};

impl Ctx<'_> {
    /// `bantime.increment` and friends. fail2ban's n-th ban (n ≥ 2) lasts
    /// `bantime × factor × 2^min(n−1, 20)` (its default formula), or
    /// `bantime × factor × multipliers[min(n−1, len−1)]`, at most `maxtime`;
    /// the first is `bantime`. banwarden's `factor: 2` is the default
    /// formula when fail2ban's factor is 1; otherwise the list of
    /// durations is written out, up to where it stops growing.
    pub(super) fn increment(
        &mut self,
        bantime: Option<i64>,
        window: i64,
    ) -> Result<Option<Increment>, String> {
        let on = self
            .parsed("bantime.increment", |v| {
                parse_bool(v).ok_or("not a boolean".into())
            })?
            .unwrap_or(false);
        if !on {
            return Ok(None);
        }
        let Some(base) = bantime else {
            self.push(
                Level::Note,
                self.at("bantime.increment"),
                "bantime.increment with a permanent bantime: nothing to increase",
            );
            return Ok(None);
        };
        let factor = self
            .parsed("bantime.factor", |v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or_else(|| format!("{v:?} is not a positive number"))
            })?
            .unwrap_or(1.0);
        let maxtime = self
            .parsed("bantime.maxtime", parse_time)?
            .flatten()
            .filter(|m| *m > 0);
        let multipliers: Vec<f64> = match self.f2b.get("bantime.multipliers") {
            Some(v) if !v.trim().is_empty() => v
                .split_whitespace()
                .map(|m| {
                    m.parse::<f64>()
                        .map_err(|_| format!("{m:?} is not a number"))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    format!(
                        "{}: bantime.multipliers: {e}",
                        self.at("bantime.multipliers").unwrap_or_default()
                    )
                })?,
            _ => Vec::new(),
        };
        let across_jails = self
            .parsed("bantime.overalljails", |v| {
                parse_bool(v).ok_or("not a boolean".into())
            })?
            .unwrap_or(false);
        let cap = |v: f64| -> i64 {
            let v = v.min(i64::MAX as f64 / 2.0) as i64;
            maxtime.map_or(v, |m| v.min(m)).max(1)
        };
        if multipliers.is_empty() && factor == 1.0 {
            return Ok(Some(Increment {
                factor: Some(2.0),
                durations: Vec::new(),
                maxtime,
                window,
                across_jails,
            }));
        }
        let mut durations = vec![Some(base)];
        let last = if multipliers.is_empty() {
            21
        } else {
            multipliers.len()
        };
        for count in 1..last.max(2) {
            let raw = if multipliers.is_empty() {
                // fail2ban: max(bantime, formula)
                (base as f64 * factor * f64::from(1u32 << count.min(20))).max(base as f64)
            } else {
                base as f64 * factor * multipliers[count.min(multipliers.len() - 1)]
            };
            let v = cap(raw);
            durations.push(Some(v));
            if maxtime.is_some_and(|m| v >= m) {
                break;
            }
        }
        Ok(Some(Increment {
            factor: None,
            durations,
            maxtime: None,
            window,
            across_jails,
        }))
    }
}
