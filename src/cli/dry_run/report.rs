//! The dry-run report: takes the walked chunks in input order, counts them
//! through the daemon's engine (`jail::engine::Engine` with [`Clock::Replay`]:
//! each failure happens at its line's time; each input is one stream, its
//! undated lines timed by `scan::StreamClock`), sends the bans to a recording
//! firewall, and renders the result as text or as one JSON document.
//!
//! Owns aggregation (rendering is `render`). It must not match lines (the walk did,
//! through `Filter`) nor count failures towards bans itself (the engine does).
//!
//! The document it builds, and its JSON schema, are in `schema`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::filter::date::DateFormat;
use crate::filter::Filter;
use crate::firewall::{BanEntry, Firewall, FirewallOp, Recording};
use crate::jail::engine::{Clock, Engine, JailRuntime, JailStats};
use crate::jail::{BanDecision, Jail, JailSettings, Verdict};
use crate::scan::{ChunkOut, Kind, StreamClock};

use render::net_text;
pub use render::write_human;
pub use render::{InputName, NetText};

#[path = "render.rs"]
mod render;
#[path = "schema.rs"]
mod schema;
#[path = "tally.rs"]
mod tally;
use crate::UnixTime;
pub use schema::*;
use tally::{AddrStat, Tally};

/// What the report needs besides the scanned chunks.
pub struct Context<'a> {
    pub filter: &'a std::sync::Arc<Filter>,
    pub origin: String,
    pub prefilter: Option<Vec<String>>,
    pub jail: Option<JailSettings>,
    pub inputs: Vec<String>,
    pub top: usize,
    pub shown: Option<(Vec<Kind>, Option<usize>)>,
    /// The read time: for a stream's lines before its first dated line.
    pub now: UnixTime,
}

/// The address a failure names, or the subnet of length `prefix` there.
fn captured(host: IpAddr, prefix: Option<u8>) -> IpNet {
    prefix
        .and_then(|p| IpNet::new(host, p).ok())
        .unwrap_or_else(|| IpNet::from(host))
}

