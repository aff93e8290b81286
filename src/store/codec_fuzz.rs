//! Fuzzing the state file's decoders (property tests, stable Rust): any
//! bytes in a value or key give a record or `None` (which the store reports
//! as a corrupt file), never a panic; and what is encoded decodes back.
//! Cases: `BANWARDEN_FUZZ_CASES` (default 512); see `tests/fuzz.rs`.

use proptest::prelude::*;

use super::codec::{decode_net, encode_net, HistEntry, JailBan, NetRecord};
use super::positions::{decode_pos, encode_pos};
use crate::source::FilePos;

fn config() -> ProptestConfig {
    let cases = std::env::var("BANWARDEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn record() -> impl Strategy<Value = NetRecord> {
    let ban = (
        "[a-z]{1,12}",
        any::<i64>(),
        any::<Option<i64>>(),
        any::<u32>(),
        proptest::option::of("[a-z0-9.-]{1,64}"),
    )
        .prop_map(|(jail, banned_at, expires, count, origin)| JailBan {
            jail,
            banned_at,
            expires,
            count,
            origin,
        });
    let hist = ("[a-z]{1,12}", any::<i64>()).prop_map(|(jail, time)| HistEntry { time, jail });
    (
        proptest::collection::vec(ban, 0..4),
        proptest::collection::vec(hist, 0..8),
    )
        .prop_map(|(bans, history)| NetRecord { bans, history })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_decode_to_a_record_or_none(v in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = NetRecord::decode(&v);
        let _ = NetRecord::decode_bans(&v);
        let _ = decode_net(&v);
        let _ = decode_pos(&v, &v);
        let _ = decode_pos(b"/var/log/x", &v);
    }

    #[test]
    fn truncated_or_flipped_records_decode_to_a_record_or_none(
        rec in record(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = rec.encode();
        let _ = NetRecord::decode(&bytes[..cut.index(bytes.len() + 1)]);
        let mut flipped = bytes.clone();
        if !flipped.is_empty() {
            let i = flip.index(flipped.len());
            flipped[i] ^= 1 << bit;
        }
        let _ = NetRecord::decode(&flipped);
        let _ = NetRecord::decode_bans(&flipped);
    }

    #[test]
    fn records_nets_and_positions_round_trip(
        rec in record(),
        v6 in any::<bool>(),
        addr in any::<u128>(),
        len in 0u8..=128,
        pos in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        prop_assert_eq!(NetRecord::decode(&rec.encode()), Some(rec));
        let net: ipnet::IpNet = if v6 {
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(addr), len).map(Into::into).unwrap_or_default()
        } else {
            ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(addr as u32), len % 33)
                .map(Into::into)
                .unwrap_or_default()
        };
        prop_assert_eq!(decode_net(&encode_net(net)), Some(net));
        let p = FilePos {
            path: "/var/log/app.log".into(),
            dev: pos.0,
            ino: pos.1,
            offset: pos.2,
            fingerprint: pos.3,
        };
        prop_assert_eq!(decode_pos(b"/var/log/app.log", &encode_pos(&p)), Some(p));
    }
}
