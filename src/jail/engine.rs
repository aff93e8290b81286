//! The engine: walks each chunk a source delivers through the filters of the
//! jails that read that source (`scan::walk`, with per-stream state), counts
//! the failures in the jails, and collects the ban decisions. The walking can
//! happen before, elsewhere: the daemon's walker thread hands it chunks
//! already walked (`walker::Walked`), dry-run the chunks its workers walked,
//! both with the same code.
//!
//! Owned by exactly one task (no locks on the hot path). It never does I/O: the
//! caller feeds it [`SourceEvent`]s (or walked chunks) and applies the
//! decisions it returns. Only the clock differs between callers: the wall
//! clock (the daemon) or each line's own time ([`Clock::Replay`]: dry-run,
//! and tests that replay a log).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::walker::{self, Input, WalkRoutes, WalkedChunks};
use crate::filter::{Filter, LineState};
use crate::jail::{BanDecision, IgnoreReason, Jail, Verdict};
use crate::scan::{self, ChunkOut, Kind, Rec, StreamClock};
use crate::source::{SourceEvent, SourceId};
use crate::UnixTime;

/// Counters of one jail, for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JailStats {
    /// Lines handed to the jail's filter (skipped lines not included).
    pub lines: u64,
    /// Lines the filter matched (failures, ignored, bad host) that carried
    /// no time of their own (they take the stream's, see `scan::StreamClock`).
    pub undated: u64,
    pub matched: u64,
    pub ignored_lines: u64,
    pub missed: u64,
    pub bad_host: u64,
    pub failures: u64,
    pub ignored_addresses: u64,
    pub too_old: u64,
    pub already_banned: u64,
    pub bans: u64,
    /// Lines skipped (over the length cap).
    pub skipped: u64,
}

pub struct JailRuntime {
    pub jail: Jail,
    pub filter: Arc<Filter>,
    pub stats: JailStats,
}

/// What "now" is for the jails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock, read by the caller (the daemon).
    Wall,
    /// Each failure happens at its line's time: a log replayed as if it were
    /// being written (dry-run). `now` then only anchors year inference.
    Replay,
}

/// A stream: one source, and one file of a source that follows several.
pub type StreamKey = (SourceId, Option<Arc<PathBuf>>);

/// Per stream and jail: the filter's line state and the stream's clock.
struct StreamJail {
    state: LineState,
    clock: StreamClock,
    /// When it last had a chunk (`now` then), so streams of files that are
    /// gone (dated file names) are dropped.
    used: UnixTime,
}

/// A stream idle this long is forgotten (its state is only a cache and the
/// time of its last dated line).
const STREAM_IDLE: i64 = 86_400;

/// Called for each failure a jail counted, with the record, its time and
/// the jail's verdict (dry-run's report).
pub type Observer<'o> = &'o mut dyn FnMut(&Rec, UnixTime, &Verdict);

pub struct Engine {
    pub jails: Vec<JailRuntime>,
    /// Source id → indices into `jails`.
    routes: Vec<Vec<usize>>,
    /// The same routes with the jails' filters, for a walker elsewhere.
    walk_routes: Arc<WalkRoutes>,
    /// Per stream and jail (index into `jails`).
    streams: HashMap<(StreamKey, usize), StreamJail>,
    clock: Clock,
    /// Last time an ignored address was logged, to keep a flood from flooding the log.
    ignore_logged: HashMap<IpAddr, UnixTime>,
    /// Failures of fleet-shared jails, collected for the fleet (daemon only).
    pub tap: Option<FleetTap>,
    /// The last chunk's records, emptied: the next chunk fills them again
    /// instead of growing a new vector a line at a time (a 256 KiB chunk
    /// of a flood holds thousands).
    spare_recs: Vec<Rec>,
}

/// Failures counted (not banned) by jails whose counts the fleet shares.
#[derive(Debug, Default)]
pub struct FleetTap {
    /// Per jail index: whether its failures are collected.
    pub shared: Vec<bool>,
    pub failures: Vec<crate::fleet::Failure>,
}

impl Engine {
    pub fn new(jails: Vec<JailRuntime>, routes: Vec<Vec<usize>>) -> Engine {
        Engine::with_clock(jails, routes, Clock::Wall)
    }

