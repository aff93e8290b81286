//! The helper thread of one filter compile: parts of the filter that do not
//! depend on each other (the patterns, automata, the split failregexes,
//! the date reader) built on it or on the compiling thread, whichever is
//! free.
//!
//! A job not yet started when its result is waited for runs on the waiting
//! thread instead, and while the helper runs it the waiting thread takes
//! the jobs queued after it (so neither thread idles while there is work,
//! and without a thread everything still runs, in turn). A job dropped
//! unwaited (the compile stopped at an error) is not started; one the
//! helper is running then finishes there, its result dropped, and the
//! helper ends. Owns the scheduling only; it knows nothing of patterns.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};

type Task = Box<dyn FnOnce() + Send>;
type Work<T> = Box<dyn FnOnce() -> T + Send>;

/// The helper thread (started with the first job; it ends when `Jobs` is
/// dropped and the queue is empty).
#[derive(Default)]
pub(super) struct Jobs {
    queue: Arc<Queue>,
    started: bool,
}

/// Jobs not yet taken, in the order given, for either thread.
#[derive(Default)]
struct Queue {
    tasks: Mutex<(VecDeque<Task>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, task: Task) {
        lock(&self.tasks).0.push_back(task);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Task> {
        lock(&self.tasks).0.pop_front()
    }

    fn close(&self) {
        lock(&self.tasks).1 = true;
        self.ready.notify_all();
    }

    /// The helper's loop: every task, until closed and empty.
    fn serve(&self) {
        loop {
            let task = {
                let mut tasks = lock(&self.tasks);
                loop {
                    match tasks.0.pop_front() {
                        Some(task) => break task,
                        None if tasks.1 => return,
                        None => {
                            tasks = self
                                .ready
                                .wait(tasks)
                                .unwrap_or_else(PoisonError::into_inner)
                        }
                    }
                }
            };
            task();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A job's result, to be waited for.
pub(super) struct Pending<T> {
    /// The job while no thread has taken it.
    work: Arc<Mutex<Option<Work<T>>>>,
    done: mpsc::Receiver<T>,
    queue: Arc<Queue>,
}

impl Jobs {
    /// `work` queued for the helper thread.
    pub(super) fn spawn<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Pending<T> {
        if !self.started {
            self.started = true;
            let queue = self.queue.clone();
            // Without a thread the jobs run where they are waited for.
            let _ = std::thread::Builder::new()
                .name("banwarden-regex".into())
                .spawn(move || queue.serve());
        }
        let work: Arc<Mutex<Option<Work<T>>>> = Arc::new(Mutex::new(Some(Box::new(work))));
        let (tx, done) = mpsc::sync_channel(1);
        let slot = work.clone();
        self.queue.push(Box::new(move || {
            if let Some(work) = take(&slot) {
                let _ = tx.send(work());
            }
        }));
        Pending {
            work,
            done,
            queue: self.queue.clone(),
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl<T> Pending<T> {
    /// The job's result: run here if no thread has taken it; while the
    /// helper runs it, the jobs queued after it run here. `None` if the
    /// helper stopped while running it.
    pub(super) fn wait(self) -> Option<T> {
        if let Some(work) = take(&self.work) {
            return Some(work());
        }
        loop {
            match self.done.try_recv() {
                Ok(result) => return Some(result),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            match self.queue.pop() {
                Some(task) => task(),
                None => return self.done.recv().ok(),
            }
        }
    }
}

/// A job dropped unwaited (the compile stopped at an error) is not run.
impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        drop(take(&self.work));
    }
}

fn take<T>(slot: &Mutex<Option<Work<T>>>) -> Option<Work<T>> {
    lock(slot).take()
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

    /// While the helper runs the job waited for, the waiting thread runs
    /// the ones queued after it: here the first cannot end before the
    /// second has run.
    #[test]
    fn the_waiting_thread_runs_the_jobs_queued_after_the_helpers() {
        let mut jobs = Jobs::default();
        let (tx, rx) = mpsc::channel::<()>();
        let first = jobs.spawn(move || rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok());
        let start = std::time::Instant::now();
        while first.work.lock().is_ok_and(|w| w.is_some()) {
            assert!(start.elapsed().as_secs() < 60, "the helper never started");
            std::thread::yield_now();
        }
        let second = jobs.spawn(move || tx.send(()).is_ok());
        assert_eq!(first.wait(), Some(true));
        assert_eq!(second.wait(), Some(true));
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
