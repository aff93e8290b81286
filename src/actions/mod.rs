//! Actions: the webhooks and commands a jail runs on ban and unban events.
//!
//! Owns one task per configured action, fed by a bounded channel: events
//! wait up to `batch_wait` for company (at most `batch_max` in one call),
//! calls are at least `min_interval` apart, and a failed call is retried
//! with doubling backoff (at least what a `Retry-After` asks). The daemon
//! only ever `try_send`s: a slow or dead endpoint never delays a ban, and
//! when an action's queue is full new events for it are dropped and counted.
//!
//! Must not touch the firewall, the store or jail state, and must never log
//! header values or full webhook URLs (they carry tokens).

mod exec;
mod webhook;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{ActionKind, ActionSpec, Config};
use crate::events::{ActionDelivered, ActionFailed, ActionQueueFull, ActionRetrying};
use crate::UnixTime;

/// Longest wait between two attempts, whatever the backoff or Retry-After.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest matched line carried in an event, bytes.
pub const MAX_LINE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Ban,
    Unban,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ban => "ban",
            EventKind::Unban => "unban",
        }
    }
}

/// One ban or unban, as actions receive it (the JSON schema of a batch's
/// `events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionEvent {
    pub event: EventKind,
    pub jail: String,
    /// The address, or the network for a prefix ban (`2001:db8::/64`).
    pub address: String,
    /// RFC 3339, UTC.
    pub banned_at: String,
    /// RFC 3339, UTC; `null`: permanent.
    pub expires: Option<String>,
    /// Ban length in seconds; `null`: permanent.
    pub bantime: Option<i64>,
    /// Failures in the window when the ban was decided (0 for manual bans
    /// and unbans).
    pub failures: u32,
    /// Which ban of this address this is (escalation).
    pub ban_count: u32,
    /// The last failure lines of the address (at most the jail's
    /// `maxmatches`, 10 by default; the one that triggered the ban last;
    /// each at most 1 KiB).
    pub lines: Vec<String>,
    /// Unbans: `expiry` or `manual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ActionEvent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        event: EventKind,
        jail: &str,
        net: IpNet,
        banned_at: UnixTime,
        expires: Option<UnixTime>,
        failures: u32,
        ban_count: u32,
        lines: Vec<String>,
    ) -> ActionEvent {
        let address = if net.prefix_len() == net.max_prefix_len() {
            net.addr().to_string()
        } else {
            net.to_string()
        };
        ActionEvent {
            event,
            jail: jail.to_string(),
            address,
            banned_at: rfc3339(banned_at),
            expires: expires.map(rfc3339),
            bantime: expires.map(|e| e - banned_at),
            failures,
            ban_count,
            lines,
            cause: None,
        }
    }
}

fn rfc3339(t: UnixTime) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// What one call sends: the JSON body of a webhook, stdin of a command.
#[derive(Debug, Serialize)]
pub struct Batch<'a> {
    pub version: u32,
    pub action: &'a str,
    pub events: &'a [ActionEvent],
}

/// How a call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// Worth trying again (network error, timeout, 5xx, 429, a command's
    /// non-zero exit); `after`: the server's Retry-After.
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Trying again would fail the same way (a 4xx answer).
    #[error("{message}")]
    Permanent { message: String },
}

/// Calls delivered and failed, per action, since start (status, metrics, tests).
#[derive(Debug, Default)]
pub struct ActionCounters {
    pub calls_ok: AtomicU64,
    pub calls_failed: AtomicU64,
    pub events_sent: AtomicU64,
    /// Events dropped: queue full, or retries exhausted.
    pub events_dropped: AtomicU64,
}

struct Running {
    jail: String,
    spec: ActionSpec,
    tx: mpsc::Sender<ActionEvent>,
    counters: Arc<ActionCounters>,
    task: JoinHandle<()>,
}

/// Failure lines a ban event carries when the jail does not say
/// (`maxmatches`'s default).
const DEFAULT_MAX_LINES: usize = 10;

