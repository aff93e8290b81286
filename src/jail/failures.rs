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
    /// The keys' prefix lengths (at most 32 and 128).
    v4_prefix: u8,
    v6_prefix: u8,
}

#[derive(Debug)]
struct Table<T> {
    v4: Map<u32, T>,
    v6: Map<V6Key, T>,
    /// At most the earliest last failure of any key (`Stamp::MAX`: none
    /// since the last full pass): a window edge before it drops nothing,
    /// so [`retain_after`](Table::retain_after) skips the pass a flood of
    /// new addresses would otherwise pay at each eviction.
    floor: Stamp,
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
    Ipv6Addr::from_bits(v6_bits(k))
}

/// The 128 bits of an IPv6 key.
#[inline]
pub(crate) fn v6_bits(k: &V6Key) -> u128 {
    k.iter().fold(0u128, |acc, &w| (acc << 32) | u128::from(w))
}

/// The network bits of an IPv4 prefix of length `len` (at most 32).
#[inline]
fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The network bits of an IPv6 prefix of length `len` (at most 128).
#[inline]
fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

fn after(t: Option<Stamp>, edge: UnixTime) -> bool {
    t.is_some_and(|t| UnixTime::from(t) > edge)
}

impl<T: Times> Table<T> {
    fn new() -> Self {
        Table {
            v4: Map::default(),
            v6: Map::default(),
            floor: Stamp::MAX,
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    #[inline(always)]
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
        self.floor = self.floor.min(time);
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
        if UnixTime::from(self.floor) > edge {
            return;
        }
        let mut floor = Stamp::MAX;
        let mut keep = |r: &mut T| {
            let back = r.back();
            let kept = after(back, edge);
            if kept {
                floor = floor.min(back.unwrap_or(Stamp::MAX));
            }
            kept
        };
        self.v4.retain(|_, r| keep(r));
        self.v6.retain(|_, r| keep(r));
        self.floor = floor;
    }

    /// Drops about a quarter of the keys, those with the oldest last failure;
    /// among keys last seen in the same second, the lowest addresses first
    /// (IPv4 before IPv6), so that which keys go never depends on the
    /// table's per-process hash order: dry-run evicts what the daemon does.
    ///
    /// One pass collects each key's place in that order, a linear selection
    /// (no sort: a flood puts most of the table in one second) finds the
    /// last that goes, one pass drops it and those before it. An IPv4-only
    /// table (the usual one) packs its places into a `u64` each.
    fn evict_quarter(&mut self) {
        if self.v6.is_empty() {
            let place = |k: &u32, r: &T| r.back().map(|t| u64::from(t) << 32 | u64::from(*k));
            let mut places: Vec<u64> = self.v4.iter().filter_map(|(k, r)| place(k, r)).collect();
            let Some(last) = last_to_go(&mut places) else {
                return;
            };
            self.v4.retain(|k, r| place(k, r).is_some_and(|p| p > last));
            return;
        }
        // (last seen, family, address): IPv4 as family 0.
        let place4 = |k: &u32, r: &T| r.back().map(|t| (t, 0u8, [0, 0, 0, *k]));
        let place6 = |k: &V6Key, r: &T| r.back().map(|t| (t, 1u8, *k));
        let mut places: Vec<(Stamp, u8, V6Key)> = self
            .v4
            .iter()
            .filter_map(|(k, r)| place4(k, r))
            .chain(self.v6.iter().filter_map(|(k, r)| place6(k, r)))
            .collect();
        let Some(last) = last_to_go(&mut places) else {
            return;
        };
        self.v4
            .retain(|k, r| place4(k, r).is_some_and(|p| p > last));
        self.v6
            .retain(|k, r| place6(k, r).is_some_and(|p| p > last));
    }

    /// Calls `f` with each key and each of its times, oldest first.
    fn each_time(&self, mut f: impl FnMut(Key, Stamp))
    where
        T: Clone,
    {
        let mut visit = |key: Key, r: &T| {
            let mut r = r.clone();
            while let Some(t) = r.front() {
                f(key, t);
                r.pop_front();
            }
        };
        for (k, r) in &self.v4 {
            visit(Key::V4(*k), r);
        }
        for (k, r) in &self.v6 {
            visit(Key::V6(*k), r);
        }
    }

    fn counts<'a>(&'a self, f: &'a Failures) -> impl Iterator<Item = (IpNet, usize)> + 'a {
        let v4 = self.v4.iter().map(|(k, r)| (f.net(Key::V4(*k)), r.len()));
        let v6 = self.v6.iter().map(|(k, r)| (f.net(Key::V6(*k)), r.len()));
        v4.chain(v6)
    }
}

/// Of the keys' `places` in eviction order, the last of the quarter that
/// goes (at least one); `None` when there are none.
fn last_to_go<P: Ord + Copy>(places: &mut [P]) -> Option<P> {
    if places.is_empty() {
        return None;
    }
    let cut = (places.len() / 4).max(1);
    Some(*places.select_nth_unstable(cut - 1).1)
}

/// A counting key as the table holds it: an address's first prefix-length
/// bits (the jail's `ipv4_prefix` or `ipv6_prefix`), the rest cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    V4(u32),
    V6(V6Key),
}

