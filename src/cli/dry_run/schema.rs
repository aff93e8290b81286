//! The dry-run report as a document: what `report::Aggregator` fills in and
//! `render` prints, serialised as it is for `--json`.
//!
//! Owns the shape of the report and its schema; it must not compute
//! anything (aggregation is `report`, text rendering is `render`).
//!
//! # JSON schema (`--json`, `"schema": 1`)
//!
//! Times (`T`) are integers, seconds since the Unix epoch; durations are
//! integers in seconds, `null` meaning permanent. Counts are integers.
//!
//! ```text
//! {
//!   "schema": 1,
//!   "filter": { "name": str, "origin": str,            // file, "command line" or "jail NAME"
//!               "prefregex": str|null, "datepattern": str|null,
//!               "failregex":   [ { "index": n, "regex": str, "hits": n } ],
//!               "ignoreregex": [ { "index": n, "regex": str, "hits": n } ],
//!               "prefilter": [str]|null },             // literals used to skip lines
//!   "inputs": [ { "name": str, "bytes": n, "lines": n } ],
//!   "lines": { "read": n, "matched": n, "ignored": n, "bad_host": n, "missed": n,
//!              "skipped": n,                           // over 16 KiB: never matched
//!              "undated": n,                           // matched, ignored or bad-host lines without a time
//!              "examined": n },                        // handed to the filter
//!   "dates": { "checked": n, "undated": n, "formats": { FORMAT: n },  // of the checked lines
//!              "first": T|null, "last": T|null },
//!   "addresses": { "distinct": n,
//!                  "top": [ { "address": str, "failures": n, "first": T|null, "last": T|null } ] },
//!   "users": { "distinct": n, "top": [ { "user": str, "failures": n } ] },
//!   "jail": null | {
//!       "name": str, "maxretry": n, "findtime": n, "bantime": n|null, "ignoreip": [str],
//!       "ipv4_prefix": n, "ipv6_prefix": n,                  // addresses are counted per prefix
//!       "failures": n, "bans_total": n, "already_banned": n, "ignored_failures": n, "too_old": n,
//!       "bans": [ { "address": str, "at": T, "failures": n, "count": n, "bantime": n|null,
//!                   "expires": T|null, "input": str, "line": n } ],
//!       "ignored": [ { "address": str, "failures": n, "reason": str } ] },
//!   "shown": null | { "kinds": [KIND], "max": n|null,
//!       "lines": [ { "kind": KIND, "input": str, "line": n, "time": T|null, "text": str,
//!                    "regex": n|null, "host": str|null, "user": str|null,
//!                    "host_span": [start, end]|null, "user_span": [start, end]|null } ] }
//! }
//! ```
//!
//! `FORMAT` is one of `syslog`, `iso8601`, `python-logging`, `nginx-access`,
//! `nginx-error`, `custom`, `journal` (an entry's own time); `KIND` one of `matched`, `ignored`, `bad-host`,
//! `missed`. Spans are byte offsets into the line (before lossy UTF-8
//! conversion of `text`). Lines are numbered from 1 within each input.

use std::collections::BTreeMap;

use serde::Serialize;

use super::render::{InputName, NetText};
use crate::scan::Kind;
use crate::UnixTime;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub filter: FilterInfo,
    pub inputs: Vec<InputInfo>,
    pub lines: Lines,
    pub dates: Dates,
    pub addresses: Addresses,
    pub users: Users,
    pub jail: Option<JailReport>,
    pub shown: Option<Shown>,
}

#[derive(Debug, Serialize)]
pub struct FilterInfo {
    pub name: String,
    pub origin: String,
    pub prefregex: Option<String>,
    pub datepattern: Option<String>,
    pub failregex: Vec<RegexHits>,
    pub ignoreregex: Vec<RegexHits>,
    pub prefilter: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct RegexHits {
    pub index: usize,
    pub regex: String,
    pub hits: u64,
}

#[derive(Debug, Serialize)]
pub struct InputInfo {
    pub name: String,
    pub bytes: u64,
    pub lines: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Lines {
    pub read: u64,
    pub matched: u64,
    pub ignored: u64,
    pub bad_host: u64,
    pub missed: u64,
    pub skipped: u64,
    /// Matched, ignored or bad-host lines without a time of their own.
    pub undated: u64,
    pub examined: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Dates {
    /// Lines whose date was looked for (all, unless the filter has a
    /// `datepattern` and `--all-dates` was not given).
    pub checked: u64,
    pub undated: u64,
    pub formats: BTreeMap<String, u64>,
    pub first: Option<UnixTime>,
    pub last: Option<UnixTime>,
}

#[derive(Debug, Serialize)]
pub struct Addresses {
    pub distinct: usize,
    pub top: Vec<AddressRow>,
}

#[derive(Debug, Serialize)]
pub struct AddressRow {
    pub address: String,
    pub failures: u64,
    pub first: Option<UnixTime>,
    pub last: Option<UnixTime>,
}

#[derive(Debug, Serialize)]
pub struct Users {
    pub distinct: usize,
    pub top: Vec<UserRow>,
}

#[derive(Debug, Serialize)]
pub struct UserRow {
    pub user: String,
    pub failures: u64,
}

#[derive(Debug, Serialize)]
pub struct JailReport {
    pub name: String,
    pub maxretry: u32,
    pub findtime: i64,
    pub bantime: Option<i64>,
    pub ignoreip: Vec<String>,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub failures: u64,
    pub bans_total: u64,
    pub already_banned: u64,
    pub ignored_failures: u64,
    pub too_old: u64,
    pub bans: Vec<BanRow>,
    pub ignored: Vec<IgnoredRow>,
}

#[derive(Debug, Serialize)]
pub struct BanRow {
    pub address: NetText,
    pub at: UnixTime,
    pub failures: u32,
    /// Which ban of this address this is (1 = first; escalation counts it).
    pub count: u32,
    pub bantime: Option<i64>,
    pub expires: Option<UnixTime>,
    pub input: InputName,
    pub line: u64,
}

#[derive(Debug, Serialize)]
pub struct IgnoredRow {
    pub address: String,
    pub failures: u64,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Shown {
    pub kinds: Vec<Kind>,
    pub max: Option<usize>,
    pub lines: Vec<ShownLine>,
}

#[derive(Debug, Serialize)]
pub struct ShownLine {
    pub kind: Kind,
    pub input: String,
    pub line: u64,
    pub time: Option<UnixTime>,
    pub text: String,
    pub regex: Option<u32>,
    pub host: Option<String>,
    pub user: Option<String>,
    pub host_span: Option<[u32; 2]>,
    pub user_span: Option<[u32; 2]>,
    /// The raw text, for highlighting (not serialised).
    #[serde(skip)]
    pub raw: Vec<u8>,
}
