//! The `fleet:` block of `banwarden.yaml` and a jail's `fleet: shared|local`.
//!
//! Owns validating the Redis URL's form (`redis://`, `rediss://`,
//! `unix://`, with `user:password@`), the node name (default: the host
//! name) and the key prefix. It never connects: whether Redis answers is
//! `check`'s warning and the fleet link's business, never a config error.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Errors;

/// `fleet:` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub redis: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
}

/// A validated `fleet:` block.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The Redis URL as written (may hold a password: never log it; see
    /// [`FleetConfig::redacted`]).
    pub redis: String,
    /// This node's name in the fleet.
    pub node: String,
    /// Prefix of every key, so several fleets can share one Redis.
    pub prefix: String,
}

impl FleetConfig {
    /// The URL with any password replaced by `***`, for logs and status.
    pub fn redacted(&self) -> String {
        redact(&self.redis)
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("redis", &self.redacted())
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Whether a jail's bans and counts go to the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JailFleet {
    /// Counts and bans shared (the default when `fleet:` is configured).
    #[default]
    Shared,
    /// This node only, manual bans included.
    Local,
}

/// The URL with the password part of `user:password@` hidden.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            if auth.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => url.to_string(),
    }
}

/// Checks a Redis URL's form; the message says what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "must be a URL: redis://HOST[:PORT][/DB], rediss://HOST (TLS) or unix:///PATH".into(),
        );
    };
    match scheme {
        "redis" | "rediss" => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            let host = host.split('/').next().unwrap_or("");
            if host.is_empty() {
                return Err(format!("`{}` names no host", redact(url)));
            }
            // Check the rest with the client's own parser (TLS or not).
            let plain = format!("redis://{rest}");
            redis::Client::open(plain.as_str())
                .map(|_| ())
                .map_err(|e| format!("`{}`: {e}", redact(url)))
        }
        "unix" | "redis+unix" => {
            let path = rest.rsplit_once('@').map_or(rest, |(_, p)| p);
            let path = path.split('?').next().unwrap_or("");
            if !path.starts_with('/') {
                return Err(format!(
                    "`{}`: a unix socket needs an absolute path (unix:///run/redis/redis.sock)",
                    redact(url)
                ));
            }
            redis::Client::open(url)
                .map(|_| ())
                .map_err(|e| format!("`{}`: {e}", redact(url)))
        }
        other => Err(format!(
            "unknown scheme `{other}://`: use redis://, rediss:// (TLS) or unix://"
        )),
    }
}

/// This host's name, for `node`'s default.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn valid_word(s: &str, extra: &[char]) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(&c))
}

/// Builds the `fleet:` block of `banwarden.yaml` at `path`.
pub(super) fn build(
    path: &Path,
    raw: &Spanned<RawFleet>,
    errs: &mut Errors,
) -> Option<FleetConfig> {
    let before = errs.0.len();
    let redis = match &raw.value.redis {
        None => {
            errs.at(
                path,
                raw,
                "fleet.redis",
                "missing: the Redis URL every node of the fleet uses (redis://HOST:6379/0)",
            );
            String::new()
        }
        Some(u) => {
            if let Err(e) = check_url(&u.value) {
                errs.at(path, u, "fleet.redis", e);
            }
            u.value.clone()
        }
    };
    let node = match &raw.value.node {
        None => hostname(),
        Some(n) => {
            if !valid_word(&n.value, &[]) {
                errs.at(
                    path,
                    n,
                    "fleet.node",
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                );
            }
            n.value.clone()
        }
    };
    let prefix = match &raw.value.prefix {
        None => "banwarden".to_string(),
        Some(p) => {
            if !valid_word(&p.value, &[':']) {
                errs.at(
                    path,
                    p,
                    "fleet.prefix",
                    "must be 1-64 characters of A-Z a-z 0-9 . _ - :",
                );
            }
            p.value.clone()
        }
    };
    (errs.0.len() == before).then_some(FleetConfig {
        redis,
        node,
        prefix,
    })
}

/// A jail's `fleet:` value.
pub(super) fn jail_fleet(
    path: &Path,
    raw: Option<&Spanned<String>>,
    field: &str,
    errs: &mut Errors,
) -> JailFleet {
    match raw.map(|s| (s, s.value.as_str())) {
        None | Some((_, "shared")) => JailFleet::Shared,
        Some((_, "local")) => JailFleet::Local,
        Some((s, _)) => {
            errs.at(path, s, field, "must be shared or local");
            JailFleet::Shared
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "redis://user:secret@redis.example:6380/2",
            "redis://:secret@10.0.0.1",
            "rediss://redis.example:6380",
            "unix:///run/redis/redis.sock",
            "redis+unix:///run/redis/redis.sock",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:6379",
            "http://x",
            "redis://",
            "unix://relative.sock",
            "redis://host:notaport",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_shown() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://pw@h"), "redis://***@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let e = check_url("redis://u:topsecret@h:port").unwrap_err();
        assert!(!e.contains("topsecret"), "{e}");
    }
}
