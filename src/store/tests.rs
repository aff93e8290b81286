use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ban(jail: &str, n: &str, banned_at: i64, expires: Option<i64>, count: u32) -> BanRecord {
    BanRecord {
        jail: jail.into(),
        net: net(n),
        banned_at,
        expires,
        count,
        origin: None,
    }
}

fn open_tmp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// A position of the file at `path` (its inode told by the path's length).
fn pos(path: &str, offset: u64) -> FilePos {
    FilePos {
        path: path.into(),
        dev: 2049,
        ino: path.len() as u64,
        offset,
        fingerprint: 0xdead_beef_0bad_f00d,
    }
}

/// The `i`-th distinct IPv4 host of a large batch.
fn host(i: u32) -> IpNet {
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

#[test]
fn reopen_after_drop_sees_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.record_bans(&[
            ban("sshd", "192.0.2.1/32", 100, None, 3),
            ban("sshd", "2001:db8::/64", 100, Some(999), 1),
        ])
        .unwrap();
        s.remove_bans(&[("sshd".into(), net("2001:db8::/64"))])
            .unwrap();
        s.save_positions(&[pos("/var/log/auth.log", 42)]).unwrap();
        s.set_cursor("journal", "cursor-1").unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(
        s.active_bans(0).unwrap(),
        [ban("sshd", "192.0.2.1/32", 100, None, 3)]
    );
    assert_eq!(
        s.ban_count(net("2001:db8::/64"), Some("sshd"), 0).unwrap(),
        1
    );
    assert_eq!(s.positions().unwrap(), [pos("/var/log/auth.log", 42)]);
    assert_eq!(s.cursor("journal").unwrap().as_deref(), Some("cursor-1"));
}

#[test]
fn second_open_while_in_use_is_a_clear_error() {
    let (dir, _s) = open_tmp();
    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    assert!(e.to_string().contains("another banwarden"), "{e}");
}

fn assert_corrupt(e: StoreError, file: &Path) {
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(STATE_FILE);
    // Deterministic pseudo-random bytes (xorshift), a few pages' worth.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for content in [&garbage[..], b"not a database\n", &[0u8; 1]] {
        std::fs::write(&file, content).unwrap();
        assert_corrupt(Store::open(dir.path()).unwrap_err(), &file);
    }
}

#[test]
fn wrong_schema_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let db = Database::open(dir.path().join(STATE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(META_SCHEMA, SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let e = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(e, StoreError::Schema { found, .. } if found == SCHEMA_VERSION + 1),
        "{e}"
    );
}

#[test]
fn damaged_file_never_panics() {
    // Damage a real state file in many places: opening and reading it must
    // either work or return an error, never panic. Whole-file garbage is
    // covered above; this covers damage behind a valid header.
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        let bans: Vec<_> = (0..2000)
            .map(|i| BanRecord {
                jail: "sshd".into(),
                net: host(i),
                banned_at: 1,
                expires: None,
                count: 1,
                origin: None,
            })
            .collect();
        s.record_bans(&bans).unwrap();
        s.save_positions(&[pos("/var/log/auth.log", 1)]).unwrap();
    }
    let file = dir.path().join(STATE_FILE);
    let good = std::fs::read(&file).unwrap();
    let mut errors = 0;
    // About 150 spots spread over the file (an odd stride, so not page-aligned).
    let stride = (good.len() / 150) | 1;
    for (i, off) in (0..good.len()).step_by(stride).enumerate() {
        let mut bad = good.clone();
        for b in &mut bad[off..(off + 64).min(good.len())] {
            *b ^= 0x5a ^ (i as u8);
        }
        std::fs::write(&file, &bad).unwrap();
        let r = std::panic::catch_unwind(|| {
            let s = Store::open(dir.path())?;
            s.active_bans(0)?;
            s.positions()?;
            s.ban_count(host(7), None, 0)?;
            Ok::<_, StoreError>(())
        });
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                assert!(e.to_string().contains(STATE_FILE), "{e}");
            }
            Err(_) => panic!("damage at offset {off} made the store panic"),
        }
    }
    // Some damage must have been noticed, or the test proves nothing.
    eprintln!("{} bytes, {errors} damaged copies refused", good.len());
    assert!(errors > 0);
}

/// Env var that turns `sigkill_mid_write_keeps_committed_batches` into its own child.
const CHILD_ENV: &str = "BANWARDEN_STORE_CRASH_CHILD";
const CHILD_BATCH: u32 = 500;

/// The child: records batches `start..` forever, printing each batch number
/// once its commit has returned.
fn crash_child(dir: &Path, start: u32) -> ! {
    let s = Store::open(dir).unwrap();
    let mut out = std::io::stdout().lock();
    for b in start.. {
        let batch: Vec<_> = (0..CHILD_BATCH)
            .map(|i| BanRecord {
                jail: format!("j{}", b % 3),
                net: host(b * CHILD_BATCH + i),
                banned_at: i64::from(b),
                expires: None,
                count: b,
                origin: None,
            })
            .collect();
        s.record_bans(&batch).unwrap();
        writeln!(out, "committed {b}").unwrap();
        out.flush().unwrap();
    }
    unreachable!()
}

