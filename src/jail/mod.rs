//! Jails: per-address failure counting in a sliding window and the ban decision.
//!
//! Owns the counting state of one jail and nothing else: it never reads lines,
//! never runs a regex and never touches the firewall. Time is passed in by the
//! caller (`line_time` for windows, `now` for ban bookkeeping), which is how the
//! daemon (wall clock) and dry-run (clock driven by line timestamps) share it.
//!
//! Memory bound: one tracked address costs its hash-map slot (~56 bytes with the
//! key and a small ring header) plus 8 bytes per remembered failure, at most
//! `maxretry` of them; at most `max_tracked` addresses are tracked per jail
//! (default 100,000, i.e. about 10 MiB at `maxretry: 5`). When full, entries
//! whose failures have all left the window go first, then the stalest tenth.

pub mod engine;
pub mod ignore;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

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
}

/// What one failure led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `failures` inside the window so far.
    Counted { failures: u32 },
    Ban(BanDecision),
    /// Already banned: not counted, no second ban.
    AlreadyBanned,
    /// Never banned, and why.
    Ignored(IgnoreReason),
    /// Older than `findtime` before now: cannot contribute to a ban any more.
    TooOld,
}

#[derive(Debug)]
pub struct Jail {
    pub settings: JailSettings,
    failures: HashMap<IpNet, VecDeque<UnixTime>>,
    /// Active bans known to this jail: net → expiry (`None`: permanent).
    bans: HashMap<IpNet, Option<UnixTime>>,
    since_sweep: u32,
}

impl Jail {
    pub fn new(settings: JailSettings) -> Jail {
        Jail { settings, failures: HashMap::new(), bans: HashMap::new(), since_sweep: 0 }
    }

    /// Counts one failure of `addr` seen at `line_time`.
    pub fn failure(&mut self, addr: IpAddr, line_time: UnixTime, now: UnixTime) -> Verdict {
        if let Some(reason) = self.settings.ignore.check(addr) {
            return Verdict::Ignored(reason);
        }
        let findtime = self.settings.findtime;
        if now - line_time >= findtime {
            return Verdict::TooOld;
        }
        let net = IpNet::from(addr);
        if self.is_banned(&net, now) {
            return Verdict::AlreadyBanned;
        }
        self.since_sweep += 1;
        if self.since_sweep >= 4096 {
            self.sweep(now);
        }
        if !self.failures.contains_key(&net) && self.failures.len() >= self.settings.max_tracked {
            self.make_room(line_time);
        }
        let cap = self.settings.maxretry.max(1) as usize;
        let ring = self.failures.entry(net).or_insert_with(|| VecDeque::with_capacity(cap.min(8)));
        while ring.front().is_some_and(|&t| t <= line_time - findtime) {
            ring.pop_front();
        }
        if ring.len() == cap {
            ring.pop_front();
        }
        ring.push_back(line_time);
        let failures = ring.len() as u32;
        if failures < self.settings.maxretry {
            return Verdict::Counted { failures };
        }
        self.failures.remove(&net);
        let bantime = self.settings.bantime;
        let expires = bantime.map(|b| now.saturating_add(b));
        self.bans.insert(net, expires);
        Verdict::Ban(BanDecision { jail: self.settings.name.clone(), net, at: line_time, failures, bantime, expires })
    }

    /// Whether `net` is under an active ban at `now`.
    pub fn is_banned(&self, net: &IpNet, now: UnixTime) -> bool {
        matches!(self.bans.get(net), Some(None)) || matches!(self.bans.get(net), Some(Some(e)) if *e > now)
    }

    /// Records a ban made elsewhere (restored, manual, fleet) so it is not repeated.
    pub fn note_ban(&mut self, net: IpNet, expires: Option<UnixTime>) {
        self.failures.remove(&net);
        self.bans.insert(net, expires);
    }

    /// Forgets a ban (manual unban); counting starts again from zero.
    pub fn forget_ban(&mut self, net: &IpNet) -> bool {
        self.bans.remove(net).is_some()
    }

    /// Addresses with failures in memory.
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    /// Failures remembered per tracked address (for status: top offenders).
    pub fn tracked_failures(&self) -> impl Iterator<Item = (&IpNet, usize)> {
        self.failures.iter().map(|(n, r)| (n, r.len()))
    }

    /// Active bans at `now`.
    pub fn active_bans(&self, now: UnixTime) -> impl Iterator<Item = (&IpNet, Option<UnixTime>)> {
        self.bans.iter().filter(move |(_, e)| e.is_none_or(|e| e > now)).map(|(n, e)| (n, *e))
    }

