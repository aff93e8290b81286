use std::path::PathBuf;

use super::*;

pub(super) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(super) fn ban(
    jail: &str,
    n: &str,
    banned_at: i64,
    expires: Option<i64>,
    count: u32,
) -> BanRecord {
    BanRecord {
        jail: jail.into(),
        net: net(n),
        banned_at,
        expires,
        count,
        origin: None,
    }
}

pub(super) fn open_tmp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A position of the file at `path` (its inode told by the path's length).
pub(super) fn pos(path: &str, offset: u64) -> FilePos {
    FilePos {
        path: path.into(),
        dev: 2049,
        ino: path.len() as u64,
        offset,
        fingerprint: 0xdead_beef_0bad_f00d,
    }
}

/// The `i`-th distinct IPv4 host of a large batch.
pub(super) fn host(i: u32) -> IpNet {
    IpNet::V4(
        ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i)), 32).unwrap(),
    )
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<StoreError>();
}

#[test]
fn open_creates_dir_and_file_with_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/state");
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.path(), dir.join(STATE_FILE));
    let dmode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    let fmode = std::fs::metadata(dir.join(STATE_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    // The umask can only remove bits.
    assert_eq!(dmode & !0o750, 0, "dir mode {dmode:o}");
    assert_eq!(fmode & !0o640, 0, "file mode {fmode:o}");
    assert!(store.active_bans(0).unwrap().is_empty());
    assert!(store.positions().unwrap().is_empty());
}

#[test]
fn bans_round_trip() {
    let (_d, s) = open_tmp();
    let bans = vec![
        ban("sshd", "192.0.2.1/32", 100, Some(700), 1),
        ban("sshd", "2001:db8::1/128", 100, None, 2),
        ban("nginx", "198.51.100.0/24", 150, Some(10_000), 5),
        ban("nginx", "192.0.2.1/32", 160, Some(760), 1),
        // The fleet node that decided a ban is kept with it.
        BanRecord {
            origin: Some("web-3".into()),
            ..ban("web", "192.0.2.1/32", 170, Some(800), 1)
        },
    ];
    s.record_bans(&bans).unwrap();
    let mut got = s.active_bans(200).unwrap();
    got.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
    let mut want = bans.clone();
    want.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
    assert_eq!(got, want);
}

#[test]
fn nets_are_stored_without_host_bits() {
    let (_d, s) = open_tmp();
    s.record_bans(&[ban("sshd", "10.1.2.3/16", 1, None, 1)])
        .unwrap();
    assert_eq!(s.active_bans(2).unwrap()[0].net, net("10.1.0.0/16"));
    // The same network written either way is the same ban.
    assert_eq!(
        s.remove_bans(&[("sshd".into(), net("10.1.9.9/16"))])
            .unwrap(),
        1
    );
    assert!(s.active_bans(2).unwrap().is_empty());
}

#[test]
fn ipv4_and_mapped_ipv6_are_distinct() {
    let (_d, s) = open_tmp();
    s.record_bans(&[
        ban("sshd", "1.2.3.4/32", 1, None, 1),
        ban("sshd", "::ffff:1.2.3.4/128", 1, None, 1),
    ])
    .unwrap();
    assert_eq!(s.active_bans(2).unwrap().len(), 2);
}

#[test]
fn expired_bans_not_returned_and_purged() {
    let (_d, s) = open_tmp();
    s.record_bans(&[
        ban("sshd", "192.0.2.1/32", 100, Some(200), 1),
        ban("sshd", "192.0.2.2/32", 100, Some(300), 1),
        ban("sshd", "192.0.2.3/32", 100, None, 1),
    ])
    .unwrap();
    let nets = |v: Vec<BanRecord>| v.into_iter().map(|b| b.net).collect::<Vec<_>>();
    assert_eq!(s.active_bans(199).unwrap().len(), 3);
    // Expiry at `now` has passed.
    assert_eq!(
        nets(s.active_bans(200).unwrap()),
        [net("192.0.2.2/32"), net("192.0.2.3/32")]
    );
    assert_eq!(
        nets(s.active_bans(1_000_000).unwrap()),
        [net("192.0.2.3/32")]
    );

    assert_eq!(s.purge_expired(250, 1_000_000).unwrap(), 1);
    // Purged means gone, even for a reader asking about an earlier time.
    assert_eq!(
        nets(s.active_bans(0).unwrap()),
        [net("192.0.2.2/32"), net("192.0.2.3/32")]
    );
    assert_eq!(s.purge_expired(250, 1_000_000).unwrap(), 0);
    assert_eq!(s.purge_expired(i64::MAX, i64::MAX).unwrap(), 1);
    assert_eq!(nets(s.active_bans(0).unwrap()), [net("192.0.2.3/32")]);
    // History survives the purge of the bans (it is within the horizon).
    assert_eq!(s.ban_count(net("192.0.2.1/32"), None, 0).unwrap(), 1);
}

#[test]
fn reban_updates_record_and_count() {
    let (_d, s) = open_tmp();
    s.record_bans(&[ban("sshd", "192.0.2.1/32", 100, Some(200), 1)])
        .unwrap();
    assert_eq!(
        s.ban_count(net("192.0.2.1/32"), Some("sshd"), 0).unwrap(),
        1
    );
    s.record_bans(&[ban("sshd", "192.0.2.1/32", 300, Some(900), 2)])
        .unwrap();
    assert_eq!(
        s.active_bans(0).unwrap(),
        [ban("sshd", "192.0.2.1/32", 300, Some(900), 2)]
    );
    assert_eq!(
        s.ban_count(net("192.0.2.1/32"), Some("sshd"), 0).unwrap(),
        2
    );
    // Twice in one batch: the later one wins.
    s.record_bans(&[
        ban("sshd", "192.0.2.1/32", 1000, Some(1100), 3),
        ban("sshd", "192.0.2.1/32", 1001, None, 4),
    ])
    .unwrap();
    assert_eq!(
        s.active_bans(0).unwrap(),
        [ban("sshd", "192.0.2.1/32", 1001, None, 4)]
    );
    assert_eq!(
        s.ban_count(net("192.0.2.1/32"), Some("sshd"), 0).unwrap(),
        4
    );
}

#[test]
fn replayed_batch_does_not_inflate_history() {
    let (_d, s) = open_tmp();
    let batch = [ban("sshd", "192.0.2.1/32", 100, Some(200), 1)];
    s.record_bans(&batch).unwrap();
    s.record_bans(&batch).unwrap();
    assert_eq!(s.ban_count(net("192.0.2.1/32"), None, 0).unwrap(), 1);
}

#[test]
fn ban_count_windows_per_jail_and_across_jails() {
    let (_d, s) = open_tmp();
    let a = "203.0.113.7/32";
    s.record_bans(&[ban("sshd", a, 100, Some(160), 1)]).unwrap();
    s.record_bans(&[
        ban("sshd", a, 200, Some(260), 2),
        ban("nginx", a, 210, Some(270), 1),
    ])
    .unwrap();
    s.record_bans(&[
        ban("postfix", a, 300, None, 1),
        ban("sshd", "203.0.113.8/32", 300, None, 1),
    ])
    .unwrap();
    let n = net(a);
    assert_eq!(s.ban_count(n, None, 0).unwrap(), 4);
    assert_eq!(s.ban_count(n, None, 100).unwrap(), 4, "since is inclusive");
    assert_eq!(s.ban_count(n, None, 101).unwrap(), 3);
    assert_eq!(s.ban_count(n, None, 211).unwrap(), 1);
    assert_eq!(s.ban_count(n, None, 301).unwrap(), 0);
    assert_eq!(s.ban_count(n, Some("sshd"), 0).unwrap(), 2);
    assert_eq!(s.ban_count(n, Some("sshd"), 150).unwrap(), 1);
    assert_eq!(s.ban_count(n, Some("nginx"), 0).unwrap(), 1);
    assert_eq!(
        s.ban_count(n, Some("ssh"), 0).unwrap(),
        0,
        "jail is matched exactly"
    );
    assert_eq!(s.ban_count(net("203.0.113.8/32"), None, 0).unwrap(), 1);
    assert_eq!(s.ban_count(net("203.0.113.9/32"), None, 0).unwrap(), 0);
    // A subnet's history is its own, not its hosts'.
    assert_eq!(s.ban_count(net("203.0.113.0/24"), None, 0).unwrap(), 0);
    // Manual unban keeps the history.
    assert_eq!(s.remove_bans(&[("postfix".into(), n)]).unwrap(), 1);
    assert_eq!(s.ban_count(n, None, 0).unwrap(), 4);
}

#[test]
fn history_bounded_to_newest() {
    let (_d, s) = open_tmp();
    let n = "198.51.100.9/32";
    // 40 bans, in batches of 5, times 1..=40.
    for chunk in (1..=40i64).collect::<Vec<_>>().chunks(5) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|&t| ban("sshd", n, t, Some(t + 1), t as u32))
            .collect();
        s.record_bans(&batch).unwrap();
    }
    assert_eq!(s.ban_count(net(n), None, 0).unwrap(), HISTORY_MAX as u32);
    // The oldest were dropped: times 9..=40 remain.
    assert_eq!(s.ban_count(net(n), None, 9).unwrap(), 32);
    assert_eq!(s.ban_count(net(n), None, 10).unwrap(), 31);
    // A late, older ban does not displace newer ones.
    s.record_bans(&[ban("sshd", n, 0, Some(1), 1)]).unwrap();
    assert_eq!(s.ban_count(net(n), None, 9).unwrap(), 32);
    assert_eq!(s.ban_count(net(n), None, i64::MIN).unwrap(), 32);
}

