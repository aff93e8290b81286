//! Answers to control requests, computed from the daemon's own state.
//!
//! Runs on the daemon's main task (it owns the state); the socket, permissions
//! and protocol checks are `control`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::mpsc;

use super::{blocking, Daemon};
use crate::config::parse_net;
use crate::control::protocol::{
    BanInfo, DaemonStatus, JailStatus, JailSummary, Offender, Reply, Request, Response, WatchedFile,
};
use crate::events::{BanOrigin, Banned, InternalEvent, ManualUnban};
use crate::firewall::{FirewallOp, Protocol};
use crate::jail::engine::JailRuntime;
use crate::jail::walker::Walked;
use crate::store::BanRecord;

impl Daemon {
    pub(super) async fn answer(
        &mut self,
        request: Request,
        rx: &mut mpsc::Receiver<Walked>,
    ) -> Response {
        let now = crate::now();
        match request {
            Request::Status { jail: None } => Response::ok(Reply::Status(self.status())),
            Request::Status { jail: Some(name) } => match self
                .running
                .engine
                .jails
                .iter()
                .find(|j| j.jail.settings.name == name)
            {
                Some(rt) => Response::ok(Reply::Jail(self.jail_status(rt, now))),
                None => Response::err(self.no_such_jail(&name)),
            },
            Request::Bans { jail } => {
                if let Some(j) = &jail {
                    if !self.has_jail(j) {
                        return Response::err(self.no_such_jail(j));
                    }
                }
                let bans = self.ban_infos(jail.as_deref(), now);
                Response::ok(Reply::Bans { bans })
            }
            Request::Ban {
                jail,
                addr,
                seconds,
            } => self.manual_ban(&jail, &addr, seconds, now).await,
            Request::Unban { addr, jail, all } => {
                self.unban(addr.as_deref(), jail.as_deref(), all).await
            }
            Request::Reload => match self.reload(rx).await {
                Ok(()) => Response::ok(Reply::Done {
                    count: 0,
                    message: "configuration reloaded".into(),
                }),
                Err(e) => Response::err(format!("{e}\nthe running configuration is unchanged")),
            },
            Request::Ignore { addr, seconds } => self.ignore(&addr, seconds, now).await,
            Request::BanMany { entries } => self.ban_many(entries.0, now).await,
        }
    }

    fn has_jail(&self, name: &str) -> bool {
        self.running
            .engine
            .jails
            .iter()
            .any(|j| j.jail.settings.name == name)
    }

    fn no_such_jail(&self, name: &str) -> String {
        format!(
            "no running jail named `{name}` (running: {})",
            self.running.jail_names().join(", ")
        )
    }

