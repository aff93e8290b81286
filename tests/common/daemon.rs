//! Runs the real `banwarden` binary as a daemon inside a test namespace, with a
//! config directory of the test's own, and kills it on drop (also on panic).
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::netns::{eventually, exec};

/// A config directory in a temp dir: `filters/`, `jails/`, `banwarden.yaml`.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    /// Runs `banwarden ARGS --config DIR` (a control command or `check`) and
    /// returns what it printed.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_banwarden"))
            .args(args)
            .arg("--config")
            .arg(self.path())
            .output()
            .expect("run cli")
    }

    /// `banwarden status JAIL --json`, parsed (`Null` while the daemon does
    /// not answer, so a test can wait on it).
    pub fn status(&self, jail: &str) -> serde_json::Value {
        serde_json::from_slice(&self.cli(&["status", jail, "--json"]).stdout).unwrap_or_default()
    }

    /// A config with `table`, state and socket inside the temp dir.
    pub fn new(table: &str) -> ConfigDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = ConfigDir { dir };
        let p = c.path().to_path_buf();
        c.write(
            "banwarden.yaml",
            &format!(
                "table: {table}\nstate_dir: {}\nsocket: {}\nlog_level: debug\n",
                p.join("state").display(),
                p.join("run/banwarden.sock").display()
            ),
        );
        c
    }

    /// [`new`](Self::new) with the tests' `app` filter (`Login failure
    /// <HOST>`) and an enabled jail `app` on an empty `app.log`; `jail`
    /// adds keys to it (`"  maxretry: 3\n"`).
    pub fn app(table: &str, jail: &str) -> ConfigDir {
        let c = ConfigDir::new(table);
        c.write(
            "filters/app.yaml",
            "failregex:\n  - '^Login failure <HOST>$'\n",
        );
        c.write(
            "jails/app.yaml",
            &format!("app:\n  enabled: true\n  filter: app\n  logpath: app.log\n{jail}"),
        );
        c.write("app.log", "");
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, text).expect("write config file");
    }

    /// Appends `text` to a file under the config dir in one write.
    pub fn append(&self, rel: &str, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path().join(rel))
            .expect("open log");
        f.write_all(text.as_bytes()).expect("append");
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/banwarden.sock")
    }
}

/// A running daemon; stderr goes to `log` for diagnostics.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
    pub ns: String,
}

impl Daemon {
    /// Starts `banwarden run --config DIR` inside `ns` and waits until the
    /// firewall table exists and the control socket accepts (set up and reading).
    pub fn start(ns: &str, config: &ConfigDir, table: &str) -> Daemon {
        let log = config.path().join("daemon.log");
        let err = fs::File::create(&log).expect("daemon log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_banwarden"),
                "run",
                "--config",
            ])
            .arg(config.path())
            .env("RUST_LOG", "banwarden=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn banwarden");
        let mut d = Daemon {
            child: Some(child),
            log,
            ns: ns.to_string(),
        };
        // The socket is bound early (connections wait in its backlog); a
        // `status` is answered only once the sources have opened their files,
        // so a line written after this returns is after the daemon's start.
        // The table may be left from an earlier run.
        let up = eventually(Duration::from_secs(10), || {
            d.assert_alive();
            exec(ns, &["nft", "list", "table", "inet", table])
                .status
                .success()
                && status_answered(&config.socket())
        });
        assert!(
            up,
            "daemon did not set up table {table} and its socket within 10 s:\n{}",
            d.stderr()
        );
        d
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Panics with the daemon's log if it has exited.
    pub fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("banwarden exited ({status}):\n{}", self.stderr());
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        // `ip netns exec` execs the binary, so the child's pid is banwarden's.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("signal");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().expect("child");
        for _ in 0..100 {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("banwarden did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!("--- banwarden log ---\n{}", self.stderr());
            }
        }
    }
}

/// `n` failure lines for `addr`, as the tests' `app` filter reads them.
pub fn failures(addr: &str, n: usize) -> String {
    (0..n).map(|_| format!("Login failure {addr}\n")).collect()
}

/// Whether `addr` is an element of `set` in the namespace's `table`.
pub fn in_set(ns: &str, table: &str, set: &str, addr: &str) -> bool {
    let out = exec(ns, &["nft", "-j", "list", "set", "inet", table, set]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&format!("\"{addr}\""))
}

/// The addresses in `set` of the namespace's `table` (none if it cannot
/// be listed).
pub fn set_elements(ns: &str, table: &str, set: &str) -> std::collections::BTreeSet<String> {
    let out = exec(ns, &["nft", "-j", "list", "set", "inet", table, set]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["set"]["elem"].as_array())
        .flatten()
        .filter_map(|e| e["elem"]["val"].as_str().or(e.as_str()).map(String::from))
        .collect()
}

/// Whether the daemon at `socket` answers a `status` request now.
fn status_answered(socket: &Path) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"{\"v\":1,\"cmd\":\"status\",\"jail\":null}\n")
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.ends_with('\n')
}
