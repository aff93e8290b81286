//! `import-fail2ban`: fail2ban jails mapped to banwarden jails.
//!
//! Owns the meaning of each fail2ban jail option in banwarden's terms:
//! the filter as a `fail2ban:NAME[...]` reference (with `logtype=journal`
//! for the systemd backend, as fail2ban adds it), logpath or the journal
//! with the filter's (or the jail's) `journalmatch`, times, the
//! `bantime.increment` family as a banwarden `bantime_increment`, ignore
//! lists, ports and protocol from the ban action, and the ban action's
//! block type as `drop` or `reject` (`actions`). Everything without an
//! equivalent becomes a [`Finding`], never a silent drop. It compiles each
//! filter (so the result passes `check`) but writes nothing and renders no
//! YAML (the CLI does both).

use std::collections::BTreeMap;
use std::path::Path;

use super::jails::{parse_bool, parse_time, F2bJail, JailFiles};
use super::syntax::banwarden_name;

/// The most lines banwarden's `maxmatches` takes.
const MAX_MATCHES: i64 = 100;

/// A banwarden jail made from a fail2ban jail. Times in seconds; `None`
/// in an `Option<Option<i64>>` means permanent.
#[derive(Debug, Clone, PartialEq)]
pub struct Jail {
    /// The banwarden name (fail2ban's, unless it is not a valid one).
    pub name: String,
    /// fail2ban's name (findings are filed under it).
    pub fail2ban_name: String,
    pub enabled: bool,
    pub filter: String,
    pub logpath: Vec<String>,
    /// journalctl matches (systemd backend).
    pub journal: Option<Vec<String>>,
    /// The jail's own `failregex`, replacing the filter's (banwarden's
    /// `%(known/failregex)s` entry for the filter's own), if it sets one.
    pub failregex: Option<Vec<String>>,
    /// The jail's own `ignoreregex`, likewise.
    pub ignoreregex: Option<Vec<String>>,
    pub maxretry: Option<i64>,
    /// Failure lines kept for the actions (fail2ban's `maxmatches`).
    pub maxmatches: Option<i64>,
    pub findtime: Option<i64>,
    pub bantime: Option<Option<i64>>,
    pub increment: Option<Increment>,
    pub ignoreip: Vec<String>,
    pub ignoreself: Option<bool>,
    /// Empty: all ports.
    pub ports: Vec<String>,
    pub protocol: Option<String>,
    /// `drop` or `reject`.
    pub action: &'static str,
    /// banwarden key → where fail2ban set it (`jail.local:12`).
    pub origins: BTreeMap<&'static str, String>,
}

/// `bantime_increment`.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// banwarden's `factor` (bantime × factor^(n−1)), else `durations`.
    pub factor: Option<f64>,
    pub durations: Vec<Option<i64>>,
    pub maxtime: Option<i64>,
    pub window: i64,
    pub across_jails: bool,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The jail could not be imported (written commented out); an error
    /// when the jail is enabled.
    Skipped,
    /// Something fail2ban does that banwarden will not.
    NotImported,
    /// Done differently, but with the same effect or close.
    Note,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub jail: String,
    pub level: Level,
    /// `jail.local:12`, when known.
    pub at: Option<String>,
    pub message: String,
}

/// What an import gives: jails in name order and the report.
#[derive(Debug, Clone, Default)]
pub struct Import {
    pub jails: Vec<Jail>,
    /// Jails that could not be imported, by fail2ban name, with whether
    /// fail2ban had them enabled.
    pub skipped: Vec<(String, bool)>,
    pub findings: Vec<Finding>,
}

impl Import {
    /// Whether a jail fail2ban ran could not be imported.
    pub fn lost_enabled_jail(&self) -> bool {
        self.skipped.iter().any(|(_, enabled)| *enabled)
    }
}

/// Imports every jail of the fail2ban configuration read from `files`.
pub fn import(files: &JailFiles) -> Import {
    let window = match &files.dbpurgeage {
        Some((v, _)) => parse_time(v).ok().flatten(),
        None => parse_time(super::jails::DEFAULT_DBPURGEAGE).ok().flatten(),
    }
    .unwrap_or(86400);
    let mut out = Import::default();
    for name in files.names() {
        let f2b = files.jail(&name);
        let mut ctx = Ctx {
            files,
            f2b: &f2b,
            findings: Vec::new(),
            origins: BTreeMap::new(),
        };
        let enabled = f2b.get("enabled").and_then(parse_bool).unwrap_or(false);
        match ctx.jail(window) {
            Ok(j) => out.jails.push(j),
            Err(message) => {
                let at = None;
                ctx.push(Level::Skipped, at, message);
                out.skipped.push((name.clone(), enabled));
            }
        }
        out.findings.extend(ctx.findings);
    }
    out
}

struct Ctx<'a> {
    files: &'a JailFiles,
    f2b: &'a F2bJail,
    findings: Vec<Finding>,
    /// banwarden key → where fail2ban set it.
    origins: BTreeMap<&'static str, String>,
}

