//! fail2ban compatibility: its `filter.d` files read unmodified.
//!
//! Owns reading fail2ban's configuration files (`ini`: its INI dialect with
//! includes and interpolation; `filter`: a filter file, with options, as a
//! banwarden `FilterSpec` in the fail2ban dialect, plus what could not be
//! honoured). It must not match lines itself: the patterns it produces run in
//! the one filter engine (`crate::filter`), Python syntax and all.

pub mod filter;
pub mod ini;

pub use filter::{is_fail2ban_ref, load, parse_ref, Fail2banError, FilterRef, Imported, Note};

/// Where fail2ban keeps its configuration unless `fail2ban_dir` says otherwise.
pub const DEFAULT_DIR: &str = "/etc/fail2ban";
