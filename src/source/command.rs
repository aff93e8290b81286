//! Command streams: lines read from a long-running command's stdout
//! (`command: ["/usr/bin/docker", "logs", "-f", "web"]`).
//!
//! Owns the child process (started from its argv, never through a shell, with
//! stdin null, in a process group of its own), its restarts with exponential
//! backoff, and the rate-limited logging of its stderr. Stdout is cut into
//! lines exactly like the file tailer does (raw bytes, lines over the cap
//! skipped and reported as [`SourceEvent::Skipped`]). It never interprets
//! lines, never blocks the engine, and leaves no child behind when dropped.
//!
//! The supervision loop ([`Supervisor`]) is shared with the journal reader
//! (`journal.rs`), which only differs in what it does with the bytes.

use crate::scan::split::Cutter;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{FilePos, SourceEvent, SourceId};

/// First delay before a restart; doubles on each failure up to the maximum.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// A child that ran this long was healthy: the next restart waits `BACKOFF_MIN` again.
pub(crate) const HEALTHY: Duration = Duration::from_secs(60);
/// Default longest delay between restarts.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default line cap, the same as the file tailer's.
pub(crate) use crate::scan::MAX_LINE;
/// Bytes read from a child's stdout per `read` call.
const CHUNK: usize = 64 * 1024;
/// Stderr lines logged per child and minute; the rest are counted.
const STDERR_PER_MINUTE: u32 = 10;
/// Stderr lines kept for the exit report, and their longest length.
const STDERR_TAIL_LINES: usize = 8;
const STDERR_LINE_MAX: usize = 512;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// Program and arguments; `argv[0]` is looked up in `PATH` if it has no `/`.
    pub argv: Vec<String>,
    /// Longest line delivered; longer lines are skipped and reported as `Skipped`.
    pub max_line: usize,
    /// Longest delay between restarts (they start at 100 ms and double).
    pub backoff_max: Duration,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            argv: Vec::new(),
            max_line: MAX_LINE,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// A running command source; kills its child (and the child's process group)
/// when dropped.
pub struct CommandSource {
    status: Arc<Status>,
    _stop: DropGuard,
}

impl CommandSource {
    /// Starts `argv` with the default cap and backoff, sending events tagged
    /// `id` to `tx`. Must be called inside a tokio runtime.
    pub fn spawn(id: SourceId, argv: Vec<String>, tx: mpsc::Sender<SourceEvent>) -> CommandSource {
        let cfg = CommandConfig {
            argv,
            ..CommandConfig::default()
        };
        Self::spawn_with(id, cfg, tx)
    }

    /// Starts `cfg.argv`, restarting it with backoff whenever it exits.
    /// Each exit (or failure to start) is logged, reported as
    /// [`SourceEvent::Error`] and counted in [`restarts`](Self::restarts).
    pub fn spawn_with(
        id: SourceId,
        cfg: CommandConfig,
        tx: mpsc::Sender<SourceEvent>,
    ) -> CommandSource {
        let cancel = CancellationToken::new();
        let status = Arc::new(Status::default());
        let out = Out {
            tx,
            cancel: cancel.clone(),
        };
        let Some(program) = cfg.argv.first().cloned() else {
            let message = "command source with an empty argv: nothing to run".to_string();
            tokio::spawn(async move {
                let _ = out
                    .send(SourceEvent::Error {
                        source: id,
                        message,
                    })
                    .await;
            });
            return CommandSource {
                status,
                _stop: cancel.drop_guard(),
            };
        };
        let path = Arc::new(PathBuf::from(&program));
        let feed = CommandFeed {
            id,
            argv: cfg.argv,
            path,
            cutter: Cutter::new(cfg.max_line),
            delivered: 0,
        };
        let sup = Supervisor {
            source: id,
            what: program,
            out,
            status: status.clone(),
            backoff_max: cfg.backoff_max,
        };
        tokio::spawn(sup.run(feed));
        CommandSource {
            status,
            _stop: cancel.drop_guard(),
        }
    }

    /// How many times the command exited (or failed to start) and was restarted.
    pub fn restarts(&self) -> u64 {
        self.status.restarts.load(Ordering::Relaxed)
    }

    /// The pid of the running child, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.status.pid()
    }
}

/// The command's stdout, cut into lines.
struct CommandFeed {
    id: SourceId,
    argv: Vec<String>,
    path: Arc<PathBuf>,
    cutter: Cutter,
    /// Bytes read from stdout since the source started (all runs), up to the
    /// end of the last complete line: what `FilePos::offset` reports.
    delivered: u64,
}

