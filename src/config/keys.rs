//! The registry of configuration keys: every key of `banwarden.yaml`,
//! `jails/*.yaml`, `filters/*.yaml` and their nested maps, with its type,
//! default, allowed range and one line of documentation, in one table
//! ([`KEYS`]).
//!
//! Validation reads it (`config::lint` checks each value's type and range
//! and suggests a known key for an unknown one; `build_jail` takes its
//! defaults and ranges from here), and the documentation is generated from
//! it (`docs`: the README's reference tables and `banwarden.yaml(5)`).
//!
//! To add a key: add one `Key` to [`KEYS`] (and the field to the matching
//! struct in `config::raw`); `keys_match_the_raw_structs` fails until both
//! agree, `tests/docs.rs` until the README is regenerated
//! (`BANWARDEN_BLESS=1 cargo test --test docs`).
//!
//! Owns descriptions only: it parses no file and builds no config.

/// Where a key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Top level of `banwarden.yaml`.
    Global,
    /// A jail in `jails/*.yaml` (and `defaults:` of `banwarden.yaml`).
    Jail,
    /// `journal:` of a jail.
    Journal,
    /// `bantime_increment:` of a jail.
    Increment,
    /// A filter file, `filters/NAME.yaml`.
    Filter,
}

impl Scope {
    /// Every scope, in documentation order.
    pub const ALL: [Scope; 5] = [
        Scope::Global,
        Scope::Jail,
        Scope::Journal,
        Scope::Increment,
        Scope::Filter,
    ];

    /// Name used in documentation markers and headings.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Jail => "jail",
            Scope::Journal => "journal",
            Scope::Increment => "bantime_increment",
            Scope::Filter => "filter",
        }
    }
}

/// What a value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Type {
    Bool,
    /// A whole number within `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number (may have a fraction) of at least `min`.
    Float {
        min: f64,
    },
    /// `90s`, `10m`, `1h30m`, or seconds; `-1`/`permanent` only when allowed.
    Duration {
        permanent: bool,
    },
    /// A list of durations.
    Durations {
        permanent: bool,
    },
    /// Free text (a path, a name, a pattern).
    Text,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A list of text items.
    Texts,
    /// One text item or a list of them.
    TextOrTexts,
    /// A list of addresses and CIDR networks.
    Nets,
    /// Ports: a number, a range, a service name, or a list of them.
    Ports,
    /// A nested map whose keys are those of the scope.
    Map(Scope),
    /// Any shape, checked only by the key's own parser in `config` (`mod`, `jail`)
    /// (a list of maps, say); `describe` is the text shown as its type.
    Any {
        describe: &'static str,
    },
}

