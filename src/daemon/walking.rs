//! The daemon's walker thread: takes what the sources send, in order,
//! walks each chunk through the filters of the jails that read its source
//! (`jail::walker::Walker`), and hands it on to the main loop, where the
//! engine counts it. Matching thus runs beside the sources' reading and the
//! main loop's counting, on another core.
//!
//! It must not count, decide or reorder: it only walks, and on request
//! finishes what the sources already sent (a reload, a stop) before it
//! answers, so those events are counted under the routes they were read for.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::jail::walker::{WalkRoutes, Walked, Walker};
use crate::source::SourceEvent;

/// Walked events waiting for the main loop: a few, so a flood's walking
/// runs ahead of its counting, and the sources slow down beyond that
/// (each holds its chunk and its records: see `SOURCE_QUEUE`).
const WALKED_QUEUE: usize = 8;

/// The handle of the walker thread; the thread ends when it is dropped.
pub(super) struct WalkerThread {
    flush: mpsc::UnboundedSender<oneshot::Sender<()>>,
    routes: watch::Sender<Arc<WalkRoutes>>,
}

impl WalkerThread {
    /// Starts walking what arrives on `sources` with `routes`; the walked
    /// events come out of the returned receiver in the order they came in.
    pub(super) fn spawn(
        sources: mpsc::Receiver<SourceEvent>,
        routes: Arc<WalkRoutes>,
    ) -> std::io::Result<(WalkerThread, mpsc::Receiver<Walked>)> {
        let (walked_tx, walked_rx) = mpsc::channel(WALKED_QUEUE);
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let (routes_tx, routes_rx) = watch::channel(Arc::clone(&routes));
        let walker = Walker::new(routes);
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("banwarden-walk".into())
            .spawn(move || {
                handle.block_on(run(walker, sources, flush_rx, routes_rx, walked_tx));
            })?;
        let thread = WalkerThread {
            flush: flush_tx,
            routes: routes_tx,
        };
        Ok((thread, walked_rx))
    }

    /// Walks with `routes` from the next event on (a reload's new engine).
    pub(super) fn set_routes(&self, routes: Arc<WalkRoutes>) {
        self.routes.send_replace(routes);
    }

    /// Asks the thread to walk and pass on everything the sources have sent
    /// so far; the answer comes once it is all in the walked queue (or the
    /// thread is gone).
    pub(super) fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        // A thread that is gone has nothing left to pass on: `rx` ends at once.
        let _ = self.flush.send(tx);
        rx
    }
}

async fn run(
    mut walker: Walker,
    mut sources: mpsc::Receiver<SourceEvent>,
    mut flush: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    mut routes: watch::Receiver<Arc<WalkRoutes>>,
    walked: mpsc::Sender<Walked>,
) {
    let mut walk = |ev: SourceEvent| {
        if routes.has_changed().unwrap_or(false) {
            walker.set_routes(Arc::clone(&routes.borrow_and_update()));
        }
        walker.walk(ev, crate::now())
    };
    loop {
        tokio::select! {
            biased;
            request = flush.recv() => {
                let Some(done) = request else { return };
                while let Ok(ev) = sources.try_recv() {
                    if walked.send(walk(ev)).await.is_err() {
                        return;
                    }
                }
                let _ = done.send(());
            }
            ev = sources.recv() => {
                let Some(ev) = ev else { return };
                if walked.send(walk(ev)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(count: u64) -> SourceEvent {
        SourceEvent::Skipped {
            source: 0,
            path: Arc::new("/x".into()),
            count,
            reason: "line too long",
        }
    }

    fn count(w: &Walked) -> u64 {
        match w.ev {
            SourceEvent::Skipped { count, .. } => count,
            _ => u64::MAX,
        }
    }

    #[test]
    fn events_come_out_in_order_a_flush_answers_after_them_and_the_end_is_seen() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(4);
            let (thread, mut walked) =
                WalkerThread::spawn(rx, Arc::new(WalkRoutes::default())).unwrap();
            // More than the walked queue holds (the source queue holds the
            // rest): the flush must not wait on a full walked queue that
            // only the loop below empties.
            let n = WALKED_QUEUE as u64 + 4;
            for n in 0..n {
                tx.send(skipped(n)).await.unwrap();
            }
            let mut got = Vec::new();
            let mut done = thread.flush();
            loop {
                tokio::select! {
                    biased;
                    Some(w) = walked.recv() => got.push(count(&w)),
                    _ = &mut done => break,
                }
            }
            while let Ok(w) = walked.try_recv() {
                got.push(count(&w));
            }
            assert_eq!(got, (0..n).collect::<Vec<u64>>());
            // The sources gone, the walker ends and the main loop sees it.
            drop(tx);
            assert!(walked.recv().await.is_none());
        });
    }
}
