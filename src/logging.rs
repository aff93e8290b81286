//! Where the daemon's log records go: natively to the systemd journal when
//! systemd started it (`JOURNAL_STREAM` names our stderr), with priorities
//! and structured fields (`JAIL=`, `ADDR=`, `PATH=`...) so that `journalctl
//! -u banwarden -p warning` and `journalctl JAIL=sshd` work; plain text on a
//! terminal; one JSON object a line with `--log-format json`.
//!
//! Owns choosing and installing the `tracing` subscriber; what is logged is
//! decided where it happens (see `events` for the daemon's internal events).

use std::os::fd::AsFd;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal when started by systemd, else text.
    #[default]
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object a line on stderr.
    Json,
    /// Native journal protocol (`/run/systemd/journal/socket`).
    Journald,
}

/// Whether stderr is the stream systemd connected to the journal
/// (`JOURNAL_STREAM=DEVICE:INODE` of it, as systemd.exec(5) says to check).
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// Installs the subscriber for `level` (`RUST_LOG` overrides) in `format`.
/// Falls back to text, saying so on stderr, when the journal is asked for
/// but cannot be reached. Returns whether the records reach whoever reads
/// stderr (they are written there, or to the journal that stderr feeds
/// under systemd): then a last word on stderr would say everything twice.
pub fn init(level: &str, format: LogFormat) -> bool {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("banwarden={level},warn")));
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let on_stderr = format != LogFormat::Journald || stderr_is_journal();
    match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let _ = registry
                    .with(
                        layer
                            .with_field_prefix(None)
                            .with_priority_mappings(priorities())
                            .with_syslog_identifier("banwarden".into()),
                    )
                    .try_init();
                on_stderr
            }
            Err(e) => {
                eprintln!("banwarden: cannot reach the journal ({e}); logging to stderr");
                let _ = registry.with(text_layer()).try_init();
                true
            }
        },
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_writer(std::io::stderr),
                )
                .try_init();
            true
        }
        LogFormat::Text | LogFormat::Auto => {
            let _ = registry.with(text_layer()).try_init();
            true
        }
    }
}

/// Syslog's meaning of the levels: info is 6, debug and trace are 7
/// (tracing-journald's default puts info at 5, notice).
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    let mut p = tracing_journald::PriorityMappings::new();
    p.info = Priority::Informational;
    p.debug = Priority::Debug;
    p.trace = Priority::Debug;
    p
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, not in a file or a pipe.
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}