impl Type {
    /// How the type reads in documentation (with its range).
    pub fn describe(&self) -> String {
        match self {
            Type::Bool => "boolean".into(),
            Type::Int { min, max } => format!("whole number, {min} to {max}"),
            Type::Float { min } => format!("number, at least {min}"),
            Type::Duration { permanent: false } => "duration".into(),
            Type::Duration { permanent: true } => "duration or `permanent`".into(),
            Type::Durations { .. } => "list of durations".into(),
            Type::Text => "text".into(),
            Type::Choice(c) => c
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Type::Texts => "list of text".into(),
            Type::TextOrTexts => "text or list".into(),
            Type::Nets => "list of addresses/CIDRs".into(),
            Type::Ports => "port list".into(),
            Type::Map(s) => format!("map ({} keys)", s.name()),
            Type::Any { describe } => describe.to_string(),
        }
    }
}

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// Used when the key is absent, written as in YAML (parsed by its type).
    Value(&'static str),
    /// Depends on other keys, or absent means "off"; described in words.
    Note(&'static str),
    /// The key must be given.
    Required,
    /// Absent means not set.
    Unset,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub scope: Scope,
    pub name: &'static str,
    pub ty: Type,
    pub default: Default,
    /// One line of documentation (markdown: `code` only).
    pub doc: &'static str,
}

const DURATION: Type = Type::Duration { permanent: false };

/// Every configuration key. One entry per key; order is documentation order.
#[rustfmt::skip]
pub static KEYS: &[Key] = &[
    // banwarden.yaml
    Key { scope: Scope::Global, name: "state_dir", ty: Type::Text, default: Default::Value("/var/lib/banwarden"),
        doc: "where bans and file positions survive restarts" },
    Key { scope: Scope::Global, name: "socket", ty: Type::Text, default: Default::Value("/run/banwarden/banwarden.sock"),
        doc: "control socket" },
    Key { scope: Scope::Global, name: "table", ty: Type::Text, default: Default::Value("banwarden"),
        doc: "the nftables table (family `inet`) banwarden owns; it touches nothing else (1-32 of `A-Z a-z 0-9 _ -`, starting with a letter)" },
    Key { scope: Scope::Global, name: "log_level", ty: Type::Choice(&["error", "warn", "info", "debug", "trace"]), default: Default::Value("info"),
        doc: "how much the daemon logs (`RUST_LOG` overrides)" },
    Key { scope: Scope::Global, name: "ignoreip", ty: Type::Nets, default: Default::Value("[]"),
        doc: "addresses, CIDRs and `file:PATH` lists no jail ever bans (see [Allow-lists from files](#allow-lists-from-files))" },
    Key { scope: Scope::Global, name: "trusted_proxies", ty: Type::Nets, default: Default::Value("[]"),
        doc: "your reverse proxies and load balancers (addresses, CIDRs, `file:PATH`): never banned, and a jail that captures one is flagged (see [Behind a proxy](#behind-a-proxy-nginx-django-cloudflare))" },
    Key { scope: Scope::Global, name: "control_group", ty: Type::Text, default: Default::Unset,
        doc: "a group (name or gid) whose members may ban, unban and reload through the socket" },
    Key { scope: Scope::Global, name: "metrics_listen", ty: Type::Text, default: Default::Note("off"),
        doc: "`127.0.0.1:9179` serves Prometheus metrics at `/metrics`" },
    Key { scope: Scope::Global, name: "fail2ban_dir", ty: Type::Text, default: Default::Value("/etc/fail2ban"),
        doc: "where `filter: fail2ban:NAME` finds `filter.d/NAME.conf`" },
    Key { scope: Scope::Global, name: "defaults", ty: Type::Map(Scope::Jail), default: Default::Unset,
        doc: "jail keys every jail starts from" },
    Key { scope: Scope::Global, name: "fleet", ty: Type::Any { describe: "map (`redis`, `node`, `prefix`, `ca_file`, `cert_file`, `key_file`)" }, default: Default::Note("off"),
        doc: "`{redis: URL, node: NAME, prefix: P}` (`rediss://` with `ca_file`, `cert_file`, `key_file`: PEM files for TLS): share counts and bans with other servers (see [A fleet on Redis](#a-fleet-on-redis))" },
    // jails/*.yaml
    Key { scope: Scope::Jail, name: "enabled", ty: Type::Bool, default: Default::Value("false"),
        doc: "whether the daemon runs the jail" },
    Key { scope: Scope::Jail, name: "filter", ty: Type::Text, default: Default::Required,
        doc: "a filter name from `filters/`, a path to a filter file, or a fail2ban filter: `fail2ban:sshd`, `/etc/fail2ban/filter.d/sshd.conf`, `'fail2ban:apache-auth[mode=aggressive]'`" },
    Key { scope: Scope::Jail, name: "logpath", ty: Type::TextOrTexts, default: Default::Unset,
        doc: "a path or a list of paths and globs (`/var/log/nginx/*access.log`); relative to the config directory" },
    Key { scope: Scope::Jail, name: "journal", ty: Type::Map(Scope::Journal), default: Default::Unset,
        doc: "read the systemd journal: `{match: [_SYSTEMD_UNIT=ssh.service]}`" },
    Key { scope: Scope::Jail, name: "backend", ty: Type::Choice(&["auto", "files", "journal"]), default: Default::Value("auto"),
        doc: "with both `logpath` and `journal`: `auto` reads the files if any exists, else the journal; `files` or `journal` force one" },
    Key { scope: Scope::Jail, name: "command", ty: Type::Texts, default: Default::Unset,
        doc: "`[/usr/bin/docker, logs, -f, web]`: read a command's stdout (argv, absolute program path, no shell)" },
    Key { scope: Scope::Jail, name: "maxretry", ty: Type::Int { min: 1, max: 1_000_000 }, default: Default::Value("5"),
        doc: "failures within `findtime` that earn a ban" },
    Key { scope: Scope::Jail, name: "maxmatches", ty: Type::Int { min: 0, max: 100 }, default: Default::Value("10"),
        doc: "most failure lines (the last ones, each cut at 1 KiB) a ban event gives the jail's `actions`; `0` sends none (fail2ban's `maxmatches`)" },
    Key { scope: Scope::Jail, name: "findtime", ty: DURATION, default: Default::Value("10m"),
        doc: "the sliding window (`90s`, `10m`, `1h`, `1d`, `1h30m`, or seconds)" },
    Key { scope: Scope::Jail, name: "bantime", ty: Type::Duration { permanent: true }, default: Default::Value("10m"),
        doc: "ban length; `-1` or `permanent` for no expiry" },
    Key { scope: Scope::Jail, name: "bantime_increment", ty: Type::Map(Scope::Increment), default: Default::Unset,
        doc: "longer bans for repeat offenders: `{factor: 2, maxtime: 1w}` or `{durations: [1m, 5m, 1h, permanent]}`" },
    Key { scope: Scope::Jail, name: "failregex", ty: Type::Texts, default: Default::Note("the filter's"),
        doc: "the jail's own failregex, replacing the filter's as in a fail2ban jail, in the filter's syntax; an entry `%(known/failregex)s` stands for the filter's own" },
    Key { scope: Scope::Jail, name: "ignoreregex", ty: Type::Texts, default: Default::Note("the filter's"),
        doc: "the jail's own ignoreregex, likewise (`%(known/ignoreregex)s`: the filter's own)" },
    Key { scope: Scope::Jail, name: "ignoreip", ty: Type::Nets, default: Default::Value("[]"),
        doc: "addresses, CIDRs and `file:PATH` lists this jail never bans (added to the global list)" },
    Key { scope: Scope::Jail, name: "fleet", ty: Type::Choice(&["shared", "local"]), default: Default::Note("`shared` with a `fleet:` block"),
        doc: "`local` keeps the jail and its manual bans on this node only" },
    Key { scope: Scope::Jail, name: "chains", ty: Type::Any { describe: "list of `input`, `forward`" }, default: Default::Note("`[input]`"),
        doc: "where the jail's rules apply: `input` (this host's own services), `forward` (routed traffic: Docker-published ports, see [Docker](#bans-that-cover-docker-published-ports)), or both" },
    Key { scope: Scope::Jail, name: "ignoreself", ty: Type::Bool, default: Default::Value("true"),
        doc: "never ban loopback or this host's own addresses" },
    Key { scope: Scope::Jail, name: "ports", ty: Type::Ports, default: Default::Note("all"),
        doc: "`[22]`, `[http, https]`, `[8000-8080]`" },
    Key { scope: Scope::Jail, name: "protocol", ty: Type::Choice(&["tcp", "udp", "all"]), default: Default::Note("`all`, or `tcp` when `ports` is set"),
        doc: "which protocol the ban blocks" },
    Key { scope: Scope::Jail, name: "action", ty: Type::Choice(&["drop", "reject"]), default: Default::Value("drop"),
        doc: "`reject` answers with a TCP reset / ICMP unreachable" },
    Key { scope: Scope::Jail, name: "ipv6_prefix", ty: Type::Int { min: 8, max: 128 }, default: Default::Value("64"),
        doc: "IPv6 failures are counted and banned per prefix of this length" },
    Key { scope: Scope::Jail, name: "ipv4_prefix", ty: Type::Int { min: 8, max: 32 }, default: Default::Value("32"),
        doc: "the same for IPv4" },
    Key { scope: Scope::Jail, name: "max_tracked", ty: Type::Int { min: 1, max: 100_000_000 }, default: Default::Value("100000"),
        doc: "most addresses tracked at once (memory bound: about 80 bytes each at peak with `maxretry` up to 4)" },
    Key { scope: Scope::Jail, name: "actions", ty: Type::Any { describe: "list of actions" }, default: Default::Note("none"),
        doc: "webhooks and commands run on ban and unban events (see [Actions](#actions-webhooks-and-commands))" },
    Key { scope: Scope::Jail, name: "health", ty: Type::Any { describe: "map (`after`, `undated_ratio`)" }, default: Default::Note("`{after: 7d, undated_ratio: 0.5}`"),
        doc: "when the jail is flagged as not working (see [Filter health](#filter-health)); `after: off` disables" },
    // journal: of a jail
    Key { scope: Scope::Journal, name: "match", ty: Type::Texts, default: Default::Required,
        doc: "journalctl matches (`FIELD=value`, `+` between alternatives); at least one" },
    Key { scope: Scope::Journal, name: "files", ty: Type::Texts, default: Default::Unset,
        doc: "journal files to read instead of the system journal" },
    // bantime_increment: of a jail
    Key { scope: Scope::Increment, name: "factor", ty: Type::Float { min: 1.0 }, default: Default::Unset,
        doc: "each repeat ban lasts `factor` times the one before (give this or `durations`)" },
    Key { scope: Scope::Increment, name: "durations", ty: Type::Durations { permanent: true }, default: Default::Unset,
        doc: "the ban lengths of the first, second... ban; the last repeats" },
    Key { scope: Scope::Increment, name: "maxtime", ty: DURATION, default: Default::Note("no cap"),
        doc: "the longest a grown ban may be" },
    Key { scope: Scope::Increment, name: "window", ty: DURATION, default: Default::Value("1w"),
        doc: "how long earlier bans are remembered" },
    Key { scope: Scope::Increment, name: "across_jails", ty: Type::Bool, default: Default::Value("false"),
        doc: "count earlier bans of the address in every jail, not only this one" },
    // filters/NAME.yaml
    Key { scope: Scope::Filter, name: "description", ty: Type::Text, default: Default::Unset,
        doc: "one line saying what the filter catches" },
    Key { scope: Scope::Filter, name: "failregex", ty: Type::Texts, default: Default::Required,
        doc: "patterns of failure lines, each with `<HOST>` or `<ADDR>`; anchor them (`^...$`)" },
    Key { scope: Scope::Filter, name: "ignoreregex", ty: Type::Texts, default: Default::Value("[]"),
        doc: "patterns of lines to dismiss even when a failregex matched" },
    Key { scope: Scope::Filter, name: "prefregex", ty: Type::Text, default: Default::Unset,
        doc: "a pre-match; its `content` group is what the other patterns see" },
    Key { scope: Scope::Filter, name: "datepattern", ty: Type::Text, default: Default::Note("the built-in formats"),
        doc: "where the timestamp is and how it reads (`^%Y-%m-%d %H:%M:%S`)" },
];

/// The key `name` of `scope`.
///
/// Panics when it is not registered: callers name keys by literal, and
/// `registered_keys_are_found` runs every such literal.
pub fn key(scope: Scope, name: &str) -> &'static Key {
    find(scope, name)
        .unwrap_or_else(|| panic!("config key {}.{name} is not registered", scope.name()))
}

