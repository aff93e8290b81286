//! The backtracking fallback: patterns the `regex` crate cannot express
//! (look-around, back-references, conditionals, from fail2ban filters) run in
//! `fancy_regex`, with a per-line step bound.
//!
//! Owns compiling such a pattern, running it with the bound, counting lines
//! that hit it ("too slow": a miss, never a stall; fail2ban had advisories
//! for catastrophic patterns, GHSA-33wh-ccjc-p397), and one view over the
//! captures of either engine; which of a filter's patterns run on it
//! (`Filter::fallback_patterns`). It decides nothing about outcomes. Lines are
//! matched as bytes, like the fast path.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::py_rewrite::Dups;
use super::{python, PatternRef};

/// Backtracking steps one pattern may take on one line: a few milliseconds
/// at worst. fail2ban's own filters need a few thousand on real lines.
pub const BACKTRACK_LIMIT: usize = 100_000;

/// A pattern for the fallback engine.
#[derive(Debug, Clone)]
pub struct Slow {
    re: fancy_regex::Regex,
    too_slow: Arc<AtomicU64>,
}

/// The pattern stopped at its bound (counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow;

impl Slow {
    pub fn compile(pattern: &str, too_slow: Arc<AtomicU64>) -> Result<Slow, String> {
        let re = fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(BACKTRACK_LIMIT)
            .delegate_size_limit(super::REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Slow { re, too_slow })
    }

    /// Whether the pattern matches; `Err` when it hit its bound.
    pub fn is_match(&self, text: &[u8]) -> Result<bool, TooSlow> {
        self.re.is_match(text).map_err(|_| self.count())
    }

    pub fn captures<'t>(&self, text: &'t [u8]) -> Result<Option<Caps<'t>>, TooSlow> {
        match self.re.captures(text) {
            Ok(c) => Ok(c.map(Caps::Slow)),
            Err(_) => Err(self.count()),
        }
    }

    fn count(&self) -> TooSlow {
        self.too_slow.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pattern = %self.re.as_str(), "pattern hit its backtracking bound");
        TooSlow
    }
}

/// Captures from either engine. A pattern `py_rewrite` rewrote may hold a
/// group under several names (`user`, `user__2`, ...): the fast captures
/// carry those names, and a group is read as the first of them that took
/// part (one branch matches, so at most one does).
pub enum Caps<'t> {
    Fast(regex::bytes::Captures<'t>, Option<&'t Dups>),
    /// From `split`'s searches (same names and spans as `Fast` would give).
    Meta(regex_automata::util::captures::Captures, Option<&'t Dups>),
    Slow(fancy_regex::Captures<'t, [u8]>),
}

impl Caps<'_> {
    /// Where group number `i` matched (0: the whole match).
    pub fn name_at(&self, i: usize) -> Option<Range<usize>> {
        match self {
            Caps::Fast(c, _) => c.get(i).map(|m| m.range()),
            Caps::Meta(c, _) => c.get_group(i).map(|s| s.range()),
            Caps::Slow(c) => c.get(i).map(|m| m.range()),
        }
    }

    /// Where group `name` matched, if it took part.
    pub fn name(&self, name: &str) -> Option<Range<usize>> {
        match self {
            Caps::Fast(c, None) => c.name(name).map(|m| m.range()),
            Caps::Fast(c, Some(dups)) => match dups.iter().find(|(base, _)| base == name) {
                Some((_, names)) => names.iter().find_map(|n| c.name(n)).map(|m| m.range()),
                None => c.name(name).map(|m| m.range()),
            },
            Caps::Meta(c, dups) => {
                // A scan of the few names beats hashing the name.
                let get = |n: &str| {
                    let pid = c.pattern()?;
                    let names = c.group_info().pattern_names(pid);
                    let i = names.into_iter().position(|g| g == Some(n))?;
                    c.get_group(i).map(|s| s.range())
                };
                match dups.and_then(|d| d.iter().find(|(base, _)| base == name)) {
                    Some((_, names)) => names.iter().find_map(|n| get(n)),
                    None => get(name),
                }
            }
            Caps::Slow(c) => c.name(name).map(|m| m.range()),
        }
    }

    /// `user`, else (when it did not take part or is empty) the first
    /// non-empty of fail2ban's alternates `alt_user`, `alt_user_1`, ...
    /// (`<F-ALT_USER>`), as fail2ban merges them.
    pub fn user(&self) -> Option<Range<usize>> {
        self.user_in(true)
    }

    /// [`user`](Self::user) of a pattern that has alternate user groups
    /// only if `alt` (else they are not looked up).
    pub fn user_in(&self, alt: bool) -> Option<Range<usize>> {
        let user = self.name(super::tags::USER_GROUP);
        if !alt || user.as_ref().is_some_and(|r| !r.is_empty()) {
            return user;
        }
        ALT_USER_GROUPS
            .iter()
            .find_map(|g| self.name(g).filter(|r| !r.is_empty()))
            .or(user)
    }

    /// The first of `host`, `host_1`, `host_2`... that took part.
    pub fn host(&self) -> Option<Range<usize>> {
        self.name(super::tags::HOST_GROUP)
            .or_else(|| HOST_GROUPS.iter().find_map(|g| self.name(g)))
    }
}

