//! The firewall edge: turns ban decisions into kernel state.
//!
//! Owns the description of what a jail blocks ([`JailRules`]) and the operations
//! sent to a backend ([`FirewallOp`]). The nftables backend lives in [`nft`]; the
//! batching worker that sits between the engine and a backend in [`worker`];
//! dry-run uses [`Recording`]. Nothing here decides *whether* to ban.

pub mod nft;
pub mod worker;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::UnixTime;

/// What a matching packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Drop,
    Reject,
}

/// Which transport a jail's rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Every packet from a banned address.
    #[default]
    All,
    Tcp,
    Udp,
}

/// An inclusive destination port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// What one jail blocks: its sets and its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailRules {
    /// Jail name: `[A-Za-z0-9_-]{1,32}`, validated by `config`.
    pub name: String,
    pub protocol: Protocol,
    /// Empty: all ports. Non-empty implies `protocol` is tcp or udp.
    pub ports: Vec<PortRange>,
    pub verdict: Verdict,
    /// Whether the sets take prefixes (CIDR bans): adds `flags interval`.
    pub intervals: bool,
}

/// One active ban as the firewall knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEntry {
    pub jail: String,
    /// A host is a /32 or /128.
    pub net: IpNet,
    /// `None`: permanent (no timeout on the set element).
    pub expires: Option<UnixTime>,
}

/// A change to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallOp {
    /// Add the element, or refresh its timeout if present.
    Ban(BanEntry),
    Unban { jail: String, net: IpNet },
}

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("could not run {program}: {source} (is nftables installed? apt-get install nftables)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft rejected the transaction: {0}")]
    Nft(String),
    #[error("could not read nft output: {0}")]
    Parse(String),
}

/// A firewall backend. Calls block; the worker runs them off the async runtime.
pub trait Firewall: Send {
    /// Creates or repairs the table, its chain, and the sets and rules of `jails`
    /// (removing those of jails no longer listed), then loads `bans`. Idempotent.
    fn setup(&mut self, jails: &[JailRules], bans: &[BanEntry], now: UnixTime) -> Result<(), FirewallError>;
    /// Applies `ops` in one transaction.
    fn apply(&mut self, ops: &[FirewallOp], now: UnixTime) -> Result<(), FirewallError>;
    /// Whether the table and every set of `jails` still exist.
    fn intact(&mut self, jails: &[JailRules]) -> Result<bool, FirewallError>;
}

/// A backend that only records what it was asked (dry-run, unit tests).
#[derive(Debug, Default)]
pub struct Recording {
    pub ops: Vec<FirewallOp>,
}

impl Firewall for Recording {
    fn setup(&mut self, _: &[JailRules], _: &[BanEntry], _: UnixTime) -> Result<(), FirewallError> {
        Ok(())
    }
    fn apply(&mut self, ops: &[FirewallOp], _: UnixTime) -> Result<(), FirewallError> {
        self.ops.extend_from_slice(ops);
        Ok(())
    }
    fn intact(&mut self, _: &[JailRules]) -> Result<bool, FirewallError> {
        Ok(true)
    }
}

/// The address family of an address, as nft names it in set names.
pub fn family_suffix(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "v4",
        IpAddr::V6(_) => "v6",
    }
}
