//! A jail's `actions:` list (webhooks and commands run on ban and unban
//! events) and its `health:` settings: the YAML as written and the
//! validated [`ActionSpec`] / [`HealthSpec`] the daemon runs.
//!
//! Owns reading and validating these keys (every error at file:line), and
//! reading header secrets from the environment or a file at load time. It
//! must not run anything: `crate::actions` does that.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::raw::Scalar;
use super::Errors;

/// One entry of `actions:` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// Shown in logs and metrics; default `webhook-N` / `exec-N`.
    pub name: Option<Spanned<String>>,
    /// `webhook: https://host/path`: POST the batch there.
    pub webhook: Option<Spanned<String>>,
    /// `exec: [/path/prog, arg]`: run it with the batch on stdin.
    pub exec: Option<Spanned<Vec<String>>>,
    /// `[ban, unban]` (default both).
    pub on: Option<Spanned<Vec<String>>>,
    /// Webhook headers: a literal, or `{env: VAR}` / `{file: PATH}` with an
    /// optional `prefix` (`"Bearer "`); a relative file is relative to the
    /// config directory.
    pub headers: Option<BTreeMap<String, Spanned<RawSecret>>>,
    /// Webhook body template instead of the JSON batch.
    pub template: Option<Spanned<String>>,
    pub content_type: Option<Spanned<String>>,
    /// Webhook over https: trust only the CA certificates of this PEM file
    /// (a private CA, a self-signed endpoint) instead of the built-in roots;
    /// a relative path is relative to the config directory.
    pub ca_file: Option<Spanned<String>>,
    pub batch_max: Option<Spanned<i64>>,
    pub batch_wait: Option<Spanned<Scalar>>,
    pub min_interval: Option<Spanned<Scalar>>,
    pub retries: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<Scalar>>,
    pub queue: Option<Spanned<i64>>,
}

/// A header value: literal text or a secret read from elsewhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Text(String),
    From(RawSecretFrom),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretFrom {
    pub env: Option<String>,
    pub file: Option<String>,
    pub prefix: Option<String>,
}

/// `health:` of a jail as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `7d` (default), or `off`.
    pub after: Option<Spanned<Scalar>>,
    /// Share of matched lines without a date above which the filter is
    /// flagged (default 0.5).
    pub undated_ratio: Option<Spanned<f64>>,
}

/// A header value that never appears in Debug output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    Webhook {
        url: String,
        headers: Vec<(String, Secret)>,
        /// `{event}`, `{jail}`, `{count}`, `{addresses}`, `{first}` are
        /// replaced; JSON-escaped when the content type is JSON.
        template: Option<String>,
        content_type: String,
        /// `ca_file:`'s certificates (DER), read at load time; empty: the
        /// built-in web roots.
        ca_certs: Vec<Vec<u8>>,
    },
    Exec {
        argv: Vec<String>,
    },
}

/// One validated action of a jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: String,
    pub kind: ActionKind,
    pub on_ban: bool,
    pub on_unban: bool,
    /// Most events in one call.
    pub batch_max: usize,
    /// How long the first event of a batch waits for company.
    pub batch_wait: Duration,
    /// Least time between two calls (rate limit).
    pub min_interval: Duration,
    /// Further attempts after a failed call.
    pub retries: u32,
    /// Wait before the first retry; doubles each time (at most 5 minutes).
    pub backoff: Duration,
    /// Per call: HTTP request or command run.
    pub timeout: Duration,
    /// Most events waiting; older ones are dropped beyond it.
    pub queue: usize,
}

/// Validated `health:` of a jail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSpec {
    /// `None`: health checks off.
    pub after: Option<Duration>,
    pub undated_ratio: f64,
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            after: Some(Duration::from_secs(7 * 86_400)),
            undated_ratio: 0.5,
        }
    }
}

/// `500ms`, `2s`, `1m`, or seconds; at least 1 ms.
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let span: jiff::Span = s
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 500ms, 2s, 1m"))?;
    let ms = span
        .total((
            jiff::Unit::Millisecond,
            jiff::SpanRelativeTo::days_are_24_hours(),
        ))
        .map_err(|_| format!("`{s}`: use milliseconds to days"))?;
    if ms < 0.0 {
        return Err(format!("`{s}`: a duration cannot be negative"));
    }
    Ok(Duration::from_millis(ms as u64))
}

