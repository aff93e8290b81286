//! Jails: per-address failure counting in a sliding window and the ban decision.
//!
//! Owns the counting state of one jail and nothing else: it never reads lines,
//! never runs a regex and never touches the firewall. Time is passed in by the
//! caller (`line_time` for windows, `now` for ban bookkeeping), which is how the
//! daemon (wall clock) and dry-run (clock driven by line timestamps) share it.
//!
//! Memory bound: one tracked address costs its hash-map slot (~64 bytes with
//! the key and, for `maxretry` up to 4, its failure times inline; beyond, a
//! ring header plus 8 bytes per remembered failure, at most `maxretry`); at most `max_tracked` addresses are tracked per jail
//! (default 100,000, i.e. about 10 MiB at `maxretry: 5`). When full, entries
//! whose failures have all left the window go first, then the stalest quarter.

pub mod allowfile;
pub mod engine;
mod failures;
pub mod ignore;
mod marks;
pub mod proxies;
mod ring;
mod subnets;
pub mod walker;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::UnixTime;
pub use ignore::{IgnoreList, IgnoreReason};

/// Default bound on tracked addresses per jail.
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// A jail's counting rules.
#[derive(Debug, Clone)]
pub struct JailSettings {
    pub name: String,
    pub maxretry: u32,
    /// Window, seconds.
    pub findtime: i64,
    /// Ban length, seconds; `None` is permanent.
    pub bantime: Option<i64>,
    pub ignore: IgnoreList,
    pub max_tracked: usize,
    /// Failures and bans are per prefix: IPv4 /`ipv4_prefix` (default 32),
    /// IPv6 /`ipv6_prefix` (default 64, so one attacker's /64 is one offender).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Longer bans for repeat offenders; `None`: every ban is `bantime`.
    pub increment: Option<Increment>,
}

impl JailSettings {
    /// Plain settings: host granularity for IPv4, /64 for IPv6, no escalation.
    pub fn new(
        name: &str,
        maxretry: u32,
        findtime: i64,
        bantime: Option<i64>,
        ignore: IgnoreList,
    ) -> JailSettings {
        JailSettings {
            name: name.to_string(),
            maxretry,
            findtime,
            bantime,
            ignore,
            max_tracked: DEFAULT_MAX_TRACKED,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            increment: None,
        }
    }

    /// The counting key of an address: the address itself or its prefix.
    #[inline]
    pub fn key(&self, addr: IpAddr) -> IpNet {
        // A full-length prefix (the default for IPv4) is the address itself:
        // no truncation (this runs once per failure).
        match addr {
            IpAddr::V4(a) => match Ipv4Net::new(a, self.ipv4_prefix) {
                Ok(n) if self.ipv4_prefix == 32 => IpNet::V4(n),
                Ok(n) => IpNet::V4(n.trunc()),
                Err(_) => IpNet::from(addr),
            },
            IpAddr::V6(a) => match Ipv6Net::new(a, self.ipv6_prefix) {
                Ok(n) if self.ipv6_prefix == 128 => IpNet::V6(n),
                Ok(n) => IpNet::V6(n.trunc()),
                Err(_) => IpNet::from(addr),
            },
        }
    }

    /// The counting key of a failure of `addr`, or of the subnet of
    /// length `prefix` a filter captured there (`<SUBNET>`): the coarser of
    /// that subnet and the jail's own prefix.
    pub fn key_in(&self, addr: IpAddr, prefix: Option<u8>) -> IpNet {
        self.subnet_key(addr, prefix)
            .unwrap_or_else(|| self.key(addr))
    }

    /// The key of a failure of a captured subnet coarser than the jail's
    /// own prefix (counted apart, `subnets`); `None` when the failure counts
    /// under the address's own key ([`key`](Self::key)).
    #[inline]
    fn subnet_key(&self, addr: IpAddr, prefix: Option<u8>) -> Option<IpNet> {
        let p = prefix?;
        let own = match addr {
            IpAddr::V4(_) => self.ipv4_prefix.min(32),
            IpAddr::V6(_) => self.ipv6_prefix.min(128),
        };
        if p < own {
            IpNet::new(addr, p).ok().map(|n| n.trunc())
        } else {
            None
        }
    }

