//! A jail's ban marks: a small bit table holding at least every key of the
//! jail's active bans, so that a failure of a key never banned (most of
//! them) is told "not banned" without hashing into the ban table.
//!
//! Owns the bits only: a mark may be stale (a ban lifted since), never
//! missing; the jail marks every ban it records and rebuilds the table
//! when it sweeps. It decides nothing.

use ipnet::IpNet;

/// Bits in the table (8 KiB per jail).
const BITS: usize = 1 << 16;

pub(crate) struct Marks {
    words: Box<[u64]>,
}

impl std::fmt::Debug for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        write!(f, "Marks({set} set)")
    }
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            words: vec![0; BITS / 64].into_boxed_slice(),
        }
    }
}

/// The bit of `net`: its address and length mixed by one multiplication
/// (the table is a filter, not a hash table: collisions only cost a lookup).
#[inline]
fn bit(net: &IpNet) -> usize {
    match net {
        IpNet::V4(n) => bit_v4(u32::from(n.addr()), n.prefix_len()),
        IpNet::V6(n) => bit_v6(n.addr().to_bits(), n.prefix_len()),
    }
}

/// The bit of the IPv4 network `addr`/`len` (as [`bit`] finds it).
#[inline]
fn bit_v4(addr: u32, len: u8) -> usize {
    mix(u64::from(addr), len)
}

/// The bit of the IPv6 network `addr`/`len` (as [`bit`] finds it).
#[inline]
fn bit_v6(addr: u128, len: u8) -> usize {
    mix((addr as u64) ^ ((addr >> 64) as u64).rotate_left(29), len)
}

#[inline]
fn mix(x: u64, len: u8) -> usize {
    let x = x ^ (u64::from(len) << 40);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - 16)) as usize
}

impl Marks {
    /// Marks `net` (a ban is recorded for it).
    #[inline]
    pub(crate) fn mark(&mut self, net: &IpNet) {
        let b = bit(net);
        if let Some(w) = self.words.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }

    /// Whether `net` may have a ban (`false`: it has none).
    #[inline]
    pub(crate) fn may_hold(&self, net: &IpNet) -> bool {
        self.holds(bit(net))
    }

    /// [`may_hold`](Self::may_hold) for the IPv4 network `addr`/`len`.
    #[inline]
    pub(crate) fn may_hold_v4(&self, addr: u32, len: u8) -> bool {
        self.holds(bit_v4(addr, len))
    }

    /// [`may_hold`](Self::may_hold) for the IPv6 network `addr`/`len`.
    #[inline]
    pub(crate) fn may_hold_v6(&self, addr: u128, len: u8) -> bool {
        self.holds(bit_v6(addr, len))
    }

    #[inline]
    fn holds(&self, b: usize) -> bool {
        self.words
            .get(b / 64)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }

    /// Marks exactly `nets` (after the bans were swept).
    pub(crate) fn rebuild<'a>(&mut self, nets: impl Iterator<Item = &'a IpNet>) {
        self.words.fill(0);
        for n in nets {
            self.mark(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_marked_net_is_always_held_and_a_rebuild_forgets_the_others() {
        let mut m = Marks::default();
        let nets: Vec<IpNet> = (0..5000u32)
            .map(|i| IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i * 7))))
            .chain([
                net("2001:db8::/64"),
                net("2001:db8:1::/64"),
                net("10.0.0.0/24"),
            ])
            .collect();
        for n in &nets {
            m.mark(n);
        }
        assert!(nets.iter().all(|n| m.may_hold(n)));
        // Other lengths of the same address are other keys.
        let unmarked = (0..1000u32)
            .map(|i| IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + i))))
            .filter(|n| !m.may_hold(n))
            .count();
        assert!(unmarked > 800, "{unmarked} of 1000 unmarked");
        m.rebuild(nets[..1].iter());
        assert!(m.may_hold(&nets[0]));
        assert!(nets[1..].iter().filter(|n| m.may_hold(n)).count() < 100);
    }

    /// The by-key checks find the bit `mark` set for the same network.
    #[test]
    fn key_checks_agree_with_the_net_check() {
        let mut m = Marks::default();
        let nets = [
            net("192.0.2.7/32"),
            net("10.1.0.0/16"),
            net("2001:db8:1:2::/64"),
            net("2001:db8::5/128"),
        ];
        for n in &nets {
            m.mark(n);
        }
        for n in &nets {
            let held = match n {
                IpNet::V4(v) => m.may_hold_v4(u32::from(v.addr()), v.prefix_len()),
                IpNet::V6(v) => m.may_hold_v6(v.addr().to_bits(), v.prefix_len()),
            };
            assert!(held, "{n}");
        }
        assert_eq!(
            m.may_hold_v4(0x0a01_0000, 24),
            m.may_hold(&net("10.1.0.0/24"))
        );
    }
}
