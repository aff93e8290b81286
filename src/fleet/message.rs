//! What nodes say to each other on the fleet's Redis Stream: bans, unbans
//! and ignores, as flat field/value pairs (`v`, `node`, `kind`, `jail`,
//! `net`, `expires`, `count`, `at`, `ms`).
//!
//! Owns encoding and decoding only. Decoding takes any fields a foreign
//! writer may have put there and answers with a message or a
//! [`Malformed`] reason: never a panic, never a "ban" of something that is
//! not an address or prefix.

use std::collections::HashMap;

use ipnet::IpNet;

use crate::UnixTime;

/// Version of the message format; other versions are skipped as foreign.
pub const FORMAT: &str = "1";

/// What a message asks every node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ban `net` in `jail` until `expires` (`None`: permanent).
    Ban {
        jail: String,
        net: IpNet,
        expires: Option<UnixTime>,
        /// Which ban of this address it is (escalation).
        count: u32,
        /// When it was decided.
        at: UnixTime,
    },
    /// Lift bans of `net` (and inside it) in `jail`, or in every jail.
    Unban { jail: Option<String>, net: IpNet },
    /// Allow `net` on every node until `until` (`None`: until reload).
    Ignore { net: IpNet, until: Option<UnixTime> },
}

/// One stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The node that decided it.
    pub node: String,
    pub action: Action,
    /// Wall clock of the publisher when published, milliseconds (lag).
    pub ms: i64,
}

/// Why an entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("format version {0:?} is not {FORMAT}")]
    Version(String),
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` is not valid: {value:?}")]
    Invalid { field: &'static str, value: String },
    #[error("unknown kind {0:?}")]
    Kind(String),
}

fn opt_time(t: Option<UnixTime>) -> String {
    t.map_or_else(|| "-1".to_string(), |t| t.to_string())
}

impl Message {
    /// Field/value pairs for XADD.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("v", FORMAT.to_string()),
            ("node", self.node.clone()),
            ("ms", self.ms.to_string()),
        ];
        match &self.action {
            Action::Ban {
                jail,
                net,
                expires,
                count,
                at,
            } => f.extend([
                ("kind", "ban".to_string()),
                ("jail", jail.clone()),
                ("net", net.to_string()),
                ("expires", opt_time(*expires)),
                ("count", count.to_string()),
                ("at", at.to_string()),
            ]),
            Action::Unban { jail, net } => {
                f.push(("kind", "unban".to_string()));
                f.push(("net", net.to_string()));
                if let Some(j) = jail {
                    f.push(("jail", j.clone()));
                }
            }
            Action::Ignore { net, until } => f.extend([
                ("kind", "ignore".to_string()),
                ("net", net.to_string()),
                ("expires", opt_time(*until)),
            ]),
        }
        f
    }

    /// Reads an entry's fields (as text; non-text values are absent).
    pub fn decode(fields: &HashMap<String, String>) -> Result<Message, Malformed> {
        let get = |k: &'static str| fields.get(k).ok_or(Malformed::Missing(k));
        let v = get("v")?;
        if v != FORMAT {
            return Err(Malformed::Version(v.clone()));
        }
        let node = get("node")?.clone();
        if node.is_empty() || node.len() > 64 {
            return Err(Malformed::Invalid {
                field: "node",
                value: node,
            });
        }
        let ms = num::<i64>(fields, "ms")?.unwrap_or(0);
        let net = net(get("net")?)?;
        let jail = fields.get("jail").cloned();
        if let Some(j) = &jail {
            if !crate::config::valid_jail_name(j) {
                return Err(Malformed::Invalid {
                    field: "jail",
                    value: j.clone(),
                });
            }
        }
        let action = match get("kind")?.as_str() {
            "ban" => Action::Ban {
                jail: jail.ok_or(Malformed::Missing("jail"))?,
                net,
                expires: time(fields, "expires")?,
                count: num::<u32>(fields, "count")?.unwrap_or(1).max(1),
                at: num::<i64>(fields, "at")?.unwrap_or(0),
            },
            "unban" => Action::Unban { jail, net },
            "ignore" => Action::Ignore {
                net,
                until: time(fields, "expires")?,
            },
            other => return Err(Malformed::Kind(other.to_string())),
        };
        Ok(Message { node, action, ms })
    }
}

fn net(s: &str) -> Result<IpNet, Malformed> {
    let invalid = || Malformed::Invalid {
        field: "net",
        value: s.chars().take(64).collect(),
    };
    let n: IpNet = s.parse().map_err(|_| invalid())?;
    // Only a network's own address: `10.0.0.5/8` is not what anyone meant.
    if n.trunc() != n || n.prefix_len() == 0 {
        return Err(invalid());
    }
    Ok(n)
}

fn num<T: std::str::FromStr>(
    fields: &HashMap<String, String>,
    field: &'static str,
) -> Result<Option<T>, Malformed> {
    fields
        .get(field)
        .map(|s| {
            s.parse().map_err(|_| Malformed::Invalid {
                field,
                value: s.chars().take(64).collect(),
            })
        })
        .transpose()
}

/// `-1`: none (permanent).
fn time(
    fields: &HashMap<String, String>,
    field: &'static str,
) -> Result<Option<UnixTime>, Malformed> {
    Ok(match num::<i64>(fields, field)? {
        None | Some(-1) => None,
        Some(t) if t >= 0 => Some(t),
        Some(t) => {
            return Err(Malformed::Invalid {
                field,
                value: t.to_string(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(m: &Message) -> HashMap<String, String> {
        m.fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn every_kind_round_trips() {
        for action in [
            Action::Ban {
                jail: "sshd".into(),
                net: "198.51.100.7/32".parse().unwrap(),
                expires: Some(1_800_000_000),
                count: 2,
                at: 1_799_999_000,
            },
            Action::Ban {
                jail: "sshd".into(),
                net: "2001:db8:1::/64".parse().unwrap(),
                expires: None,
                count: 1,
                at: 5,
            },
            Action::Unban {
                jail: None,
                net: "198.51.100.0/24".parse().unwrap(),
            },
            Action::Unban {
                jail: Some("web".into()),
                net: "198.51.100.7/32".parse().unwrap(),
            },
            Action::Ignore {
                net: "203.0.113.9/32".parse().unwrap(),
                until: Some(99),
            },
        ] {
            let m = Message {
                node: "web-3".into(),
                action,
                ms: 1234,
            };
            assert_eq!(Message::decode(&map(&m)), Ok(m));
        }
    }

    #[test]
    fn foreign_and_malformed_entries_are_reasons_not_bans() {
        let good = map(&Message {
            node: "n".into(),
            action: Action::Ban {
                jail: "j".into(),
                net: "198.51.100.7/32".parse().unwrap(),
                expires: None,
                count: 1,
                at: 0,
            },
            ms: 0,
        });
        let with = |k: &str, v: &str| {
            let mut m = good.clone();
            m.insert(k.into(), v.into());
            m
        };
        let without = |k: &str| {
            let mut m = good.clone();
            m.remove(k);
            m
        };
        for (fields, want) in [
            (with("v", "2"), "version"),
            (without("node"), "node"),
            (with("net", "example.com"), "net"),
            (with("net", "198.51.100.7/8"), "net"),
            (with("net", "0.0.0.0/0"), "net"),
            (with("kind", "nuke"), "kind"),
            (without("jail"), "jail"),
            (with("jail", "a b;c"), "jail"),
            (with("expires", "soon"), "expires"),
            (with("expires", "-5"), "expires"),
            (HashMap::new(), "v"),
        ] {
            let e = Message::decode(&fields).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}
