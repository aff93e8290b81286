//! fail2ban actions in banwarden's terms, for `import-fail2ban`.
//!
//! Owns which `action.d` actions are bans (firewalls: iptables, nftables,
//! firewalld, ufw, shorewall, pf, route...) and what they ban: the ports
//! and protocol passed to them, all ports for the `*-allports` ones, and
//! their `blocktype` (read from the action file with the options the jail
//! passes) as `drop` or `reject`; and fail2ban's port lists (`ssh`,
//! `http,https`, `8000:8080`, `0:65535`) as banwarden ports, service names
//! looked up in `/etc/services`. Anything else (mail, reporting services,
//! scripts) is refused with the reason, for the report. Reads files only.

use std::collections::BTreeMap;
use std::path::Path;

use super::ini::Ini;

/// A fail2ban action that bans, as banwarden will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanAction {
    pub name: String,
    pub all_ports: bool,
    /// `port` passed to the action, if any.
    pub port: Option<String>,
    pub protocol: Option<String>,
    /// `Some(true)`: the action rejects; `Some(false)`: drops; `None`: unknown.
    pub reject: Option<bool>,
    /// Something the report should say about the mapping.
    pub note: Option<String>,
}

/// Name prefixes of the actions that put the address into a firewall.
const FIREWALLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "nftables",
    "firewallcmd",
    "ufw",
    "shorewall",
    "route",
    "pf",
    "ipfw",
    "bsd-ipfw",
    "npf",
    "ipfilter",
    "apf",
    "osx-ipfw",
    "osx-afctl",
];

/// Classifies action `name` with its options; `Err` says why it has no
/// banwarden equivalent.
pub fn classify(
    fail2ban_dir: &Path,
    name: &str,
    opts: &BTreeMap<String, String>,
) -> Result<BanAction, String> {
    if name.ends_with(".py") {
        return Err("a Python action: no equivalent (banwarden runs no scripts)".into());
    }
    let firewall = FIREWALLS
        .iter()
        .any(|f| name == *f || name.starts_with(&format!("{f}-")));
    if !firewall {
        let why = if name.contains("mail") || name.starts_with("sendmail") {
            "mails are not sent by banwarden (its log and `banwarden bans` show each ban)"
        } else if name == "dummy" {
            "a placeholder action (writes a file): not needed"
        } else if name == "hostsdeny" {
            "tcp-wrappers bans (hosts.deny): banwarden bans in nftables instead, \
             which covers every service"
        } else {
            "a reporting or custom action: no equivalent in banwarden"
        };
        return Err(why.into());
    }
    let all_ports = name.contains("allports")
        || matches!(name, "route" | "ufw" | "pf" | "npf" | "ipfilter" | "apf")
        || name.starts_with("osx-");
    let blocktype = opts.get("blocktype").cloned().or_else(|| {
        let file = fail2ban_dir.join("action.d").join(format!("{name}.conf"));
        let ini = Ini::read(&file).ok()?;
        ini.get("Init", "blocktype", opts)
            .or_else(|| ini.get("Definition", "blocktype", opts))?
            .ok()
            .map(|v| v.0)
    });
    let (reject, note) = match blocktype.as_deref().map(str::to_ascii_lowercase) {
        Some(b) if b.contains("drop") || b.contains("blackhole") => (Some(false), None),
        Some(b) if b.contains("reject") || b.contains("unreachable") || b.contains("prohibit") => {
            (Some(true), None)
        }
        Some(b) => (
            None,
            Some(format!(
                "action {name}: blocktype {b:?} is neither drop nor reject; banwarden drops"
            )),
        ),
        None => (None, None),
    };
    Ok(BanAction {
        name: name.to_string(),
        all_ports,
        port: opts.get("port").cloned(),
        protocol: opts.get("protocol").cloned(),
        reject,
        note,
    })
}

/// fail2ban's port list as banwarden ports: names banwarden knows stay
/// names, others become numbers from `/etc/services`, `a:b` becomes `a-b`;
/// a range covering every port gives the empty list (all ports).
pub fn ports(value: &str) -> Result<Vec<String>, String> {
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    ports_with(value, &services)
}

