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

/// One jail's ban of a net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailBan {
    pub jail: String,
    pub banned_at: i64,
    pub expires: Option<i64>,
    pub count: u32,
    /// The fleet node that decided it (in a fleet).
    pub origin: Option<String>,
}

impl JailBan {
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

/// Everything stored about one net: its active bans (one per jail, ordered
/// by jail name) and its recent ban history (ordered by time, oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetRecord {
    pub bans: Vec<JailBan>,
    pub history: Vec<HistEntry>,
}

/// Longest jail name that fits the encoding.
pub const MAX_JAIL_LEN: usize = 255;

impl NetRecord {
    /// `u16 n, n × (u8 jail_len, jail, i64 banned_at, u8 flags, i64 expires,
    /// u32 count [, u8 origin_len, origin])` where flags bit 0 says the
    /// expiry is set and bit 1 that an origin follows (files written before
    /// origins were kept have flags 0 or 1 and read the same), then `u16 m, m × (i64 time, u8 jail_len,
    /// jail)`; integers little-endian. Jail names are checked to be at most
    /// [`MAX_JAIL_LEN`] bytes, and the counts to fit, before encoding.
    pub fn encode(&self) -> Vec<u8> {
        let len = 4
            + self.bans.iter().map(|b| 22 + b.jail.len()).sum::<usize>()
            + self.history.iter().map(|h| 9 + h.jail.len()).sum::<usize>();
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(&count16(self.bans.len()));
        for b in &self.bans {
            put_str(&mut v, &b.jail);
            v.extend_from_slice(&b.banned_at.to_le_bytes());
            v.push(u8::from(b.expires.is_some()) | (u8::from(b.origin.is_some()) << 1));
            v.extend_from_slice(&b.expires.unwrap_or(0).to_le_bytes());
            v.extend_from_slice(&b.count.to_le_bytes());
            if let Some(o) = &b.origin {
                put_str(&mut v, o);
            }
        }
        v.extend_from_slice(&count16(self.history.len()));
        for h in &self.history {
            v.extend_from_slice(&h.time.to_le_bytes());
            put_str(&mut v, &h.jail);
        }
        v
    }