#[test]
fn purge_drops_history_older_than_horizon() {
    let (_d, s) = open_tmp();
    let (a, b) = ("192.0.2.10/32", "192.0.2.11/32");
    s.record_bans(&[
        ban("sshd", a, 100, Some(101), 1),
        ban("sshd", b, 100, Some(101), 1),
    ])
    .unwrap();
    s.record_bans(&[ban("nginx", a, 500, None, 1)]).unwrap();
    // now = 1000, horizon = 600: keep history at or after 400.
    assert_eq!(s.purge_expired(1000, 600).unwrap(), 2);
    assert_eq!(s.ban_count(net(a), None, i64::MIN).unwrap(), 1);
    assert_eq!(s.ban_count(net(a), Some("nginx"), i64::MIN).unwrap(), 1);
    assert_eq!(s.ban_count(net(b), None, i64::MIN).unwrap(), 0);
    // The permanent ban itself stays.
    assert_eq!(
        s.active_bans(1000).unwrap(),
        [ban("nginx", a, 500, None, 1)]
    );
    // A huge horizon does not overflow.
    assert_eq!(s.purge_expired(0, i64::MAX).unwrap(), 0);
    assert_eq!(s.ban_count(net(a), None, i64::MIN).unwrap(), 1);
}

#[test]
fn one_net_in_several_jails() {
    let (_d, s) = open_tmp();
    let a = "192.0.2.50/32";
    s.record_bans(&[
        ban("sshd", a, 10, Some(100), 1),
        ban("nginx", a, 20, None, 2),
    ])
    .unwrap();
    s.record_bans(&[ban("postfix", a, 30, Some(50), 1)])
        .unwrap();
    assert_eq!(
        s.active_bans(40).unwrap(),
        [
            ban("nginx", a, 20, None, 2),
            ban("postfix", a, 30, Some(50), 1),
            ban("sshd", a, 10, Some(100), 1)
        ]
    );
    // Expiry and unban touch only their own jail's ban.
    assert_eq!(s.purge_expired(60, i64::MAX).unwrap(), 1);
    assert_eq!(s.remove_bans(&[("sshd".into(), net(a))]).unwrap(), 1);
    assert_eq!(s.active_bans(0).unwrap(), [ban("nginx", a, 20, None, 2)]);
    assert_eq!(s.ban_count(net(a), None, 0).unwrap(), 3);
}

