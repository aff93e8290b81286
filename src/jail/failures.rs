//! A jail's failure table: per counting key (an address, or its prefix),
//! the failure times inside the window, in the most compact layout the
//! jail's `maxretry` allows (`ring`). IPv4 keys are stored as a `u32` and
//! IPv6 keys as four `u32` (no 16-byte alignment), so with `maxretry` up to
//! 4 a tracked IPv4 address takes 24 bytes in its hash table slot and no
//! allocation of its own.
//!
//! Owns that storage, the window arithmetic on stored times and eviction;
//! it does not decide bans or consult allow-lists.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::ring::{stamp, Inline, Stamp, Times};
use crate::UnixTime;

/// foldhash, seeded per process: attackers choose the addresses, so not a
/// fixed seed; several times faster than SipHash on these small keys.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

type V6Key = [u32; 4];

/// One layout per jail, chosen from its `maxretry`.
#[derive(Debug)]
enum Layout {
    N2(Table<Inline<2>>),
    N4(Table<Inline<4>>),
    N8(Table<Inline<8>>),
    Heap(Table<VecDeque<Stamp>>),
}

/// Runs `$body` with `$t` bound to the jail's table, whatever its layout.
macro_rules! with_table {
    ($layout:expr, $t:ident => $body:expr) => {
        match $layout {
            Layout::N2($t) => $body,
            Layout::N4($t) => $body,
            Layout::N8($t) => $body,
            Layout::Heap($t) => $body,
        }
    };
}

#[derive(Debug)]
pub(crate) struct Failures {
    layout: Layout,
    /// Times kept per key: the jail's `maxretry` (at least 1).
    cap: usize,
}

#[derive(Debug)]
struct Table<T> {
    v4: Map<u32, T>,
    v6: Map<V6Key, T>,
    v4_prefix: u8,
    v6_prefix: u8,
}

fn v6_key(a: Ipv6Addr) -> V6Key {
    let b = a.to_bits();
    [
        (b >> 96) as u32,
        (b >> 64) as u32,
        (b >> 32) as u32,
        b as u32,
    ]
}

fn v6_addr(k: &V6Key) -> Ipv6Addr {
    Ipv6Addr::from_bits(k.iter().fold(0u128, |acc, &w| (acc << 32) | u128::from(w)))
}

fn after(t: Option<Stamp>, edge: UnixTime) -> bool {
    t.is_some_and(|t| UnixTime::from(t) > edge)
}

