//! The `fleet:` block of `banwarden.yaml` and a jail's `fleet: shared|local`.
//!
//! Owns validating the Redis URL's form (`redis://`, `rediss://`,
//! `unix://`, with `user:password@`), the node name (default: the host
//! name), the key prefix and, for `rediss://`, the CA to trust and the
//! client certificate (`ca_file`, `cert_file`, `key_file`: read and parsed
//! here, so `check` reports a bad file). It never connects: whether Redis
//! answers is `check`'s warning and the fleet link's business, never a
//! config error.

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
    /// PEM file of the CA(s) to trust for `rediss://` (default: the system's).
    pub ca_file: Option<Spanned<String>>,
    /// PEM client certificate for `rediss://` (Redis' `tls-auth-clients`).
    pub cert_file: Option<Spanned<String>>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<Spanned<String>>,
}

/// The PEM contents for a `rediss://` link, read when the config is built.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FleetTls {
    /// CA certificates to trust instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and key, both or neither.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
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
    /// Files for `rediss://` (`None`: system roots, no client certificate).
    pub tls: Option<FleetTls>,
}

impl FleetConfig {
    /// The URL with any password replaced by `***`, for logs and status.
    pub fn redacted(&self) -> String {
        redact(&self.redis)
    }

    /// The Redis client for this block (TLS files applied).
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        client(&self.redis, self.tls.as_ref())
    }
}

/// A client for `url`, with the CA and client certificate of `tls`.
fn client(url: &str, tls: Option<&FleetTls>) -> redis::RedisResult<redis::Client> {
    match tls {
        None => redis::Client::open(url),
        Some(t) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: t.client.as_ref().map(|(c, k)| redis::ClientTlsConfig {
                    client_cert: c.clone(),
                    client_key: k.clone(),
                }),
                root_cert: t.ca.clone(),
            },
        ),
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("redis", &self.redacted())
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls.is_some())
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
            if scheme == "rediss" && rest.contains("#insecure") {
                return Err(format!(
                    "`{}`: #insecure (no certificate check) is not supported; trust a private CA with fleet.ca_file",
                    redact(url)
                ));
            }
            // The client's own parser (this build speaks TLS).
            redis::Client::open(url)
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
    let tls = tls(path, raw, &redis, errs);
    (errs.0.len() == before).then_some(FleetConfig {
        redis,
        node,
        prefix,
        tls,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads `ca_file`, `cert_file` and `key_file` (relative to the directory
/// of `banwarden.yaml`) and lets the client parse them.
fn tls(path: &Path, raw: &Spanned<RawFleet>, url: &str, errs: &mut Errors) -> Option<FleetTls> {
    let r = &raw.value;
    let [ca, cert, key] = [&r.ca_file, &r.cert_file, &r.key_file];
    let any = [ca, cert, key].into_iter().flatten().next()?;
    if !url.starts_with("rediss://") {
        let field = [("ca_file", ca), ("cert_file", cert), ("key_file", key)]
            .into_iter()
            .find_map(|(n, f)| f.as_ref().map(|_| n))
            .unwrap_or("ca_file");
        errs.at(
            path,
            any,
            &format!("fleet.{field}"),
            "TLS files need a rediss:// URL in fleet.redis",
        );
        return None;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let before = errs.0.len();
    let mut read = |name: &str, f: &Option<Spanned<String>>| -> Option<Vec<u8>> {
        let f = f.as_ref()?;
        match std::fs::read(dir.join(&f.value)) {
            Ok(b) if name != "key_file" && !contains(&b, b"-----BEGIN CERTIFICATE-----") => {
                let msg = format!(
                    "`{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    f.value
                );
                errs.at(path, f, &format!("fleet.{name}"), msg);
                None
            }
            Ok(b) => Some(b),
            Err(e) => {
                errs.at(
                    path,
                    f,
                    &format!("fleet.{name}"),
                    format!("cannot read `{}`: {e}", f.value),
                );
                None
            }
        }
    };
    let tls = FleetTls {
        ca: read("ca_file", ca),
        client: match (read("cert_file", cert), read("key_file", key)) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        },
    };
    if errs.0.len() != before {
        return None;
    }
    match (cert, key) {
        (Some(c), None) => errs.at(
            path,
            c,
            "fleet.key_file",
            "missing: cert_file needs its private key",
        ),
        (None, Some(k)) => errs.at(
            path,
            k,
            "fleet.cert_file",
            "missing: key_file needs its certificate",
        ),
        _ => {}
    }
    if let Err(e) = client(url, Some(&tls)) {
        // Which file the client could not use, if the message says.
        let e = e.to_string();
        let (field, span) = if e.contains("root") || e.contains("trust") {
            ("ca_file", ca)
        } else if e.contains("private key") {
            ("key_file", key)
        } else if e.contains("client certificate") || e.contains("TLS parameters") {
            ("cert_file", cert)
        } else {
            ("ca_file", ca)
        };
        let span = span.as_ref().unwrap_or(any);
        errs.at(path, span, &format!("fleet.{field}"), e);
        return None;
    }
    Some(tls)
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
            "rediss://redis.example:6380/#insecure",
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