    pub fn with_clock(jails: Vec<JailRuntime>, routes: Vec<Vec<usize>>, clock: Clock) -> Engine {
        let walk_routes = routes
            .iter()
            .map(|r| {
                r.iter()
                    .filter_map(|&j| Some((j, Arc::clone(&jails.get(j)?.filter))))
                    .collect()
            })
            .collect();
        Engine {
            walk_routes: Arc::new(WalkRoutes::new(walk_routes)),
            jails,
            routes,
            streams: HashMap::new(),
            clock,
            ignore_logged: HashMap::new(),
            tap: None,
            spare_recs: Vec::new(),
        }
    }

    /// Handles one source event; ban decisions are appended to `out`. `now`
    /// is the wall clock (with [`Clock::Replay`], the reference time).
    pub fn handle(&mut self, ev: &SourceEvent, now: UnixTime, out: &mut Vec<BanDecision>) {
        self.handle_walked(ev, &mut Vec::new(), now, out, None);
    }

    /// [`handle`](Self::handle) for an event `ev` that a
    /// [`Walker`](walker::Walker) may have walked into `pre` (a
    /// [`Walked`](walker::Walked)'s parts; empty: none): a chunk walked with
    /// its jail's own filter is counted as it is, the others are walked here
    /// (routes that changed since). `observer` sees each failure.
    pub fn handle_walked(
        &mut self,
        ev: &SourceEvent,
        pre: &mut WalkedChunks,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
        observer: Option<Observer<'_>>,
    ) {
        match ev {
            SourceEvent::Lines { read_time, .. } => {
                self.chunk(ev, pre, *read_time, now, out, observer)
            }
            SourceEvent::Entries { .. } => self.chunk(ev, pre, now, now, out, observer),
            SourceEvent::Skipped { source, count, .. } => {
                for &j in self.routes.get(*source).map(Vec::as_slice).unwrap_or(&[]) {
                    self.jails[j].stats.skipped += count;
                }
            }
            SourceEvent::Rotated { .. } | SourceEvent::Error { .. } => {}
        }
    }

    /// The routes a walker elsewhere should follow (new with each engine).
    pub fn walk_routes(&self) -> Arc<WalkRoutes> {
        Arc::clone(&self.walk_routes)
    }

