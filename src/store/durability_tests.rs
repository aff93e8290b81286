//! Unit tests of the store's durability: reopening, a second opener,
//! damaged and foreign files, a writer killed mid-commit, and scale.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::tests::{ban, host, net, open_tmp, pos};
use super::*;

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
                "store::durability_tests::sigkill_mid_write_keeps_committed_batches",
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