impl Ctx<'_> {
    fn at(&self, option: &str) -> Option<String> {
        self.f2b.origin(option).map(|o| self.files.short(o))
    }

    fn push(&mut self, level: Level, at: Option<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            jail: self.f2b.name.clone(),
            level,
            at,
            message: message.into(),
        });
    }

    /// `option`'s value parsed by `parse`; a bad value is an error naming
    /// the file and line.
    fn parsed<T>(
        &self,
        option: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.f2b.get(option) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .map_err(|e| format!("{}: {option}: {e}", self.at(option).unwrap_or_default())),
        }
    }

    /// The whole jail, one option family after another; the first error
    /// stops it (the jail is then skipped and reported).
    fn jail(&mut self, window: i64) -> Result<Jail, String> {
        let f2b = self.f2b;
        // Options only reported on do not stop the jail; the others do.
        for (opt, e) in &f2b.errors {
            if super::jails::REPORTED_ONLY.contains(opt) {
                self.push(Level::NotImported, None, format!("{opt}: {e}"));
            } else {
                return Err(e.to_string());
            }
        }
        let name = banwarden_name(&f2b.name);
        if name != f2b.name {
            self.push(
                Level::Note,
                None,
                format!(
                    "renamed to {name}: banwarden jail names are 1-32 of A-Z a-z 0-9 _ -, \
                     starting with a letter"
                ),
            );
        }
        let enabled = self
            .parsed("enabled", |v| parse_bool(v).ok_or("not a boolean".into()))?
            .unwrap_or(false);
        self.mark("enabled", "enabled");
        let journal_backend = self.backend()?;
        let matching = self.filter(journal_backend)?;
        let (logpath, journal) = self.sources(journal_backend, enabled, &matching)?;
        let counting = self.counting(window)?;
        let (ignoreip, ignoreself) = self.ignores()?;
        let bans = self.bans()?;
        Ok(Jail {
            name,
            fail2ban_name: f2b.name.clone(),
            enabled,
            filter: matching.filter,
            logpath,
            journal,
            failregex: matching.failregex,
            ignoreregex: matching.ignoreregex,
            maxretry: counting.maxretry,
            maxmatches: counting.maxmatches,
            findtime: counting.findtime,
            bantime: counting.bantime,
            increment: counting.increment,
            ignoreip,
            ignoreself,
            ports: bans.ports,
            protocol: bans.protocol,
            action: bans.action,
            origins: std::mem::take(&mut self.origins),
        })
    }

    /// Remembers where fail2ban set `option`, as the origin of `key`.
    fn mark(&mut self, key: &'static str, option: &str) {
        if let Some(at) = self.at(option) {
            self.origins.insert(key, at);
        }
    }

    /// `maxretry`, `maxmatches`, `findtime`, `bantime` and the
    /// `bantime.increment` family.
    fn counting(&mut self, window: i64) -> Result<Counting, String> {
        let maxretry = self.parsed("maxretry", |v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| format!("{v:?} is not a count between 1 and 1000000"))
        })?;
        self.mark("maxretry", "maxretry");
        let maxmatches = self.parsed("maxmatches", |v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{v:?} is not a count"))
        })?;
        let maxmatches = maxmatches.map(|n| {
            if n > MAX_MATCHES {
                self.push(
                    Level::Note,
                    self.at("maxmatches"),
                    format!("maxmatches = {n}: banwarden keeps at most {MAX_MATCHES} lines"),
                );
            }
            n.min(MAX_MATCHES)
        });
        self.mark("maxmatches", "maxmatches");
        let findtime = self
            .parsed("findtime", parse_time)?
            .map(|t| t.ok_or("findtime cannot be permanent".to_string()))
            .transpose()?
            .map(|t| t.max(1));
        self.mark("findtime", "findtime");
        let bantime = self
            .parsed("bantime", parse_time)?
            .map(|t| t.map(|s| s.max(1)));
        self.mark("bantime", "bantime");
        let increment = self.increment(bantime.flatten(), window)?;
        if increment.is_some() {
            self.mark("bantime_increment", "bantime.increment");
        }

        Ok(Counting {
            maxretry,
            maxmatches,
            findtime,
            bantime,
            increment,
        })
    }
}

/// What a jail matches with: the filter reference and the jail's own
/// patterns.
struct Matching {
    /// `fail2ban:NAME[...]`.
    filter: String,
    /// fail2ban's filter name.
    filter_name: String,
    /// The filter's own `journalmatch`.
    journalmatch: Vec<String>,
    failregex: Option<Vec<String>>,
    ignoreregex: Option<Vec<String>>,
}

/// The counting and ban-time options.
struct Counting {
    maxretry: Option<i64>,
    maxmatches: Option<i64>,
    findtime: Option<i64>,
    bantime: Option<Option<i64>>,
    increment: Option<Increment>,
}

/// What the ban actions give: ports, protocol and block type.
struct Bans {
    ports: Vec<String>,
    protocol: Option<String>,
    action: &'static str,
}

/// Whether a logpath (maybe a glob) names an existing file.
fn any_file(p: &str) -> bool {
    glob::glob(p).is_ok_and(|mut g| g.any(|e| e.is_ok_and(|p| p.is_file())))
}

/// Whether the filter sets `logtype` in its `[Definition]` itself (then
/// fail2ban does not pass one).
fn defines_logtype(path: &Path) -> bool {
    super::ini::Ini::read(path)
        .map(|ini| ini.own_options("Definition").contains(&"logtype"))
        .unwrap_or(false)
}

#[path = "import_bans.rs"]
mod bans;
#[path = "import_increment.rs"]
mod increment;
#[path = "import_matching.rs"]
mod matching;

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