impl<T: Times> Table<T> {
    fn new(v4_prefix: u8, v6_prefix: u8) -> Self {
        Table {
            v4: Map::default(),
            v6: Map::default(),
            v4_prefix,
            v6_prefix,
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// `net`'s entry if `net` is a key of this table (the jail's prefix length).
    fn key_of(&self, net: &IpNet) -> Option<Key> {
        match net {
            IpNet::V4(n) if n.prefix_len() == self.v4_prefix => Some(Key::V4(u32::from(n.addr()))),
            IpNet::V6(n) if n.prefix_len() == self.v6_prefix => Some(Key::V6(v6_key(n.addr()))),
            _ => None,
        }
    }

    fn net(&self, addr: IpAddr) -> IpNet {
        let len = match addr {
            IpAddr::V4(_) => self.v4_prefix,
            IpAddr::V6(_) => self.v6_prefix,
        };
        IpNet::new(addr, len).unwrap_or_else(|_| IpNet::from(addr))
    }

    fn record(&mut self, key: Key, time: Stamp, edge: UnixTime, cap: usize) -> usize {
        let times = match key {
            Key::V4(k) => self.v4.entry(k).or_insert_with(|| T::with_cap(cap)),
            Key::V6(k) => self.v6.entry(k).or_insert_with(|| T::with_cap(cap)),
        };
        while times.front().is_some_and(|t| UnixTime::from(t) <= edge) {
            times.pop_front();
        }
        if times.len() >= cap {
            times.pop_front();
        }
        times.push_back(time);
        times.len()
    }

    fn contains(&self, key: Key) -> bool {
        match key {
            Key::V4(k) => self.v4.contains_key(&k),
            Key::V6(k) => self.v6.contains_key(&k),
        }
    }

    fn remove(&mut self, key: Key) {
        match key {
            Key::V4(k) => self.v4.remove(&k),
            Key::V6(k) => self.v6.remove(&k),
        };
    }

    fn retain_after(&mut self, edge: UnixTime) {
        self.v4.retain(|_, r| after(r.back(), edge));
        self.v6.retain(|_, r| after(r.back(), edge));
    }

    /// Drops about a quarter of the keys, those with the oldest last failure;
    /// among keys last seen in the same second, the lowest addresses first
    /// (IPv4 before IPv6), so that which keys go never depends on the
    /// table's per-process hash order: dry-run evicts what the daemon does.
    fn evict_quarter(&mut self) {
        let mut newest: Vec<Stamp> = self
            .v4
            .values()
            .chain(self.v6.values())
            .filter_map(Times::back)
            .collect();
        if newest.is_empty() {
            return;
        }
        let cut = (newest.len() / 4).max(1);
        let (_, &mut limit, _) = newest.select_nth_unstable(cut - 1);
        let older = newest.iter().filter(|t| **t < limit).count();
        // Of the keys last seen at `limit`, the first `cut - older` in
        // address order go too.
        let at_limit = |r: &T| r.back() == Some(limit);
        let mut ties4: Vec<u32> = self
            .v4
            .iter()
            .filter(|(_, r)| at_limit(r))
            .map(|(k, _)| *k)
            .collect();
        let mut ties6: Vec<V6Key> = self
            .v6
            .iter()
            .filter(|(_, r)| at_limit(r))
            .map(|(k, _)| *k)
            .collect();
        let quota = cut.saturating_sub(older);
        // The highest tied key that goes (linear selection, no sort: a
        // flood puts most of the table in one second).
        let v6_quota = quota.saturating_sub(ties4.len());
        let last4 = highest_of_lowest(&mut ties4, quota);
        let last6 = highest_of_lowest(&mut ties6, v6_quota);
        let keep = |r: &T| r.back().is_some_and(|t| t > limit);
        self.v4
            .retain(|k, r| keep(r) || at_limit(r) && last4.is_none_or(|l| *k > l));
        self.v6
            .retain(|k, r| keep(r) || at_limit(r) && last6.is_none_or(|l| *k > l));
    }

    fn counts(&self) -> impl Iterator<Item = (IpNet, usize)> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|(k, r)| (self.net(IpAddr::V4(Ipv4Addr::from(*k))), r.len()));
        let v6 = self
            .v6
            .iter()
            .map(|(k, r)| (self.net(IpAddr::V6(v6_addr(k))), r.len()));
        v4.chain(v6)
    }
}

/// Of `keys`, the `n`-th lowest (the last of the `n` lowest), or `None`
/// when `n` is 0; all of them go when there are no more than `n`.
fn highest_of_lowest<K: Ord + Copy>(keys: &mut [K], n: usize) -> Option<K> {
    match n {
        0 => None,
        n if n >= keys.len() => keys.iter().max().copied(),
        n => Some(*keys.select_nth_unstable(n - 1).1),
    }
}

#[derive(Debug, Clone, Copy)]
enum Key {
    V4(u32),
    V6(V6Key),
}

impl Failures {
    /// An empty table keeping `maxretry` times per key, for keys of the
    /// given prefix lengths.
    pub(crate) fn new(maxretry: u32, v4_prefix: u8, v6_prefix: u8) -> Failures {
        let cap = maxretry.max(1) as usize;
        let layout = match cap {
            0..=2 => Layout::N2(Table::new(v4_prefix, v6_prefix)),
            3..=4 => Layout::N4(Table::new(v4_prefix, v6_prefix)),
            5..=8 => Layout::N8(Table::new(v4_prefix, v6_prefix)),
            _ => Layout::Heap(Table::new(v4_prefix, v6_prefix)),
        };
        Failures { layout, cap }
    }

    pub(crate) fn len(&self) -> usize {
        with_table!(&self.layout, t => t.len())
    }

    /// Records a failure of `net` (a key: the jail's prefix) at `time`,
    /// forgetting its failures at or before `edge`; returns how many it has.
    pub(crate) fn record(&mut self, net: &IpNet, time: UnixTime, edge: UnixTime) -> usize {
        let cap = self.cap;
        with_table!(&mut self.layout, t => match t.key_of(net) {
            Some(key) => t.record(key, stamp(time), edge, cap),
            None => 0,
        })
    }

