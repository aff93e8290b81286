//! fail2ban's multi-line sessions (`<F-MLFID>`): lines of one session (the
//! prefix `<F-MLFID>` captures, e.g. `host sshd[4101]:`) share what they
//! learn. A failure without an address waits for a later line of its
//! session that names one (even an `<F-NOFAIL>` line); a failure without an
//! address after such a line takes its address; `<F-MLFFORGET>` ends the
//! session, `<F-MLFGAINED>` ends it without failure. A session whose lines
//! name two user names has no `<F-NOFAIL>` or `<F-MLFGAINED>` lines any
//! more: they count as failures, as in fail2ban.
//!
//! Owns the per-stream table of open sessions, bounded (oldest dropped).
//! It lives in the stream's `LineState`: never shared between streams or
//! filters. It decides only how a match of a session line counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use crate::UnixTime;

/// Open sessions a stream keeps at most: fail2ban's 100, oldest opened
/// dropped first as fail2ban drops them. More would not be safer: a
/// session nobody closed would lend its host and user names to a later
/// connection that reuses its process id (fail2ban-regex and dry-run agree
/// line for line on sshd logs only with the same bound).
pub const MAX_SESSIONS: usize = 100;

/// Seconds a session lasts from its first line, closed or not: fail2ban's
/// 5 minutes. A connection nobody closed (a timeout sshd logs in a line no
/// failregex knows) must not lend its address or user names to a
/// connection that reuses its process id hours later. Measured in the
/// lines' own time, so dry-run on an old log forgets what the daemon
/// forgot reading it live.
pub const SESSION_SECONDS: UnixTime = 300;

#[derive(Debug, Default)]
struct Session {
    /// When it was opened, in `Sessions::opened` order: an entry of `order`
    /// with another number is a closed session's, not this one's.
    seq: u64,
    /// When it is forgotten (its first line's time + [`SESSION_SECONDS`]);
    /// None when that line had no time.
    expires: Option<UnixTime>,
    host: Option<IpAddr>,
    /// A failure (its failregex) waiting for an address.
    pending: Option<usize>,
    /// The first user name a line of the session gave.
    user: Option<Box<[u8]>>,
    /// Whether a line gave another user name: from then on no line of the
    /// session is `<F-NOFAIL>` or `<F-MLFGAINED>` (fail2ban's guard against
    /// trying several users on one connection, then logging in).
    several_users: bool,
}

/// Open sessions by id: foldhash, seeded per process (log lines choose
/// the ids), several times cheaper per line than std's SipHash.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// Open sessions of one stream.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Map<Arc<[u8]>, Session>,
    /// Ids in the order their sessions were opened, each with its session's
    /// `seq`; closed sessions' entries stay until passed (amortised).
    order: VecDeque<(Arc<[u8]>, u64)>,
    /// Sessions opened so far.
    opened: u64,
}

/// What a failregex match of a session line carried.
#[derive(Debug, Clone, Copy)]
pub struct SessionMatch {
    pub regex: usize,
    pub host: Option<IpAddr>,
    pub nofail: bool,
    pub forget: bool,
    pub gained: bool,
}

impl Sessions {
    /// How the match `m` on a line of session `id` counts: `Some((regex,
    /// host))` a failure (possibly a waiting one's), `None` none.
    /// `user` is the user name the line gave, if any; `time` the line's
    /// time (a session whose time is up is forgotten first).
    pub fn count(
        &mut self,
        id: &[u8],
        m: SessionMatch,
        user: Option<&[u8]>,
        time: Option<UnixTime>,
    ) -> Option<(usize, IpAddr)> {
        // One lookup for a line of an open session (most lines).
        if let Some(s) = self.open.get_mut(id) {
            let expired = time.is_some_and(|now| s.expires.is_some_and(|e| now >= e));
            if !expired {
                let (out, close) = Self::apply(s, m, user);
                if close {
                    self.remove(id);
                }
                return out;
            }
            self.remove(id);
        }
        // A gained line ends a session; it opens none.
        if m.gained {
            return None;
        }
        let s = self.open_session(id, time);
        let (out, close) = Self::apply(s, m, user);
        if close {
            self.remove(id);
        }
        out
    }