    /// Whether bans can be prefixes (the firewall sets then need intervals).
    pub fn bans_prefixes(&self) -> bool {
        self.ipv4_prefix < 32 || self.ipv6_prefix < 128
    }
}

/// How bans grow for an address banned before (`bantime_increment`).
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    pub rule: IncrementRule,
    /// Upper bound of any escalated ban, seconds (`None`: unbounded).
    pub maxtime: Option<i64>,
    /// Earlier bans count if they started within this many seconds.
    pub window: i64,
    /// Whether bans by other jails count too (recidive).
    pub across_jails: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IncrementRule {
    /// bantime × factor^(n−1).
    Factor(f64),
    /// The n-th ban lasts `list[n−1]` (the last entry repeats); `None` = permanent.
    List(Vec<Option<i64>>),
}

impl Increment {
    /// The length of ban number `n` (1 = first), given the jail's `bantime`.
    pub fn bantime(&self, base: Option<i64>, n: u32) -> Option<i64> {
        let raw = match &self.rule {
            IncrementRule::Factor(f) => base.map(|b| {
                let v = b as f64 * f.powi(n.saturating_sub(1).min(1000) as i32);
                if v.is_finite() && v < i64::MAX as f64 {
                    v as i64
                } else {
                    i64::MAX
                }
            }),
            IncrementRule::List(list) => {
                let i = (n.max(1) as usize - 1).min(list.len().saturating_sub(1));
                list.get(i).copied().unwrap_or(base)
            }
        };
        match (raw, self.maxtime) {
            (Some(v), Some(m)) => Some(v.min(m)),
            (None, Some(m)) if matches!(self.rule, IncrementRule::Factor(_)) => Some(m),
            (v, _) => v,
        }
    }
}

/// A ban the jail decided on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BanDecision {
    pub jail: String,
    pub net: IpNet,
    /// Time of the failure that triggered the ban (line time).
    pub at: UnixTime,
    /// Failures inside the window when the ban was decided.
    pub failures: u32,
    /// Ban length, seconds; `None`: permanent.
    pub bantime: Option<i64>,
    /// When the ban ends (`now + bantime`); `None`: never.
    pub expires: Option<UnixTime>,
    /// Which ban of this address this is (1 = first), within the increment window.
    pub count: u32,
}

/// What one failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `failures` inside the window so far.
    Counted { failures: u32 },
    /// Boxed: a verdict is returned for every failure and almost never
    /// is a ban, so it stays small enough to be passed in registers.
    Ban(Box<BanDecision>),
    /// Already banned: not counted, no second ban.
    AlreadyBanned,
    /// Never banned, and why.
    Ignored(IgnoreReason),
    /// Older than `findtime` before now: cannot contribute to a ban any more.
    TooOld,
}

/// Per-address maps: foldhash, seeded per process (attackers choose the
/// addresses, so not a fixed seed), several times faster than SipHash on
/// these small keys.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

#[derive(Debug)]
pub struct Jail {
    pub settings: JailSettings,
    failures: failures::Failures,
    /// Failures of captured subnets of other lengths than the jail's own.
    subnets: subnets::Subnets,
    /// Active bans known to this jail: net → expiry (`None`: permanent).
    bans: Map<IpNet, Option<UnixTime>>,
    /// At least the keys of `bans`, as bits: most failures are of keys
    /// never banned, answered without a lookup in `bans`.
    ban_marks: marks::Marks,
    /// Start times of recent bans per key (own, and other jails' when
    /// `across_jails`), at most `HISTORY_CAP` each, for escalation.
    history: Map<IpNet, VecDeque<UnixTime>>,
    since_sweep: u32,
    /// Failures attributed to a trusted proxy (a misreading filter).
    pub proxy: proxies::ProxyCaptures,
}

/// Ban times remembered per address for escalation.
const HISTORY_CAP: usize = 32;

