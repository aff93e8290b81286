//! The dry-run scanner: maps plain files and reads other inputs in large
//! buffers, cuts them into chunks at line boundaries, matches chunks on worker threads with the filter's own
//! code (`Filter::detect_date` + `Filter::examine_with_date`), and hands the
//! results back in input order: per-chunk counters plus compact records of
//! the interesting lines only.
//!
//! Owns reading and parallel matching. It must not count failures per address,
//! decide bans or print anything (that is `report`), and must not match lines
//! any other way than through `Filter`: the prefilter only skips lines that
//! cannot match, the date shortcut only skips re-detecting a date it can
//! vouch for.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use crate::filter::date::{DateFormat, DateMatch};
use crate::filter::{Filter, Outcome, Scratch};
use crate::UnixTime;

use super::dates::Dates;
use super::input::Opened;
use super::newlines::Newlines;
use super::prefilter::Prefilter;

/// Default chunk size: big enough to amortise hand-offs, small enough to stay
/// in cache between the literal scan and the line walk.
pub const CHUNK: usize = 1 << 20;

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Matched,
    Ignored,
    BadHost,
    Missed,
}

/// Which line texts to keep (for `--show`), and how many per kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    pub matched: bool,
    pub ignored: bool,
    pub bad_host: bool,
    pub missed: bool,
    /// Per kind and chunk; `None`: all.
    pub max: Option<usize>,
}

impl Keep {
    fn wants(&self, k: Kind, kept: &[u64; 4]) -> bool {
        let on = match k {
            Kind::Matched => self.matched,
            Kind::Ignored => self.ignored,
            Kind::BadHost => self.bad_host,
            Kind::Missed => self.missed,
        };
        on && self.max.is_none_or(|m| (kept[k as usize] as usize) < m)
    }
}

/// Settings of one scan.
pub struct ScanConfig<'a> {
    pub filter: &'a Filter,
    pub prefilter: Option<&'a Prefilter>,
    /// Anchors year inference for dates without a year.
    pub now: UnixTime,
    pub keep: Keep,
    pub threads: usize,
    pub chunk: usize,
    /// Reuse the previous line's date when the bytes around it are the same.
    pub date_cache: bool,
    /// With a `datepattern`, date only the lines that may match (see
    /// [`scan_chunk_sparse`]).
    pub sparse_dates: bool,
}

/// A byte range in a chunk's arena: (start, length).
pub type Span = (u32, u32);

/// One line that matters beyond the counters: a failure, an ignored or
/// bad-host line, or a line kept for `--show`.
#[derive(Debug, Clone)]
pub struct Rec {
    /// 0-based line index within the chunk.
    pub line: u32,
    pub kind: Kind,
    /// Whether a time was detected on the line itself.
    pub dated: bool,
    /// Failregex (matched, bad host) or ignoreregex (ignored) index.
    pub regex: u32,
    /// The line's time, or for a line without one the time of the last dated
    /// line before it in the chunk; `None`: neither (the report takes it from
    /// earlier chunks).
    pub time: Option<UnixTime>,
    pub host: Option<IpAddr>,
    /// The captured user, in the arena.
    pub user: Option<Span>,
    /// Index into `ChunkOut::kept` for a line kept for `--show`.
    pub kept: Option<u32>,
}

/// A line kept for `--show`: its text and where host and user stand in it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub text: Span,
    pub host_at: Option<Span>,
    pub user_at: Option<Span>,
}

/// Counters and records of one chunk.
#[derive(Debug, Default)]
pub struct ChunkOut {
    pub seq: usize,
    pub input: usize,
    pub bytes: u64,
    pub lines: u64,
    pub undated: u64,
    pub formats: Vec<(DateFormat, u64)>,
    pub matched: u64,
    pub ignored: u64,
    pub bad_host: u64,
    pub missed: u64,
    /// Lines handed to the filter (the rest were ruled out by the prefilter).
    pub examined: u64,
    /// Lines whose date was looked for (`undated` and `formats` count these).
    pub checked: u64,
    pub fail_hits: Vec<u64>,
    pub ignore_hits: Vec<u64>,
    /// Time of the chunk's first and last dated line.
    pub first_ts: Option<UnixTime>,
    pub last_ts: Option<UnixTime>,
    /// Lines kept per kind (indexed by `Kind as usize`).
    pub kept_count: [u64; 4],
    pub recs: Vec<Rec>,
    pub kept: Vec<Kept>,
    pub arena: Vec<u8>,
}

