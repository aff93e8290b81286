//! The walking half of the line engine, able to run on a thread of its own:
//! a source event's lines (or journal entries) walked through the filters of
//! the jails that read its source (`scan::walk`), with a line state per
//! stream and jail. The daemon runs a [`Walker`] on its walker thread, so
//! matching runs beside reading and counting; [`Engine`](super::engine::Engine)
//! counts the [`Walked`] result, and walks a chunk again itself only when it
//! was walked with a filter that is no longer its jail's (around a reload).
//!
//! A line's outcome depends on the line, the filter and the reference time
//! only; the line states here are caches (dates, capture slots), so a chunk
//! walked here counts exactly as one walked by the engine. It must not count,
//! fold sessions (their state is the engine's, in stream order) or decide.

use std::collections::HashMap;
use std::sync::Arc;

use super::engine::StreamKey;
use crate::filter::{Filter, LineState};
use crate::scan::{self, ChunkOut, Rec, WalkConfig};
use crate::source::{SourceEvent, SourceId};
use crate::UnixTime;

/// Which filters read each source: per source id, the jails (indices into
/// the engine's jails) and their filters. Built by the engine; the walker
/// follows the latest one it is given.
#[derive(Debug, Default)]
pub struct WalkRoutes {
    routes: Vec<Vec<(usize, Arc<Filter>)>>,
}

impl WalkRoutes {
    pub(crate) fn new(routes: Vec<Vec<(usize, Arc<Filter>)>>) -> WalkRoutes {
        WalkRoutes { routes }
    }

    fn of(&self, source: SourceId) -> &[(usize, Arc<Filter>)] {
        self.routes.get(source).map_or(&[], Vec::as_slice)
    }
}

/// A source event, and the chunks a [`Walker`] made of it: one per jail of
/// the source's route, tagged with the filter it was walked with.
#[derive(Debug)]
pub struct Walked {
    pub ev: SourceEvent,
    pub chunks: WalkedChunks,
}

/// Walked chunks: (jail index, the filter it was walked with, the chunk).
pub type WalkedChunks = Vec<(usize, Arc<Filter>, ChunkOut)>;

/// Takes the chunk walked for jail `j` with `filter` out of `chunks`, if
/// there is one.
pub(crate) fn take(chunks: &mut WalkedChunks, j: usize, filter: &Arc<Filter>) -> Option<ChunkOut> {
    let i = chunks
        .iter()
        .position(|(k, f, _)| *k == j && Arc::ptr_eq(f, filter))?;
    Some(chunks.swap_remove(i).2)
}

impl From<SourceEvent> for Walked {
    /// An event nobody walked yet: the engine walks it when it counts it.
    fn from(ev: SourceEvent) -> Walked {
        Walked {
            ev,
            chunks: Vec::new(),
        }
    }
}

/// A chunk as a source delivers it.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    Lines(&'a [u8]),
    Entries(&'a [(UnixTime, Vec<u8>)]),
}

impl<'a> Input<'a> {
    /// The lines of `ev`, with its stream (entries are one stream per source).
    pub(crate) fn of(ev: &'a SourceEvent) -> Option<(Input<'a>, StreamKey)> {
        match ev {
            SourceEvent::Lines {
                source, path, data, ..
            } => Some((Input::Lines(data), (*source, Some(Arc::clone(path))))),
            SourceEvent::Entries {
                source, entries, ..
            } => Some((Input::Entries(entries), (*source, None))),
            _ => None,
        }
    }
}

/// The walk configuration of `filter` at reference time `now`.
pub(crate) fn config(filter: &Filter, now: UnixTime) -> WalkConfig<'_> {
    WalkConfig {
        filter,
        prefilter: filter.prefilter(),
        now,
        keep: scan::Keep::default(),
        sparse_dates: filter.spec.datepattern.is_some(),
    }
}

/// Walks `input` through `cfg`'s filter into a chunk whose records reuse
/// `recs`' allocation. Sessions are left pending for the engine to fold.
pub(crate) fn walk_input(
    cfg: &WalkConfig<'_>,
    input: Input<'_>,
    state: &mut LineState,
    recs: Vec<Rec>,
) -> ChunkOut {
    let mut chunk = ChunkOut {
        recs,
        ..ChunkOut::default()
    };
    match input {
        Input::Lines(data) => scan::walk(cfg, data, &mut chunk, state),
        Input::Entries(entries) => scan::walk_entries(cfg, entries, &mut chunk, state),
    }
    chunk
}

/// A line state kept per stream and jail, and when it was last used.
struct Stream {
    state: LineState,
    used: UnixTime,
}

/// A stream idle this long loses its line state (a cache).
const STREAM_IDLE: UnixTime = 3_600;