/// The daemon's handle on every action task.
#[derive(Default)]
pub struct Actions {
    running: Vec<Running>,
    /// Last time a full queue was logged, per action.
    full_logged: HashMap<(String, String), Instant>,
    /// Most failure lines a ban event carries, per jail (`maxmatches`).
    maxmatches: HashMap<String, usize>,
}

impl Actions {
    /// Starts the actions of the enabled jails of `config` (in a runtime).
    pub fn start(config: &Config) -> Actions {
        let mut a = Actions::default();
        a.reconfigure(config);
        a
    }

    /// Keeps the tasks whose jail and settings are unchanged, starts new ones
    /// and lets removed ones finish what they hold.
    pub fn reconfigure(&mut self, config: &Config) {
        let mut old = std::mem::take(&mut self.running);
        self.maxmatches = config
            .enabled_jails()
            .map(|jc| (jc.name.clone(), jc.maxmatches))
            .collect();
        for jc in config.enabled_jails() {
            for spec in &jc.actions {
                if let Some(i) = old
                    .iter()
                    .position(|r| r.jail == jc.name && &r.spec == spec)
                {
                    self.running.push(old.swap_remove(i));
                } else {
                    self.running.push(spawn(&jc.name, spec.clone()));
                }
            }
        }
        // Dropping a sender ends its task once the queue is delivered.
    }

    /// Whether any action of `jail` wants `kind` events.
    pub fn wants(&self, jail: &str, kind: EventKind) -> bool {
        self.running
            .iter()
            .any(|r| r.jail == jail && r.spec.wants(kind))
    }

    /// Most failure lines a ban event of `jail` carries (its `maxmatches`;
    /// 10 for a jail the configuration does not know).
    pub fn max_lines(&self, jail: &str) -> usize {
        self.maxmatches
            .get(jail)
            .copied()
            .unwrap_or(DEFAULT_MAX_LINES)
    }

    /// The most lines any jail with ban actions wants kept per address.
    pub fn max_lines_kept(&self) -> usize {
        self.running
            .iter()
            .filter(|r| r.spec.wants(EventKind::Ban))
            .map(|r| self.max_lines(&r.jail))
            .max()
            .unwrap_or(0)
    }

    /// Whether any action wants `kind` events.
    pub fn any(&self, kind: EventKind) -> bool {
        self.running.iter().any(|r| r.spec.wants(kind))
    }

    /// Queues `ev` for the actions of its jail; never waits.
    pub fn notify(&mut self, ev: &ActionEvent) {
        for r in self.running.iter().filter(|r| r.jail == ev.jail) {
            if !r.spec.wants(ev.event) {
                continue;
            }
            if r.tx.try_send(ev.clone()).is_err() {
                let key = (r.jail.clone(), r.spec.name.clone());
                let now = Instant::now();
                let last = self.full_logged.get(&key);
                let log = last.is_none_or(|l| now.duration_since(*l) >= Duration::from_secs(60));
                if log {
                    self.full_logged.insert(key, now);
                }
                ActionQueueFull {
                    jail: &r.jail,
                    action: &r.spec.name,
                    queue: r.spec.queue,
                    log,
                }
                .emit(&r.counters);
            }
        }
    }

    /// Counters per (jail, action).
    pub fn counters(&self) -> Vec<(String, String, Arc<ActionCounters>)> {
        self.running
            .iter()
            .map(|r| (r.jail.clone(), r.spec.name.clone(), Arc::clone(&r.counters)))
            .collect()
    }

    /// Stops taking events and gives the tasks up to `grace` to deliver
    /// what they hold (shutdown).
    pub async fn close(self, grace: Duration) {
        let tasks: Vec<JoinHandle<()>> = self.running.into_iter().map(|r| r.task).collect();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("actions still pending at shutdown were dropped");
        }
    }
}

impl ActionSpec {
    fn wants(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Ban => self.on_ban,
            EventKind::Unban => self.on_unban,
        }
    }
}

fn spawn(jail: &str, spec: ActionSpec) -> Running {
    let (tx, rx) = mpsc::channel(spec.queue);
    let counters = Arc::new(ActionCounters::default());
    let task = tokio::spawn(run(
        jail.to_string(),
        spec.clone(),
        rx,
        Arc::clone(&counters),
    ));
    Running {
        jail: jail.to_string(),
        spec,
        tx,
        counters,
        task,
    }
}

