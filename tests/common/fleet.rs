//! A three-node fleet for tests: a real `redis-server` on a private unix
//! socket (a path reachable from every network namespace), three server
//! namespaces joined to one attacker namespace by a bridge, and a config
//! directory per node with the tests' `app` jail and a `fleet:` block.
//!
//! Addresses (198.18.0.0/15, test-only, inside the namespaces): node i is
//! 198.18.X.(10+i); the attacker 198.18.X.2 and a second client .3.
//! Everything is deleted on drop, also when a test panics.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::daemon::ConfigDir;
use super::netns::{eventually, ip};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> (String, u8) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    (
        format!("{:x}{:02x}", std::process::id(), n % 256),
        (n % 250) as u8 + 1,
    )
}

/// Three server namespaces and an attacker namespace on one bridge.
pub struct FleetNet {
    pub nodes: Vec<String>,
    pub node_v4: Vec<String>,
    pub atk: String,
    pub atk_v4: String,
    pub atk2_v4: String,
    pub tag: String,
    created: Vec<String>,
}

impl FleetNet {
    pub fn new() -> FleetNet {
        let (u, x) = unique();
        let mut net = FleetNet {
            nodes: (0..3).map(|i| format!("bw-fn{i}-{u}")).collect(),
            node_v4: (0..3).map(|i| format!("198.18.{x}.{}", 10 + i)).collect(),
            atk: format!("bw-fa-{u}"),
            atk_v4: format!("198.18.{x}.2"),
            atk2_v4: format!("198.18.{x}.3"),
            tag: u.clone(),
            created: Vec::new(),
        };
        if let Err(e) = net.build(&u) {
            panic!("could not build the fleet test network: {e}");
        }
        net
    }

    fn build(&mut self, u: &str) -> Result<(), String> {
        let all: Vec<String> = self
            .nodes
            .iter()
            .cloned()
            .chain([self.atk.clone()])
            .collect();
        for ns in all {
            let mut tries = 0;
            loop {
                match ip(&["netns", "add", &ns]) {
                    Ok(()) => break,
                    Err(e) if tries >= 5 => return Err(e),
                    Err(_) => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            self.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let br = format!("bwb{u}");
        ip(&["-n", &self.atk, "link", "add", &br, "type", "bridge"])?;
        ip(&["-n", &self.atk, "link", "set", &br, "up"])?;
        for a in [&self.atk_v4, &self.atk2_v4] {
            ip(&[
                "-n",
                &self.atk,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                &br,
            ])?;
        }
        for (i, ns) in self.nodes.iter().enumerate() {
            let (vs, va) = (format!("bwf{u}s{i}"), format!("bwf{u}a{i}"));
            ip(&[
                "link", "add", &vs, "netns", ns, "type", "veth", "peer", "name", &va, "netns",
                &self.atk,
            ])?;
            ip(&["-n", &self.atk, "link", "set", &va, "master", &br])?;
            ip(&["-n", &self.atk, "link", "set", &va, "up"])?;
            let a = format!("{}/24", self.node_v4[i]);
            ip(&["-n", ns, "addr", "add", &a, "dev", &vs])?;
            ip(&["-n", ns, "link", "set", &vs, "up"])?;
        }
        Ok(())
    }
}

impl Drop for FleetNet {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("warning: could not delete namespace {ns}: {e}");
            }
        }
    }
}

/// A `redis-server` on a unix socket in a temp dir, no persistence;
/// killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = Redis { child: None, dir };
        r.restart();
        r
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Starts the server (again, empty) and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let sock = self.socket();
        assert!(
            eventually(Duration::from_secs(10), || ping(&sock)),
            "redis-server did not answer on {}",
            sock.display()
        );
    }

    /// Stops the server now (SIGKILL: nothing saved).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs one command (inline protocol) and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        let mut s = UnixStream::connect(self.socket()).expect("connect redis");
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        s.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

fn ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(1))).ok();
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Node `i`'s config: the `app` jail (`jail` keys added) in the fleet.
pub fn node_config(table: &str, jail: &str, redis: &Redis, i: usize, prefix: &str) -> ConfigDir {
    let c = ConfigDir::app(table, jail);
    c.append(
        "banwarden.yaml",
        &format!(
            "fleet:\n  redis: {}\n  node: n{i}\n  prefix: {prefix}\n",
            redis.url()
        ),
    );
    c
}

/// The node's fleet link as `status --json` shows it (`null` if none).
pub fn link(c: &ConfigDir) -> serde_json::Value {
    let out = c.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["fleet"].clone()
}

/// Whether node's `status --json` says the fleet link is up.
pub fn connected(c: &ConfigDir) -> bool {
    link(c)["connected"] == serde_json::Value::Bool(true)
}
