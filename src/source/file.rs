//! File tailer: follows paths and globs and cuts appended bytes into lines.
//!
//! Owns the source's thread and its loop (wake on a watcher event or the
//! poll tick, expand the patterns, pass over every followed path) and the
//! positions used to resume after a restart; the concerns live in
//! submodules: `discovery` (patterns → paths), `identity` (device, inode,
//! first-line fingerprint), `seek` (where a file seen for the first time
//! starts: its end, or its first line within findtime), `follow` (one
//! path: rotation, truncation, reading) and `watch` (the notify watcher).
//! It never interprets lines itself (no regexes, no UTF-8 decoding; dates
//! only through the reader the daemon gives `seek`) and never blocks the
//! engine: all I/O runs on one thread per source, which ends when the
//! [`FileSource`] is dropped.
//!
//! Each pass stats every followed path. The path leading to another inode
//! (or to nothing) is a rotation: the old descriptor is read to EOF first,
//! then the new file is read from offset 0 ("renamed" if the old file still
//! has a name, "recreated" if it was deleted). The same inode shorter than
//! what was read, or with a new first line, is a copytruncate ("truncated").

mod discovery;
mod follow;
mod identity;
mod seek;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{FilePos, SourceEvent, SourceId};
use discovery::Pat;
use follow::{open_follower, poll, resume_of, Ctx, Follower, Start, Stopped};
pub use seek::{DateReader, SeekByTime};
use watch::{new_watcher, Wake};

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// Absolute paths; may contain glob characters (`*`, `?`, `[..]`).
    pub patterns: Vec<PathBuf>,
    /// Interval of the polling fallback and of glob rescans.
    pub poll_interval: Duration,
    /// Longest line delivered; longer lines are skipped and reported as `Skipped`.
    pub max_line: usize,
    /// Positions saved by a previous run, found by file identity (device,
    /// inode, first line) first, then by path; a file not listed starts at
    /// its end, or where `seek` says.
    pub resume: Vec<FilePos>,
    /// For a file present at start without a saved position: start at its
    /// first line dated at or after this time instead of at its end.
    pub seek: Option<SeekByTime>,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        FileSourceConfig {
            patterns: Vec::new(),
            poll_interval: Duration::from_millis(1000),
            max_line: 16 * 1024,
            resume: Vec::new(),
            seek: None,
        }
    }
}

/// A running file source; stops when dropped.
pub struct FileSource {
    positions: Positions,
    _stop: DropGuard,
}

impl FileSource {
    /// Starts following `cfg.patterns`, sending events tagged `id` to `tx`.
    /// Must be called inside a tokio runtime.
    ///
    /// Files present now start at their end (after their last `\n`: a line
    /// being written is delivered once complete), or at their `cfg.resume` offset
    /// if it still matches (same inode and first line; otherwise the file was
    /// rotated while we were down and is read from its beginning). Files that
    /// appear later are read from their beginning.
    pub fn spawn(id: SourceId, cfg: FileSourceConfig, tx: mpsc::Sender<SourceEvent>) -> FileSource {
        let cancel = CancellationToken::new();
        let positions = Positions::default();
        let failed = tx.clone();
        let mut ctx = Ctx {
            id,
            tx,
            cancel: cancel.clone(),
            positions: positions.clone(),
            pending: Vec::new(),
            retired: HashMap::new(),
            held: HashSet::new(),
            buf: vec![0; CHUNK],
            max_line: cfg.max_line,
            seek: cfg.seek.clone(),
        };
        let mut patterns = Vec::new();
        for path in &cfg.patterns {
            match Pat::new(path) {
                Ok(p) => patterns.push(p),
                Err(e) => ctx.global_error(format!("bad pattern {}: {e}", path.display())),
            }
        }
        let patterns: Arc<[Pat]> = patterns.into();
        let wake = Arc::new(Wake::default());
        let watcher = match new_watcher(wake.clone(), patterns.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                let every = cfg.poll_interval;
                ctx.global_error(format!(
                    "cannot create file watcher ({e}); polling every {every:?}"
                ));
                None
            }
        };
        let mut worker = Worker {
            ctx,
            patterns,
            followers: BTreeMap::new(),
            watcher,
            watched: HashMap::new(),
            watch_failed: HashSet::new(),
            wake,
            interval: cfg.poll_interval.max(Duration::from_millis(10)),
        };
        // Define "now" before returning: what is in the files at this point is
        // history, anything written after `spawn` returns will be delivered.
        worker.update_watches();
        worker.discover(Some(&cfg.resume));
        for f in worker.followers.values_mut() {
            if fs::metadata(&*f.path).is_ok() {
                open_follower(&mut worker.ctx, f);
            }
        }
        worker.update_watches();
        let spawned = std::thread::Builder::new()
            .name(format!("banwarden-file-{id}"))
            .spawn(move || worker.thread_main());
        if let Err(e) = spawned {
            let message = format!("file source stopped: cannot start its thread: {e}");
            let _ = failed.try_send(SourceEvent::Error {
                source: id,
                message,
            });
        }
        FileSource {
            positions,
            _stop: cancel.drop_guard(),
        }
    }

    /// The files currently followed with their positions (for `status`).
    pub fn positions(&self) -> Vec<FilePos> {
        self.positions.lock().values().cloned().collect()
    }
}

