//! The walker: a thread that walks large chunks of a source's lines through
//! their jails' filters (`jail::engine::walk_ahead`) while the daemon's task
//! counts the chunks before them, so that a flood keeps two cores busy
//! instead of one. Events go through it in order: once one is in flight,
//! every later event follows it, and the daemon handles them as they come
//! back (`Engine::handle_walked`), exactly as it would have handled them
//! one after the other. Small events (a few lines: the latency path) are
//! handled by the daemon directly when nothing is in flight.
//!
//! Owns the thread, its queue and its per-stream filter states (a cache for
//! the filters walked ahead, never shared between streams); decides nothing
//! and counts nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc};

use tokio::sync::mpsc;

use super::Daemon;
use crate::actions::EventKind;
use crate::filter::{Filter, LineState};
use crate::jail::engine::{walk_ahead, Walked};
use crate::jail::BanDecision;
use crate::source::{SourceEvent, SourceId};
use crate::UnixTime;

/// Bytes of lines from which an event is worth a trip to the walker.
const AHEAD_MIN: usize = 16 * 1024;
/// Most events in flight: bounds the memory the walker holds (a file event
/// is at most 256 KiB of lines); the source channel fills behind it.
pub(super) const AHEAD_MAX: usize = 8;
/// Per-stream states kept by the walker before it starts afresh.
const STATES_MAX: usize = 256;

/// An event back from the walker, with the chunks it walked for it.
pub(super) struct Done {
    event: SourceEvent,
    walked: Vec<Walked>,
}

struct Job {
    event: SourceEvent,
    plan: Vec<(usize, Arc<Filter>)>,
    now: UnixTime,
}

/// The walker thread's handle; the thread ends when it is dropped.
pub(super) struct Walker {
    jobs: std_mpsc::Sender<Job>,
    done: mpsc::UnboundedReceiver<Done>,
    in_flight: usize,
}

impl Walker {
    /// Starts the thread; `None` (everything handled on the daemon's task)
    /// if it cannot be started.
    pub(super) fn spawn() -> Option<Walker> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let (tx, done) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("banwarden-walk".into())
            .spawn(move || run(rx, tx));
        match spawned {
            Ok(_) => Some(Walker {
                jobs,
                done,
                in_flight: 0,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the walker thread: walking on the main task");
                None
            }
        }
    }
}

fn run(jobs: std_mpsc::Receiver<Job>, done: mpsc::UnboundedSender<Done>) {
    type Key = (SourceId, Arc<PathBuf>, usize);
    let mut states: HashMap<Key, (Arc<Filter>, LineState)> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let mut walked = Vec::new();
        if let SourceEvent::Lines {
            source, path, data, ..
        } = &job.event
        {
            if states.len() >= STATES_MAX {
                states.clear();
            }
            for (j, filter) in job.plan {
                let (f, state) = states
                    .entry((*source, path.clone(), j))
                    .or_insert_with(|| (filter.clone(), filter.new_state()));
                if !Arc::ptr_eq(f, &filter) {
                    (*f, *state) = (filter.clone(), filter.new_state());
                }
                let chunk = walk_ahead(&filter, data, job.now, state);
                walked.push((j, filter, chunk));
            }
        }
        let event = job.event;
        if done.send(Done { event, walked }).is_err() {
            return;
        }
    }
}

/// The next event back from the walker (pending forever without one).
pub(super) async fn next(walker: &mut Option<Walker>) -> Option<Done> {
    match walker {
        Some(w) if w.in_flight > 0 => {
            let done = w.done.recv().await;
            w.in_flight -= 1;
            done
        }
        _ => std::future::pending().await,
    }
}

impl Daemon {
    /// Whether the daemon takes another source event now (the walker has room).
    pub(super) fn takes_events(&self) -> bool {
        self.walker.as_ref().is_none_or(|w| w.in_flight < AHEAD_MAX)
    }

    /// Takes one source event: to the walker if it is large or others are
    /// in flight before it, else handled now.
    pub(super) fn take(&mut self, ev: SourceEvent, now: UnixTime, out: &mut Vec<BanDecision>) {
        let in_flight = self.walker.as_ref().map_or(0, |w| w.in_flight);
        let large = matches!(&ev, SourceEvent::Lines { data, .. } if data.len() >= AHEAD_MIN);
        if self.walker.is_none() || (in_flight == 0 && !large) {
            return self.handle(&ev, now, out);
        }
        // Jails whose actions want the lines behind a ban keep them as the
        // engine walks (`engine_handle`): not walked ahead.
        let plan = match &ev {
            SourceEvent::Lines { source, .. } if !self.outbound.actions.any(EventKind::Ban) => {
                self.running.engine.plan_ahead(*source)
            }
            _ => Vec::new(),
        };
        if in_flight == 0 && plan.is_empty() {
            return self.handle(&ev, now, out);
        }
        let Some(w) = self.walker.as_mut() else {
            return self.handle(&ev, now, out);
        };
        match w.jobs.send(Job {
            event: ev,
            plan,
            now,
        }) {
            Ok(()) => w.in_flight += 1,
            Err(std_mpsc::SendError(job)) => {
                // The thread is gone (it only ends when we drop it): what
                // was in flight is lost with it; handle the rest here.
                tracing::error!("the walker thread stopped: walking on the main task");
                self.walker = None;
                self.handle(&job.event, now, out);
            }
        }
    }

    /// Handles an event back from the walker, in its place.
    pub(super) fn handle_done(&mut self, done: Done, now: UnixTime, out: &mut Vec<BanDecision>) {
        if done.walked.is_empty() {
            return self.handle(&done.event, now, out);
        }
        self.running
            .engine
            .handle_walked(&done.event, done.walked, now, out);
        self.note_handled(&done.event);
    }

    /// Handles whatever came back from the walker without waiting.
    pub(super) fn handle_ready(&mut self, now: UnixTime, out: &mut Vec<BanDecision>) {
        while let Some(done) = self.walker.as_mut().and_then(|w| match w.done.try_recv() {
            Ok(d) => {
                w.in_flight -= 1;
                Some(d)
            }
            Err(_) => None,
        }) {
            self.handle_done(done, now, out);
        }
    }

    /// Waits for and handles every event in flight (before a reload or
    /// shutdown handles what the sources still queued).
    pub(super) async fn finish_walks(&mut self, out: &mut Vec<BanDecision>) {
        while self.walker.as_ref().is_some_and(|w| w.in_flight > 0) {
            match next(&mut self.walker).await {
                Some(done) => self.handle_done(done, crate::now(), out),
                None => self.walker = None,
            }
        }
    }
}
