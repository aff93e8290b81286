//! The command line of `dry-run`: its arguments, their help and the value
//! sets of `--show` and `--color`. Declarations only: `dry_run` acts on them.

use std::path::PathBuf;

/// Which lines `--show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowKind {
    /// Lines a failregex matched (with a valid host): failures.
    Matched,
    /// Lines no failregex matched.
    Missed,
    /// Lines a failregex matched but an ignoreregex dismissed.
    Ignored,
    /// Lines a failregex matched whose host is not an IP address.
    BadHost,
}

/// When to colour the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    /// When stdout is a terminal (and NO_COLOR is not set).
    #[default]
    Auto,
    Always,
    Never,
}

/// Arguments of `dry-run`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).args(["filter", "regex", "jail"])),
    after_help = "\
Examples:
  banwarden dry-run /var/log/auth.log --filter sshd
  banwarden dry-run /var/log/auth.log.2.gz /var/log/auth.log.1 /var/log/auth.log --jail sshd
  banwarden dry-run access.log --regex '^<HOST> .* \"POST /login' --show matched --max 20
  banwarden dry-run --line 'Login failure 203.0.113.7' --regex 'Login failure <HOST>'
  banwarden dry-run app.log --filter ./my-filter.yaml --json | jq .jail.bans

Exit status: 0 when the filter matched something, 1 when it matched nothing,
2 on usage, config or input errors."
)]
pub struct DryRunArgs {
    /// Log files to read, in order (oldest first for a jail timeline); `-` is
    /// standard input; gzip-compressed files (rotated logs) are read as such.
    /// With --jail and no LOG, the jail's own logpath is read.
    #[arg(value_name = "LOG")]
    pub logs: Vec<String>,

    /// Test one line of text instead of logs (repeatable).
    #[arg(long, value_name = "TEXT", conflicts_with = "logs")]
    pub line: Vec<String>,

    /// Filter by name (CONFIG/filters/NAME.yaml), path to a filter file, or a
    /// fail2ban filter: `/etc/fail2ban/filter.d/sshd.conf[mode=aggressive]`,
    /// `fail2ban:sshd`.
    #[arg(long, short = 'f', value_name = "NAME|PATH")]
    pub filter: Option<String>,

    /// A failregex given on the command line (repeatable; tags such as <HOST> work).
    #[arg(long, short = 'r', value_name = "RE")]
    pub regex: Vec<String>,

    /// An ignoreregex to go with --regex (repeatable).
    #[arg(long, value_name = "RE", requires = "regex")]
    pub ignoreregex: Vec<String>,

    /// A prefregex to go with --regex.
    #[arg(long, value_name = "RE", requires = "regex")]
    pub prefregex: Option<String>,

    /// A datepattern to go with --regex (default: the built-in date formats).
    #[arg(long, value_name = "PATTERN", requires = "regex")]
    pub datepattern: Option<String>,

    /// Simulate the jail NAME of the config: its filter, and the bans it would
    /// make (maxretry, findtime, bantime, ignoreip), with the clock driven by
    /// the lines' timestamps.
    #[arg(long, short = 'j', value_name = "NAME")]
    pub jail: Option<String>,

    #[command(flatten)]
    pub config: crate::cli::ConfigArg,

    /// Print the lines of this kind, captured host and user highlighted (repeatable).
    #[arg(long, value_enum, value_name = "KIND")]
    pub show: Vec<ShowKind>,

    /// At most N lines of each kind for --show.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,

    /// How many top addresses and users to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Print one JSON document (schema: docs/dry-run.md) instead of the report.
    #[arg(long)]
    pub json: bool,

    /// Colour the report.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,

    /// Reference time for dates without a year (syslog), as RFC 3339 or Unix
    /// seconds [default: now]. Fix it for reproducible output.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,

    /// Matching threads [default: the number of CPUs, at most 8].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Do not skip lines with the literal prefilter (for comparison; slower).
    #[arg(long, hide = true)]
    pub no_prefilter: bool,

    /// With a filter that has a datepattern, look for the date on every line
    /// (by default only on the lines that may match: the datepattern regex is
    /// the costliest part of the scan, and the other lines cannot change any
    /// result but the count of lines without a date).
    #[arg(long)]
    pub all_dates: bool,

    /// Run the date detector on every line (for comparison; slower).
    #[arg(long, hide = true)]
    pub no_date_cache: bool,

    /// Read the systemd journal instead of LOG files: journalctl matches
    /// (`_SYSTEMD_UNIT=ssh.service`, `+` between alternatives). With --jail
    /// and no LOG, a journal jail's own matches are used.
    #[arg(long, value_name = "MATCH", num_args = 1.., conflicts_with_all = ["logs", "line"])]
    pub journal: Vec<String>,

    /// With --journal: entries since TIME (RFC 3339 or Unix seconds)
    /// [default: the jail's findtime before now, else one day].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// With --journal: read these journal files instead of the system journal.
    #[arg(long, value_name = "PATH")]
    pub journal_file: Vec<PathBuf>,

    /// Chunk size in KiB (benchmarking).
    #[arg(long, hide = true, value_name = "KIB")]
    pub chunk_kib: Option<usize>,
}