/// Notes a ban (a row) or a failure of an ignored address (its tally) in
/// the jail's report.
#[inline(never)]
fn note_verdict(
    rep: &mut JailReport,
    ignored: &mut BTreeMap<IpNet, (u64, String)>,
    input: &InputName,
    base: u64,
    r: &crate::scan::Rec,
    v: &Verdict,
) {
    match v {
        Verdict::Ban(b) => rep.bans.push(BanRow {
            address: NetText(b.net),
            at: b.at,
            failures: b.failures,
            count: b.count,
            bantime: b.bantime,
            expires: b.expires,
            input: input.clone(),
            line: base + u64::from(r.line) + 1,
        }),
        Verdict::Ignored(reason) => {
            if let Some(host) = r.host {
                ignored
                    .entry(captured(host, r.prefix))
                    .or_insert_with(|| (0, reason.to_string()))
                    .0 += 1;
            }
        }
        Verdict::Counted { .. } | Verdict::AlreadyBanned | Verdict::TooOld => {}
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fast hash for the per-address and per-user tallies (foldhash, seeded
/// per process): SipHash's resistance is not needed for one local run.
type FastHash = foldhash::fast::RandomState;

/// Builds the report chunk by chunk, in input order: counters are summed,
/// failures are replayed through the jail as they come.
pub struct Aggregator<'a> {
    ctx: &'a Context<'a>,
    lines: Lines,
    dates: Dates,
    inputs: Vec<InputInfo>,
    fail_hits: Vec<u64>,
    ignore_hits: Vec<u64>,
    formats: BTreeMap<DateFormat, u64>,
    /// Per input (one stream each): the time of its last dated line.
    clocks: Vec<StreamClock>,
    /// Per address, or per subnet a filter captured (`<SUBNET>`).
    addrs: Tally,
    users: HashMap<Box<[u8]>, u64, FastHash>,
    /// The inputs' names, shared by the ban rows.
    input_names: Vec<InputName>,
    /// The daemon's engine with the one jail, for --jail.
    engine: Option<Engine>,
    firewall: Recording,
    jail_report: Option<JailReport>,
    ignored_addrs: BTreeMap<IpNet, (u64, String)>,
    shown: Vec<ShownLine>,
    shown_count: [usize; 4],
}

impl<'a> Aggregator<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Aggregator<'a> {
        let spec = &ctx.filter.spec;
        Aggregator {
            ctx,
            lines: Lines::default(),
            dates: Dates::default(),
            inputs: ctx
                .inputs
                .iter()
                .map(|n| InputInfo {
                    name: n.clone(),
                    bytes: 0,
                    lines: 0,
                })
                .collect(),
            fail_hits: vec![0; spec.failregex.len()],
            ignore_hits: vec![0; spec.ignoreregex.len()],
            formats: BTreeMap::new(),
            clocks: vec![StreamClock::default(); ctx.inputs.len()],
            addrs: Tally::default(),
            users: HashMap::default(),
            input_names: ctx
                .inputs
                .iter()
                .map(|n| InputName(n.as_str().into()))
                .collect(),
            engine: ctx.jail.clone().map(|settings| {
                let jail = JailRuntime {
                    jail: Jail::new(settings),
                    filter: ctx.filter.clone(),
                    stats: JailStats::default(),
                };
                Engine::with_clock(vec![jail], Vec::new(), Clock::Replay)
            }),
            firewall: Recording::default(),
            jail_report: ctx.jail.as_ref().map(|s| JailReport {
                name: s.name.clone(),
                maxretry: s.maxretry,
                findtime: s.findtime,
                bantime: s.bantime,
                ignoreip: s.ignore.nets().iter().map(|n| n.to_string()).collect(),
                ipv4_prefix: s.ipv4_prefix,
                ipv6_prefix: s.ipv6_prefix,
                failures: 0,
                bans_total: 0,
                already_banned: 0,
                ignored_failures: 0,
                too_old: 0,
                bans: Vec::new(),
                ignored: Vec::new(),
            }),
            ignored_addrs: BTreeMap::new(),
            shown: Vec::new(),
            shown_count: [0; 4],
        }
    }

    /// Adds the next chunk (chunks must come in input order).
    pub fn add(&mut self, c: ChunkOut) {
        let l = &mut self.lines;
        l.read += c.lines;
        l.matched += c.matched;
        l.ignored += c.ignored;
        l.bad_host += c.bad_host;
        l.missed += c.missed;
        l.skipped += c.skipped;
        l.undated += c.undated_matches;
        l.examined += c.examined;
        self.dates.undated += c.undated;
        self.dates.checked += c.checked;
        for (f, n) in &c.formats {
            *self.formats.entry(*f).or_default() += n;
        }
        for (h, n) in self.fail_hits.iter_mut().zip(&c.fail_hits) {
            *h += n;
        }
        for (h, n) in self.ignore_hits.iter_mut().zip(&c.ignore_hits) {
            *h += n;
        }
        if self.dates.first.is_none() {
            self.dates.first = c.first_ts;
        }
        let base = self.inputs.get(c.input).map_or(0, |i| i.lines);
        let read_time = self.ctx.now;
        let clock = self.clocks.get(c.input).copied().unwrap_or_default();
        let (show_kinds, show_max) = self.ctx.shown.clone().unwrap_or_default();
        for r in &c.recs {
            let line_no = base + u64::from(r.line) + 1;
            let time = clock.time_of(r, read_time);
            if let (Kind::Matched, Some(host)) = (r.kind, r.host) {
                if let Some(u) = r.user {
                    let u = c.arena(u);
                    match self.users.get_mut(u) {
                        Some(n) => *n += 1,
                        None => {
                            self.users.insert(u.into(), 1);
                        }
                    }
                }
                self.addrs.add(captured(host, r.prefix), time);
            }
            if let Some(k) = r.kept {
                let n = &mut self.shown_count[r.kind as usize];
                if let (Some(kept), true, true) = (
                    c.kept.get(k as usize),
                    show_kinds.contains(&r.kind),
                    show_max.is_none_or(|m| *n < m),
                ) {
                    *n += 1;
                    let raw = c.arena(kept.text).to_vec();
                    self.shown.push(ShownLine {
                        kind: r.kind,
                        input: self.input_name(c.input),
                        line: line_no,
                        time: if r.dated { Some(time) } else { None },
                        text: lossy(&raw),
                        regex: (r.kind != Kind::Missed).then_some(r.regex),
                        host: r.host.map(|h| net_text(&captured(h, r.prefix))),
                        user: r.user.map(|u| lossy(c.arena(u))),
                        host_span: kept.host_at.map(|(s, l)| [s, s + l]),
                        user_span: kept.user_at.map(|(s, l)| [s, s + l]),
                        raw,
                    });
                }
            }
        }
        self.jail_chunk(&c, base, read_time);
        if let Some(clock) = self.clocks.get_mut(c.input) {
            clock.advance(&c);
        }
        if c.last_ts.is_some() {
            self.dates.last = c.last_ts;
        }
        if let Some(i) = self.inputs.get_mut(c.input) {
            i.bytes += c.bytes;
            i.lines += c.lines;
        }
    }

    fn input_name(&self, i: usize) -> String {
        self.ctx.inputs.get(i).cloned().unwrap_or_default()
    }

    /// Counts the chunk's failures in the jail, as the daemon's engine does.
    /// The report's counters are the engine's own ([`JailStats`], taken at
    /// the end); the observer only notes bans and ignored addresses.
    fn jail_chunk(&mut self, c: &ChunkOut, base: u64, read_time: UnixTime) {
        let (Some(engine), Some(rep)) = (self.engine.as_mut(), self.jail_report.as_mut()) else {
            return;
        };
        let Some(input) = self.input_names.get(c.input) else {
            return;
        };
        let mut bans: Vec<BanDecision> = Vec::new();
        let ignored = &mut self.ignored_addrs;
        let mut observe = |r: &crate::scan::Rec, _time: UnixTime, v: &Verdict| {
            if matches!(v, Verdict::Ban(_) | Verdict::Ignored(_)) {
                note_verdict(rep, ignored, input, base, r, v);
            }
        };
        engine.count(
            (c.input, None),
            0,
            c,
            read_time,
            read_time,
            &mut bans,
            Some(&mut observe),
        );
        // Decisions go to a recording firewall (it only records; it cannot fail).
        for b in bans {
            let op = FirewallOp::Ban(BanEntry {
                jail: b.jail,
                net: b.net,
                expires: b.expires,
            });
            let _ = self.firewall.apply(std::slice::from_ref(&op), b.at);
        }
    }

    /// The report.
    pub fn finish(mut self) -> Report {
        let ctx = self.ctx;
        let spec = &ctx.filter.spec;
        if let (Some(rep), Some(engine)) = (self.jail_report.as_mut(), self.engine.as_ref()) {
            // Every failure the jail was given, whatever its verdict.
            let s = engine.jails.first().map(|rt| rt.stats).unwrap_or_default();
            rep.failures = s.failures + s.already_banned + s.too_old + s.ignored_addresses;
            rep.bans_total = s.bans;
            rep.already_banned = s.already_banned;
            rep.too_old = s.too_old;
            rep.ignored_failures = s.ignored_addresses;
            debug_assert_eq!(self.firewall.ops.len(), rep.bans.len());
            debug_assert_eq!(rep.bans_total, rep.bans.len() as u64);
            rep.ignored = std::mem::take(&mut self.ignored_addrs)
                .into_iter()
                .map(|(a, (n, reason))| IgnoredRow {
                    address: net_text(&a),
                    failures: n,
                    reason,
                })
                .collect();
        }
        self.dates.formats = self
            .formats
            .iter()
            .map(|(f, n)| {
                let name = serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string));
                (name.unwrap_or_else(|| format!("{f:?}")), *n)
            })
            .collect();
        let mut top: Vec<(IpNet, AddrStat)> = self.addrs.into_vec();
        let distinct = top.len();
        top_n(&mut top, ctx.top, |a, b| {
            b.1.failures.cmp(&a.1.failures).then(a.0.cmp(&b.0))
        });
        let mut utop: Vec<(Box<[u8]>, u64)> = self.users.into_iter().collect();
        let udistinct = utop.len();
        top_n(&mut utop, ctx.top, |a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let hits = |pats: &[String], hits: &[u64]| -> Vec<RegexHits> {
            pats.iter()
                .zip(hits)
                .enumerate()
                .map(|(index, (p, h))| RegexHits {
                    index,
                    regex: p.clone(),
                    hits: *h,
                })
                .collect()
        };
        Report {
            schema: 1,
            filter: FilterInfo {
                name: spec.name.clone(),
                origin: ctx.origin.clone(),
                prefregex: spec.prefregex.clone(),
                datepattern: spec.datepattern.clone(),
                failregex: hits(&spec.failregex, &self.fail_hits),
                ignoreregex: hits(&spec.ignoreregex, &self.ignore_hits),
                prefilter: ctx.prefilter.clone(),
            },
            inputs: self.inputs,
            lines: self.lines,
            dates: self.dates,
            addresses: Addresses {
                distinct,
                top: top
                    .into_iter()
                    .map(|(a, s)| AddressRow {
                        address: net_text(&a),
                        failures: s.failures,
                        first: Some(s.first),
                        last: Some(s.last),
                    })
                    .collect(),
            },
            users: Users {
                distinct: udistinct,
                top: utop
                    .into_iter()
                    .map(|(u, n)| UserRow {
                        user: lossy(&u),
                        failures: n,
                    })
                    .collect(),
            },
            jail: self.jail_report,
            shown: ctx.shown.as_ref().map(|(kinds, max)| Shown {
                kinds: kinds.clone(),
                max: *max,
                lines: self.shown,
            }),
        }
    }
}

/// Keeps the first `n` of `v` in `cmp` order, sorted: a selection, then a
/// sort of those `n` only (tens of thousands of addresses, ten shown).
fn top_n<T>(v: &mut Vec<T>, n: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if n == 0 {
        v.clear();
        return;
    }
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, &cmp);
        v.truncate(n);
    }
    v.sort_by(cmp);
}
