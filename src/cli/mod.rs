//! Command-line interface: argument parsing and the subcommands' front ends.
//!
//! Owns what the user types and what they read back (exit codes, messages). The
//! work itself is done by the library modules; nothing here matches or bans.

pub mod bulk;
pub mod check;
pub mod control;
pub mod dry_run;
pub mod generate;
pub mod import_fail2ban;
pub mod readme;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

/// `--version`: a debug build says so, so that a package built from one
/// (scripts/deb.sh refuses unless asked) is noticed (its postinst warns).
const VERSION: &str = if cfg!(debug_assertions) {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (debug build: slow, not for production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

/// banwarden watches logs for failed logins and bans the offending addresses
/// with nftables, expiring each ban in the kernel on its own.
#[derive(Debug, Parser)]
#[command(name = "banwarden", version = VERSION, about, long_about = None, after_help = "\
Quick start:
  banwarden check --config ./          validate a config directory
  banwarden dry-run /var/log/auth.log --filter sshd
                                       see what a filter matches, without banning
  banwarden run --config /etc/banwarden
                                       run the daemon in the foreground (as root)

The config directory holds banwarden.yaml, filters/*.yaml and jails/*.yaml;
see the README for every key.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (logs to stderr; SIGHUP reloads, SIGTERM stops).
    Run(RunArgs),
    /// Validate the configuration; print every error with file, line, column and field.
    Check(ConfigArg),
    /// Test a filter or a whole jail against logs, without touching the firewall.
    DryRun(Box<dry_run::DryRunArgs>),
    /// Show the running daemon: jails, watched files, bans; or one jail in detail.
    Status(control::StatusArgs),
    /// List active bans.
    Bans(control::BansArgs),
    /// Ban an address (or network) in a jail now, or a whole list with --from.
    Ban(control::BanArgs),
    /// Lift a ban (from every jail, or one), or all bans with --all.
    Unban(control::UnbanArgs),
    /// Re-read the configuration; errors are shown and the running one is kept.
    Reload(control::ReloadArgs),
    /// Never ban an address (or network) until restart or reload, or for --for.
    Ignore(control::IgnoreArgs),
    /// Print man pages or shell completions (for packagers).
    Generate(generate::GenerateArgs),
    /// Write banwarden jails from fail2ban's jail.conf, jail.local and jail.d.
    ImportFail2ban(import_fail2ban::ImportArgs),
}

/// `--config DIR`: the one definition every command shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArg {
    /// Configuration directory [default: /etc/banwarden; when that does not
    /// exist, the current directory if it holds banwarden.yaml or filters/].
    #[arg(long, short = 'c', value_name = "DIR", env = "BANWARDEN_CONFIG", value_hint = clap::ValueHint::DirPath)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The directory given, else the default (see the flag's help).
    pub fn dir(&self) -> PathBuf {
        if let Some(d) = &self.config {
            return d.clone();
        }
        let default = PathBuf::from(crate::config::DEFAULT_DIR);
        let here = Path::new("banwarden.yaml").is_file() || Path::new("filters").is_dir();
        if !default.is_dir() && here {
            return PathBuf::from(".");
        }
        default
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Command used to run nft (split on spaces), e.g. "ip netns exec lab nft".
    #[arg(long, value_name = "CMD", default_value = "nft", hide = true)]
    pub nft: String,
    /// Log format: `auto` is the systemd journal (with JAIL=, ADDR=... fields)
    /// when systemd started the daemon, else text on stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = crate::logging::LogFormat::Auto)]
    pub log_format: crate::logging::LogFormat,
}

/// Runs the parsed command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => crate::daemon::main(crate::daemon::Options {
            config_dir: args.config.dir(),
            nft_cmd: args.nft.split_whitespace().map(str::to_string).collect(),
            log_format: args.log_format,
        }),
        Command::Check(args) => check::run(&args.dir()),
        Command::DryRun(args) => dry_run::run(*args),
        Command::Status(args) => control::run_status(args),
        Command::Bans(args) => control::run_bans(args),
        Command::Ban(args) => control::run_ban(args),
        Command::Unban(args) => control::run_unban(args),
        Command::Reload(args) => control::run_reload(args),
        Command::Ignore(args) => control::run_ignore(args),
        Command::Generate(args) => generate::run(args),
        Command::ImportFail2ban(args) => import_fail2ban::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn benchmark_knobs_stay_out_of_the_help() {
        let mut cmd = super::Cli::command();
        let dry_run = cmd.find_subcommand_mut("dry-run").unwrap();
        let help = dry_run.render_long_help().to_string();
        for knob in [
            "--chunk-kib",
            "--no-date-cache",
            "BANWARDEN_DRY_RUN_TIMING",
            "--nft",
        ] {
            assert!(!help.contains(knob), "{knob} in the help");
        }
        assert!(help.contains("--config"));
    }
}