impl Jail {
    pub fn new(settings: JailSettings) -> Jail {
        Jail {
            failures: failures::Failures::new(
                settings.maxretry,
                settings.ipv4_prefix,
                settings.ipv6_prefix,
            ),
            subnets: subnets::Subnets::default(),
            settings,
            bans: Map::default(),
            ban_marks: marks::Marks::default(),
            history: Map::default(),
            since_sweep: 0,
            proxy: Default::default(),
        }
    }

    /// Takes new settings (a reload keeps the jail's state). The failure
    /// table is laid out by `maxretry` and keyed by the prefix lengths: a
    /// new `maxretry` moves the counts into a table of the new layout; new
    /// prefix lengths start the counts afresh (a stored network cannot be
    /// split back into addresses). Bans and their history stay.
    pub fn reconfigure(&mut self, settings: JailSettings) {
        let prefixes = |s: &JailSettings| (s.ipv4_prefix, s.ipv6_prefix);
        if prefixes(&self.settings) != prefixes(&settings) {
            self.failures = failures::Failures::new(
                settings.maxretry,
                settings.ipv4_prefix,
                settings.ipv6_prefix,
            );
            self.subnets = subnets::Subnets::default();
        } else if self.settings.maxretry != settings.maxretry {
            self.failures = self.failures.with_maxretry(settings.maxretry);
        }
        self.settings = settings;
    }

    /// Counts one failure of `addr` seen at `line_time`.
    pub fn failure(&mut self, addr: IpAddr, line_time: UnixTime, now: UnixTime) -> Verdict {
        self.failure_in(addr, None, line_time, now)
    }

    /// Counts one failure of `addr`, or of the subnet of length `prefix`
    /// the filter captured there (fail2ban's `<SUBNET>`), seen at
    /// `line_time`: counted and banned per [`JailSettings::key_in`]. A
    /// subnet that overlaps the allow-list anywhere (an `ignoreip` entry,
    /// a trusted proxy, with `ignoreself` loopback or an own address) is
    /// never banned.
    // Always inlined: the engine's loop runs it for every failure, and the
    // call and the verdict's copy would cost a quarter of it.
    #[inline(always)]
    pub fn failure_in(
        &mut self,
        addr: IpAddr,
        prefix: Option<u8>,
        line_time: UnixTime,
        now: UnixTime,
    ) -> Verdict {
        if prefix.is_some() {
            return self.captured_failure(addr, prefix, line_time, now);
        }
        if let Some(reason) = self.settings.ignore.check(addr) {
            return Verdict::Ignored(reason);
        }
        if now - line_time >= self.settings.findtime {
            return Verdict::TooOld;
        }
        // The key once (this runs for every failure), as the table keeps it.
        let key = self.failures.key(addr);
        self.key_failure(key, line_time, now)
    }

    /// [`failure_in`](Self::failure_in) of a captured subnet (`<SUBNET>`):
    /// counted apart when coarser than the jail's prefix, else under the
    /// address's own key; either way ignored when it overlaps the
    /// allow-list.
    #[cold]
    #[inline(never)]
    fn captured_failure(
        &mut self,
        addr: IpAddr,
        prefix: Option<u8>,
        line_time: UnixTime,
        now: UnixTime,
    ) -> Verdict {
        let subnet = self.settings.subnet_key(addr, prefix);
        let net = subnet.unwrap_or_else(|| self.settings.key(addr));
        if let Some(reason) = self.settings.ignore.check_net(net) {
            return Verdict::Ignored(reason);
        }
        if now - line_time >= self.settings.findtime {
            return Verdict::TooOld;
        }
        match subnet {
            Some(net) => self.subnet_failure(net, line_time, now),
            None => {
                let key = self.failures.key(addr);
                self.key_failure(key, line_time, now)
            }
        }
    }

