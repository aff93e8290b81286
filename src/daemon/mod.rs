//! The daemon: wires sources → engine → store and firewall worker, and handles
//! signals, systemd notification, the control socket and reloads.
//!
//! Owns process lifetime and the one task that owns the engine and every piece
//! of mutable state. It matches nothing itself (the engine does) and never
//! talks to nft directly (the firewall worker does).

mod answer;
mod bulk;
mod fleet;
mod outbound;
mod positions;
mod reload;
mod removed;
mod running;
mod state;
mod upkeep;
mod walking;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::{self, Config};
use crate::control::{self, ControlListener, ControlRequest};
use crate::events::{
    BanOrigin, Banned, InternalEvent, LogRotated, SourceError, StoreError, StoreOp,
};
use crate::firewall::nft::NftFirewall;
use crate::firewall::worker::WorkerEvent;
use crate::firewall::worker::{spawn_worker, WorkerHandle, WorkerOptions};
use crate::firewall::{BanEntry, FirewallOp, JailRules};
use crate::jail::engine::JailStats;
use crate::jail::walker::Walked;
use crate::jail::BanDecision;
use crate::metrics::Metrics;
use crate::source::{FilePos, SourceEvent};
use crate::store::{BanRecord, Store};
use crate::UnixTime;
use running::{Resume, Running};
use walking::WalkerThread;

/// Capacity of the channel from sources to the engine: a flooding log blocks
/// its tailer instead of growing memory. A file event holds up to 256 KiB of
/// lines, so at most about 4 MiB wait here. Four (with four walked events)
/// took a sixth fewer page faults and 4.5 MiB less memory under a
/// 200,000-line flood, but the flood was read 3-4 ms later (medians of ten
/// alternated floods, two quiet sets).
const SOURCE_QUEUE: usize = 16;
/// How long ban history is kept for escalation when no jail says otherwise.
const HISTORY_HORIZON: i64 = 30 * 86400;
/// Longest a handled line's position waits to be saved when no ban is
/// recorded with it.
const POSITION_SAVE_DELAY: Duration = Duration::from_millis(20);
/// Store key of the journal reader's cursor.
const JOURNAL_CURSOR: &str = "journal";
/// How long pending action calls may still run at shutdown.
const ACTIONS_GRACE: Duration = Duration::from_secs(3);

/// What the daemon is started with (`cli` builds it from `banwarden run`'s arguments).
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration directory.
    pub config_dir: PathBuf,
    /// The command that runs nft, as argv (`["nft"]`; tests prefix `ip netns exec NS`).
    pub nft_cmd: Vec<String>,
    /// Where log records go (journal, text, JSON).
    pub log_format: crate::logging::LogFormat,
}

/// Entry point of `banwarden run`; returns the exit code.
pub fn main(options: Options) -> i32 {
    let Options {
        config_dir: dir,
        nft_cmd,
        log_format,
    } = options;
    let config = match config::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "banwarden: refusing to start: the configuration in {} has errors",
                dir.display()
            );
            return 1;
        }
    };
    let logs_reach_stderr = crate::logging::init(&config.global.log_level, log_format);
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
    let result = runtime.block_on(run(config, dir, nft_cmd));
    // An action call still hanging in the blocking pool must not hold the
    // exit (they had ACTIONS_GRACE already).
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "banwarden stopped");
            // Said once: stderr only when the record went elsewhere.
            if !logs_reach_stderr {
                eprintln!("banwarden: {e}");
            }
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("firewall setup failed: {0}")]
    Firewall(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("signal handling: {0}")]
    Signal(#[from] std::io::Error),
    #[error("cannot start the thread that matches log lines: {0}")]
    WalkerThread(std::io::Error),
    #[error("the thread that matches log lines stopped; no line would be read any more")]
    WalkerStopped,
}