    /// Walks one chunk through every jail of the source's route (or takes
    /// the chunk `pre` holds for the jail) and counts it.
    fn chunk(
        &mut self,
        ev: &SourceEvent,
        pre: &mut WalkedChunks,
        read_time: UnixTime,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
        mut observer: Option<Observer<'_>>,
    ) {
        let Some((input, key)) = Input::of(ev) else {
            return;
        };
        let source = key.0;
        let jails = self.routes.get(source).map_or(0, Vec::len);
        for k in 0..jails {
            let j = self.routes[source][k];
            let Some(filter) = self.jails.get(j).map(|rt| rt.filter.clone()) else {
                continue;
            };
            let cfg = walker::config(&filter, now);
            let stream = self
                .streams
                .entry((key.clone(), j))
                .or_insert_with(|| StreamJail {
                    state: filter.new_state(),
                    clock: StreamClock::default(),
                    used: now,
                });
            let mut chunk = match walker::take(pre, j, &filter) {
                Some(chunk) => chunk,
                None => {
                    let recs = std::mem::take(&mut self.spare_recs);
                    walker::walk_input(&cfg, input, &mut stream.state, recs)
                }
            };
            scan::fold_sessions(&cfg, &mut chunk, &mut stream.state);
            let observer = observer.as_mut().map(|o| &mut **o as Observer<'_>);
            self.count(key.clone(), j, &chunk, read_time, now, out, observer);
            chunk.recs.clear();
            if chunk.recs.capacity() > self.spare_recs.capacity() {
                self.spare_recs = chunk.recs;
            }
        }
    }

    /// Counts a chunk that `scan::walk` made of stream `key`'s lines with
    /// jail `j`'s filter (chunks of a stream in order): counters, failures,
    /// ban decisions (appended to `out`); `observer` sees each failure.
    #[allow(clippy::too_many_arguments)]
    pub fn count(
        &mut self,
        key: StreamKey,
        j: usize,
        chunk: &ChunkOut,
        read_time: UnixTime,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
        mut observer: Option<Observer<'_>>,
    ) {
        let Some(rt) = self.jails.get_mut(j) else {
            return;
        };
        let stream = self.streams.entry((key, j)).or_insert_with(|| StreamJail {
            state: rt.filter.new_state(),
            clock: StreamClock::default(),
            used: now,
        });
        stream.used = now;
        let clock = stream.clock;
        stream.clock.advance(chunk);
        let s = &mut rt.stats;
        s.lines += chunk.lines - chunk.skipped;
        s.skipped += chunk.skipped;
        s.undated += chunk.undated_matches;
        s.matched += chunk.matched;
        s.ignored_lines += chunk.ignored;
        s.missed += chunk.missed;
        s.bad_host += chunk.bad_host;
        if chunk.bad_host > 0 {
            tracing::debug!(jail = %rt.jail.settings.name, lines = chunk.bad_host, "failregex matched but the host is not an IP address");
        }
        for rec in &chunk.recs {
            let (Kind::Matched, Some(host)) = (rec.kind, rec.host) else {
                continue;
            };
            let time = clock.time_of(rec, read_time);
            let now = match self.clock {
                Clock::Wall => now,
                Clock::Replay => time,
            };
            let verdict = rt.jail.failure_in(host, rec.prefix, time, now);
            if let (Verdict::Counted { .. }, Some(tap)) = (&verdict, self.tap.as_mut()) {
                if tap.shared.get(j).copied().unwrap_or(false) {
                    tap.failures.push(crate::fleet::Failure {
                        jail: rt.jail.settings.name.clone(),
                        net: rt.jail.settings.key_in(host, rec.prefix),
                        time,
                    });
                }
            }
            if let Some(o) = observer.as_mut() {
                o(rec, time, &verdict);
            }
            match verdict {
                // Nearly every failure: booked inline.
                Verdict::Counted { .. } => rt.stats.failures += 1,
                verdict => {
                    if let Some(ban) = apply(rt, verdict, rec, now, &mut self.ignore_logged) {
                        out.push(ban);
                    }
                }
            }
        }
    }

    /// Periodic clean-up of expired bans and stale counters.
    pub fn sweep(&mut self, now: UnixTime) {
        for rt in &mut self.jails {
            rt.jail.sweep(now);
        }
        self.streams
            .retain(|_, s| now.saturating_sub(s.used) < STREAM_IDLE);
    }

    /// Tells jails that escalate `across_jails` about bans made by the others.
    pub fn share_history(&mut self, bans: &[BanDecision]) {
        for rt in &mut self.jails {
            if !rt
                .jail
                .settings
                .increment
                .as_ref()
                .is_some_and(|i| i.across_jails)
            {
                continue;
            }
            for b in bans {
                if b.jail != rt.jail.settings.name {
                    rt.jail.note_history(b.net, b.at);
                }
            }
        }
    }

    pub fn jail_mut(&mut self, name: &str) -> Option<&mut JailRuntime> {
        self.jails.iter_mut().find(|j| j.jail.settings.name == name)
    }
}

/// Books a verdict of `rec`'s failure in the jail's counters; the ban, if
/// it is one. Out of the counting loop: the loop books the common verdict
/// (`Counted`) itself.
#[inline(never)]
fn apply(
    rt: &mut JailRuntime,
    verdict: Verdict,
    rec: &Rec,
    now: UnixTime,
    ignore_logged: &mut HashMap<IpAddr, UnixTime>,
) -> Option<BanDecision> {
    match verdict {
        Verdict::Counted { .. } => {
            rt.stats.failures += 1;
            None
        }
        Verdict::Ban(ban) => {
            rt.stats.failures += 1;
            rt.stats.bans += 1;
            // Logged and counted where the daemon handles it (events::Banned).
            Some(*ban)
        }
        Verdict::AlreadyBanned => {
            rt.stats.already_banned += 1;
            None
        }
        Verdict::TooOld => {
            rt.stats.too_old += 1;
            None
        }
        Verdict::Ignored(reason) => {
            rt.stats.ignored_addresses += 1;
            let host = rec.host?;
            if let IgnoreReason::TrustedProxy(_) = reason {
                let name = rt.jail.settings.name.clone();
                rt.jail.proxy.note(&name, host);
            }
            if ignore_logged.len() > 4096 {
                ignore_logged.clear();
            }
            let last = ignore_logged.entry(host).or_insert(i64::MIN);
            if now.saturating_sub(*last) >= 60 {
                *last = now;
                tracing::info!(jail = %rt.jail.settings.name, addr = %host, %reason, "failure from an ignored address: never banned");
            }
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::filter::FilterSpec;
    use crate::jail::{IgnoreList, JailSettings};

    fn engine() -> Engine {
        engine_for("^fail from <HOST>$", vec!["192.0.2.0/24".parse().unwrap()])
    }

    /// One jail `j` (maxretry 2, findtime 600, bantime 60) with a filter of
    /// one `failregex` and allow-list `ignore`, reading source 0.
    pub(crate) fn engine_for(failregex: &str, ignore: Vec<ipnet::IpNet>) -> Engine {
        let filter = Filter::compile(FilterSpec {
            name: "f".into(),
            failregex: vec![failregex.into()],
            ..Default::default()
        })
        .unwrap();
        let jail = Jail::new(JailSettings::new(
            "j",
            2,
            600,
            Some(60),
            IgnoreList::new(ignore, false),
        ));
        Engine::new(
            vec![JailRuntime {
                jail,
                filter: Arc::new(filter),
                stats: JailStats::default(),
            }],
            vec![vec![0]],
        )
    }

    #[test]
    fn lines_in_one_chunk_ban_once() {
        let mut e = engine();
        let mut out = Vec::new();
        let data = b"fail from 198.51.100.1\nnoise\nfail from 198.51.100.1\nfail from 198.51.100.1\nfail from 192.0.2.1\n".to_vec();
        let ev = lines(&data, 1000);
        e.handle(&ev, 1000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].net.to_string(), "198.51.100.1/32");
        let s = e.jails[0].stats;
        assert_eq!(
            (
                s.lines,
                s.matched,
                s.missed,
                s.bans,
                s.ignored_addresses,
                s.undated
            ),
            // `undated`: the four matching lines (the missed one not counted).
            (5, 4, 1, 1, 1, 4)
        );
    }

    /// `data` read from `/x` by source 0 at `read_time`.
    pub(crate) fn lines(data: &[u8], read_time: UnixTime) -> SourceEvent {
        SourceEvent::Lines {
            source: 0,
            path: Arc::new("/x".into()),
            data: data.to_vec(),
            read_time,
            pos: crate::source::FilePos {
                path: "/x".into(),
                dev: 0,
                ino: 0,
                offset: 0,
                fingerprint: 0,
            },
        }
    }

    #[test]
    fn an_undated_line_takes_its_streams_last_time_until_the_stream_is_forgotten() {
        let mut e = engine();
        let mut out = Vec::new();
        let mut times = Vec::new();
        let mut observe = |_: &Rec, t: UnixTime, _: &Verdict| times.push(t);
        // Each chunk read at `t`, the wall clock then too.
        let mut feed = |e: &mut Engine, data: &[u8], t: UnixTime| {
            e.handle_walked(
                &lines(data, t),
                &mut Vec::new(),
                t,
                &mut out,
                Some(&mut observe),
            )
        };
        let t0 = 1_710_028_800;
        feed(&mut e, b"2024-03-10 00:00:00 noise\n", t0);
        // Read later, in another chunk: still the dated line's time.
        let undated = b"fail from 198.51.100.7\n";
        feed(&mut e, undated, t0 + 50);
        // A day idle: the stream is forgotten, the next one counts when read.
        let idle = t0 + 50 + STREAM_IDLE;
        e.sweep(idle);
        feed(&mut e, undated, idle);
        assert_eq!(times, [t0, idle]);
    }

    #[test]
    fn unknown_source_is_ignored() {
        let mut e = engine();
        let mut out = Vec::new();
        let ev = SourceEvent::Entries {
            source: 7,
            entries: vec![(0, b"fail from 198.51.100.1".to_vec())],
            cursor: None,
        };
        e.handle(&ev, 0, &mut out);
        assert!(out.is_empty());
        assert_eq!(e.jails[0].stats, JailStats::default());
    }
}