/// The key `name` of `scope`, if registered.
pub fn find(scope: Scope, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.scope == scope && k.name == name)
}

/// The keys of one scope, in order.
pub fn of(scope: Scope) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.scope == scope)
}

/// The known key of `scope` closest to a misspelt `name`.
pub fn suggest(scope: Scope, name: &str) -> Option<&'static str> {
    closest(name, of(scope).map(|k| k.name))
}

/// The candidate a misspelt `word` most likely meant: a typo or two away
/// (transpositions count once), or sharing most of its letters in order.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| {
            let edits = strsim::damerau_levenshtein(word, c);
            let near = edits <= (c.len() / 4).max(1);
            (near, strsim::jaro_winkler(word, c), c)
        })
        .filter(|(near, score, _)| *near || *score > 0.85)
        .max_by(|a, b| {
            (a.0, a.1)
                .partial_cmp(&(b.0, b.1))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(_, _, c)| c)
}

impl Key {
    /// The default as written (`Default::Value`), if any.
    pub fn default_text(&self) -> Option<&'static str> {
        match self.default {
            Default::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The default of an integer key.
    pub fn default_int(&self) -> i64 {
        self.default_text()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("config key {} has no integer default", self.name))
    }

    /// The default of a duration key, in seconds (`None`: permanent).
    pub fn default_duration(&self) -> Option<i64> {
        self.default_text()
            .and_then(|v| super::parse_duration(v).ok())
            .unwrap_or_else(|| panic!("config key {} has no duration default", self.name))
    }

