//! `banwarden ban --from FILE [JAIL]`: reads a ban list and sends it as one
//! request, which the daemon applies as one store commit and one nft
//! transaction.
//!
//! Owns reading the two list formats and reporting their errors as
//! `FILE:LINE`; no engine logic (the daemon validates jails and allow-lists).
//! Formats:
//! - the JSON `banwarden bans --json` prints (`{"kind":"bans","bans":[...]}`,
//!   or just the array): each ban keeps its jail and its remaining time,
//!   unless JAIL or `--for` is given; expired entries are left out;
//! - one address or CIDR per line, `#` comments: banned in JAIL (required)
//!   for `--for` or the jail's bantime.

use std::io::Read;

use crate::control::protocol::{BanInfo, BulkEntry};
use crate::UnixTime;

/// What went wrong reading a list, located.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("cannot read {name}: {message}")]
    Read { name: String, message: String },
    #[error("{name}: not the JSON of `banwarden bans --json`: {message}")]
    Json { name: String, message: String },
    #[error("{name}:{line}: {message}")]
    Line {
        name: String,
        line: usize,
        message: String,
    },
    #[error("{name}: a list of addresses needs the JAIL to ban them in: banwarden ban --from {name} JAIL")]
    NoJail { name: String },
}

/// Reads FILE (`-`: stdin) as text.
pub fn read_source(from: &str) -> Result<String, ListError> {
    let mut text = String::new();
    let res = if from == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(from).map(|t| text = t)
    };
    res.map_err(|e| ListError::Read {
        name: from.to_string(),
        message: e.to_string(),
    })?;
    Ok(text)
}

/// The entries of a list. `seconds`: `--for` (`-1`: permanent).
pub fn parse_list(
    name: &str,
    text: &str,
    jail: Option<&str>,
    seconds: Option<i64>,
    now: UnixTime,
) -> Result<Vec<BulkEntry>, ListError> {
    let head = text.trim_start();
    if head.starts_with('{') || head.starts_with('[') {
        return parse_json(name, head, jail, seconds, now);
    }
    let Some(jail) = jail else {
        return Err(ListError::NoJail {
            name: name.to_string(),
        });
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let net = crate::config::parse_net(entry).map_err(|message| ListError::Line {
            name: name.to_string(),
            line: i + 1,
            message,
        })?;
        out.push(BulkEntry {
            jail: jail.to_string(),
            addr: net.to_string(),
            seconds,
        });
    }
    Ok(out)
}

fn parse_json(
    name: &str,
    text: &str,
    jail: Option<&str>,
    seconds: Option<i64>,
    now: UnixTime,
) -> Result<Vec<BulkEntry>, ListError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Doc {
        Reply { bans: Vec<BanInfo> },
        List(Vec<BanInfo>),
    }
    let doc: Doc = serde_json::from_str(text).map_err(|e| ListError::Json {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    let bans = match doc {
        Doc::Reply { bans } | Doc::List(bans) => bans,
    };
    let mut out = Vec::with_capacity(bans.len());
    for (i, b) in bans.into_iter().enumerate() {
        let net = crate::config::parse_net(&b.addr).map_err(|message| ListError::Json {
            name: name.to_string(),
            message: format!("ban {}: {message}", i + 1),
        })?;
        let left = match (seconds, b.expires) {
            (Some(s), _) => Some(s),
            (None, None) => Some(-1),
            (None, Some(e)) if e > now => Some(e - now),
            (None, Some(_)) => continue, // expired since the list was written
        };
        out.push(BulkEntry {
            jail: jail.map_or(b.jail, str::to_string),
            addr: net.to_string(),
            seconds: left,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_need_a_jail_and_point_at_bad_lines() {
        let text = "# from the old server\n192.0.2.1\n198.51.100.0/24  # a range\n\n2001:db8::1\n";
        let e = parse_list("l.txt", text, Some("sshd"), None, 0).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].addr, "198.51.100.0/24");
        assert_eq!(e[2].jail, "sshd");
        assert_eq!(
            parse_list("l.txt", text, None, None, 0),
            Err(ListError::NoJail {
                name: "l.txt".into()
            })
        );
        let err = parse_list("l.txt", "192.0.2.1\nhost.example\n", Some("j"), None, 0)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("l.txt:2: `host.example`"), "{err}");
    }

    #[test]
    fn the_json_of_bans_keeps_jails_and_remaining_time() {
        let json = r#"{"kind":"bans","bans":[
            {"jail":"sshd","addr":"192.0.2.1","banned_at":900,"expires":1600,"count":1},
            {"jail":"web","addr":"198.51.100.0/24","banned_at":900,"expires":null,"count":2},
            {"jail":"web","addr":"192.0.2.9","banned_at":100,"expires":999,"count":1}]}"#;
        let e = parse_list("b.json", json, None, None, 1000).unwrap();
        assert_eq!(e.len(), 2, "the expired one is left out");
        assert_eq!((e[0].jail.as_str(), e[0].seconds), ("sshd", Some(600)));
        assert_eq!((e[1].jail.as_str(), e[1].seconds), ("web", Some(-1)));
        let e = parse_list("b.json", json, Some("all"), Some(60), 1000).unwrap();
        assert!(e.iter().all(|b| b.jail == "all" && b.seconds == Some(60)));
        assert!(parse_list("b.json", "{\"bans\": 3}", None, None, 0).is_err());
    }
}
