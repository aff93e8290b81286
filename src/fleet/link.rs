//! The link task: connects to Redis (reconnecting with backoff), counts
//! batches of failures with one script call, publishes decisions in one
//! pipelined round trip per batch, and reads the stream with `XREAD BLOCK`
//! on a second connection.
//!
//! Owns the connection, the messages waiting for it (bounded) and this
//! node's active bans (published again when Redis comes back empty). It
//! must not block the daemon: everything it needs comes over a channel.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::message::{Action, Message};
use super::scripts;
use super::{Claim, Failure, FleetStatus, FromFleet, JailParams, Start, ToFleet};
use crate::events::{FleetLinkDown, FleetLinkUp, FleetMalformed, FleetUnusable};

/// Most messages kept while Redis is away (the oldest go first).
const MAX_PENDING: usize = 200_000;
/// Most failures in one script call.
const COUNT_BATCH: usize = 1_000;
/// Most messages in one publish script call (a long one holds Redis and
/// can run into the response timeout on a loaded machine).
const PUBLISH_BATCH: usize = 1_000;
/// Most messages read from the stream at once.
const READ_BATCH: usize = 5_000;
/// How long a reply may take before the link counts Redis as gone (a
/// refused or closed connection is noticed at once). Generous: a busy node
/// may read a reply late.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often addresses are announced and other nodes' read.
const MEMBERS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("the stream reader stopped")]
    ReaderGone,
}

struct State {
    prefix: String,
    node: String,
    jails: HashMap<String, JailParams>,
    /// Where the stream is read from next (shared with the reader).
    position: Arc<Mutex<String>>,
    /// The epoch of the Redis this node last talked to.
    epoch: Option<String>,
    /// This node's active bans of shared jails (what to publish again).
    own: HashMap<(String, IpNet), Message>,
    pending: VecDeque<(Message, Claim)>,
    addresses: Vec<IpAddr>,
    status: Arc<Mutex<FleetStatus>>,
    out: UnboundedSender<FromFleet>,
}

