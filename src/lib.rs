//! banwarden: a log-watching ban daemon.
//!
//! Data flows one way: `source` → `scan` (with `filter`) → `jail` → decisions
//! → `firewall`. The same line engine (`scan`, `filter`, `jail::engine`)
//! serves the daemon and `dry-run`; only where lines come from, the clock and
//! where decisions go differ.

pub mod actions;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod events;
pub mod fail2ban;
pub mod filter;
pub mod firewall;
pub mod fleet;
pub mod health;
pub mod jail;
pub mod logging;
pub mod metrics;
pub mod scan;
pub mod source;
pub mod store;

/// Seconds since the Unix epoch. Every time in the engine is in this unit:
/// line timestamps, windows, ban expiries.
pub type UnixTime = i64;

/// The current wall-clock time.
pub fn now() -> UnixTime {
    jiff::Timestamp::now().as_second()
}
