//! The firewall edge: turns ban decisions into kernel state.
//!
//! Owns the description of what a jail blocks ([`JailRules`]) and the operations
//! sent to a backend ([`FirewallOp`]). The nftables backend lives in [`nft`]; the
//! batching worker that sits between the engine and a backend in [`worker`];
//! dry-run uses [`Recording`]. Nothing here decides *whether* to ban.
//!
//! A jail counts failures per prefix (`ipv4_prefix`, `ipv6_prefix`: /32 and /64
//! by default), so nearly every ban is a net of exactly that length. Those go
//! into a plain set of network addresses matched against the masked source
//! address ([`SetKind::Exact`]), which nft handles fast; bans of any other length
//! (manual bans of a wider net, a host in a /64 jail) go into a small interval
//! set ([`SetKind::Net`]).

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

/// Which base chains of the table carry a jail's rules (the jail's `chains:`).
///
/// `input` covers traffic to this host's own sockets; `forward` covers
/// traffic the host routes, such as a Docker container's published port
/// (DNATed in prerouting, so it never reaches the input hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chains {
    pub input: bool,
    pub forward: bool,
}

impl Default for Chains {
    /// `[input]`.
    fn default() -> Self {
        Chains {
            input: true,
            forward: false,
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
    /// The jail's IPv4 counting granularity (8..=32): bans of exactly this
    /// length are [`SetKind::Exact`]; the rest [`SetKind::Net`].
    pub ipv4_prefix: u8,
    /// The jail's IPv6 counting granularity (8..=128), likewise.
    pub ipv6_prefix: u8,
    /// The chains the jail's rules go in.
    pub chains: Chains,
}

/// Which of a jail's two sets per address family holds a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKind {
    /// Bans of the jail's own prefix length: a plain (non-interval) set of
    /// network addresses, matched against the source address masked to that
    /// length. Holds nearly every ban.
    Exact,
    /// Bans of any other prefix length: an interval set, kept free of overlaps.
    Net,
}

impl JailRules {
    /// The jail's prefix length for the family of `addr` (clamped to the
    /// family's maximum).
    pub fn prefix_len(&self, addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        }
    }

    /// Which set holds a ban of `net`.
    pub fn kind_of(&self, net: &IpNet) -> SetKind {
        if net.prefix_len() == self.prefix_len(net.addr()) {
            SetKind::Exact
        } else {
            SetKind::Net
        }
    }
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
    Unban {
        jail: String,
        net: IpNet,
    },
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
    fn setup(
        &mut self,
        jails: &[JailRules],
        bans: &[BanEntry],
        now: UnixTime,
    ) -> Result<(), FirewallError>;
    /// Applies `ops` in one transaction.
    fn apply(&mut self, ops: &[FirewallOp], now: UnixTime) -> Result<(), FirewallError>;
    /// Whether the table and every set of `jails` still exist.
    fn intact(&mut self, jails: &[JailRules]) -> Result<bool, FirewallError>;
    /// A cheaper, partial [`intact`](Self::intact): whether the table and its
    /// chain are still there, without reading set elements (which costs nft
    /// about a second of CPU per 100,000 bans). A flushed ruleset shows here.
    fn present(&mut self, jails: &[JailRules]) -> Result<bool, FirewallError> {
        self.intact(jails)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_of_the_jail_prefix_are_exact_the_rest_net() {
        let rules = JailRules {
            name: "j".into(),
            protocol: Protocol::All,
            ports: vec![],
            verdict: Verdict::Drop,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            chains: Chains::default(),
        };
        let kind = |s: &str| rules.kind_of(&s.parse().unwrap());
        assert_eq!(kind("192.0.2.1/32"), SetKind::Exact);
        assert_eq!(kind("192.0.2.0/24"), SetKind::Net);
        assert_eq!(kind("2001:db8:1::/64"), SetKind::Exact);
        assert_eq!(kind("2001:db8::/48"), SetKind::Net);
        assert_eq!(kind("2001:db8::5/128"), SetKind::Net);
        assert_eq!(rules.prefix_len("2001:db8::1".parse().unwrap()), 64);
    }
}