pub(super) fn build_health(
    raw: Option<&Spanned<RawHealth>>,
    file: &Path,
    field: &str,
    errs: &mut Errors,
) -> HealthSpec {
    let mut h = HealthSpec::default();
    let Some(raw) = raw else { return h };
    if let Some(a) = &raw.value.after {
        let text = a.value.to_string();
        if text == "off" {
            h.after = None;
        } else {
            match parse_millis(&text) {
                Ok(d) if d >= Duration::from_secs(1) => h.after = Some(d),
                Ok(_) => errs.at(file, a, &format!("{field}.after"), "at least 1s"),
                Err(e) => errs.at(file, a, &format!("{field}.after"), e),
            }
        }
    }
    if let Some(r) = &raw.value.undated_ratio {
        if (0.0..=1.0).contains(&r.value) {
            h.undated_ratio = r.value;
        } else {
            errs.at(
                file,
                r,
                &format!("{field}.undated_ratio"),
                "must be between 0 and 1",
            );
        }
    }
    h
}

/// Validates a jail's `actions:`; secrets are read now, so `check` reports
/// a missing variable or unreadable file.
pub(super) fn build_actions(
    list: &Spanned<Vec<Spanned<RawAction>>>,
    dir: &Path,
    file: &Path,
    field: &str,
    notes: &mut Vec<String>,
    errs: &mut Errors,
) -> Vec<ActionSpec> {
    let mut out = Vec::new();
    for (i, a) in list.value.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(spec) = build_action(a, i, dir, file, &f, errs) {
            if let ActionKind::Exec { argv } = &spec.kind {
                if let (Some(p), Some(span)) = (argv.first(), &a.value.exec) {
                    if !is_executable(Path::new(p)) {
                        notes.push(format!(
                            "{}:{}:{}: {f}.exec: `{p}` is not an executable file (yet): the action fails until it is",
                            file.display(),
                            span.referenced.line(),
                            span.referenced.column()
                        ));
                    }
                }
            }
            if out.iter().any(|o: &ActionSpec| o.name == spec.name) {
                errs.at(
                    file,
                    a,
                    &f,
                    format!("a second action named `{}`", spec.name),
                );
            }
            out.push(spec);
        }
    }
    out
}

