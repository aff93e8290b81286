//! dry-run's edge of the line engine: maps plain files and reads other
//! inputs in large buffers, cuts them into chunks at line boundaries, walks
//! chunks on worker threads (`walk`, the daemon's own per-chunk code), and
//! hands the results to the caller's sink in input order, on whichever
//! worker finishes the chunk that is next in order.
//!
//! Owns reading and parallelism. It must not count failures per address,
//! decide bans or print anything (the caller feeds the chunks to
//! `jail::engine` and renders), nor match lines but through `walk`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use crate::UnixTime;

use super::input::Opened;
use super::{fold_sessions, walk, walk_entries, ChunkOut, WalkConfig, MAX_LINE};
use crate::filter::LineState;

/// Settings of one bulk scan.
pub struct BulkConfig<'a> {
    pub walk: WalkConfig<'a>,
    pub threads: usize,
    /// Chunk size in bytes.
    pub chunk: usize,
    /// Whether workers keep a date cache (`false`: for comparison).
    pub date_cache: bool,
}

/// Journal entries per chunk.
const ENTRIES_PER_CHUNK: usize = 4096;

/// Calls back as bytes are consumed (progress bar).
pub trait Progress {
    fn input_started(&mut self, index: usize);
    /// More of a stream was read.
    fn advanced(&mut self);
    /// `bytes` more of a mapped input went to the workers.
    fn mapped(&mut self, bytes: u64);
}

struct Job {
    seq: usize,
    input: usize,
    data: Data,
}

/// A chunk's bytes: the first `len` of a buffer read from a stream, or a
/// range of a mapped file; or journal entries.
enum Data {
    Read(Vec<u8>, usize),
    Mapped(Arc<memmap2::Mmap>, std::ops::Range<usize>),
    Entries(Vec<(UnixTime, Vec<u8>)>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Read(buf, len) => buf.get(..*len).unwrap_or_default(),
            Data::Mapped(m, r) => m.get(r.clone()).unwrap_or_default(),
            Data::Entries(_) => &[],
        }
    }
}

/// Hands finished chunks to the sink in sequence order, their session
/// lines counted in order first (the workers match them, in any order).
///
/// It sits behind a mutex. With several workers, a worker that has sent a
/// chunk's result delivers every result that is ready, unless another
/// worker is doing so: the sink's work (for `--jail`, the jail's counting)
/// runs on the threads that walk, one at a time, where on the reading
/// thread it would take a core from a worker, with a switch each time.
/// With one worker the reader has time to spare, and delivers between its
/// sends while the worker walks.
struct Collector<'s> {
    rx: Receiver<ChunkOut>,
    pending: BTreeMap<usize, ChunkOut>,
    next: usize,
    sink: &'s mut (dyn FnMut(ChunkOut) + Send),
    walk: &'s WalkConfig<'s>,
    /// The current input's sessions (each input is its own stream).
    sessions: Option<(usize, LineState)>,
}

impl Collector<'_> {
    fn take(&mut self, out: ChunkOut) {
        self.pending.insert(out.seq, out);
        while let Some(mut out) = self.pending.remove(&self.next) {
            self.next += 1;
            if !out.pending.is_empty() {
                if self.sessions.as_ref().is_none_or(|(i, _)| *i != out.input) {
                    self.sessions = Some((out.input, self.walk.filter.new_state()));
                }
                if let Some((_, state)) = self.sessions.as_mut() {
                    fold_sessions(self.walk, &mut out, state);
                }
            }
            (self.sink)(out);
        }
    }

    /// Delivers the finished chunks that are ready, without waiting.
    fn drain(&mut self) {
        while let Ok(out) = self.rx.try_recv() {
            self.take(out);
        }
    }

    /// Delivers everything, waiting for the workers to finish.
    fn finish(&mut self) {
        while let Ok(out) = self.rx.recv() {
            self.take(out);
        }
    }
}