    /// The match `m` of a line of the open session `s`: how it counts,
    /// and whether it ends the session.
    fn apply(
        s: &mut Session,
        mut m: SessionMatch,
        user: Option<&[u8]>,
    ) -> (Option<(usize, IpAddr)>, bool) {
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            match &s.user {
                None => s.user = Some(u.into()),
                Some(first) if **first != *u => s.several_users = true,
                Some(_) => {}
            }
        }
        if s.several_users {
            m.nofail = false;
            m.gained = false;
        }
        if m.gained {
            return (None, true);
        }
        let out = if m.nofail {
            match (m.host, s.pending.take()) {
                (Some(h), Some(regex)) => Some((regex, h)),
                (h, _) => {
                    s.host = h.or(s.host);
                    None
                }
            }
        } else {
            match m.host.or(s.host) {
                Some(h) => {
                    s.host = Some(h);
                    Some((m.regex, h))
                }
                None => {
                    s.pending = Some(m.regex);
                    None
                }
            }
        };
        (out, m.forget)
    }

    /// Opens session `id`, which is not open, dropping the oldest when the
    /// table is full (its id is kept once, shared by the table and the
    /// order).
    fn open_session(&mut self, id: &[u8], time: Option<UnixTime>) -> &mut Session {
        while self.open.len() >= MAX_SESSIONS {
            match self.order.pop_front() {
                // Only the session this entry was pushed for: one closed
                // and opened again since is younger than its old entry.
                Some((old, seq)) => {
                    if self.open.get(&old).is_some_and(|s| s.seq == seq) {
                        self.open.remove(&old);
                    }
                }
                None => self.open.clear(),
            }
        }
        self.opened += 1;
        let seq = self.opened;
        let key: Arc<[u8]> = Arc::from(id);
        self.order.push_back((key.clone(), seq));
        self.open.entry(key).or_insert(Session {
            seq,
            expires: time.map(|t| t.saturating_add(SESSION_SECONDS)),
            ..Session::default()
        })
    }

    /// Closes session `id`. Its key stays in `order` until the eviction
    /// loop or a compaction (amortised) passes it.
    fn remove(&mut self, id: &[u8]) {
        self.open.remove(id);
        if self.order.len() > 2 * MAX_SESSIONS {
            let open = &self.open;
            self.order
                .retain(|(k, seq)| open.get(k).is_some_and(|s| s.seq == *seq));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(regex: usize, host: Option<&str>) -> SessionMatch {
        SessionMatch {
            regex,
            host: host.map(|h| h.parse().unwrap()),
            nofail: false,
            forget: false,
            gained: false,
        }
    }

    #[test]
    fn a_failure_without_address_waits_for_its_session_to_name_one() {
        let mut s = Sessions::default();
        assert_eq!(s.count(b"sshd[1]", m(15, None), None, None), None);
        // Another session's line changes nothing.
        let other = SessionMatch {
            nofail: true,
            ..m(3, Some("192.0.2.9"))
        };
        assert_eq!(s.count(b"sshd[2]", other, None, None), None);
        let bye = SessionMatch {
            nofail: true,
            forget: true,
            ..m(3, Some("192.0.2.1"))
        };
        assert_eq!(
            s.count(b"sshd[1]", bye, None, None),
            Some((15, "192.0.2.1".parse().unwrap()))
        );
        assert_eq!(s.len(), 1, "forgotten");
        // A session that named its address lends it to later failures.
        assert_eq!(
            s.count(b"sshd[2]", m(17, None), None, None),
            Some((17, "192.0.2.9".parse().unwrap()))
        );
        let gained = SessionMatch {
            gained: true,
            ..m(21, Some("192.0.2.9"))
        };
        assert_eq!(s.count(b"sshd[2]", gained, None, None), None);
        assert!(s.is_empty());
    }

    #[test]
    fn a_second_user_name_makes_nofail_and_gained_lines_failures() {
        let mut s = Sessions::default();
        let host = Some("192.0.2.7");
        let nofail = |r| SessionMatch {
            nofail: true,
            ..m(r, host)
        };
        let gained = SessionMatch {
            gained: true,
            ..m(9, host)
        };
        // One user: a nofail line and a login are no failures.
        assert_eq!(s.count(b"a[1]", nofail(1), Some(b"root"), None), None);
        assert_eq!(s.count(b"a[1]", nofail(1), Some(b"root"), None), None);
        assert_eq!(s.count(b"a[1]", gained, Some(b"root"), None), None);
        // A second user name on the connection: both count.
        let ip = "192.0.2.7".parse().unwrap();
        assert_eq!(s.count(b"b[2]", nofail(1), Some(b"root"), None), None);
        assert_eq!(
            s.count(b"b[2]", nofail(2), Some(b"admin"), None),
            Some((2, ip))
        );
        assert_eq!(
            s.count(b"b[2]", gained, Some(b"admin"), None),
            Some((9, ip))
        );
    }

    #[test]
    fn the_oldest_opened_session_goes_first_even_when_an_id_comes_back() {
        let mut s = Sessions::default();
        let ip = "192.0.2.5".parse().unwrap();
        let bye = SessionMatch {
            nofail: true,
            forget: true,
            ..m(1, None)
        };
        // a[0] opens and closes; a[1].. open; a[0] opens again, youngest.
        s.count(b"a[0]", m(0, Some("192.0.2.5")), None, None);
        s.count(b"a[0]", bye, None, None);
        for i in 1..MAX_SESSIONS {
            s.count(format!("a[{i}]").as_bytes(), m(0, None), None, None);
        }
        s.count(b"a[0]", m(0, Some("192.0.2.5")), None, None);
        // Full: the next session drops a[1], the oldest opened, not a[0].
        s.count(b"b[0]", m(0, None), None, None);
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.count(b"a[0]", m(2, None), None, None), Some((2, ip)));
        assert_eq!(
            s.count(b"a[1]", m(2, None), None, None),
            None,
            "a[1] was dropped"
        );
    }

    #[test]
    fn a_session_is_forgotten_five_minutes_after_its_first_line() {
        let mut s = Sessions::default();
        let ip = "192.0.2.8".parse().unwrap();
        let t0 = 1_700_000_000;
        // A connection tries root from 192.0.2.8 and is never closed.
        assert_eq!(
            s.count(b"sshd[7]", m(3, Some("192.0.2.8")), Some(b"root"), Some(t0)),
            Some((3, ip))
        );
        // Within its five minutes a line of it without an address is its.
        let t_last = t0 + SESSION_SECONDS - 1;
        assert_eq!(
            s.count(b"sshd[7]", m(4, None), None, Some(t_last)),
            Some((4, ip))
        );
        // Then the id comes back for another connection: a login with
        // another user name is no failure (the old session is gone), and a
        // failure without an address has none to take.
        let later = t0 + SESSION_SECONDS;
        let login = SessionMatch {
            gained: true,
            ..m(20, Some("198.51.100.4"))
        };
        assert_eq!(
            s.count(b"sshd[7]", login, Some(b"alice"), Some(later)),
            None
        );
        assert_eq!(
            s.count(b"sshd[7]", m(4, None), None, Some(later + 400)),
            None
        );
        // Lines without a time never expire a session.
        assert_eq!(
            s.count(b"sshd[9]", m(3, Some("192.0.2.8")), None, None),
            Some((3, ip))
        );
        assert_eq!(
            s.count(b"sshd[9]", m(4, None), None, Some(later + 9999)),
            Some((4, ip))
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut s = Sessions::default();
        for i in 0..MAX_SESSIONS + 10 {
            s.count(format!("x[{i}]").as_bytes(), m(0, None), None, None);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