#[test]
fn sigkill_mid_write_keeps_committed_batches() {
    if let Ok(v) = std::env::var(CHILD_ENV) {
        let (dir, start) = v.split_once('|').unwrap();
        crash_child(Path::new(dir), start.parse().unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut reported: Vec<u32> = Vec::new();
    let mut start = 0;
    // Several rounds, killed after different amounts of work, each reopening
    // what the previous killed child left behind.
    for (round, kill_after) in [3usize, 10, 25, 1].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::tests::sigkill_mid_write_keeps_committed_batches",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}|{start}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < kill_after {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                reported.push(n.parse().unwrap());
                seen += 1;
            }
            assert!(Instant::now() < deadline, "child too slow");
        }
        // Sometimes kill right away, sometimes a little into the next commit.
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(3));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines written before the kill are still in the pipe.
        for line in lines {
            if let Some(n) = line.unwrap().strip_prefix("committed ") {
                reported.push(n.parse().unwrap());
            }
        }
        start = reported.iter().max().unwrap() + 10; // skip any half-done batch numbers

        let s = Store::open(dir.path()).expect("store must reopen after SIGKILL");
        let bans = s.active_bans(0).unwrap();
        let mut per_batch = std::collections::BTreeMap::<u32, u32>::new();
        for b in &bans {
            *per_batch.entry(b.count).or_default() += 1;
            assert_eq!(b.jail, format!("j{}", b.count % 3));
            assert_eq!(b.banned_at, i64::from(b.count));
        }
        for r in &reported {
            assert_eq!(
                per_batch.get(r),
                Some(&CHILD_BATCH),
                "batch {r} was reported committed"
            );
        }
        // Atomicity: any batch present at all is present whole.
        for (b, n) in &per_batch {
            assert_eq!(*n, CHILD_BATCH, "batch {b} is torn");
        }
        drop(s);
    }
}

#[test]
#[ignore = "timing; run with --release -- --ignored --nocapture"]
fn perf_100k() {
    const N: u32 = 100_000;
    let (dir, s) = open_tmp();
    let bans: Vec<_> = (0..N)
        .map(|i| BanRecord {
            jail: ["sshd", "nginx-http-auth", "postfix"][(i % 3) as usize].into(),
            net: host(i.wrapping_mul(2_654_435_761)),
            banned_at: 1_700_000_000,
            expires: if i % 10 == 0 {
                None
            } else {
                Some(1_700_000_000 + 3600 + i64::from(i))
            },
            count: 1,
            origin: None,
        })
        .collect();
    let t = Instant::now();
    s.record_bans(&bans).unwrap();
    let record = t.elapsed();

    let t = Instant::now();
    let active = s.active_bans(1_700_000_000).unwrap();
    let list = t.elapsed();
    assert_eq!(active.len(), N as usize);

    let t = Instant::now();
    for b in bans.iter().take(10_000) {
        s.ban_count(b.net, Some(&b.jail), 0).unwrap();
    }
    let counts = t.elapsed();

    let t = Instant::now();
    s.save_positions(&[pos("/var/log/auth.log", 1)]).unwrap();
    let small_commit = t.elapsed();

    drop(s);
    let t = Instant::now();
    let s = Store::open(dir.path()).unwrap();
    let active = s.active_bans(1_700_000_000).unwrap();
    let reopen = t.elapsed();
    assert_eq!(active.len(), N as usize);

    let t = Instant::now();
    s.record_bans(&bans).unwrap();
    let rerecord = t.elapsed();

    let t = Instant::now();
    let purged = s
        .purge_expired(1_700_000_000 + 3600 + i64::from(N / 2), 86_400)
        .unwrap();
    let purge = t.elapsed();
    assert!(purged > 0);

    let size = std::fs::metadata(dir.path().join(STATE_FILE))
        .unwrap()
        .len();
    println!("store perf, {N} bans:");
    println!("  record_bans (new)        {record:?}");
    println!("  record_bans (again)      {rerecord:?}");
    println!("  active_bans              {list:?}");
    println!("  reopen + active_bans     {reopen:?}");
    println!("  10,000 ban_count         {counts:?}");
    println!("  save_positions (1)       {small_commit:?}");
    println!("  purge_expired ({purged}) {purge:?}");
    println!("  file size                {} KiB", size / 1024);
    if !cfg!(debug_assertions) {
        assert!(
            record < Duration::from_millis(1000),
            "record_bans {record:?}"
        );
        assert!(list < Duration::from_millis(500), "active_bans {list:?}");
    }
}
