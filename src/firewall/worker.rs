//! Batching worker between the engine and a firewall backend.
//!
//! Owns a dedicated std thread that holds the [`Firewall`] (whose calls block),
//! the list of jails, and its own book of active bans (jail, net) → expiry, so it
//! can rebuild the kernel state when someone deletes the table. It retries
//! failed transactions, polls `intact` and repairs.
//!
//! Batching is natural: an op arriving while the worker is idle is applied at
//! once, together with whatever is already queued (no waiting); ops arriving
//! while a transaction runs queue up and all go into the next one. So a lone
//! ban pays only for the nft run, and a burst still costs few transactions.
//! A non-zero [`WorkerOptions::batch_window`] restores waiting for more.
//!
//! It must not decide whether to ban (the engine does), must not run one
//! transaction per ban, and must never remove bans on shutdown: the table and its
//! elements stay in the kernel, with their timeouts, when the daemon stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use self::books::{lock, snapshot, Books, JailBook};
use super::nft::Change;
use super::{BanEntry, Firewall, FirewallError, FirewallOp, JailRules, SetKind};
use crate::UnixTime;

mod books;
mod transact;

/// Tuning of the worker. `Default` gives the daemon's values.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// After the first message, how long to keep collecting before applying.
    /// Zero (the default): apply at once what is queued; what arrives during
    /// a transaction goes into the next one.
    pub batch_window: Duration,
    /// Apply at once when this many ops are pending.
    pub max_batch: usize,
    /// How often, while idle, to check that the table is intact.
    pub check_interval: Duration,
    /// Tries per transaction before it is reported as failed.
    pub tries: u32,
    /// Sleep before the second try; doubled for each further try.
    pub retry_backoff: Duration,
    /// Where per-batch results go (metrics, daemon), if anywhere.
    pub events: Option<UnboundedSender<WorkerEvent>>,
    /// The clock (tests may substitute one).
    pub clock: fn() -> UnixTime,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch_window: Duration::ZERO,
            // `ban --from` with 100,000 entries is one transaction.
            max_batch: 100_000,
            check_interval: Duration::from_secs(2),
            tries: 3,
            retry_backoff: Duration::from_millis(25),
            events: None,
            clock: crate::now,
        }
    }
}

/// What the worker is told.
#[derive(Debug)]
pub enum WorkerMsg {
    Ops(Vec<FirewallOp>),
    /// Ops whose sender waits for them: `done` is told once the transaction
    /// that carries them has applied (or failed for good, with nft's error).
    Awaited {
        ops: Vec<FirewallOp>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Replace the jails and re-run `setup` with the current bans.
    Reconfigure {
        jails: Vec<JailRules>,
        reply: oneshot::Sender<Result<(), FirewallError>>,
    },
    /// Apply what is pending, then stop. The kernel state is left as it is.
    Shutdown,
}

/// What the worker reports, one event per transaction outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// A batch went in: `ops` element changes in `took` (all tries included).
    Applied { ops: usize, took: Duration },
    /// A change could not be applied: `what` it was (`transaction`: a batch
    /// after every retry; `batch`: part of one, its other ops went in;
    /// `rebuild`: re-running setup), how many `ops` failed, nft's error
    /// text. `again`: the same rebuild failing again (worth less noise).
    Failed {
        what: &'static str,
        ops: usize,
        error: String,
        again: bool,
    },
    /// `setup` was re-run with every current ban (`bans`) because the
    /// kernel state was missing or wrong.
    Rebuilt { reason: String, bans: usize },
}

/// The worker has stopped; nothing more can be sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the firewall worker has stopped")]
pub struct WorkerStopped;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Stopped(#[from] WorkerStopped),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// The transaction carrying awaited ops failed after every retry.
    #[error("nft did not apply the change: {0}")]
    Rejected(String),
}

/// The result of the initial `setup`, delivered once the worker has run it.
pub type SetupResult = oneshot::Receiver<Result<(), FirewallError>>;

/// The daemon's side of the worker.
#[derive(Debug)]
pub struct WorkerHandle {
    tx: UnboundedSender<WorkerMsg>,
    books: Arc<Mutex<Books>>,
    clock: fn() -> UnixTime,
    thread: Option<JoinHandle<()>>,
}

