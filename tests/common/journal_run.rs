//! The journal source under test: entries written to real journal files
//! (through `systemd-journal-remote`, see `common::journal`), a running
//! `JournalSource` and everything it reported, and the processes it runs.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use banwarden::source::journal::{JournalConfig, JournalSource, JournalSpec};
use banwarden::source::{SourceEvent, SourceId};
use banwarden::UnixTime;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use super::journal::write_export;

/// How long to wait for something that should happen within a second.
pub const WAIT: Duration = Duration::from_secs(10);
pub const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// One entry to write.
#[derive(Clone, Default)]
pub struct Ent {
    /// Seconds; written as microseconds plus `us`.
    pub ts: UnixTime,
    pub us: u64,
    pub fields: Vec<(&'static str, Vec<u8>)>,
}

pub fn ent(ts: UnixTime, fields: &[(&'static str, &str)]) -> Ent {
    let fields = fields
        .iter()
        .map(|(f, v)| (*f, v.as_bytes().to_vec()))
        .collect();
    Ent { ts, us: 0, fields }
}

/// Monotonic timestamps must grow within a boot for journalctl to keep the
/// entries in order: one counter for all files.
pub static MONOTONIC: AtomicU64 = AtomicU64::new(1_000_000);

/// Appends `entries` to the journal file `path` (created if needed).
pub fn write(path: &Path, entries: &[Ent]) {
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
    assert!(
        write_export(path, &export),
        "systemd-journal-remote is missing"
    );
}

pub fn spec(source: SourceId, matches: &[&str]) -> JournalSpec {
    JournalSpec {
        source,
        matches: matches.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn config(files: &[&Path], specs: Vec<JournalSpec>, cursor: Option<String>) -> JournalConfig {
    JournalConfig {
        specs,
        cursor,
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        backoff_max: Duration::from_millis(400),
        ..JournalConfig::default()
    }
}

/// A running source and everything it reported so far.
pub struct Run {
    pub src: Option<JournalSource>,
    pub rx: mpsc::Receiver<SourceEvent>,
    /// Per source: (timestamp, line).
    pub got: HashMap<SourceId, Vec<(UnixTime, String)>>,
    pub cursors: Vec<String>,
    pub errors: Vec<(SourceId, String)>,
    pub ended: bool,
}

pub fn start(cfg: JournalConfig) -> Run {
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
    pub fn record(&mut self, ev: SourceEvent) {
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
    pub async fn until(&mut self, what: &str, done: impl Fn(&Run) -> bool) {
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
    pub async fn settle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(Some(ev)) = timeout_at(deadline, self.rx.recv()).await {
            self.record(ev);
        }
    }

    pub fn lines(&self, source: SourceId) -> Vec<&str> {
        let got = self.got.get(&source).map(Vec::as_slice).unwrap_or(&[]);
        got.iter().map(|(_, l)| l.as_str()).collect()
    }

    pub fn has(&self, source: SourceId, line: &str) -> bool {
        self.lines(source).contains(&line)
    }
}

/// Processes whose command line mentions `needle` (e.g. a journal file path).
pub fn processes_with(needle: &str) -> usize {
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

pub async fn wait_processes(needle: &str, want: usize) {
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
pub fn last_cursor(path: &Path) -> String {
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
pub fn live(i: u64, fields: &[(&'static str, &str)]) -> Ent {
    Ent {
        us: i,
        ..ent(banwarden::now(), fields)
    }
}