/// All state of a running daemon, owned by its one main task.
pub(crate) struct Daemon {
    dir: PathBuf,
    started: Instant,
    running: Running,
    worker: WorkerHandle,
    store: Arc<Store>,
    /// Active bans: the daemon's view, mirrored in the store.
    bans: BTreeMap<(String, IpNet), BanRecord>,
    /// Positions of lines the engine has handled, per file identity (device,
    /// inode: a rotated file keeps its own), saved promptly.
    positions: HashMap<(u64, u64), FilePos>,
    positions_dirty: bool,
    /// When counters were last swept and expired bans purged from the store.
    last_sweep: UnixTime,
    /// Cursor of the last journal entry handled, not yet saved.
    journal_cursor: Option<String>,
    tx: mpsc::Sender<SourceEvent>,
    /// Walks what the sources send (`tx`) before the main loop counts it.
    walker: WalkerThread,
    /// Prometheus series, when `metrics_listen` is set.
    metrics: Option<Arc<Metrics>>,
    /// Jail counters at the last metrics update, to push deltas.
    reported: HashMap<String, JailStats>,
    /// Actions and filter health (`outbound`).
    outbound: outbound::Outbound,
    /// The link to the fleet (`fleet:` in banwarden.yaml).
    fleet: Option<crate::fleet::Fleet>,
    /// Which node decided each ban, when in a fleet.
    origins: HashMap<(String, IpNet), String>,
    /// Other fleet nodes' addresses: on every jail's allow-list.
    members: Vec<IpNet>,
    /// The link's counters at the last metrics update.
    fleet_reported: crate::fleet::FleetStatus,
    /// The fleet stream position not yet saved (saved once a second: read
    /// again after a crash, a message is applied again harmlessly).
    fleet_position: Option<String>,
    /// A reload replaced the link: the main loop's new receiver (`None`: no fleet).
    fleet_rx_swap: Option<Option<tokio::sync::mpsc::UnboundedReceiver<crate::fleet::FromFleet>>>,
}

