//! A fleet over `rediss://`: a real `redis-server` listening with TLS only
//! (`--tls-port`, client certificates required, as Redis does by default),
//! certificates made by `openssl` at test time for a private CA, and three
//! daemons in their own network namespaces that trust that CA through
//! `fleet.ca_file` and present `fleet.cert_file`/`key_file`. A ban on one
//! node reaches the others' kernel sets over TLS; `check` refuses TLS files
//! that cannot work and warns when the server's certificate is not trusted.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::daemon::{failures, in_set, ConfigDir, Daemon};
use common::fleet::{connected, link, FleetNet};
use common::netns::{eventually, exec, skip_unless_privileged};
use common::tls::openssl;

const TABLE: &str = "bwfltls";
const JAIL: &str = "  maxretry: 3\n  findtime: 10m\n  bantime: 10m\n  ports: [8080]\n";
const WITHIN: Duration = Duration::from_secs(20);
const TLS_PORT: u16 = 6390;
/// Redis refuses clients from other hosts without a password (protected mode).
const PASSWORD: &str = "fleet-secret";

/// A private CA, a server certificate for `server_ip` and a client
/// certificate, all signed by the CA; `other-ca.crt` is a CA that signed
/// nothing here.
fn make_certs(dir: &Path, server_ip: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for ca in ["ca", "other-ca"] {
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut a = vec!["req", "-x509", "-nodes", "-days", "2"];
        a.extend(ec);
        a.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            "/CN=banwarden test CA",
        ]);
        openssl(dir, &a);
    }
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=IP:{server_ip}\n"),
    )
    .expect("ext file");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext file");
    for (who, cn) in [("server", "redis"), ("client", "banwarden node")] {
        let (key, csr, crt, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.crt"),
            format!("{who}.ext"),
        );
        let subj = format!("/CN={cn}");
        let mut a = vec!["req", "-nodes"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &a);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ],
        );
    }
}

/// `redis-server` with TLS only, inside namespace `ns` on `addr`.
struct TlsRedis {
    child: Child,
}

