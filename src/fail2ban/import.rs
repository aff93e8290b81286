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

use super::actions::{self, BanAction};
use super::jails::{
    parse_bool, parse_time, F2bJail, JailFiles, KNOWN_FAILREGEX, KNOWN_IGNOREREGEX,
};
use super::known as banwarden_known;
use super::syntax::{banwarden_name, format_ref, split_actions, split_ref};

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

    /// The jail's own `option` (`failregex`, `ignoreregex`), one pattern a
    /// line, which replaces the filter's as in fail2ban; fail2ban's
    /// `%(known/OPTION)s` (read as `marker`) becomes banwarden's `entry`.
    /// An empty value clears the filter's list, as in fail2ban: for
    /// `failregex` that is a jail that never matches, not imported.
    fn patterns(
        &mut self,
        option: &str,
        marker: &str,
        entry: &str,
    ) -> Result<Option<Vec<String>>, String> {
        let Some(v) = self.f2b.get(option) else {
            return Ok(None);
        };
        let at = self.at(option).unwrap_or_default();
        let mut out = Vec::new();
        for line in v.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            if line == marker {
                out.push(entry.to_string());
            } else if line.contains(marker) {
                return Err(format!(
                    "{at}: {option}: %(known/{option})s inside a pattern (not on a line \
                     of its own) is not supported"
                ));
            } else {
                out.push(line.to_string());
            }
        }
        if out.is_empty() && option == "failregex" {
            return Err(format!(
                "{at}: failregex is empty: the jail would never match (fail2ban runs it so)"
            ));
        }
        Ok(Some(out))
    }

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
        let mut origins = BTreeMap::new();
        let mut mark = |key: &'static str, option: &str, this: &Self| {
            if let Some(at) = this.at(option) {
                origins.insert(key, at);
            }
        };
        mark("enabled", "enabled", self);

        // Backend: the journal for systemd, files for the others.
        let backend = f2b.get("backend").unwrap_or("auto").trim().to_string();
        let (backend_name, backend_opts) = split_ref(&backend)?;
        let journal_backend = backend_name.starts_with("systemd");
        match backend_name.as_str() {
            _ if journal_backend => {
                if !backend_opts.is_empty() {
                    self.push(
                        Level::NotImported,
                        self.at("backend"),
                        format!(
                            "backend options {backend_opts:?}: the system journal is read \
                             (set journal.files in a .local.yaml for other journal files)"
                        ),
                    );
                }
            }
            "auto" | "polling" | "pyinotify" | "gamin" => {}
            other => self.push(
                Level::Note,
                self.at("backend"),
                format!("backend {other:?} is unknown; its log files are followed"),
            ),
        }
        mark("backend", "backend", self);

        // Filter, with the options fail2ban adds or a jail may override.
        let filter_value = f2b.get("filter").unwrap_or("").trim();
        if filter_value.is_empty() {
            return Err("no filter (fail2ban only warns; banwarden needs one)".into());
        }
        let (filter_name, mut filter_opts) = split_ref(filter_value)?;
        let filter_path = self
            .files
            .dir
            .join("filter.d")
            .join(format!("{filter_name}.conf"));
        if journal_backend && !filter_opts.contains_key("logtype") && !defines_logtype(&filter_path)
        {
            filter_opts.insert("logtype".into(), "journal".into());
        }
        for opt in ["datepattern", "logtimezone", "maxlines"] {
            if let Some(v) = f2b.get(opt) {
                filter_opts.insert(opt.to_string(), v.trim().to_string());
            }
        }
        if f2b.get("prefregex").is_some_and(|v| !v.trim().is_empty()) {
            self.push(
                Level::NotImported,
                self.at("prefregex"),
                format!(
                    "prefregex set in the jail is not imported: put it in \
                     filter.d/{filter_name}.local"
                ),
            );
        }
        let failregex = self.patterns("failregex", KNOWN_FAILREGEX, banwarden_known::FAIL)?;
        let ignoreregex =
            self.patterns("ignoreregex", KNOWN_IGNOREREGEX, banwarden_known::IGNORE)?;
        if filter_name == "recidive" {
            self.push(
                Level::NotImported,
                self.at("filter"),
                "recidive reads fail2ban's own log, which banwarden does not write: \
                 give the jails bantime_increment with across_jails: true instead",
            );
        }
        let filter = format_ref(&filter_name, &filter_opts)?;
        mark("filter", "filter", self);
        let compiled = super::compile_ref(&filter, &self.files.dir, &self.files.dir)
            .map_err(|e| format!("filter {filter}: {e}"))?;
        for n in &compiled.notes {
            self.push(Level::Note, None, format!("filter {filter_name}: {n}"));
        }
        if failregex.is_some() || ignoreregex.is_some() {
            // The jail's patterns must compile with the filter, as `check`
            // will compile them.
            let mut spec = compiled.filter.spec.clone();
            let merged = |own: &[String], jail: &[String], known: &str| -> Vec<String> {
                jail.iter()
                    .flat_map(|p| match p == known {
                        true => own.to_vec(),
                        false => vec![p.clone()],
                    })
                    .collect()
            };
            if let Some(l) = &failregex {
                spec.failregex = merged(&spec.failregex, l, banwarden_known::FAIL);
            }
            if let Some(l) = &ignoreregex {
                spec.ignoreregex = merged(&spec.ignoreregex, l, banwarden_known::IGNORE);
            }
            crate::filter::Filter::compile(spec)
                .map_err(|e| format!("the jail's own failregex/ignoreregex: {e}"))?;
            mark("failregex", "failregex", self);
            mark("ignoreregex", "ignoreregex", self);
        }

        let mut logpath = Vec::new();
        let mut journal = None;
        if journal_backend {
            let matches = match f2b.get("journalmatch") {
                Some(v) if !v.trim().is_empty() => {
                    mark("journal", "journalmatch", self);
                    super::filter::split_journalmatch(v)
                }
                _ => compiled.imported.journalmatch.clone(),
            };
            if matches.is_empty() {
                return Err(format!(
                    "backend systemd, but filter {filter_name} has no journalmatch \
                     (banwarden never reads the whole journal): set journalmatch in the jail"
                ));
            }
            crate::source::journal::validate_matches(&matches)
                .map_err(|e| format!("journalmatch: {e}"))?;
            journal = Some(matches);
            if f2b.get("logpath").is_some_and(|v| !v.trim().is_empty()) {
                self.push(
                    Level::Note,
                    self.at("logpath"),
                    "logpath is ignored with the systemd backend, as in fail2ban",
                );
            }
        } else {
            for line in f2b.get("logpath").unwrap_or("").lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                // fail2ban's `PATH head|tail`: where to start a new file.
                let path = match line.rsplit_once(' ') {
                    Some((p, "head" | "tail")) => p.trim(),
                    _ => line,
                };
                logpath.push(path.to_string());
            }
            mark("logpath", "logpath", self);
            if logpath.is_empty() {
                return Err("no logpath (and not the systemd backend)".into());
            }
            if enabled && !logpath.iter().any(|p| any_file(p)) {
                self.push(
                    Level::Note,
                    self.at("logpath"),
                    format!(
                        "no file matches {} yet (fail2ban refuses to start such a jail; \
                         banwarden waits for it); is this log in the journal (backend = systemd)?",
                        logpath.join(", ")
                    ),
                );
            }
        }

        let maxretry = self.parsed("maxretry", |v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| format!("{v:?} is not a count between 1 and 1000000"))
        })?;
        mark("maxretry", "maxretry", self);
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
        mark("maxmatches", "maxmatches", self);
        let findtime = self
            .parsed("findtime", parse_time)?
            .map(|t| t.ok_or("findtime cannot be permanent".to_string()))
            .transpose()?
            .map(|t| t.max(1));
        mark("findtime", "findtime", self);
        let bantime = self
            .parsed("bantime", parse_time)?
            .map(|t| t.map(|s| s.max(1)));
        mark("bantime", "bantime", self);
        let increment = self.increment(bantime.flatten(), window)?;
        if increment.is_some() {
            mark("bantime_increment", "bantime.increment", self);
        }

        let mut ignoreip = Vec::new();
        for word in f2b
            .get("ignoreip")
            .unwrap_or("")
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
        {
            if word.parse::<ipnet::IpNet>().is_ok() || word.parse::<std::net::IpAddr>().is_ok() {
                ignoreip.push(word.to_string());
            } else {
                self.push(
                    Level::NotImported,
                    self.at("ignoreip"),
                    format!("ignoreip {word:?}: banwarden ignores addresses and networks only (no DNS names or files)"),
                );
            }
        }
        mark("ignoreip", "ignoreip", self);
        let ignoreself = self.parsed("ignoreself", |v| {
            parse_bool(v).ok_or("not a boolean".into())
        })?;
        mark("ignoreself", "ignoreself", self);
        for opt in ["ignorecommand", "bantime.rndtime", "bantime.formula"] {
            if let Some(v) = f2b.get(opt).filter(|v| !v.trim().is_empty()) {
                self.push(
                    Level::NotImported,
                    self.at(opt),
                    format!("{opt} = {v}: no equivalent"),
                );
            }
        }
        if let Some(v) = f2b.get("usedns").map(str::trim) {
            if v.eq_ignore_ascii_case("yes") {
                self.push(
                    Level::NotImported,
                    self.at("usedns"),
                    "usedns = yes: banwarden never resolves names; a DNS name is counted as a bad host",
                );
            }
        }

        // Actions: bans become the jail's own; the rest is reported.
        let action_value = f2b.get("action").unwrap_or("");
        let mut bans: Vec<BanAction> = Vec::new();
        for line in split_actions(action_value) {
            let (act, opts) = split_ref(&line)?;
            match actions::classify(&self.files.dir, &act, &opts) {
                Ok(b) => {
                    if let Some(note) = &b.note {
                        self.push(Level::Note, self.at("action"), note.clone());
                    }
                    bans.push(b)
                }
                Err(why) => self.push(
                    Level::NotImported,
                    self.at("action"),
                    format!("action {act}: {why}"),
                ),
            }
        }
        mark("action", "action", self);
        if bans.is_empty() {
            self.push(
                Level::NotImported,
                self.at("action"),
                "no ban action in fail2ban (it only reported); banwarden bans",
            );
        }
        if let Some(other) = bans
            .iter()
            .skip(1)
            .find(|b| b.protocol.is_some() && b.protocol != bans[0].protocol)
        {
            self.push(
                Level::NotImported,
                self.at("action"),
                format!(
                    "action {} bans protocol {}: a banwarden jail bans one protocol, {}",
                    other.name,
                    other.protocol.as_deref().unwrap_or("?"),
                    bans[0].protocol.as_deref().unwrap_or("tcp")
                ),
            );
        }
        let all_ports = bans.is_empty() || bans.iter().any(|b| b.all_ports);
        let port_value = bans
            .iter()
            .find_map(|b| b.port.clone())
            .or_else(|| f2b.get("port").map(str::to_string))
            .unwrap_or_default();
        let protocol_value = bans
            .iter()
            .find_map(|b| b.protocol.clone())
            .or_else(|| f2b.get("protocol").map(str::to_string))
            .unwrap_or_else(|| "tcp".into());
        let ports = if all_ports {
            Vec::new()
        } else {
            actions::ports(&port_value)
                .map_err(|e| format!("{}: port: {e}", self.at("port").unwrap_or_default()))?
        };
        mark("ports", "port", self);
        let protocol = match protocol_value.trim() {
            p @ ("tcp" | "udp") => Some(p.to_string()),
            "all" if ports.is_empty() => Some("all".into()),
            other => {
                self.push(
                    Level::NotImported,
                    self.at("protocol"),
                    format!("protocol {other:?}: banwarden bans tcp, udp or all; tcp is used"),
                );
                Some("tcp".into())
            }
        };
        mark("protocol", "protocol", self);
        let action = match bans.iter().find(|b| b.reject.is_some()) {
            Some(b) if b.reject == Some(true) => "reject",
            _ => "drop",
        };
        Ok(Jail {
            name,
            fail2ban_name: f2b.name.clone(),
            enabled,
            filter,
            logpath,
            journal,
            failregex,
            ignoreregex,
            maxretry,
            maxmatches,
            findtime,
            bantime,
            increment,
            ignoreip,
            ignoreself,
            ports,
            protocol,
            action,
            origins,
        })
    }
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

#[path = "import_increment.rs"]
mod increment;

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
