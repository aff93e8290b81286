//! The daemon's internal events, in the style of Vector's: each thing an
//! operator may want to know is one type here, and emitting it writes its
//! one log record (fixed message, structured fields, which the journal
//! keeps as `JAIL=`, `ADDR=`, `PATH=`...) and updates its metric. An event
//! is emitted once, where it is handled (the daemon), never also where it
//! was noticed (a source reports it through its channel and logs nothing).
//!
//! Owns the wording, level and fields of these records and which metric
//! each moves; decides nothing.

use std::path::Path;

use crate::metrics::Metrics;

/// One event: a log record and its metric.
pub trait InternalEvent {
    fn emit(self, metrics: Option<&Metrics>);
}

/// A source could not read something (a file, the journal, a command); it
/// keeps going.
pub struct SourceError<'a> {
    /// `file`, `journal` or `command`.
    pub kind: &'static str,
    pub message: &'a str,
}

impl InternalEvent for SourceError<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::warn!(source_kind = self.kind, error = %self.message, "source error");
        if let Some(m) = metrics {
            m.source_error(self.kind);
        }
    }
}

/// The file behind a watched path was rotated, truncated or recreated.
pub struct LogRotated<'a> {
    pub path: &'a Path,
    /// `renamed`, `truncated` or `recreated`.
    pub how: &'static str,
}

impl InternalEvent for LogRotated<'_> {
    fn emit(self, metrics: Option<&Metrics>) {
        tracing::info!(path = %self.path.display(), how = self.how, "log file rotated");
        if let Some(m) = metrics {
            m.rotation(self.how);
        }
    }
}
