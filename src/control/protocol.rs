//! The control protocol: JSON lines over a unix socket, shared by the daemon
//! and the CLI client. One request line, one response line.
//!
//! Owns the message shapes and their version; no I/O here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::UnixTime;

/// Bumped on incompatible changes; the daemon refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request line: `{"v":1,"cmd":"status","jail":null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Whole-daemon status, or one jail's when `jail` is set.
    Status { jail: Option<String> },
    /// Active bans, optionally of one jail.
    Bans { jail: Option<String> },
    /// Ban `addr` (address or CIDR) in `jail`; `seconds` overrides the jail's bantime
    /// (`None`: the jail's bantime; `Some(-1)`: permanent).
    Ban {
        jail: String,
        addr: String,
        seconds: Option<i64>,
    },
    /// Unban `addr` from `jail` (all jails when `None`); `all` unbans everything
    /// (of `jail` when set) and `addr` must then be `None`.
    Unban {
        addr: Option<String>,
        jail: Option<String>,
        all: bool,
    },
    /// Re-read the configuration (like SIGHUP); errors come back in the response.
    Reload,
    /// Add `addr` (address or CIDR) to every jail's allow-list until the next
    /// restart or reload (`seconds`: for that long).
    Ignore { addr: String, seconds: Option<i64> },
    /// Ban every entry in one store commit and one nft transaction
    /// (`banwarden ban --from FILE`).
    BanMany { entries: BulkEntries },
}

/// One entry of a bulk ban: `seconds` as in [`Request::Ban`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkEntry {
    pub jail: String,
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
}

/// The entries of a bulk ban; shown as a count in logs, not 100,000 lines.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BulkEntries(pub Vec<BulkEntry>);

impl std::fmt::Debug for BulkEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} entries]", self.0.len())
    }
}

impl Request {
    /// Whether the request changes state (and so needs an authorised peer).
    pub fn mutates(&self) -> bool {
        !matches!(self, Request::Status { .. } | Request::Bans { .. })
    }
}

/// A response line: `{"ok":true,"data":{...}}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Reply>,
}

impl Response {
    pub fn ok(data: Reply) -> Response {
        Response {
            ok: true,
            error: None,
            data: Some(data),
        }
    }
    pub fn err(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(message.into()),
            data: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Status(DaemonStatus),
    Jail(JailStatus),
    Bans {
        bans: Vec<BanInfo>,
    },
    /// How many bans were added / removed, with a human summary.
    Done {
        count: usize,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub uptime_seconds: u64,
    pub config_dir: PathBuf,
    pub table: String,
    pub jails: Vec<JailSummary>,
    pub files: Vec<WatchedFile>,
    /// The fleet link, when the node is in a fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JailSummary {
    pub name: String,
    pub filter: String,
    pub failures_tracked: usize,
    pub active_bans: usize,
    pub total_bans: u64,
    pub lines: u64,
    pub matched: u64,
    /// Filter health problems (`crate::health`), empty when healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<String>,
    /// Set when the jail keeps capturing a trusted proxy's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchedFile {
    pub path: PathBuf,
    pub offset: u64,
    pub inode: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JailStatus {
    pub name: String,
    pub filter: String,
    pub logpath: Vec<PathBuf>,
    pub maxretry: u32,
    pub findtime_seconds: i64,
    /// `None`: permanent.
    pub bantime_seconds: Option<i64>,
    pub ignoreip: Vec<String>,
    pub ports: Vec<String>,
    pub protocol: String,
    /// Counters since start (lines, matched, missed, ...).
    pub counters: BTreeMap<String, u64>,
    /// Addresses with the most failures in the window, most first.
    pub top_offenders: Vec<Offender>,
    pub bans: Vec<BanInfo>,
    /// When the jail's sources last produced a line, and when its filter
    /// last matched one (Unix seconds; kept across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_match: Option<i64>,
    /// Filter health problems (`crate::health`), empty when healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<String>,
    /// Set when the jail keeps capturing a trusted proxy's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    pub addr: String,
    pub failures: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub jail: String,
    /// Address or CIDR prefix.
    pub addr: String,
    pub banned_at: UnixTime,
    /// `None`: permanent.
    pub expires: Option<UnixTime>,
    /// How many times this address has been banned (this one included).
    pub count: u32,
    /// The fleet node that decided the ban (in a fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Reads a request line as the daemon does: checks the version, then the
/// request. Any bytes give a request or an error message, never a panic.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    // A bulk ban can hold 100,000 entries: read a good one straight into
    // them, not through a `Value` and the buffering of flattened, tagged
    // enums (about a fifth of a second each time). Anything else, including
    // a bad bulk request, takes the general path and its messages.
    #[derive(Deserialize)]
    struct Bulk {
        v: u32,
        cmd: String,
        entries: BulkEntries,
    }
    if let Ok(b) = serde_json::from_slice::<Bulk>(line) {
        if b.v == PROTOCOL_VERSION && b.cmd == "ban_many" {
            return Ok(Request::BanMany { entries: b.entries });
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))?;
    let Some(v) = value.get("v") else {
        return Err("malformed request: missing the protocol version `v`".to_string());
    };
    let Some(v) = v.as_u64() else {
        return Err(format!(
            "malformed request: the protocol version `v` must be a number, not {v}"
        ));
    };
    if v != u64::from(PROTOCOL_VERSION) {
        return Err(format!(
            "protocol version mismatch: the client speaks v{v}, this daemon speaks v{PROTOCOL_VERSION}; use the banwarden binary that matches the running daemon"
        ));
    }
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| format!("malformed request: {e}"))?;
    Ok(envelope.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_request_reads_the_same_by_the_short_path() {
        let request = Request::BanMany {
            entries: BulkEntries(vec![
                BulkEntry {
                    jail: "sshd".into(),
                    addr: "192.0.2.1".into(),
                    seconds: None,
                },
                BulkEntry {
                    jail: "web".into(),
                    addr: "198.51.100.0/24".into(),
                    seconds: Some(-1),
                },
            ]),
        };
        let line = serde_json::to_vec(&Envelope {
            v: PROTOCOL_VERSION,
            request: request.clone(),
        })
        .unwrap();
        assert_eq!(parse_request(&line), Ok(request));
        let old = br#"{"v":2,"cmd":"ban_many","entries":[]}"#;
        assert!(parse_request(old).unwrap_err().contains("mismatch"));
        let bad = br#"{"v":1,"cmd":"ban_many","entries":[{"jail":"j"}]}"#;
        assert!(parse_request(bad)
            .unwrap_err()
            .contains("missing field `addr`"));
    }
}
