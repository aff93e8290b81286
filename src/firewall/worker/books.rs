//! The worker's book of active bans: per jail, what its sets should hold.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;

use crate::firewall::nft::{Change, NetBook};
use crate::firewall::{BanEntry, SetKind};
use crate::UnixTime;

/// jail → its bans.
pub(super) type Books = HashMap<String, JailBook>;

/// One jail's bans (both families), split as its sets are: those of the jail's
/// prefix length in a plain map, the others kept free of overlaps like the
/// interval sets that hold them.
#[derive(Debug, Default, Clone)]
pub(super) struct JailBook {
    pub(super) exact: NetBook,
    pub(super) nets: NetBook,
}

impl JailBook {
    pub(super) fn ban(
        &mut self,
        kind: SetKind,
        net: IpNet,
        expires: Option<UnixTime>,
    ) -> Vec<Change> {
        match kind {
            SetKind::Exact => self.exact.ban(net, expires, false),
            SetKind::Net => self.nets.ban(net, expires, true),
        }
    }

    pub(super) fn unban(&mut self, kind: SetKind, net: IpNet) -> Vec<Change> {
        match kind {
            SetKind::Exact => self.exact.unban(net, false),
            SetKind::Net => self.nets.unban(net, true),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&IpNet, &Option<UnixTime>)> {
        self.exact.iter().chain(self.nets.iter())
    }

    pub(super) fn prune(&mut self, now: UnixTime) {
        self.exact.prune(now);
        self.nets.prune(now);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.nets.is_empty()
    }
}

pub(super) fn lock(books: &Mutex<Books>) -> MutexGuard<'_, Books> {
    books
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn snapshot(books: &Books, now: UnixTime) -> Vec<BanEntry> {
    let mut out: Vec<BanEntry> = books
        .iter()
        .flat_map(|(jail, book)| {
            book.iter()
                .filter(|(_, e)| e.is_none_or(|e| e > now))
                .map(move |(net, expires)| BanEntry {
                    jail: jail.clone(),
                    net: *net,
                    expires: *expires,
                })
        })
        .collect();
    out.sort_by(|a, b| (&a.jail, a.net).cmp(&(&b.jail, b.net)));
    out
}
