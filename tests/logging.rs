//! The daemon's log records as systemd and log shippers read them:
//!
//! - started as systemd starts it (stderr a stream whose device:inode
//!   `JOURNAL_STREAM` names), the daemon picks the journal on its own and
//!   speaks journald's native protocol: the test binds its own
//!   datagram socket and mounts it over `/run/systemd/journal/` in the
//!   daemon's private mount namespace (the `ip netns exec` of its test
//!   network), then reads the datagrams back. A ban arrives as one record
//!   with `PRIORITY=6`, `SYSLOG_IDENTIFIER=banwarden`, `JAIL=app` and
//!   `ADDR=...`: what `journalctl -p info JAIL=app` selects on. (No journald
//!   runs here, and `systemd-journal-remote` does not accept the native
//!   protocol, so the socket is the test's own.)
//! - `--log-format json` writes one JSON object a line with level and fields.
//!
//! Privileged (network namespace, mounts); skips with the reason otherwise.

mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{failures, ConfigDir};
use common::netns::{eventually, skip_unless_privileged, NetPair};

/// Decodes one datagram of the native journal protocol: `KEY=value\n`, or
/// `KEY\n` + 64-bit little-endian length + value + `\n` for binary values.
fn decode(mut buf: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    while !buf.is_empty() {
        let nl = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
        let line = &buf[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            buf = &buf[(nl + 1).min(buf.len())..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &buf[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            out.insert(key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned());
            buf = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    out
}

#[test]
fn a_ban_reaches_the_journal_with_priority_and_fields() {
    if skip_unless_privileged() {
        return;
    }
    let net = NetPair::new();
    let table = format!("bwj{}", std::process::id());
    let config = ConfigDir::app(&table, "  maxretry: 2\n");
    let journal = tempfile::tempdir().unwrap();
    let socket = UnixDatagram::bind(journal.path().join("socket")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // As systemd starts it: stderr is the journal stream and JOURNAL_STREAM
    // names it (device:inode), so the default `--log-format auto` picks the
    // journal.
    let script = "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/journal \
                  && mount --bind \"$1\" /run/systemd/journal \
                  && exec 2>\"$4\" \
                  && export JOURNAL_STREAM=$(stat -c %d:%i \"$4\") \
                  && exec \"$2\" run --config \"$3\"";
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.srv, "sh", "-c", script, "sh"])
        .arg(journal.path())
        .arg(env!("CARGO_BIN_EXE_banwarden"))
        .arg(config.path())
        .arg(journal.path().join("stderr"))
        .env("RUST_LOG", "banwarden=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(&mut child);

    let mut records = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut recv_until = |records: &mut Vec<HashMap<String, String>>,
                          done: &dyn Fn(&HashMap<String, String>) -> bool|
     -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                if n == 0 {
                    continue;
                }
                let r = decode(&buf[..n]);
                let hit = done(&r);
                records.push(r);
                if hit {
                    return true;
                }
            }
        }
        false
    };
    let stderr_text = || std::fs::read_to_string(journal.path().join("stderr")).unwrap_or_default();
    let started = recv_until(&mut records, &|r| {
        r.get("MESSAGE")
            .is_some_and(|m| m.contains("control socket listening"))
    });
    assert!(
        started,
        "no start-up record in the journal: {records:?}\nstderr: {}",
        stderr_text()
    );
    // The table exists once the daemon runs; then two failures earn a ban.
    assert!(eventually(Duration::from_secs(10), || {
        common::netns::exec(&net.srv, &["nft", "list", "table", "inet", &table])
            .status
            .success()
    }));
    config.append("app.log", &failures(&net.atk_v4, 2));
    let banned = recv_until(&mut records, &|r| {
        r.get("MESSAGE").map(String::as_str) == Some("ban")
    });
    drop(guard);
    assert!(banned, "no ban record: {records:?}");
    let ban = records.last().unwrap();
    assert_eq!(
        ban.get("PRIORITY").map(String::as_str),
        Some("6"),
        "{ban:?}"
    );
    assert_eq!(
        ban.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("banwarden")
    );
    assert_eq!(ban.get("JAIL").map(String::as_str), Some("app"), "{ban:?}");
    // The bare address, as `banwarden bans` shows it: `journalctl ADDR=...`.
    assert_eq!(
        ban.get("ADDR").map(String::as_str),
        Some(net.atk_v4.as_str()),
        "{ban:?}"
    );
    assert_eq!(
        ban.get("FAILURES").map(String::as_str),
        Some("2"),
        "{ban:?}"
    );
    // Each record once: one ban record for one ban.
    let bans = records
        .iter()
        .filter(|r| r.get("MESSAGE").map(String::as_str) == Some("ban"))
        .count();
    assert_eq!(bans, 1);
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn json_log_lines_carry_level_and_fields() {
    let config = ConfigDir::app("bwjson", "");
    // nft that always fails: the daemon logs the failed setup and retries.
    let mut child = Command::new(env!("CARGO_BIN_EXE_banwarden"))
        .args([
            "run",
            "--log-format",
            "json",
            "--nft",
            "/bin/false",
            "--config",
        ])
        .arg(config.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = KillOnDrop(&mut child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<String> = Vec::new();
    let mut found = None;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["level"] == "ERROR" {
            found = Some(v);
            break;
        }
        seen.push(line);
    }
    drop(guard);
    let v = found.unwrap_or_else(|| panic!("no error logged: {seen:?}"));
    assert!(v["message"].is_string() && v["error"].is_string(), "{v}");
}

/// A daemon that cannot start says why once: the error record, not the
/// record and a second plain line on the same stderr.
#[test]
fn a_fatal_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("filters")).unwrap();
    std::fs::write(
        dir.path().join("banwarden.yaml"),
        format!(
            "state_dir: {}\nsocket: /proc/banwarden-nope-{}/x.sock\n",
            dir.path().join("state").display(),
            std::process::id()
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = Command::new(env!("CARGO_BIN_EXE_banwarden"))
            .args(["run", "--nft", "true", "--log-format", format, "--config"])
            .arg(dir.path())
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr
                .matches("cannot create the control socket directory")
                .count(),
            1,
            "{format}: {stderr}"
        );
    }
}