/// fail2ban's alternate user groups, in the order they are read.
const ALT_USER_GROUPS: [&str; 10] = [
    "alt_user",
    "alt_user_1",
    "alt_user_2",
    "alt_user_3",
    "alt_user_4",
    "alt_user_5",
    "alt_user_6",
    "alt_user_7",
    "alt_user_8",
    "alt_user_9",
];

/// The numbered host groups of a pattern with several address tags.
const HOST_GROUPS: [&str; 7] = [
    "host_1", "host_2", "host_3", "host_4", "host_5", "host_6", "host_7",
];

/// Which of fail2ban's optional groups a pattern has: the others are not
/// looked up in its captures (a lookup by name hashes the name, and
/// those of its renamed twins).
#[derive(Debug, Clone, Copy)]
pub struct Optional {
    pub nofail: bool,
    pub mlfforget: bool,
    pub mlfgained: bool,
    pub cidr: bool,
    pub alt_user: bool,
}

impl Optional {
    /// All of them (a pattern whose names are not known).
    pub const ALL: Optional = Optional {
        nofail: true,
        mlfforget: true,
        mlfgained: true,
        cidr: true,
        alt_user: true,
    };

    /// From the group names of a pattern (renamed twins start with their
    /// base name).
    pub fn of<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Optional {
        let has = |g: &str| names.clone().any(|n| n.starts_with(g));
        Optional {
            nofail: has("nofail"),
            mlfforget: has("mlfforget"),
            mlfgained: has("mlfgained"),
            cidr: has("cidr"),
            alt_user: has(super::tags::ALT_USER_GROUP),
        }
    }
}

impl super::Filter {
    /// The patterns that run on the backtracking fallback, and why.
    pub fn fallback_patterns(&self) -> Vec<(PatternRef, String)> {
        let mut out = Vec::new();
        let why = |p: &str| python::translate(p).needs.join(", ");
        if self.prefregex_slow.is_some() {
            if let Some(p) = &self.spec.prefregex {
                out.push((PatternRef::Prefregex, why(p)));
            }
        }
        for (i, s) in self.fail_slow.iter().enumerate() {
            if s.is_some() {
                out.push((PatternRef::Failregex(i), why(&self.spec.failregex[i])));
            }
        }
        for (i, s) in self.ignore_slow.iter().enumerate() {
            if s.is_some() {
                out.push((PatternRef::Ignoreregex(i), why(&self.spec.ignoreregex[i])));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catastrophic_pattern_stops_at_its_bound_and_is_counted() {
        let count = Arc::new(AtomicU64::new(0));
        // Nested quantifiers with overlapping alternatives, and a look-ahead
        // that keeps the backtracker in charge: exponential on a line of
        // `a`s that does not end in `b` (fail2ban's GHSA-33wh-ccjc-p397 kind).
        let slow = Slow::compile(r"^((a|aa)+)+(?!x)\1b", count.clone()).unwrap();
        let hostile = "a".repeat(40) + "c";
        let started = std::time::Instant::now();
        assert_eq!(slow.is_match(hostile.as_bytes()), Err(TooSlow));
        assert_eq!(slow.captures(hostile.as_bytes()).err(), Some(TooSlow));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(count.load(Ordering::Relaxed), 2);
        // The same pattern still answers on an ordinary line.
        assert_eq!(slow.is_match(b"ab"), Ok(false));
        assert_eq!(slow.is_match(b"aab"), Ok(true));
        assert_eq!(slow.is_match(b"\xffaab"), Ok(false));
    }

    #[test]
    fn the_group_name_lists_are_the_tags_names() {
        let alt = crate::filter::tags::ALT_USER_GROUP;
        let want: Vec<String> = std::iter::once(alt.to_string())
            .chain((1..10).map(|n| format!("{alt}_{n}")))
            .collect();
        assert_eq!(ALT_USER_GROUPS.to_vec(), want);
        let host = crate::filter::tags::HOST_GROUP;
        let want: Vec<String> = (1..8).map(|n| format!("{host}_{n}")).collect();
        assert_eq!(HOST_GROUPS.to_vec(), want);
    }
}
