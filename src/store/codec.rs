//! Byte encodings of the store's keys and values.
//!
//! Everything is fixed-width little-endian fields or length-prefixed bytes,
//! written and read by hand: no serialisation framework, no schema drift
//! behind our back. Decoders never panic; they return `None` on any
//! malformed input and the caller turns that into a `StoreError`.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Length of an encoded network.
pub const NET_LEN: usize = 17;

/// First byte of an IPv4 network: `V4_TAG + prefix_len` (0xC0..=0xE0).
/// An IPv6 network's first byte is its prefix length (0..=128), so the two
/// ranges never meet and an IPv4 net never collides with an IPv4-mapped one.
const V4_TAG: u8 = 0xC0;

/// `[tag][16 address bytes]`; IPv4 addresses take the first 4 address bytes,
/// the other 12 are zero.
pub fn encode_net(net: IpNet) -> [u8; NET_LEN] {
    let mut out = [0u8; NET_LEN];
    match net {
        IpNet::V4(n) => {
            out[0] = V4_TAG + n.prefix_len();
            out[1..5].copy_from_slice(&n.addr().octets());
        }
        IpNet::V6(n) => {
            out[0] = n.prefix_len();
            out[1..17].copy_from_slice(&n.addr().octets());
        }
    }
    out
}

pub fn decode_net(b: &[u8]) -> Option<IpNet> {
    let b: &[u8; NET_LEN] = b.try_into().ok()?;
    let tag = b[0];
    if (V4_TAG..=V4_TAG + 32).contains(&tag) {
        if b[5..].iter().any(|&x| x != 0) {
            return None;
        }
        let addr = Ipv4Addr::new(b[1], b[2], b[3], b[4]);
        Ipv4Net::new(addr, tag - V4_TAG).ok().map(IpNet::V4)
    } else if tag <= 128 {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&b[1..]);
        Ipv6Net::new(Ipv6Addr::from(octets), tag)
            .ok()
            .map(IpNet::V6)
    } else {
        None
    }
}

/// The canonical form stored: host bits cleared (`10.0.0.7/24` is `10.0.0.0/24`).
pub fn canonical(net: IpNet) -> IpNet {
    net.trunc()
}

/// Ban key: `jail bytes, 0, net (17 bytes)`. Jail names never contain a NUL
/// (checked before encoding), so all keys of one jail share the prefix `jail\0`.
pub fn ban_key(jail: &str, net: IpNet) -> Vec<u8> {
    let mut k = Vec::with_capacity(jail.len() + 1 + NET_LEN);
    k.extend_from_slice(jail.as_bytes());
    k.push(0);
    k.extend_from_slice(&encode_net(net));
    k
}

pub fn decode_ban_key(k: &[u8]) -> Option<(String, IpNet)> {
    if k.len() < NET_LEN + 2 {
        return None;
    }
    let (head, net) = k.split_at(k.len() - NET_LEN);
    let (jail, sep) = head.split_at(head.len() - 1);
    if sep != [0] || jail.contains(&0) {
        return None;
    }
    let jail = std::str::from_utf8(jail).ok()?.to_owned();
    Some((jail, decode_net(net)?))
}

/// Ban value: `banned_at i64, has_expiry u8 (0|1), expires i64, count u32`.
pub const BAN_VALUE_LEN: usize = 8 + 1 + 8 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanValue {
    pub banned_at: i64,
    pub expires: Option<i64>,
    pub count: u32,
}

