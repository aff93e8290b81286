//! The journal reader against real journal files and a real `journalctl`.
//!
//! There is no journald in the test environment (a container without systemd
//! as PID 1), so the tests write journal files themselves: they pipe entries
//! in the journal export format to `systemd-journal-remote --output=FILE -`
//! (which appends to an existing file), and the source follows those files
//! with `journalctl --file=FILE`, the same command line, parsing and routing
//! as for the system journal (which only drops `--file`).
//!
//! Covered: entries appended while following arrive with their own
//! `__REALTIME_TIMESTAMP` and in the `IDENT[PID]: MESSAGE` form (binary and
//! multi-line messages included); matches are applied by journalctl and per
//! jail in-process (OR within a field, AND across fields, `+`); a spec with
//! no match is refused without widening what the others read; all specs share
//! one journalctl process; the cursor resumes a new source exactly after the
//! last entry seen, with no entry twice; a one-shot read (dry-run) ends. A
//! dying reader, restarted after its last cursor, is `journal_restart.rs`;
//! the harness (writing entries, a running source) is `common::journal_run`.
//!
//! Not covered (needs a live journald): following the system journal itself,
//! journald rotating, vacuuming or corrupting its files under the reader, and
//! the permissions of `/var/log/journal` (root or the systemd-journal group).
//!
//! The tests needing `systemd-journal-remote` (Debian package of the same
//! name) skip with a message when it is missing, and fail instead when
//! `BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1` (CI installs it).

mod common;

use banwarden::source::SourceId;
use banwarden::UnixTime;
use std::time::Duration;

use common::journal::can_write_journal;
use common::journal_run::*;

#[tokio::test]
async fn entries_arrive_with_their_own_time_in_syslog_form() {
    if !can_write_journal() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("own-time.journal");
    let ssh = ("_SYSTEMD_UNIT", "ssh.service");
    let old = banwarden::now() - 7200;
    write(&file, &[ent(old, &[ssh, ("MESSAGE", "history")])]);
    // Resuming after the history entry, so that entries an hour old (told
    // apart from the time they are read) are delivered.
    let cursor = last_cursor(&file);
    let mut run = start(config(
        &[&file],
        vec![spec(7, &["_SYSTEMD_UNIT=ssh.service"])],
        Some(cursor),
    ));
    let t = banwarden::now() - 3600;
    let mut binary = ent(t + 3, &[ssh, ("SYSLOG_IDENTIFIER", "sshd")]);
    binary
        .fields
        .push(("MESSAGE", b"Invalid user \xff\xfe from 192.0.2.9".to_vec()));
    let mut late = ent(t + 5, &[ssh, ("MESSAGE", "end")]);
    late.us = 999_999;
    write(
        &file,
        &[
            ent(
                t,
                &[
                    ssh,
                    ("SYSLOG_IDENTIFIER", "sshd"),
                    ("_PID", "4242"),
                    ("SYSLOG_PID", "1"),
                    (
                        "MESSAGE",
                        "Failed password for root from 192.0.2.1 port 22 ssh2",
                    ),
                ],
            ),
            ent(
                t + 1,
                &[
                    ssh,
                    ("SYSLOG_IDENTIFIER", "sshd"),
                    ("SYSLOG_PID", "77"),
                    ("MESSAGE", "via syslog"),
                ],
            ),
            ent(
                t + 2,
                &[ssh, ("SYSLOG_IDENTIFIER", "kernel"), ("MESSAGE", "no pid")],
            ),
            binary,
            ent(
                t + 4,
                &[
                    ssh,
                    ("SYSLOG_IDENTIFIER", "sshd"),
                    ("MESSAGE", "two\nsshd[1]: lines\n"),
                ],
            ),
            late,
        ],
    );
    run.until("the last entry", |r| r.has(7, "end")).await;
    let got = &run.got[&7];
    let want = [
        (
            t,
            "sshd[4242]: Failed password for root from 192.0.2.1 port 22 ssh2",
        ),
        (t + 1, "sshd[77]: via syslog"),
        (t + 2, "kernel: no pid"),
        (t + 3, "sshd: Invalid user \u{fffd}\u{fffd} from 192.0.2.9"),
        (t + 4, "sshd: two sshd[1]: lines"),
        (t + 5, "end"),
    ];
    let got: Vec<(UnixTime, &str)> = got.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
    assert_eq!(got, want, "history must not be read, the rest in order");
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let cursor = run.cursors.last().expect("a cursor").clone();
    assert_eq!(run.src.as_ref().unwrap().cursor(), Some(cursor));
    assert_eq!(run.src.as_ref().unwrap().restarts(), 0);
}