    pub(crate) fn contains(&self, net: &IpNet) -> bool {
        with_table!(&self.layout, t => t.key_of(net).is_some_and(|k| t.contains(k)))
    }

    pub(crate) fn remove(&mut self, net: &IpNet) {
        with_table!(&mut self.layout, t => if let Some(k) = t.key_of(net) {
            t.remove(k);
        })
    }

    /// Forgets every key whose last failure is at or before `edge`.
    pub(crate) fn retain_after(&mut self, edge: UnixTime) {
        with_table!(&mut self.layout, t => t.retain_after(edge))
    }

    /// Forgets about a quarter of the keys, those seen least recently.
    pub(crate) fn evict_quarter(&mut self) {
        with_table!(&mut self.layout, t => t.evict_quarter())
    }

    /// Each key with the number of failures it holds.
    pub(crate) fn counts(&self) -> Box<dyn Iterator<Item = (IpNet, usize)> + '_> {
        with_table!(&self.layout, t => Box::new(t.counts()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn keys_come_back_as_the_nets_they_were() {
        for maxretry in [1, 3, 6, 20] {
            let mut f = Failures::new(maxretry, 32, 64);
            f.record(&net("192.0.2.7/32"), 10, 0);
            f.record(&net("2001:db8:1:2::/64"), 10, 0);
            f.record(&net("2001:db8:1:2::/64"), 11, 0);
            let mut got: Vec<_> = f.counts().collect();
            got.sort();
            let want_v6 = 2.min(maxretry as usize);
            assert_eq!(
                got,
                vec![
                    (net("192.0.2.7/32"), 1),
                    (net("2001:db8:1:2::/64"), want_v6)
                ],
                "maxretry {maxretry}"
            );
        }
    }

    #[test]
    fn window_and_cap_bound_the_times() {
        let mut f = Failures::new(3, 32, 64);
        let a = net("192.0.2.1/32");
        assert_eq!(f.record(&a, 100, 40), 1);
        assert_eq!(f.record(&a, 110, 50), 2);
        // 100 falls out of a window ending at 100.
        assert_eq!(f.record(&a, 160, 100), 2);
        assert_eq!(f.record(&a, 161, 101), 3);
        // At the cap the oldest goes.
        assert_eq!(f.record(&a, 162, 102), 3);
        f.retain_after(162);
        assert_eq!(f.len(), 0);
    }

    /// A prefix of another length is not a key: removing it leaves the
    /// address that shares its network address alone.
    #[test]
    fn nets_of_other_lengths_are_not_keys() {
        let mut f = Failures::new(3, 32, 64);
        f.record(&net("192.0.2.0/32"), 1, 0);
        f.remove(&net("192.0.2.0/24"));
        assert!(f.contains(&net("192.0.2.0/32")));
        assert!(!f.contains(&net("192.0.2.0/24")));
        f.remove(&net("192.0.2.0/32"));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn eviction_drops_the_least_recently_seen_quarter() {
        let mut f = Failures::new(2, 32, 64);
        for i in 0..100u32 {
            let a = IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            f.record(&a, UnixTime::from(i), -1);
        }
        f.evict_quarter();
        assert_eq!(f.len(), 75);
        assert!(!f.contains(&net("10.0.0.24/32")));
        assert!(f.contains(&net("10.0.0.25/32")));
    }

    /// Keys last seen in the same second go lowest address first, IPv4
    /// before IPv6, whatever order the hash table holds them in.
    #[test]
    fn eviction_ties_go_in_address_order() {
        let mut f = Failures::new(2, 32, 64);
        for i in (0..6u32).rev() {
            let a = IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            f.record(&a, 7, -1);
        }
        f.record(&net("2001:db8::/64"), 7, -1);
        f.record(&net("192.0.2.1/32"), 9, -1);
        // 8 keys: a quarter is 2, both among the seven seen at 7.
        f.evict_quarter();
        assert_eq!(f.len(), 6);
        assert!(!f.contains(&net("10.0.0.0/32")));
        assert!(!f.contains(&net("10.0.0.1/32")));
        assert!(f.contains(&net("10.0.0.2/32")));
        assert!(f.contains(&net("2001:db8::/64")));
        assert!(f.contains(&net("192.0.2.1/32")));
    }
}
