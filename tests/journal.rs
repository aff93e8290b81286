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
//! last entry seen, with no entry twice; a one-shot read (dry-run) ends; and,
//! with a fake `journalctl` script, a dying reader is reported, counted and
//! restarted after the last cursor it printed.
//!
//! Not covered (needs a live journald): following the system journal itself,
//! journald rotating, vacuuming or corrupting its files under the reader, and
//! the permissions of `/var/log/journal` (root or the systemd-journal group).
//!
//! The tests needing `systemd-journal-remote` (Debian package of the same
//! name) skip with a message when it is missing, and fail instead when
//! `BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1` (CI installs it).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use banwarden::source::journal::{JournalConfig, JournalSource, JournalSpec};
use banwarden::source::{SourceEvent, SourceId};
use banwarden::UnixTime;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

const REMOTE: &str = "/usr/lib/systemd/systemd-journal-remote";
/// How long to wait for something that should happen within a second.
const WAIT: Duration = Duration::from_secs(10);
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// Whether journal files can be written here; panics if they must be.
fn journal_remote() -> bool {
    if Path::new(REMOTE).exists() {
        return true;
    }
    let reason = format!(
        "{REMOTE} is missing (apt-get install systemd-journal-remote): \
         cannot write journal files without journald"
    );
    if std::env::var("BANWARDEN_REQUIRE_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        panic!("{reason}");
    }
    eprintln!("skipping: {reason}");
    false
}

/// One entry to write.
#[derive(Clone, Default)]
struct Ent {
    /// Seconds; written as microseconds plus `us`.
    ts: UnixTime,
    us: u64,
    fields: Vec<(&'static str, Vec<u8>)>,
}

fn ent(ts: UnixTime, fields: &[(&'static str, &str)]) -> Ent {
    let fields = fields
        .iter()
        .map(|(f, v)| (*f, v.as_bytes().to_vec()))
        .collect();
    Ent { ts, us: 0, fields }
}

/// Monotonic timestamps must grow within a boot for journalctl to keep the
/// entries in order: one counter for all files.
static MONOTONIC: AtomicU64 = AtomicU64::new(1_000_000);

/// Appends `entries` to the journal file `path` (created if needed).
fn write(path: &Path, entries: &[Ent]) {
    let mut export = Vec::new();
    for e in entries {
        let mono = MONOTONIC.fetch_add(1000, Ordering::Relaxed);
        let realtime = e.ts as u64 * 1_000_000 + e.us;
        writeln!(export, "__REALTIME_TIMESTAMP={realtime}").unwrap();
        writeln!(export, "__MONOTONIC_TIMESTAMP={mono}").unwrap();
        writeln!(export, "_BOOT_ID={BOOT_ID}").unwrap();
        for (field, value) in &e.fields {
            if value.contains(&b'\n') || std::str::from_utf8(value).is_err() {
                // The export format's binary form: name, LE64 size, data.
                export.extend_from_slice(field.as_bytes());
                export.push(b'\n');
                export.extend_from_slice(&(value.len() as u64).to_le_bytes());
                export.extend_from_slice(value);
                export.push(b'\n');
            } else {
                export.extend_from_slice(field.as_bytes());
                export.push(b'=');
                export.extend_from_slice(value);
                export.push(b'\n');
            }
        }
        export.push(b'\n');
    }
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", path.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spec(source: SourceId, matches: &[&str]) -> JournalSpec {
    JournalSpec {
        source,
        matches: matches.iter().map(|s| s.to_string()).collect(),
    }
}

fn config(files: &[&Path], specs: Vec<JournalSpec>, cursor: Option<String>) -> JournalConfig {
    JournalConfig {
        specs,
        cursor,
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        backoff_max: Duration::from_millis(400),
        ..JournalConfig::default()
    }
}

/// A running source and everything it reported so far.
struct Run {
    src: Option<JournalSource>,
    rx: mpsc::Receiver<SourceEvent>,
    /// Per source: (timestamp, line).
    got: HashMap<SourceId, Vec<(UnixTime, String)>>,
    cursors: Vec<String>,
    errors: Vec<(SourceId, String)>,
    ended: bool,
}

fn start(cfg: JournalConfig) -> Run {
    let (tx, rx) = mpsc::channel(64);
    Run {
        src: Some(JournalSource::spawn(cfg, tx)),
        rx,
        got: HashMap::new(),
        cursors: vec![],
        errors: vec![],
        ended: false,
    }
}

impl Run {
    fn record(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Entries {
                source,
                entries,
                cursor,
            } => {
                for (ts, line) in entries {
                    assert!(!line.contains(&b'\n'));
                    let line = String::from_utf8_lossy(&line).into_owned();
                    self.got.entry(source).or_default().push((ts, line));
                }
                self.cursors.extend(cursor);
            }
            SourceEvent::Error { source, message } => self.errors.push((source, message)),
            ev => panic!("unexpected event {ev:?}"),
        }
    }

    /// Records events until `done` holds; panics after `WAIT`.
    async fn until(&mut self, what: &str, done: impl Fn(&Run) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.record(ev),
                Ok(None) if !self.ended => self.ended = true,
                Ok(None) => panic!("source ended while waiting for {what}: {:?}", self.got),
                Err(_) => panic!(
                    "timed out waiting for {what}: got {:?}, errors {:?}",
                    self.got, self.errors
                ),
            }
        }
    }

    /// Records whatever else arrives within `d`.
    async fn settle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(Some(ev)) = timeout_at(deadline, self.rx.recv()).await {
            self.record(ev);
        }
    }

    fn lines(&self, source: SourceId) -> Vec<&str> {
        let got = self.got.get(&source).map(Vec::as_slice).unwrap_or(&[]);
        got.iter().map(|(_, l)| l.as_str()).collect()
    }

    fn has(&self, source: SourceId, line: &str) -> bool {
        self.lines(source).contains(&line)
    }
}

/// Processes whose command line mentions `needle` (e.g. a journal file path).
fn processes_with(needle: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmd| String::from_utf8_lossy(cmd).contains(needle))
        .count()
}

async fn wait_processes(needle: &str, want: usize) {
    let deadline = Instant::now() + WAIT;
    while processes_with(needle) != want {
        assert!(
            Instant::now() < deadline,
            "{} processes mention {needle}, expected {want}",
            processes_with(needle)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cursor of the last entry of a journal file.
fn last_cursor(path: &Path) -> String {
    let out = Command::new("journalctl")
        .arg(format!("--file={}", path.display()))
        .args(["--output=json", "--lines=1", "--no-pager"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let entry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    entry["__CURSOR"].as_str().unwrap().to_string()
}

/// An entry of this second, `i` microseconds into it. (Not in the future:
/// systemd-journal-remote sets aside a file whose last entry is in the
/// future instead of appending to it. Not in the past either: a source
/// without a cursor starts at the second it was spawned.)
fn live(i: u64, fields: &[(&'static str, &str)]) -> Ent {
    Ent {
        us: i,
        ..ent(banwarden::now(), fields)
    }
}

#[tokio::test]
async fn entries_arrive_with_their_own_time_in_syslog_form() {
    if !journal_remote() {
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
    if !journal_remote() {
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
    if !journal_remote() {
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
    if !journal_remote() {
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
    if !journal_remote() {
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
