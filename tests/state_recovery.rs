//! A state file the daemon cannot use (truncated, garbage, written by a newer
//! banwarden) never keeps it from starting: the file is moved aside with a
//! log line, and the bans still in the kernel's sets are recovered. Real
//! binary, real nft, inside a test network namespace.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{ConfigDir, Daemon};
use common::netns::{eventually, skip_unless_privileged, NetPair};

fn config(table: &str) -> ConfigDir {
    ConfigDir::app(table, "  maxretry: 3\n")
}

/// The addresses `bans --json` lists, once the daemon answers.
fn bans(cfg: &ConfigDir) -> Option<Vec<String>> {
    let out = cfg.cli(&["bans", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut addrs: Vec<String> = v["bans"]
        .as_array()?
        .iter()
        .filter_map(|b| b["addr"].as_str().map(str::to_string))
        .collect();
    addrs.sort();
    Some(addrs)
}

fn moved_aside(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.redb."))
        })
        .collect()
}

/// A way to spoil a state file: its name, the suffix it is moved aside with.
type Damage<'a> = (&'a str, &'a str, &'a dyn Fn(&Path));

/// Writes a state file of schema version 99, as a newer banwarden might.
fn newer_schema(path: &Path) {
    let _ = std::fs::remove_file(path);
    let db = redb::Database::create(path).expect("create redb file");
    let txn = db.begin_write().expect("write txn");
    {
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        let mut t = txn.open_table(meta).expect("meta table");
        t.insert("schema_version", 99).expect("insert");
    }
    txn.commit().expect("commit");
}

#[test]
fn an_unusable_state_file_is_moved_aside_and_the_kernel_bans_recovered() {
    if skip_unless_privileged() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwstate";
    let cfg = config(table);
    let state = cfg.path().join("state");
    let file = state.join("state.redb");
    let want = vec!["192.0.2.20".to_string(), "192.0.2.21".to_string()];
    let damages: [Damage; 3] = [
        ("truncated", "corrupt", &|p: &Path| {
            let len = std::fs::metadata(p).expect("state file").len();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(len / 3).expect("truncate");
        }),
        ("garbage", "corrupt", &|p: &Path| {
            std::fs::write(p, b"not a database\n".repeat(500)).expect("write garbage");
        }),
        ("newer schema", "schema99", &newer_schema),
    ];
    for (round, (what, suffix, damage)) in damages.into_iter().enumerate() {
        let daemon = Daemon::start(&pair.srv, &cfg, table);
        // The table is left from the last run: wait for the daemon itself.
        assert!(eventually(Duration::from_secs(10), || bans(&cfg).is_some()));
        if round == 0 {
            for addr in &want {
                let out = cfg.cli(&["ban", "app", addr, "--for", "1h"]);
                assert!(out.status.success(), "{out:?}");
            }
        }
        let log = daemon.stderr();
        assert!(daemon.stop().success(), "{what}: round {round}\n{log}");
        damage(&file);

        let mut daemon = Daemon::start(&pair.srv, &cfg, table);
        let mut got = None;
        let answered = eventually(Duration::from_secs(10), || {
            daemon.assert_alive();
            got = bans(&cfg);
            got.is_some()
        });
        assert!(
            answered,
            "{what}: the daemon does not answer\n{}",
            daemon.stderr()
        );
        assert_eq!(
            got.as_ref(),
            Some(&want),
            "{what}: bans not recovered from the kernel\n{}",
            daemon.stderr()
        );
        let log = daemon.stderr();
        assert!(
            log.contains("state file unusable: moved aside"),
            "{what}: no log line\n{log}"
        );
        let aside = moved_aside(&state);
        assert!(
            aside.iter().any(|p| p.to_string_lossy().contains(suffix)),
            "{what}: not moved aside as .{suffix}-*: {aside:?}"
        );
        for p in aside {
            std::fs::remove_file(p).expect("clean up");
        }
        assert!(daemon.stop().success(), "{what}");
    }
}