impl ChunkOut {
    pub fn arena(&self, s: Span) -> &[u8] {
        self.arena
            .get(s.0 as usize..(s.0 as usize + s.1 as usize))
            .unwrap_or_default()
    }
}

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
/// range of a mapped file.
enum Data {
    Read(Vec<u8>, usize),
    Mapped(Arc<memmap2::Mmap>, std::ops::Range<usize>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Read(buf, len) => buf.get(..*len).unwrap_or_default(),
            Data::Mapped(m, r) => m.get(r.clone()).unwrap_or_default(),
        }
    }
}

/// Hands finished chunks to the sink in sequence order.
struct Collector<'s> {
    rx: Receiver<ChunkOut>,
    pending: BTreeMap<usize, ChunkOut>,
    next: usize,
    sink: &'s mut dyn FnMut(ChunkOut),
}

impl Collector<'_> {
    fn take(&mut self, out: ChunkOut) {
        self.pending.insert(out.seq, out);
        while let Some(out) = self.pending.remove(&self.next) {
            self.next += 1;
            (self.sink)(out);
        }
    }

    /// Delivers what is ready without waiting.
    fn poll(&mut self) {
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
/// chunk's result to `sink` in input order as soon as it and all before it
/// are done (so the caller aggregates while the workers match).
pub fn scan(
    cfg: &ScanConfig<'_>,
    count: usize,
    mut open: impl FnMut(usize) -> io::Result<Opened>,
    progress: &mut dyn Progress,
    sink: &mut dyn FnMut(ChunkOut),
) -> io::Result<()> {
    let threads = cfg.threads.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
    let job_rx = Mutex::new(job_rx);
    let (res_tx, res_rx) = mpsc::channel::<ChunkOut>();
    let (buf_tx, buf_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (job_rx, res_tx, buf_tx) = (&job_rx, res_tx.clone(), buf_tx.clone());
            s.spawn(move || worker(cfg, job_rx, res_tx, buf_tx));
        }
        drop(res_tx);
        drop(buf_tx);
        let mut collector = Collector {
            rx: res_rx,
            pending: BTreeMap::new(),
            next: 0,
            sink,
        };
        let mut reader = Reader {
            pool: Pool {
                rx: buf_rx,
                made: 0,
                max: threads * 2 + 3,
                size: cfg.chunk.max(4096),
            },
            tx: job_tx,
            seq: 0,
        };
        let mut result = Ok(());
        for i in 0..count {
            progress.input_started(i);
            let done = open(i).and_then(|opened| match opened {
                Opened::Stream(mut r) => reader.read(&mut *r, i, progress, &mut collector),
                Opened::Mapped(m) => reader.map(Arc::new(m), i, progress, &mut collector),
            });
            if let Err(e) = done {
                result = Err(e);
                break;
            }
        }
        drop(reader);
        collector.finish();
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

struct Reader {
    pool: Pool,
    tx: SyncSender<Job>,
    seq: usize,
}

impl Reader {
    fn send(&mut self, input: usize, data: Data) -> io::Result<()> {
        let job = Job {
            seq: self.seq,
            input,
            data,
        };
        self.seq += 1;
        self.tx
            .send(job)
            .map_err(|_| io::Error::other("dry-run worker stopped"))
    }

    /// Reads one input to its end, sending whole-line chunks to the workers.
    fn read(
        &mut self,
        r: &mut dyn Read,
        input: usize,
        progress: &mut dyn Progress,
        collector: &mut Collector<'_>,
    ) -> io::Result<()> {
        let mut buf = self.pool.get();
        let mut filled = 0;
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
                        collector.poll();
                        buf = next;
                        filled = tail;
                    }
                    // One line longer than the buffer: grow it.
                    None => buf.resize(buf.len() * 2, 0),
                }
            }
            let n = loop {
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
        collector: &mut Collector<'_>,
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
            collector.poll();
            start = end;
        }
        Ok(())
    }
}

fn worker(
    cfg: &ScanConfig<'_>,
    jobs: &Mutex<Receiver<Job>>,
    res: Sender<ChunkOut>,
    bufs: Sender<Vec<u8>>,
) {
    let mut scratch = Scratch::default();
    let mut window = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let data = job.data.bytes();
        let mut out = ChunkOut {
            seq: job.seq,
            input: job.input,
            bytes: data.len() as u64,
            ..Default::default()
        };
        out.fail_hits = vec![0; cfg.filter.spec.failregex.len()];
        out.ignore_hits = vec![0; cfg.filter.spec.ignoreregex.len()];
        match cfg.prefilter {
            Some(p)
                if cfg.sparse_dates
                    && cfg.filter.spec.datepattern.is_some()
                    && !cfg.keep.missed =>
            {
                scan_chunk_sparse(cfg, p, data, &mut out, &mut scratch, &mut window)
            }
            _ => scan_chunk(cfg, data, &mut out, &mut scratch, &mut window),
        }
        if res.send(out).is_err() {
            return;
        }
        if let Data::Read(buf, _) = job.data {
            let _ = bufs.send(buf);
        }
    }
}

