//! Chunks walked ahead of the engine: the daemon's walker thread runs
//! [`walk_ahead`] on a large chunk of lines while the engine counts the
//! chunk before it, and the engine counts the result with
//! [`Engine::handle_walked`] as if it had walked the chunk itself.
//!
//! Only filters whose outcome does not depend on earlier lines are walked
//! ahead ([`Engine::plan_ahead`]): for them a `LineState` only saves work,
//! so the walker's own state per stream and jail gives the records the
//! engine's would. Filters with sessions or a `maxlines` buffer are walked
//! by the engine, in order, with the stream's state. Owns no thread and
//! counts nothing itself: counting and ban decisions stay `Engine::count`'s.

use std::path::PathBuf;
use std::sync::Arc;

use super::{walk_config, Engine, Input};
use crate::filter::{Filter, LineState};
use crate::jail::BanDecision;
use crate::scan::{self, ChunkOut};
use crate::source::{SourceEvent, SourceId};
use crate::UnixTime;

/// A chunk walked ahead for one jail: its index, the filter it was walked
/// with, the result.
pub type Walked = (usize, Arc<Filter>, ChunkOut);

/// Walks `data` (whole lines) with `filter` and a walker's `state` for this
/// stream and filter, as the engine walks a chunk; `now` anchors year
/// inference.
pub fn walk_ahead(filter: &Filter, data: &[u8], now: UnixTime, state: &mut LineState) -> ChunkOut {
    let cfg = walk_config(filter, now);
    let mut chunk = ChunkOut::default();
    scan::walk(&cfg, data, &mut chunk, state);
    scan::fold_sessions(&cfg, &mut chunk, state);
    chunk
}

impl Engine {
    /// The jails reading `source` whose filter can be walked ahead, with
    /// that filter, in route order.
    pub fn plan_ahead(&self, source: SourceId) -> Vec<(usize, Arc<Filter>)> {
        let route = self.routes.get(source).map(Vec::as_slice).unwrap_or(&[]);
        route
            .iter()
            .filter_map(|&j| self.jails.get(j).map(|rt| (j, &rt.filter)))
            .filter(|(_, f)| !f.depends_on_earlier_lines())
            .map(|(j, f)| (j, f.clone()))
            .collect()
    }

    /// Handles `ev` (in its place among the source's events) with the
    /// chunks walked ahead for it: each jail of the route counts its walked
    /// chunk if it was walked with the jail's current filter, else walks
    /// the lines itself, in route order as [`handle`](Engine::handle) does.
    pub fn handle_walked(
        &mut self,
        ev: &SourceEvent,
        walked: Vec<Walked>,
        now: UnixTime,
        out: &mut Vec<BanDecision>,
    ) {
        let SourceEvent::Lines {
            source,
            path,
            data,
            read_time,
            ..
        } = ev
        else {
            return self.handle(ev, now, out);
        };
        let mut walked: Vec<Option<Walked>> = walked.into_iter().map(Some).collect();
        let route = self.routes.get(*source).cloned().unwrap_or_default();
        for j in route {
            let current = self.jails.get(j).map(|rt| &rt.filter);
            let mine = walked.iter_mut().find(|w| {
                w.as_ref().is_some_and(|(wj, f, _)| {
                    *wj == j && current.is_some_and(|c| Arc::ptr_eq(c, f))
                })
            });
            match mine.and_then(Option::take) {
                Some((_, _, chunk)) => {
                    let key: (SourceId, Option<Arc<PathBuf>>) = (*source, Some(path.clone()));
                    self.count(key, j, &chunk, *read_time, now, out, None);
                }
                None => {
                    let input = Input::Lines(data);
                    self.chunk_jail(*source, Some(path), j, input, *read_time, now, out, None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;
    use crate::jail::engine::{JailRuntime, JailStats};
    use crate::jail::{IgnoreList, Jail, JailSettings};

    fn engine(maxretry: u32) -> Engine {
        let filter = Filter::compile(FilterSpec {
            name: "f".into(),
            failregex: vec!["fail from <HOST>$".into()],
            ..Default::default()
        })
        .unwrap();
        let jail = Jail::new(JailSettings::new(
            "j",
            maxretry,
            600,
            Some(60),
            IgnoreList::new(vec![], false),
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

    fn lines(data: &[u8], read_time: UnixTime) -> SourceEvent {
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

    /// The same events, walked by the engine or ahead (with one state
    /// for all chunks, or a fresh one each), give the same counters and
    /// the same bans in the same order.
    #[test]
    fn walking_ahead_counts_what_the_engine_counts() {
        let t0 = 1_710_028_800;
        let mut events = Vec::new();
        for c in 0..6 {
            let mut data = Vec::new();
            for i in 0..40 {
                let stamp = if i % 3 == 0 {
                    ""
                } else {
                    "2024-03-10 00:00:05 "
                };
                let addr = format!("198.51.100.{}", (c * 7 + i) % 23);
                data.extend_from_slice(format!("{stamp}fail from {addr}\nnoise {i}\n").as_bytes());
            }
            events.push(lines(&data, t0 + c));
        }
        let (mut inline, mut bans_inline) = (engine(3), Vec::new());
        for ev in &events {
            inline.handle(ev, t0 + 10, &mut bans_inline);
        }
        for fresh in [false, true] {
            let (mut ahead, mut bans) = (engine(3), Vec::new());
            let mut state = ahead.jails[0].filter.new_state();
            for ev in &events {
                let SourceEvent::Lines { data, .. } = ev else {
                    unreachable!()
                };
                let walked: Vec<Walked> = ahead
                    .plan_ahead(0)
                    .into_iter()
                    .map(|(j, f)| {
                        if fresh {
                            state = f.new_state();
                        }
                        let chunk = walk_ahead(&f, data, t0 + 10, &mut state);
                        (j, f, chunk)
                    })
                    .collect();
                assert_eq!(walked.len(), 1);
                ahead.handle_walked(ev, walked, t0 + 10, &mut bans);
            }
            assert_eq!(ahead.jails[0].stats, inline.jails[0].stats, "fresh {fresh}");
            let nets = |b: &[BanDecision]| b.iter().map(|b| (b.net, b.at)).collect::<Vec<_>>();
            assert_eq!(nets(&bans), nets(&bans_inline), "fresh {fresh}");
        }
        assert!(bans_inline.len() > 5, "{}", bans_inline.len());
    }

    /// A chunk walked with a filter the jail no longer has (a reload in
    /// between) is walked again with the jail's own.
    #[test]
    fn a_chunk_walked_with_another_filter_is_walked_again() {
        let mut e = engine(1);
        let other = Arc::new(
            Filter::compile(FilterSpec {
                name: "g".into(),
                failregex: vec!["noise from <HOST>$".into()],
                ..Default::default()
            })
            .unwrap(),
        );
        let data = b"fail from 198.51.100.1\n";
        let mut state = other.new_state();
        let stale = walk_ahead(&other, data, 0, &mut state);
        let mut bans = Vec::new();
        e.handle_walked(&lines(data, 100), vec![(0, other, stale)], 100, &mut bans);
        assert_eq!(bans.len(), 1);
        assert_eq!(e.jails[0].stats.failures, 1);
    }
}