impl Failures {
    /// An empty table keeping `maxretry` times per key, for keys of the
    /// given prefix lengths.
    pub(crate) fn new(maxretry: u32, v4_prefix: u8, v6_prefix: u8) -> Failures {
        let cap = maxretry.max(1) as usize;
        let layout = match cap {
            0..=2 => Layout::N2(Table::new()),
            3..=4 => Layout::N4(Table::new()),
            5..=8 => Layout::N8(Table::new()),
            _ => Layout::Heap(Table::new()),
        };
        Failures {
            layout,
            cap,
            v4_prefix: v4_prefix.min(32),
            v6_prefix: v6_prefix.min(128),
        }
    }

    /// The key of a failure of `addr`: its prefix of the jail's length.
    #[inline]
    pub(crate) fn key(&self, addr: IpAddr) -> Key {
        match addr {
            IpAddr::V4(a) => Key::V4(a.to_bits() & mask4(self.v4_prefix)),
            IpAddr::V6(a) => Key::V6(v6_key(Ipv6Addr::from_bits(
                a.to_bits() & mask6(self.v6_prefix),
            ))),
        }
    }

    /// `net`'s key if `net` is one (of the jail's prefix length).
    #[inline]
    fn key_of(&self, net: &IpNet) -> Option<Key> {
        match net {
            IpNet::V4(n) if n.prefix_len() == self.v4_prefix => Some(Key::V4(u32::from(n.addr()))),
            IpNet::V6(n) if n.prefix_len() == self.v6_prefix => Some(Key::V6(v6_key(n.addr()))),
            _ => None,
        }
    }

    /// The network a key stands for.
    pub(crate) fn net(&self, key: Key) -> IpNet {
        let (addr, len) = match key {
            Key::V4(k) => (IpAddr::V4(Ipv4Addr::from(k)), self.v4_prefix),
            Key::V6(k) => (IpAddr::V6(v6_addr(&k)), self.v6_prefix),
        };
        IpNet::new(addr, len).unwrap_or_else(|_| IpNet::from(addr))
    }

    /// The keys' prefix lengths: IPv4's and IPv6's.
    pub(crate) fn prefixes(&self) -> (u8, u8) {
        (self.v4_prefix, self.v6_prefix)
    }

    pub(crate) fn len(&self) -> usize {
        with_table!(&self.layout, t => t.len())
    }

    /// Records a failure of `net` (a key: the jail's prefix) at `time`,
    /// forgetting its failures at or before `edge`; returns how many it has.
    #[cfg(test)]
    pub(crate) fn record(&mut self, net: &IpNet, time: UnixTime, edge: UnixTime) -> usize {
        match self.key_of(net) {
            Some(key) => self.record_key(key, time, edge),
            None => 0,
        }
    }

    /// [`record`](Self::record) by key (inlined into the engine's loop).
    #[inline(always)]
    pub(crate) fn record_key(&mut self, key: Key, time: UnixTime, edge: UnixTime) -> usize {
        let cap = self.cap;
        with_table!(&mut self.layout, t => t.record(key, stamp(time), edge, cap))
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, net: &IpNet) -> bool {
        self.key_of(net).is_some_and(|k| self.contains_key(k))
    }

