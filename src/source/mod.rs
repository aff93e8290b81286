//! Sources of log lines: files (tailed), later the journal and command streams.
//!
//! A source only reads bytes and cuts them into lines (`scan::split`); it never
//! interprets them (no regexes, no timestamps). It sends [`SourceEvent`]s down a channel to the
//! engine task, which owns everything after that.

pub mod command;
pub mod file;
pub mod journal;

use std::path::PathBuf;
use std::sync::Arc;

use crate::UnixTime;

/// Identifies one source within a running engine (index into its source table).
pub type SourceId = usize;

/// Where a file source stands, so a restart can resume without reading a line twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePos {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Offset just after the last complete line delivered.
    pub offset: u64,
    /// FNV-1a hash of the file's first line (up to 256 bytes); tells rotation
    /// (new first line) apart from truncation (same inode, shorter file).
    pub fingerprint: u64,
}

/// What a source reports to the engine.
#[derive(Debug)]
pub enum SourceEvent {
    /// One or more complete lines, each terminated by `\n` (the last one too).
    /// Lines are raw bytes: not necessarily UTF-8.
    Lines {
        source: SourceId,
        path: Arc<PathBuf>,
        data: Vec<u8>,
        read_time: UnixTime,
        pos: FilePos,
    },
    /// Entries that carry their own timestamp (journal); `line` has no `\n`.
    Entries {
        source: SourceId,
        entries: Vec<(UnixTime, Vec<u8>)>,
        cursor: Option<String>,
    },
    /// Lines dropped by the source (over the length cap). Counted, never matched.
    Skipped {
        source: SourceId,
        path: Arc<PathBuf>,
        count: u64,
        reason: &'static str,
    },
    /// The file behind a path was rotated, truncated or recreated.
    Rotated {
        source: SourceId,
        path: Arc<PathBuf>,
        how: &'static str,
    },
    /// A non-fatal error (unreadable file, watcher failure); the source keeps going.
    Error { source: SourceId, message: String },
}