/// Bytes read per `read` call; one `Lines` event (one allocation) per chunk
/// at most. A flood is a few dozen events, not hundreds: each is a hand-off
/// between threads.
const CHUNK: usize = 256 * 1024;
/// Chunks read from one file per pass before the other files get their turn.
const BUDGET: usize = 16;

#[derive(Clone, Default)]
struct Positions(Arc<Mutex<BTreeMap<PathBuf, FilePos>>>);

impl Positions {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, FilePos>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The source's thread: owns the watcher and every follower.
struct Worker {
    ctx: Ctx,
    patterns: Arc<[Pat]>,
    followers: BTreeMap<PathBuf, Follower>,
    watcher: Option<RecommendedWatcher>,
    /// Watched directory -> its (dev, ino), to re-watch a recreated directory.
    watched: HashMap<PathBuf, (u64, u64)>,
    watch_failed: HashSet<PathBuf>,
    wake: Arc<Wake>,
    interval: Duration,
}

impl Worker {
    fn thread_main(mut self) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => {
                let _ = rt.block_on(self.run());
            }
            Err(e) => {
                let message = format!("file source stopped: cannot start its runtime: {e}");
                let _ = self.ctx.tx.blocking_send(SourceEvent::Error {
                    source: self.ctx.id,
                    message,
                });
            }
        }
    }

    async fn run(&mut self) -> Result<(), Stopped> {
        let mut next_tick = Instant::now() + self.interval;
        let mut structural = false;
        loop {
            if self.ctx.cancel.is_cancelled() {
                return Err(Stopped);
            }
            let errors =
                std::mem::take(&mut *self.wake.errors.lock().unwrap_or_else(|p| p.into_inner()));
            errors.into_iter().for_each(|e| self.ctx.global_error(e));
            if structural {
                self.discover(None);
                self.update_watches();
            }
            self.ctx.flush().await?;
            let mut more = false;
            for f in self.followers.values_mut() {
                more |= poll(&mut self.ctx, f).await?;
            }
            self.ctx.flush().await?;
            if !more {
                tokio::select! {
                    _ = self.ctx.cancel.cancelled() => return Err(Stopped),
                    _ = self.wake.notify.notified() => {}
                    _ = tokio::time::sleep_until(next_tick) => {}
                }
            }
            structural = self.wake.structural.swap(false, Ordering::AcqRel);
            if Instant::now() >= next_tick {
                (structural, next_tick) = (true, Instant::now() + self.interval);
            }
        }
    }

    /// Expands the patterns: adds followers for new paths, drops closed glob
    /// matches that are gone. `resume` is given on the first call only.
    fn discover(&mut self, resume: Option<&[FilePos]>) {
        let mut seen = HashSet::new();
        for pat in self.patterns.clone().iter() {
            for path in pat.expand() {
                if !self.followers.contains_key(&path) {
                    let start = match (resume, fs::metadata(&path)) {
                        (Some(resume), Ok(meta)) => resume_of(resume, &path, &meta),
                        _ => Start::Beginning,
                    };
                    self.add(path.clone(), pat.glob.is_none(), start);
                }
                seen.insert(path);
            }
        }
        self.followers
            .retain(|path, f| f.explicit || f.open.is_some() || seen.contains(path));
    }

    fn add(&mut self, path: PathBuf, explicit: bool, start: Start) {
        let path = Arc::new(path);
        let mut f = Follower {
            path: path.clone(),
            explicit,
            start,
            open: None,
            pending_how: None,
            last_error: None,
        };
        if let Ok(meta) = fs::metadata(&*path) {
            let holder = self
                .followers
                .values_mut()
                .find(|h| h.open.as_ref().is_some_and(|o| o.is(&meta)));
            if let Some(h) = holder {
                if fs::metadata(&*h.path).is_ok_and(|m| h.open.as_ref().is_some_and(|o| o.is(&m))) {
                    return; // another name (hard link) of a file already followed
                }
                // A followed file renamed to a path that matches too: continue it there.
                (f.open, h.pending_how) = (h.open.take(), Some("renamed"));
                self.ctx.set_pos(&h.path, None);
                if let Some(open) = f.open.as_mut() {
                    self.ctx.set_pos(&path, Some(open.pos(&path)));
                }
            }
        }
        self.followers.insert(path.to_path_buf(), f);
    }

    /// Watches the nearest existing directory of each pattern and the
    /// directories of the followed files; unwatches the rest.
    fn update_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let bases = self.patterns.iter().map(|p| p.base.as_path());
        let parents = self.followers.keys().filter_map(|p| p.parent());
        let mut want = HashMap::new();
        for dir in bases.chain(parents) {
            let found = dir
                .ancestors()
                .find_map(|a| fs::metadata(a).ok().filter(|m| m.is_dir()).map(|m| (a, m)));
            if let Some((dir, meta)) = found {
                want.insert(dir.to_path_buf(), (meta.dev(), meta.ino()));
            }
        }
        for (dir, id) in &want {
            if self.watched.get(dir) == Some(id) {
                continue;
            }
            if self.watched.remove(dir).is_some() {
                let _ = watcher.unwatch(dir);
            }
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir.clone(), *id);
                    self.watch_failed.remove(dir);
                }
                Err(e) if self.watch_failed.insert(dir.clone()) => {
                    self.ctx
                        .global_error(format!("cannot watch {} ({e}); polling it", dir.display()));
                }
                Err(_) => {}
            }
        }
        self.watched.retain(|dir, _| {
            let keep = want.contains_key(dir);
            if !keep {
                let _ = watcher.unwatch(dir);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::scan::split::Cutter;

    fn lines(data: &[u8]) -> Vec<&[u8]> {
        data.split_inclusive(|&b| b == b'\n').collect()
    }

    #[test]
    fn cutter_delivers_complete_lines_and_holds_the_partial_one() {
        let mut c = Cutter::new(100);
        let (out, skipped) = c.feed(b"one\ntwo\nthr");
        assert_eq!((lines(&out), skipped), (vec![&b"one\n"[..], b"two\n"], 0));
        assert_eq!(c.feed(b"e"), (Vec::new(), 0));
        let (out, _) = c.feed(b"e\n\nfour");
        assert_eq!(lines(&out), vec![&b"three\n"[..], b"\n"]);
        assert_eq!(c.partial, b"four");
    }

    #[test]
    fn cutter_passes_invalid_utf8_untouched() {
        let mut c = Cutter::new(100);
        assert_eq!(c.feed(b"\xff\xfe\xc3(\n").0, b"\xff\xfe\xc3(\n");
    }

    #[test]
    fn cutter_skips_overlong_lines_without_buffering_them() {
        let mut c = Cutter::new(5);
        let (out, skipped) = c.feed(b"12345\n123456\nok\n");
        assert_eq!((lines(&out), skipped), (vec![&b"12345\n"[..], b"ok\n"], 1));
        // Overlong across several reads: the buffer never exceeds the cap.
        assert_eq!(c.feed(b"abc"), (Vec::new(), 0));
        assert_eq!(c.feed(b"defgh"), (Vec::new(), 0));
        assert!(c.partial.is_empty() && c.skipping);
        assert_eq!(c.feed(b"ijk"), (Vec::new(), 0));
        let (out, skipped) = c.feed(b"lmn\nnext\n");
        assert_eq!((lines(&out), skipped), (vec![&b"next\n"[..]], 1));
        // A partial line exactly at the cap is still delivered.
        assert_eq!(c.feed(b"12345"), (Vec::new(), 0));
        assert_eq!(c.feed(b"\n"), (b"12345\n".to_vec(), 0));
    }
}
