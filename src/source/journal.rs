//! Journal reader: the systemd journal entries of every journal jail, read by
//! ONE `journalctl --follow --output=json` child shared by all of them.
//!
//! Owns that child (its command line: the union of the jails' matches, the
//! cursor to resume after; its restarts with backoff), the parsing of its JSON
//! lines, and the routing of each entry to the jails whose own matches accept
//! it. It turns an entry into one syslog-like line, `IDENT[PID]: MESSAGE`
//! (without date and host, so the same `prefregex` serves files and journal),
//! stamped with the entry's own `__REALTIME_TIMESTAMP`, and reports the
//! journal cursor so the engine can store it. It never interprets messages
//! (no regexes), never blocks the engine, never starts a second `journalctl`,
//! and never reads the journal without a match (that would cost a quarter of
//! a core on a busy host: [`validate_matches`] refuses it).
//!
//! Why `journalctl` rather than libsystemd (`sd_journal_*`): the binding would
//! link the daemon against libsystemd (a C library, a `-sys` crate and its
//! headers at build time, `unsafe` FFI on a blocking API that must live on a
//! thread of its own), while `journalctl -o json` is present wherever a
//! journal is, is the reference implementation of the match syntax jails use
//! (`FIELD=value`, `+`), handles journal file rotation, corruption and
//! permissions itself, and runs in a process of its own: a journal bug crashes
//! a child that is restarted, not the daemon. The cost is one JSON line per
//! matching entry, negligible since journalctl only prints what matches.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::command::{Feed, Out, Status, Supervisor, BACKOFF_MAX, MAX_LINE};
use super::{SourceEvent, SourceId};
use crate::scan::split::Cutter;
use crate::UnixTime;

/// Longest JSON line accepted from journalctl; longer ones are skipped.
/// (Only the needed fields are printed, so this is far above any real entry.)
const JSON_MAX: usize = 1 << 20;
/// Fields printed by journalctl besides those of the matches (and the
/// `__CURSOR`, `__REALTIME_TIMESTAMP` it always prints).
const LINE_FIELDS: [&str; 4] = ["MESSAGE", "SYSLOG_IDENTIFIER", "_PID", "SYSLOG_PID"];

/// The journal matches of one jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    /// The source id its entries are sent with.
    pub source: SourceId,
    /// journalctl syntax: `FIELD=value` terms, `+` between alternatives.
    /// Within a group, terms on the same field are OR-ed and terms on
    /// different fields AND-ed; groups separated by `+` are OR-ed.
    pub matches: Vec<String>,
}

/// What to read and how.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// One per journal jail; all are served by a single journalctl.
    pub specs: Vec<JournalSpec>,
    /// The cursor stored by a previous run: reading resumes just after it.
    /// Without one, reading starts at `since` (else now, when following).
    pub cursor: Option<String>,
    /// Journal files to read (`--file=`); empty: the system journal.
    pub files: Vec<PathBuf>,
    /// The journalctl binary (default `journalctl`, looked up in `PATH`).
    pub journalctl: PathBuf,
    /// Longest delay between restarts (they start at 100 ms and double).
    pub backoff_max: Duration,
    /// Longest line delivered (`IDENT[PID]: MESSAGE`); longer ones are
    /// skipped and reported as `Skipped`.
    pub max_line: usize,
    /// Entries older than this are not delivered (the cursor still moves
    /// past them), and a stored cursor journalctl rejects is replaced by
    /// `--since` this time. The daemon passes now minus the longest
    /// `findtime` of the journal jails, so resuming after a long stop does
    /// not count stale failures.
    pub since: Option<UnixTime>,
    /// Follow the journal (the daemon). When false (dry-run), journalctl
    /// prints what is stored (after `cursor`, else since `since`, else
    /// everything) and the source ends: its sender is dropped, nothing is
    /// restarted.
    pub follow: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            specs: Vec::new(),
            cursor: None,
            files: Vec::new(),
            journalctl: PathBuf::from("journalctl"),
            backoff_max: BACKOFF_MAX,
            max_line: MAX_LINE,
            since: None,
            follow: true,
        }
    }
}

/// The running journal reader; kills its journalctl when dropped.
pub struct JournalSource {
    status: Arc<Status>,
    cursor: SharedCursor,
    _stop: DropGuard,
}

