//! Waking the file source: a `notify` watcher on the patterns' directories
//! that tells the worker when to look again, and whether the change was
//! structural (something created, removed or renamed: re-expand the globs).
//!
//! It never reads files and never decides what a change means; the worker's
//! pass over the followed paths does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use notify::event::{EventKind, ModifyKind};
use notify::RecommendedWatcher;
use tokio::sync::Notify;

use super::discovery::Pat;

/// Set by the watcher callback, awaited by the worker.
#[derive(Default)]
pub(super) struct Wake {
    pub(super) notify: Notify,
    /// Something was created, removed or renamed: re-expand the globs.
    pub(super) structural: AtomicBool,
    pub(super) errors: Mutex<Vec<String>>,
}

pub(super) fn new_watcher(
    wake: Arc<Wake>,
    patterns: Arc<[Pat]>,
) -> notify::Result<RecommendedWatcher> {
    notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            // Our own reads produce access events: never wake on those.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => return,
            Ok(ev) if ev.need_rescan() => wake.structural.store(true, Ordering::Release),
            Ok(ev) => {
                if !ev
                    .paths
                    .iter()
                    .any(|p| patterns.iter().any(|pat| pat.relevant(p)))
                {
                    return;
                }
                if !matches!(
                    ev.kind,
                    EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_))
                ) {
                    wake.structural.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                let mut errors = wake.errors.lock().unwrap_or_else(|p| p.into_inner());
                if errors.len() < 16 {
                    errors.push(format!("file watcher: {e}"));
                }
                wake.structural.store(true, Ordering::Release);
            }
        }
        wake.notify.notify_one();
    })
}