    fn status(&self) -> DaemonStatus {
        let now = crate::now();
        let jails = self
            .running
            .engine
            .jails
            .iter()
            .map(|rt| {
                let name = &rt.jail.settings.name;
                JailSummary {
                    name: name.clone(),
                    filter: rt.filter.name().to_string(),
                    failures_tracked: rt.jail.tracked(),
                    active_bans: self
                        .bans
                        .values()
                        .filter(|b| &b.jail == name && active(b, now))
                        .count(),
                    total_bans: rt.stats.bans,
                    lines: rt.stats.lines,
                    matched: rt.stats.matched,
                    health: self.health_of(name),
                    proxy_warning: rt.jail.proxy.warning(),
                }
            })
            .collect();
        let mut files: Vec<WatchedFile> = self
            .running
            .files
            .iter()
            .flat_map(|f| f.positions())
            .map(|p| WatchedFile {
                path: p.path,
                offset: p.offset,
                inode: p.ino,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            config_dir: self.dir.clone(),
            table: self.running.config.global.table.clone(),
            jails,
            files,
            fleet: self.fleet.as_ref().map(|f| f.status()),
        }
    }

    fn jail_status(&self, rt: &JailRuntime, now: i64) -> JailStatus {
        let s = &rt.jail.settings;
        let jc = self.running.config.jail(&s.name);
        let mut top: Vec<Offender> = rt
            .jail
            .tracked_failures()
            .map(|(n, f)| Offender {
                addr: show(&n),
                failures: f,
            })
            .collect();
        top.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.addr.cmp(&b.addr)));
        top.truncate(10);
        let st = rt.stats;
        let counters: BTreeMap<String, u64> = [
            ("lines", st.lines),
            ("matched", st.matched),
            ("missed", st.missed),
            ("ignored_lines", st.ignored_lines),
            ("undated", st.undated),
            ("failures", st.failures),
            ("ignored_addresses", st.ignored_addresses),
            ("too_old", st.too_old),
            ("bad_host", st.bad_host),
            ("skipped", st.skipped),
            ("bans", st.bans),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        JailStatus {
            name: s.name.clone(),
            filter: rt.filter.name().to_string(),
            logpath: jc.map(|j| j.logpath.clone()).unwrap_or_default(),
            maxretry: s.maxretry,
            findtime_seconds: s.findtime,
            bantime_seconds: s.bantime,
            ignoreip: s.ignore.nets().iter().map(|n| n.to_string()).collect(),
            ports: jc
                .map(|j| j.rules.ports.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default(),
            protocol: match jc.map(|j| j.rules.protocol) {
                Some(Protocol::Tcp) => "tcp",
                Some(Protocol::Udp) => "udp",
                _ => "all",
            }
            .to_string(),
            counters,
            top_offenders: top,
            bans: self.ban_infos(Some(&s.name), now),
            last_line: self
                .outbound
                .health
                .times_of(&s.name)
                .and_then(|t| t.last_line),
            last_match: self
                .outbound
                .health
                .times_of(&s.name)
                .and_then(|t| t.last_match),
            health: self.health_of(&s.name),
            proxy_warning: rt.jail.proxy.warning(),
        }
    }

    fn ban_infos(&self, jail: Option<&str>, now: i64) -> Vec<BanInfo> {
        self.bans
            .values()
            .filter(|b| jail.is_none_or(|j| b.jail == j) && active(b, now))
            .map(|b| BanInfo {
                jail: b.jail.clone(),
                addr: show(&b.net),
                banned_at: b.banned_at,
                expires: b.expires,
                count: b.count,
                origin: self.origins.get(&(b.jail.clone(), b.net)).cloned(),
            })
            .collect()
    }

    async fn manual_ban(
        &mut self,
        jail: &str,
        addr: &str,
        seconds: Option<i64>,
        now: i64,
    ) -> Response {
        let net = match parse_net(addr) {
            Ok(n) => n,
            Err(e) => return Response::err(e),
        };
        let Some(rt) = self.running.engine.jail_mut(jail) else {
            return Response::err(self.no_such_jail(jail));
        };
        if let Some(reason) = rt.jail.settings.ignore.check(net.addr()) {
            // A trusted proxy is refused too: banning it would cut off every
            // client behind it (remove it from trusted_proxies first).
            return Response::err(format!("{net} is not banned: it is {reason}"));
        }
        let bantime = seconds.map(|s| if s < 0 { None } else { Some(s) });
        let mut decision = rt.jail.manual_ban(net, now, bantime);
        decision.at = now;
        rt.stats.bans += 1;
        Banned {
            jail,
            net,
            failures: 0,
            bantime: decision.bantime,
            origin: BanOrigin::Manual,
        }
        .emit(self.metrics.as_deref());
        let expires = decision.expires;
        let mut batch = vec![decision];
        // Answer once the element is in the kernel (or with nft's error).
        let ops = self.record(&mut batch, now, Some(crate::fleet::Claim::Always));
        if let Err(e) = self.worker.apply(ops).await {
            return Response::err(format!(
                "{} is recorded as banned but not in the kernel yet: {e}",
                show(&net)
            ));
        }
        let until = expires.map_or_else(
            || "permanently".to_string(),
            |e| format!("for {}s", e - now),
        );
        Response::ok(Reply::Done {
            count: 1,
            message: format!("banned {} in {jail} {until}", show(&net)),
        })
    }

    async fn unban(&mut self, addr: Option<&str>, jail: Option<&str>, all: bool) -> Response {
        if let Some(j) = jail {
            if !self.has_jail(j) {
                return Response::err(self.no_such_jail(j));
            }
        }
        let net = match (addr, all) {
            (Some(a), false) => match parse_net(a) {
                Ok(n) => Some(n),
                Err(e) => return Response::err(e),
            },
            (None, true) => None,
            _ => return Response::err("give an address, or --all"),
        };
        let keys: Vec<(String, IpNet)> = self
            .bans
            .keys()
            .filter(|(j, n)| {
                jail.is_none_or(|want| want == j) && net.is_none_or(|want| covers(&want, n))
            })
            .cloned()
            .collect();
        // Other nodes may hold the ban even where this one does not.
        if let Some(n) = net {
            self.publish_action(crate::fleet::Action::Unban {
                jail: jail.map(str::to_string),
                net: n,
            });
        }
        if keys.is_empty() {
            let what = net.map_or_else(|| "nothing".to_string(), |n| show(&n));
            return Response::ok(Reply::Done {
                count: 0,
                message: format!("{what} is not banned"),
            });
        }
        let store = Arc::clone(&self.store);
        if let Err(e) = blocking(|| store.remove_bans(&keys)) {
            return Response::err(format!(
                "could not update the state store: {e}; nothing was unbanned"
            ));
        }
        let mut ops = Vec::with_capacity(keys.len());
        for (j, n) in &keys {
            if let Some(r) = self.bans.remove(&(j.clone(), *n)) {
                self.announce_unban(&r, "manual");
            }
            if let Some(rt) = self.running.engine.jail_mut(j) {
                rt.jail.forget_ban(n);
            }
            ops.push(FirewallOp::Unban {
                jail: j.clone(),
                net: *n,
            });
        }
        let count = ops.len();
        if net.is_none() {
            for (j, n) in &keys {
                self.publish_action(crate::fleet::Action::Unban {
                    jail: Some(j.clone()),
                    net: *n,
                });
            }
        }
        ManualUnban { bans: &keys }.emit(self.metrics.as_deref());
        // The gauges move with the counter, not at the next tick.
        self.report_metrics();
        // One transaction for the whole list; answer once it has applied.
        if let Err(e) = self.worker.apply(ops).await {
            return Response::err(format!(
                "{count} ban(s) removed from the state store, but the kernel still has them: {e}"
            ));
        }
        let message = match (count, net) {
            (1, _) => format!("unbanned {} from {}", show(&keys[0].1), keys[0].0),
            _ => format!("unbanned {count} bans"),
        };
        Response::ok(Reply::Done { count, message })
    }

    async fn ignore(&mut self, addr: &str, seconds: Option<i64>, now: i64) -> Response {
        let net = match parse_net(addr) {
            Ok(n) => n,
            Err(e) => return Response::err(e),
        };
        self.running.ignore(net, seconds.map(|s| now + s));
        self.publish_action(crate::fleet::Action::Ignore {
            net,
            until: seconds.map(|s| now + s),
        });
        // An address on the allow-list is not left banned.
        let lifted = match self.unban(Some(&net.to_string()), None, false).await {
            Response {
                data: Some(Reply::Done { count, .. }),
                ..
            } => count,
            failed => return failed,
        };
        let until = seconds.map_or_else(
            || "until the next reload or restart".to_string(),
            |s| format!("for {s}s"),
        );
        Response::ok(Reply::Done {
            count: lifted,
            message: format!("ignoring {} {until}; {lifted} ban(s) lifted", show(&net)),
        })
    }
}

fn active(b: &BanRecord, now: i64) -> bool {
    b.expires.is_none_or(|e| e > now)
}

/// Whether a request for `want` covers the ban `have` (same net, or inside it).
fn covers(want: &IpNet, have: &IpNet) -> bool {
    want == have
        || want.contains(have)
        || (have.contains(&want.addr()) && want.prefix_len() == want.max_prefix_len())
}

/// A host as a bare address, a network as CIDR.
fn show(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}