impl JournalSource {
    /// Starts one journalctl for all `cfg.specs`, sending their entries to
    /// `tx`. Must be called inside a tokio runtime.
    ///
    /// A spec whose matches are invalid (or empty) is left out and reported
    /// once as [`SourceEvent::Error`] with its source id: it can never widen
    /// what the others read. Each event batch is one read from journalctl;
    /// within it, the last `Entries` event carries the cursor of the last
    /// entry read (the others `None`), so storing the cursor of the last
    /// event handled never skips an entry that was not handled. When a batch
    /// delivers nothing but moves the cursor, it is an `Entries` event with
    /// no entries, sent with the first spec's id.
    pub fn spawn(cfg: JournalConfig, tx: mpsc::Sender<SourceEvent>) -> JournalSource {
        let cancel = CancellationToken::new();
        let status = Arc::new(Status::default());
        let cursor = SharedCursor(Arc::new(Mutex::new(cfg.cursor.clone())));
        let out = Out {
            tx,
            cancel: cancel.clone(),
        };
        let mut refused = Vec::new();
        let mut specs = Vec::new();
        let mut match_args = Vec::new();
        for spec in &cfg.specs {
            match Matcher::parse(&spec.matches) {
                Ok(m) => {
                    if !match_args.is_empty() {
                        match_args.push("+".to_string());
                    }
                    match_args.extend(spec.matches.iter().cloned());
                    specs.push((spec.source, m));
                }
                Err(e) => {
                    let message = format!("journal source refused: {e}");
                    refused.push(SourceEvent::Error {
                        source: spec.source,
                        message,
                    });
                }
            }
        }
        let mut fields: BTreeSet<&str> = LINE_FIELDS.into_iter().collect();
        fields.extend(specs.iter().flat_map(|(_, m)| m.fields()));
        let output_fields = fields.into_iter().collect::<Vec<_>>().join(",");
        let now = crate::now();
        let start = match (&cfg.cursor, cfg.since) {
            (Some(c), _) => Start::Cursor(c.clone()),
            // A first start reads back to `since` (the daemon: its journal
            // jails' longest findtime), as a never-seen file is read from its
            // first line within findtime: failures logged before the daemon
            // first ran count.
            (None, Some(t)) => Start::Since(t),
            // Not `--lines=0`: entries written between `spawn` returning and
            // journalctl seeking to the end would be lost.
            (None, None) if cfg.follow => Start::Since(now),
            (None, None) => Start::Beginning,
        };
        let first = specs.first().map_or(0, |(id, _)| *id);
        let feed = JournalFeed {
            journalctl: cfg.journalctl,
            files: cfg.files,
            follow: cfg.follow,
            match_args,
            output_fields,
            start,
            fallback: cfg.since.unwrap_or(now),
            since: cfg.since,
            max_line: cfg.max_line,
            specs,
            cutter: Cutter::new(JSON_MAX),
            cursor: cursor.clone(),
            read_this_run: false,
            bad_json: 0,
            path: Arc::new(PathBuf::from("journal")),
        };
        let sup = Supervisor {
            source: first,
            what: "journalctl".to_string(),
            out,
            status: status.clone(),
            backoff_max: cfg.backoff_max,
        };
        tokio::spawn(async move {
            for ev in refused {
                if sup.out.send(ev).await.is_err() {
                    return;
                }
            }
            if !feed.specs.is_empty() {
                sup.run(feed).await;
            }
        });
        JournalSource {
            status,
            cursor,
            _stop: cancel.drop_guard(),
        }
    }

    /// How many times journalctl exited (or failed to start) and was restarted.
    pub fn restarts(&self) -> u64 {
        self.status.restarts.load(Ordering::Relaxed)
    }

    /// The pid of the running journalctl, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.status.pid()
    }

    /// The cursor of the last entry read from journalctl (sent or about to
    /// be), or the configured one if none was read yet.
    pub fn cursor(&self) -> Option<String> {
        self.cursor.lock().clone()
    }
}

#[derive(Clone)]
struct SharedCursor(Arc<Mutex<Option<String>>>);

impl SharedCursor {
    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where the next journalctl starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// Just after this entry.
    Cursor(String),
    /// At the first entry of this second or later.
    Since(UnixTime),
    /// At the first entry stored (one-shot reads only).
    Beginning,
}

/// journalctl's output, parsed and routed to the specs.
struct JournalFeed {
    journalctl: PathBuf,
    files: Vec<PathBuf>,
    follow: bool,
    /// The union of the specs' matches, groups joined by `+`.
    match_args: Vec<String>,
    output_fields: String,
    start: Start,
    /// Where to start instead of a cursor journalctl rejects.
    fallback: UnixTime,
    since: Option<UnixTime>,
    max_line: usize,
    specs: Vec<(SourceId, Matcher)>,
    cutter: Cutter,
    cursor: SharedCursor,
    read_this_run: bool,
    bad_json: u64,
    path: Arc<PathBuf>,
}