    /// The default of a boolean key.
    pub fn default_bool(&self) -> bool {
        self.default_text() == Some("true")
    }

    /// An integer checked against the key's range.
    pub fn check_int(&self, v: i64) -> Result<i64, String> {
        match self.ty {
            Type::Int { min, max } if (min..=max).contains(&v) => Ok(v),
            Type::Int { min, max } => Err(format!("must be between {min} and {max}, got {v}")),
            _ => Err(format!("{} is not a whole-number key", self.name)),
        }
    }

    /// A word checked against the key's choices.
    pub fn check_choice(&self, v: &str) -> Result<(), String> {
        match self.ty {
            Type::Choice(c) if c.contains(&v) => Ok(()),
            Type::Choice(c) => {
                let mut m = format!("expected one of {}, got \"{v}\"", c.join(", "));
                if let Some(s) = closest(v, c.iter().copied()) {
                    m.push_str(&format!("; did you mean `{s}`?"));
                }
                Err(m)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_as_their_type() {
        for k in KEYS {
            let Some(v) = k.default_text() else { continue };
            match k.ty {
                Type::Int { .. } => assert!(k.check_int(k.default_int()).is_ok(), "{}", k.name),
                Type::Duration { .. } => {
                    k.default_duration();
                }
                Type::Bool => assert!(v == "true" || v == "false", "{}", k.name),
                Type::Choice(_) => assert!(k.check_choice(v).is_ok(), "{}", k.name),
                _ => {}
            }
        }
    }

    #[test]
    fn names_are_unique_per_scope() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert!(a.scope != b.scope || a.name != b.name, "{} twice", a.name);
            }
        }
    }

