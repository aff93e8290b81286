//! File tailer: follows paths and globs and cuts appended bytes into lines.
//!
//! Owns the `notify` watcher on the patterns' directories, the polling
//! fallback, one descriptor per followed file, rotation and truncation
//! detection, and the positions used to resume after a restart. It never
//! interprets lines (no regexes, no timestamps, no UTF-8 decoding) and never
//! blocks the engine: all I/O runs on one thread per source, which ends when
//! the [`FileSource`] is dropped.
//!
//! Each pass stats every followed path. The path leading to another inode
//! (or to nothing) is a rotation: the old descriptor is read to EOF first,
//! then the new file is read from offset 0 ("renamed" if the old file still
//! has a name, "recreated" if it was deleted). The same inode shorter than
//! what was read, or with a new first line, is a copytruncate ("truncated").

use crate::scan::split::Cutter;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{FilePos, SourceEvent, SourceId};

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// Absolute paths; may contain glob characters (`*`, `?`, `[..]`).
    pub patterns: Vec<PathBuf>,
    /// Interval of the polling fallback and of glob rescans.
    pub poll_interval: Duration,
    /// Longest line delivered; longer lines are skipped and reported as `Skipped`.
    pub max_line: usize,
    /// Positions saved by a previous run; a file not listed starts at its end.
    pub resume: Vec<FilePos>,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        FileSourceConfig {
            patterns: Vec::new(),
            poll_interval: Duration::from_millis(1000),
            max_line: 16 * 1024,
            resume: Vec::new(),
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
            buf: vec![0; CHUNK],
            max_line: cfg.max_line,
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
            tracing::error!(source = id, error = %e, "cannot start file source thread");
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

/// Bytes read per `read` call; one `Lines` event (one allocation) per chunk at most.
const CHUNK: usize = 64 * 1024;
/// Chunks read from one file per pass before the other files get their turn.
const BUDGET: usize = 64;
/// The fingerprint covers the first line, at most this many bytes of it.
const FP_LEN: usize = 256;

#[derive(Clone, Default)]
struct Positions(Arc<Mutex<BTreeMap<PathBuf, FilePos>>>);

impl Positions {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<PathBuf, FilePos>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// FNV-1a 64 of the first line of `head` (without its `\n`), at most 256 bytes; 0 if empty.
fn fingerprint(head: &[u8]) -> u64 {
    let head = &head[..head.len().min(FP_LEN)];
    let line = memchr::memchr(b'\n', head).map_or(head, |i| &head[..i]);
    if line.is_empty() {
        return 0;
    }
    line.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file's fingerprint, and whether it is final (first line complete or 256 bytes long).
fn head_fingerprint(file: &File) -> io::Result<(u64, bool)> {
    let mut head = [0u8; FP_LEN];
    let mut n = 0;
    while n < FP_LEN {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &head[..n];
    Ok((
        fingerprint(head),
        n == FP_LEN || memchr::memchr(b'\n', head).is_some(),
    ))
}

/// Where "the end" is for a file seen at start: just after its last `\n`, so a
/// line being written right now is delivered once complete. Returns the offset
/// and whether that last line is already over the cap (to be skipped).
fn tail_start(file: &File, len: u64, max_line: usize) -> io::Result<(u64, bool)> {
    let want = len.min(max_line.saturating_add(1).min(1 << 20) as u64);
    let mut tail = vec![0; want as usize];
    file.read_exact_at(&mut tail, len - want)?;
    Ok(match memchr::memrchr(b'\n', &tail) {
        Some(i) => (len - want + i as u64 + 1, false),
        None if want == len && len <= max_line as u64 => (0, false),
        None => (len, true),
    })
}

/// How to position a file on first sight.
enum Start {
    AtEnd,
    Resume(FilePos),
    Beginning,
}

/// One open file: the inode we read, and how far.
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes consumed (complete lines plus the held-back partial line).
    read_pos: u64,
    /// Just after the last `\n` consumed: what `FilePos::offset` reports.
    offset: u64,
    /// Known once the first line is complete.
    fingerprint: Option<u64>,
    cutter: Cutter,
}

impl Open {
    fn new(path: &Path, start: &Start, ctx: &mut Ctx) -> io::Result<Open> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let (dev, ino, len) = (meta.dev(), meta.ino(), meta.len());
        let (fp, fp_final) = head_fingerprint(&file)?;
        let mut cutter = Cutter::new(ctx.max_line);
        let offset = match start {
            Start::AtEnd => {
                let (offset, skipping) = tail_start(&file, len, ctx.max_line)?;
                cutter.skipping = skipping;
                offset
            }
            Start::Resume(p)
                if (p.dev, p.ino, p.fingerprint) == (dev, ino, fp) && p.offset <= len =>
            {
                p.offset
            }
            Start::Resume(_) => {
                let path = path.display();
                tracing::info!(source = ctx.id, %path, "rotated while stopped: reading from 0");
                0
            }
            // A followed file renamed to another matching path continues where it was.
            Start::Beginning => match ctx.retired.remove(&(dev, ino)) {
                Some((offset, rfp)) if rfp == fp && offset <= len => offset,
                _ => 0,
            },
        };
        let fingerprint = fp_final.then_some(fp);
        Ok(Open {
            file,
            dev,
            ino,
            read_pos: offset,
            offset,
            fingerprint,
            cutter,
        })
    }

    fn is(&self, meta: &Metadata) -> bool {
        (meta.dev(), meta.ino()) == (self.dev, self.ino)
    }

    fn fingerprint(&mut self) -> u64 {
        if let Some(fp) = self.fingerprint {
            return fp;
        }
        let (fp, fp_final) = head_fingerprint(&self.file).unwrap_or((0, false));
        self.fingerprint = fp_final.then_some(fp);
        fp
    }

    fn pos(&mut self, path: &Path) -> FilePos {
        let fingerprint = self.fingerprint();
        FilePos {
            path: path.to_path_buf(),
            dev: self.dev,
            ino: self.ino,
            offset: self.offset,
            fingerprint,
        }
    }

    /// The first line is not the one we fingerprinted: copytruncate, and rewritten.
    fn head_changed(&self) -> bool {
        self.fingerprint
            .is_some_and(|old| head_fingerprint(&self.file).is_ok_and(|(fp, _)| fp != old))
    }
}

/// One followed path (an explicit pattern, or a glob match).
struct Follower {
    path: Arc<PathBuf>,
    explicit: bool,
    start: Start,
    open: Option<Open>,
    /// The previous file was rotated away: report this when its successor opens.
    pending_how: Option<&'static str>,
    last_error: Option<String>,
}

/// State shared by every follower of the worker.
struct Ctx {
    id: SourceId,
    tx: mpsc::Sender<SourceEvent>,
    cancel: CancellationToken,
    positions: Positions,
    /// Events waiting for `flush` (synchronous code queues, async code sends).
    pending: Vec<SourceEvent>,
    /// (dev, ino) -> (offset, fingerprint) of files rotated away while still named.
    retired: HashMap<(u64, u64), (u64, u64)>,
    buf: Vec<u8>,
    max_line: usize,
}

/// The receiver is gone or the source was dropped: the worker ends.
struct Stopped;

impl Ctx {
    async fn flush(&mut self) -> Result<(), Stopped> {
        for ev in self.pending.drain(..) {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Stopped),
                sent = self.tx.send(ev) => sent.map_err(|_| Stopped)?,
            }
        }
        Ok(())
    }

    fn global_error(&mut self, message: String) {
        tracing::warn!(source = self.id, error = %message, "file source");
        self.pending.push(SourceEvent::Error {
            source: self.id,
            message,
        });
    }

    /// Reports a per-file error once, until it changes or the file recovers.
    fn file_error(&mut self, f: &mut Follower, what: &str, err: impl Display) {
        let message = format!("{what} {}: {err}", f.path.display());
        if f.last_error.as_ref() != Some(&message) {
            tracing::warn!(source = self.id, path = %f.path.display(), error = %err, "{what}");
            self.pending.push(SourceEvent::Error {
                source: self.id,
                message: message.clone(),
            });
            f.last_error = Some(message);
        }
    }

    fn set_pos(&self, path: &Path, pos: Option<FilePos>) {
        let mut map = self.positions.lock();
        match pos {
            Some(pos) => map.insert(path.to_path_buf(), pos),
            None => map.remove(path),
        };
    }
}