impl JournalFeed {
    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if self.follow {
            args.push("--follow".into());
        }
        for a in ["--output=json", "--all", "--no-pager"] {
            args.push(a.into());
        }
        args.push(format!("--output-fields={}", self.output_fields).into());
        for file in &self.files {
            let mut arg = OsString::from("--file=");
            arg.push(file);
            args.push(arg);
        }
        match &self.start {
            Start::Cursor(c) => {
                args.push(format!("--after-cursor={c}").into());
                // Without it, --follow prints only the last 10 entries after the cursor.
                args.push("--no-tail".into());
            }
            Start::Since(t) => {
                args.push(format!("--since=@{t}").into());
                args.push("--no-tail".into());
            }
            Start::Beginning => args.push("--no-tail".into()),
        }
        args.extend(self.match_args.iter().map(OsString::from));
        args
    }

    /// Parses and routes complete JSON lines (each ending in `\n`).
    fn process(&mut self, lines: &[u8], too_long: u64, out: &mut Vec<SourceEvent>) {
        let n = self.specs.len();
        let mut batches: Vec<Vec<(UnixTime, Vec<u8>)>> = vec![Vec::new(); n];
        let mut skipped = vec![0u64; n];
        if too_long > 0 && n > 0 {
            skipped[0] += too_long;
            tracing::warn!(
                source = self.specs[0].0,
                count = too_long,
                "journal entries over {JSON_MAX} bytes skipped"
            );
        }
        let mut last_cursor = None;
        for json in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.read_this_run = true;
            let entry = match JournalEntry::parse_json(json) {
                Ok(entry) => entry,
                Err(e) => {
                    self.bad_json += 1;
                    if self.bad_json <= 3 || self.bad_json.is_power_of_two() {
                        let text = String::from_utf8_lossy(&json[..json.len().min(200)]);
                        tracing::warn!(count = self.bad_json, error = %e, line = %text, "unreadable journalctl output");
                    }
                    continue;
                }
            };
            if let Some(c) = entry.cursor() {
                last_cursor = Some(c.to_string());
            }
            let ts = entry.time().unwrap_or_else(crate::now);
            if self.since.is_some_and(|since| ts < since) {
                continue;
            }
            let Some(line) = entry.line() else { continue };
            for (i, (_, matcher)) in self.specs.iter().enumerate() {
                if !matcher.accepts(&entry) {
                    continue;
                }
                if line.len() > self.max_line {
                    skipped[i] += 1;
                } else {
                    batches[i].push((ts, line.clone()));
                }
            }
        }
        for (i, count) in skipped.into_iter().enumerate() {
            if count > 0 {
                out.push(SourceEvent::Skipped {
                    source: self.specs[i].0,
                    path: self.path.clone(),
                    count,
                    reason: "line too long",
                });
            }
        }
        let first = out.len();
        for (i, entries) in batches.into_iter().enumerate() {
            if !entries.is_empty() {
                let source = self.specs[i].0;
                out.push(SourceEvent::Entries {
                    source,
                    entries,
                    cursor: None,
                });
            }
        }
        let Some(cursor) = last_cursor else { return };
        if out.len() == first {
            if let Some((source, _)) = self.specs.first() {
                let (source, entries) = (*source, Vec::new());
                out.push(SourceEvent::Entries {
                    source,
                    entries,
                    cursor: None,
                });
            }
        }
        if let Some(SourceEvent::Entries { cursor: c, .. }) = out.last_mut() {
            *c = Some(cursor.clone());
        }
        *self.cursor.lock() = Some(cursor.clone());
        self.start = Start::Cursor(cursor);
    }
}

impl Feed for JournalFeed {
    fn command(&mut self) -> Command {
        self.cutter.reset();
        self.read_this_run = false;
        let mut cmd = Command::new(&self.journalctl);
        cmd.args(self.args());
        cmd
    }

    fn data(&mut self, chunk: &[u8], out: &mut Vec<SourceEvent>) {
        let (lines, too_long) = self.cutter.feed(chunk);
        if !lines.is_empty() || too_long > 0 {
            self.process(&lines, too_long, out);
        }
    }

    fn eof(&mut self, out: &mut Vec<SourceEvent>) {
        let (lines, too_long) = self.cutter.finish();
        if !lines.is_empty() || too_long > 0 {
            self.process(&lines, too_long, out);
        }
    }

    fn exited(&mut self, success: bool, stderr: &str) -> bool {
        if !self.follow {
            return false;
        }
        if !success && !self.read_this_run && stderr.contains("cursor") {
            if let Start::Cursor(c) = &self.start {
                tracing::warn!(cursor = %c, since = self.fallback, "journalctl rejected the stored cursor; reading from `since` instead");
                self.start = Start::Since(self.fallback);
            }
        }
        true
    }
}

mod entry;
mod matches;

pub use entry::{EntryError, JournalEntry};
pub use matches::{validate_matches, MatchError, Matcher};

#[cfg(test)]
mod tests;
