//! Prometheus metrics: the counters and gauges the daemon updates, their
//! rendering as OpenMetrics text; `http` serves them at `GET /metrics`.
//!
//! This module owns the metric series and the scrape endpoint
//! (`metrics_listen`, off by default). It must not:
//!
//! - label any series with an address (or anything else unbounded): the
//!   label values are jail names, filter names and small fixed sets, so the
//!   number of series stays bounded by the configuration;
//! - block the engine: updates are atomic adds behind a read lock (a write
//!   lock only the first time a label set is seen), and scrapes, slow or
//!   hostile clients are handled in their own tasks with a size cap and
//!   timeouts;
//! - decide anything: it only counts what the engine reports.
//!
//! # Series
//!
//! | series | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `banwarden_lines_read_total` | counter | `jail`, `filter` | lines read from the jail's sources and given to the filter |
//! | `banwarden_lines_matched_total` | counter | `jail`, `filter` | lines a failure regex matched |
//! | `banwarden_lines_ignored_total` | counter | `jail`, `filter` | lines an ignore regex matched (not counted as failures) |
//! | `banwarden_failures_total` | counter | `jail` | failures counted against an address |
//! | `banwarden_bans_total` | counter | `jail` | bans issued |
//! | `banwarden_unbans_total` | counter | `jail`, `cause` = `expiry`, `manual`, `reload` | bans lifted, by cause |
//! | `banwarden_active_bans` | gauge | `jail` | addresses banned now |
//! | `banwarden_failures_tracked` | gauge | `jail` | addresses with failures held in memory |
//! | `banwarden_nft_transactions_total` | counter | `result` = `ok`, `error` | nftables transactions applied |
//! | `banwarden_nft_transaction_seconds` | histogram | none | time one nftables transaction took; buckets 0.5 ms … 5 s |
//! | `banwarden_source_errors_total` | counter | `kind` = `file`, `journal`, `command`, `other` | errors reading a log source |
//! | `banwarden_source_rotations_total` | counter | `how` = `renamed`, `truncated`, `recreated`, `other` | log rotations a file source followed |
//! | `banwarden_reloads_total` | counter | `result` = `ok`, `error` | configuration reloads taken or rejected |
//! | `banwarden_store_errors_total` | counter | `op` = `record_bans`, `save_positions`, `save_cursor`, `forget_positions`, `purge`, `remove_bans`, `save_fleet_position` | writes the state file refused |
//!
//! The series with fixed label values (`result`, `kind`, `how`) are present
//! at zero from the start, so rates and alerts work before the first event.
//! Per-jail series appear when the daemon first reports on that jail.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds (seconds) of the nft transaction latency histogram.
pub const NFT_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Content type of [`Metrics::render`]'s output (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const SOURCE_KINDS: [&str; 3] = ["file", "journal", "command"];
const ROTATION_HOWS: [&str; 3] = ["renamed", "truncated", "recreated"];
/// Label value used for a `kind` or `how` outside the documented set, so a
/// caller's mistake cannot create unbounded series.
const OTHER: &str = "other";

/// Why a ban was lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnbanCause {
    /// The ban time ran out.
    Expiry,
    /// An operator lifted it (control socket or CLI).
    Manual,
    /// A configuration reload removed the jail or changed its bans.
    Reload,
}

impl UnbanCause {
    /// The `cause` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UnbanCause::Expiry => "expiry",
            UnbanCause::Manual => "manual",
            UnbanCause::Reload => "reload",
        }
    }
}