fn span(arena: &mut Vec<u8>, bytes: &[u8]) -> Span {
    let at = arena.len() as u32;
    arena.extend_from_slice(bytes);
    (at, bytes.len() as u32)
}

fn to_span(r: std::ops::Range<usize>) -> Span {
    (r.start as u32, r.end.saturating_sub(r.start) as u32)
}

/// Counts `n` lines in format `f` (a chunk sees one or two formats).
fn add_format(formats: &mut Vec<(DateFormat, u64)>, f: DateFormat, n: u64) {
    match formats.iter_mut().find(|(g, _)| *g == f) {
        Some((_, m)) => *m += n,
        None => formats.push((f, n)),
    }
}

/// Hands one line the prefilter let through to the filter and records it.
#[allow(clippy::too_many_arguments)]
#[inline]
fn examine(
    cfg: &ScanConfig<'_>,
    out: &mut ChunkOut,
    scratch: &mut Scratch,
    idx: u32,
    raw: &[u8],
    line: &[u8],
    date: Option<DateMatch>,
    time: Option<UnixTime>,
) {
    out.examined += 1;
    let (outcome, spans) = cfg.filter.examine_with_date_reuse(raw, date, scratch);
    let (kind, regex, host, user) = match outcome {
        Outcome::Missed => (Kind::Missed, 0, None, None),
        Outcome::Ignored { regex } => (Kind::Ignored, regex, None, None),
        Outcome::BadHost { regex } => (Kind::BadHost, regex, None, None),
        Outcome::Failure { regex, host, user } => (Kind::Matched, regex, Some(host), user),
    };
    let hits = match kind {
        Kind::Matched => {
            out.matched += 1;
            out.fail_hits.get_mut(regex)
        }
        Kind::BadHost => {
            out.bad_host += 1;
            out.fail_hits.get_mut(regex)
        }
        Kind::Ignored => {
            out.ignored += 1;
            out.ignore_hits.get_mut(regex)
        }
        Kind::Missed => {
            out.missed += 1;
            None
        }
    };
    if let Some(h) = hits {
        *h += 1;
    }
    let keep_it = cfg.keep.wants(kind, &out.kept_count);
    if kind != Kind::Missed || keep_it {
        let user = user.map(|u| span(&mut out.arena, u));
        let kept = keep_it.then(|| {
            out.kept_count[kind as usize] += 1;
            let text = span(&mut out.arena, line);
            out.kept.push(Kept {
                text,
                host_at: spans.host.map(to_span),
                user_at: spans.user.map(to_span),
            });
            (out.kept.len() - 1) as u32
        });
        out.recs.push(Rec {
            line: idx,
            kind,
            dated: date.is_some(),
            regex: regex as u32,
            time,
            host,
            user,
            kept,
        });
    }
}

/// Counts a line's date in the chunk's statistics.
fn count_date(out: &mut ChunkOut, date: Option<DateMatch>) {
    out.checked += 1;
    match date {
        Some(d) => add_format(&mut out.formats, d.format, 1),
        None => out.undated += 1,
    }
}

/// Lines in `data` (the last one may lack its `\n`).
fn count_lines(data: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', data).count() as u64;
    n + u64::from(data.last().is_some_and(|&b| b != b'\n'))
}

/// Line `[start, end)` of `data` that holds offset `at`.
fn line_at(data: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
    (start, end)
}