/// Opens the file now at `f.path`; false (and an error reported) if it cannot.
fn open_follower(ctx: &mut Ctx, f: &mut Follower) -> bool {
    match Open::new(&f.path, &f.start, ctx) {
        Ok(mut open) => {
            if let Some(how) = f.pending_how.take() {
                tracing::info!(source = ctx.id, path = %f.path.display(), how, "log file rotated");
                ctx.pending.push(SourceEvent::Rotated {
                    source: ctx.id,
                    path: f.path.clone(),
                    how,
                });
            }
            ctx.set_pos(&f.path, Some(open.pos(&f.path)));
            (f.start, f.last_error, f.open) = (Start::Beginning, None, Some(open));
            true
        }
        Err(e) => {
            ctx.file_error(f, "cannot open", e);
            false
        }
    }
}

/// One pass over one path: notices rotation, truncation and new files, then
/// reads. True when the read budget ran out with bytes left.
async fn poll(ctx: &mut Ctx, f: &mut Follower) -> Result<bool, Stopped> {
    let now = match fs::metadata(&*f.path) {
        Ok(meta) if meta.is_file() => Some(meta),
        Ok(_) => {
            ctx.file_error(f, "cannot follow", "not a regular file");
            None
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            ctx.file_error(f, "cannot stat", e);
            return read(ctx, f, BUDGET).await;
        }
    };
    if f.open
        .as_ref()
        .is_some_and(|o| now.as_ref().is_none_or(|m| !o.is(m)))
    {
        // The path no longer leads to the file we hold: finish that one first.
        read(ctx, f, usize::MAX).await?;
        let Some(old) = f.open.take() else {
            return Ok(false);
        };
        let deleted = !old.file.metadata().is_ok_and(|m| m.nlink() > 0);
        if now.is_none() && !deleted {
            f.open = Some(old); // renamed, no successor yet: the writer may still use it
            return Ok(false);
        }
        if !deleted {
            if ctx.retired.len() >= 1024 {
                ctx.retired.clear();
            }
            let fp = old.fingerprint.unwrap_or(0);
            ctx.retired.insert((old.dev, old.ino), (old.offset, fp));
        }
        f.pending_how = Some(if deleted { "recreated" } else { "renamed" });
        ctx.set_pos(&f.path, None);
    }
    let Some(meta) = now else { return Ok(false) };
    if f.open.is_none() && !open_follower(ctx, f) {
        return Ok(false);
    }
    if f.open.as_ref().is_some_and(|o| meta.len() < o.read_pos) {
        restart(ctx, f);
    }
    read(ctx, f, BUDGET).await
}