async fn run(config: Config, dir: PathBuf, nft_cmd: Vec<String>) -> Result<(), DaemonError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let now = crate::now();
    let probe = NftFirewall::new(&config.global.table, nft_cmd.clone());
    let opened = state::open(&config, &probe, now)?;
    let store = Arc::new(opened.store);
    let purged = store.purge_expired(now, HISTORY_HORIZON)?;
    let saved = store.active_bans(now)?;
    let listener = ControlListener::bind(&config.global.socket, config.global.control_group)?;

    // Restore every unexpired ban of an enabled jail in the setup transaction.
    let enabled: Vec<&str> = config.enabled_jails().map(|j| j.name.as_str()).collect();
    let restore: Vec<BanEntry> = saved
        .iter()
        .filter(|b| enabled.contains(&b.jail.as_str()))
        .map(|b| BanEntry {
            jail: b.jail.clone(),
            net: b.net,
            expires: b.expires,
        })
        .collect();
    let rules: Vec<JailRules> = config.enabled_jails().map(|j| j.rules.clone()).collect();
    let firewall = NftFirewall::new(&config.global.table, nft_cmd);
    let restored = restore.len();
    let metrics = match config.global.metrics_listen {
        Some(addr) => {
            let m = Metrics::new();
            crate::metrics::serve(addr, Arc::clone(&m)).await?;
            tracing::info!(%addr, "metrics at http://{addr}/metrics");
            Some(m)
        }
        None => None,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel::<WorkerEvent>();
    let opts = WorkerOptions {
        // Always: the worker's failures and rebuilds are logged here, once.
        events: Some(events_tx),
        ..WorkerOptions::default()
    };
    let (worker, setup) = spawn_worker(Box::new(firewall), rules, restore, opts)
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

    let (tx, sources_rx) = mpsc::channel::<SourceEvent>(SOURCE_QUEUE);
    let resume = Resume {
        files: store.positions()?,
        journal_cursor: store.cursor(JOURNAL_CURSOR)?,
    };
    let (fleet, mut fleet_rx) = match fleet::start(&config, &store, &saved) {
        Some((f, rx)) => (Some(f), Some(rx)),
        None => (None, None),
    };
    let running = Running::start(config, None, &tx, &resume);
    let (walker, mut rx) = WalkerThread::spawn(sources_rx, running.engine.walk_routes())
        .map_err(DaemonError::WalkerThread)?;
    let origins = fleet::origins(&saved);
    let mut d = Daemon {
        dir,
        started: Instant::now(),
        running,
        worker,
        store,
        bans: saved
            .into_iter()
            .map(|b| ((b.jail.clone(), b.net), b))
            .collect(),
        positions: HashMap::new(),
        positions_dirty: false,
        last_sweep: now,
        journal_cursor: None,
        tx,
        walker,
        metrics,
        reported: HashMap::new(),
        outbound: outbound::Outbound::default(),
        fleet,
        origins,
        members: Vec::new(),
        fleet_reported: Default::default(),
        fleet_rx_swap: None,
        fleet_position: None,
    };
    d.outbound.actions = crate::actions::Actions::start(&d.running.config);
    d.restore_health();
    d.note_restored_bans();
    d.install_fleet_tap();
    d.adopt_start_positions();
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlRequest>(32);
    let server = tokio::spawn(control::serve(listener, ctl_tx));
    tracing::info!(
        table = %d.running.config.global.table,
        jails = ?d.running.jail_names(),
        restored,
        purged,
        recovered_from_kernel = opened.recovered,
        state_moved_aside = ?opened.moved_aside,
        "banwarden running"
    );
    notify(&[sd_notify::NotifyState::Ready]);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut decisions: Vec<BanDecision> = Vec::new();
    // Positions not saved with a ban are saved this soon after their lines
    // were handled (one commit for a whole burst, not one per read).
    let mut save_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            walked = rx.recv() => {
                // The walker thread ends only with the daemon, or by a bug: a
                // daemon that reads no more lines stops, for its supervisor
                // to restart it, rather than run blind.
                let Some(mut w) = walked else {
                    return Err(DaemonError::WalkerStopped);
                };
                let now = crate::now();
                let was_dirty = d.positions_dirty;
                d.handle(&mut w, now, &mut decisions);
                // Drain what is already queued so a burst becomes one batch.
                while let Ok(mut w) = rx.try_recv() {
                    d.handle(&mut w, now, &mut decisions);
                }
                d.apply(&mut decisions, now)?;
                if d.positions_dirty && !was_dirty {
                    save_at = tokio::time::Instant::now() + POSITION_SAVE_DELAY;
                }
            }
            _ = tokio::time::sleep_until(save_at), if d.positions_dirty => d.save_positions(),
            Some((request, reply)) = ctl_rx.recv() => {
                let response = d.answer(request, &mut rx).await;
                let _ = reply.send(response);
                if let Some(new) = d.fleet_rx_swap.take() {
                    fleet_rx = new;
                }
            }
            _ = tick.tick() => d.tick(crate::now()),
            Some(ev) = events.recv() => d.worker_event(ev),
            Some(m) = fleet::recv(&mut fleet_rx) => d.fleet_in(m, &mut fleet_rx)?,
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                // The outcome is logged and counted by `reload` itself.
                let _ = d.reload(&mut rx).await;
                if let Some(new) = d.fleet_rx_swap.take() {
                    fleet_rx = new;
                }
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping; bans stay in the kernel until they expire");
    server.abort();
    // Dropping the listener removes the socket file.
    let _ = server.await;
    drop(ctl_rx);
    d.running.stop();
    d.finish_sent(&mut rx, &mut decisions).await;
    d.apply(&mut decisions, crate::now())?;
    d.save_positions();
    d.save_health();
    d.save_fleet_position();
    d.worker.shutdown();
    std::mem::take(&mut d.outbound.actions)
        .close(ACTIONS_GRACE)
        .await;
    Ok(())
}