#[test]
fn remove_bans_counts_only_stored() {
    let (_d, s) = open_tmp();
    s.record_bans(&[
        ban("sshd", "192.0.2.1/32", 1, None, 1),
        ban("sshd", "192.0.2.2/32", 1, None, 1),
    ])
    .unwrap();
    let removed = s
        .remove_bans(&[
            ("sshd".into(), net("192.0.2.1/32")),
            ("nginx".into(), net("192.0.2.2/32")),
            ("sshd".into(), net("192.0.2.3/32")),
        ])
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        s.active_bans(0).unwrap(),
        [ban("sshd", "192.0.2.2/32", 1, None, 1)]
    );
}

#[test]
fn invalid_jail_name_is_an_error_and_writes_nothing() {
    let (_d, s) = open_tmp();
    for bad in ["", &"x".repeat(256)] {
        let e = s
            .record_bans(&[
                ban("sshd", "192.0.2.1/32", 1, None, 1),
                ban(bad, "192.0.2.2/32", 1, None, 1),
            ])
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains(STATE_FILE), "{e}");
    }
    assert!(s.active_bans(0).unwrap().is_empty());
}

#[test]
fn positions_round_trip() {
    use std::os::unix::ffi::OsStrExt;
    let (_d, s) = open_tmp();
    let weird = FilePos {
        path: PathBuf::from(std::ffi::OsStr::from_bytes(b"/var/log/\xff\xfe.log")),
        dev: u64::MAX,
        ino: 0,
        offset: 1 << 40,
        fingerprint: 1,
    };
    s.save_positions(&[
        pos("/var/log/auth.log", 10),
        pos("/var/log/nginx/access.log", 20),
        weird.clone(),
    ])
    .unwrap();
    // Upsert: a later save replaces the same file and keeps the others.
    s.save_positions(&[pos("/var/log/auth.log", 99)]).unwrap();
    let got = s.positions().unwrap();
    assert_eq!(
        got,
        vec![
            pos("/var/log/auth.log", 99),
            pos("/var/log/nginx/access.log", 20),
            weird
        ]
    );
    let auth = pos("/var/log/auth.log", 0);
    assert_eq!(
        s.remove_positions(&[(auth.dev, auth.ino), (1, 2)]).unwrap(),
        1
    );
    assert_eq!(s.positions().unwrap().len(), 2);
    // Keyed by the file, not its name: a renamed file keeps its position,
    // and a new file under the old name has its own.
    let renamed = FilePos {
        path: "/var/log/nginx/access.log.1".into(),
        ..pos("/var/log/nginx/access.log", 20)
    };
    s.save_positions(&[renamed.clone(), pos("/var/log/nginx/access.lo", 5)])
        .unwrap();
    let got = s.positions().unwrap();
    assert!(got.contains(&renamed) && got.len() == 3, "{got:?}");
}

#[test]
fn cursors_round_trip() {
    let (_d, s) = open_tmp();
    assert_eq!(s.cursor("journal").unwrap(), None);
    s.set_cursor("journal", "s=abc;i=1").unwrap();
    s.set_cursor("other", "").unwrap();
    assert_eq!(s.cursor("journal").unwrap().as_deref(), Some("s=abc;i=1"));
    s.set_cursor("journal", "s=abc;i=2").unwrap();
    assert_eq!(s.cursor("journal").unwrap().as_deref(), Some("s=abc;i=2"));
    assert_eq!(s.cursor("other").unwrap().as_deref(), Some(""));
}