/// Starts the worker thread. It first runs `setup(jails, initial_bans)`; the
/// returned [`SetupResult`] says how that went (the worker keeps running and
/// retries the setup at each check if it failed). Fails only if the thread or its
/// timer runtime cannot be created.
pub fn spawn_worker(
    fw: Box<dyn Firewall>,
    jails: Vec<JailRules>,
    initial_bans: Vec<BanEntry>,
    opts: WorkerOptions,
) -> std::io::Result<(WorkerHandle, SetupResult)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (tx, rx) = unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let books = Arc::new(Mutex::new(Books::new()));
    let clock = opts.clock;
    let mut worker = Worker {
        fw,
        jails,
        books: Arc::clone(&books),
        opts,
        needs_setup: false,
        last_check: Instant::now(),
        last_full_check: Instant::now(),
        full_check_cost: Duration::ZERO,
        last_check_error: None,
        last_prune: UnixTime::MIN,
    };
    // Load the initial bans through the books so they are normalised.
    let now = clock();
    worker.plan(initial_bans.into_iter().map(FirewallOp::Ban).collect(), now);
    let thread = std::thread::Builder::new()
        .name("banwarden-firewall".to_string())
        .spawn(move || worker.run(rt, rx, ready_tx))?;
    Ok((
        WorkerHandle {
            tx,
            books,
            clock,
            thread: Some(thread),
        },
        ready_rx,
    ))
}

impl WorkerHandle {
    /// Queues ops; they go into the next transaction (at once when the worker
    /// is idle).
    pub fn send(&self, ops: Vec<FirewallOp>) -> Result<(), WorkerStopped> {
        if ops.is_empty() {
            return Ok(());
        }
        self.tx.send(WorkerMsg::Ops(ops)).map_err(|_| WorkerStopped)
    }

    /// Queues ops like [`send`](Self::send) and returns once the transaction
    /// that carries them has applied in the kernel, or with its error. Ops
    /// that change nothing in the kernel (already covered) return at once.
    pub async fn apply(&self, ops: Vec<FirewallOp>) -> Result<(), WorkerError> {
        if ops.is_empty() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(WorkerMsg::Awaited { ops, done })
            .map_err(|_| WorkerStopped)?;
        rx.await
            .map_err(|_| WorkerStopped)?
            .map_err(WorkerError::Rejected)
    }

    /// A sender for other tasks (same channel as [`send`](Self::send)).
    pub fn sender(&self) -> UnboundedSender<WorkerMsg> {
        self.tx.clone()
    }

    /// Replaces the jails and re-runs `setup` with the current bans; bans of
    /// jails no longer listed are dropped (their sets are deleted).
    pub async fn reconfigure(&self, jails: Vec<JailRules>) -> Result<(), WorkerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WorkerMsg::Reconfigure { jails, reply })
            .map_err(|_| WorkerStopped)?;
        rx.await.map_err(|_| WorkerStopped)??;
        Ok(())
    }

    /// The bans the worker believes active (unexpired), sorted by jail and net.
    pub fn active_bans(&self) -> Vec<BanEntry> {
        snapshot(&lock(&self.books), (self.clock)())
    }

    /// Applies what is queued, stops the worker and waits for its thread. The
    /// table and its bans stay in the kernel.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.tx.send(WorkerMsg::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the firewall worker thread panicked");
            }
        }
    }
}

impl Drop for WorkerHandle {
    /// Asks the worker to stop without waiting for it.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.send(WorkerMsg::Shutdown);
        }
    }
}

struct Worker {
    fw: Box<dyn Firewall>,
    jails: Vec<JailRules>,
    books: Arc<Mutex<Books>>,
    opts: WorkerOptions,
    /// The last setup failed: the next check runs it again.
    needs_setup: bool,
    last_check: Instant,
    /// When the last full check ([`Firewall::intact`]) ran and how long it
    /// took: full checks are spaced so they take at most 1% of the time
    /// (listing 100,000 elements costs nft about a second); the checks in
    /// between only ask [`Firewall::present`].
    last_full_check: Instant,
    full_check_cost: Duration,
    /// To log a recurring check failure once rather than every interval.
    last_check_error: Option<String>,
    /// When the books were last pruned of expired bans (at most once a second).
    last_prune: UnixTime,
}