#[tokio::test]
async fn matches_route_entries_and_all_specs_share_one_reader() {
    if !can_write_journal() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("matches.journal");
    write(
        &file,
        &[ent(
            banwarden::now() - 60,
            &[("_SYSTEMD_UNIT", "x"), ("MESSAGE", "init")],
        )],
    );
    let specs = vec![
        spec(0, &["_SYSTEMD_UNIT=ssh.service"]),
        // (a OR b) AND priority 3.
        spec(
            1,
            &[
                "_SYSTEMD_UNIT=a.service",
                "_SYSTEMD_UNIT=b.service",
                "PRIORITY=3",
            ],
        ),
        // identifier x, or unit c.
        spec(2, &["SYSLOG_IDENTIFIER=x", "+", "_SYSTEMD_UNIT=c.service"]),
        // Refused: reading every entry is not allowed.
        spec(3, &[]),
        spec(4, &["bad match"]),
    ];
    let mut run = start(config(&[&file], specs, None));
    let e = live;
    write(
        &file,
        &[
            e(0, &[("_SYSTEMD_UNIT", "ssh.service"), ("MESSAGE", "e1")]),
            e(
                1,
                &[
                    ("_SYSTEMD_UNIT", "a.service"),
                    ("PRIORITY", "3"),
                    ("MESSAGE", "e2"),
                ],
            ),
            e(
                2,
                &[
                    ("_SYSTEMD_UNIT", "b.service"),
                    ("PRIORITY", "3"),
                    ("MESSAGE", "e3"),
                ],
            ),
            e(
                3,
                &[
                    ("_SYSTEMD_UNIT", "a.service"),
                    ("PRIORITY", "6"),
                    ("MESSAGE", "e4"),
                ],
            ),
            e(
                4,
                &[
                    ("_SYSTEMD_UNIT", "c.service"),
                    ("SYSLOG_IDENTIFIER", "y"),
                    ("MESSAGE", "e5"),
                ],
            ),
            e(
                5,
                &[
                    ("_SYSTEMD_UNIT", "d.service"),
                    ("SYSLOG_IDENTIFIER", "x"),
                    ("MESSAGE", "e6"),
                ],
            ),
            e(
                6,
                &[
                    ("_SYSTEMD_UNIT", "d.service"),
                    ("SYSLOG_IDENTIFIER", "z"),
                    ("MESSAGE", "e7"),
                ],
            ),
            e(
                7,
                &[
                    ("_SYSTEMD_UNIT", "ssh.service"),
                    ("SYSLOG_IDENTIFIER", "x"),
                    ("MESSAGE", "e8"),
                ],
            ),
            e(8, &[("_SYSTEMD_UNIT", "ssh.service"), ("MESSAGE", "end")]),
        ],
    );
    run.until("the last entry", |r| r.has(0, "end")).await;
    run.settle(Duration::from_millis(300)).await;
    assert_eq!(run.lines(0), ["e1", "x: e8", "end"]);
    assert_eq!(run.lines(1), ["e2", "e3"]);
    assert_eq!(run.lines(2), ["y: e5", "x: e6", "x: e8"]);
    assert!(run.lines(3).is_empty() && run.lines(4).is_empty());
    let refused: Vec<SourceId> = run.errors.iter().map(|(s, _)| *s).collect();
    assert_eq!(refused, [3, 4], "{:?}", run.errors);
    assert!(
        run.errors[0].1.contains("at least one match"),
        "{:?}",
        run.errors
    );
    // One journalctl for the three jails.
    let needle = file.to_str().unwrap();
    assert_eq!(processes_with(needle), 1);
    let pid = run.src.as_ref().unwrap().pid().expect("journalctl running");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let union = [
        "_SYSTEMD_UNIT=ssh.service",
        "+",
        "_SYSTEMD_UNIT=a.service",
        "_SYSTEMD_UNIT=b.service",
        "PRIORITY=3",
        "+",
        "SYSLOG_IDENTIFIER=x",
        "+",
        "_SYSTEMD_UNIT=c.service",
    ];
    assert!(args.ends_with(&union.map(String::from)), "{args:?}");
    drop(run.src.take());
    wait_processes(needle, 0).await;
}

