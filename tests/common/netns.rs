//! A two-namespace test network: a server and an attacker joined by a veth pair,
//! with real packets between them, so firewall tests never touch the host.
//!
//! [`NetPair::new`] creates `bw-srv-<unique>` and `bw-atk-<unique>` (unique =
//! pid and a counter, so tests can run in parallel in one or several processes);
//! dropping it deletes both, also when the test panics. Every command runs
//! inside one of them (`ip netns exec NS ...` / `ip -n NS ...`), never in the
//! host's namespace. Addresses: server 198.18.X.1 and 2001:db8:X::1, attacker
//! 198.18.X.2 / 2001:db8:X::2, and a second client on the attacker side at
//! 198.18.X.3 / 2001:db8:X::3 (198.18.0.0/15 and 2001:db8::/32 are reserved for
//! tests and documentation; they exist only inside the pair).
//!
//! Probes and listeners are small `python3` programs (present on Debian and in
//! CI), because they must choose their source address.
//!
//! Privileged tests start with `if skip_unless_privileged() { return; }`; with
//! `BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1` a missing privilege fails instead.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set to `1` to turn a skipped privileged test into a failure (CI).
pub const REQUIRE_ENV: &str = "BANWARDEN_REQUIRE_PRIVILEGED_TESTS";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name part unique to this process and call: ≤ 8 characters.
fn unique() -> (String, u8) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    // pid ≤ 4194304 = 0x400000: 6 hex digits, then 2 for the counter.
    (
        format!("{:x}{:02x}", std::process::id(), n % 256),
        (n % 250) as u8 + 1,
    )
}

/// Whether privileged tests must be skipped. Prints the reason once per call
/// site when skipping; panics instead when [`REQUIRE_ENV`] is `1`.
pub fn skip_unless_privileged() -> bool {
    static PROBLEM: OnceLock<Option<String>> = OnceLock::new();
    let problem = PROBLEM.get_or_init(privilege_problem);
    match problem {
        None => false,
        Some(reason) => {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("privileged test cannot run and {REQUIRE_ENV}=1: {reason}");
            }
            eprintln!("SKIPPED (needs root, ip, nft, python3 and network namespaces): {reason}");
            true
        }
    }
}

fn privilege_problem() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".to_string());
    }
    for (tool, args) in [
        ("ip", &["-V"][..]),
        ("nft", &["--version"][..]),
        ("python3", &["-c", "pass"][..]),
    ] {
        match Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => return Some(format!("`{tool}` exited with {s}")),
            Err(e) => return Some(format!("cannot run `{tool}`: {e}")),
        }
    }
    let (u, _) = unique();
    let name = format!("bw-prb-{u}");
    let out = Command::new("ip").args(["netns", "add", &name]).output();
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns add` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run `ip netns add`: {e}")),
    }
}

/// Runs `argv` inside namespace `ns`.
pub fn exec(ns: &str, argv: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip netns exec {ns} {argv:?}`: {e}"))
}

