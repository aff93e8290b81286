//! The allow-list: addresses a jail never bans (`ignoreip`, `ignoreself`).
//!
//! Owns membership tests only; it does not log (the caller logs the reason).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// Why an address was not banned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "net")]
pub enum IgnoreReason {
    /// Listed in `ignoreip` (the entry that matched).
    IgnoreIp(IpNet),
    /// Loopback or one of this host's own addresses (`ignoreself`).
    OwnAddress,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::IgnoreIp(n) => write!(f, "in ignoreip {n}"),
            IgnoreReason::OwnAddress => {
                write!(f, "loopback or an address of this host (ignoreself)")
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    nets: Vec<IpNet>,
    own: Vec<IpAddr>,
    ignoreself: bool,
}

impl IgnoreList {
    /// `ignoreself` also covers loopback and the addresses of this host's
    /// interfaces, read once here.
    pub fn new(nets: Vec<IpNet>, ignoreself: bool) -> IgnoreList {
        let own = if ignoreself {
            own_addresses()
        } else {
            Vec::new()
        };
        IgnoreList {
            nets,
            own,
            ignoreself,
        }
    }

    pub fn check(&self, addr: IpAddr) -> Option<IgnoreReason> {
        if self.ignoreself && (addr.is_loopback() || self.own.contains(&addr)) {
            return Some(IgnoreReason::OwnAddress);
        }
        self.nets
            .iter()
            .find(|n| n.contains(&addr))
            .map(|n| IgnoreReason::IgnoreIp(*n))
    }

    /// Adds an entry at run time (`banwarden ignore`).
    pub fn add(&mut self, net: IpNet) {
        if !self.nets.contains(&net) {
            self.nets.push(net);
        }
    }

    /// Removes a run-time entry again.
    pub fn remove(&mut self, net: &IpNet) {
        self.nets.retain(|n| n != net);
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// The addresses of this host's interfaces (empty if they cannot be read).
pub fn own_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        tracing::warn!("could not list interface addresses; ignoreself covers loopback only");
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_self() {
        let l = IgnoreList::new(
            vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            true,
        );
        assert_eq!(
            l.check("192.0.2.9".parse().unwrap()),
            Some(IgnoreReason::IgnoreIp("192.0.2.0/24".parse().unwrap()))
        );
        assert!(l.check("2001:db8::5".parse().unwrap()).is_some());
        assert_eq!(
            l.check("127.0.0.2".parse().unwrap()),
            Some(IgnoreReason::OwnAddress)
        );
        assert_eq!(
            l.check("::1".parse().unwrap()),
            Some(IgnoreReason::OwnAddress)
        );
        assert_eq!(l.check("198.51.100.1".parse().unwrap()), None);
    }

    #[test]
    fn without_ignoreself_loopback_counts() {
        let l = IgnoreList::new(vec![], false);
        assert_eq!(l.check("127.0.0.1".parse().unwrap()), None);
    }
}