/// Walks source events through the filters of their routes.
pub struct Walker {
    routes: Arc<WalkRoutes>,
    streams: HashMap<(StreamKey, usize), Stream>,
    last_sweep: UnixTime,
}

impl Walker {
    pub fn new(routes: Arc<WalkRoutes>) -> Walker {
        Walker {
            routes,
            streams: HashMap::new(),
            last_sweep: 0,
        }
    }

    /// Follows new routes (a reload); line states of the old ones go.
    pub fn set_routes(&mut self, routes: Arc<WalkRoutes>) {
        if !Arc::ptr_eq(&self.routes, &routes) {
            self.routes = routes;
            self.streams.clear();
        }
    }

    /// Walks `ev` through the filter of every jail of its source's route, at
    /// reference time `now`; events without lines pass through unwalked.
    pub fn walk(&mut self, ev: SourceEvent, now: UnixTime) -> Walked {
        let chunks = self.chunks(&ev, now);
        Walked { ev, chunks }
    }

    fn chunks(&mut self, ev: &SourceEvent, now: UnixTime) -> WalkedChunks {
        let Some((input, key)) = Input::of(ev) else {
            return Vec::new();
        };
        let mut chunks = Vec::new();
        for (j, filter) in self.routes.of(key.0) {
            let stream = self
                .streams
                .entry((key.clone(), *j))
                .or_insert_with(|| Stream {
                    state: filter.new_state(),
                    used: now,
                });
            stream.used = now;
            let chunk = walk_input(&config(filter, now), input, &mut stream.state, Vec::new());
            chunks.push((*j, Arc::clone(filter), chunk));
        }
        if now.saturating_sub(self.last_sweep) >= 60 {
            self.last_sweep = now;
            self.streams
                .retain(|_, s| now.saturating_sub(s.used) < STREAM_IDLE);
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::engine::tests::{engine_for, lines as lines_at};

    fn engine(failregex: &str) -> crate::jail::engine::Engine {
        engine_for(failregex, Vec::new())
    }

    fn lines(data: &[u8]) -> SourceEvent {
        lines_at(data, 1000)
    }

    const DATA: &[u8] =
        b"fail from 198.51.100.1\nnoise\noops 198.51.100.2\nfail from 198.51.100.1\n";

    #[test]
    fn a_chunk_walked_by_the_walker_counts_as_one_the_engine_walks() {
        let mut here = engine("^fail from <HOST>$");
        let mut out_here = Vec::new();
        here.handle(&lines(DATA), 1000, &mut out_here);

        let mut there = engine("^fail from <HOST>$");
        let mut walker = Walker::new(there.walk_routes());
        let Walked { ev, mut chunks } = walker.walk(lines(DATA), 1000);
        assert_eq!(chunks.len(), 1, "one chunk per jail of the route");
        let mut out_there = Vec::new();
        there.handle_walked(&ev, &mut chunks, 1000, &mut out_there, None);

        assert_eq!(here.jails[0].stats, there.jails[0].stats);
        assert_eq!(there.jails[0].stats.bans, 1);
        assert_eq!(out_here, out_there);
        assert!(chunks.is_empty(), "the walked chunk was the one counted");
    }

    #[test]
    fn a_chunk_walked_with_another_filter_is_walked_again_with_the_jails_own() {
        // The walker still follows the old routes (a reload just happened).
        let old = engine("^fail from <HOST>$");
        let mut walker = Walker::new(old.walk_routes());
        let Walked { ev, mut chunks } = walker.walk(lines(DATA), 1000);
        assert_eq!(chunks[0].2.matched, 2);

        let mut new = engine("^oops <HOST>$");
        let mut out = Vec::new();
        new.handle_walked(&ev, &mut chunks, 1000, &mut out, None);
        let s = new.jails[0].stats;
        assert_eq!((s.lines, s.matched, s.missed), (4, 1, 3));

        // Told of the new routes, the walker walks with the new filter.
        walker.set_routes(new.walk_routes());
        let Walked { chunks, .. } = walker.walk(lines(DATA), 1001);
        assert_eq!(chunks[0].2.matched, 1);
    }

    #[test]
    fn events_without_lines_pass_through_unwalked() {
        let e = engine("^fail from <HOST>$");
        let mut walker = Walker::new(e.walk_routes());
        let ev = SourceEvent::Skipped {
            source: 0,
            path: Arc::new("/x".into()),
            count: 2,
            reason: "line too long",
        };
        assert!(walker.walk(ev, 1000).chunks.is_empty());
        // A source no route knows.
        let ev = SourceEvent::Entries {
            source: 9,
            entries: vec![(1000, b"fail from 198.51.100.1".to_vec())],
            cursor: None,
        };
        assert!(walker.walk(ev, 1000).chunks.is_empty());
    }
}
