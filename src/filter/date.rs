//! Timestamp detection in log lines. (Stub: implementation in progress.)

use crate::UnixTime;

/// Which format a timestamp was found in (reported by dry-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DateFormat {
    /// `Mon DD HH:MM:SS` (year inferred).
    Syslog,
    /// ISO 8601 / RFC 3339: `2024-01-02T03:04:05[.fff][Z|±hh:mm]`, also with a space.
    Iso8601,
    /// Python logging: `2015-03-10 21:31:23,899`.
    PythonLogging,
    /// nginx access log: `[10/Oct/2000:13:55:36 -0700]`.
    NginxAccess,
    /// nginx error log: `2024/01/02 03:04:05`.
    NginxError,
    /// A filter's own `datepattern`.
    Custom,
}

/// A timestamp found in a line: its value and where it stands (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    pub ts: UnixTime,
    pub start: usize,
    pub end: usize,
    pub format: DateFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum DateError {
    #[error("invalid datepattern: {0}")]
    Pattern(String),
}

/// Finds timestamps in lines. Cheap to clone; shared by all lines of a filter.
#[derive(Debug, Clone)]
pub struct DateDetector {}

impl DateDetector {
    /// `datepattern` is a filter's optional pattern; `None` tries the built-in formats.
    pub fn new(datepattern: Option<&str>) -> Result<DateDetector, DateError> {
        let _ = datepattern;
        Ok(DateDetector {})
    }

    /// Finds the line's timestamp. `now` anchors year inference for formats
    /// without a year. Local time zone unless the format carries an offset.
    pub fn detect(&self, line: &[u8], now: UnixTime) -> Option<DateMatch> {
        let _ = (line, now);
        None
    }
}