/// Runs `argv` inside `ns` and returns its stdout; panics with stderr on failure.
pub fn exec_ok(ns: &str, argv: &[&str]) -> String {
    let out = exec(ns, argv);
    assert!(
        out.status.success(),
        "`ip netns exec {ns} {argv:?}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Server and attacker namespaces joined by a veth pair. Deleted on drop.
#[derive(Debug)]
pub struct NetPair {
    /// The server namespace: the firewall under test runs here.
    pub srv: String,
    /// The attacker namespace (two client addresses per family).
    pub atk: String,
    pub srv_v4: String,
    pub atk_v4: String,
    /// A second client, on the attacker side.
    pub atk2_v4: String,
    pub srv_v6: String,
    pub atk_v6: String,
    pub atk2_v6: String,
    created: Vec<String>,
}

impl NetPair {
    /// Creates the pair; panics (after cleaning up) if that fails.
    pub fn new() -> NetPair {
        let (u, x) = unique();
        let mut pair = NetPair {
            srv: format!("bw-srv-{u}"),
            atk: format!("bw-atk-{u}"),
            srv_v4: format!("198.18.{x}.1"),
            atk_v4: format!("198.18.{x}.2"),
            atk2_v4: format!("198.18.{x}.3"),
            srv_v6: format!("2001:db8:{x:x}::1"),
            atk_v6: format!("2001:db8:{x:x}::2"),
            atk2_v6: format!("2001:db8:{x:x}::3"),
            created: Vec::new(),
        };
        if let Err(e) = pair.build(&u) {
            panic!("could not build the test network: {e}"); // Drop cleans up
        }
        pair
    }

    fn build(&mut self, u: &str) -> Result<(), String> {
        for ns in [self.srv.clone(), self.atk.clone()] {
            // Concurrent first use of /run/netns can race; retry briefly.
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
            self.created.push(ns);
        }
        let (vs, va) = (format!("bwv{u}s"), format!("bwv{u}a"));
        ip(&[
            "link", "add", &vs, "netns", &self.srv, "type", "veth", "peer", "name", &va, "netns",
            &self.atk,
        ])?;
        let v4 = |a: &str| format!("{a}/24");
        let v6 = |a: &str| format!("{a}/64");
        for (ns, dev, addrs4, addrs6) in [
            (
                &self.srv,
                &vs,
                vec![v4(&self.srv_v4)],
                vec![v6(&self.srv_v6)],
            ),
            (
                &self.atk,
                &va,
                vec![v4(&self.atk_v4), v4(&self.atk2_v4)],
                vec![v6(&self.atk_v6), v6(&self.atk2_v6)],
            ),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            for a in &addrs4 {
                ip(&["-n", ns, "addr", "add", a, "dev", dev])?;
            }
            for a in &addrs6 {
                ip(&["-n", ns, "addr", "add", a, "dev", dev, "nodad"])?;
            }
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// The argv prefix that runs nft inside the server namespace.
    pub fn nft_cmd(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.srv, "nft"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs `nft args...` in the server namespace; panics on failure.
    pub fn srv_nft(&self, args: &[&str]) -> String {
        let mut argv = vec!["nft"];
        argv.extend_from_slice(args);
        exec_ok(&self.srv, &argv)
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("warning: could not delete namespace {ns}: {e}");
            }
        }
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const LISTENER: &str = r#"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((addr, port))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

/// A TCP listener on `addr:port` in `ns` that accepts and closes. `::` listens
/// on both families. Returns once it is listening.
pub fn listen(ns: &str, addr: &str, port: u16) -> ChildGuard {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            LISTENER,
            addr,
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the listener: {e}"));
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    if line.trim() != "ready" {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = child.kill();
            let _ = stderr.read_to_string(&mut err);
        }
        let _ = child.wait();
        panic!("listener on [{addr}]:{port} in {ns} did not start: {err}");
    }
    ChildGuard(child)
}

/// How a TCP connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Connected,
    /// RST or ICMP unreachable: fails at once.
    Refused,
    /// No answer within the timeout (dropped).
    TimedOut,
    Other(String),
}

const PROBE: &str = r#"
import socket, sys
src, dst, port, t = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(t)
try:
    s.bind((src, 0))
    s.connect((dst, port))
    print("connected")
except socket.timeout:
    print("timeout")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("error: %s" % e)
"#;

/// One TCP connection attempt from `src` (an address in `ns`) to `dst:port`.
pub fn probe(ns: &str, src: &str, dst: &str, port: u16, timeout: Duration) -> Probe {
    let out = exec(
        ns,
        &[
            "python3",
            "-c",
            PROBE,
            src,
            dst,
            &port.to_string(),
            &timeout.as_secs_f64().to_string(),
        ],
    );
    match String::from_utf8_lossy(&out.stdout).trim() {
        "connected" => Probe::Connected,
        "refused" => Probe::Refused,
        "timeout" => Probe::TimedOut,
        other => Probe::Other(format!(
            "{other} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Whether a TCP connection from `src` to `dst:port` succeeds within `timeout`.
pub fn connects(ns: &str, src: &str, dst: &str, port: u16, timeout: Duration) -> bool {
    probe(ns, src, dst, port, timeout) == Probe::Connected
}

/// Polls `f` every 100 ms until it is true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