impl fmt::Display for UnbanCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailLabels {
    jail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailFilterLabels {
    jail: String,
    filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnbanLabels {
    jail: String,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabels {
    how: &'static str,
}

const FLEET_KINDS: [&str; 4] = ["published", "received", "failed", "malformed"];

type CounterFamily<L> = Family<L, Counter<u64, AtomicU64>>;
type GaugeFamily<L> = Family<L, Gauge<u64, AtomicU64>>;

/// All of banwarden's metric series. Shared as `Arc<Metrics>`; every update
/// is an atomic add or store.
pub struct Metrics {
    registry: Registry,
    lines_read: CounterFamily<JailFilterLabels>,
    lines_matched: CounterFamily<JailFilterLabels>,
    lines_ignored: CounterFamily<JailFilterLabels>,
    failures: CounterFamily<JailLabels>,
    bans: CounterFamily<JailLabels>,
    unbans: CounterFamily<UnbanLabels>,
    active_bans: GaugeFamily<JailLabels>,
    tracked: GaugeFamily<JailLabels>,
    nft_transactions: CounterFamily<ResultLabels>,
    nft_seconds: Histogram,
    source_errors: CounterFamily<KindLabels>,
    rotations: CounterFamily<HowLabels>,
    fleet_messages: CounterFamily<KindLabels>,
    fleet_connected: Gauge<u64, AtomicU64>,
    unhealthy: GaugeFamily<ProblemLabels>,
    action_calls: CounterFamily<ActionLabels>,
    action_dropped: CounterFamily<JailActionLabels>,
    reloads: CounterFamily<ResultLabels>,
    store_errors: CounterFamily<OpLabels>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JailActionLabels {
    jail: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    jail: String,
    action: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    jail: String,
    problem: &'static str,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates every series, registered under the `banwarden_` prefix.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("banwarden");
        let m = Metrics {
            lines_read: Family::default(),
            lines_matched: Family::default(),
            lines_ignored: Family::default(),
            failures: Family::default(),
            bans: Family::default(),
            unbans: Family::default(),
            active_bans: Family::default(),
            tracked: Family::default(),
            nft_transactions: Family::default(),
            nft_seconds: Histogram::new(NFT_BUCKETS),
            source_errors: Family::default(),
            rotations: Family::default(),
            unhealthy: Family::default(),
            action_calls: Family::default(),
            action_dropped: Family::default(),
            fleet_messages: Family::default(),
            fleet_connected: Gauge::default(),
            reloads: Family::default(),
            store_errors: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "lines_read",
            "Lines read from a jail's sources and given to its filter",
            m.lines_read.clone(),
        );
        registry.register(
            "lines_matched",
            "Lines a failure regex matched",
            m.lines_matched.clone(),
        );
        registry.register(
            "lines_ignored",
            "Lines an ignore regex matched",
            m.lines_ignored.clone(),
        );
        registry.register(
            "failures",
            "Failures counted against an address",
            m.failures.clone(),
        );
        registry.register("bans", "Bans issued", m.bans.clone());
        registry.register(
            "unbans",
            "Bans lifted, by cause (expiry, manual, reload)",
            m.unbans.clone(),
        );
        registry.register("active_bans", "Addresses banned now", m.active_bans.clone());
        registry.register(
            "failures_tracked",
            "Addresses with failures held in memory",
            m.tracked.clone(),
        );
        registry.register(
            "nft_transactions",
            "nftables transactions applied, by result",
            m.nft_transactions.clone(),
        );
        registry.register_with_unit(
            "nft_transaction",
            "Time one nftables transaction took",
            Unit::Seconds,
            m.nft_seconds.clone(),
        );
        registry.register(
            "source_errors",
            "Errors reading a log source, by kind of source",
            m.source_errors.clone(),
        );
        registry.register(
            "source_rotations",
            "Log rotations a file source followed, by how it was rotated",
            m.rotations.clone(),
        );
        registry.register(
            "jail_unhealthy",
            "1 while a jail is flagged by filter health (no_lines, no_matches, undated)",
            m.unhealthy.clone(),
        );
        registry.register(
            "action_calls",
            "Calls of a jail's webhook or command, by result (ok, error)",
            m.action_calls.clone(),
        );
        registry.register(
            "action_events_dropped",
            "Ban and unban events an action never delivered (queue full or retries spent)",
            m.action_dropped.clone(),
        );
        registry.register(
            "fleet_messages",
            "Fleet stream messages, by kind (published, received, failed round trips, malformed)",
            m.fleet_messages.clone(),
        );
        registry.register(
            "fleet_connected",
            "1 while the link to the fleet's Redis is up",
            m.fleet_connected.clone(),
        );
        for kind in FLEET_KINDS {
            let _ = m.fleet_messages.get_or_create(&KindLabels { kind });
        }
        // Fixed label sets start at zero so that rates and alerts work
        // before the first event.
        for result in ["ok", "error"] {
            let _ = m.nft_transactions.get_or_create(&ResultLabels { result });
        }
        for kind in SOURCE_KINDS.into_iter().chain([OTHER]) {
            let _ = m.source_errors.get_or_create(&KindLabels { kind });
        }
        for how in ROTATION_HOWS.into_iter().chain([OTHER]) {
            let _ = m.rotations.get_or_create(&HowLabels { how });
        }
        registry.register(
            "reloads",
            "Configuration reloads, taken (ok) or rejected (error)",
            m.reloads.clone(),
        );
        registry.register(
            "store_errors",
            "Writes the state file refused, by operation",
            m.store_errors.clone(),
        );
        for result in ["ok", "error"] {
            let _ = m.reloads.get_or_create(&ResultLabels { result });
        }
        for op in crate::events::StoreOp::ALL {
            let _ = m.store_errors.get_or_create(&OpLabels { op });
        }
        Arc::new(Metrics { registry, ..m })
    }

    /// Adds `n` to `banwarden_lines_read_total{jail,filter}`.
    pub fn lines(&self, jail: &str, filter: &str, n: u64) {
        self.lines_read
            .get_or_create(&jail_filter(jail, filter))
            .inc_by(n);
    }

    /// Adds `n` to `banwarden_lines_matched_total{jail,filter}`.
    pub fn matched(&self, jail: &str, filter: &str, n: u64) {
        self.lines_matched
            .get_or_create(&jail_filter(jail, filter))
            .inc_by(n);
    }

    /// Adds `n` to `banwarden_lines_ignored_total{jail,filter}`.
    pub fn ignored_lines(&self, jail: &str, filter: &str, n: u64) {
        self.lines_ignored
            .get_or_create(&jail_filter(jail, filter))
            .inc_by(n);
    }

    /// Adds `n` to `banwarden_failures_total{jail}`.
    pub fn failures(&self, jail: &str, n: u64) {
        self.failures.get_or_create(&jail_only(jail)).inc_by(n);
    }

    /// Adds `n` to `banwarden_bans_total{jail}`.
    pub fn bans(&self, jail: &str, n: u64) {
        self.bans.get_or_create(&jail_only(jail)).inc_by(n);
    }

    /// Adds `n` to `banwarden_unbans_total{jail,cause}`.
    pub fn unbans(&self, jail: &str, cause: UnbanCause, n: u64) {
        self.unbans
            .get_or_create(&UnbanLabels {
                jail: jail.to_owned(),
                cause: cause.as_str(),
            })
            .inc_by(n);
    }

    /// Sets `banwarden_active_bans{jail}`.
    pub fn set_active_bans(&self, jail: &str, n: u64) {
        self.active_bans.get_or_create(&jail_only(jail)).set(n);
    }

    /// Sets `banwarden_failures_tracked{jail}`.
    pub fn set_tracked(&self, jail: &str, n: u64) {
        self.tracked.get_or_create(&jail_only(jail)).set(n);
    }

    /// Removes a jail's gauges (`banwarden_active_bans`,
    /// `banwarden_failures_tracked`), for a jail a reload dropped. Its
    /// counters stay: they are totals since the daemon started.
    pub fn remove_jail(&self, jail: &str) {
        let labels = jail_only(jail);
        self.active_bans.remove(&labels);
        self.tracked.remove(&labels);
    }

    /// Counts one nftables transaction in
    /// `banwarden_nft_transactions_total{result}` and records how long it
    /// took in `banwarden_nft_transaction_seconds`.
    pub fn nft_transaction(&self, took: Duration, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.nft_transactions
            .get_or_create(&ResultLabels { result })
            .inc();
        self.nft_seconds.observe(took.as_secs_f64());
    }

    /// Counts one error in `banwarden_source_errors_total{kind}`. `kind` is
    /// `file`, `journal` or `command`; anything else is counted as `other`.
    pub fn source_error(&self, kind: &str) {
        let kind = known(&SOURCE_KINDS, kind);
        self.source_errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// Sets `banwarden_jail_unhealthy{jail,problem}` to 1 or 0.
    pub fn set_unhealthy(&self, jail: &str, problem: &'static str, on: bool) {
        let labels = ProblemLabels {
            jail: jail.to_string(),
            problem,
        };
        self.unhealthy.get_or_create(&labels).set(u64::from(on));
    }

    /// Adds to `banwarden_action_calls_total{jail,action,result}` and
    /// `banwarden_action_events_dropped_total{jail,action}`.
    pub fn action(&self, jail: &str, action: &str, ok: u64, failed: u64, dropped: u64) {
        let labels = |result| ActionLabels {
            jail: jail.to_string(),
            action: action.to_string(),
            result,
        };
        self.action_calls.get_or_create(&labels("ok")).inc_by(ok);
        self.action_calls
            .get_or_create(&labels("error"))
            .inc_by(failed);
        let labels = JailActionLabels {
            jail: jail.to_string(),
            action: action.to_string(),
        };
        self.action_dropped.get_or_create(&labels).inc_by(dropped);
    }

    /// Adds `n` to `banwarden_fleet_messages_total{kind}` (`published`,
    /// `received`, `failed`, `malformed`; anything else is `other`).
    pub fn fleet(&self, kind: &str, n: u64) {
        let kind = known(&FLEET_KINDS, kind);
        self.fleet_messages
            .get_or_create(&KindLabels { kind })
            .inc_by(n);
    }

    /// Sets `banwarden_fleet_connected`.
    pub fn set_fleet_connected(&self, up: bool) {
        self.fleet_connected.set(u64::from(up));
    }

    /// Counts one rotation in `banwarden_source_rotations_total{how}`. `how`
    /// is `renamed`, `truncated` or `recreated`; anything else is counted as
    /// `other`.
    pub fn rotation(&self, how: &str) {
        let how = known(&ROTATION_HOWS, how);
        self.rotations.get_or_create(&HowLabels { how }).inc();
    }

    /// Counts one reload in `banwarden_reloads_total{result}`.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts one refused write in `banwarden_store_errors_total{op}` (`op`
    /// from `events::StoreOp::ALL`; anything else counts as `other`).
    pub fn store_error(&self, op: &str) {
        let op = known(&crate::events::StoreOp::ALL, op);
        self.store_errors.get_or_create(&OpLabels { op }).inc();
    }

    /// Every series as OpenMetrics text (ends with `# EOF`); serve it with
    /// [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and the encoder fails only when
        // its writer does.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("cannot render metrics: {e}");
        }
        out
    }
}

fn jail_only(jail: &str) -> JailLabels {
    JailLabels {
        jail: jail.to_owned(),
    }
}

fn jail_filter(jail: &str, filter: &str) -> JailFilterLabels {
    JailFilterLabels {
        jail: jail.to_owned(),
        filter: filter.to_owned(),
    }
}

fn known(set: &[&'static str], value: &str) -> &'static str {
    set.iter().copied().find(|k| *k == value).unwrap_or(OTHER)
}

mod http;
pub use http::{serve, serve_listener};

#[cfg(test)]
mod tests;
