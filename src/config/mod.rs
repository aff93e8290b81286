//! Configuration: reads a config directory (`banwarden.yaml`, `filters/*.yaml`,
//! `jails/*.yaml`), merges jail drop-ins and validates everything at once.
//!
//! Owns turning files into a [`Config`] or into errors that name file, line,
//! column and field. It starts nothing and touches no state: a config that fails
//! here changes nothing anywhere (the daemon keeps the one it runs).

mod actions;
mod allowlists;
mod chains;
pub mod docs;
pub mod fleet;
mod jail;
pub mod keys;
mod lint;
mod raw;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use crate::filter::{Filter, FilterSpec, PatternRef};
use crate::firewall::{JailRules, Protocol, Verdict};
use crate::jail::{IgnoreList, JailSettings};
pub use actions::{ActionKind, ActionSpec, HealthSpec, Secret};
use jail::build_jail;
use raw::{MergedJail, RawFilter, RawGlobal, RawJail};
pub use values::valid_name as valid_jail_name;
pub use values::{parse_duration, parse_net};

pub const DEFAULT_DIR: &str = "/etc/banwarden";

/// Settings of the whole daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// The nftables table (family inet) the daemon owns.
    pub table: String,
    pub log_level: String,
    pub ignoreip: Vec<IpNet>,
    /// `file:` entries of `ignoreip`.
    pub ignore_files: Vec<Arc<crate::jail::allowfile::AllowFile>>,
    /// Addresses never banned and reported when a jail captures them.
    pub trusted_proxies: Vec<IpNet>,
    pub trusted_proxy_files: Vec<Arc<crate::jail::allowfile::AllowFile>>,
    /// gid whose members may change state through the control socket.
    pub control_group: Option<u32>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where `fail2ban:NAME` filters are looked up (`filter.d/NAME.conf`).
    pub fail2ban_dir: PathBuf,
    /// The fleet this node belongs to (`fleet:`), if any.
    pub fleet: Option<fleet::FleetConfig>,
}

/// One jail, validated.
#[derive(Debug, Clone)]
pub struct JailConfig {
    pub name: String,
    pub enabled: bool,
    pub filter: Arc<Filter>,
    pub logpath: Vec<PathBuf>,
    /// journalctl matches when the jail reads the journal.
    pub journal: Option<Vec<String>>,
    /// Journal files to read instead of the system journal.
    pub journal_files: Vec<PathBuf>,
    /// argv of a command whose stdout the jail reads.
    pub command: Option<Vec<String>>,
    pub settings: JailSettings,
    pub rules: JailRules,
    /// Run on ban and unban events (`crate::actions`).
    pub actions: Vec<ActionSpec>,
    /// Most failure lines a ban event gives the actions (`maxmatches`).
    pub maxmatches: usize,
    /// When the jail is flagged as not working (`crate::health`).
    pub health: HealthSpec,
    /// `fleet: shared|local` (meaningful with a `fleet:` block).
    pub fleet: fleet::JailFleet,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub global: Global,
    pub filters: BTreeMap<String, Arc<Filter>>,
    /// All jails, enabled or not, sorted by name.
    pub jails: Vec<JailConfig>,
    /// What imported fail2ban filters do differently from fail2ban, each
    /// located (`check` prints them).
    pub notes: Vec<String>,
}

impl Config {
    pub fn enabled_jails(&self) -> impl Iterator<Item = &JailConfig> {
        self.jails.iter().filter(|j| j.enabled)
    }

