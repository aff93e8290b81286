//! Helpers shared by the integration tests (`mod common;`).

pub mod cli;
pub mod daemon;
pub mod deb;
pub mod dry_run;
pub mod fail2ban;
pub mod fleet;
pub mod http;
pub mod journal;
pub mod journal_run;
pub mod netns;
pub mod tail;
pub mod tls;