impl TlsRedis {
    fn start(ns: &str, addr: &str, dir: &Path) -> TlsRedis {
        let p = |f: &str| dir.join(f).display().to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "redis-server", "--port", "0"])
            .args(["--tls-port", &TLS_PORT.to_string(), "--bind", addr])
            .args(["--tls-cert-file", &p("server.crt")])
            .args(["--tls-key-file", &p("server.key")])
            .args(["--tls-ca-cert-file", &p("ca.crt")])
            .args(["--tls-auth-clients", "yes", "--requirepass", PASSWORD])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &p("")])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("redis.log")).expect("redis log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let r = TlsRedis { child };
        let (port, ca, cert, key) = (
            TLS_PORT.to_string(),
            p("ca.crt"),
            p("client.crt"),
            p("client.key"),
        );
        let argv = [
            "redis-cli",
            "--no-auth-warning",
            "-a",
            PASSWORD,
            "--tls",
            "--cacert",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-h",
            addr,
            "-p",
            &port,
            "PING",
        ];
        assert!(
            eventually(Duration::from_secs(10), || String::from_utf8_lossy(
                &exec(ns, &argv).stdout
            )
            .contains("PONG")),
            "redis-server with TLS did not answer on {addr}:{TLS_PORT}: {:?}\n{}",
            exec(ns, &argv),
            std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
        );
        r
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node `i`'s config on `url` with the TLS keys `tls` (YAML lines).
fn node(i: usize, url: &str, prefix: &str, tls: &str) -> ConfigDir {
    let c = ConfigDir::app(TABLE, JAIL);
    c.append(
        "banwarden.yaml",
        &format!("fleet:\n  redis: {url}\n  node: n{i}\n  prefix: {prefix}\n{tls}"),
    );
    c
}

fn tls_keys(dir: &Path, ca: &str) -> String {
    let p = |f: &str| dir.join(f).display().to_string();
    format!(
        "  ca_file: {}\n  cert_file: {}\n  key_file: {}\n",
        p(ca),
        p("client.crt"),
        p("client.key")
    )
}

/// `banwarden check` run inside `ns` (where the TLS server is reachable).
fn check_in(ns: &str, c: &ConfigDir) -> (bool, String) {
    let dir = c.path().display().to_string();
    let out = exec(
        ns,
        &[env!("CARGO_BIN_EXE_banwarden"), "check", "--config", &dir],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_ban_reaches_every_node_over_rediss_with_a_private_ca() {
    if skip_unless_privileged() {
        return;
    }
    let net = FleetNet::new();
    let certs = tempfile::tempdir().expect("temp dir");
    // Redis on the bridge, in the attacker's namespace, at the second client's address.
    let redis_ip = net.atk2_v4.clone();
    make_certs(certs.path(), &redis_ip);
    let _redis = TlsRedis::start(&net.atk, &redis_ip, certs.path());
    let url = format!("rediss://:{PASSWORD}@{redis_ip}:{TLS_PORT}/0");
    let prefix = format!("bwtls{}", net.tag);
    let cfgs: Vec<ConfigDir> = (0..3)
        .map(|i| node(i, &url, &prefix, &tls_keys(certs.path(), "ca.crt")))
        .collect();

    // `check` connects over TLS: no warning with the right CA ...
    let (ok, out) = check_in(&net.nodes[0], &cfgs[0]);
    assert!(ok && !out.contains("warning"), "check with the CA: {out}");
    // ... and warns (the certificate is not trusted) with another CA.
    let wrong = node(0, &url, &prefix, &tls_keys(certs.path(), "other-ca.crt"));
    let (ok, out) = check_in(&net.nodes[0], &wrong);
    assert!(ok, "an untrusted server is a warning, not an error: {out}");
    assert!(
        out.contains("warning: fleet") && out.to_lowercase().contains("certificate"),
        "no certificate warning with the wrong CA: {out}"
    );

    let daemons: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(&net.nodes[i], &cfgs[i], TABLE))
        .collect();
    for (i, c) in cfgs.iter().enumerate() {
        assert!(
            eventually(WITHIN, || connected(c)),
            "node {i} did not connect over TLS: {}\n{}",
            link(c),
            daemons[i].stderr()
        );
        assert!(link(c)["redis"]
            .as_str()
            .unwrap_or("")
            .starts_with("rediss://"));
    }
    // A manual ban on node 0 and a counted ban on node 1 reach every node.
    let out = cfgs[0].cli(&["ban", "app", "198.51.100.40"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cfgs[1].append("app.log", &failures("198.51.100.41", 3));
    for addr in ["198.51.100.40", "198.51.100.41"] {
        for (i, d) in daemons.iter().enumerate() {
            assert!(
                eventually(WITHIN, || in_set(&net.nodes[i], TABLE, "app_v4", addr)),
                "{addr} not banned on node {i} over TLS:\n{}",
                d.stderr()
            );
        }
    }
    let origin = |i: usize, addr: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&cfgs[i].cli(&["bans", "--json"]).stdout).unwrap_or_default();
        v["bans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["addr"].as_str().is_some_and(|a| a.starts_with(addr)))
            .map(|b| b["origin"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(origin(2, "198.51.100.40"), "n0");
    assert_eq!(origin(2, "198.51.100.41"), "n1");
}

fn check_dir(fleet: &str, files: &[(&str, &str)]) -> (i32, String) {
    let c = ConfigDir::app("bwfltlschk", "");
    c.append("banwarden.yaml", fleet);
    for (name, text) in files {
        c.write(name, text);
    }
    let out = c.cli(&["check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn check_refuses_tls_files_that_cannot_work() {
    let pem_dir = tempfile::tempdir().expect("temp dir");
    make_certs(pem_dir.path(), "127.0.0.1");
    let ca = pem_dir.path().join("ca.crt");
    let ca = ca.display();
    let ok = format!("fleet:\n  redis: rediss://127.0.0.1:1/0\n  ca_file: {ca}\n");
    let (code, out) = check_dir(&ok, &[]);
    assert_eq!(code, 0, "{out}");
    for (yaml, files, want) in [
        (
            format!("fleet:\n  redis: redis://127.0.0.1:1/0\n  ca_file: {ca}\n"),
            vec![],
            "fleet.ca_file: TLS files need a rediss:// URL",
        ),
        (
            "fleet:\n  redis: rediss://127.0.0.1:1/0\n  ca_file: nowhere.pem\n".to_string(),
            vec![],
            "fleet.ca_file: cannot read `nowhere.pem`",
        ),
        (
            "fleet:\n  redis: rediss://127.0.0.1:1/0\n  ca_file: ca.pem\n".to_string(),
            vec![("ca.pem", "not a certificate\n")],
            "fleet.ca_file: `ca.pem` holds no PEM certificate",
        ),
        (
            format!(
                "fleet:\n  redis: rediss://127.0.0.1:1/0\n  cert_file: {}\n",
                pem_dir.path().join("client.crt").display()
            ),
            vec![],
            "fleet.key_file: missing",
        ),
        (
            format!(
                "fleet:\n  redis: rediss://127.0.0.1:1/0\n  cert_file: {}\n  key_file: key.pem\n",
                pem_dir.path().join("client.crt").display()
            ),
            vec![("key.pem", "-----BEGIN NOTHING-----\n")],
            "fleet.key_file:",
        ),
        (
            "fleet:\n  redis: rediss://\n".to_string(),
            vec![],
            "fleet.redis",
        ),
    ] {
        let (code, out) = check_dir(&yaml, &files);
        assert_eq!(code, 1, "{yaml}: {out}");
        assert!(out.contains(want), "{yaml}: want {want:?} in:\n{out}");
        assert!(out.contains("banwarden.yaml:"), "no file:line in {out}");
    }
}