    pub fn jail(&self, name: &str) -> Option<&JailConfig> {
        self.jails.iter().find(|j| j.name == name)
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field (`jails.sshd.bantime`), empty for the file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found; a config with any is rejected whole.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects errors while building.
struct Errors(Vec<ConfigError>);

impl Errors {
    fn at<T>(&mut self, file: &Path, span: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            file: file.to_path_buf(),
            line: span.referenced.line(),
            column: span.referenced.column(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn file(&mut self, file: &Path, field: &str, message: impl Into<String>) {
        self.0.push(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: field.into(),
            message: message.into(),
        });
    }

    fn yaml(&mut self, file: &Path, e: serde_saphyr::Error) {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let text = e
            .to_string()
            .replace("<input>", &file.display().to_string());
        // The first line repeats the position; the rest is the rendered snippet.
        let message = text
            .split_once('\n')
            .map_or(text.as_str(), |(_, rest)| rest)
            .to_string();
        let head = text.lines().next().unwrap_or_default();
        let head = head
            .split_once(": ")
            .map_or(head, |(_, m)| m)
            .trim_start_matches("error: ");
        let head = head
            .split_once(": ")
            .filter(|(p, _)| p.starts_with("line "))
            .map_or(head, |(_, m)| m);
        self.0.push(ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            field: String::new(),
            message: format!("{head}\n{message}"),
        });
    }
}

/// Reads and validates the configuration in `dir`.
pub fn load(dir: &Path) -> Result<Config, ConfigErrors> {
    load_some(dir, None)
}

/// Reads `dir` for one jail only (`dry-run --jail`): the global file, the
/// jail files that name it (drop-ins merge across them; a file that never
/// spells the name is not parsed), and only the filter the jail names;
/// other jails are not built or validated. The jail is absent from the
/// result if no file defines it.
pub fn load_jail(dir: &Path, jail: &str) -> Result<Config, ConfigErrors> {
    load_some(dir, Some(jail))
}

/// Reads and validates only the global file of `dir` (`banwarden.yaml`),
/// for a command that needs a global setting and no jail or filter
/// (`dry-run --filter fail2ban:NAME` reads `fail2ban_dir`): the rest of
/// the directory is neither compiled nor checked.
pub fn load_global(dir: &Path) -> Result<Global, ConfigErrors> {
    let mut errs = Errors(Vec::new());
    if !dir.is_dir() {
        errs.file(dir, "", "config directory not found (use --config DIR)");
        return Err(ConfigErrors(errs.0));
    }
    let (global, _, _) = read_global(dir, &mut errs);
    match errs.0.is_empty() {
        true => Ok(global),
        false => Err(ConfigErrors(errs.0)),
    }
}

/// The global file of `dir` read and built (its errors into `errs`),
/// with its raw form and path.
fn read_global(dir: &Path, errs: &mut Errors) -> (Global, RawGlobal, PathBuf) {
    let global_path = dir.join("banwarden.yaml");
    let raw_global: RawGlobal = if global_path.exists() {
        parse_file(&global_path, lint::Shape::Keys(keys::Scope::Global), errs).unwrap_or_default()
    } else {
        RawGlobal::default()
    };
    let mut global = build_global(&global_path, &raw_global, errs);
    (global.ignoreip, global.ignore_files) = allowlists::entries(
        dir,
        &global_path,
        raw_global.ignoreip.as_deref().unwrap_or(&[]),
        "ignoreip",
        errs,
    );
    (global.trusted_proxies, global.trusted_proxy_files) = allowlists::entries(
        dir,
        &global_path,
        raw_global.trusted_proxies.as_deref().unwrap_or(&[]),
        "trusted_proxies",
        errs,
    );
    (global, raw_global, global_path)
}

fn load_some(dir: &Path, only: Option<&str>) -> Result<Config, ConfigErrors> {
    let mut errs = Errors(Vec::new());
    if !dir.is_dir() {
        errs.file(dir, "", "config directory not found (use --config DIR)");
        return Err(ConfigErrors(errs.0));
    }
    let (global, raw_global, global_path) = read_global(dir, &mut errs);

    let defaults = MergedJail {
        raw: raw_global.defaults.clone().unwrap_or_default(),
        origin: Default::default(),
        defined_in: Some(Arc::new(global_path.clone())),
    };
    let mut merged: BTreeMap<String, MergedJail> = BTreeMap::new();
    for path in jail_files(&dir.join("jails"), &mut errs) {
        let Some(text) = read_file(&path, &mut errs) else {
            continue;
        };
        // One jail asked for: a file that never names it can neither
        // define nor change it, and other jails are not validated.
        if only.is_some_and(|j| !may_name(&text, j)) {
            continue;
        }
        let Some(map) = parse_text::<BTreeMap<String, RawJail>>(
            &path,
            &text,
            lint::Shape::Named(keys::Scope::Jail),
            &mut errs,
        ) else {
            continue;
        };
        let file = Arc::new(path.clone());
        for (name, raw) in map {
            merged
                .entry(name)
                .or_insert_with(|| MergedJail {
                    defined_in: None,
                    ..defaults.clone()
                })
                .merge(raw, &file);
        }
    }
    // The one jail's filter only, when one jail is asked for.
    let wanted = only.map(|j| {
        merged
            .get(j)
            .and_then(|m| m.raw.filter.as_ref())
            .map(|f| f.value.clone())
    });
    let mut filters = BTreeMap::new();
    for path in yaml_files(&dir.join("filters"), &mut errs) {
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if wanted.as_ref().is_some_and(|w| w.as_deref() != Some(&name)) {
            continue;
        }
        if let Some(filter) = load_filter(&path, &name, &mut errs) {
            filters.insert(name, Arc::new(filter));
        }
    }
    let mut jails = Vec::new();
    let mut notes = Vec::new();
    for (name, m) in &merged {
        if only.is_some_and(|j| j != name) {
            continue;
        }
        if let Some(j) = build_jail(dir, name, m, &global, &filters, &mut notes, &mut errs) {
            jails.push(j);
        }
    }
    if errs.0.is_empty() {
        Ok(Config {
            dir: dir.to_path_buf(),
            global,
            filters,
            jails,
            notes,
        })
    } else {
        Err(ConfigErrors(errs.0))
    }
}

/// Compiles one filter file; also used by `dry-run --filter PATH`.
pub fn load_filter_file(path: &Path) -> Result<Filter, ConfigErrors> {
    let mut errs = Errors(Vec::new());
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("filter")
        .to_string();
    match load_filter(path, &name, &mut errs) {
        Some(f) if errs.0.is_empty() => Ok(f),
        _ => Err(ConfigErrors(errs.0)),
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    shape: lint::Shape,
    errs: &mut Errors,
) -> Option<T> {
    let text = read_file(path, errs)?;
    parse_text(path, &text, shape, errs)
}

fn read_file(path: &Path, errs: &mut Errors) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            errs.file(path, "", format!("cannot read: {e}"));
            None
        }
    }
}