#[tokio::test]
async fn cursor_resumes_after_a_restart_without_reading_twice() {
    if !can_write_journal() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cursor.journal");
    let needle = file.to_str().unwrap().to_string();
    let ssh = ("_SYSTEMD_UNIT", "ssh.service");
    write(
        &file,
        &[ent(banwarden::now() - 60, &[ssh, ("MESSAGE", "history")])],
    );
    let specs = || vec![spec(0, &["_SYSTEMD_UNIT=ssh.service"])];
    let mut run = start(config(&[&file], specs(), None));
    let begin = banwarden::now();
    write(
        &file,
        &[
            live(1, &[ssh, ("MESSAGE", "first")]),
            live(2, &[ssh, ("MESSAGE", "second")]),
        ],
    );
    run.until("two entries", |r| r.lines(0).len() >= 2).await;
    assert_eq!(run.lines(0), ["first", "second"]);
    let cursor = run.cursors.last().expect("a cursor").clone();
    assert!(cursor.contains(";i="), "{cursor}");
    // The daemon stops: its journalctl goes with it.
    drop(run.src.take());
    wait_processes(&needle, 0).await;
    // Entries written while it is down.
    write(
        &file,
        &[
            live(3, &[ssh, ("MESSAGE", "while down 1")]),
            live(
                4,
                &[("_SYSTEMD_UNIT", "other.service"), ("MESSAGE", "other")],
            ),
            live(5, &[ssh, ("MESSAGE", "while down 2")]),
        ],
    );
    let mut run = start(config(&[&file], specs(), Some(cursor)));
    run.until("the entries written while down", |r| r.lines(0).len() >= 2)
        .await;
    write(&file, &[live(6, &[ssh, ("MESSAGE", "after restart")])]);
    run.until("the new entry", |r| r.has(0, "after restart"))
        .await;
    run.settle(Duration::from_millis(300)).await;
    assert_eq!(
        run.lines(0),
        ["while down 1", "while down 2", "after restart"]
    );
    let end = banwarden::now();
    assert!(run.got[&0].iter().all(|(ts, _)| (begin..=end).contains(ts)));
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[tokio::test]
async fn one_shot_read_delivers_what_is_stored_and_ends() {
    if !can_write_journal() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oneshot.journal");
    let now = banwarden::now();
    let ssh = ("_SYSTEMD_UNIT", "ssh.service");
    write(
        &file,
        &[
            ent(now - 600, &[ssh, ("MESSAGE", "too old")]),
            ent(now - 60, &[ssh, ("MESSAGE", "recent")]),
            ent(
                now - 50,
                &[("_SYSTEMD_UNIT", "nginx.service"), ("MESSAGE", "other")],
            ),
            ent(now - 40, &[ssh, ("MESSAGE", "last")]),
        ],
    );
    let mut cfg = config(
        &[&file],
        vec![spec(1, &["_SYSTEMD_UNIT=ssh.service"])],
        None,
    );
    cfg.follow = false;
    cfg.since = Some(now - 300);
    let mut run = start(cfg);
    run.until("the end of the read", |r| r.ended).await;
    assert_eq!(run.lines(1), ["recent", "last"]);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.src.as_ref().unwrap().restarts(), 0);
}

/// Without a cursor (a first start), the daemon's journal reader starts at
/// its `since` (now minus the jails' findtime) and follows on: failures
/// logged shortly before the daemon first ran are counted, older ones not.
#[tokio::test]
async fn first_start_reads_back_to_since_then_follows() {
    if !can_write_journal() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("first-start.journal");
    let now = banwarden::now();
    let ssh = ("_SYSTEMD_UNIT", "ssh.service");
    write(
        &file,
        &[
            ent(now - 900, &[ssh, ("MESSAGE", "before findtime")]),
            ent(now - 60, &[ssh, ("MESSAGE", "within findtime")]),
        ],
    );
    let mut cfg = config(
        &[&file],
        vec![spec(1, &["_SYSTEMD_UNIT=ssh.service"])],
        None,
    );
    cfg.since = Some(now - 600);
    let mut run = start(cfg);
    run.until("the entry within findtime", |r| r.has(1, "within findtime"))
        .await;
    write(&file, &[live(1, &[ssh, ("MESSAGE", "live")])]);
    run.until("the live entry", |r| r.has(1, "live")).await;
    assert_eq!(run.lines(1), ["within findtime", "live"]);
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}
