//! The worker's transactions and repairs: applying a batch with retries,
//! a rebuild and bisection when nft rejects it, and the periodic checks that
//! rebuild the table when it went missing.
//!
//! It must not decide what to ban or reorder ops (the worker plans them
//! before they get here), and it reports failures as `WorkerEvent`s only:
//! the daemon logs them once.

use std::time::Instant;

use super::books::{lock, snapshot};
use super::{Worker, WorkerEvent};
use crate::firewall::{FirewallError, FirewallOp};

impl Worker {
    /// Applies `ops`; the error of the first chunk that failed for good.
    pub(super) fn apply_ops(&mut self, ops: Vec<FirewallOp>) -> Result<(), String> {
        let ops = self.plan(ops, self.now());
        let mut result = Ok(());
        for chunk in ops.chunks(self.opts.max_batch.max(1)) {
            let outcome = self.apply_with_retry(chunk);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Applies one transaction with retries, rebuild and bisection; `Err`
    /// with nft's error when some op could not be applied.
    fn apply_with_retry(&mut self, ops: &[FirewallOp]) -> Result<(), String> {
        let started = Instant::now();
        let mut last_error = None;
        for attempt in 0..self.opts.tries.max(1) {
            if attempt > 0 {
                std::thread::sleep(
                    self.opts
                        .retry_backoff
                        .saturating_mul(1 << (attempt - 1).min(16)),
                );
            }
            match self.fw.apply(ops, self.now()) {
                Ok(()) => {
                    self.emit(WorkerEvent::Applied {
                        ops: ops.len(),
                        took: started.elapsed(),
                    });
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(attempt = attempt + 1, ops = ops.len(), error = %e, "firewall transaction failed");
                    let spawn = matches!(e, FirewallError::Spawn { .. });
                    last_error = Some(e);
                    if spawn {
                        break; // nft cannot even run: retrying will not help
                    }
                    if attempt == 0 {
                        // Perhaps the table or a set was deleted under us.
                        self.check_now(true);
                    }
                }
            }
        }
        let Some(error) = last_error else {
            return Ok(());
        };
        if matches!(error, FirewallError::Nft(_)) && !self.needs_setup {
            // The kernel may hold elements we do not know (an earlier run, a
            // hand-made change) that clash with the batch: setup reconciles
            // against the kernel and loads every current ban, then retry once.
            if self.rebuild(&format!("transaction failed: {error}")) {
                if let Ok(()) = self.fw.apply(ops, self.now()) {
                    self.emit(WorkerEvent::Applied {
                        ops: ops.len(),
                        took: started.elapsed(),
                    });
                    return Ok(());
                }
            }
            if ops.len() > 1 {
                return self.bisect(ops, started);
            }
        }
        let error = error.to_string();
        self.emit(WorkerEvent::Failed {
            what: "transaction",
            ops: ops.len(),
            error: error.clone(),
            again: false,
        });
        Err(error)
    }

    /// Applies halves, quarters, … of a failing batch so that one bad op does
    /// not hold back the rest. Bounded in transactions.
    fn bisect(&mut self, ops: &[FirewallOp], started: Instant) -> Result<(), String> {
        let mut budget = 64usize;
        let mut applied = 0usize;
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut stack: Vec<&[FirewallOp]> = Vec::new();
        let mid = ops.len() / 2;
        stack.push(&ops[mid..]);
        stack.push(&ops[..mid]);
        while let Some(part) = stack.pop() {
            if budget == 0 {
                failures.push((part.len(), "gave up isolating the failing ops".to_string()));
                continue;
            }
            budget -= 1;
            match self.fw.apply(part, self.now()) {
                Ok(()) => applied += part.len(),
                Err(e) if part.len() == 1 => {
                    tracing::debug!(op = ?part[0], error = %e, "firewall op rejected");
                    failures.push((1, e.to_string()));
                }
                Err(_) => {
                    let mid = part.len() / 2;
                    stack.push(&part[mid..]);
                    stack.push(&part[..mid]);
                }
            }
        }
        if applied > 0 {
            self.emit(WorkerEvent::Applied {
                ops: applied,
                took: started.elapsed(),
            });
        }
        let failed: usize = failures.iter().map(|(n, _)| n).sum();
        if let Some((_, first)) = failures.first() {
            let error = format!("{failed} of {} ops failed: {first}", ops.len());
            self.emit(WorkerEvent::Failed {
                what: "batch",
                ops: failed,
                error: error.clone(),
                again: false,
            });
            return Err(error);
        }
        Ok(())
    }

    /// The periodic check: a full one when due, else the cheap one.
    pub(super) fn check(&mut self) {
        let full_every = self.opts.check_interval.max(self.full_check_cost * 100);
        self.check_now(self.last_full_check.elapsed() >= full_every);
    }

    /// Checks the kernel state (all of it when `full`) and rebuilds it if it
    /// is missing or wrong.
    fn check_now(&mut self, full: bool) {
        self.last_check = Instant::now();
        if self.needs_setup {
            self.rebuild("setup had failed");
            return;
        }
        let checked = if full {
            let started = Instant::now();
            let full = self.fw.intact(&self.jails);
            self.last_full_check = Instant::now();
            self.full_check_cost = started.elapsed();
            full
        } else {
            self.fw.present(&self.jails)
        };
        match checked {
            Ok(true) => self.last_check_error = None,
            Ok(false) => {
                self.last_check_error = None;
                self.rebuild("table, sets or rules missing (ruleset flushed or reloaded?)");
            }
            Err(e) => {
                let msg = e.to_string();
                if self.last_check_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(error = %msg, "could not check the firewall table");
                } else {
                    tracing::debug!(error = %msg, "could not check the firewall table");
                }
                self.last_check_error = Some(msg);
            }
        }
    }

    /// Re-runs setup with every current ban. Returns whether it worked.
    fn rebuild(&mut self, reason: &str) -> bool {
        let now = self.now();
        let bans = snapshot(&lock(&self.books), now);
        match self.fw.setup(&self.jails, &bans, now) {
            Ok(()) => {
                self.needs_setup = false;
                self.emit(WorkerEvent::Rebuilt {
                    reason: reason.to_string(),
                    bans: bans.len(),
                });
                true
            }
            Err(e) => {
                let again = self.needs_setup;
                self.needs_setup = true;
                self.emit(WorkerEvent::Failed {
                    what: "rebuild",
                    ops: 0,
                    error: format!("{e} ({reason})"),
                    again,
                });
                false
            }
        }
    }
}