    pub fn decode(v: &[u8]) -> Option<NetRecord> {
        let mut r = Reader(v);
        let bans = Self::read_bans(&mut r)?;
        let n = r.u16()?;
        let mut history = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let time = r.i64()?;
            let jail = r.str()?;
            history.push(HistEntry { time, jail });
        }
        r.0.is_empty().then_some(NetRecord { bans, history })
    }

    /// Only the bans: what restoring them at startup needs.
    pub fn decode_bans(v: &[u8]) -> Option<Vec<JailBan>> {
        Self::read_bans(&mut Reader(v))
    }

    fn read_bans(r: &mut Reader<'_>) -> Option<Vec<JailBan>> {
        let n = r.u16()?;
        let mut bans = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let jail = r.str()?;
            let banned_at = r.i64()?;
            let flags = r.u8()?;
            if flags > 3 {
                return None;
            }
            let exp = r.i64()?;
            let expires = (flags & 1 == 1).then_some(exp);
            let count = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
            let origin = if flags & 2 == 2 { Some(r.str()?) } else { None };
            bans.push(JailBan {
                jail,
                banned_at,
                expires,
                count,
                origin,
            });
        }
        Some(bans)
    }

    /// Replaces this jail's ban, or adds it.
    pub fn set_ban(&mut self, ban: JailBan) {
        match self
            .bans
            .binary_search_by(|b| b.jail.as_str().cmp(&ban.jail))
        {
            Ok(i) => self.bans[i] = ban,
            Err(i) => self.bans.insert(i, ban),
        }
    }

    /// Removes this jail's ban; true if there was one.
    pub fn remove_ban(&mut self, jail: &str) -> bool {
        match self.bans.binary_search_by(|b| b.jail.as_str().cmp(jail)) {
            Ok(i) => {
                self.bans.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Inserts `e` in time order (after entries of the same time), skips an
    /// exact duplicate, and keeps only the newest `max` entries.
    pub fn add_history(&mut self, e: HistEntry, max: usize) {
        if self.history.contains(&e) {
            return;
        }
        let at = self.history.partition_point(|x| x.time <= e.time);
        self.history.insert(at, e);
        if self.history.len() > max {
            let excess = self.history.len() - max;
            self.history.drain(..excess);
        }
    }
}

fn count16(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes()
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    let n = s.len().min(MAX_JAIL_LEN);
    v.push(n as u8);
    v.extend_from_slice(&s.as_bytes()[..n]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        Some(std::str::from_utf8(self.take(n)?).ok()?.to_owned())
    }
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

    fn jb(jail: &str, banned_at: i64, expires: Option<i64>, count: u32) -> JailBan {
        JailBan {
            jail: jail.into(),
            banned_at,
            expires,
            count,
            origin: None,
        }
    }

    fn he(time: i64, jail: &str) -> HistEntry {
        HistEntry {
            time,
            jail: jail.into(),
        }
    }

    #[test]
    fn net_record_round_trip() {
        let rec = NetRecord {
            bans: vec![
                jb("nginx", 1_700_000_000, Some(1_700_000_600), 3),
                jb("sshd", -5, None, u32::MAX),
                jb(&"x".repeat(255), i64::MAX, Some(i64::MIN), 0),
                JailBan {
                    origin: Some("web-3".into()),
                    ..jb("web", 7, Some(8), 1)
                },
                JailBan {
                    origin: Some("n".into()),
                    ..jb("zz", 7, None, 2)
                },
            ],
            history: vec![he(-1, "a"), he(10, "sshd"), he(i64::MAX, &"y".repeat(255))],
        };
        let e = rec.encode();
        assert_eq!(NetRecord::decode(&e), Some(rec.clone()));
        assert_eq!(NetRecord::decode_bans(&e), Some(rec.bans.clone()));
        assert_eq!(
            NetRecord::decode(&NetRecord::default().encode()),
            Some(NetRecord::default())
        );
    }

    /// A record written before origins were kept (flags 0 or 1, nothing
    /// after the count) reads the same, with no origin.
    #[test]
    fn records_without_origins_still_read() {
        let mut old = vec![1, 0, 4];
        old.extend_from_slice(b"sshd");
        old.extend_from_slice(&5i64.to_le_bytes());
        old.push(1);
        old.extend_from_slice(&9i64.to_le_bytes());
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(&[0, 0]);
        let rec = NetRecord::decode(&old).expect("old record");
        assert_eq!(rec.bans, vec![jb("sshd", 5, Some(9), 2)]);
        assert_eq!(rec.encode(), old);
        // Unknown flags are malformed, not guessed at.
        old[2 + 1 + 4 + 8] = 4;
        assert_eq!(NetRecord::decode(&old), None);
    }

    #[test]
    fn malformed_net_records_rejected() {
        let rec = NetRecord {
            bans: vec![jb("sshd", 1, None, 1)],
            history: vec![he(1, "sshd")],
        };
        let e = rec.encode();
        for cut in 0..e.len() {
            assert_eq!(NetRecord::decode(&e[..cut]), None, "truncated at {cut}");
        }
        let mut long = e.clone();
        long.push(0);
        assert_eq!(NetRecord::decode(&long), None, "trailing bytes");
        let mut bad_flag = e.clone();
        bad_flag[2 + 1 + 4 + 8] = 2; // has_expiry
        assert_eq!(NetRecord::decode(&bad_flag), None);
        let mut bad_utf8 = e;
        bad_utf8[3] = 0xff; // first byte of "sshd"
        assert_eq!(NetRecord::decode(&bad_utf8), None);
    }

    #[test]
    fn set_and_remove_ban_keep_jail_order() {
        let mut r = NetRecord::default();
        r.set_ban(jb("sshd", 1, None, 1));
        r.set_ban(jb("nginx", 2, None, 1));
        r.set_ban(jb("sshd", 3, Some(4), 2));
        assert_eq!(r.bans, [jb("nginx", 2, None, 1), jb("sshd", 3, Some(4), 2)]);
        assert!(r.remove_ban("nginx"));
        assert!(!r.remove_ban("nginx"));
        assert_eq!(r.bans, [jb("sshd", 3, Some(4), 2)]);
    }

    #[test]
    fn history_ordered_deduplicated_bounded() {
        let mut r = NetRecord::default();
        for t in [5, 1, 3, 3, 9] {
            r.add_history(he(t, "sshd"), 3);
        }
        // 3 is not added twice; the oldest (1) is dropped.
        assert_eq!(r.history, [he(3, "sshd"), he(5, "sshd"), he(9, "sshd")]);
        r.add_history(he(3, "nginx"), 3);
        assert_eq!(r.history, [he(3, "nginx"), he(5, "sshd"), he(9, "sshd")]);
        // Older than all kept entries: in and straight out again.
        r.add_history(he(0, "sshd"), 3);
        assert_eq!(r.history, [he(3, "nginx"), he(5, "sshd"), he(9, "sshd")]);
    }
}
