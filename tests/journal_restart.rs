//! The journal source's reader process: a `journalctl` that dies is
//! reported, counted and restarted after the last cursor it printed, and
//! one that cannot start is retried with backoff. A fake `journalctl`
//! script stands in for the real one (no journal files needed).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::journal_run::*;
use tokio::time::Instant;

/// A fake journalctl: the first run prints two entries and dies; later runs
/// print what follows the cursor they were given, then stay up.
fn fake_journalctl(dir: &Path) -> PathBuf {
    let log = dir.join("args.log");
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{log}'
entry() {{ printf '{{"__CURSOR":"%s","__REALTIME_TIMESTAMP":"%s000000","_SYSTEMD_UNIT":"ssh.service","SYSLOG_IDENTIFIER":"sshd","_PID":"%s","MESSAGE":"%s"}}\n' "$1" "$2" "$3" "$4"; }}
case "$*" in
*--after-cursor=c2*)
    entry c3 1700000003 30 'Failed password for root from 192.0.2.3 port 22 ssh2'
    exec sleep 300 ;;
*--after-cursor=*)
    echo "unexpected cursor" >&2; exit 2 ;;
*)
    entry c1 1700000001 10 'Failed password for root from 192.0.2.1 port 22 ssh2'
    entry c2 1700000002 20 'Failed password for root from 192.0.2.2 port 22 ssh2'
    echo 'journalctl: simulated crash' >&2
    exit 1 ;;
esac
"#,
        log = log.display()
    );
    let path = dir.join("journalctl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn dying_reader_is_reported_and_restarted_after_its_last_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&[], vec![spec(2, &["_SYSTEMD_UNIT=ssh.service"])], None);
    cfg.journalctl = fake_journalctl(dir.path());
    let mut run = start(cfg);
    run.until("the entry after the restart", |r| r.lines(2).len() >= 3)
        .await;
    run.settle(Duration::from_millis(300)).await;
    assert_eq!(
        run.got[&2],
        [
            (
                1_700_000_001,
                "sshd[10]: Failed password for root from 192.0.2.1 port 22 ssh2".to_string()
            ),
            (
                1_700_000_002,
                "sshd[20]: Failed password for root from 192.0.2.2 port 22 ssh2".to_string()
            ),
            (
                1_700_000_003,
                "sshd[30]: Failed password for root from 192.0.2.3 port 22 ssh2".to_string()
            ),
        ]
    );
    let src = run.src.as_ref().unwrap();
    assert_eq!(src.restarts(), 1);
    assert_eq!(src.cursor().as_deref(), Some("c3"));
    // Cursors only ever move forward (c1 and c2 may come in one batch).
    assert_eq!(run.cursors.last().map(String::as_str), Some("c3"));
    assert!(run.cursors.contains(&"c2".to_string()), "{:?}", run.cursors);
    assert!(
        run.cursors.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        run.cursors
    );
    assert_eq!(run.errors.len(), 1, "{:?}", run.errors);
    let (source, message) = &run.errors[0];
    assert_eq!(*source, 2);
    assert!(
        message.contains("journalctl exited (exit status: 1)"),
        "{message}"
    );
    assert!(message.contains("simulated crash"), "{message}");
    let args = std::fs::read_to_string(dir.path().join("args.log")).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert_eq!(runs.len(), 2, "{args}");
    assert!(
        runs[0].starts_with("--follow --output=json --all --no-pager --output-fields="),
        "{args}"
    );
    assert!(
        runs[0].contains(" --since=@") && runs[0].ends_with(" _SYSTEMD_UNIT=ssh.service"),
        "{args}"
    );
    assert!(runs[1].contains(" --after-cursor=c2 --no-tail "), "{args}");
    // Dropping the source kills the child it restarted.
    let pid = src.pid().expect("the restarted reader runs");
    drop(run.src.take());
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
        assert!(
            Instant::now() < deadline,
            "journalctl {pid} survived its source"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_journalctl_is_retried_with_backoff() {
    let mut cfg = config(&[], vec![spec(0, &["_SYSTEMD_UNIT=ssh.service"])], None);
    cfg.journalctl = PathBuf::from("/nonexistent/journalctl");
    let mut run = start(cfg);
    run.until("two failures", |r| r.errors.len() >= 2).await;
    assert!(
        run.errors[0].1.contains("cannot start journalctl"),
        "{:?}",
        run.errors
    );
    assert!(
        run.errors[1].1.contains("restarting in 200ms"),
        "{:?}",
        run.errors
    );
    assert!(run.src.as_ref().unwrap().restarts() >= 2);
}
