//! The line engine shared by the daemon and `dry-run`: how a chunk of whole
//! lines (or of journal entries) becomes per-line outcomes, and how undated
//! lines get a time.
//!
//! - `walk`: one chunk through one filter, with the filter's prefilter, the
//!   stream's [`LineState`](crate::filter::LineState) and the overlong-line
//!   policy ([`MAX_LINE`]); the result is a [`ChunkOut`]: counters and a record
//!   per line that matters.
//! - [`StreamClock`]: the undated-time policy, applied in stream order.
//! - `split`: cutting a byte stream into whole lines (the daemon's file and
//!   command sources, dry-run's streamed inputs).
//! - `bulk` and `input`: dry-run's edge: files mapped or read in large
//!   chunks, walked on worker threads, results handed back in order.
//!
//! Jail counting and ban decisions are `jail::engine`'s, which takes the
//! chunks this module produces. Nothing here counts failures per address,
//! decides bans, does I/O besides `bulk`/`input` reading their inputs, or
//! matches a line other than through `Filter`.

pub mod bulk;
pub mod input;
mod newlines;
pub mod split;
mod walk;

use std::net::IpAddr;

use crate::filter::date::DateFormat;
use crate::filter::{Filter, Prefilter, SessionMatch, Spans};
use crate::UnixTime;

pub use walk::{fold_sessions, walk, walk_entries};

/// Longest line matched, in bytes without its `\n`: a longer line is skipped
/// and counted, never matched (the daemon's sources never buffer more).
pub const MAX_LINE: usize = 16 * 1024;

/// Default chunk size: big enough to amortise hand-offs, small enough to stay
/// in cache between the literal scan and the line walk.
pub const CHUNK: usize = 1 << 20;

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Matched,
    Ignored,
    BadHost,
    Missed,
}

/// Which line texts to keep (for `--show`), and how many per kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    pub matched: bool,
    pub ignored: bool,
    pub bad_host: bool,
    pub missed: bool,
    /// Per kind and chunk; `None`: all.
    pub max: Option<usize>,
}

impl Keep {
    /// Whether any line text is kept.
    pub fn any(&self) -> bool {
        self.matched || self.ignored || self.bad_host || self.missed
    }

    fn wants(&self, k: Kind, kept: &[u64; 4]) -> bool {
        let on = match k {
            Kind::Matched => self.matched,
            Kind::Ignored => self.ignored,
            Kind::BadHost => self.bad_host,
            Kind::Missed => self.missed,
        };
        on && self.max.is_none_or(|m| (kept[k as usize] as usize) < m)
    }
}

/// How lines are walked: by the daemon for each chunk a source delivers, by
/// dry-run's workers for each chunk of its inputs.
#[derive(Clone, Copy)]
pub struct WalkConfig<'a> {
    pub filter: &'a Filter,
    /// Lines without one of its literals are missed without being examined
    /// (`None`: every line is examined).
    pub prefilter: Option<&'a Prefilter>,
    /// Anchors year inference for dates without a year.
    pub now: UnixTime,
    pub keep: Keep,
    /// Date only the lines that may match (see `walk::walk_sparse`): where
    /// dating costs more than finding candidates (a `datepattern`, or rare
    /// literals). Changes which lines' dates are looked for (`checked`),
    /// never an outcome or a time.
    pub sparse_dates: bool,
}

/// A byte range in a chunk's arena: (start, length).
pub type Span = (u32, u32);