impl CommandFeed {
    fn push(&mut self, data: Vec<u8>, skipped: u64, consumed: u64, out: &mut Vec<SourceEvent>) {
        self.delivered += consumed;
        if skipped > 0 {
            out.push(SourceEvent::Skipped {
                source: self.id,
                path: self.path.clone(),
                count: skipped,
                reason: "line too long",
            });
        }
        if !data.is_empty() {
            let pos = FilePos {
                path: self.path.to_path_buf(),
                dev: 0,
                ino: 0,
                offset: self.delivered,
                fingerprint: 0,
            };
            out.push(SourceEvent::Lines {
                source: self.id,
                path: self.path.clone(),
                data,
                read_time: crate::now(),
                pos,
            });
        }
    }
}

impl Feed for CommandFeed {
    fn command(&mut self) -> Command {
        self.cutter.reset();
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        cmd
    }

    fn data(&mut self, chunk: &[u8], out: &mut Vec<SourceEvent>) {
        let before = self.cutter.partial.len() as u64;
        let (data, skipped) = self.cutter.feed(chunk);
        // Whatever is not held back as the partial line has been consumed.
        let consumed = before + chunk.len() as u64 - self.cutter.partial.len() as u64;
        self.push(data, skipped, consumed, out);
    }

    fn eof(&mut self, out: &mut Vec<SourceEvent>) {
        let consumed = self.cutter.partial.len() as u64;
        let (data, skipped) = self.cutter.finish();
        self.push(data, skipped, consumed, out);
    }
}

/// Restart count and current pid, shared between a source and its task.
#[derive(Default)]
pub(crate) struct Status {
    pub(crate) restarts: AtomicU64,
    pid: AtomicU32,
}

impl Status {
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }
}

/// The receiver is gone or the source was dropped: the task ends.
pub(crate) struct Stopped;

/// The way out of a source task: its channel, and its stop signal.
pub(crate) struct Out {
    pub(crate) tx: mpsc::Sender<SourceEvent>,
    pub(crate) cancel: CancellationToken,
}

impl Out {
    pub(crate) async fn send(&self, ev: SourceEvent) -> Result<(), Stopped> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Stopped),
            sent = self.tx.send(ev) => sent.map_err(|_| Stopped),
        }
    }
}

/// What a supervised child is run for: its command line, and what becomes of
/// its stdout. Synchronous: events are queued, the supervisor sends them.
pub(crate) trait Feed: Send + 'static {
    /// The command of the next run (program and arguments; stdio is set by the supervisor).
    fn command(&mut self) -> Command;
    /// Bytes read from stdout.
    fn data(&mut self, chunk: &[u8], out: &mut Vec<SourceEvent>);
    /// Stdout reached its end (the child is exiting).
    fn eof(&mut self, out: &mut Vec<SourceEvent>);
    /// The child ended (`success`: exit status 0) after writing `stderr` (its
    /// last lines). Returns whether to start it again.
    fn exited(&mut self, _success: bool, _stderr: &str) -> bool {
        true
    }
}

/// Runs a child again and again, with backoff, until stopped.
pub(crate) struct Supervisor {
    pub(crate) source: SourceId,
    /// How the child is named in logs and errors.
    pub(crate) what: String,
    pub(crate) out: Out,
    pub(crate) status: Arc<Status>,
    pub(crate) backoff_max: Duration,
}

/// How one run of the child ended.
enum Ended {
    /// Ended and must not be restarted; the message is set if it failed.
    Done(Option<String>),
    /// Exited or could not start: restart after the backoff.
    Failed(String),
}

impl Supervisor {
    pub(crate) async fn run<F: Feed>(self, mut feed: F) {
        let _ = self.run_loop(&mut feed).await;
        self.status.pid.store(0, Ordering::Relaxed);
    }

    async fn run_loop<F: Feed>(&self, feed: &mut F) -> Result<(), Stopped> {
        let mut delay = BACKOFF_MIN;
        let max = self.backoff_max.max(BACKOFF_MIN);
        loop {
            let started = Instant::now();
            let message = match self.run_once(feed).await? {
                Ended::Done(None) => return Ok(()),
                Ended::Done(Some(message)) => {
                    let source = self.source;
                    return self.out.send(SourceEvent::Error { source, message }).await;
                }
                Ended::Failed(message) => message,
            };
            if started.elapsed() >= HEALTHY {
                delay = BACKOFF_MIN;
            }
            let restarts = self.status.restarts.fetch_add(1, Ordering::Relaxed) + 1;
            let message = format!("{message} (restart {restarts}); restarting in {delay:?}");
            let source = self.source;
            self.out
                .send(SourceEvent::Error { source, message })
                .await?;
            tokio::select! {
                _ = self.out.cancel.cancelled() => return Err(Stopped),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(max);
        }
    }

    async fn run_once<F: Feed>(&self, feed: &mut F) -> Result<Ended, Stopped> {
        let mut cmd = feed.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Ok(Ended::Failed(format!("cannot start {}: {e}", self.what))),
        };
        self.status
            .pid
            .store(child.id().unwrap_or(0), Ordering::Relaxed);
        let stderr = child.stderr.take().map(|err| {
            let (source, what) = (self.source, self.what.clone());
            AbortOnDrop(tokio::spawn(drain_stderr(err, source, what)))
        });
        let pumped = self.pump(&mut child, feed).await;
        let read_error = match pumped {
            Ok(read_error) => read_error,
            Err(stopped) => {
                stop_child(&mut child).await;
                return Err(stopped);
            }
        };
        let status = tokio::select! {
            _ = self.out.cancel.cancelled() => {
                stop_child(&mut child).await;
                return Err(Stopped);
            }
            status = child.wait() => status,
        };
        self.status.pid.store(0, Ordering::Relaxed);
        // What is left of stderr arrives right away, unless a grandchild holds it open.
        let tail = match stderr {
            Some(mut task) => match tokio::time::timeout(Duration::from_secs(1), &mut task.0).await
            {
                Ok(Ok(tail)) => tail,
                _ => String::new(),
            },
            None => String::new(),
        };
        let success = status.as_ref().is_ok_and(ExitStatus::success);
        let restart = feed.exited(success, &tail);
        if !restart && success && read_error.is_none() {
            return Ok(Ended::Done(None));
        }
        let mut message = match &status {
            Ok(status) => format!("{} exited ({status})", self.what),
            Err(e) => format!("{} ended, its status is unknown: {e}", self.what),
        };
        if let Some(e) = read_error {
            message.push_str(&format!("; reading its output failed: {e}"));
        }
        if !tail.is_empty() {
            message.push_str(&format!("; stderr: {tail}"));
        }
        Ok(if restart {
            Ended::Failed(message)
        } else {
            Ended::Done(Some(message))
        })
    }

