//! One chunk of whole lines (or journal entries) through one filter: the
//! prefilter rules lines out, the stream's `LineState` dates and examines the
//! rest, and the outcome of every line that matters is recorded.
//!
//! Owns the per-line walk and the overlong-line policy. It must not count
//! failures per address or decide bans (that is `jail::engine`), and must
//! not match lines any other way than through `Filter`: the prefilter only
//! skips lines that cannot match.

use crate::filter::date::{DateFormat, DateMatch};
use crate::filter::{LineState, Outcome, Prefilter, Spans};
use crate::UnixTime;

use super::newlines::Newlines;
use super::{ChunkOut, Kept, Kind, Rec, Span, WalkConfig, MAX_LINE};

/// Walks every line of `data` (whole lines; the last may lack its `\n`)
/// into `out`, with the stream's `state`.
pub fn walk(cfg: &WalkConfig<'_>, data: &[u8], out: &mut ChunkOut, state: &mut LineState) {
    let n = cfg.filter.spec.failregex.len();
    if out.fail_hits.len() != n {
        out.fail_hits = vec![0; n];
        out.ignore_hits = vec![0; cfg.filter.spec.ignoreregex.len()];
    }
    let mut window = Vec::new();
    match cfg.prefilter {
        Some(p) if cfg.sparse_dates && !cfg.keep.missed => {
            walk_sparse(cfg, p, data, out, state, &mut window)
        }
        _ => walk_all(cfg, data, out, state, &mut window),
    }
}

/// Walks entries that carry their own time (the journal's): no date is looked
/// for in their text, and the prefilter only rules out whole texts.
pub fn walk_entries(
    cfg: &WalkConfig<'_>,
    entries: &[(UnixTime, Vec<u8>)],
    out: &mut ChunkOut,
    state: &mut LineState,
) {
    out.fail_hits = vec![0; cfg.filter.spec.failregex.len()];
    out.ignore_hits = vec![0; cfg.filter.spec.ignoreregex.len()];
    for (idx, (ts, text)) in entries.iter().enumerate() {
        let idx = idx as u32;
        out.lines += 1;
        out.bytes += text.len() as u64;
        if text.len() > MAX_LINE {
            out.skipped += 1;
            continue;
        }
        out.checked += 1;
        add_format(&mut out.formats, DateFormat::Journal, 1);
        out.first_ts.get_or_insert(*ts);
        out.last_ts = Some(*ts);
        if cfg.prefilter.is_some_and(|p| p.find(text, 0).is_none()) {
            missed(cfg, out, idx, text, true, Some(*ts));
            continue;
        }
        out.examined += 1;
        let (outcome, spans) = cfg.filter.match_text_in(text, state);
        record(cfg, out, idx, text, true, Some(*ts), outcome, spans);
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
    cfg: &WalkConfig<'_>,
    out: &mut ChunkOut,
    state: &mut LineState,
    idx: u32,
    raw: &[u8],
    line: &[u8],
    date: Option<DateMatch>,
    time: Option<UnixTime>,
) {
    out.examined += 1;
    let (outcome, spans) = cfg.filter.examine_dated(raw, date, state);
    record(cfg, out, idx, line, date.is_some(), time, outcome, spans);
}

/// Records one examined line's outcome.
#[allow(clippy::too_many_arguments)]
#[inline]
fn record(
    cfg: &WalkConfig<'_>,
    out: &mut ChunkOut,
    idx: u32,
    line: &[u8],
    dated: bool,
    time: Option<UnixTime>,
    outcome: Outcome<'_>,
    spans: Spans,
) {
    if !dated && !matches!(outcome, Outcome::Missed) {
        out.undated_matches += 1;
    }
    let (kind, regex, host, prefix, user) = match outcome {
        Outcome::Missed => (Kind::Missed, 0, None, None, None),
        Outcome::Ignored { regex } => (Kind::Ignored, regex, None, None, None),
        Outcome::BadHost { regex } => (Kind::BadHost, regex, None, None, None),
        Outcome::Failure {
            regex,
            host,
            prefix,
            user,
        } => (Kind::Matched, regex, Some(host), prefix, user),
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
            dated,
            regex: regex as u32,
            time,
            host,
            prefix,
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

/// A line ruled out by the prefilter: missed, kept if `--show` wants it.
fn missed(
    cfg: &WalkConfig<'_>,
    out: &mut ChunkOut,
    idx: u32,
    line: &[u8],
    dated: bool,
    time: Option<UnixTime>,
) {
    out.missed += 1;
    if cfg.keep.wants(Kind::Missed, &out.kept_count) {
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
            dated,
            regex: 0,
            time,
            host: None,
            prefix: None,
            user: None,
            kept,
        });
    }
}

/// Lines in `data` (the last one may lack its `\n`), and how many of them
/// are over [`MAX_LINE`].
fn count_lines(data: &[u8]) -> (u64, u64) {
    let (mut n, mut long, mut start) = (0u64, 0u64, 0usize);
    for nl in memchr::memchr_iter(b'\n', data) {
        n += 1;
        long += u64::from(nl - start > MAX_LINE);
        start = nl + 1;
    }
    if start < data.len() {
        n += 1;
        long += u64::from(data.len() - start > MAX_LINE);
    }
    (n, long)
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
fn walk_sparse(
    cfg: &WalkConfig<'_>,
    p: &Prefilter,
    data: &[u8],
    out: &mut ChunkOut,
    scratch: &mut LineState,
    window: &mut Vec<u8>,
) {
    let filter = cfg.filter;
    // Overlong lines have no date: the daemon never sees them.
    let detect = |scratch: &mut LineState, start: usize, end: usize| {
        (end - start <= MAX_LINE)
            .then(|| filter.date(&data[start..end], cfg.now, scratch))
            .flatten()
    };
    (out.lines, out.skipped) = count_lines(data);
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
        if end - start > MAX_LINE {
            idx += 1;
            pos = end + 1;
            continue;
        }
        let raw = &data[start..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let date = filter.date(raw, cfg.now, scratch);
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
    out.missed = out.lines - out.skipped - out.matched - out.ignored - out.bad_host;
}

/// Dates every line of `data` and examines those the prefilter lets through.
fn walk_all(
    cfg: &WalkConfig<'_>,
    data: &[u8],
    out: &mut ChunkOut,
    state: &mut LineState,
    window: &mut Vec<u8>,
) {
    let filter = cfg.filter;
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
    let mut newlines = Newlines::new(data);
    while pos < data.len() {
        let end = newlines.next().unwrap_or(data.len());
        if end - pos > MAX_LINE {
            out.skipped += 1;
            if cand < end {
                cand = find(end + 1);
            }
            idx = idx.wrapping_add(1);
            pos = end + 1;
            continue;
        }
        let raw = &data[pos..end];
        // What the filter sees (it drops one `\r`); the filter is given `raw`.
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let date = filter.date(raw, cfg.now, state);
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
            examine(cfg, out, state, idx, raw, line, date, time);
        } else {
            missed(cfg, out, idx, line, date.is_some(), time);
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