    /// Counts a failure (not ignored, not too old) under its key in the
    /// jail's own table.
    #[inline(always)]
    fn key_failure(&mut self, key: failures::Key, line_time: UnixTime, now: UnixTime) -> Verdict {
        if self.key_may_be_banned(key) {
            let net = self.failures.net(key);
            if self.is_banned(&net, now) {
                return Verdict::AlreadyBanned;
            }
        }
        // Sweep after as many failures as entries it would visit (at least
        // 4096): its cost stays a constant per failure however many
        // addresses are tracked.
        self.since_sweep += 1;
        if self.since_sweep >= 4096 {
            self.sweep_if_due(now);
        }
        if self.failures.len() >= self.settings.max_tracked && !self.failures.contains_key(key) {
            self.make_room(line_time);
        }
        let findtime = self.settings.findtime;
        let failures = self
            .failures
            .record_key(key, line_time, line_time - findtime) as u32;
        if failures < self.settings.maxretry {
            return Verdict::Counted { failures };
        }
        self.ban_key(key, failures, line_time, now)
    }

    /// The ban of `key`, which reached `maxretry` with `failures` at
    /// `line_time` (out of the counting loop: one failure in many).
    #[inline(never)]
    fn ban_key(
        &mut self,
        key: failures::Key,
        failures: u32,
        line_time: UnixTime,
        now: UnixTime,
    ) -> Verdict {
        self.failures.remove_key(key);
        let net = self.failures.net(key);
        let mut ban = self.decide(net, now, None);
        ban.at = line_time;
        ban.failures = failures;
        Verdict::Ban(Box::new(ban))
    }

    /// Sweeps once there have been as many failures since the last sweep
    /// as entries it would visit.
    #[cold]
    #[inline(never)]
    fn sweep_if_due(&mut self, now: UnixTime) {
        let entries = self.failures.len() + self.bans.len() + self.history.len();
        if self.since_sweep as usize >= entries {
            self.sweep(now);
        }
    }

    /// Whether the network of `key` may be under a ban (`false`: it is not),
    /// from the marks alone.
    #[inline]
    fn key_may_be_banned(&self, key: failures::Key) -> bool {
        if self.bans.is_empty() {
            return false;
        }
        let (v4, v6) = self.failures.prefixes();
        match key {
            failures::Key::V4(k) => self.ban_marks.may_hold_v4(k, v4),
            failures::Key::V6(k) => self.ban_marks.may_hold_v6(failures::v6_bits(&k), v6),
        }
    }

    /// [`failure_in`](Self::failure_in) for a subnet that is not the
    /// jail's own prefix: counted in its own table.
    fn subnet_failure(&mut self, net: IpNet, line_time: UnixTime, now: UnixTime) -> Verdict {
        if self.is_banned(&net, now) {
            return Verdict::AlreadyBanned;
        }
        let findtime = self.settings.findtime;
        // Bounded on its own by `max_tracked`, like the address table.
        if self.subnets.len() >= self.settings.max_tracked && !self.subnets.contains(&net) {
            self.subnets.retain_after(line_time - findtime);
            if self.subnets.len() >= self.settings.max_tracked {
                self.subnets.evict_quarter();
            }
        }
        let cap = self.settings.maxretry.max(1) as usize;
        let failures = self
            .subnets
            .record(net, line_time, line_time - findtime, cap) as u32;
        if failures < self.settings.maxretry {
            return Verdict::Counted { failures };
        }
        self.subnets.remove(&net);
        let mut ban = self.decide(net, now, None);
        ban.at = line_time;
        ban.failures = failures;
        Verdict::Ban(Box::new(ban))
    }

    /// Bans `net` now, outside counting (manual `ban`); `bantime` overrides the
    /// jail's (`Some(None)`: permanent). Escalation applies when not overridden.
    pub fn manual_ban(
        &mut self,
        net: IpNet,
        now: UnixTime,
        bantime: Option<Option<i64>>,
    ) -> BanDecision {
        self.failures.remove(&net);
        self.subnets.remove(&net);
        self.decide(net, now, bantime)
    }