/// Whether a jail file's `text` may define or change the jail `name`: it
/// spells the name, or has a backslash (a double-quoted key could spell
/// it with escapes). A YAML key is written on one line (a plain or
/// single-quoted key folded across lines reads with a space instead of
/// the line break), and jail names are plain words.
fn may_name(text: &str, name: &str) -> bool {
    text.contains(name) || text.contains('\\')
}

fn parse_text<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    shape: lint::Shape,
    errs: &mut Errors,
) -> Option<T> {
    // Every mistake of the file at once, in words; the typed read below
    // would stop at the first.
    let findings = lint::lint(text, shape).unwrap_or_default();
    if !findings.is_empty() {
        errs.0.extend(findings.into_iter().map(|f| ConfigError {
            file: path.to_path_buf(),
            line: f.line,
            column: f.column,
            field: f.field,
            message: f.message,
        }));
        return None;
    }
    match serde_saphyr::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.yaml(path, e);
            None
        }
    }
}

fn yaml_files(dir: &Path, errs: &mut Errors) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errs.file(dir, "", format!("cannot list: {e}"));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Jail files in override order: plain files by name, then `*.local.yaml` by name.
fn jail_files(dir: &Path, errs: &mut Errors) -> Vec<PathBuf> {
    let mut files = yaml_files(dir, errs);
    files.sort_by_key(|p| {
        let local = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".local."));
        (local, p.clone())
    });
    files
}

