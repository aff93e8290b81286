//! Webhook calls: one HTTP(S) POST per batch through a blocking `ureq`
//! agent on tokio's blocking pool, and the body template for ntfy- or
//! Slack-style payloads.
//!
//! Must never log or return in an error a header value or the URL's path
//! and query (Slack and Discord put the token there): errors name the host.

use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::{ActionEvent, CallError};
use crate::config::{ActionKind, ActionSpec};

pub(super) struct Webhook {
    agent: ureq::Agent,
    url: String,
    /// `scheme://host:port`, for messages.
    shown: String,
    headers: Vec<(String, String)>,
    pub content_type: String,
}

impl Webhook {
    pub fn new(spec: &ActionSpec) -> Webhook {
        let (url, headers, content_type, ca_certs) = match &spec.kind {
            ActionKind::Webhook {
                url,
                headers,
                content_type,
                ca_certs,
                ..
            } => (
                url.clone(),
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
                content_type.clone(),
                ca_certs.as_slice(),
            ),
            ActionKind::Exec { .. } => (String::new(), Vec::new(), String::new(), &[][..]),
        };
        let mut config = ureq::Agent::config_builder();
        if !ca_certs.is_empty() {
            // `ca_file:`: these CAs only, not the built-in web roots.
            let certs: Vec<_> = ca_certs
                .iter()
                .map(|der| Certificate::from_der(der).to_owned())
                .collect();
            config = config.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent = config
            .timeout_global(Some(spec.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("banwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Webhook {
            agent,
            shown: shown(&url),
            url,
            headers,
            content_type,
        }
    }

    pub async fn post(&self, body: Vec<u8>) -> Result<(), CallError> {
        let agent = self.agent.clone();
        let url = self.url.clone();
        let headers = self.headers.clone();
        let ct = self.content_type.clone();
        let shown = self.shown.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut req = agent.post(&url).header("content-type", &ct);
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.send(&body[..]) {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    classify(status, after, &shown)
                }
                Err(e) => {
                    let text = scrub(&e.to_string(), &url, &shown);
                    if text.contains("certificate") {
                        // Trying again cannot make an untrusted certificate good.
                        Err(CallError::Permanent {
                            message: format!("{shown}: TLS: {text} (a private CA or a self-signed endpoint: give its CA certificate with `ca_file:`)"),
                        })
                    } else {
                        Err(CallError::Retry {
                            message: format!("{shown}: {text}"),
                            after: None,
                        })
                    }
                }
            }
        })
        .await;
        result.unwrap_or_else(|e| {
            Err(CallError::Retry {
                message: format!("the HTTP call stopped: {e}"),
                after: None,
            })
        })
    }
}

/// 2xx: done; 408, 425, 429, 5xx: again later; other answers: never.
fn classify(status: u16, after: Option<Duration>, shown: &str) -> Result<(), CallError> {
    match status {
        200..=299 => Ok(()),
        408 | 425 | 429 | 500..=599 => Err(CallError::Retry {
            message: format!("{shown} answered HTTP {status}"),
            after,
        }),
        _ => Err(CallError::Permanent {
            message: format!("{shown} answered HTTP {status}"),
        }),
    }
}

/// `https://host:port` of a URL, without user info, path or query.
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

fn scrub(message: &str, url: &str, shown: &str) -> String {
    message.replace(url, shown)
}

/// Fills a template: `{event}`, `{jail}`, `{count}`, `{addresses}` (comma
/// separated), `{first}` (the first address), `{expires}` (the first
/// event's expiry, or `never`). Values are JSON-escaped when the content
/// type is JSON, so `{"text": "{addresses} banned"}` stays valid.
pub(super) fn render(template: &str, content_type: &str, events: &[ActionEvent]) -> String {
    let json = content_type.contains("json");
    let esc = |s: &str| {
        if json {
            let q = serde_json::to_string(s).unwrap_or_default();
            q[1..q.len().saturating_sub(1).max(1)].to_string()
        } else {
            s.to_string()
        }
    };
    let first = events.first();
    let mut jails: Vec<&str> = events.iter().map(|e| e.jail.as_str()).collect();
    jails.dedup();
    let mut kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    kinds.dedup();
    let addresses: Vec<&str> = events.iter().map(|e| e.address.as_str()).collect();
    let values = [
        ("{event}", kinds.join(",")),
        ("{jail}", jails.join(",")),
        ("{count}", events.len().to_string()),
        ("{addresses}", addresses.join(", ")),
        (
            "{first}",
            first.map(|e| e.address.clone()).unwrap_or_default(),
        ),
        (
            "{expires}",
            first
                .and_then(|e| e.expires.clone())
                .unwrap_or_else(|| "never".into()),
        ),
    ];
    // One pass, so a value containing `{jail}` is not expanded again.
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        for (k, v) in &values {
            if let Some(after) = tail.strip_prefix(k) {
                out.push_str(&esc(v));
                rest = after;
                continue 'outer;
            }
        }
        out.push('{');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_keeps_only_scheme_and_host() {
        assert_eq!(
            shown("https://user:pw@hooks.example.com:8443/services/T0/B0/secret?x=1"),
            "https://hooks.example.com:8443"
        );
    }

    #[test]
    fn statuses_are_classified() {
        assert!(classify(204, None, "h").is_ok());
        assert!(matches!(
            classify(429, None, "h"),
            Err(CallError::Retry { .. })
        ));
        assert!(matches!(
            classify(503, None, "h"),
            Err(CallError::Retry { .. })
        ));
        assert!(matches!(
            classify(401, None, "h"),
            Err(CallError::Permanent { .. })
        ));
    }
}