/// Scans inputs `0..count` in order (`open` opens input `i`), giving each
/// chunk's result to `sink` in input order soon after it and all before it
/// are done (so the caller aggregates while the workers match). `sink`
/// runs on the worker threads (what is left at the end, on the calling
/// thread), one call at a time.
pub fn scan(
    cfg: &BulkConfig<'_>,
    count: usize,
    mut open: impl FnMut(usize) -> io::Result<Opened>,
    progress: &mut dyn Progress,
    sink: &mut (dyn FnMut(ChunkOut) + Send),
) -> io::Result<()> {
    // A filter whose lines are matched together (`maxlines`) carries state
    // from line to line: its chunks go through one worker, in order, as the
    // daemon reads a stream; so do sessions when line texts are kept. Other
    // session lines are matched on every worker and counted in order by
    // the collector.
    let f = cfg.walk.filter;
    let threads = if f.needs_one_worker() || (f.depends_on_earlier_lines() && cfg.walk.keep.any()) {
        1
    } else {
        cfg.threads.max(1)
    };
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
    let job_rx = Mutex::new(job_rx);
    let (res_tx, res_rx) = mpsc::channel::<ChunkOut>();
    let (buf_tx, buf_rx) = mpsc::channel::<Vec<u8>>();
    let collector = Mutex::new(Collector {
        rx: res_rx,
        pending: BTreeMap::new(),
        next: 0,
        sink,
        walk: &cfg.walk,
        sessions: None,
    });
    let workers_deliver = threads > 1;
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (job_rx, res_tx, buf_tx) = (&job_rx, res_tx.clone(), buf_tx.clone());
            let collector = workers_deliver.then_some(&collector);
            s.spawn(move || worker(cfg, job_rx, res_tx, buf_tx, collector));
        }
        drop(res_tx);
        drop(buf_tx);
        let mut reader = Reader {
            pool: Pool {
                rx: buf_rx,
                made: 0,
                max: threads * 2 + 3,
                size: cfg.chunk.max(4096),
            },
            tx: job_tx,
            seq: 0,
            deliver: (!workers_deliver).then_some(&collector),
        };
        let mut result = Ok(());
        for i in 0..count {
            progress.input_started(i);
            let done = open(i).and_then(|opened| match opened {
                Opened::Stream(mut r) => reader.read(&mut *r, i, progress),
                Opened::Mapped(m) => reader.map(Arc::new(m), i, progress),
                Opened::Entries(e) => reader.entries(e, i),
            });
            if let Err(e) = done {
                result = Err(e);
                break;
            }
        }
        drop(reader);
        // What the workers left: results sent while another worker was
        // delivering, and those still being walked.
        collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish();
        result
    })
}

struct Pool {
    rx: Receiver<Vec<u8>>,
    made: usize,
    max: usize,
    size: usize,
}

impl Pool {
    fn get(&mut self) -> Vec<u8> {
        if let Ok(b) = self.rx.try_recv() {
            return b;
        }
        if self.made < self.max {
            self.made += 1;
            return vec![0; self.size];
        }
        // Every buffer is out: wait for a worker to hand one back.
        self.rx.recv().unwrap_or_else(|_| vec![0; self.size])
    }
}

struct Reader<'c, 's> {
    pool: Pool,
    tx: SyncSender<Job>,
    seq: usize,
    /// The collector, when the reader delivers (one worker).
    deliver: Option<&'c Mutex<Collector<'s>>>,
}

impl Reader<'_, '_> {
    /// Queues a chunk for the workers, waiting while the queue is full;
    /// then delivers what is ready, if the reader delivers.
    fn send(&mut self, input: usize, data: Data) -> io::Result<()> {
        let job = Job {
            seq: self.seq,
            input,
            data,
        };
        self.seq += 1;
        self.tx
            .send(job)
            .map_err(|_| io::Error::other("dry-run worker stopped"))?;
        if let Some(c) = self.deliver {
            deliver(c);
        }
        Ok(())
    }

    /// Sends journal entries to the workers, a few thousand at a time.
    fn entries(&mut self, mut entries: Vec<(UnixTime, Vec<u8>)>, input: usize) -> io::Result<()> {
        while !entries.is_empty() {
            let rest = entries.split_off(entries.len().min(ENTRIES_PER_CHUNK));
            let chunk = std::mem::replace(&mut entries, rest);
            self.send(input, Data::Entries(chunk))?;
        }
        Ok(())
    }