/// Copytruncate: the same inode is read again from offset 0.
fn restart(ctx: &mut Ctx, f: &mut Follower) {
    if let Some(open) = f.open.as_mut() {
        (open.read_pos, open.offset, open.fingerprint) = (0, 0, None);
        open.cutter.reset();
    }
    let (path, how) = (f.path.display(), "truncated");
    tracing::info!(source = ctx.id, %path, how, "log file rotated");
    ctx.pending.push(SourceEvent::Rotated {
        source: ctx.id,
        path: f.path.clone(),
        how: "truncated",
    });
}

/// Reads up to `budget` chunks and delivers the complete lines; true if the
/// budget ran out before EOF.
async fn read(ctx: &mut Ctx, f: &mut Follower, budget: usize) -> Result<bool, Stopped> {
    for _ in 0..budget {
        let Some(open) = f.open.as_mut() else {
            return Ok(false);
        };
        let n = match open.file.read_at(&mut ctx.buf, open.read_pos) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                ctx.file_error(f, "cannot read", e);
                return Ok(false);
            }
        };
        // Checked after the read, so the chunk cannot come from a rewrite we missed.
        if open.head_changed() {
            restart(ctx, f);
            continue;
        }
        let chunk = &ctx.buf[..n];
        let (data, count) = open.cutter.feed(chunk);
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            open.offset = open.read_pos + i as u64 + 1;
        }
        open.read_pos += n as u64;
        if data.is_empty() && count == 0 {
            continue;
        }
        let (source, path, pos) = (ctx.id, f.path.clone(), open.pos(&f.path));
        ctx.set_pos(&path, Some(pos.clone()));
        if count > 0 {
            ctx.pending.push(SourceEvent::Skipped {
                source,
                path: path.clone(),
                count,
                reason: "line too long",
            });
        }
        if !data.is_empty() {
            ctx.pending.push(SourceEvent::Lines {
                source,
                path,
                data,
                read_time: crate::now(),
                pos,
            });
        }
        ctx.flush().await?;
    }
    Ok(true)
}

