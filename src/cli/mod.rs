//! Command-line interface: argument parsing and the subcommands' front ends.
//!
//! Owns what the user types and what they read back (exit codes, messages). The
//! work itself is done by the library modules; nothing here matches or bans.

pub mod bulk;
pub mod check;
pub mod control;
pub mod dry_run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// banwarden watches logs for failed logins and bans the offending addresses
/// with nftables, expiring each ban in the kernel on its own.
#[derive(Debug, Parser)]
#[command(name = "banwarden", version, about, long_about = None, after_help = "\
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
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// Configuration directory.
    #[arg(long, short = 'c', value_name = "DIR", default_value = crate::config::DEFAULT_DIR, env = "BANWARDEN_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Command used to run nft (split on spaces), e.g. "ip netns exec lab nft".
    #[arg(long, value_name = "CMD", default_value = "nft", hide = true)]
    pub nft: String,
}

/// Runs the parsed command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => crate::daemon::main(crate::daemon::Options {
            config_dir: args.config.config,
            nft_cmd: args.nft.split_whitespace().map(str::to_string).collect(),
        }),
        Command::Check(args) => check::run(&args.config),
        Command::DryRun(args) => dry_run::run(*args),
        Command::Status(args) => control::run_status(args),
        Command::Bans(args) => control::run_bans(args),
        Command::Ban(args) => control::run_ban(args),
        Command::Unban(args) => control::run_unban(args),
        Command::Reload(args) => control::run_reload(args),
        Command::Ignore(args) => control::run_ignore(args),
    }
}