    pub(crate) fn contains_key(&self, key: Key) -> bool {
        with_table!(&self.layout, t => t.contains(key))
    }

    pub(crate) fn remove(&mut self, net: &IpNet) {
        if let Some(k) = self.key_of(net) {
            self.remove_key(k);
        }
    }

    pub(crate) fn remove_key(&mut self, key: Key) {
        with_table!(&mut self.layout, t => t.remove(key))
    }

    /// Forgets every key whose last failure is at or before `edge`.
    pub(crate) fn retain_after(&mut self, edge: UnixTime) {
        with_table!(&mut self.layout, t => t.retain_after(edge))
    }

    /// Forgets about a quarter of the keys, those seen least recently.
    pub(crate) fn evict_quarter(&mut self) {
        with_table!(&mut self.layout, t => t.evict_quarter())
    }

    /// The same failures in a table that keeps `maxretry` times per key
    /// (same prefix lengths): a reload that changes `maxretry` keeps the
    /// counts. Times are recorded again oldest first, so a smaller
    /// `maxretry` keeps each key's latest.
    pub(crate) fn with_maxretry(&self, maxretry: u32) -> Failures {
        let mut times: Vec<(Stamp, Key)> = Vec::with_capacity(self.len());
        with_table!(&self.layout, t => t.each_time(|k, s| times.push((s, k))));
        times.sort_unstable_by_key(|&(s, _)| s);
        let mut new = Failures::new(maxretry, self.v4_prefix, self.v6_prefix);
        for (s, k) in times {
            new.record_key(k, UnixTime::from(s), UnixTime::MIN);
        }
        new
    }

    /// Each key with the number of failures it holds.
    pub(crate) fn counts(&self) -> Box<dyn Iterator<Item = (IpNet, usize)> + '_> {
        with_table!(&self.layout, t => Box::new(t.counts(self)))
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

    /// Skipping passes that cannot drop anything never keeps a key whose
    /// failures all left the window: the floor follows every record and pass.
    #[test]
    fn window_passes_drop_exactly_the_stale_keys() {
        let mut f = Failures::new(3, 32, 64);
        let (a, b, c) = (
            net("192.0.2.1/32"),
            net("192.0.2.2/32"),
            net("2001:db8::/64"),
        );
        f.record(&a, 100, 0);
        f.record(&b, 200, 0);
        f.retain_after(99);
        assert_eq!(f.len(), 2);
        f.retain_after(100);
        assert!(!f.contains(&a) && f.contains(&b));
        // Older than everything left: the floor goes down with it.
        f.record(&c, 50, 0);
        f.retain_after(60);
        assert!(!f.contains(&c) && f.contains(&b));
        f.record(&a, 150, 0);
        f.retain_after(199);
        assert_eq!(f.len(), 1);
        assert!(f.contains(&b));
        f.retain_after(200);
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

    /// Eviction keeps exactly what a sort of (last seen, IPv4 before
    /// IPv6, address) would: the quarter at the front goes. IPv4 alone
    /// (the packed path) and mixed tables, with many ties.
    #[test]
    fn eviction_agrees_with_a_sort() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for mixed in [false, true] {
            let mut f = Failures::new(3, 32, 64);
            let mut want = std::collections::BTreeMap::new();
            for _ in 0..1000 {
                let r = next();
                let time = (r % 5) as UnixTime;
                let v6 = mixed && r % 3 == 0;
                let n = if v6 {
                    let a = Ipv6Addr::from_bits(u128::from(r >> 8) << 64);
                    IpNet::new(IpAddr::V6(a), 64).unwrap()
                } else {
                    IpNet::from(IpAddr::V4(Ipv4Addr::from((r >> 40) as u32)))
                };
                f.record(&n, time, -1);
                want.insert(n, time);
            }
            let mut order: Vec<_> = want
                .iter()
                .map(|(n, t)| (*t, n.addr().is_ipv6(), *n))
                .collect();
            order.sort();
            let cut = order.len() / 4;
            f.evict_quarter();
            assert_eq!(f.len(), order.len() - cut, "mixed {mixed}");
            for (i, (_, _, n)) in order.iter().enumerate() {
                assert_eq!(f.contains(n), i >= cut, "mixed {mixed}: {n} at {i}");
            }
        }
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