/// A configured pattern: an exact path or a glob, and the directory to watch for it.
#[derive(Clone)]
struct Pat {
    path: PathBuf,
    glob: Option<glob::Pattern>,
    base: PathBuf,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn has_glob(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

impl Pat {
    fn new(path: &Path) -> Result<Pat, glob::PatternError> {
        let glob = match path.to_str() {
            Some(text) if has_glob(path) => Some(glob::Pattern::new(text)?),
            _ => None,
        };
        let base = path
            .ancestors()
            .skip(1)
            .find(|a| !has_glob(a))
            .unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Ok(Pat {
            path: path.to_path_buf(),
            glob,
            base: base.to_path_buf(),
        })
    }

    /// Whether an event on `p` may concern this pattern (a match, or a directory on the way to it).
    fn relevant(&self, p: &Path) -> bool {
        self.glob
            .as_ref()
            .map_or(p == self.path, |g| g.matches_path_with(p, MATCH))
            || self.base.starts_with(p)
    }

    fn expand(&self) -> Vec<PathBuf> {
        let Some(glob) = &self.glob else {
            return vec![self.path.clone()];
        };
        let paths = glob::glob_with(glob.as_str(), MATCH)
            .into_iter()
            .flatten()
            .flatten();
        paths
            .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
            .collect()
    }
}

/// Set by the watcher callback, awaited by the worker.
#[derive(Default)]
struct Wake {
    notify: Notify,
    /// Something was created, removed or renamed: re-expand the globs.
    structural: AtomicBool,
    errors: Mutex<Vec<String>>,
}

fn new_watcher(wake: Arc<Wake>, patterns: Arc<[Pat]>) -> notify::Result<RecommendedWatcher> {
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
                tracing::error!(source = self.ctx.id, error = %e, "cannot start runtime");
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
                    let start = match resume {
                        Some(resume) if fs::metadata(&path).is_ok() => resume
                            .iter()
                            .find(|p| p.path == path)
                            .map_or(Start::AtEnd, |p| Start::Resume(p.clone())),
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
    use super::*;
    use std::io::Write;

    fn lines(data: &[u8]) -> Vec<&[u8]> {
        data.split_inclusive(|&b| b == b'\n').collect()
    }

    #[test]
    fn fingerprint_is_fnv1a_of_the_first_line() {
        assert_eq!(fingerprint(b""), 0);
        assert_eq!(fingerprint(b"\nsecond\n"), 0);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c); // FNV-1a 64 test vector
        assert_eq!(fingerprint(b"a\nb\n"), fingerprint(b"a"));
        assert_eq!(fingerprint(b"foobar"), 0x8594_4171_f739_67e8);
        let long = vec![b'x'; 1000];
        assert_eq!(fingerprint(&long), fingerprint(&long[..256]));
        assert_ne!(fingerprint(&long[..255]), fingerprint(&long[..256]));
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

    #[test]
    fn tail_start_begins_after_the_last_complete_line() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(b"old\nolder\npart").unwrap();
        let file = tmp.reopen().unwrap();
        assert_eq!(tail_start(&file, 14, 100).unwrap(), (10, false));
        assert_eq!(tail_start(&file, 10, 100).unwrap(), (10, false));
        assert_eq!(tail_start(&file, 3, 100).unwrap(), (0, false));
        assert_eq!(tail_start(&file, 14, 3).unwrap(), (14, true));
        assert_eq!(tail_start(&file, 0, 100).unwrap(), (0, false));
    }

    #[test]
    fn patterns_know_their_directory() {
        let p = Pat::new(Path::new("/var/log/*/access.log")).unwrap();
        assert_eq!(p.base, Path::new("/var/log"));
        assert!(p.relevant(Path::new("/var/log/nginx/access.log")));
        assert!(!p.relevant(Path::new("/var/log/nginx/error.log")));
        let p = Pat::new(Path::new("/var/log/auth.log")).unwrap();
        assert_eq!(
            (p.base.as_path(), p.glob.is_none()),
            (Path::new("/var/log"), true)
        );
        assert!(p.relevant(Path::new("/var")) && !p.relevant(Path::new("/var/log/auth.log.1")));
    }
}