    fn decide(&mut self, net: IpNet, now: UnixTime, bantime: Option<Option<i64>>) -> BanDecision {
        let count = self.prior_bans(&net, now) + 1;
        let bantime = bantime.unwrap_or_else(|| match &self.settings.increment {
            Some(inc) => inc.bantime(self.settings.bantime, count),
            None => self.settings.bantime,
        });
        let expires = bantime.map(|b| now.saturating_add(b));
        self.insert_ban(net, expires);
        self.note_history(net, now);
        BanDecision {
            jail: self.settings.name.clone(),
            net,
            at: now,
            failures: 0,
            bantime,
            expires,
            count,
        }
    }

    /// Earlier bans of `net` inside the increment window (0 without increment).
    fn prior_bans(&self, net: &IpNet, now: UnixTime) -> u32 {
        let Some(inc) = &self.settings.increment else {
            return 0;
        };
        self.history.get(net).map_or(0, |h| {
            h.iter()
                .filter(|&&t| t > now - inc.window && t <= now)
                .count() as u32
        })
    }

    /// Remembers that `net` was banned at `at` (here, by another jail when
    /// `across_jails`, or restored from the store).
    pub fn note_history(&mut self, net: IpNet, at: UnixTime) {
        let h = self.history.entry(net).or_default();
        if h.len() == HISTORY_CAP {
            h.pop_front();
        }
        h.push_back(at);
    }

    /// Whether `net` is under an active ban at `now`.
    pub fn is_banned(&self, net: &IpNet, now: UnixTime) -> bool {
        !self.bans.is_empty()
            && self.ban_marks.may_hold(net)
            && match self.bans.get(net) {
                Some(None) => true,
                Some(Some(e)) => *e > now,
                None => false,
            }
    }

    /// Records a ban made elsewhere (restored, manual, fleet) so it is not repeated.
    pub fn note_ban(&mut self, net: IpNet, expires: Option<UnixTime>) {
        self.failures.remove(&net);
        self.subnets.remove(&net);
        self.insert_ban(net, expires);
    }

    /// Records an active ban (every ban goes through here: `ban_marks`
    /// must hold its key).
    fn insert_ban(&mut self, net: IpNet, expires: Option<UnixTime>) {
        self.ban_marks.mark(&net);
        self.bans.insert(net, expires);
    }

    /// Forgets a ban (manual unban); counting starts again from zero.
    pub fn forget_ban(&mut self, net: &IpNet) -> bool {
        self.bans.remove(net).is_some()
    }

    /// Addresses with failures in memory.
    pub fn tracked(&self) -> usize {
        self.failures.len() + self.subnets.len()
    }

    /// Failures remembered per tracked address (for status: top offenders).
    pub fn tracked_failures(&self) -> impl Iterator<Item = (IpNet, usize)> + '_ {
        self.failures.counts().chain(self.subnets.counts())
    }

    /// Active bans at `now`.
    pub fn active_bans(&self, now: UnixTime) -> impl Iterator<Item = (&IpNet, Option<UnixTime>)> {
        self.bans
            .iter()
            .filter(move |(_, e)| e.is_none_or(|e| e > now))
            .map(|(n, e)| (n, *e))
    }

    /// Drops expired bans and addresses whose failures all left the window.
    pub fn sweep(&mut self, now: UnixTime) {
        self.since_sweep = 0;
        self.bans.retain(|_, e| e.is_none_or(|e| e > now));
        self.ban_marks.rebuild(self.bans.keys());
        let window = self.settings.increment.as_ref().map_or(0, |i| i.window);
        self.history
            .retain(|_, h| h.back().is_some_and(|&t| t > now - window));
        self.failures.retain_after(now - self.settings.findtime);
        self.subnets.retain_after(now - self.settings.findtime);
    }

    #[cold]
    #[inline(never)]
    fn make_room(&mut self, line_time: UnixTime) {
        self.failures
            .retain_after(line_time - self.settings.findtime);
        if self.failures.len() >= self.settings.max_tracked {
            // A quarter at a time: each eviction pass visits every entry, so
            // a flood of new addresses pays a few visits per address.
            self.failures.evict_quarter();
        }
    }
}

#[cfg(test)]
mod tests;
