//! Human output of the control commands: tables of jails, bans and files,
//! times in the local zone, durations as a person writes them.
//!
//! Owns only formatting of a daemon's answer; it must not talk to the
//! daemon or decide anything.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

use crate::control::protocol::{BanInfo, DaemonStatus, JailStatus, Reply};
use crate::UnixTime;

/// The human rendering of an answer, ending with a newline.
pub fn render(reply: &Reply, now: UnixTime, tz: &jiff::tz::TimeZone) -> String {
    match reply {
        Reply::Status(s) => render_status(s),
        Reply::Jail(j) => render_jail(j, now, tz),
        Reply::Bans { bans } if bans.is_empty() => "no active bans\n".to_string(),
        Reply::Bans { bans } => format!("{}\n", bans_table(bans, true, now, tz)),
        Reply::Done { count, message } if message.is_empty() => format!("done ({count})\n"),
        Reply::Done { message, .. } => format!("{message}\n"),
    }
}

/// The fleet link in two lines: state, and message counters.
fn render_fleet(f: &crate::fleet::FleetStatus) -> String {
    let link = if f.connected {
        format!(
            "connected, lag {}",
            f.lag_ms
                .map_or_else(|| "-".to_string(), |l| format!("{l} ms"))
        )
    } else {
        format!(
            "DISCONNECTED ({}), {} waiting; banning locally",
            f.last_error.as_deref().unwrap_or("not connected yet"),
            f.pending
        )
    };
    format!(
        "fleet: node {} on {}: {link}\n       {} other node(s); {} published, {} received, {} failed, {} malformed\n",
        f.node, f.redis, f.members, f.published, f.received, f.failed, f.malformed
    )
}

fn render_status(s: &DaemonStatus) -> String {
    let mut out = format!(
        "banwarden {}, up {}\nconfig: {}\nnftables table: inet {}\n\n",
        s.version,
        human_duration(s.uptime_seconds.try_into().unwrap_or(i64::MAX)),
        s.config_dir.display(),
        s.table
    );
    if let Some(f) = &s.fleet {
        out.push_str(&render_fleet(f));
    }
    if s.jails.is_empty() {
        out.push_str("no jails enabled\n");
    } else {
        let mut t = table(
            &[
                "JAIL",
                "FILTER",
                "FAILING",
                "BANNED",
                "TOTAL BANS",
                "LINES",
                "MATCHED",
            ],
            &[2, 3, 4, 5, 6],
        );
        for j in &s.jails {
            t.add_row(vec![
                j.name.clone(),
                j.filter.clone(),
                j.failures_tracked.to_string(),
                j.active_bans.to_string(),
                j.total_bans.to_string(),
                j.lines.to_string(),
                j.matched.to_string(),
            ]);
        }
        out.push_str(&t.trim_fmt());
        out.push('\n');
        for j in &s.jails {
            if let Some(w) = &j.proxy_warning {
                out.push_str(&format!("WARNING: jail {}: {w}\n", j.name));
            }
            for h in &j.health {
                out.push_str(&format!("warning: jail {}: {h}\n", j.name));
            }
        }
    }
    out.push('\n');
    if s.files.is_empty() {
        out.push_str("no files watched\n");
    } else {
        let mut t = table(&["FILE", "OFFSET", "INODE"], &[1, 2]);
        for f in &s.files {
            t.add_row(vec![
                f.path.display().to_string(),
                f.offset.to_string(),
                f.inode.to_string(),
            ]);
        }
        out.push_str(&t.trim_fmt());
        out.push('\n');
    }
    out
}