impl Worker {
    fn now(&self) -> UnixTime {
        (self.opts.clock)()
    }

    fn emit(&self, event: WorkerEvent) {
        if let Some(events) = &self.opts.events {
            let _ = events.send(event);
        }
    }

    fn run(
        mut self,
        rt: tokio::runtime::Runtime,
        mut rx: UnboundedReceiver<WorkerMsg>,
        ready: oneshot::Sender<Result<(), FirewallError>>,
    ) {
        let now = self.now();
        let bans = snapshot(&lock(&self.books), now);
        let result = self.fw.setup(&self.jails, &bans, now);
        match &result {
            Ok(()) => tracing::info!(
                jails = self.jails.len(),
                bans = bans.len(),
                "firewall set up"
            ),
            Err(e) => {
                tracing::error!(error = %e, "firewall setup failed; will retry");
                self.needs_setup = true;
            }
        }
        self.last_check = Instant::now();
        let _ = ready.send(result);
        // Timers are created outside `block_on`: they need the runtime's context.
        let _context = rt.enter();

        let mut pending: Option<WorkerMsg> = None;
        loop {
            let msg = match pending.take() {
                Some(msg) => msg,
                None => {
                    let wait = self
                        .opts
                        .check_interval
                        .saturating_sub(self.last_check.elapsed());
                    match rt.block_on(tokio::time::timeout(wait, rx.recv())) {
                        Err(_idle) => {
                            self.check();
                            continue;
                        }
                        Ok(None) => break, // every sender is gone
                        Ok(Some(msg)) => msg,
                    }
                }
            };
            match msg {
                WorkerMsg::Ops(first) => {
                    self.batch_and_apply(&rt, &mut rx, first, None, &mut pending)
                }
                WorkerMsg::Awaited { ops, done } => {
                    self.batch_and_apply(&rt, &mut rx, ops, Some(done), &mut pending)
                }
                WorkerMsg::Reconfigure { jails, reply } => {
                    let result = self.reconfigure(jails);
                    let _ = reply.send(result);
                }
                WorkerMsg::Shutdown => break,
            }
        }
        tracing::debug!("firewall worker stopped; bans stay in the kernel");
    }

    /// Takes what is queued behind `first` (ops that came while the previous
    /// transaction ran; waiting for more only with a batch window), applies it
    /// all, and tells every waiter among them how it went.
    fn batch_and_apply(
        &mut self,
        rt: &tokio::runtime::Runtime,
        rx: &mut UnboundedReceiver<WorkerMsg>,
        first: Vec<FirewallOp>,
        waiter: Option<oneshot::Sender<Result<(), String>>>,
        pending: &mut Option<WorkerMsg>,
    ) {
        let mut batch = first;
        let mut waiters: Vec<_> = waiter.into_iter().collect();
        let deadline = (!self.opts.batch_window.is_zero())
            .then(|| tokio::time::Instant::now() + self.opts.batch_window);
        while batch.len() < self.opts.max_batch {
            let next = match (rx.try_recv(), deadline) {
                (Ok(msg), _) => Some(msg),
                (Err(TryRecvError::Disconnected), _) => None,
                (Err(TryRecvError::Empty), None) => None,
                (Err(TryRecvError::Empty), Some(deadline)) => rt
                    .block_on(tokio::time::timeout_at(deadline, rx.recv()))
                    .ok()
                    .flatten(),
            };
            match next {
                Some(WorkerMsg::Ops(more)) => batch.extend(more),
                Some(WorkerMsg::Awaited { ops, done }) => {
                    batch.extend(ops);
                    waiters.push(done);
                }
                Some(other) => {
                    *pending = Some(other);
                    break;
                }
                None => break,
            }
        }
        let result = self.apply_ops(batch);
        for done in waiters {
            let _ = done.send(result.clone());
        }
        if self.last_check.elapsed() >= self.opts.check_interval {
            self.check();
        }
    }

