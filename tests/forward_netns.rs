//! `chains: [input, forward]` with real packets through a Docker-style router.
//!
//! The server namespace of a [`NetPair`] becomes a router that publishes a
//! "container" (a third namespace behind a second veth) the way Docker does:
//! DNAT of the published port 8080 to the container's port 80 in prerouting,
//! and a forward chain at priority `filter` (0) with policy drop that accepts
//! traffic to the container. A client reaching the published port never
//! passes the input hook, so only banwarden's forward chain can stop it.
//! Everything runs inside namespaces this test creates and deletes.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use banwarden::firewall::nft::NftFirewall;
use banwarden::firewall::{
    BanEntry, Chains, Firewall, FirewallOp, JailRules, PortRange, Protocol, Verdict,
};
use common::netns::{exec_ok, listen, probe, skip_unless_privileged, NetPair, Probe};

const PUBLISHED: u16 = 8080;
const CONTAINER_PORT: u16 = 80;
const T: Duration = Duration::from_secs(1);
const TABLE: &str = "bwfwd";

/// A backend namespace routed through the pair's server namespace, with
/// Docker's rules in front of it. The namespace is deleted on drop.
struct DockerHost {
    pair: NetPair,
    backend: String,
    backend_v4: String,
}

impl DockerHost {
    fn new() -> DockerHost {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pair = NetPair::new();
        let x = pair
            .srv_v4
            .split('.')
            .nth(2)
            .expect("198.18.X.1")
            .to_string();
        let u = format!("{:x}{n:02x}", std::process::id());
        let host = DockerHost {
            backend: format!("bw-bkd-{u}"),
            backend_v4: format!("198.19.{x}.2"),
            pair,
        };
        let router_v4 = format!("198.19.{x}.1");
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &host.backend]);
        let (vr, vb) = (format!("bwf{u}r"), format!("bwf{u}b"));
        let srv = host.pair.srv.clone();
        ip(&[
            "link",
            "add",
            &vr,
            "netns",
            &srv,
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &host.backend,
        ]);
        ip(&[
            "-n",
            &srv,
            "addr",
            "add",
            &format!("{router_v4}/24"),
            "dev",
            &vr,
        ]);
        ip(&["-n", &srv, "link", "set", &vr, "up"]);
        let b = host.backend.clone();
        ip(&["-n", &b, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &b,
            "addr",
            "add",
            &format!("{}/24", host.backend_v4),
            "dev",
            &vb,
        ]);
        ip(&["-n", &b, "link", "set", &vb, "up"]);
        ip(&["-n", &b, "route", "add", "default", "via", &router_v4]);
        exec_ok(&srv, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // What Docker installs for `-p 8080:80` (iptables-nft and Docker 29's
        // nftables mode alike: DNAT in prerouting, filter at priority 0).
        let docker = format!(
            "table ip dockerlike {{
               chain prerouting {{
                 type nat hook prerouting priority dstnat; policy accept;
                 tcp dport {PUBLISHED} dnat to {}:{CONTAINER_PORT}
               }}
               chain forward {{
                 type filter hook forward priority filter; policy drop;
                 ct state established,related accept
                 ip daddr {} tcp dport {CONTAINER_PORT} accept
               }}
             }}\n",
            host.backend_v4, host.backend_v4
        );
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), docker).expect("write ruleset");
        exec_ok(&srv, &["nft", "-f", &file.path().to_string_lossy()]);
        host
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.backend])
            .output();
    }
}

fn jail(chains: Chains) -> JailRules {
    JailRules {
        name: "web".into(),
        protocol: Protocol::Tcp,
        ports: vec![
            PortRange {
                lo: PUBLISHED,
                hi: PUBLISHED,
            },
            PortRange { lo: 9000, hi: 9100 },
        ],
        verdict: Verdict::Drop,
        ipv4_prefix: 32,
        ipv6_prefix: 64,
        chains,
    }
}