    /// Reads one input to its end, sending whole-line chunks to the workers.
    /// A line over [`MAX_LINE`] is kept only as its first `MAX_LINE + 1`
    /// bytes (the walk skips and counts it), so no line grows a buffer
    /// beyond that.
    fn read(
        &mut self,
        r: &mut dyn Read,
        input: usize,
        progress: &mut dyn Progress,
    ) -> io::Result<()> {
        let mut buf = self.pool.get();
        let mut filled = 0;
        // Discarding the rest of an overlong line.
        let mut skipping = false;
        loop {
            if filled == buf.len() {
                match memchr::memrchr(b'\n', &buf[..filled]) {
                    Some(nl) => {
                        let mut next = self.pool.get();
                        let tail = filled - (nl + 1);
                        if next.len() < tail * 2 {
                            next.resize(tail * 2, 0);
                        }
                        next[..tail].copy_from_slice(&buf[nl + 1..filled]);
                        self.send(input, Data::Read(buf, nl + 1))?;
                        buf = next;
                        filled = tail;
                    }
                    // One overlong line: keep its stub, drop the rest.
                    None if filled > MAX_LINE => {
                        skipping = true;
                        filled = MAX_LINE + 1;
                        if buf.len() < 2 * filled {
                            buf.resize(2 * filled, 0);
                        }
                    }
                    // One line longer than the buffer: grow it.
                    None => buf.resize(buf.len() * 2, 0),
                }
            }
            let mut n = loop {
                match r.read(&mut buf[filled..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                if filled > 0 {
                    self.send(input, Data::Read(buf, filled))?;
                }
                return Ok(());
            }
            if skipping {
                match memchr::memchr(b'\n', &buf[filled..filled + n]) {
                    None => {
                        progress.advanced();
                        continue;
                    }
                    Some(k) => {
                        buf.copy_within(filled + k..filled + n, filled);
                        n -= k;
                        skipping = false;
                    }
                }
            }
            filled += n;
            progress.advanced();
        }
    }

    /// Sends a mapped input to the workers in whole-line chunks of about
    /// the chunk size (a longer line makes a longer chunk).
    fn map(
        &mut self,
        m: Arc<memmap2::Mmap>,
        input: usize,
        progress: &mut dyn Progress,
    ) -> io::Result<()> {
        let len = m.len();
        let mut start = 0;
        while start < len {
            let target = (start + self.pool.size).min(len);
            let end = if target == len {
                len
            } else {
                match memchr::memrchr(b'\n', &m[start..target]) {
                    Some(nl) => start + nl + 1,
                    None => memchr::memchr(b'\n', &m[target..]).map_or(len, |nl| target + nl + 1),
                }
            };
            self.send(input, Data::Mapped(m.clone(), start..end))?;
            progress.mapped((end - start) as u64);
            start = end;
        }
        Ok(())
    }
}

fn worker(
    cfg: &BulkConfig<'_>,
    jobs: &Mutex<Receiver<Job>>,
    res: Sender<ChunkOut>,
    bufs: Sender<Vec<u8>>,
    collector: Option<&Mutex<Collector<'_>>>,
) {
    let mut state = cfg.walk.filter.new_state_with(cfg.date_cache);
    let mut state_input = None;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // Each input is its own stream: nothing (a session, a cached date
        // format) carries over from the one before.
        if state_input
            .replace(job.input)
            .is_some_and(|i| i != job.input)
        {
            state = cfg.walk.filter.new_state_with(cfg.date_cache);
        }
        let mut out = ChunkOut {
            seq: job.seq,
            input: job.input,
            ..Default::default()
        };
        match &job.data {
            Data::Entries(entries) => walk_entries(&cfg.walk, entries, &mut out, &mut state),
            data => {
                let bytes = data.bytes();
                out.bytes = bytes.len() as u64;
                walk(&cfg.walk, bytes, &mut out, &mut state);
            }
        }
        if res.send(out).is_err() {
            return;
        }
        // The buffer first: the reader may be waiting for one.
        if let Data::Read(buf, _) = job.data {
            let _ = bufs.send(buf);
        }
        if let Some(c) = collector {
            if !deliver(c) {
                return;
            }
        }
    }
}

/// Delivers what is ready, unless another thread is at it: that one drains
/// the channel, and what it misses the next delivery takes (the reader's
/// final drain at the latest). `false`: a sink panicked (the scope
/// re-raises it).
fn deliver(collector: &Mutex<Collector<'_>>) -> bool {
    match collector.try_lock() {
        Ok(mut c) => {
            c.drain();
            true
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Poisoned(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::filter::{Filter, FilterSpec};
    use crate::scan::Keep;

    struct Quiet;

    impl Progress for Quiet {
        fn input_started(&mut self, _: usize) {}
        fn advanced(&mut self) {}
        fn mapped(&mut self, _: u64) {}
    }

    /// What the sink got of a scan of three inputs in 4 KiB chunks with
    /// `threads` workers: per call, the chunk's (seq, input, lines,
    /// matched), and how many calls ran on other threads than the caller's.
    /// Fails if the sink is ever called on two threads at once.
    fn deliveries(threads: usize) -> (Vec<(usize, usize, u64, u64)>, usize) {
        let filter = Filter::compile(FilterSpec {
            name: "t".into(),
            failregex: vec![r"fail <HOST>$".into()],
            ..Default::default()
        })
        .unwrap();
        let cfg = BulkConfig {
            walk: WalkConfig {
                filter: &filter,
                prefilter: None,
                now: 0,
                keep: Keep::default(),
                sparse_dates: false,
            },
            threads,
            chunk: 4096,
            date_cache: true,
        };
        let text: String = (0..20_000)
            .map(|i| format!("2024-03-10 10:00:00 fail 192.0.2.{}\n", i % 250))
            .collect();
        let busy = AtomicBool::new(false);
        let reader = std::thread::current().id();
        let mut elsewhere = 0;
        let mut seen = Vec::new();
        scan(
            &cfg,
            3,
            |_| Ok(Opened::Stream(Box::new(io::Cursor::new(text.clone())))),
            &mut Quiet,
            &mut |c: ChunkOut| {
                assert!(!busy.swap(true, Ordering::SeqCst), "two sink calls at once");
                // A little time in the sink, for the workers to finish
                // other chunks meanwhile.
                std::thread::yield_now();
                if std::thread::current().id() != reader {
                    elsewhere += 1;
                }
                seen.push((c.seq, c.input, c.lines, c.matched));
                busy.store(false, Ordering::SeqCst);
            },
        )
        .unwrap();
        (seen, elsewhere)
    }

    /// One worker or four: the sink gets every chunk once and in input
    /// order, whichever worker finishes first, one call at a time.
    #[test]
    fn the_sink_gets_every_chunk_in_order_one_call_at_a_time() {
        for threads in [1, 4] {
            let (seen, _) = deliveries(threads);
            assert!(seen.len() > 100, "{threads} workers: {} chunks", seen.len());
            for (i, s) in seen.iter().enumerate() {
                assert_eq!(s.0, i, "{threads} workers: chunk {i} out of order");
            }
            assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1));
            for input in 0..3 {
                let (lines, matched) = seen
                    .iter()
                    .filter(|s| s.1 == input)
                    .fold((0, 0), |(l, m), s| (l + s.2, m + s.3));
                assert_eq!(
                    (lines, matched),
                    (20_000, 20_000),
                    "{threads} workers, input {input}"
                );
            }
        }
    }

    /// Several workers deliver as they go (results do not pile up for the
    /// reader's final drain); one worker leaves it to the reader, which has
    /// time to spare between its sends.
    #[test]
    fn who_delivers() {
        let (seen, elsewhere) = deliveries(4);
        assert!(
            elsewhere > seen.len() / 2,
            "four workers delivered {elsewhere} of {} chunks",
            seen.len()
        );
        let (seen, elsewhere) = deliveries(1);
        assert_eq!(
            elsewhere,
            0,
            "one worker delivered {elsewhere} of {} chunks",
            seen.len()
        );
    }
}