fn build_global(path: &Path, raw: &RawGlobal, errs: &mut Errors) -> Global {
    let table = raw
        .table
        .as_ref()
        .map_or_else(|| global_default("table"), |t| t.value.clone());
    if let Some(t) = &raw.table {
        if !values::valid_name(&t.value) {
            errs.at(
                path,
                t,
                "table",
                "must be 1-32 characters of A-Z a-z 0-9 _ -, starting with a letter",
            );
        }
    }
    let log_level = raw
        .log_level
        .as_ref()
        .map_or_else(|| global_default("log_level"), |l| l.value.clone());
    if let Some(l) = &raw.log_level {
        if let Err(e) = keys::key(keys::Scope::Global, "log_level").check_choice(&l.value) {
            errs.at(path, l, "log_level", e);
        }
    }
    Global {
        state_dir: raw.state_dir.as_ref().map_or_else(
            || PathBuf::from(global_default("state_dir")),
            |s| PathBuf::from(&s.value),
        ),
        socket: raw.socket.as_ref().map_or_else(
            || PathBuf::from(global_default("socket")),
            |s| PathBuf::from(&s.value),
        ),
        table,
        log_level,
        // With their `file:` entries: `allowlists::entries`, by the caller.
        ignoreip: Vec::new(),
        ignore_files: Vec::new(),
        trusted_proxies: Vec::new(),
        trusted_proxy_files: Vec::new(),
        control_group: raw.control_group.as_ref().and_then(|g| {
            crate::control::resolve_group(&g.value)
                .map_err(|e| errs.at(path, g, "control_group", e.to_string()))
                .ok()
        }),
        fail2ban_dir: raw.fail2ban_dir.as_ref().map_or_else(
            || PathBuf::from(global_default("fail2ban_dir")),
            |d| PathBuf::from(&d.value),
        ),
        metrics_listen: raw.metrics_listen.as_ref().and_then(|m| {
            m.value
                .parse()
                .map_err(|_| {
                    errs.at(
                        path,
                        m,
                        "metrics_listen",
                        "must be ADDRESS:PORT, e.g. 127.0.0.1:9179",
                    )
                })
                .ok()
        }),
        fleet: raw.fleet.as_ref().and_then(|f| fleet::build(path, f, errs)),
    }
}

/// The registered default of a `banwarden.yaml` key.
fn global_default(name: &str) -> String {
    keys::key(keys::Scope::Global, name)
        .default_text()
        .unwrap_or_default()
        .to_string()
}

fn load_filter(path: &Path, name: &str, errs: &mut Errors) -> Option<Filter> {
    let raw: RawFilter = parse_file(path, lint::Shape::Keys(keys::Scope::Filter), errs)?;
    let spec = FilterSpec {
        name: name.to_string(),
        description: raw.description.clone().unwrap_or_default(),
        prefregex: raw.prefregex.as_ref().map(|s| s.value.clone()),
        failregex: raw
            .failregex
            .value
            .iter()
            .map(|s| s.value.clone())
            .collect(),
        ignoreregex: raw
            .ignoreregex
            .iter()
            .flatten()
            .map(|s| s.value.clone())
            .collect(),
        datepattern: raw.datepattern.as_ref().map(|s| s.value.clone()),
        ..Default::default()
    };
    match Filter::compile(spec) {
        Ok(f) => Some(f),
        Err(e) => {
            let span = match e.which {
                PatternRef::Prefregex => raw.prefregex.as_ref().map(|s| s.referenced),
                PatternRef::Failregex(i) => raw
                    .failregex
                    .value
                    .get(i)
                    .map(|s| s.referenced)
                    .or(Some(raw.failregex.referenced)),
                PatternRef::Ignoreregex(i) => raw
                    .ignoreregex
                    .as_ref()
                    .and_then(|v| v.get(i))
                    .map(|s| s.referenced),
                PatternRef::Datepattern => raw.datepattern.as_ref().map(|s| s.referenced),
            };
            let (line, column) = span.map_or((0, 0), |l| (l.line(), l.column()));
            errs.0.push(ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                field: e.which.to_string(),
                message: format!(
                    "{}\n    {}\n    {:>w$}",
                    e.message,
                    e.pattern,
                    "^",
                    w = e.offset + 1
                ),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests;