fn render_jail(j: &JailStatus, now: UnixTime, tz: &jiff::tz::TimeZone) -> String {
    let or_none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let logpath = or_none(j.logpath.iter().map(|p| p.display().to_string()).collect());
    let ports = if j.ports.is_empty() {
        format!("all ({})", j.protocol)
    } else {
        format!("{} ({})", j.ports.join(", "), j.protocol)
    };
    let bantime = j
        .bantime_seconds
        .map_or_else(|| "permanent".to_string(), human_duration);
    let counters = or_none(j.counters.iter().map(|(k, v)| format!("{k} {v}")).collect());
    let mut out = format!(
        "jail {}\n  filter:    {}\n  logpath:   {logpath}\n  maxretry:  {} within {}\n  bantime:   {bantime}\n  ports:     {ports}\n  ignoreip:  {}\n  counters:  {counters}\n\n",
        j.name,
        j.filter,
        j.maxretry,
        human_duration(j.findtime_seconds),
        or_none(j.ignoreip.clone()),
    );
    if j.last_line.is_some() || j.last_match.is_some() {
        let at = |t: Option<UnixTime>| t.map_or_else(|| "never".to_string(), |t| local_time(t, tz));
        out.push_str(&format!(
            "last line: {}; last match: {}\n\n",
            at(j.last_line),
            at(j.last_match)
        ));
    }
    if let Some(w) = &j.proxy_warning {
        out.push_str(&format!("WARNING: {w}\n\n"));
    }
    for h in &j.health {
        out.push_str(&format!("warning: {h}\n\n"));
    }
    if j.top_offenders.is_empty() {
        out.push_str("no failures in the window\n");
    } else {
        out.push_str("top offenders:\n");
        let mut t = table(&["ADDRESS", "FAILURES"], &[1]);
        for o in &j.top_offenders {
            t.add_row(vec![o.addr.clone(), o.failures.to_string()]);
        }
        out.push_str(&t.trim_fmt());
        out.push('\n');
    }
    out.push('\n');
    if j.bans.is_empty() {
        out.push_str("no current bans\n");
    } else {
        out.push_str(&format!("current bans ({}):\n", j.bans.len()));
        out.push_str(&bans_table(&j.bans, false, now, tz));
        out.push('\n');
    }
    out
}

fn bans_table(bans: &[BanInfo], with_jail: bool, now: UnixTime, tz: &jiff::tz::TimeZone) -> String {
    let mut headers = vec!["ADDRESS", "BANNED AT", "TIME LEFT", "BANS"];
    if with_jail {
        headers.insert(0, "JAIL");
    }
    let mut t = table(&headers, &[headers.len() - 1]);
    for b in bans {
        let mut row = vec![
            b.addr.clone(),
            local_time(b.banned_at, tz),
            time_left(b.expires, now),
            b.count.to_string(),
        ];
        if with_jail {
            row.insert(0, b.jail.clone());
        }
        t.add_row(row);
    }
    t.trim_fmt()
}