/// One line that matters beyond the counters: a failure, an ignored or
/// bad-host line, or a line kept for `--show`.
#[derive(Debug, Clone)]
pub struct Rec {
    /// 0-based line index within the chunk.
    pub line: u32,
    pub kind: Kind,
    /// Whether a time was detected on the line itself.
    pub dated: bool,
    /// Failregex (matched, bad host) or ignoreregex (ignored) index.
    pub regex: u32,
    /// The line's time, or for a line without one the time of the last dated
    /// line before it in the chunk; `None`: neither (the stream's last dated
    /// line or the read time decide, see [`StreamClock`]).
    pub time: Option<UnixTime>,
    pub host: Option<IpAddr>,
    /// A captured subnet's length (`host` is then its network address):
    /// fail2ban's `<SUBNET>`, `<ADDR>/<CIDR>`.
    pub prefix: Option<u8>,
    /// The captured user, in the arena.
    pub user: Option<Span>,
    /// Index into `ChunkOut::kept` for a line kept for `--show`.
    pub kept: Option<u32>,
}

/// A line kept for `--show`: its text and where host and user stand in it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub text: Span,
    pub host_at: Option<Span>,
    pub user_at: Option<Span>,
}

/// A line of a fail2ban session, matched by the walk but not yet counted:
/// its session decides how it counts, in line order, when the chunk is
/// folded ([`fold_sessions`]) by whoever holds the stream's state.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its record's place: `recs.len()` when it was walked.
    at: usize,
    line: u32,
    dated: bool,
    time: Option<UnixTime>,
    m: SessionMatch,
    /// The session id and the user, in `ChunkOut::pending_arena`.
    id: Span,
    user: Option<Span>,
    spans: Spans,
}

/// Counters and records of one chunk.
#[derive(Debug, Default)]
pub struct ChunkOut {
    pub seq: usize,
    pub input: usize,
    pub bytes: u64,
    pub lines: u64,
    /// Lines whose date was looked for and not found (display: which lines
    /// are looked at depends on the walk and the prefilter).
    pub undated: u64,
    /// Lines the filter matched (failure, ignored, bad host) without a time
    /// of their own: the same however the lines were walked.
    pub undated_matches: u64,
    pub formats: Vec<(DateFormat, u64)>,
    pub matched: u64,
    pub ignored: u64,
    pub bad_host: u64,
    pub missed: u64,
    /// Lines over [`MAX_LINE`], skipped (counted in `lines`, not matched).
    pub skipped: u64,
    /// Lines handed to the filter (the rest were ruled out by the prefilter).
    pub examined: u64,
    /// Lines whose date was looked for (`undated` and `formats` count these).
    pub checked: u64,
    pub fail_hits: Vec<u64>,
    pub ignore_hits: Vec<u64>,
    /// Time of the chunk's first and last dated line.
    pub first_ts: Option<UnixTime>,
    pub last_ts: Option<UnixTime>,
    /// Lines kept per kind (indexed by `Kind as usize`).
    pub kept_count: [u64; 4],
    pub recs: Vec<Rec>,
    pub kept: Vec<Kept>,
    pub arena: Vec<u8>,
    /// Session lines waiting for [`fold_sessions`] (not counted yet in any
    /// counter above but `examined`), and their bytes.
    pub pending: Vec<Pending>,
    pub pending_arena: Vec<u8>,
}

impl ChunkOut {
    pub fn arena(&self, s: Span) -> &[u8] {
        self.arena
            .get(s.0 as usize..(s.0 as usize + s.1 as usize))
            .unwrap_or_default()
    }
}

/// The undated-time policy, one per stream (a file, a journal, a command):
/// a line without a time of its own happened when the last dated line
/// before it in the same stream did; a stream's lines before its first
/// dated line happened when they were read. Tracebacks and continuation
/// lines belong with the line that started them, and a log that never
/// writes a date is counted as it is read, which is what the operator sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamClock {
    last: Option<UnixTime>,
}

impl StreamClock {
    /// The time of a record of `chunk` (chunks in stream order).
    #[inline]
    pub fn time_of(&self, rec: &Rec, read_time: UnixTime) -> UnixTime {
        rec.time.or(self.last).unwrap_or(read_time)
    }

    /// Takes the chunk's last dated line as the stream's (after its records).
    pub fn advance(&mut self, chunk: &ChunkOut) {
        if chunk.last_ts.is_some() {
            self.last = chunk.last_ts;
        }
    }
}