fn update(status: &Mutex<FleetStatus>, f: impl FnOnce(&mut FleetStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

pub(super) async fn run(
    start: Start,
    mut rx: UnboundedReceiver<ToFleet>,
    out: UnboundedSender<FromFleet>,
    status: Arc<Mutex<FleetStatus>>,
) {
    let mut st = State {
        prefix: start.config.prefix.clone(),
        node: start.config.node.clone(),
        jails: start.jails,
        position: Arc::new(Mutex::new(
            start.position.unwrap_or_else(|| "0-0".to_string()),
        )),
        epoch: None,
        own: HashMap::new(),
        pending: VecDeque::new(),
        addresses: start.addresses,
        status,
        out,
    };
    for m in start.active {
        st.remember(&m);
    }
    let client = match start.config.client() {
        Ok(c) => c,
        Err(e) => {
            FleetUnusable {
                redis: &start.config.redacted(),
                error: &e.to_string(),
            }
            .emit(&st.status);
            while rx.recv().await.is_some() {}
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    let mut was_up = true;
    loop {
        let err = match session(&client, &mut st, &mut rx, &mut backoff).await {
            Ok(()) => return,
            Err(e) => e,
        };
        FleetLinkDown {
            redis: &start.config.redacted(),
            error: &err.to_string(),
            pending: st.pending.len(),
            first: was_up,
        }
        .emit(&st.status);
        was_up = false;
        let wake = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                m = rx.recv() => match m {
                    None => return,
                    Some(m) => st.queue(m),
                }
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if st.status.lock().is_ok_and(|s| s.connected) {
            was_up = true;
        }
    }
}

impl State {
    /// Keeps what the daemon sends while the link is down.
    fn queue(&mut self, m: ToFleet) {
        match m {
            // Counted locally meanwhile; the fleet count resumes on reconnect.
            ToFleet::Failures(_) => {}
            ToFleet::Jails(j) => self.jails = j,
            ToFleet::Publish(msg, claim) => {
                self.remember(&msg);
                if self.pending.len() >= MAX_PENDING {
                    self.pending.pop_front();
                }
                self.pending.push_back((msg, claim));
            }
        }
    }

    /// Tracks this node's active bans.
    fn remember(&mut self, msg: &Message) {
        match &msg.action {
            Action::Ban { jail, net, .. } => {
                self.own.insert((jail.clone(), *net), msg.clone());
            }
            Action::Unban { jail, net } => self.own.retain(|(j, n), _| {
                !(jail.as_ref().is_none_or(|want| want == j) && (net == n || net.contains(n)))
            }),
            Action::Ignore { net, .. } => self.own.retain(|(_, n), _| !net.contains(n)),
        }
    }

    fn forget_expired(&mut self) {
        let now = crate::now();
        self.own.retain(|_, m| !expired(m, now));
        self.pending.retain(|(m, _)| !expired(m, now));
    }
}

fn expired(m: &Message, now: crate::UnixTime) -> bool {
    matches!(m.action, Action::Ban { expires: Some(e), .. } | Action::Ignore { until: Some(e), .. } if e <= now)
}

async fn connect(client: &redis::Client) -> Result<MultiplexedConnection, LinkError> {
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}

struct Shas {
    count: String,
    publish: String,
}

/// One connected stretch: returns `Ok` when the daemon closed the channel.
async fn session(
    client: &redis::Client,
    st: &mut State,
    rx: &mut UnboundedReceiver<ToFleet>,
    backoff: &mut Duration,
) -> Result<(), LinkError> {
    let mut w = connect(client).await?;
    let r = connect(client).await?;
    let shas = Shas {
        count: redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(scripts::COUNT)
            .query_async(&mut w)
            .await?,
        publish: redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(scripts::PUBLISH)
            .query_async(&mut w)
            .await?,
    };
    // A Redis without our epoch lost its data (or is new): publish again.
    let key = scripts::epoch(&st.prefix);
    let created: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(format!("{}-{}", st.node, super::now_ms()))
        .arg("NX")
        .query_async(&mut w)
        .await?;
    let epoch: String = w.get(&key).await?;
    st.forget_expired();
    // Ours is new (an empty Redis), or not the one this node talked to.
    let lost = created.is_some() || st.epoch.as_ref().is_some_and(|e| *e != epoch);
    if lost {
        if st.epoch.is_some() {
            tracing::warn!("fleet: Redis came back without the fleet's data; publishing this node's active bans again");
            if let Ok(mut p) = st.position.lock() {
                *p = "0-0".to_string();
            }
        }
        let again: Vec<(Message, Claim)> = st
            .own
            .values()
            .map(|m| (m.clone(), Claim::Always))
            .collect();
        let queued: Vec<_> = st.pending.drain(..).collect();
        st.pending.extend(again);
        // Bans already in `own` are not sent twice.
        st.pending.extend(
            queued
                .into_iter()
                .filter(|(m, _)| !matches!(m.action, Action::Ban { .. })),
        );
    }
    st.epoch = Some(epoch);
    announce(&mut w, st).await?;
    // Bans made while the link was down, in order.
    let backlog: Vec<(Message, Claim)> = st.pending.drain(..).collect();
    if let Err(e) = publish(&mut w, st, &shas, &backlog).await {
        st.pending.extend(backlog);
        return Err(e);
    }
    FleetLinkUp {
        node: &st.node,
        published: backlog.len(),
    }
    .emit(&st.status);
    *backoff = BACKOFF_MIN;

    let reader = tokio::spawn(read_loop(
        r,
        scripts::events(&st.prefix),
        st.node.clone(),
        Arc::clone(&st.position),
        st.out.clone(),
        Arc::clone(&st.status),
    ));
    let _abort = AbortOnDrop(reader.abort_handle());
    let mut reader = reader;
    let mut members = tokio::time::interval(MEMBERS_EVERY);
    members.tick().await;
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(first) = m else { return Ok(()) };
                let mut batch = vec![first];
                while batch.len() < 10_000 {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                handle_batch(&mut w, st, &shas, batch).await?;
            }
            _ = members.tick() => {
                st.forget_expired();
                announce(&mut w, st).await?;
            }
            res = &mut reader => {
                return Err(match res {
                    Ok(Err(e)) => e,
                    _ => LinkError::ReaderGone,
                });
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes first (a local ban claims its mark before a count could),
/// then counts; on failure the publishes wait for the next connection.
async fn handle_batch(
    w: &mut MultiplexedConnection,
    st: &mut State,
    shas: &Shas,
    batch: Vec<ToFleet>,
) -> Result<(), LinkError> {
    let mut msgs = Vec::new();
    let mut failures = Vec::new();
    for m in batch {
        match m {
            ToFleet::Failures(f) => failures.extend(f),
            ToFleet::Publish(msg, claim) => {
                st.remember(&msg);
                msgs.push((msg, claim));
            }
            ToFleet::Jails(j) => st.jails = j,
        }
    }
    if let Err(e) = publish(w, st, shas, &msgs).await {
        update(&st.status, |s| s.failed += 1);
        st.pending.extend(msgs);
        return Err(e);
    }
    for chunk in failures.chunks(COUNT_BATCH) {
        if let Err(e) = count(w, st, shas, chunk).await {
            update(&st.status, |s| s.failed += 1);
            return Err(e);
        }
    }
    Ok(())
}

fn ttl(expires: Option<crate::UnixTime>) -> i64 {
    expires.map_or(-1, |e| (e - crate::now()).max(1))
}

/// Messages in script calls of at most `PUBLISH_BATCH`, one round trip each.
async fn publish(
    w: &mut MultiplexedConnection,
    st: &State,
    shas: &Shas,
    msgs: &[(Message, Claim)],
) -> Result<(), LinkError> {
    for chunk in msgs.chunks(PUBLISH_BATCH) {
        publish_some(w, st, shas, chunk).await?;
    }
    Ok(())
}

async fn publish_some(
    w: &mut MultiplexedConnection,
    st: &State,
    shas: &Shas,
    msgs: &[(Message, Claim)],
) -> Result<(), LinkError> {
    let events = scripts::events(&st.prefix);
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&shas.publish).arg(1).arg(&events).arg(&st.node);
    for (m, claim) in msgs {
        // Marks and counts an unban or ignore drops, in every shared jail it names.
        let mut dels = Vec::new();
        let mut drop_all = |jail: Option<&String>, net: &IpNet| {
            let n = net.to_string();
            for j in st.jails.keys().filter(|j| jail.is_none_or(|w| w == *j)) {
                dels.push(scripts::mark(&st.prefix, j, &n));
                dels.push(scripts::failures(&st.prefix, j, &n));
            }
        };
        let (mode, mark, t) = match &m.action {
            Action::Ban {
                jail, net, expires, ..
            } => (
                if *claim == Claim::IfFirst {
                    "claim"
                } else {
                    "ban"
                },
                scripts::mark(&st.prefix, jail, &net.to_string()),
                ttl(*expires),
            ),
            Action::Unban { jail, net } => {
                drop_all(jail.as_ref(), net);
                ("plain", String::new(), -1)
            }
            Action::Ignore { net, .. } => {
                drop_all(None, net);
                ("plain", String::new(), -1)
            }
        };
        cmd.arg(mode).arg(t).arg(mark).arg(dels.len());
        for d in &dels {
            cmd.arg(d);
        }
        let fields = m.fields();
        cmd.arg(fields.len() * 2);
        for (k, v) in fields {
            cmd.arg(k).arg(v);
        }
    }
    let published: u64 = cmd.query_async(w).await?;
    update(&st.status, |s| s.published += published);
    Ok(())
}

/// One script call for a batch of failures, grouped by jail (the jail's
/// parameters once per group, then net and time per failure); crossings go
/// to the daemon.
async fn count(
    w: &mut MultiplexedConnection,
    st: &State,
    shas: &Shas,
    failures: &[Failure],
) -> Result<(), LinkError> {
    let mut groups: Vec<(&str, JailParams, Vec<&Failure>)> = Vec::new();
    for f in failures {
        let Some(p) = st.jails.get(&f.jail) else {
            continue;
        };
        match groups.iter_mut().find(|(j, _, _)| *j == f.jail) {
            Some(g) => g.2.push(f),
            None => groups.push((&f.jail, *p, vec![f])),
        }
    }
    let sent: Vec<&Failure> = groups.iter().flat_map(|g| g.2.iter().copied()).collect();
    if sent.is_empty() {
        return Ok(());
    }
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&shas.count)
        .arg(0)
        .arg(&st.prefix)
        .arg(&st.node)
        .arg(crate::now())
        .arg(sent.len());
    for (jail, p, fs) in &groups {
        cmd.arg(*jail)
            .arg(p.maxretry)
            .arg(p.findtime)
            .arg(p.bantime.unwrap_or(-1))
            .arg(fs.len());
        for f in fs {
            cmd.arg(f.net.to_string()).arg(f.time);
        }
    }
    let crossed: Vec<usize> = cmd.query_async(w).await?;
    for i in crossed {
        if let Some(f) = i.checked_sub(1).and_then(|i| sent.get(i)) {
            let _ = st.out.send(FromFleet::Crossed {
                jail: f.jail.clone(),
                net: f.net,
            });
        }
    }
    Ok(())
}

/// Announces this node's addresses and tells the daemon the others'.
async fn announce(w: &mut MultiplexedConnection, st: &State) -> Result<(), LinkError> {
    let key = scripts::members(&st.prefix);
    let mine: Vec<String> = st.addresses.iter().map(|a| a.to_string()).collect();
    let _: () = w.hset(&key, &st.node, mine.join(",")).await?;
    let all: HashMap<String, String> = w.hgetall(&key).await?;
    let others: Vec<IpAddr> = all
        .iter()
        .filter(|(n, _)| **n != st.node)
        .flat_map(|(_, a)| a.split(',').filter_map(|s| s.trim().parse().ok()))
        .collect();
    update(&st.status, |s| s.members = all.len().saturating_sub(1));
    let _ = st.out.send(FromFleet::Members(others));
    Ok(())
}

/// Reads the stream from the kept position; other nodes' messages go to
/// the daemon, then the position after them.
async fn read_loop(
    mut r: MultiplexedConnection,
    events: String,
    node: String,
    position: Arc<Mutex<String>>,
    out: UnboundedSender<FromFleet>,
    status: Arc<Mutex<FleetStatus>>,
) -> Result<(), LinkError> {
    let opts = StreamReadOptions::default().block(2000).count(READ_BATCH);
    loop {
        let from = position
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|_| "0-0".into());
        let reply: Option<StreamReadReply> = r.xread_options(&[&events], &[&from], &opts).await?;
        let Some(reply) = reply else { continue };
        let mut last = None;
        let mut batch = Vec::new();
        for key in reply.keys {
            for entry in key.ids {
                let fields: HashMap<String, String> = entry
                    .map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value_ref::<String>(v)
                            .ok()
                            .map(|s| (k.clone(), s))
                    })
                    .collect();
                match Message::decode(&fields) {
                    Ok(m) if m.node == node => {}
                    Ok(m) => {
                        let lag = super::now_ms() - m.ms;
                        update(&status, |s| {
                            s.received += 1;
                            s.lag_ms = Some(lag);
                        });
                        batch.push(m);
                    }
                    Err(e) => FleetMalformed {
                        id: &entry.id,
                        error: &e,
                    }
                    .emit(&status),
                }
                last = Some(entry.id);
            }
        }
        if !batch.is_empty() && out.send(FromFleet::Remote(batch)).is_err() {
            return Ok(());
        }
        if let Some(id) = last {
            if let Ok(mut p) = position.lock() {
                p.clone_from(&id);
            }
            if out.send(FromFleet::Position(id)).is_err() {
                return Ok(());
            }
        }
    }
}
