//! What a fail2ban jail never bans and how it bans: `ignoreip`,
//! `ignoreself` and the options with no equivalent beside them, and the ban
//! actions as banwarden's ports, protocol and block type.
//!
//! Owns that mapping for `import`; what has no equivalent becomes a
//! finding, never a silent drop.

use super::{Bans, Ctx, Level};
use crate::fail2ban::actions::{self, BanAction};
use crate::fail2ban::jails::parse_bool;
use crate::fail2ban::syntax::{split_actions, split_ref};

impl Ctx<'_> {
    /// `ignoreip` (addresses and networks) and `ignoreself`.
    pub(super) fn ignores(&mut self) -> Result<(Vec<String>, Option<bool>), String> {
        let f2b = self.f2b;
        let mut ignoreip = Vec::new();
        for word in f2b
            .get("ignoreip")
            .unwrap_or("")
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
        {
            if word.parse::<ipnet::IpNet>().is_ok() || word.parse::<std::net::IpAddr>().is_ok() {
                ignoreip.push(word.to_string());
            } else {
                self.push(
                    Level::NotImported,
                    self.at("ignoreip"),
                    format!("ignoreip {word:?}: banwarden ignores addresses and networks only (no DNS names or files)"),
                );
            }
        }
        self.mark("ignoreip", "ignoreip");
        let ignoreself = self.parsed("ignoreself", |v| {
            parse_bool(v).ok_or("not a boolean".into())
        })?;
        self.mark("ignoreself", "ignoreself");
        for opt in ["ignorecommand", "bantime.rndtime", "bantime.formula"] {
            if let Some(v) = f2b.get(opt).filter(|v| !v.trim().is_empty()) {
                self.push(
                    Level::NotImported,
                    self.at(opt),
                    format!("{opt} = {v}: no equivalent"),
                );
            }
        }
        if let Some(v) = f2b.get("usedns").map(str::trim) {
            if v.eq_ignore_ascii_case("yes") {
                self.push(
                    Level::NotImported,
                    self.at("usedns"),
                    "usedns = yes: banwarden never resolves names; a DNS name is counted as a bad host",
                );
            }
        }

        Ok((ignoreip, ignoreself))
    }

    /// The ban actions: bans become the jail's own; the rest is reported.
    pub(super) fn bans(&mut self) -> Result<Bans, String> {
        let f2b = self.f2b;
        // Actions: bans become the jail's own; the rest is reported.
        let action_value = f2b.get("action").unwrap_or("");
        let mut bans: Vec<BanAction> = Vec::new();
        for line in split_actions(action_value) {
            let (act, opts) = split_ref(&line)?;
            match actions::classify(&self.files.dir, &act, &opts) {
                Ok(b) => {
                    if let Some(note) = &b.note {
                        self.push(Level::Note, self.at("action"), note.clone());
                    }
                    bans.push(b)
                }
                Err(why) => self.push(
                    Level::NotImported,
                    self.at("action"),
                    format!("action {act}: {why}"),
                ),
            }
        }
        self.mark("action", "action");
        if bans.is_empty() {
            self.push(
                Level::NotImported,
                self.at("action"),
                "no ban action in fail2ban (it only reported); banwarden bans",
            );
        }
        if let Some(other) = bans
            .iter()
            .skip(1)
            .find(|b| b.protocol.is_some() && b.protocol != bans[0].protocol)
        {
            self.push(
                Level::NotImported,
                self.at("action"),
                format!(
                    "action {} bans protocol {}: a banwarden jail bans one protocol, {}",
                    other.name,
                    other.protocol.as_deref().unwrap_or("?"),
                    bans[0].protocol.as_deref().unwrap_or("tcp")
                ),
            );
        }
        let all_ports = bans.is_empty() || bans.iter().any(|b| b.all_ports);
        let port_value = bans
            .iter()
            .find_map(|b| b.port.clone())
            .or_else(|| f2b.get("port").map(str::to_string))
            .unwrap_or_default();
        let protocol_value = bans
            .iter()
            .find_map(|b| b.protocol.clone())
            .or_else(|| f2b.get("protocol").map(str::to_string))
            .unwrap_or_else(|| "tcp".into());
        let ports = if all_ports {
            Vec::new()
        } else {
            actions::ports(&port_value)
                .map_err(|e| format!("{}: port: {e}", self.at("port").unwrap_or_default()))?
        };
        self.mark("ports", "port");
        let protocol = match protocol_value.trim() {
            p @ ("tcp" | "udp") => Some(p.to_string()),
            "all" if ports.is_empty() => Some("all".into()),
            other => {
                self.push(
                    Level::NotImported,
                    self.at("protocol"),
                    format!("protocol {other:?}: banwarden bans tcp, udp or all; tcp is used"),
                );
                Some("tcp".into())
            }
        };
        self.mark("protocol", "protocol");
        let action = match bans.iter().find(|b| b.reject.is_some()) {
            Some(b) if b.reject == Some(true) => "reject",
            _ => "drop",
        };
        Ok(Bans {
            ports,
            protocol,
            action,
        })
    }
}
