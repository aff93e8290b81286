//! `banwarden ban --from FILE`: many bans in one store commit and one nft
//! transaction.
//!
//! Owns validating a bulk request against the running jails and their
//! allow-lists; recording and applying go through the daemon's one path
//! (`Daemon::record`, then the firewall worker), as for every other ban.

use std::fmt::Write as _;

use ipnet::IpNet;

use super::Daemon;
use crate::config::parse_net;
use crate::control::protocol::{BulkEntry, Reply, Response};
use crate::events::{BulkBanned, InternalEvent};
use crate::UnixTime;

/// Refusals listed in the answer (the rest are counted).
const SHOWN: usize = 5;

impl Daemon {
    /// Bans every entry, or none when one names an unknown jail or is not an
    /// address; allow-listed entries (ignoreip, trusted_proxies, ignoreself)
    /// are skipped and reported.
    pub(super) async fn ban_many(&mut self, entries: Vec<BulkEntry>, now: UnixTime) -> Response {
        let mut parsed: Vec<(usize, IpNet, Option<Option<i64>>)> =
            Vec::with_capacity(entries.len());
        let mut jails: Vec<&str> = Vec::new();
        let mut index: Vec<usize> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let net = match parse_net(&e.addr) {
                Ok(n) => n,
                Err(msg) => {
                    return Response::err(format!("entry {}: {msg}; nothing was banned", i + 1))
                }
            };
            let j = match jails.iter().position(|j| *j == e.jail) {
                Some(j) => j,
                None => {
                    if self.running.engine.jail_mut(&e.jail).is_none() {
                        return Response::err(format!(
                            "entry {}: no running jail named `{}` (running: {}); nothing was banned",
                            i + 1,
                            e.jail,
                            self.running.jail_names().join(", ")
                        ));
                    }
                    jails.push(&e.jail);
                    jails.len() - 1
                }
            };
            index.push(j);
            let bantime = e.seconds.map(|s| if s < 0 { None } else { Some(s) });
            parsed.push((i, net, bantime));
        }
        let jails: Vec<String> = jails.into_iter().map(str::to_string).collect();
        let mut skipped = Vec::new();
        let mut batch = Vec::with_capacity(parsed.len());
        for ((i, net, bantime), j) in parsed.into_iter().zip(index) {
            let Some(rt) = self.running.engine.jail_mut(&jails[j]) else {
                continue;
            };
            if let Some(reason) = rt.jail.settings.ignore.check(net.addr()) {
                skipped.push(format!("entry {}: {net} is {reason}", i + 1));
                continue;
            }
            let mut decision = rt.jail.manual_ban(net, now, bantime);
            decision.at = now;
            rt.stats.bans += 1;
            batch.push(decision);
        }
        let count = batch.len();
        let mut per_jail: Vec<(String, u64)> = jails.iter().map(|j| (j.clone(), 0)).collect();
        for b in &batch {
            if let Some(slot) = per_jail.iter_mut().find(|(j, _)| *j == b.jail) {
                slot.1 += 1;
            }
        }
        per_jail.retain(|(_, n)| *n > 0);
        BulkBanned {
            per_jail: &per_jail,
            skipped: skipped.len(),
        }
        .emit(self.metrics.as_deref());
        // One store commit, then one nft transaction; answer once it applied.
        // Manual bans: published to the fleet like `ban` (shared jails).
        let ops = self.record(&mut batch, now, Some(crate::fleet::Claim::Always));
        if let Err(e) = self.worker.apply(ops).await {
            return Response::err(format!(
                "{count} ban(s) recorded but not in the kernel yet: {e}"
            ));
        }
        self.report_metrics();
        let mut message = format!("banned {count} entries");
        if !skipped.is_empty() {
            let _ = write!(message, "; {} skipped (allow-listed):", skipped.len());
            for s in skipped.iter().take(SHOWN) {
                let _ = write!(message, "\n  {s}");
            }
            if skipped.len() > SHOWN {
                let _ = write!(message, "\n  ... and {} more", skipped.len() - SHOWN);
            }
        }
        Response::ok(Reply::Done { count, message })
    }
}
