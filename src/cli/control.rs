//! `banwarden status | bans | ban | unban | reload | ignore`: the control
//! client's front ends.
//!
//! Owns their arguments, client-side validation (addresses, durations), exit
//! codes (0 ok, 1 daemon error or not running, 2 usage) and human output
//! (`render`: tables; `--json` prints the response's data). It talks to the daemon only
//! through `control::client` and must hold no daemon logic.

mod render;

use std::path::PathBuf;

use serde::Deserialize;

use crate::control::protocol::Request;
use crate::control::{client, DEFAULT_SOCKET};
pub use render::{human_duration, render, time_left};

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
