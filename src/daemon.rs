//! The daemon: wires sources → engine → firewall worker, and handles signals,
//! systemd notification and reloads.
//!
//! Owns process lifetime and the one task that owns the engine. It matches
//! nothing itself and never talks to nft directly (the firewall worker does).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::config::{self, Config};
use crate::filter::Filter;
use crate::firewall::nft::NftFirewall;
use crate::firewall::worker::{spawn_worker, WorkerHandle, WorkerOptions};
use crate::firewall::{BanEntry, FirewallOp, JailRules};
use crate::jail::engine::{Engine, JailRuntime, JailStats};
use crate::jail::{BanDecision, Jail};
use crate::source::file::{FileSource, FileSourceConfig};
use crate::source::{FilePos, SourceEvent};

/// Capacity of the channel from sources to the engine: a flooding log blocks
/// its tailer instead of growing memory.
const SOURCE_QUEUE: usize = 1024;

/// Entry point of `banwarden run`; returns the exit code.
pub fn main(args: RunArgs) -> i32 {
    let config = match config::load(&args.config.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "banwarden: refusing to start: the configuration in {} has errors",
                args.config.config.display()
            );
            return 1;
        }
    };
    init_tracing(&config.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("banwarden: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let nft_cmd: Vec<String> = args.nft.split_whitespace().map(str::to_string).collect();
    match runtime.block_on(run(config, args.config.config.clone(), nft_cmd)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "daemon stopped");
            1
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("banwarden={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("firewall setup failed: {0}")]
    Firewall(String),
    #[error("signal handling: {0}")]
    Signal(#[from] std::io::Error),
}

/// Everything that depends on the configuration; replaced whole on reload.
struct Running {
    config: Config,
    engine: Engine,
    sources: Vec<FileSource>,
}

async fn run(config: Config, dir: PathBuf, nft_cmd: Vec<String>) -> Result<(), DaemonError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let rules: Vec<JailRules> = config.enabled_jails().map(|j| j.rules.clone()).collect();
    let firewall = NftFirewall::new(&config.global.table, nft_cmd);
    let (worker, setup) = spawn_worker(
        Box::new(firewall),
        rules,
        Vec::new(),
        WorkerOptions::default(),
    )
    .map_err(|e| DaemonError::Firewall(e.to_string()))?;
    match setup.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            worker.shutdown();
            return Err(DaemonError::Firewall(e.to_string()));
        }
        Err(_) => {
            return Err(DaemonError::Firewall(
                "the firewall worker stopped during setup".into(),
            ))
        }
    }

    let (tx, mut rx) = mpsc::channel::<SourceEvent>(SOURCE_QUEUE);
    let mut state = start(config, None, &tx, &[]);
    tracing::info!(
        table = %state.config.global.table,
        jails = ?state.config.enabled_jails().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        "banwarden running"
    );
    notify(&[sd_notify::NotifyState::Ready]);

    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    let mut decisions: Vec<BanDecision> = Vec::new();
    loop {
        tokio::select! {
            Some(ev) = rx.recv() => {
                if let SourceEvent::Error { message, .. } = &ev {
                    tracing::warn!(%message, "source error");
                }
                let now = crate::now();
                state.engine.handle(&ev, now, &mut decisions);
                // Drain what is already queued so a burst becomes one batch.
                while let Ok(ev) = rx.try_recv() {
                    state.engine.handle(&ev, now, &mut decisions);
                }
                if !decisions.is_empty() {
                    if worker.send(decisions.drain(..).map(|b| FirewallOp::Ban(ban_entry(&b))).collect()).is_err() {
                        return Err(DaemonError::Firewall("the firewall worker stopped".into()));
                    }
                }
            }
            _ = sweep.tick() => state.engine.sweep(crate::now()),
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                state = reload(state, &dir, &worker, &tx, &mut rx).await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping; bans stay in the kernel until they expire");
    drop(state);
    worker.shutdown();
    Ok(())
}

fn notify(states: &[sd_notify::NotifyState]) {
    // Not under systemd (NOTIFY_SOCKET unset) this is a no-op.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ban_entry(b: &BanDecision) -> BanEntry {
    BanEntry {
        jail: b.jail.clone(),
        net: b.net,
        expires: b.expires,
    }
}

/// Builds the engine and starts the sources for `config`. Jail state of jails
/// that exist in `old` (same name) is carried over; sources resume at `resume`.
fn start(
    config: Config,
    old: Option<Engine>,
    tx: &mpsc::Sender<SourceEvent>,
    resume: &[FilePos],
) -> Running {
    let mut old_jails: BTreeMap<String, JailRuntime> = old
        .map(|e| {
            e.jails
                .into_iter()
                .map(|j| (j.jail.settings.name.clone(), j))
                .collect()
        })
        .unwrap_or_default();
    let mut jails = Vec::new();
    // One source per distinct path pattern, shared by the jails that read it.
    let mut patterns: Vec<PathBuf> = Vec::new();
    let mut routes: Vec<Vec<usize>> = Vec::new();
    for jc in config.enabled_jails() {
        let idx = jails.len();
        let rt = match old_jails.remove(&jc.name) {
            Some(mut rt) => {
                rt.jail.settings = jc.settings.clone();
                rt.filter = jc.filter.clone();
                rt
            }
            None => JailRuntime {
                jail: Jail::new(jc.settings.clone()),
                filter: Arc::<Filter>::clone(&jc.filter),
                stats: JailStats::default(),
            },
        };
        jails.push(rt);
        for p in &jc.logpath {
            let id = patterns.iter().position(|q| q == p).unwrap_or_else(|| {
                patterns.push(p.clone());
                routes.push(Vec::new());
                patterns.len() - 1
            });
            routes[id].push(idx);
        }
    }
    let sources = patterns
        .iter()
        .enumerate()
        .map(|(id, p)| {
            let cfg = FileSourceConfig {
                patterns: vec![p.clone()],
                resume: resume.to_vec(),
                ..Default::default()
            };
            FileSource::spawn(id, cfg, tx.clone())
        })
        .collect();
    Running {
        config,
        engine: Engine::new(jails, routes),
        sources,
    }
}

/// Applies a new configuration, or keeps the old one whole if anything fails.
async fn reload(
    state: Running,
    dir: &std::path::Path,
    worker: &WorkerHandle,
    tx: &mpsc::Sender<SourceEvent>,
    rx: &mut mpsc::Receiver<SourceEvent>,
) -> Running {
    let config = match config::load(dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(errors = %e, "reload rejected: configuration has errors; the old configuration keeps running");
            return state;
        }
    };
    let rules: Vec<JailRules> = config.enabled_jails().map(|j| j.rules.clone()).collect();
    if let Err(e) = worker.reconfigure(rules).await {
        tracing::error!(error = %e, "reload rejected: firewall setup failed; the old configuration keeps running");
        return state;
    }
    // Stop the old sources, then finish what they already sent with the old
    // routes, so no line is lost or counted under the wrong jail.
    let positions: Vec<FilePos> = state.sources.iter().flat_map(|s| s.positions()).collect();
    let Running {
        mut engine,
        sources,
        ..
    } = state;
    drop(sources);
    let mut decisions = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        engine.handle(&ev, crate::now(), &mut decisions);
    }
    let _ = worker.send(
        decisions
            .iter()
            .map(|b| FirewallOp::Ban(ban_entry(b)))
            .collect(),
    );
    let next = start(config, Some(engine), tx, &positions);
    tracing::info!(jails = ?next.config.enabled_jails().map(|j| j.name.as_str()).collect::<Vec<_>>(), "configuration reloaded");
    next
}
