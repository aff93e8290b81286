//! The helper thread of one filter compile: parts of the filter that do not
//! depend on each other (automata, the failregex screen, the date reader)
//! built while the compiling thread assembles the rest.
//!
//! A job not yet started when its result is waited for runs on the waiting
//! thread instead (so neither thread idles while the other has work, and
//! without a thread everything still runs, in turn). Every job is waited
//! for, or dropped unstarted, before the compile returns: nothing outlives
//! it. Owns the scheduling only; it knows nothing of patterns.

use std::sync::{mpsc, Arc, Mutex, PoisonError};

type Task = Box<dyn FnOnce() + Send>;
type Work<T> = Box<dyn FnOnce() -> T + Send>;

/// The helper thread (started with the first job; it ends when `Jobs` is
/// dropped and the jobs it was given are done or taken).
#[derive(Default)]
pub(super) struct Jobs {
    tasks: Option<mpsc::Sender<Task>>,
}

/// A job's result, to be waited for.
pub(super) struct Pending<T> {
    /// The job while no thread has taken it.
    work: Arc<Mutex<Option<Work<T>>>>,
    done: mpsc::Receiver<T>,
}

impl Jobs {
    /// `work` queued for the helper thread.
    pub(super) fn spawn<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pending<T> {
        if self.tasks.is_none() {
            let (tx, rx) = mpsc::channel::<Task>();
            let started = std::thread::Builder::new()
                .name("banwarden-regex".into())
                .spawn(move || rx.into_iter().for_each(|task| task()));
            if started.is_ok() {
                self.tasks = Some(tx);
            }
        }
        let work: Arc<Mutex<Option<Work<T>>>> = Arc::new(Mutex::new(Some(Box::new(work))));
        let (tx, done) = mpsc::sync_channel(1);
        let slot = work.clone();
        let task: Task = Box::new(move || {
            if let Some(work) = take(&slot) {
                let _ = tx.send(work());
            }
        });
        // Without a thread (or with one gone) the job stays in its slot and
        // runs when it is waited for.
        if let Some(tasks) = &self.tasks {
            let _ = tasks.send(task);
        }
        Pending { work, done }
    }
}

impl<T> Pending<T> {
    /// The job's result (run here if the helper has not started it);
    /// `None` if the helper stopped while running it.
    pub(super) fn wait(self) -> Option<T> {
        match take(&self.work) {
            Some(work) => Some(work()),
            None => self.done.recv().ok(),
        }
    }
}

fn take<T>(slot: &Mutex<Option<Work<T>>>) -> Option<Work<T>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back to whoever waits, in any order, whether the helper
    /// or the waiting thread ran the job.
    #[test]
    fn every_job_gives_its_own_result() {
        let mut jobs = Jobs::default();
        let pending: Vec<_> = (0..50u64)
            .map(|i| jobs.spawn(move || (0..=i * 1000).sum::<u64>()))
            .collect();
        for (i, p) in pending.into_iter().enumerate().rev() {
            let i = i as u64 * 1000;
            assert_eq!(p.wait(), Some(i * (i + 1) / 2));
        }
    }

    /// A job whose thread panicked while running it reports `None`, and the
    /// jobs queued after it still run (on the waiting thread).
    #[test]
    fn a_job_that_panics_is_none_and_later_jobs_still_run() {
        let mut jobs = Jobs::default();
        let bad = jobs.spawn(|| -> u32 { panic!("job failed") });
        let good = jobs.spawn(|| 7u32);
        // Until the helper has taken it (else this thread would run it).
        let start = std::time::Instant::now();
        while bad.work.lock().is_ok_and(|w| w.is_some()) {
            assert!(start.elapsed().as_secs() < 60, "the helper never started");
            std::thread::yield_now();
        }
        assert_eq!(bad.wait(), None);
        assert_eq!(good.wait(), Some(7));
    }
}