fn ports_with(value: &str, services: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for word in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|w| w.trim().trim_matches('"'))
        .filter(|w| !w.is_empty())
    {
        let one = |p: &str| -> Result<String, String> {
            if p.parse::<u16>().is_ok_and(|n| n > 0) || KNOWN.contains(&p) {
                return Ok(p.to_string());
            }
            lookup(services, p)
                .map(|n| n.to_string())
                .ok_or_else(|| format!("{p:?} is neither a port nor a service in /etc/services"))
        };
        let entry = match word.split_once(':') {
            Some((a, b)) => {
                let (lo, hi) = (a.trim().parse::<u32>(), b.trim().parse::<u32>());
                match (lo, hi) {
                    (Ok(lo), Ok(hi)) if lo <= 1 && hi >= 65535 => return Ok(Vec::new()),
                    (Ok(lo), Ok(hi)) if lo <= hi => format!("{}-{hi}", lo.max(1)),
                    _ => return Err(format!("{word:?} is not a port range")),
                }
            }
            None => one(word)?,
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Service names banwarden's `ports` takes as they are.
const KNOWN: &[&str] = &[
    "ftp",
    "ssh",
    "smtp",
    "http",
    "pop3",
    "imap",
    "https",
    "submission",
    "imaps",
    "pop3s",
    "mysql",
    "postgresql",
];

/// A service's TCP port (else UDP) in `/etc/services` text.
fn lookup(services: &str, name: &str) -> Option<u16> {
    let mut udp = None;
    for line in services.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(svc), Some(pp)) = (words.next(), words.next()) else {
            continue;
        };
        if svc != name && !words.any(|a| a == name) {
            continue;
        }
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if proto == "tcp" {
            return Some(port);
        }
        udp.get_or_insert(port);
    }
    udp
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: &str = "ssh\t\t22/tcp\nsubmissions\t465/tcp\t\tssmtp smtps # TLS\n\
                            sieve\t\t4190/tcp\nsip\t\t5060/udp\n";

    #[test]
    fn port_lists_become_banwarden_ports() {
        assert_eq!(ports_with("ssh", SERVICES).unwrap(), ["ssh"]);
        assert_eq!(
            ports_with("http,https, 8080", SERVICES).unwrap(),
            ["http", "https", "8080"]
        );
        assert_eq!(
            ports_with("smtps,sieve,sip", SERVICES).unwrap(),
            ["465", "4190", "5060"]
        );
        assert_eq!(ports_with("8000:8080", SERVICES).unwrap(), ["8000-8080"]);
        assert!(ports_with("0:65535", SERVICES).unwrap().is_empty());
        assert!(ports_with("nosuch", SERVICES).is_err());
    }

    #[test]
    fn firewall_actions_ban_with_their_blocktype_and_the_rest_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("action.d");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(
            a.join("iptables.conf"),
            "[Init]\nblocktype = REJECT --reject-with icmp-port-unreachable\n",
        )
        .unwrap();
        std::fs::write(
            a.join("iptables-multiport.conf"),
            "[INCLUDES]\nbefore = iptables.conf\n[Definition]\nactionban = x\n",
        )
        .unwrap();
        let opts = BTreeMap::from([
            ("port".to_string(), "ssh".to_string()),
            ("protocol".to_string(), "tcp".to_string()),
        ]);
        let b = classify(d.path(), "iptables-multiport", &opts).unwrap();
        assert_eq!(b.reject, Some(true));
        assert!(!b.all_ports);
        assert_eq!(b.port.as_deref(), Some("ssh"));
        let mut drop = opts.clone();
        drop.insert("blocktype".into(), "DROP".into());
        assert_eq!(
            classify(d.path(), "iptables-multiport", &drop)
                .unwrap()
                .reject,
            Some(false)
        );
        let all = classify(d.path(), "nftables-allports", &BTreeMap::new()).unwrap();
        assert!(all.all_ports);
        assert_eq!(all.reject, None);
        for refused in [
            "sendmail-whois",
            "mail-whois-lines",
            "abuseipdb",
            "smtp.py",
            "dummy",
        ] {
            assert!(
                classify(d.path(), refused, &BTreeMap::new()).is_err(),
                "{refused}"
            );
        }
    }
}
