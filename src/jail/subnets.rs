//! A jail's failures of captured subnets (fail2ban's `<SUBNET>`,
//! `<ADDR>/<CIDR>`) whose length is not the jail's own prefix: per subnet,
//! the failure times inside the window.
//!
//! Such captures are rare (a filter has to name a subnet), so this is a
//! plain map beside the compact per-address table (`failures`), counted
//! against the same `max_tracked` bound by the jail. Owns that storage and
//! its window arithmetic only; it does not decide bans or consult
//! allow-lists.

use std::collections::{HashMap, VecDeque};

use ipnet::IpNet;

use crate::UnixTime;

type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

#[derive(Debug, Default)]
pub(crate) struct Subnets {
    nets: Map<IpNet, VecDeque<UnixTime>>,
}

impl Subnets {
    pub(crate) fn len(&self) -> usize {
        self.nets.len()
    }

    /// Records a failure of `net` at `time`, forgetting its failures at or
    /// before `edge` and keeping at most `cap`; returns how many it has.
    pub(crate) fn record(
        &mut self,
        net: IpNet,
        time: UnixTime,
        edge: UnixTime,
        cap: usize,
    ) -> usize {
        let times = self.nets.entry(net).or_default();
        while times.front().is_some_and(|&t| t <= edge) {
            times.pop_front();
        }
        while times.len() >= cap.max(1) {
            times.pop_front();
        }
        times.push_back(time);
        times.len()
    }

    pub(crate) fn contains(&self, net: &IpNet) -> bool {
        self.nets.contains_key(net)
    }

    pub(crate) fn remove(&mut self, net: &IpNet) {
        self.nets.remove(net);
    }

    /// Forgets every subnet whose last failure is at or before `edge`.
    pub(crate) fn retain_after(&mut self, edge: UnixTime) {
        self.nets
            .retain(|_, t| t.back().is_some_and(|&last| last > edge));
    }

    /// Forgets about a quarter of the subnets, those seen least recently.
    pub(crate) fn evict_quarter(&mut self) {
        let mut newest: Vec<UnixTime> = self
            .nets
            .values()
            .filter_map(|t| t.back().copied())
            .collect();
        if newest.is_empty() {
            return;
        }
        let cut = (newest.len() / 4).max(1);
        let (_, &mut limit, _) = newest.select_nth_unstable(cut - 1);
        let mut evict = cut;
        self.nets.retain(|_, t| {
            let old = t.back().is_none_or(|&l| l <= limit) && evict > 0;
            if old {
                evict -= 1;
            }
            !old
        });
    }

    pub(crate) fn counts(&self) -> impl Iterator<Item = (IpNet, usize)> + '_ {
        self.nets.iter().map(|(n, t)| (*n, t.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_counts_in_its_window_and_is_evicted_when_stale() {
        let mut s = Subnets::default();
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert_eq!(s.record(n, 100, 40, 3), 1);
        assert_eq!(s.record(n, 110, 50, 3), 2);
        assert_eq!(s.record(n, 170, 105, 3), 2);
        assert!(s.contains(&n));
        for i in 0..7u8 {
            let m: IpNet = format!("198.51.{i}.0/24").parse().unwrap();
            s.record(m, 200 + i64::from(i), 0, 3);
        }
        s.evict_quarter();
        assert!(!s.contains(&n));
        assert_eq!(s.len(), 6);
        s.retain_after(1000);
        assert_eq!(s.len(), 0);
    }
}
