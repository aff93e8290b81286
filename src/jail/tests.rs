//! Unit tests of a jail: windows, bans, escalation, allow-lists and bounds.

use super::*;

fn jail(maxretry: u32, findtime: i64, bantime: Option<i64>) -> Jail {
    let mut s = JailSettings::new(
        "j",
        maxretry,
        findtime,
        bantime,
        IgnoreList::new(vec!["10.0.0.0/8".parse().unwrap()], false),
    );
    s.max_tracked = 1000;
    Jail::new(s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn bans_on_maxretry_within_window() {
    let mut j = jail(3, 60, Some(600));
    assert_eq!(
        j.failure(ip("1.2.3.4"), 100, 100),
        Verdict::Counted { failures: 1 }
    );
    assert_eq!(
        j.failure(ip("1.2.3.4"), 110, 110),
        Verdict::Counted { failures: 2 }
    );
    match j.failure(ip("1.2.3.4"), 120, 120) {
        Verdict::Ban(b) => {
            assert_eq!((b.at, b.failures, b.expires), (120, 3, Some(720)));
            assert_eq!(b.net, "1.2.3.4/32".parse::<IpNet>().unwrap());
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(j.failure(ip("1.2.3.4"), 121, 121), Verdict::AlreadyBanned);
    assert_eq!(j.tracked(), 0);
}

#[test]
fn failures_slide_out_of_the_window() {
    let mut j = jail(3, 60, Some(600));
    j.failure(ip("1.2.3.4"), 0, 0);
    j.failure(ip("1.2.3.4"), 30, 30);
    assert_eq!(
        j.failure(ip("1.2.3.4"), 61, 61),
        Verdict::Counted { failures: 2 }
    );
    assert!(matches!(j.failure(ip("1.2.3.4"), 62, 62), Verdict::Ban(_)));
}

#[test]
fn flood_bans_once_then_rebans_after_expiry() {
    let mut j = jail(2, 60, Some(10));
    let bans = (0..400)
        .filter(|_| matches!(j.failure(ip("5.5.5.5"), 1, 1), Verdict::Ban(_)))
        .count();
    assert_eq!(bans, 1);
    assert!(j.is_banned(&"5.5.5.5/32".parse().unwrap(), 10));
    assert!(!j.is_banned(&"5.5.5.5/32".parse().unwrap(), 11));
    j.failure(ip("5.5.5.5"), 12, 12);
    assert!(matches!(j.failure(ip("5.5.5.5"), 13, 13), Verdict::Ban(_)));
}

#[test]
fn permanent_ban_never_expires() {
    let mut j = jail(1, 60, None);
    assert!(matches!(
        j.failure(ip("::1:2"), 0, 0),
        Verdict::Ban(b) if b.expires.is_none()
    ));
    assert_eq!(
        j.failure(ip("::1:2"), i64::MAX / 2, i64::MAX / 2),
        Verdict::AlreadyBanned
    );
}

#[test]
fn ignored_addresses_are_never_counted() {
    let mut j = jail(1, 60, Some(10));
    assert!(matches!(
        j.failure(ip("10.1.2.3"), 0, 0),
        Verdict::Ignored(_)
    ));
    assert_eq!(j.tracked(), 0);
}

#[test]
fn lines_older_than_findtime_do_not_count() {
    let mut j = jail(1, 60, Some(10));
    assert_eq!(j.failure(ip("1.1.1.1"), 0, 60), Verdict::TooOld);
}

#[test]
fn ipv6_counts_per_64() {
    let mut j = jail(3, 60, Some(60));
    j.failure(ip("2001:db8:1:2::1"), 0, 0);
    j.failure(ip("2001:db8:1:2::ffff"), 1, 1);
    match j.failure(ip("2001:db8:1:2:aaaa::9"), 2, 2) {
        Verdict::Ban(b) => assert_eq!(b.net.to_string(), "2001:db8:1:2::/64"),
        v => panic!("{v:?}"),
    }
    assert_eq!(
        j.failure(ip("2001:db8:1:3::1"), 3, 3),
        Verdict::Counted { failures: 1 }
    );
}

#[test]
fn a_captured_subnet_is_counted_and_banned_as_that_subnet() {
    let mut j = jail(2, 60, Some(60));
    let a = ip("198.51.100.0");
    assert_eq!(
        j.failure_in(a, Some(24), 0, 0),
        Verdict::Counted { failures: 1 }
    );
    // The address alone is another key.
    assert_eq!(
        j.failure(ip("198.51.100.0"), 1, 1),
        Verdict::Counted { failures: 1 }
    );
    match j.failure_in(a, Some(24), 2, 2) {
        Verdict::Ban(b) => assert_eq!(b.net.to_string(), "198.51.100.0/24"),
        v => panic!("{v:?}"),
    }
    assert_eq!(j.failure_in(a, Some(24), 3, 3), Verdict::AlreadyBanned);
    assert_eq!(j.tracked(), 1);
    // A subnet narrower than the jail's prefix counts as the jail's.
    let v6 = ip("2001:db8:1:2::");
    j.failure_in(v6, Some(96), 4, 4);
    match j.failure(ip("2001:db8:1:2::9"), 5, 5) {
        Verdict::Ban(b) => assert_eq!(b.net.to_string(), "2001:db8:1:2::/64"),
        v => panic!("{v:?}"),
    }
    // A subnet holding an ignored address is never banned.
    assert!(matches!(
        j.failure_in(ip("10.0.0.0"), Some(8), 6, 6),
        Verdict::Ignored(_)
    ));
    assert!(matches!(
        j.failure_in(ip("8.0.0.0"), Some(5), 6, 6),
        Verdict::Ignored(_)
    ));
}

#[test]
fn factor_escalation_doubles_up_to_maxtime() {
    let mut j = jail(1, 60, Some(100));
    j.settings.increment = Some(Increment {
        rule: IncrementRule::Factor(2.0),
        maxtime: Some(350),
        window: 10_000,
        across_jails: false,
    });
    let mut lengths = Vec::new();
    let mut t = 0;
    for _ in 0..4 {
        match j.failure(ip("1.2.3.4"), t, t) {
            Verdict::Ban(b) => {
                lengths.push((b.count, b.bantime));
                t = b.expires.unwrap();
            }
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(
        lengths,
        vec![
            (1, Some(100)),
            (2, Some(200)),
            (3, Some(350)),
            (4, Some(350))
        ]
    );
}

#[test]
fn list_escalation_ends_permanent_and_window_forgets() {
    let inc = Increment {
        rule: IncrementRule::List(vec![Some(60), Some(120), None]),
        maxtime: None,
        window: 1000,
        across_jails: false,
    };
    assert_eq!(
        (1..=4)
            .map(|n| inc.bantime(Some(10), n))
            .collect::<Vec<_>>(),
        vec![Some(60), Some(120), None, None]
    );
    let mut j = jail(1, 60, Some(10));
    j.settings.increment = Some(inc);
    assert!(matches!(
        j.failure(ip("1.1.1.1"), 0, 0),
        Verdict::Ban(b) if b.bantime == Some(60)
    ));
    // 2000 s later the first ban is outside the window: back to the first step.
    assert!(matches!(
        j.failure(ip("1.1.1.1"), 2000, 2000),
        Verdict::Ban(b) if (b.bantime, b.count) == (Some(60), 1)
    ));
}

#[test]
fn manual_ban_overrides_length() {
    let mut j = jail(5, 60, Some(10));
    let b = j.manual_ban("192.0.2.0/24".parse().unwrap(), 100, Some(None));
    assert_eq!((b.expires, b.count), (None, 1));
    assert!(j.is_banned(&"192.0.2.0/24".parse().unwrap(), 1 << 40));
}

#[test]
fn tracked_addresses_are_bounded() {
    let mut j = jail(5, 1_000_000, Some(10));
    for i in 0..5000u32 {
        j.failure(IpAddr::from(i.to_be_bytes()), i as i64, i as i64);
        assert!(j.tracked() <= 1000);
    }
    // The newest address survived eviction.
    assert!(j
        .tracked_failures()
        .any(|(n, _)| n.addr() == IpAddr::from(4999u32.to_be_bytes())));
}

/// Every ban is seen by the next failure of its key, however many there
/// are (the ban marks never miss one), across sweeps that drop the expired
/// ones, and for bans recorded from elsewhere; a lifted ban is not.
#[test]
fn every_active_ban_is_seen_across_sweeps() {
    let mut j = jail(1, 60, Some(1000));
    let addr = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0xc000_0000 + i * 13));
    for i in 0..20_000 {
        assert!(
            matches!(j.failure(addr(i), 100, 100), Verdict::Ban(_)),
            "{i}"
        );
    }
    for i in 0..20_000 {
        assert_eq!(j.failure(addr(i), 101, 101), Verdict::AlreadyBanned, "{i}");
    }
    // Expired at 1100: swept, and counted (banned) again.
    j.sweep(1100);
    assert!(matches!(j.failure(addr(7), 1100, 1100), Verdict::Ban(_)));
    assert_eq!(j.failure(addr(7), 1101, 1101), Verdict::AlreadyBanned);
    let elsewhere: IpNet = "203.0.113.0/24".parse().unwrap();
    j.note_ban(elsewhere, Some(5000));
    assert!(j.is_banned(&elsewhere, 1200));
    assert!(j.forget_ban(&elsewhere));
    assert!(!j.is_banned(&elsewhere, 1200));
}

/// A reload that changes `maxretry` or the prefix lengths counts by the
/// new settings (the table is laid out and keyed by them); bans stay.
#[test]
fn reconfigured_counting_follows_the_new_settings() {
    let mut j = jail(2, 60, Some(600));
    assert!(matches!(
        j.failure(ip("1.2.3.4"), 1, 1),
        Verdict::Counted { .. }
    ));
    assert!(matches!(j.failure(ip("1.2.3.4"), 2, 2), Verdict::Ban(_)));
    let mut s = j.settings.clone();
    s.maxretry = 6;
    s.ipv4_prefix = 24;
    j.reconfigure(s);
    for t in 3..8 {
        assert_eq!(
            j.failure(ip("192.0.2.9"), t, t),
            Verdict::Counted {
                failures: (t - 2) as u32
            }
        );
    }
    match j.failure(ip("192.0.2.9"), 8, 8) {
        Verdict::Ban(b) => assert_eq!((b.net.to_string(), b.failures), ("192.0.2.0/24".into(), 6)),
        v => panic!("{v:?}"),
    }
    assert!(j.is_banned(&"1.2.3.4/32".parse().unwrap(), 9));
}

/// A reload that only changes `maxretry` keeps the failures counted so
/// far: raised, they count toward the new bound (even past the old
/// layout's room); lowered, the latest are kept and the next failure bans.
#[test]
fn a_new_maxretry_keeps_the_counts() {
    let mut j = jail(3, 600, Some(600));
    for t in 1..3 {
        j.failure(ip("192.0.2.7"), t, t);
    }
    let mut s = j.settings.clone();
    s.maxretry = 10;
    j.reconfigure(s);
    for t in 3..10 {
        assert_eq!(
            j.failure(ip("192.0.2.7"), t, t),
            Verdict::Counted { failures: t as u32 },
            "at {t}"
        );
    }
    let mut s = j.settings.clone();
    s.maxretry = 4;
    j.reconfigure(s);
    match j.failure(ip("192.0.2.7"), 10, 10) {
        Verdict::Ban(b) => assert_eq!(b.failures, 4),
        v => panic!("{v:?}"),
    }
}
