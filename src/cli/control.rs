//! `banwarden status | bans | ban | unban | reload | ignore`: the control
//! client's front ends.
//!
//! Owns their arguments, client-side validation (addresses, durations), exit
//! codes (0 ok, 1 daemon error or not running, 2 usage) and human output
//! (tables; `--json` prints the response's data). It talks to the daemon only
//! through `control::client` and must hold no daemon logic.

use std::path::PathBuf;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde::Deserialize;

use crate::control::protocol::{BanInfo, DaemonStatus, JailStatus, Reply, Request};
use crate::control::{client, DEFAULT_SOCKET};
use crate::UnixTime;

/// How to reach the daemon, and how to print its answer.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The daemon's control socket [default: `socket:` of DIR/banwarden.yaml,
    /// else /run/banwarden/banwarden.sock].
    #[arg(long, value_name = "PATH", env = "BANWARDEN_SOCKET")]
    pub socket: Option<PathBuf>,
    // Read only to find the socket.
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Print the daemon's answer as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Show this jail in detail: its settings, top offenders and current bans.
    #[arg(value_name = "JAIL")]
    pub jail: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `bans`.
#[derive(Debug, clap::Args)]
pub struct BansArgs {
    /// Only the bans of this jail.
    #[arg(long, short = 'j', value_name = "JAIL")]
    pub jail: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `ban`.
#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// The jail whose rules block the address (with --from: the jail for a
    /// list of addresses, or for every ban of a JSON list).
    #[arg(value_name = "JAIL", required_unless_present = "from")]
    pub jail: Option<String>,
    /// An address or CIDR network (192.0.2.1, 2001:db8::/64).
    #[arg(
        value_name = "ADDR",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub addr: Option<String>,
    /// Ban every entry of FILE in one transaction: the JSON of `banwarden
    /// bans --json` (jails and remaining times kept), or one address or CIDR
    /// per line (`#` comments; needs JAIL). `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub from: Option<String>,
    /// How long, e.g. 10m, 1h30m, 2d, or `permanent` [default: the jail's bantime].
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `unban`.
#[derive(Debug, clap::Args)]
pub struct UnbanArgs {
    /// An address or CIDR network, as banned.
    #[arg(
        value_name = "ADDR",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub addr: Option<String>,
    /// Only from this jail [default: every jail].
    #[arg(long, short = 'j', value_name = "JAIL")]
    pub jail: Option<String>,
    /// Lift every ban (of `--jail` when given).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Arguments of `ignore`.
#[derive(Debug, clap::Args)]
pub struct IgnoreArgs {
    /// An address or CIDR network never to ban.
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// How long, e.g. 10m, 1h, 2d [default: until the daemon restarts or reloads].
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `banwarden status [JAIL]`.
pub fn run_status(args: StatusArgs) -> i32 {
    exchange(&args.connect, Request::Status { jail: args.jail })
}

/// `banwarden bans [--jail J]`.
pub fn run_bans(args: BansArgs) -> i32 {
    exchange(&args.connect, Request::Bans { jail: args.jail })
}

/// `banwarden ban JAIL ADDR [--for DURATION]`.
pub fn run_ban(args: BanArgs) -> i32 {
    if let Some(from) = &args.from {
        return run_ban_from(from, &args);
    }
    let (Some(jail), Some(addr)) = (args.jail.clone(), args.addr.as_deref()) else {
        return usage("ban: give JAIL and ADDR, or --from FILE");
    };
    let addr = match address(addr) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let seconds = match args.duration.as_deref().map(crate::config::parse_duration) {
        None => None,
        Some(Ok(None)) => Some(-1),
        Some(Ok(Some(s))) => Some(s),
        Some(Err(e)) => return usage(&format!("--for {e}")),
    };
    exchange(
        &args.connect,
        Request::Ban {
            jail,
            addr,
            seconds,
        },
    )
}

/// `banwarden ban --from FILE [JAIL] [--for DURATION]`.
fn run_ban_from(from: &str, args: &BanArgs) -> i32 {
    let seconds = match args.duration.as_deref().map(crate::config::parse_duration) {
        None => None,
        Some(Ok(None)) => Some(-1),
        Some(Ok(Some(s))) => Some(s),
        Some(Err(e)) => return usage(&format!("--for {e}")),
    };
    let entries = super::bulk::read_source(from).and_then(|text| {
        super::bulk::parse_list(from, &text, args.jail.as_deref(), seconds, crate::now())
    });
    match entries {
        Ok(entries) => exchange(
            &args.connect,
            Request::BanMany {
                entries: crate::control::protocol::BulkEntries(entries),
            },
        ),
        Err(e) => usage(&e.to_string()),
    }
}

/// `banwarden unban ADDR [--jail J]`, `banwarden unban --all [--jail J]`.
pub fn run_unban(args: UnbanArgs) -> i32 {
    let addr = match args.addr.as_deref().map(address) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(code)) => return code,
    };
    if addr.is_none() && !args.all {
        return usage("unban: give an ADDR, or --all");
    }
    exchange(
        &args.connect,
        Request::Unban {
            addr,
            jail: args.jail,
            all: args.all,
        },
    )
}

/// `banwarden reload`.
pub fn run_reload(args: ReloadArgs) -> i32 {
    exchange(&args.connect, Request::Reload)
}

/// `banwarden ignore ADDR [--for DURATION]`.
pub fn run_ignore(args: IgnoreArgs) -> i32 {
    let addr = match address(&args.addr) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let seconds = match args.duration.as_deref().map(crate::config::parse_duration) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(s))) => Some(s),
        Some(Err(e)) => return usage(&format!("--for {e}")),
    };
    exchange(&args.connect, Request::Ignore { addr, seconds })
}

