//! Following one path: the file open behind it (inode, offsets, first-line
//! fingerprint, the cutter holding a partial line), noticing rotation,
//! truncation and recreation on each pass, and reading appended bytes into
//! `Lines` events with the position just after the last complete line.
//!
//! It never interprets lines and never finds files (discovery does).

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::identity::head_fingerprint;
use super::seek::{seek_to_time, tail_start, SeekByTime};
use super::{Positions, BUDGET};
use crate::scan::split::Cutter;
use crate::source::{FilePos, SourceEvent, SourceId};

/// How to position a file on first sight.
pub(super) enum Start {
    AtEnd,
    Resume(FilePos),
    Beginning,
}

/// Where a file present at start resumes: the saved position of the same
/// file (device and inode; its first line is checked on opening), wherever
/// it was named then (a file rotated while the daemon was down is finished
/// under its new name), else the position saved for this path (a new file
/// there is read from its beginning), else nothing saved: at its end.
pub(super) fn resume_of(resume: &[FilePos], path: &Path, meta: &Metadata) -> Start {
    let same_file = resume
        .iter()
        .find(|p| (p.dev, p.ino) == (meta.dev(), meta.ino()));
    match same_file.or_else(|| resume.iter().find(|p| p.path == path)) {
        Some(p) => Start::Resume(p.clone()),
        None => Start::AtEnd,
    }
}

/// One open file: the inode we read, and how far.
pub(super) struct Open {
    pub(super) file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// Bytes consumed (complete lines plus the held-back partial line).
    pub(super) read_pos: u64,
    /// Just after the last `\n` consumed: what `FilePos::offset` reports.
    pub(super) offset: u64,
    /// Known once the first line is complete.
    pub(super) fingerprint: Option<u64>,
    pub(super) cutter: Cutter,
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
                let (end, skipping) = tail_start(&file, len, ctx.max_line)?;
                let offset = match &ctx.seek {
                    Some(seek) => seek_to_time(&file, end, seek.since, &*seek.date)?,
                    None => end,
                };
                cutter.skipping = skipping && offset == end;
                if offset < end {
                    let (path, lines_bytes) = (path.display(), end - offset);
                    tracing::info!(source = ctx.id, %path, offset, lines_bytes, "new file: reading the lines within findtime");
                }
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

    pub(super) fn is(&self, meta: &Metadata) -> bool {
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

    pub(super) fn pos(&mut self, path: &Path) -> FilePos {
        let fingerprint = self.fingerprint();
        FilePos {
            path: path.to_path_buf(),
            dev: self.dev,
            ino: self.ino,
            offset: self.offset,
            fingerprint,
        }
    }

    /// A copytruncate seen from the file's length `len`: shorter than what
    /// was read, or as long with another first line (written again up to
    /// exactly the old size). Longer with another first line is found by
    /// `read`.
    pub(super) fn truncated(&self, len: u64) -> bool {
        len < self.read_pos || (len == self.read_pos && self.head_changed())
    }

    /// The first line is not the one we fingerprinted: copytruncate, and rewritten.
    fn head_changed(&self) -> bool {
        self.fingerprint
            .is_some_and(|old| head_fingerprint(&self.file).is_ok_and(|(fp, _)| fp != old))
    }
}

/// One followed path (an explicit pattern, or a glob match).
pub(super) struct Follower {
    pub(super) path: Arc<PathBuf>,
    pub(super) explicit: bool,
    pub(super) start: Start,
    pub(super) open: Option<Open>,
    /// The previous file was rotated away: report this when its successor opens.
    pub(super) pending_how: Option<&'static str>,
    pub(super) last_error: Option<String>,
}

/// State shared by every follower of the worker.
pub(super) struct Ctx {
    pub(super) id: SourceId,
    pub(super) tx: mpsc::Sender<SourceEvent>,
    pub(super) cancel: CancellationToken,
    pub(super) positions: Positions,
    /// Events waiting for `flush` (synchronous code queues, async code sends).
    pub(super) pending: Vec<SourceEvent>,
    /// (dev, ino) -> (offset, fingerprint) of files rotated away while still named.
    pub(super) retired: HashMap<(u64, u64), (u64, u64)>,
    /// (dev, ino) of the files some follower holds open now.
    pub(super) held: HashSet<(u64, u64)>,
    pub(super) buf: Vec<u8>,
    pub(super) max_line: usize,
    /// Where a file seen for the first time starts, if not at its end.
    pub(super) seek: Option<SeekByTime>,
}

/// The receiver is gone or the source was dropped: the worker ends.
pub(super) struct Stopped;

impl Ctx {
    pub(super) async fn flush(&mut self) -> Result<(), Stopped> {
        for ev in self.pending.drain(..) {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(Stopped),
                sent = self.tx.send(ev) => sent.map_err(|_| Stopped)?,
            }
        }
        Ok(())
    }

