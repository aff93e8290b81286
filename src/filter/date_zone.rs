//! Civil-date arithmetic and the local time zone for the date detector:
//! days from and to dates, and placing a local date-time in UTC through a
//! precomputed table of the zone's offset changes.
//!
//! Owns only time arithmetic; it reads no line.

use jiff::{civil::DateTime, tz::TimeZone, Timestamp};

use super::{Parsed, FUTURE_SLACK};
use crate::UnixTime;

pub(super) const fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days since 1970-01-01 (H. Hinnant's `days_from_civil`); `None` if invalid.
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    const LEN: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let len = LEN[m as usize - 1] + u32::from(m == 2 && is_leap(y));
    if d > len {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = i64::from((153 * ((m + 9) % 12) + 2) / 5 + d - 1);
    Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468)
}

/// (year, month, day) of a day number.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Local wall-clock seconds (as if UTC) as a jiff civil date-time.
pub(super) fn to_datetime(local: i64) -> Option<DateTime> {
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let (h, mi, s) = ((s / 3600) as i8, (s / 60 % 60) as i8, (s % 60) as i8);
    DateTime::new(i16::try_from(y).ok()?, m as i8, d as i8, h, mi, s, 0).ok()
}

/// The local zone with its offset changes for 1900..2200 precomputed and
/// indexed by ~48-day buckets, so a lookup costs a step or two instead of a
/// jiff call per line. Transition `i` puts `offsets[i]` in force from
/// `utc[i]` on; `local[i]` is the first local wall-clock second (as if UTC)
/// read with it ("compatible" disambiguation, as jiff: a time in a gap moves
/// forward, a time in a fold takes the earlier instant).
#[derive(Debug)]
pub(super) struct Zone {
    pub(super) tz: TimeZone,
    pub(super) first: i32,
    pub(super) offsets: Vec<i32>,
    pub(super) utc: Vec<i64>,
    pub(super) local: Vec<i64>,
    pub(super) utc_index: Vec<u32>,
    pub(super) local_index: Vec<u32>,
}

const TABLE_LO: i64 = -2_208_988_800; // 1900-01-01
const TABLE_HI: i64 = 7_258_118_400; // 2200-01-01
const BUCKET_SHIFT: u32 = 22;

impl Zone {
    pub(super) fn new(tz: TimeZone) -> Zone {
        let lo = Timestamp::from_second(TABLE_LO).unwrap_or(Timestamp::UNIX_EPOCH);
        let first = tz.to_offset(lo).seconds();
        let (mut offsets, mut utc, mut local) = (Vec::new(), Vec::new(), Vec::new());
        for t in tz.following(lo) {
            let at = t.timestamp().as_second();
            if at >= TABLE_HI {
                break;
            }
            let offset = t.offset().seconds();
            let prev = offsets.last().copied().unwrap_or(first);
            local.push(at + i64::from(prev.max(offset)));
            utc.push(at);
            offsets.push(offset);
        }
        let sorted = |k: &[i64]| k.windows(2).all(|w| w[0] < w[1]);
        let index = |keys: &[i64]| -> Vec<u32> {
            if !sorted(keys) {
                return Vec::new(); // never seen; lookups fall back to jiff
            }
            (0..=(TABLE_HI - TABLE_LO) >> BUCKET_SHIFT)
                .map(|b| keys.partition_point(|&k| k < TABLE_LO + (b << BUCKET_SHIFT)) as u32)
                .collect()
        };
        let (utc_index, local_index) = (index(&utc), index(&local));
        Zone {
            tz,
            first,
            offsets,
            utc,
            local,
            utc_index,
            local_index,
        }
    }

    /// The offset in force at `t` per `keys`, or `None` outside the table.
    pub(super) fn lookup(&self, keys: &[i64], index: &[u32], t: i64) -> Option<i32> {
        if !(TABLE_LO..TABLE_HI).contains(&t) {
            return None;
        }
        let mut i = *index.get(((t - TABLE_LO) >> BUCKET_SHIFT) as usize)? as usize;
        while keys.get(i).is_some_and(|&k| k <= t) {
            i += 1;
        }
        Some(if i == 0 {
            self.first
        } else {
            self.offsets[i - 1]
        })
    }

    pub(super) fn offset_at(&self, utc: i64) -> i32 {
        self.lookup(&self.utc, &self.utc_index, utc)
            .unwrap_or_else(|| {
                Timestamp::from_second(utc).map_or(0, |t| self.tz.to_offset(t).seconds())
            })
    }

    /// Local wall-clock seconds (as if UTC) to UnixTime.
    pub(super) fn local_to_utc(&self, local: i64) -> Option<i64> {
        if let Some(off) = self.lookup(&self.local, &self.local_index, local) {
            return Some(local - i64::from(off));
        }
        let ts = self.tz.to_ambiguous_timestamp(to_datetime(local)?);
        Some(ts.compatible().ok()?.as_second())
    }

    pub(super) fn local_days(&self, now: UnixTime) -> i64 {
        (now + i64::from(self.offset_at(now))).div_euclid(86_400)
    }

    /// Places a parsed date in time; a missing year is now's local year, or
    /// the previous one if that would be more than two days ahead of `now`.
    pub(super) fn resolve(&self, p: &Parsed, now: UnixTime) -> Option<UnixTime> {
        let (h, mi, s) = p.hms;
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let secs = i64::from(h * 3600 + mi * 60 + s.min(59));
        let at = |y: i64| {
            if !(-9999..=9999).contains(&y) {
                return None; // jiff's range; keeps the arithmetic far from overflow
            }
            let local = days_from_civil(y, p.mo, p.d)? * 86_400 + secs;
            match p.offset {
                Some(o) => Some(local - i64::from(o)),
                None => self.local_to_utc(local),
            }
        };
        match p.year {
            Some(y) => at(y),
            None => {
                let y = civil_from_days(self.local_days(now)).0;
                match at(y) {
                    Some(t) if t <= now.saturating_add(FUTURE_SLACK) => Some(t),
                    _ => at(y - 1),
                }
            }
        }
    }
}