/// The sparse walk, for filters with a `datepattern` (whose date regex costs
/// more per line than everything else): only lines holding half of a
/// prefilter literal are looked at (dated, then matched when they hold a
/// literal or one appears where the date is cut out); the others cannot
/// match, and their dates are not looked for. Times stay exact: the chunk's
/// first and last dated lines are found from its ends, and an undated line
/// takes the time of the dated line before it, found by walking back.
fn scan_chunk_sparse(
    cfg: &ScanConfig<'_>,
    p: &Prefilter,
    data: &[u8],
    out: &mut ChunkOut,
    scratch: &mut Scratch,
    window: &mut Vec<u8>,
) {
    let filter = cfg.filter;
    let detect = |scratch: &mut Scratch, start: usize, end: usize| {
        filter.detect_date(&data[start..end], cfg.now, scratch)
    };
    out.lines = count_lines(data);
    // The chunk's first and last dated lines (not counted as checked).
    let mut at = 0;
    while at < data.len() && out.first_ts.is_none() {
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i);
        out.first_ts = detect(scratch, at, end).map(|d| d.ts);
        at = end + 1;
    }
    let mut end = data.len();
    if data.last() == Some(&b'\n') {
        end -= 1;
    }
    while out.first_ts.is_some() && out.last_ts.is_none() {
        let start = memchr::memrchr(b'\n', &data[..end]).map_or(0, |i| i + 1);
        out.last_ts = detect(scratch, start, end).map(|d| d.ts);
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    // Where the time is known: (line start, the time of that line or inherited).
    let mut known: (usize, Option<UnixTime>) = (0, None);
    let mut pos = 0;
    let mut idx: u64 = 0;
    let mut cursor = p.half_cursor();
    while pos < data.len() {
        let Some(h) = p.find_half(&mut cursor, data, pos) else {
            break;
        };
        let (start, end) = line_at(data, h);
        idx += memchr::memchr_iter(b'\n', &data[pos..start]).count() as u64;
        let raw = &data[start..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let date = filter.detect_date(raw, cfg.now, scratch);
        count_date(out, date);
        let candidate = p.find(data, start).is_some_and(|c| c < end)
            || date.is_some_and(|d| d.start > 0 && p.spans_cut(line, d.start, d.end, window));
        if candidate {
            let time = match date {
                Some(d) => Some(d.ts),
                None => {
                    // The previous dated line, back to where the time is known.
                    let mut t = None;
                    let mut e = start;
                    while e > known.0 {
                        let s = memchr::memrchr(b'\n', &data[..e - 1]).map_or(0, |i| i + 1);
                        if let Some(d) = detect(scratch, s, e - 1) {
                            t = Some(d.ts);
                            break;
                        }
                        e = s;
                    }
                    t.or(if e <= known.0 { known.1 } else { None })
                }
            };
            known = (start, time);
            examine(cfg, out, scratch, idx as u32, raw, line, date, time);
        } else if let Some(d) = date {
            known = (start, Some(d.ts));
        }
        idx += 1;
        pos = end + 1;
    }
    out.missed = out.lines - out.matched - out.ignored - out.bad_host;
}

/// Matches every line of `data` (whole lines; the last may lack its `\n`).
pub fn scan_chunk(
    cfg: &ScanConfig<'_>,
    data: &[u8],
    out: &mut ChunkOut,
    scratch: &mut Scratch,
    window: &mut Vec<u8>,
) {
    let filter = cfg.filter;
    let keep = cfg.keep;
    let find = |from: usize| -> usize {
        match cfg.prefilter {
            Some(p) if from < data.len() => p.find(data, from).unwrap_or(usize::MAX),
            _ => usize::MAX,
        }
    };
    // Next literal occurrence: the lines before it cannot match.
    let mut cand = find(0);
    let mut pos = 0;
    let mut idx: u32 = 0;
    let mut last_ts: Option<UnixTime> = None;
    let mut last_format: Option<DateFormat> = None;
    let mut run = 0u64;
    let mut dates = Dates::new(filter, cfg.now, cfg.date_cache);
    let mut newlines = Newlines::new(data);
    while pos < data.len() {
        let end = newlines.next().unwrap_or(data.len());
        let raw = &data[pos..end];
        // What the filter sees (it drops one `\r`); the filter is given `raw`.
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let date = dates.detect(raw, scratch);
        match date {
            Some(d) => {
                last_ts = Some(d.ts);
                if out.first_ts.is_none() {
                    out.first_ts = Some(d.ts);
                }
                if last_format == Some(d.format) {
                    run += 1;
                } else {
                    if let Some(f) = last_format {
                        add_format(&mut out.formats, f, run);
                    }
                    last_format = Some(d.format);
                    run = 1;
                }
            }
            None => out.undated += 1,
        }
        out.checked += 1;
        let candidate = match cfg.prefilter {
            None => true,
            Some(_) if cand < end => {
                cand = find(end + 1);
                true
            }
            // A literal may span the place the date is cut from.
            Some(p) => match date {
                Some(d) if d.start > 0 => p.spans_cut(line, d.start, d.end, window),
                _ => false,
            },
        };
        let time = date.map(|d| d.ts).or(last_ts);
        if candidate {
            examine(cfg, out, scratch, idx, raw, line, date, time);
        } else {
            out.missed += 1;
            if keep.wants(Kind::Missed, &out.kept_count) {
                out.kept_count[Kind::Missed as usize] += 1;
                let text = span(&mut out.arena, line);
                out.kept.push(Kept {
                    text,
                    host_at: None,
                    user_at: None,
                });
                let kept = Some((out.kept.len() - 1) as u32);
                out.recs.push(Rec {
                    line: idx,
                    kind: Kind::Missed,
                    dated: date.is_some(),
                    regex: 0,
                    time,
                    host: None,
                    user: None,
                    kept,
                });
            }
        }
        idx = idx.wrapping_add(1);
        pos = end + 1;
    }
    if let Some(f) = last_format {
        add_format(&mut out.formats, f, run);
    }
    out.lines = u64::from(idx);
    out.last_ts = last_ts;
}