    /// Drops expired bans and addresses whose failures all left the window.
    pub fn sweep(&mut self, now: UnixTime) {
        self.since_sweep = 0;
        self.bans.retain(|_, e| e.is_none_or(|e| e > now));
        let edge = now - self.settings.findtime;
        self.failures.retain(|_, r| r.back().is_some_and(|&t| t > edge));
    }

    fn make_room(&mut self, line_time: UnixTime) {
        let edge = line_time - self.settings.findtime;
        self.failures.retain(|_, r| r.back().is_some_and(|&t| t > edge));
        if self.failures.len() < self.settings.max_tracked {
            return;
        }
        let mut newest: Vec<UnixTime> = self.failures.values().filter_map(|r| r.back().copied()).collect();
        let cut = (newest.len() / 10).max(1);
        let (_, &mut limit, _) = newest.select_nth_unstable(cut - 1);
        let mut evict = cut;
        self.failures.retain(|_, r| {
            let stale = r.back().is_none_or(|&t| t <= limit);
            if stale && evict > 0 {
                evict -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(maxretry: u32, findtime: i64, bantime: Option<i64>) -> Jail {
        Jail::new(JailSettings {
            name: "j".into(),
            maxretry,
            findtime,
            bantime,
            ignore: IgnoreList::new(vec!["10.0.0.0/8".parse().unwrap()], false),
            max_tracked: 1000,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_on_maxretry_within_window() {
        let mut j = jail(3, 60, Some(600));
        assert_eq!(j.failure(ip("1.2.3.4"), 100, 100), Verdict::Counted { failures: 1 });
        assert_eq!(j.failure(ip("1.2.3.4"), 110, 110), Verdict::Counted { failures: 2 });
        match j.failure(ip("1.2.3.4"), 120, 120) {
            Verdict::Ban(b) => {
                assert_eq!((b.at, b.failures, b.expires), (120, 3, Some(720)));
                assert_eq!(b.net, "1.2.3.4/32".parse::<IpNet>().unwrap());
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(j.failure(ip("1.2.3.4"), 121, 121), Verdict::AlreadyBanned);
        assert_eq!(j.tracked(), 0);
    }

    #[test]
    fn failures_slide_out_of_the_window() {
        let mut j = jail(3, 60, Some(600));
        j.failure(ip("1.2.3.4"), 0, 0);
        j.failure(ip("1.2.3.4"), 30, 30);
        assert_eq!(j.failure(ip("1.2.3.4"), 61, 61), Verdict::Counted { failures: 2 });
        assert!(matches!(j.failure(ip("1.2.3.4"), 62, 62), Verdict::Ban(_)));
    }

    #[test]
    fn flood_bans_once_then_rebans_after_expiry() {
        let mut j = jail(2, 60, Some(10));
        let bans = (0..400).filter(|_| matches!(j.failure(ip("5.5.5.5"), 1, 1), Verdict::Ban(_))).count();
        assert_eq!(bans, 1);
        assert!(j.is_banned(&"5.5.5.5/32".parse().unwrap(), 10));
        assert!(!j.is_banned(&"5.5.5.5/32".parse().unwrap(), 11));
        j.failure(ip("5.5.5.5"), 12, 12);
        assert!(matches!(j.failure(ip("5.5.5.5"), 13, 13), Verdict::Ban(_)));
    }

    #[test]
    fn permanent_ban_never_expires() {
        let mut j = jail(1, 60, None);
        assert!(matches!(j.failure(ip("::1:2"), 0, 0), Verdict::Ban(BanDecision { expires: None, .. })));
        assert_eq!(j.failure(ip("::1:2"), i64::MAX / 2, i64::MAX / 2), Verdict::AlreadyBanned);
    }

    #[test]
    fn ignored_addresses_are_never_counted() {
        let mut j = jail(1, 60, Some(10));
        assert!(matches!(j.failure(ip("10.1.2.3"), 0, 0), Verdict::Ignored(_)));
        assert_eq!(j.tracked(), 0);
    }

    #[test]
    fn lines_older_than_findtime_do_not_count() {
        let mut j = jail(1, 60, Some(10));
        assert_eq!(j.failure(ip("1.1.1.1"), 0, 60), Verdict::TooOld);
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut j = jail(5, 1_000_000, Some(10));
        for i in 0..5000u32 {
            j.failure(IpAddr::from(i.to_be_bytes()), i as i64, i as i64);
            assert!(j.tracked() <= 1000);
        }
        // The newest address survived eviction.
        assert!(j.tracked_failures().any(|(n, _)| n.addr() == IpAddr::from(4999u32.to_be_bytes())));
    }
}