/// Backoff before attempt `n` (1 = first retry): `backoff * 2^(n-1)`, at
/// least what the server asked, at most [`MAX_BACKOFF`].
pub fn retry_delay(backoff: Duration, n: u32, asked: Option<Duration>) -> Duration {
    let doubled = backoff.saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
    doubled.max(asked.unwrap_or_default()).min(MAX_BACKOFF)
}

/// One action's task: batch, rate-limit, call, retry.
async fn run(
    jail: String,
    spec: ActionSpec,
    mut rx: mpsc::Receiver<ActionEvent>,
    counters: Arc<ActionCounters>,
) {
    let caller = Caller::new(&spec);
    let mut last_call: Option<Instant> = None;
    let mut closed = false;
    while !closed {
        let Some(first) = rx.recv().await else { break };
        let mut batch = vec![first];
        let deadline = Instant::now() + spec.batch_wait;
        while batch.len() < spec.batch_max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => batch.push(ev),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut attempt = 0u32;
        loop {
            if let Some(l) = last_call {
                tokio::time::sleep_until(l + spec.min_interval).await;
            }
            last_call = Some(Instant::now());
            let result = caller.call(&spec, &batch).await;
            match result {
                Ok(()) => {
                    ActionDelivered {
                        jail: &jail,
                        action: &spec.name,
                        events: batch.len(),
                    }
                    .emit(&counters);
                    break;
                }
                Err(e) => {
                    let after = match &e {
                        CallError::Retry { after, .. } if attempt < spec.retries => *after,
                        _ => {
                            ActionFailed {
                                jail: &jail,
                                action: &spec.name,
                                events: batch.len(),
                                attempts: attempt + 1,
                                error: &e,
                            }
                            .emit(&counters);
                            break;
                        }
                    };
                    attempt += 1;
                    let wait = retry_delay(spec.backoff, attempt, after);
                    ActionRetrying {
                        jail: &jail,
                        action: &spec.name,
                        attempt,
                        retry_in: wait,
                        error: &e,
                    }
                    .emit(&counters);
                    tokio::time::sleep(wait).await;
                    // Events that came meanwhile ride along.
                    while batch.len() < spec.batch_max {
                        match rx.try_recv() {
                            Ok(ev) => batch.push(ev),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }
}

/// What an action calls, set up once.
enum Caller {
    Webhook(webhook::Webhook),
    Exec,
}

impl Caller {
    fn new(spec: &ActionSpec) -> Caller {
        match &spec.kind {
            ActionKind::Webhook { .. } => Caller::Webhook(webhook::Webhook::new(spec)),
            ActionKind::Exec { .. } => Caller::Exec,
        }
    }

    async fn call(&self, spec: &ActionSpec, events: &[ActionEvent]) -> Result<(), CallError> {
        let batch = Batch {
            version: 1,
            action: &spec.name,
            events,
        };
        let json = serde_json::to_vec(&batch).map_err(|e| CallError::Permanent {
            message: format!("cannot encode the batch: {e}"),
        })?;
        match (&spec.kind, self) {
            (ActionKind::Webhook { template, .. }, Caller::Webhook(w)) => {
                let body = match template {
                    Some(t) => webhook::render(t, &w.content_type, events).into_bytes(),
                    None => json,
                };
                w.post(body).await
            }
            (ActionKind::Exec { argv }, _) => exec::run(argv, &json, spec.timeout).await,
            _ => Err(CallError::Permanent {
                message: "action kind changed".into(),
            }),
        }
    }
}

/// The text of line `index` (0-based) of a chunk of lines, lossy UTF-8, at
/// most [`MAX_LINE`] bytes, without its newline.
pub fn nth_line(data: &[u8], index: u32) -> Option<String> {
    let line = data.split(|&b| b == b'\n').nth(index as usize)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let cut = &line[..line.len().min(MAX_LINE)];
    Some(String::from_utf8_lossy(cut).into_owned())
}

#[cfg(test)]
mod tests;
