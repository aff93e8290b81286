//! The allow-list: addresses a jail never bans (`ignoreip`, its `file:`
//! lists, `ignoreself`, and the global `trusted_proxies`).
//!
//! Owns membership tests only; it does not log (the caller logs the reason).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::allowfile::AllowFile;

/// Why an address was not banned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "net")]
pub enum IgnoreReason {
    /// Listed in `ignoreip` (the entry that matched).
    IgnoreIp(IpNet),
    /// Loopback or one of this host's own addresses (`ignoreself`).
    OwnAddress,
    /// Listed in `trusted_proxies` (the entry that matched).
    TrustedProxy(IpNet),
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::IgnoreIp(n) => write!(f, "in ignoreip {n}"),
            IgnoreReason::OwnAddress => {
                write!(f, "loopback or an address of this host (ignoreself)")
            }
            IgnoreReason::TrustedProxy(n) => write!(f, "a trusted proxy (trusted_proxies {n})"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    nets: Vec<IpNet>,
    own: Vec<IpAddr>,
    /// `own` by family, as integers: what [`check`](Self::check) compares
    /// for every failure (an `IpAddr` comparison costs several times more).
    own4: Box<[u32]>,
    own6: Box<[u128]>,
    /// A bit per own address ([`own_bit`]): an address whose bit is clear
    /// is not one of them, told without walking the lists.
    own_bits: u64,
    ignoreself: bool,
    /// `file:` entries of `ignoreip`, re-read when they change.
    files: Vec<Arc<AllowFile>>,
    /// `trusted_proxies`: addresses and files.
    proxies: Vec<IpNet>,
    proxy_files: Vec<Arc<AllowFile>>,
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
        let own4 = own
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(a.to_bits()),
                IpAddr::V6(_) => None,
            })
            .collect();
        let own6 = own
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(a.to_bits()),
                IpAddr::V4(_) => None,
            })
            .collect();
        let own_bits = own.iter().fold(0, |bits, a| bits | own_bit(*a));
        IgnoreList {
            nets,
            own,
            own4,
            own6,
            own_bits,
            ignoreself,
            ..IgnoreList::default()
        }
    }

    /// Adds `file:` lists to the allow-list.
    pub fn with_files(mut self, files: Vec<Arc<AllowFile>>) -> IgnoreList {
        self.files.extend(files);
        self
    }

    /// Adds the trusted proxies (never banned, reported as such).
    pub fn with_proxies(mut self, nets: Vec<IpNet>, files: Vec<Arc<AllowFile>>) -> IgnoreList {
        self.proxies.extend(nets);
        self.proxy_files.extend(files);
        self
    }

    /// The lists read from files, trusted proxies' included.
    pub fn files(&self) -> impl Iterator<Item = &Arc<AllowFile>> {
        self.files.iter().chain(self.proxy_files.iter())
    }

    #[inline(always)]
    pub fn check(&self, addr: IpAddr) -> Option<IgnoreReason> {
        // Most jails list nothing and only ignore their own host: this runs
        // for every failure, so that case skips the list walks.
        if self.nets.is_empty()
            && self.files.is_empty()
            && self.proxies.is_empty()
            && self.proxy_files.is_empty()
        {
            return (self.ignoreself && self.is_own(addr)).then_some(IgnoreReason::OwnAddress);
        }
        self.check_lists(addr)
    }

    /// Loopback or an address of this host.
    #[inline(always)]
    fn is_own(&self, addr: IpAddr) -> bool {
        addr.is_loopback() || (self.own_bits & own_bit(addr) != 0 && self.listed_own(addr))
    }

    /// Whether `addr` is in the own address lists (past the bit filter).
    #[inline(never)]
    fn listed_own(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.own4.contains(&a.to_bits()),
            IpAddr::V6(a) => self.own6.contains(&a.to_bits()),
        }
    }

    /// [`check`](Self::check) with lists to walk.
    fn check_lists(&self, addr: IpAddr) -> Option<IgnoreReason> {
        if let Some(n) = self
            .proxies
            .iter()
            .find(|n| n.contains(&addr))
            .copied()
            .or_else(|| self.proxy_files.iter().find_map(|f| f.find(addr)))
        {
            return Some(IgnoreReason::TrustedProxy(n));
        }
        if self.ignoreself && self.is_own(addr) {
            return Some(IgnoreReason::OwnAddress);
        }
        self.nets
            .iter()
            .find(|n| n.contains(&addr))
            .copied()
            .or_else(|| self.files.iter().find_map(|f| f.find(addr)))
            .map(IgnoreReason::IgnoreIp)
    }

    /// [`check`](Self::check) for a network (a subnet a filter captured):
    /// ignored when it overlaps any entry, i.e. holds an ignored address
    /// or lies inside an ignored network, so that banning it can never
    /// block an address the lists protect. fail2ban only asks whether the
    /// subnet's network address is in an entry; banwarden is stricter.
    pub fn check_net(&self, net: IpNet) -> Option<IgnoreReason> {
        if net.prefix_len() == net.max_prefix_len() {
            return self.check(net.addr());
        }
        let overlaps = |n: &IpNet| n.contains(&net.network()) || net.contains(&n.network());
        let in_files = |files: &[Arc<AllowFile>]| {
            files
                .iter()
                .find_map(|f| f.nets().iter().find(|n| overlaps(n)).copied())
        };
        if let Some(n) = self
            .proxies
            .iter()
            .find(|n| overlaps(n))
            .copied()
            .or_else(|| in_files(&self.proxy_files))
        {
            return Some(IgnoreReason::TrustedProxy(n));
        }
        let loopback = [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
        if self.ignoreself
            && (net.addr().is_loopback()
                || loopback.iter().chain(&self.own).any(|a| net.contains(a)))
        {
            return Some(IgnoreReason::OwnAddress);
        }
        self.nets
            .iter()
            .find(|n| overlaps(n))
            .copied()
            .or_else(|| in_files(&self.files))
            .map(IgnoreReason::IgnoreIp)
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

/// An address's bit in [`IgnoreList`]'s `own_bits`: one of 64, by a
/// multiplicative hash of its bits.
#[inline]
fn own_bit(addr: IpAddr) -> u64 {
    let x = match addr {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b as u64) ^ ((b >> 64) as u64).rotate_left(17) ^ (1 << 63)
        }
    };
    1 << (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
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

    /// Without lists (the common case, checked first): only `ignoreself`
    /// ignores, and only loopback and this host's addresses.
    #[test]
    fn without_lists_only_the_host_itself_is_ignored() {
        let own = IgnoreList::new(vec![], true);
        for a in ["127.0.0.2", "::1"] {
            assert_eq!(
                own.check(a.parse().unwrap()),
                Some(IgnoreReason::OwnAddress)
            );
        }
        for a in own_addresses() {
            assert_eq!(own.check(a), Some(IgnoreReason::OwnAddress), "{a}");
        }
        assert_eq!(own.check("198.51.100.1".parse().unwrap()), None);
        let none = IgnoreList::new(vec![], false);
        for a in ["127.0.0.2", "::1", "198.51.100.1"] {
            assert_eq!(none.check(a.parse().unwrap()), None);
        }
    }

    #[test]
    fn a_subnet_is_ignored_when_it_overlaps_an_entry_either_way() {
        let l = IgnoreList::new(vec!["192.0.2.77/32".parse().unwrap()], false)
            .with_proxies(vec!["198.51.100.0/28".parse().unwrap()], vec![]);
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        // Holds an ignored address (fail2ban would ban it: 192.0.2.0 is not
        // 192.0.2.77).
        assert_eq!(
            l.check_net(net("192.0.2.0/24")),
            Some(IgnoreReason::IgnoreIp(net("192.0.2.77/32")))
        );
        // Lies inside a trusted proxy's net, or holds one.
        assert!(matches!(
            l.check_net(net("198.51.100.0/30")),
            Some(IgnoreReason::TrustedProxy(_))
        ));
        assert!(matches!(
            l.check_net(net("198.51.0.0/16")),
            Some(IgnoreReason::TrustedProxy(_))
        ));
        // Holds loopback under ignoreself.
        assert_eq!(l.check_net(net("127.0.0.0/8")), None);
        let own = IgnoreList::new(vec![], true);
        assert_eq!(
            own.check_net(net("127.0.0.0/8")),
            Some(IgnoreReason::OwnAddress)
        );
        assert_eq!(own.check_net(net("::/8")), Some(IgnoreReason::OwnAddress));
        assert_eq!(l.check_net(net("203.0.113.0/24")), None);
        // A host is checked as an address.
        assert_eq!(l.check_net(net("203.0.113.9/32")), None);
    }

    #[test]
    fn without_ignoreself_loopback_counts() {
        let l = IgnoreList::new(vec![], false);
        assert_eq!(l.check("127.0.0.1".parse().unwrap()), None);
    }
}