fn build_action(
    a: &Spanned<RawAction>,
    i: usize,
    dir: &Path,
    file: &Path,
    f: &str,
    errs: &mut Errors,
) -> Option<ActionSpec> {
    let before = errs.0.len();
    let r = &a.value;
    let sub = |k: &str| format!("{f}.{k}");
    let kind = match (&r.webhook, &r.exec) {
        (Some(url), None) => {
            let u = url.value.trim();
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                errs.at(
                    file,
                    url,
                    &sub("webhook"),
                    "must be an http:// or https:// URL",
                );
            }
            let mut headers = Vec::new();
            for (name, v) in r.headers.iter().flatten() {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                    errs.at(
                        file,
                        v,
                        &sub("headers"),
                        format!("`{name}` is not a header name"),
                    );
                    continue;
                }
                match secret(&v.value, dir) {
                    Ok(s) => headers.push((name.clone(), s)),
                    Err(e) => errs.at(file, v, &format!("{f}.headers.{name}"), e),
                }
            }
            let content_type = r.content_type.as_ref().map_or_else(
                || {
                    if r.template.is_some() {
                        "text/plain; charset=utf-8".to_string()
                    } else {
                        "application/json".to_string()
                    }
                },
                |c| c.value.clone(),
            );
            let ca_certs = match &r.ca_file {
                None => Vec::new(),
                Some(path) if !u.starts_with("https://") => {
                    errs.at(
                        file,
                        path,
                        &sub("ca_file"),
                        "only an https:// webhook checks certificates",
                    );
                    Vec::new()
                }
                Some(path) => ca_certs(&dir.join(&path.value)).unwrap_or_else(|e| {
                    errs.at(file, path, &sub("ca_file"), e);
                    Vec::new()
                }),
            };
            ActionKind::Webhook {
                url: u.to_string(),
                headers,
                template: r.template.as_ref().map(|t| t.value.clone()),
                content_type,
                ca_certs,
            }
        }
        (None, Some(argv)) => {
            match argv.value.first() {
                None => errs.at(
                    file,
                    argv,
                    &sub("exec"),
                    "needs a program: [/path/prog, args...]",
                ),
                Some(p) if !Path::new(p).is_absolute() => errs.at(
                    file,
                    argv,
                    &sub("exec"),
                    format!("`{p}`: give the program's absolute path (no shell, no PATH search)"),
                ),
                Some(_) => {}
            }
            for (k, v) in [
                ("headers", r.headers.is_some()),
                ("template", r.template.is_some()),
                ("ca_file", r.ca_file.is_some()),
            ] {
                if v {
                    errs.at(file, a, &sub(k), "only webhooks take this key");
                }
            }
            ActionKind::Exec {
                argv: argv.value.clone(),
            }
        }
        _ => {
            errs.at(
                file,
                a,
                f,
                "give exactly one of `webhook: URL` or `exec: [PROGRAM, ARGS...]`",
            );
            return None;
        }
    };
    let (mut on_ban, mut on_unban) = (true, true);
    if let Some(on) = &r.on {
        on_ban = false;
        on_unban = false;
        for e in &on.value {
            match e.as_str() {
                "ban" => on_ban = true,
                "unban" => on_unban = true,
                _ => errs.at(
                    file,
                    on,
                    &sub("on"),
                    format!("`{e}`: events are ban and unban"),
                ),
            }
        }
    }
    let mut count = |v: &Option<Spanned<i64>>, k: &str, min: i64, max: i64, default: i64| match v {
        None => default,
        Some(n) if (min..=max).contains(&n.value) => n.value,
        Some(n) => {
            errs.at(file, n, &sub(k), format!("must be between {min} and {max}"));
            default
        }
    };
    let batch_max = count(&r.batch_max, "batch_max", 1, 10_000, 100) as usize;
    let retries = count(&r.retries, "retries", 0, 100, 5) as u32;
    let queue = count(&r.queue, "queue", 1, 1_000_000, 10_000) as usize;
    let mut dur = |v: &Option<Spanned<Scalar>>, k: &str, default: Duration| match v {
        None => default,
        Some(d) => match parse_millis(&d.value.to_string()) {
            Ok(x) => x,
            Err(e) => {
                errs.at(file, d, &sub(k), e);
                default
            }
        },
    };
    let batch_wait = dur(&r.batch_wait, "batch_wait", Duration::from_secs(2));
    let min_interval = dur(&r.min_interval, "min_interval", Duration::from_secs(1));
    let backoff = dur(&r.backoff, "backoff", Duration::from_secs(2));
    let timeout = dur(&r.timeout, "timeout", Duration::from_secs(10));
    if timeout.is_zero() {
        if let Some(t) = &r.timeout {
            errs.at(file, t, &sub("timeout"), "must be more than 0");
        }
    }
    let name = match &r.name {
        Some(n) if super::values::valid_name(&n.value) => n.value.clone(),
        Some(n) => {
            errs.at(
                file,
                n,
                &sub("name"),
                "1-32 characters of A-Z a-z 0-9 _ -, starting with a letter",
            );
            String::new()
        }
        None => match kind {
            ActionKind::Webhook { .. } => format!("webhook-{i}"),
            ActionKind::Exec { .. } => format!("exec-{i}"),
        },
    };
    if errs.0.len() > before {
        return None;
    }
    Some(ActionSpec {
        name,
        kind,
        on_ban,
        on_unban,
        batch_max,
        batch_wait,
        min_interval,
        retries,
        backoff,
        timeout,
        queue,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The certificates of a PEM file, DER-encoded; an error when it cannot be
/// read or holds none.
fn ca_certs(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(format!("`{shown}` is not valid PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "`{shown}` holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A secret's value; a relative `file` is relative to the config directory.
fn secret(v: &RawSecret, dir: &Path) -> Result<Secret, String> {
    match v {
        RawSecret::Text(t) => Ok(Secret(t.clone())),
        RawSecret::From(from) => {
            let prefix = from.prefix.clone().unwrap_or_default();
            let value = match (&from.env, &from.file) {
                (Some(var), None) => std::env::var(var).map_err(|_| {
                    format!("environment variable `{var}` is not set (or not UTF-8)")
                })?,
                (None, Some(path)) => std::fs::read_to_string(dir.join(path))
                    .map_err(|e| format!("cannot read `{path}`: {e}"))?
                    .trim()
                    .to_string(),
                _ => return Err("give exactly one of `env: VAR` or `file: PATH`".into()),
            };
            if value.is_empty() || value.contains(['\r', '\n']) {
                return Err("the secret is empty or spans several lines".into());
            }
            Ok(Secret(format!("{prefix}{value}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn dir_with(jail: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tmp");
        let w = |p: &str, t: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, t).expect("write");
        };
        w(
            "filters/app.yaml",
            "failregex:\n  - '^Login failure <HOST>$'\n",
        );
        w("app.log", "");
        w(
            "jails/app.yaml",
            &format!("app:\n  enabled: true\n  filter: app\n  logpath: app.log\n{jail}"),
        );
        d
    }

    fn load(d: &Path) -> Result<crate::config::Config, String> {
        crate::config::load(d).map_err(|e| e.to_string())
    }

    #[test]
    fn actions_and_health_load_with_secrets_read_from_file_and_env() {
        let d = dir_with("");
        let token = d.path().join("token");
        std::fs::write(&token, "s3cret\n").expect("token");
        let var = format!("BANWARDEN_TEST_TOKEN_{}", std::process::id());
        std::env::set_var(&var, "from-env");
        let d2 = dir_with(&format!(
            "  health: {{after: 2s, undated_ratio: 0.8}}\n  actions:\n    - webhook: https://ntfy.example/topic\n      headers:\n        Authorization: {{file: {}, prefix: 'Bearer '}}\n        X-Rel: {{file: token}}\n        X-Env: {{env: {var}}}\n        X-Title: banwarden\n      batch_wait: 500ms\n    - name: report\n      exec: [/usr/local/bin/report, --x]\n      on: [ban]\n      timeout: 30s\n",
            token.display()
        ));
        std::fs::write(d2.path().join("token"), "relative").expect("token");
        let c = load(d2.path()).expect("valid");
        let j = c.jail("app").expect("jail");
        assert_eq!(j.health.after, Some(Duration::from_secs(2)));
        assert_eq!(j.actions.len(), 2);
        let ActionKind::Webhook { headers, .. } = &j.actions[0].kind else {
            panic!("webhook expected")
        };
        assert_eq!(
            headers[0],
            ("Authorization".into(), Secret("Bearer s3cret".into()))
        );
        assert_eq!(headers[1].1, Secret("from-env".into()));
        assert_eq!(headers[2], ("X-Rel".into(), Secret("relative".into())));
        assert_eq!(j.actions[0].batch_wait, Duration::from_millis(500));
        assert_eq!(j.actions[0].name, "webhook-0");
        assert!(
            !format!("{:?}", j.actions[0]).contains("s3cret"),
            "secrets leak into Debug"
        );
        assert_eq!(j.actions[1].name, "report");
        assert!(j.actions[1].on_ban && !j.actions[1].on_unban);
        assert!(
            c.notes.iter().any(|n| n.contains("app.yaml:15:13: app.actions[1].exec: `/usr/local/bin/report` is not an executable file")),
            "{:?}",
            c.notes
        );
        let plain = load(d.path()).expect("valid");
        assert_eq!(
            plain.jail("app").expect("jail").health,
            HealthSpec::default()
        );
    }

    #[test]
    fn bad_actions_are_located_at_file_and_line() {
        let d = dir_with(
            "  actions:\n    - webhook: ftp://x\n    - exec: [report.sh]\n    - webhook: https://a.example/\n      exec: [/bin/true]\n    - webhook: https://b.example/\n      headers:\n        Authorization: {env: BANWARDEN_SURELY_UNSET_VAR}\n      retries: -1\n  health: {after: soon}\n",
        );
        let e = load(d.path()).expect_err("invalid");
        for want in [
            "app.yaml:6:16: app.actions[0].webhook: must be an http:// or https:// URL",
            "app.yaml:7:13: app.actions[1].exec: `report.sh`: give the program's absolute path",
            "app.yaml:8:7: app.actions[2]: give exactly one of",
            "app.yaml:12:24: app.actions[3].headers.Authorization: environment variable `BANWARDEN_SURELY_UNSET_VAR` is not set",
            "app.yaml:13:16: app.actions[3].retries: must be between 0 and 100",
            "app.health.after: `soon` is not a duration",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }
}