fn notify(states: &[sd_notify::NotifyState]) {
    // Not under systemd (NOTIFY_SOCKET unset) this is a no-op.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Runs blocking store I/O without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Daemon {
    /// Emits an internal event: its one record and its metric.
    fn emit(&self, ev: impl InternalEvent) {
        ev.emit(self.metrics.as_deref());
    }

    fn handle(&mut self, walked: &mut Walked, now: UnixTime, out: &mut Vec<BanDecision>) {
        match &walked.ev {
            ev @ SourceEvent::Error { message, .. } => SourceError {
                kind: self.running.source_kind(ev),
                message,
            }
            .emit(self.metrics.as_deref()),
            SourceEvent::Rotated { path, how, .. } => {
                LogRotated { path, how }.emit(self.metrics.as_deref())
            }
            _ => {}
        }
        self.engine_handle(walked, now, out);
        let ev = &walked.ev;
        if let SourceEvent::Entries {
            cursor: Some(c), ..
        } = ev
        {
            self.journal_cursor = Some(c.clone());
        }
        if let SourceEvent::Lines { pos, .. } = ev {
            if self.running.is_file_source(ev) {
                self.positions.insert((pos.dev, pos.ino), pos.clone());
                self.positions_dirty = true;
            }
        }
    }

    /// Records decisions in the store, then hands them to the firewall.
    fn apply(
        &mut self,
        decisions: &mut Vec<BanDecision>,
        now: UnixTime,
    ) -> Result<(), DaemonError> {
        for b in decisions.iter() {
            Banned {
                jail: &b.jail,
                net: b.net,
                failures: b.failures,
                bantime: b.bantime,
                origin: BanOrigin::Jail,
            }
            .emit(self.metrics.as_deref());
        }
        let banned = fleet::banned_now(decisions, self.fleet.is_some());
        let ops = self.record(decisions, now, Some(crate::fleet::Claim::IfFirst));
        // After the bans' publishes, so the fleet sees a ban before its failures.
        self.send_failures(&banned);
        self.worker
            .send(ops)
            .map_err(|_| DaemonError::Firewall("the firewall worker stopped".into()))
    }

    /// Records decisions in the store and the daemon's view of the bans;
    /// returns the firewall ops that realise them. Bans of shared jails go
    /// to the fleet with `claim` (`None`: not published).
    fn record(
        &mut self,
        decisions: &mut Vec<BanDecision>,
        now: UnixTime,
        claim: Option<crate::fleet::Claim>,
    ) -> Vec<FirewallOp> {
        if decisions.is_empty() {
            return Vec::new();
        }
        self.running.engine.share_history(decisions);
        self.announce_bans(decisions, now);
        let origin = self.fleet.as_ref().map(|f| f.node.clone());
        let records: Vec<BanRecord> = decisions
            .iter()
            .map(|b| BanRecord {
                jail: b.jail.clone(),
                net: b.net,
                banned_at: now,
                expires: b.expires,
                count: b.count,
                origin: origin.clone(),
            })
            .collect();
        // The positions of the lines handled so far go in the same commit.
        let positions = self.dirty_positions();
        let store = Arc::clone(&self.store);
        match blocking(|| store.record(&records, &positions)) {
            Ok(()) => self.positions_dirty = false,
            // Banning matters more than remembering: ban anyway, loudly.
            Err(e) => self.emit(StoreError::new(StoreOp::RecordBans, &e)),
        }
        let ops: Vec<FirewallOp> = decisions
            .drain(..)
            .map(|b| {
                FirewallOp::Ban(BanEntry {
                    jail: b.jail,
                    net: b.net,
                    expires: b.expires,
                })
            })
            .collect();
        if let Some(claim) = claim {
            self.publish_bans(&records, claim);
        }
        for r in records {
            self.bans.insert((r.jail.clone(), r.net), r);
        }
        ops
    }

    /// Tells the jails about bans restored from the store, so they are neither
    /// repeated nor forgotten by escalation.
    fn note_restored_bans(&mut self) {
        for b in self.bans.values() {
            if let Some(rt) = self.running.engine.jail_mut(&b.jail) {
                rt.jail.note_ban(b.net, b.expires);
                for _ in 1..b.count {
                    rt.jail.note_history(b.net, b.banned_at);
                }
                rt.jail.note_history(b.net, b.banned_at);
            }
        }
    }
}
