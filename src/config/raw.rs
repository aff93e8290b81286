//! The YAML schema as written: every field optional and spanned, so merging
//! drop-ins and pointing errors at `file:line:column` are possible.
//!
//! Owns deserialisation only; meaning and validation live in `config` (`mod` for the global file and filters, `jail` for jails).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar that may be written as a number or as text (`600`, `10m`, `"22"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Text(s) => write!(f, "{s}"),
        }
    }
}

/// One item or a list of them (`logpath: /var/log/x` or `logpath: [a, b]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `banwarden.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub state_dir: Option<Spanned<String>>,
    pub socket: Option<Spanned<String>>,
    /// Group (name or gid) whose members may change state through the socket.
    pub control_group: Option<Spanned<String>>,
    /// Prometheus endpoint, e.g. `127.0.0.1:9179`; off when absent.
    pub metrics_listen: Option<Spanned<String>>,
    /// fail2ban's configuration directory, for `filter: fail2ban:NAME`.
    pub fail2ban_dir: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub ignoreip: Option<Vec<Spanned<String>>>,
    /// Proxies and load balancers in front of this host: never banned.
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    /// Values every jail starts from.
    pub defaults: Option<RawJail>,
    /// Share counts and bans with other nodes through Redis.
    pub fleet: Option<Spanned<super::fleet::RawFleet>>,
}

/// `filters/NAME.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    pub description: Option<String>,
    pub prefregex: Option<Spanned<String>>,
    pub failregex: Spanned<Vec<Spanned<String>>>,
    pub ignoreregex: Option<Vec<Spanned<String>>>,
    pub datepattern: Option<Spanned<String>>,
}

/// One jail in `jails/*.yaml` (a file maps jail names to these).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJail {
    pub enabled: Option<Spanned<bool>>,
    pub filter: Option<Spanned<String>>,
    pub logpath: Option<OneOrMany<Spanned<String>>>,
    pub maxretry: Option<Spanned<i64>>,
    /// Most failure lines an action event carries.
    pub maxmatches: Option<Spanned<i64>>,
    pub findtime: Option<Spanned<Scalar>>,
    pub bantime: Option<Spanned<Scalar>>,
    pub ignoreip: Option<Vec<Spanned<String>>>,
    pub ignoreself: Option<Spanned<bool>>,
    pub ports: Option<Spanned<OneOrMany<Scalar>>>,
    pub protocol: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub max_tracked: Option<Spanned<i64>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub bantime_increment: Option<Spanned<RawIncrement>>,
    /// Read the systemd journal instead of (or besides) files.
    pub journal: Option<Spanned<RawJournal>>,
    /// `auto` (default), `files` or `journal`: with both `logpath` and
    /// `journal` set, `auto` reads the files if any exists, else the journal.
    pub backend: Option<Spanned<String>>,
    /// Read a long-running command's stdout (argv, no shell).
    pub command: Option<Spanned<Vec<String>>>,
    /// Webhooks and commands run on ban and unban events.
    pub actions: Option<Spanned<Vec<Spanned<super::actions::RawAction>>>>,
    /// When the jail is flagged as not working (`config::actions`).
    pub health: Option<Spanned<super::actions::RawHealth>>,
    /// Base chains the jail's rules go in: `[input]` (default), `[input, forward]`.
    pub chains: Option<Spanned<Vec<Spanned<String>>>>,
    /// `shared` (default with a `fleet:` block) or `local`.
    pub fleet: Option<Spanned<String>>,
    /// The jail's own failregex, replacing the filter's (fail2ban's jail
    /// option); `%(known/failregex)s` stands for the filter's own.
    pub failregex: Option<Spanned<Vec<Spanned<String>>>>,
    /// The jail's own ignoreregex, likewise (`%(known/ignoreregex)s`).
    pub ignoreregex: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `bantime_increment:` of a jail.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncrement {
    pub factor: Option<f64>,
    pub durations: Option<Vec<Scalar>>,
    pub maxtime: Option<Scalar>,
    pub window: Option<Scalar>,
    pub across_jails: Option<bool>,
}

/// `journal:` of a jail.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    /// journalctl matches: `FIELD=value`, `+` between alternatives.
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    /// Journal files to read instead of the system journal (exported or
    /// remote journals, tests).
    pub files: Option<Vec<String>>,
}

/// A jail merged from several files, remembering which file set each field.
#[derive(Debug, Default, Clone)]
pub struct MergedJail {
    pub raw: RawJail,
    pub origin: std::collections::HashMap<&'static str, Arc<PathBuf>>,
    /// The file that first defined the jail.
    pub defined_in: Option<Arc<PathBuf>>,
}

impl MergedJail {
    /// Fields set in `over` replace those here (drop-in semantics).
    pub fn merge(&mut self, over: RawJail, file: &Arc<PathBuf>) {
        macro_rules! take {
            ($($f:ident),*) => { $(
                if over.$f.is_some() {
                    self.raw.$f = over.$f;
                    self.origin.insert(stringify!($f), file.clone());
                }
            )* };
        }
        take!(
            enabled,
            filter,
            logpath,
            maxretry,
            maxmatches,
            findtime,
            bantime,
            ignoreip,
            ignoreself,
            ports,
            protocol,
            action,
            max_tracked,
            backend,
            ipv4_prefix,
            ipv6_prefix,
            bantime_increment,
            journal,
            command,
            actions,
            health,
            chains,
            fleet,
            failregex,
            ignoreregex
        );
        self.defined_in.get_or_insert_with(|| file.clone());
    }

    /// The file a field's value came from.
    pub fn file_of(&self, field: &str) -> Option<&Arc<PathBuf>> {
        self.origin.get(field).or(self.defined_in.as_ref())
    }
}