impl BanValue {
    pub fn encode(&self) -> [u8; BAN_VALUE_LEN] {
        let mut v = [0u8; BAN_VALUE_LEN];
        v[0..8].copy_from_slice(&self.banned_at.to_le_bytes());
        v[8] = u8::from(self.expires.is_some());
        v[9..17].copy_from_slice(&self.expires.unwrap_or(0).to_le_bytes());
        v[17..21].copy_from_slice(&self.count.to_le_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<BanValue> {
        let v: &[u8; BAN_VALUE_LEN] = v.try_into().ok()?;
        let banned_at = i64::from_le_bytes(v[0..8].try_into().ok()?);
        let exp = i64::from_le_bytes(v[9..17].try_into().ok()?);
        let expires = match v[8] {
            0 => None,
            1 => Some(exp),
            _ => return None,
        };
        let count = u32::from_le_bytes(v[17..21].try_into().ok()?);
        Some(BanValue {
            banned_at,
            expires,
            count,
        })
    }

    /// Still in force at `now` (an expiry at `now` has passed).
    pub fn active(&self, now: i64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// One past ban of a net, for escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistEntry {
    pub time: i64,
    pub jail: String,
}

/// History value: a sequence of `time i64, jail_len u8, jail bytes`,
/// ordered by time (oldest first).
pub fn encode_history(entries: &[HistEntry]) -> Vec<u8> {
    let mut v = Vec::with_capacity(entries.iter().map(|e| 9 + e.jail.len()).sum());
    for e in entries {
        v.extend_from_slice(&e.time.to_le_bytes());
        // Jail names are checked to fit in a byte before they get here.
        v.push(u8::try_from(e.jail.len()).unwrap_or(u8::MAX));
        v.extend_from_slice(&e.jail.as_bytes()[..e.jail.len().min(255)]);
    }
    v
}

pub fn decode_history(mut v: &[u8]) -> Option<Vec<HistEntry>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        if v.len() < 9 {
            return None;
        }
        let time = i64::from_le_bytes(v[0..8].try_into().ok()?);
        let n = usize::from(v[8]);
        let jail = v.get(9..9 + n)?;
        let jail = std::str::from_utf8(jail).ok()?.to_owned();
        out.push(HistEntry { time, jail });
        v = &v[9 + n..];
    }
    Some(out)
}

/// Key of a file position: the path's bytes.
pub fn path_key(p: &std::path::Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn nets_round_trip_and_differ() {
        let nets = [
            "0.0.0.0/0",
            "1.2.3.4/32",
            "10.0.0.0/8",
            "255.255.255.255/32",
            "::/0",
            "::ffff:1.2.3.4/128",
            "::ffff:0:0/96",
            "2001:db8::/32",
            "2001:db8::1/128",
        ];
        let mut seen = std::collections::HashSet::new();
        for s in nets {
            let e = encode_net(net(s));
            assert_eq!(decode_net(&e), Some(net(s)), "{s}");
            assert!(seen.insert(e), "{s} collides");
        }
        // IPv4 1.2.3.4 and IPv4-mapped ::ffff:1.2.3.4 are different keys.
        assert_ne!(
            encode_net(net("1.2.3.4/32")),
            encode_net(net("::ffff:1.2.3.4/128"))
        );
    }

    #[test]
    fn malformed_nets_rejected() {
        assert_eq!(decode_net(&[0u8; 16]), None);
        let mut e = encode_net(net("1.2.3.4/32"));
        e[10] = 1;
        assert_eq!(decode_net(&e), None, "v4 padding must be zero");
        let mut e = encode_net(net("::1/128"));
        e[0] = 129;
        assert_eq!(decode_net(&e), None);
        e[0] = V4_TAG + 33;
        assert_eq!(decode_net(&e), None);
    }

    #[test]
    fn ban_key_round_trip() {
        let k = ban_key("sshd", net("192.0.2.1/32"));
        assert_eq!(k.len(), 4 + 1 + NET_LEN);
        assert_eq!(
            decode_ban_key(&k),
            Some(("sshd".into(), net("192.0.2.1/32")))
        );
        assert_eq!(
            decode_ban_key(&k[1..]),
            Some(("shd".into(), net("192.0.2.1/32")))
        );
        assert_eq!(decode_ban_key(&k[..k.len() - 1]), None);
        assert_eq!(decode_ban_key(&encode_net(net("::1/128"))), None);
    }

    #[test]
    fn ban_value_round_trip() {
        for v in [
            BanValue {
                banned_at: 1_700_000_000,
                expires: Some(1_700_000_600),
                count: 3,
            },
            BanValue {
                banned_at: -5,
                expires: None,
                count: u32::MAX,
            },
            BanValue {
                banned_at: i64::MAX,
                expires: Some(i64::MIN),
                count: 0,
            },
        ] {
            assert_eq!(BanValue::decode(&v.encode()), Some(v));
        }
        let mut e = BanValue {
            banned_at: 1,
            expires: None,
            count: 1,
        }
        .encode();
        e[8] = 2;
        assert_eq!(BanValue::decode(&e), None);
        assert_eq!(BanValue::decode(&e[..20]), None);
    }

    #[test]
    fn history_round_trip() {
        let h = vec![
            HistEntry {
                time: 10,
                jail: "sshd".into(),
            },
            HistEntry {
                time: -1,
                jail: "".into(),
            },
            HistEntry {
                time: i64::MAX,
                jail: "x".repeat(255),
            },
        ];
        let e = encode_history(&h);
        assert_eq!(decode_history(&e), Some(h));
        assert_eq!(decode_history(&e[..e.len() - 1]), None);
        assert_eq!(decode_history(&[]), Some(vec![]));
    }
}
