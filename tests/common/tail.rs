//! A file source under test and everything it reported (`tests/rotation.rs`,
//! `tests/rotation_model.rs`): start it on patterns, append to files, wait
//! for lines.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use banwarden::source::file::{FileSource, FileSourceConfig};
use banwarden::source::{FilePos, SourceEvent};
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// How long to wait for something that should happen within milliseconds.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running source and everything it reported so far.
pub struct Tail {
    pub src: Option<FileSource>,
    pub rx: mpsc::Receiver<SourceEvent>,
    pub lines: Vec<(PathBuf, Vec<u8>)>,
    pub rotated: Vec<(PathBuf, &'static str)>,
    pub skipped: u64,
    pub errors: Vec<String>,
    pub last_pos: HashMap<PathBuf, FilePos>,
    /// Every position reported, in order.
    pub handled: Vec<FilePos>,
}

pub fn start(patterns: &[&Path], resume: Vec<FilePos>, max_line: usize, poll: Duration) -> Tail {
    let (tx, rx) = mpsc::channel(64);
    let cfg = FileSourceConfig {
        patterns: patterns.iter().map(|p| p.to_path_buf()).collect(),
        poll_interval: poll,
        max_line,
        resume,
        seek: None,
    };
    let src = Some(FileSource::spawn(7, cfg, tx));
    Tail {
        src,
        rx,
        lines: vec![],
        rotated: vec![],
        skipped: 0,
        errors: vec![],
        last_pos: HashMap::new(),
        handled: vec![],
    }
}

pub fn follow(path: &Path) -> Tail {
    start(&[path], vec![], 1024, Duration::from_millis(200))
}

impl Tail {
    pub fn record(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Lines {
                source,
                path,
                data,
                pos,
                ..
            } => {
                assert_eq!(source, 7);
                assert!(
                    data.ends_with(b"\n"),
                    "delivered without a final newline: {data:?}"
                );
                assert_eq!(pos.path, *path);
                for line in data.split_inclusive(|&b| b == b'\n') {
                    self.lines
                        .push((path.to_path_buf(), line[..line.len() - 1].to_vec()));
                }
                self.handled.push(pos.clone());
                self.last_pos.insert(path.to_path_buf(), pos);
            }
            SourceEvent::Rotated { path, how, .. } => self.rotated.push((path.to_path_buf(), how)),
            SourceEvent::Skipped { count, reason, .. } => {
                assert_eq!(reason, "line too long");
                self.skipped += count;
            }
            SourceEvent::Error { message, .. } => self.errors.push(message),
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Collects events until `done` holds; fails after `WAIT`.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&Tail) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.record(ev),
                Ok(None) => panic!("source stopped while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; got lines {:?}, rotated {:?}, errors {:?}",
                    self.texts(),
                    self.rotated,
                    self.errors
                ),
            }
        }
    }

    /// Collects whatever arrives within `d` (to catch what must NOT arrive).
    pub async fn settle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(Some(ev)) = timeout_at(deadline, self.rx.recv()).await {
            self.record(ev);
        }
    }

    pub async fn wait_line(&mut self, line: &str) {
        self.wait_for(line, |t| t.texts().iter().any(|l| l == line))
            .await;
    }

    /// Appends `marker` to `path` and waits for it: everything written before has been read.
    pub async fn sync(&mut self, path: &Path, marker: &str) {
        append(path, format!("{marker}\n").as_bytes());
        self.wait_line(marker).await;
    }

    pub fn texts(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    pub fn rotated_as(&self, path: &Path, how: &str) -> bool {
        self.rotated.iter().any(|(p, h)| p == path && *h == how)
    }
}

pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn setup(initial: &[u8]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, initial).unwrap();
    (dir, log)
}