    pub(super) fn global_error(&mut self, message: String) {
        self.pending.push(SourceEvent::Error {
            source: self.id,
            message,
        });
    }

    /// Reports a per-file error once, until it changes or the file recovers.
    fn file_error(&mut self, f: &mut Follower, what: &str, err: impl Display) {
        let message = format!("{what} {}: {err}", f.path.display());
        if f.last_error.as_ref() != Some(&message) {
            self.pending.push(SourceEvent::Error {
                source: self.id,
                message: message.clone(),
            });
            f.last_error = Some(message);
        }
    }

    pub(super) fn set_pos(&self, path: &Path, pos: Option<FilePos>) {
        let mut map = self.positions.lock();
        match pos {
            Some(pos) => map.insert(path.to_path_buf(), pos),
            None => map.remove(path),
        };
    }
}

/// Opens the file now at `f.path`; false if it cannot (an error reported)
/// or must not yet (another follower holds it).
pub(super) fn open_follower(ctx: &mut Ctx, f: &mut Follower) -> bool {
    match Open::new(&f.path, &f.start, ctx) {
        // Renamed here from a path whose follower still holds it (perhaps
        // since the stat that led here): that follower finishes it and
        // hands its offset over (`retired`); read now, it would be read twice.
        Ok(open) if ctx.held.contains(&(open.dev, open.ino)) => false,
        Ok(mut open) => {
            if let Some(how) = f.pending_how.take() {
                ctx.pending.push(SourceEvent::Rotated {
                    source: ctx.id,
                    path: f.path.clone(),
                    how,
                });
            }
            ctx.set_pos(&f.path, Some(open.pos(&f.path)));
            ctx.held.insert((open.dev, open.ino));
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
pub(super) async fn poll(ctx: &mut Ctx, f: &mut Follower) -> Result<bool, Stopped> {
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
        // The path no longer leads to the file we hold: finish that one first
        // (from its start if it was truncated before it went: copytruncate,
        // then deleted or renamed before this pass saw the truncation).
        if f.open
            .as_ref()
            .is_some_and(|o| o.file.metadata().is_ok_and(|m| o.truncated(m.len())))
        {
            restart(ctx, f);
        }
        read(ctx, f, usize::MAX).await?;
        let Some(old) = f.open.take() else {
            return Ok(false);
        };
        let deleted = !old.file.metadata().is_ok_and(|m| m.nlink() > 0);
        if now.is_none() && !deleted {
            f.open = Some(old); // renamed, no successor yet: the writer may still use it
            return Ok(false);
        }
        ctx.held.remove(&(old.dev, old.ino));
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
    // Shorter than what was read, or as long with another first line: a
    // copytruncate, written again up to exactly the old size.
    if f.open.as_ref().is_some_and(|o| o.truncated(meta.len())) {
        restart(ctx, f);
    }
    read(ctx, f, BUDGET).await
}

/// Copytruncate: the same inode is read again from offset 0.
pub(super) fn restart(ctx: &mut Ctx, f: &mut Follower) {
    if let Some(open) = f.open.as_mut() {
        (open.read_pos, open.offset, open.fingerprint) = (0, 0, None);
        open.cutter.reset();
    }
    ctx.pending.push(SourceEvent::Rotated {
        source: ctx.id,
        path: f.path.clone(),
        how: "truncated",
    });
}

/// Reads up to `budget` chunks and delivers the complete lines; true if the
/// budget ran out before EOF.
pub(super) async fn read(ctx: &mut Ctx, f: &mut Follower, budget: usize) -> Result<bool, Stopped> {
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