fn usage(message: &str) -> i32 {
    eprintln!("banwarden: {message}");
    2
}

/// Validates an address or network; single addresses are sent without prefix.
fn address(s: &str) -> Result<String, i32> {
    match crate::config::parse_net(s) {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => Ok(net.addr().to_string()),
        Ok(net) => Ok(net.to_string()),
        Err(e) => Err(usage(&e)),
    }
}

/// The socket to use: `--socket`, else the config's `socket:`, else the default.
pub fn socket_path(connect: &ConnectArgs) -> PathBuf {
    if let Some(p) = &connect.socket {
        return p.clone();
    }
    if let Ok(config) = crate::config::load(&connect.config.dir()) {
        return config.global.socket;
    }
    // A config with errors elsewhere (or none readable): its `socket:` still counts.
    #[derive(Deserialize)]
    struct SocketOnly {
        socket: Option<String>,
    }
    std::fs::read_to_string(connect.config.dir().join("banwarden.yaml"))
        .ok()
        .and_then(|text| serde_saphyr::from_str::<SocketOnly>(&text).ok())
        .and_then(|g| g.socket)
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// Sends `request`, prints the answer; returns the exit code.
fn exchange(connect: &ConnectArgs, request: Request) -> i32 {
    let socket = socket_path(connect);
    let response = match client::call_blocking(&socket, request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if !response.ok {
        eprintln!(
            "{}",
            response
                .error
                .as_deref()
                .unwrap_or("banwarden reported an error without a message")
        );
        return 1;
    }
    if connect.json {
        match serde_json::to_string_pretty(&response.data) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot print the answer as JSON: {e}");
                return 1;
            }
        }
    } else if let Some(data) = &response.data {
        print!(
            "{}",
            render(data, crate::now(), &jiff::tz::TimeZone::system())
        );
    }
    0
}

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
    use clap::Parser;
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

    #[derive(Debug, Parser)]
    enum Cmd {
        Status(StatusArgs),
        Bans(BansArgs),
        Ban(BanArgs),
        Unban(UnbanArgs),
        Reload(ReloadArgs),
        Ignore(IgnoreArgs),
    }

    #[test]
    fn arguments_parse_and_conflict() {
        Cmd::command_for_test().debug_assert();
        let Cmd::Ban(b) =
            Cmd::try_parse_from(["x", "ban", "sshd", "192.0.2.1", "--for", "1h", "--json"])
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                b.jail.as_deref(),
                b.addr.as_deref(),
                b.duration.as_deref(),
                b.connect.json
            ),
            (Some("sshd"), Some("192.0.2.1"), Some("1h"), true)
        );
        let Cmd::Unban(u) = Cmd::try_parse_from(["x", "unban", "--all", "-j", "sshd"]).unwrap()
        else {
            panic!()
        };
        assert!(u.all && u.addr.is_none() && u.jail.as_deref() == Some("sshd"));
        let e = Cmd::try_parse_from(["x", "unban", "192.0.2.1", "--all"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cmd::try_parse_from(["x", "unban"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let Cmd::Status(s) =
            Cmd::try_parse_from(["x", "status", "sshd", "--socket", "/tmp/s.sock"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.jail.as_deref(), Some("sshd"));
        assert_eq!(socket_path(&s.connect), PathBuf::from("/tmp/s.sock"));
        assert!(matches!(
            Cmd::try_parse_from(["x", "bans", "--jail", "web"]).unwrap(),
            Cmd::Bans(BansArgs { jail: Some(_), .. })
        ));
        assert!(matches!(
            Cmd::try_parse_from(["x", "reload"]).unwrap(),
            Cmd::Reload(_)
        ));
        assert!(matches!(
            Cmd::try_parse_from(["x", "ignore", "10.0.0.0/8", "--for", "2d"]).unwrap(),
            Cmd::Ignore(_)
        ));
    }

    impl Cmd {
        fn command_for_test() -> clap::Command {
            <Cmd as clap::CommandFactory>::command()
        }
    }

    fn connect_to(socket: Option<PathBuf>, config: PathBuf) -> ConnectArgs {
        ConnectArgs {
            socket,
            config: crate::cli::ConfigArg {
                config: Some(config),
            },
            json: false,
        }
    }

    #[test]
    fn socket_comes_from_the_config_or_the_default() {
        let dir = tempfile::TempDir::new().unwrap();
        assert_eq!(
            socket_path(&connect_to(None, dir.path().join("missing"))),
            PathBuf::from(DEFAULT_SOCKET)
        );
        std::fs::write(
            dir.path().join("banwarden.yaml"),
            "socket: /tmp/elsewhere.sock\n",
        )
        .unwrap();
        assert_eq!(
            socket_path(&connect_to(None, dir.path().to_path_buf())),
            PathBuf::from("/tmp/elsewhere.sock")
        );
        // A broken jail elsewhere does not hide the socket setting.
        std::fs::create_dir(dir.path().join("jails")).unwrap();
        std::fs::write(dir.path().join("jails/bad.yaml"), "sshd: [nonsense\n").unwrap();
        assert_eq!(
            socket_path(&connect_to(None, dir.path().to_path_buf())),
            PathBuf::from("/tmp/elsewhere.sock")
        );
        assert_eq!(
            socket_path(&connect_to(
                Some("/x.sock".into()),
                dir.path().to_path_buf()
            )),
            PathBuf::from("/x.sock")
        );
    }

    #[test]
    fn bad_input_is_a_usage_error_before_connecting() {
        let missing = tempfile::TempDir::new().unwrap();
        let connect = connect_to(
            Some(missing.path().join("no.sock")),
            missing.path().to_path_buf(),
        );
        let ban = |addr: &str, duration: Option<&str>| BanArgs {
            jail: Some("sshd".into()),
            addr: Some(addr.into()),
            from: None,
            duration: duration.map(str::to_string),
            connect: connect.clone(),
        };
        assert_eq!(run_ban(ban("300.1.1.1", None)), 2);
        assert_eq!(run_ban(ban("192.0.2.1", Some("soon"))), 2);
        assert_eq!(
            run_ignore(IgnoreArgs {
                addr: "nope".into(),
                duration: None,
                connect: connect.clone()
            }),
            2
        );
        assert_eq!(
            run_unban(UnbanArgs {
                addr: Some("::g".into()),
                jail: None,
                all: false,
                connect: connect.clone()
            }),
            2
        );
        // Valid input reaches the (missing) daemon: exit 1, not running.
        assert_eq!(run_ban(ban("192.0.2.1", Some("permanent"))), 1);
        assert_eq!(
            run_status(StatusArgs {
                jail: None,
                connect
            }),
            1
        );
        assert_eq!(address(" 192.0.2.1 ").unwrap(), "192.0.2.1");
        assert_eq!(address("192.0.2.1/32").unwrap(), "192.0.2.1");
        assert_eq!(address("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(address("2001:db8::1/64").unwrap(), "2001:db8::/64");
    }
}
