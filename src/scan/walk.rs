//! One chunk of whole lines (or journal entries) through one filter: the
//! prefilter rules lines out, the stream's `LineState` dates and examines the
//! rest, and the outcome of every line that matters is recorded.
//!
//! Owns the per-line walk and the overlong-line policy. It must not count
//! failures per address or decide bans (that is `jail::engine`), and must
//! not match lines any other way than through `Filter`: the prefilter only
//! skips lines that cannot match.

use crate::filter::date::{DateFormat, DateMatch};
use crate::filter::{Examined, LineState, Outcome, Prefilter, SessionLine, Spans};
use crate::UnixTime;

use super::newlines::{count_lines, count_long, Newlines};
use super::{ChunkOut, Kept, Kind, Pending, Rec, Span, WalkConfig, MAX_LINE};

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
        if defers(cfg) {
            match cfg.filter.match_entry_deferred(text, Some(*ts), state) {
                (Examined::Done(o), spans) => {
                    record(cfg, out, idx, text, true, Some(*ts), o, spans)
                }
                (Examined::Session(s), spans) => pend(out, idx, true, Some(*ts), s, spans),
            }
            continue;
        }
        let (outcome, spans) = cfg.filter.match_text_in(text, Some(*ts), state);
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
    if defers(cfg) {
        match cfg.filter.examine_deferred(raw, date, state) {
            (Examined::Done(o), spans) => {
                record(cfg, out, idx, line, date.is_some(), time, o, spans)
            }
            (Examined::Session(s), spans) => pend(out, idx, date.is_some(), time, s, spans),
        }
        return;
    }
    let (outcome, spans) = cfg.filter.examine_dated(raw, date, state);
    record(cfg, out, idx, line, date.is_some(), time, outcome, spans);
}

/// Whether session lines wait for [`fold_sessions`]: so the matching needs
/// no order and runs on any worker. Not when line texts are kept (`--show`
/// keeps them per chunk in line order as they are counted).
fn defers(cfg: &WalkConfig<'_>) -> bool {
    cfg.filter.defers_sessions() && !cfg.keep.any()
}

/// Sets a session line aside for [`fold_sessions`].
fn pend(
    out: &mut ChunkOut,
    idx: u32,
    dated: bool,
    time: Option<UnixTime>,
    s: SessionLine<'_>,
    spans: Spans,
) {
    let id = span(&mut out.pending_arena, s.id);
    let user = s.user.map(|u| span(&mut out.pending_arena, u));
    out.pending.push(Pending {
        at: out.recs.len(),
        line: idx,
        dated,
        time,
        m: s.m,
        id,
        user,
        spans,
    });
}

/// Counts a walked chunk's session lines in their sessions (`state`: the
/// stream's, chunks of a stream in order), as records and counters in line
/// order, as if they had been counted during the walk. Every walked chunk
/// goes through it before it is counted (the daemon's engine, dry-run's
/// in-order collector).
pub fn fold_sessions(cfg: &WalkConfig<'_>, out: &mut ChunkOut, state: &mut LineState) {
    if out.pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut out.pending);
    let bytes = std::mem::take(&mut out.pending_arena);
    let mut earlier = std::mem::take(&mut out.recs).into_iter();
    let mut moved = 0;
    for p in pending {
        while moved < p.at {
            match earlier.next() {
                Some(r) => out.recs.push(r),
                None => break,
            }
            moved += 1;
        }
        let at = |s: Span| {
            bytes
                .get(s.0 as usize..s.0 as usize + s.1 as usize)
                .unwrap_or_default()
        };
        let line = SessionLine {
            id: at(p.id),
            m: p.m,
            user: p.user.map(at),
        };
        let outcome = cfg.filter.count_session(state, line, p.time);
        record(cfg, out, p.line, b"", p.dated, p.time, outcome, p.spans);
    }
    out.recs.extend(earlier);
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
    out.skipped = count_long(data);
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
        // Searched in the line only: past it the search would run on to
        // the next literal.
        let candidate = p.find(&data[..end], start).is_some()
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
    out.lines = idx + count_lines(&data[pos.min(data.len())..]);
    // Session lines waiting for their fold count there.
    out.missed = out.lines
        - out.skipped
        - out.matched
        - out.ignored
        - out.bad_host
        - out.pending.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Dialect, Filter, FilterSpec};
    use crate::scan::Keep;

    fn sessions_filter() -> Filter {
        Filter::compile(FilterSpec {
            name: "s".into(),
            prefregex: Some(r"^app\[<F-MLFID>\d+</F-MLFID>\]: <F-CONTENT>.+</F-CONTENT>$".into()),
            failregex: vec![
                r"^<F-NOFAIL>connect</F-NOFAIL> from <HOST>$".into(),
                r"^auth failed for <F-USER>\S+</F-USER>$".into(),
                r"^bad from <HOST>$".into(),
            ],
            dialect: Dialect::Fail2ban,
            ..Default::default()
        })
        .unwrap()
    }

    const LINES: &[u8] = b"app[1]: connect from 192.0.2.1\n\
        app[1]: auth failed for root\n\
        app[2]: bad from host.example\n\
        app[3]: auth failed for x\n\
        app[4]: connect from 192.0.2.4\n\
        app[4]: auth failed for admin\n\
        noise\n";

    /// A record as (line, kind, host, user).
    type Summary = (u32, Kind, Option<String>, Option<Vec<u8>>);

    fn summary(out: &ChunkOut) -> Vec<Summary> {
        out.recs
            .iter()
            .map(|r| {
                let user = r.user.map(|u| out.arena(u).to_vec());
                (r.line, r.kind, r.host.map(|h| h.to_string()), user)
            })
            .collect()
    }

    #[test]
    fn session_lines_wait_for_the_fold_and_land_in_line_order() {
        let f = sessions_filter();
        let mut cfg = WalkConfig {
            filter: &f,
            prefilter: None,
            now: 0,
            keep: Keep::default(),
            sparse_dates: false,
        };
        // Walked with one worker's state, folded with the stream's.
        let mut out = ChunkOut::default();
        walk(&cfg, LINES, &mut out, &mut f.new_state());
        assert_eq!((out.pending.len(), out.recs.len(), out.matched), (5, 1, 0));
        fold_sessions(&cfg, &mut out, &mut f.new_state());
        assert!(out.pending.is_empty());
        let ip = |s: &str| Some(s.to_string());
        assert_eq!(
            summary(&out),
            [
                (1, Kind::Matched, ip("192.0.2.1"), Some(b"root".to_vec())),
                (2, Kind::BadHost, None, None),
                (5, Kind::Matched, ip("192.0.2.4"), Some(b"admin".to_vec())),
            ]
        );
        // The same as counting each session line as it is walked (what
        // the walk does when it keeps line texts).
        cfg.keep.missed = true;
        let mut inline = ChunkOut::default();
        walk(&cfg, LINES, &mut inline, &mut f.new_state());
        assert!(inline.pending.is_empty());
        let counts = |o: &ChunkOut| (o.matched, o.missed, o.bad_host, o.fail_hits.clone());
        assert_eq!(counts(&out), counts(&inline));
        assert_eq!(counts(&out), (2, 4, 1, vec![0, 2, 1]));
        inline.recs.retain(|r| r.kind != Kind::Missed);
        assert_eq!(summary(&out), summary(&inline));
    }
}