    #[test]
    fn suggests_the_closest_key() {
        assert_eq!(suggest(Scope::Jail, "enabeld"), Some("enabled"));
        assert_eq!(suggest(Scope::Jail, "bantim"), Some("bantime"));
        assert_eq!(suggest(Scope::Jail, "xyzzy"), None);
        let e = key(Scope::Jail, "protocol")
            .check_choice("tpc")
            .unwrap_err();
        assert!(e.contains("did you mean `tcp`?"), "{e}");
    }

    /// The fields serde accepts for a struct, read from its unknown-field error.
    fn fields_of<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let e = serde_saphyr::from_str::<T>("zz_not_a_key: 1\n")
            .unwrap_err()
            .to_string();
        // "unknown field `x`, expected one of a, b, c" (first line).
        let first = e.lines().next().unwrap_or_default();
        let list = first
            .split("expected one of")
            .nth(1)
            .unwrap_or_else(|| panic!("{e}"));
        let mut v: Vec<String> = list
            .split(',')
            .map(|f| f.trim().trim_matches('`').to_string())
            .collect();
        v.sort();
        v
    }

    fn registered(scope: Scope) -> Vec<String> {
        let mut v: Vec<String> = of(scope).map(|k| k.name.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn keys_match_the_raw_structs() {
        use super::super::raw;
        assert_eq!(fields_of::<raw::RawGlobal>(), registered(Scope::Global));
        assert_eq!(fields_of::<raw::RawJail>(), registered(Scope::Jail));
        assert_eq!(fields_of::<raw::RawJournal>(), registered(Scope::Journal));
        assert_eq!(
            fields_of::<raw::RawIncrement>(),
            registered(Scope::Increment)
        );
        assert_eq!(fields_of::<raw::RawFilter>(), registered(Scope::Filter));
    }
}

#[cfg(test)]
mod constants {
    use super::*;

    /// Defaults that other modules keep as constants agree with the registry.
    #[test]
    fn module_constants_agree() {
        let jail = |n| key(Scope::Jail, n);
        let global = |n| key(Scope::Global, n);
        assert_eq!(
            jail("max_tracked").default_int() as usize,
            crate::jail::DEFAULT_MAX_TRACKED
        );
        assert_eq!(
            global("fail2ban_dir").default_text(),
            Some(crate::fail2ban::DEFAULT_DIR)
        );
        assert_eq!(
            global("socket").default_text().map(std::path::Path::new),
            Some(std::path::Path::new(crate::control::DEFAULT_SOCKET))
        );
        assert_eq!(
            key(Scope::Increment, "window").default_duration(),
            Some(7 * 86400)
        );
    }
}
