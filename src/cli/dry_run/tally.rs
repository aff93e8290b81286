//! dry-run's per-address tally of failures (the report's top addresses):
//! how many each address or captured subnet had, first and last time.
//!
//! Owns that table only; it does not count towards bans (the jail does)
//! nor render.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::FastHash;
use crate::UnixTime;

/// One address's (or captured subnet's) failures, and the times of its
/// first and last.
#[derive(Clone, Copy)]
pub(super) struct AddrStat {
    pub(super) failures: u64,
    pub(super) first: UnixTime,
    pub(super) last: UnixTime,
}

/// The per-address tally: IPv4 hosts (most failures) in a table of their
/// own keyed by the address's 32 bits, half the size of one keyed by
/// network (it stays in the cache beside the jail's own tables); other
/// addresses and captured subnets by network.
#[derive(Default)]
pub(super) struct Tally {
    v4: HashMap<u32, AddrStat, FastHash>,
    other: HashMap<IpNet, AddrStat, FastHash>,
}

impl Tally {
    pub(super) fn add(&mut self, net: IpNet, time: UnixTime) {
        let fresh = AddrStat {
            failures: 0,
            first: time,
            last: time,
        };
        let a = match net {
            IpNet::V4(n) if n.prefix_len() == 32 => {
                self.v4.entry(u32::from(n.addr())).or_insert(fresh)
            }
            _ => self.other.entry(net).or_insert(fresh),
        };
        a.failures += 1;
        a.last = time;
    }

    pub(super) fn into_vec(self) -> Vec<(IpNet, AddrStat)> {
        let v4 = self
            .v4
            .into_iter()
            .map(|(a, s)| (IpNet::from(IpAddr::from(Ipv4Addr::from(a))), s));
        v4.chain(self.other).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 hosts and everything else are tallied apart and come back as
    /// the networks they were, with their counts and first and last times.
    #[test]
    fn every_key_comes_back_with_its_count_and_times() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let mut t = Tally::default();
        for (n, time) in [
            ("192.0.2.1/32", 10),
            ("2001:db8::/64", 11),
            ("192.0.2.1/32", 12),
            ("192.0.2.0/24", 13),
            ("2001:db8::1/128", 14),
            ("192.0.2.1/32", 15),
        ] {
            t.add(net(n), time);
        }
        let mut got: Vec<(IpNet, u64, UnixTime, UnixTime)> = t
            .into_vec()
            .into_iter()
            .map(|(n, s)| (n, s.failures, s.first, s.last))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (net("192.0.2.0/24"), 1, 13, 13),
                (net("192.0.2.1/32"), 3, 10, 15),
                (net("2001:db8::/64"), 1, 11, 11),
                (net("2001:db8::1/128"), 1, 14, 14),
            ]
        );
    }
}
