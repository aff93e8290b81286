//! The fleet: nodes that share failure counts and bans through Redis.
//!
//! Owns the link to Redis, run as one task off the line path: the daemon
//! hands it failures and decisions through an unbounded channel (it never
//! waits on Redis) and gets back, through another, what the fleet decided
//! (a fleet-wide count crossing `maxretry` here, other nodes' bans, unbans
//! and ignores, other nodes' addresses) and the stream position to keep.
//! It must not touch jails, the store or nft: the daemon applies what it
//! receives with its own rules (`ignoreip`/`ignoreself` win).
//!
//! Counting is one atomic Lua script per batch of failures
//! (`scripts::COUNT`); bans, unbans and ignores go on a Redis Stream
//! (`scripts::PUBLISH`), read with `XREAD BLOCK` from the position the
//! daemon keeps in its store, so a node that was away catches up.

mod link;
pub mod message;
mod scripts;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::fleet::FleetConfig;
use crate::UnixTime;
pub use message::{Action, Message};

/// What a shared jail's counting needs in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JailParams {
    pub maxretry: u32,
    pub findtime: i64,
    /// `None`: permanent.
    pub bantime: Option<i64>,
}

/// One failure counted by a shared jail (not yet a ban here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub jail: String,
    pub net: IpNet,
    pub time: UnixTime,
}

/// How a published ban takes the fleet-wide mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Decided by this node's own counting: published only if no node
    /// banned it already (exactly one ban per crossing).
    IfFirst,
    /// Published whatever the mark says (manual bans, fleet crossings this
    /// node won, bans republished after Redis lost them).
    Always,
}

/// Daemon → fleet.
#[derive(Debug)]
pub(crate) enum ToFleet {
    Failures(Vec<Failure>),
    Publish(Message, Claim),
    /// The shared jails changed (reload).
    Jails(HashMap<String, JailParams>),
}

/// Fleet → daemon.
#[derive(Debug)]
pub enum FromFleet {
    /// The fleet-wide count of `net` in `jail` crossed `maxretry` on this
    /// node's batch: decide the ban here and publish it.
    Crossed { jail: String, net: IpNet },
    /// Other nodes' messages, one `XREAD` batch at a time (so the daemon
    /// applies them in one store commit and one nft batch).
    Remote(Vec<Message>),
    /// The stream position after what was sent so far (to keep in the store).
    Position(String),
    /// Every other node's addresses: never ban them.
    Members(Vec<IpAddr>),
}

/// The link as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub node: String,
    /// The Redis URL, password hidden.
    pub redis: String,
    pub connected: bool,
    /// Publish-to-receive delay of the last message from another node, ms.
    pub lag_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Messages this node put on the stream.
    pub published: u64,
    /// Other nodes' messages received.
    pub received: u64,
    /// Publish or count round trips that failed (retried after reconnecting).
    pub failed: u64,
    /// Stream entries skipped as malformed or foreign.
    pub malformed: u64,
    /// Messages waiting for the link to come back.
    pub pending: usize,
    /// Other nodes known.
    pub members: usize,
}

/// The daemon's end of the link.
pub struct Fleet {
    tx: mpsc::UnboundedSender<ToFleet>,
    pub status: Arc<Mutex<FleetStatus>>,
    pub node: String,
    task: tokio::task::JoinHandle<()>,
}

/// What the link starts from.
pub struct Start {
    pub config: FleetConfig,
    pub jails: HashMap<String, JailParams>,
    /// Stream position kept in the store (`None`: read the stream from its start).
    pub position: Option<String>,
    /// Active bans of shared jails, published again if Redis lost them.
    pub active: Vec<Message>,
    /// This node's addresses, announced to the others.
    pub addresses: Vec<IpAddr>,
}

impl Fleet {
    /// Starts the link task; `FromFleet` arrives on the returned receiver.
    pub fn spawn(start: Start) -> (Fleet, mpsc::UnboundedReceiver<FromFleet>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(FleetStatus {
            node: start.config.node.clone(),
            redis: start.config.redacted(),
            ..FleetStatus::default()
        }));
        let node = start.config.node.clone();
        let task = tokio::spawn(link::run(start, rx, out_tx, Arc::clone(&status)));
        (
            Fleet {
                tx,
                status,
                node,
                task,
            },
            out_rx,
        )
    }

    /// Failures of shared jails, to count fleet-wide (never waits).
    pub fn count(&self, failures: Vec<Failure>) {
        if !failures.is_empty() {
            let _ = self.tx.send(ToFleet::Failures(failures));
        }
    }

    /// Puts a decision of this node on the stream (never waits).
    pub fn publish(&self, action: Action, claim: Claim) {
        let msg = Message {
            node: self.node.clone(),
            action,
            ms: now_ms(),
        };
        let _ = self.tx.send(ToFleet::Publish(msg, claim));
    }

    /// The shared jails after a reload.
    pub fn jails(&self, jails: HashMap<String, JailParams>) {
        let _ = self.tx.send(ToFleet::Jails(jails));
    }

    pub fn status(&self) -> FleetStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Wall clock in milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Whether the fleet's Redis answers a PING within `timeout` (`check`'s
/// warning; the daemon starts either way).
pub fn probe(config: &FleetConfig, timeout: std::time::Duration) -> Result<(), String> {
    let client = config.client().map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