/// A borderless table, columns two spaces apart, `right` columns right-aligned.
fn table(headers: &[&str], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// `2024-05-01 12:00:03` in `tz`.
fn local_time(t: UnixTime, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// `1h 2m`, `permanent`, or `expiring` once the time is up.
pub fn time_left(expires: Option<UnixTime>, now: UnixTime) -> String {
    match expires {
        None => "permanent".to_string(),
        Some(e) if e <= now => "expiring".to_string(),
        Some(e) => human_duration(e - now),
    }
}

/// The two largest units: `45s`, `5m 3s`, `1h 2m`, `3d 4h`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(n, _)| s >= *n) else {
        return "0s".to_string();
    };
    let mut rest = s;
    let mut parts = Vec::new();
    for (n, name) in &units[first..(first + 2).min(units.len())] {
        let v = rest / n;
        rest %= n;
        if v > 0 {
            parts.push(format!("{v}{name}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{JailSummary, Offender, WatchedFile};
    use std::collections::BTreeMap;
    #[test]
    fn durations_read_like_a_human_wrote_them() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(303), "5m 3s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3720), "1h 2m");
        assert_eq!(human_duration(3723), "1h 2m");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 4 + 59), "3d 4h");
        assert_eq!(human_duration(86_400 + 60), "1d");
        assert_eq!(time_left(None, 100), "permanent");
        assert_eq!(time_left(Some(100), 100), "expiring");
        assert_eq!(time_left(Some(3820), 100), "1h 2m");
    }

    fn ban(jail: &str, addr: &str, expires: Option<UnixTime>) -> BanInfo {
        BanInfo {
            jail: jail.into(),
            addr: addr.into(),
            banned_at: 1_700_000_000,
            expires,
            count: 3,
            origin: None,
        }
    }

    #[test]
    fn bans_render_as_a_table() {
        let bans = vec![
            ban("sshd", "192.0.2.1", Some(1_700_003_720)),
            ban("postfix", "2001:db8::/64", None),
        ];
        let out = render(
            &Reply::Bans { bans },
            1_700_000_000,
            &jiff::tz::TimeZone::UTC,
        );
        assert_eq!(
            out,
            "\
JAIL     ADDRESS        BANNED AT            TIME LEFT  BANS
sshd     192.0.2.1      2023-11-14 22:13:20  1h 2m         3
postfix  2001:db8::/64  2023-11-14 22:13:20  permanent     3
"
        );
        assert_eq!(
            render(&Reply::Bans { bans: vec![] }, 0, &jiff::tz::TimeZone::UTC),
            "no active bans\n"
        );
        assert_eq!(
            render(
                &Reply::Done {
                    count: 1,
                    message: "banned 192.0.2.1 in sshd for 1h".into()
                },
                0,
                &jiff::tz::TimeZone::UTC
            ),
            "banned 192.0.2.1 in sshd for 1h\n"
        );
    }

    #[test]
    fn status_renders_jails_and_files() {
        let s = DaemonStatus {
            version: "0.1.0".into(),
            uptime_seconds: 93_784,
            config_dir: "/etc/banwarden".into(),
            table: "banwarden".into(),
            jails: vec![JailSummary {
                name: "sshd".into(),
                filter: "sshd".into(),
                failures_tracked: 3,
                active_bans: 1,
                total_bans: 17,
                lines: 12_034,
                matched: 45,
                health: vec![],
                proxy_warning: None,
            }],
            files: vec![WatchedFile {
                path: "/var/log/auth.log".into(),
                offset: 123_456,
                inode: 393,
            }],
            fleet: None,
        };
        let out = render(&Reply::Status(s), 0, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            out,
            "\
banwarden 0.1.0, up 1d 2h
config: /etc/banwarden
nftables table: inet banwarden

JAIL  FILTER  FAILING  BANNED  TOTAL BANS  LINES  MATCHED
sshd  sshd          3       1          17  12034       45

FILE               OFFSET  INODE
/var/log/auth.log  123456    393
"
        );
    }

    #[test]
    fn jail_status_renders_settings_offenders_and_bans() {
        let j = JailStatus {
            name: "sshd".into(),
            filter: "sshd".into(),
            logpath: vec!["/var/log/auth.log".into()],
            maxretry: 5,
            findtime_seconds: 600,
            bantime_seconds: None,
            ignoreip: vec![],
            ports: vec!["22".into()],
            protocol: "tcp".into(),
            counters: BTreeMap::from([("lines".to_string(), 10), ("matched".to_string(), 2)]),
            top_offenders: vec![Offender {
                addr: "198.51.100.4".into(),
                failures: 4,
            }],
            bans: vec![ban("sshd", "192.0.2.1", Some(1_700_000_045))],
            last_line: None,
            last_match: None,
            health: vec![],
            proxy_warning: None,
        };
        let out = render(&Reply::Jail(j), 1_700_000_000, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            out,
            "\
jail sshd
  filter:    sshd
  logpath:   /var/log/auth.log
  maxretry:  5 within 10m
  bantime:   permanent
  ports:     22 (tcp)
  ignoreip:  none
  counters:  lines 10, matched 2

top offenders:
ADDRESS       FAILURES
198.51.100.4         4

current bans (1):
ADDRESS    BANNED AT            TIME LEFT  BANS
192.0.2.1  2023-11-14 22:13:20  45s           3
"
        );
    }
}