    /// Updates the books with `ops` and returns the element ops that realise
    /// them (other-length bans kept free of overlaps; unknown jails skipped).
    fn plan(&mut self, ops: Vec<FirewallOp>, now: UnixTime) -> Vec<FirewallOp> {
        let jails: HashMap<&str, &JailRules> =
            self.jails.iter().map(|j| (j.name.as_str(), j)).collect();
        let mut books = lock(&self.books);
        if now != self.last_prune {
            self.last_prune = now;
            for book in books.values_mut() {
                book.prune(now);
            }
        }
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let (jail, changes) = match op {
                FirewallOp::Ban(ban) => {
                    let Some(rules) = jails.get(ban.jail.as_str()) else {
                        tracing::warn!(jail = %ban.jail, net = %ban.net, "ban for an unknown jail ignored");
                        continue;
                    };
                    if ban.expires.is_some_and(|e| e <= now) {
                        continue;
                    }
                    let kind = rules.kind_of(&ban.net);
                    let changes =
                        books
                            .entry(ban.jail.clone())
                            .or_default()
                            .ban(kind, ban.net, ban.expires);
                    if changes.is_empty() {
                        tracing::debug!(jail = %ban.jail, net = %ban.net, "already blocked by a wider ban");
                    }
                    (ban.jail, changes)
                }
                FirewallOp::Unban { jail, net } => {
                    let Some(rules) = jails.get(jail.as_str()) else {
                        tracing::debug!(%jail, %net, "unban for an unknown jail ignored");
                        continue;
                    };
                    let kind = rules.kind_of(&net);
                    let book = books.entry(jail.clone()).or_default();
                    if let (SetKind::Net, Some((wider, _))) = (kind, book.nets.covering(&net)) {
                        tracing::info!(%jail, %net, %wider, "unban of a net inside a wider ban: stays blocked until that one ends");
                    }
                    let changes = book.unban(kind, net);
                    (jail, changes)
                }
            };
            out.extend(changes.into_iter().map(|c| match c {
                Change::Add(net, expires) => FirewallOp::Ban(BanEntry {
                    jail: jail.clone(),
                    net,
                    expires,
                }),
                Change::Remove(net) => FirewallOp::Unban {
                    jail: jail.clone(),
                    net,
                },
            }));
        }
        books.retain(|_, b| !b.is_empty());
        out
    }

    fn reconfigure(&mut self, jails: Vec<JailRules>) -> Result<(), FirewallError> {
        let now = self.now();
        let old: HashMap<String, (u8, u8)> = self
            .jails
            .iter()
            .map(|j| (j.name.clone(), (j.ipv4_prefix, j.ipv6_prefix)))
            .collect();
        self.jails = jails;
        {
            let mut books = lock(&self.books);
            let current: HashMap<&str, &JailRules> =
                self.jails.iter().map(|j| (j.name.as_str(), j)).collect();
            books.retain(|jail, _| current.contains_key(jail.as_str()));
            // A jail whose prefix changed has its bans sorted anew: those of
            // the new length become exact, the rest go to the interval sets.
            for (jail, book) in books.iter_mut() {
                let Some(rules) = current.get(jail.as_str()) else {
                    continue;
                };
                if old.get(jail) != Some(&(rules.ipv4_prefix, rules.ipv6_prefix)) {
                    let mut fresh = JailBook::default();
                    for (net, expires) in book.iter() {
                        fresh.ban(rules.kind_of(net), *net, *expires);
                    }
                    *book = fresh;
                }
            }
        }
        let bans = snapshot(&lock(&self.books), now);
        let result = self.fw.setup(&self.jails, &bans, now);
        match &result {
            Ok(()) => {
                self.needs_setup = false;
                tracing::info!(
                    jails = self.jails.len(),
                    bans = bans.len(),
                    "firewall reconfigured"
                );
            }
            Err(e) => {
                self.needs_setup = true;
                tracing::error!(error = %e, "firewall reconfiguration failed; will retry");
            }
        }
        self.last_check = Instant::now();
        result
    }
}

/// The nets a snapshot holds for `jail` (helper for tests and status output).
pub fn nets_of(bans: &[BanEntry], jail: &str) -> Vec<IpNet> {
    bans.iter()
        .filter(|b| b.jail == jail)
        .map(|b| b.net)
        .collect()
}

#[cfg(test)]
mod tests;
