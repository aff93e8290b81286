//! `banwarden ban --from FILE` with the real binary and real nft in a test
//! network namespace: a list of addresses and the JSON of `bans --json`
//! (exported from one daemon, imported into another) are applied whole;
//! bad lines are refused as FILE:LINE before anything is sent; allow-listed
//! entries are skipped and reported; the banned client's packets are dropped.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::{in_set, ConfigDir, Daemon};
use common::netns::{connects, listen, skip_unless_privileged, NetPair};

const PORT: u16 = 8080;

fn config(table: &str) -> ConfigDir {
    ConfigDir::app(
        table,
        &format!("  bantime: 1h\n  ports: [{PORT}]\n  ignoreip: [192.0.2.128/25]\n"),
    )
}

fn run(cfg: &ConfigDir, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_banwarden"))
        .args(args)
        .arg("--config")
        .arg(cfg.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run banwarden");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_list_and_an_exported_json_are_banned_in_one_go() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwbulk";
    let cfg = config(table);
    let mut daemon = Daemon::start(&pair.srv, &cfg, table);
    let _listener = listen(&pair.srv, &pair.srv_v4, PORT);
    let t = Duration::from_secs(1);
    assert!(connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t));

    // A bad line: nothing is sent, the error names file and line.
    cfg.write("list.txt", "192.0.2.1\nnot-an-address\n");
    let list = cfg.path().join("list.txt");
    let (ok, _, err) = run(
        &cfg,
        &["ban", "--from", &list.to_string_lossy(), "app"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("list.txt:2: `not-an-address`"), "{err}");
    assert!(!in_set(&pair.srv, table, "app_v4", "192.0.2.1"));
    // Without a jail a plain list is refused.
    let (ok, _, err) = run(&cfg, &["ban", "--from", &list.to_string_lossy()], None);
    assert!(!ok && err.contains("needs the JAIL"), "{err}");

    // 1,000 addresses, the attacker, a network and an allow-listed one, from stdin.
    let mut text = String::from("# imported\n");
    for i in 0..1000u32 {
        text.push_str(&format!("10.{}.{}.1\n", i / 256, i % 256));
    }
    text.push_str(&format!("{}\n198.51.100.0/24\n192.0.2.200\n", pair.atk_v4));
    let (ok, out, err) = run(&cfg, &["ban", "--from", "-", "app"], Some(&text));
    assert!(ok, "{err}");
    assert!(out.contains("banned 1002 entries; 1 skipped"), "{out}");
    assert!(out.contains("192.0.2.200/32 is in ignoreip"), "{out}");
    assert!(in_set(&pair.srv, table, "app_v4", "10.3.231.1"));
    assert!(in_set(&pair.srv, table, "app_v4", &pair.atk_v4));
    assert!(!in_set(&pair.srv, table, "app_v4", "192.0.2.200"));
    // The kernel has it when the command returns: the attacker is cut off.
    assert!(!connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t));
    assert!(connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, t));

    // Export, then import into a second daemon (another table in the same
    // namespace): same bans, same remaining time (within a few seconds).
    let (ok, exported, err) = run(&cfg, &["bans", "--json"], None);
    assert!(ok, "{err}");
    daemon.assert_alive();
    let other = config("bwbulk2");
    let mut second = Daemon::start(&pair.srv, &other, "bwbulk2");
    other.write("bans.json", &exported);
    let path = other.path().join("bans.json");
    let (ok, out, err) = run(&other, &["ban", "--from", &path.to_string_lossy()], None);
    assert!(ok, "{err}");
    assert!(out.contains("banned 1002 entries"), "{out}");
    let (_, listed, _) = run(&other, &["bans", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&listed).expect("json");
    let bans = v["bans"].as_array().expect("bans");
    assert_eq!(bans.len(), 1002);
    let now = banwarden::now();
    assert!(bans.iter().all(|b| {
        let left = b["expires"].as_i64().unwrap_or(0) - now;
        (3590..=3600).contains(&left)
    }));
    assert!(listed.contains("\"198.51.100.0/24\""), "{listed}");
    second.assert_alive();
}