fn ban(addr: &str) -> FirewallOp {
    FirewallOp::Ban(BanEntry {
        jail: "web".into(),
        net: addr.parse::<std::net::IpAddr>().expect("address").into(),
        expires: None,
    })
}

fn reaches(h: &DockerHost, src: &str) -> Probe {
    probe(&h.pair.atk, src, &h.pair.srv_v4, PUBLISHED, T)
}

#[test]
fn forward_chain_bans_cover_a_docker_published_port() {
    if skip_unless_privileged() {
        return;
    }
    let h = DockerHost::new();
    let _container = listen(&h.backend, &h.backend_v4, CONTAINER_PORT);
    assert_eq!(
        reaches(&h, &h.pair.atk_v4),
        Probe::Connected,
        "the published port must work through DNAT before any ban"
    );
    let rules = jail(Chains {
        input: true,
        forward: true,
    });
    let mut fw = NftFirewall::new(TABLE, h.pair.nft_cmd());
    let now = banwarden::now();
    fw.setup(std::slice::from_ref(&rules), &[], now)
        .expect("setup");
    assert!(fw.intact(std::slice::from_ref(&rules)).expect("intact"));
    let listing = h.pair.srv_nft(&["list", "chain", "inet", TABLE, "forward"]);
    assert!(
        listing.contains("hook forward priority filter - 10"),
        "{listing}"
    );
    fw.apply(&[ban(&h.pair.atk_v4)], now).expect("ban");
    assert_eq!(
        reaches(&h, &h.pair.atk_v4),
        Probe::TimedOut,
        "a banned client must not reach the published port"
    );
    assert_eq!(
        reaches(&h, &h.pair.atk2_v4),
        Probe::Connected,
        "an unbanned client must still reach it"
    );
    // Docker's own chain still decides for everyone else: the container's
    // port itself is not published on the router.
    assert_ne!(
        probe(&h.pair.atk, &h.pair.atk2_v4, &h.pair.srv_v4, 9000, T),
        Probe::Connected
    );
    fw.apply(
        &[FirewallOp::Unban {
            jail: "web".into(),
            net: h.pair.atk_v4.parse::<std::net::IpAddr>().unwrap().into(),
        }],
        now,
    )
    .expect("unban");
    assert_eq!(reaches(&h, &h.pair.atk_v4), Probe::Connected);

    // Dropping `forward` from every jail removes the chain on the next setup.
    let input_only = jail(Chains::default());
    fw.setup(std::slice::from_ref(&input_only), &[], now)
        .expect("setup without forward");
    let table = h.pair.srv_nft(&["list", "table", "inet", TABLE]);
    assert!(!table.contains("hook forward"), "{table}");
    assert!(fw
        .intact(std::slice::from_ref(&input_only))
        .expect("intact"));
    assert!(!fw.intact(std::slice::from_ref(&rules)).expect("intact"));
}

/// Why the key exists: an input-only ban does not stop forwarded traffic.
#[test]
fn input_only_bans_do_not_cover_a_published_port() {
    if skip_unless_privileged() {
        return;
    }
    let h = DockerHost::new();
    let _container = listen(&h.backend, &h.backend_v4, CONTAINER_PORT);
    let rules = jail(Chains::default());
    let mut fw = NftFirewall::new(TABLE, h.pair.nft_cmd());
    let now = banwarden::now();
    fw.setup(std::slice::from_ref(&rules), &[], now)
        .expect("setup");
    fw.apply(&[ban(&h.pair.atk_v4)], now).expect("ban");
    assert!(
        h.pair
            .srv_nft(&["list", "set", "inet", TABLE, "web_v4"])
            .contains(&h.pair.atk_v4),
        "the ban is in the set"
    );
    assert_eq!(
        reaches(&h, &h.pair.atk_v4),
        Probe::Connected,
        "with chains: [input] the forwarded connection is not filtered"
    );
}