    /// Reads stdout to its end, feeding and sending. Returns the read error
    /// that ended it, if any (the child has been killed then).
    async fn pump<F: Feed>(
        &self,
        child: &mut Child,
        feed: &mut F,
    ) -> Result<Option<std::io::Error>, Stopped> {
        let mut events = Vec::new();
        let Some(mut stdout) = child.stdout.take() else {
            return Ok(None);
        };
        let mut buf = vec![0u8; CHUNK];
        let read_error = loop {
            let n = tokio::select! {
                biased;
                _ = self.out.cancel.cancelled() => return Err(Stopped),
                n = stdout.read(&mut buf) => n,
            };
            match n {
                Ok(0) => break None,
                Ok(n) => feed.data(&buf[..n], &mut events),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = child.start_kill();
                    break Some(e);
                }
            }
            for ev in events.drain(..) {
                self.out.send(ev).await?;
            }
        };
        feed.eof(&mut events);
        for ev in events.drain(..) {
            self.out.send(ev).await?;
        }
        Ok(read_error)
    }
}

/// Kills a still running child and its process group, and reaps it.
async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        // The child leads its own group (`process_group(0)`): its pid is the group id.
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs a child's stderr, at most `STDERR_PER_MINUTE` lines a minute, and
/// returns its last lines (joined by ` | `) once it ends.
async fn drain_stderr(mut err: ChildStderr, source: SourceId, what: String) -> String {
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    let (mut window, mut logged, mut suppressed) = (Instant::now(), 0u32, 0u64);
    let mut emit = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        line.clear();
        if text.is_empty() {
            return;
        }
        if window.elapsed() >= Duration::from_secs(60) {
            if suppressed > 0 {
                tracing::warn!(source, command = %what, suppressed, "stderr lines not logged");
            }
            (window, logged, suppressed) = (Instant::now(), 0, 0);
        }
        if logged < STDERR_PER_MINUTE {
            logged += 1;
            tracing::warn!(source, command = %what, "stderr: {text}");
        } else {
            suppressed += 1;
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    loop {
        let n = match err.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for part in buf[..n].split_inclusive(|&b| b == b'\n') {
            let room = STDERR_LINE_MAX.saturating_sub(line.len());
            let body = part.strip_suffix(b"\n").unwrap_or(part);
            line.extend_from_slice(&body[..body.len().min(room)]);
            if part.ends_with(b"\n") {
                emit(&mut line);
            }
        }
    }
    emit(&mut line);
    if suppressed > 0 {
        tracing::warn!(source, command = %what, suppressed, "stderr lines not logged");
    }
    Vec::from(tail).join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_offsets_count_consumed_bytes() {
        let mut feed = CommandFeed {
            id: 1,
            argv: vec!["x".into()],
            path: Arc::new(PathBuf::from("x")),
            cutter: Cutter::new(100),
            delivered: 0,
        };
        let mut out = Vec::new();
        feed.data(b"ab\ncd", &mut out);
        feed.data(b"e\nf", &mut out);
        feed.eof(&mut out);
        let offsets: Vec<u64> = out
            .iter()
            .map(|ev| match ev {
                SourceEvent::Lines { pos, .. } => pos.offset,
                _ => panic!("unexpected {ev:?}"),
            })
            .collect();
        // Bytes read: "ab\n", "cde\n", then "f" (its `\n` is added, not read).
        assert_eq!(offsets, vec![3, 7, 8]);
    }
}
