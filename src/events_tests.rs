//! Each internal event writes exactly one record, with the fields the
//! journal keeps, and moves its metric.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;
use crate::metrics::Metrics;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON records `f` logs (debug and up).
fn records(f: impl FnOnce()) -> Vec<serde_json::Value> {
    let buf = Buf::default();
    let out = buf.clone();
    let sub = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || out.clone())
        .finish();
    tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn sample(m: &Metrics, series: &str) -> String {
    let text = m.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .to_string()
}

#[test]
fn a_ban_is_one_record_with_the_bare_address_and_one_count() {
    let m = Metrics::new();
    let recs = records(|| {
        Banned {
            jail: "sshd",
            net: "203.0.113.7/32".parse().unwrap(),
            failures: 5,
            bantime: Some(600),
            origin: BanOrigin::Jail,
        }
        .emit(Some(&m));
        Banned {
            jail: "sshd",
            net: "2001:db8::/64".parse().unwrap(),
            failures: 0,
            bantime: None,
            origin: BanOrigin::Manual,
        }
        .emit(Some(&m));
    });
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0]["message"], "ban");
    assert_eq!(recs[0]["jail"], "sshd");
    assert_eq!(recs[0]["addr"], "203.0.113.7");
    assert_eq!(recs[0]["bantime"], "600");
    assert_eq!(recs[0]["failures"], 5);
    assert_eq!(recs[1]["message"], "manual ban");
    assert_eq!(recs[1]["addr"], "2001:db8::/64");
    assert_eq!(recs[1]["bantime"], "permanent");
    assert_eq!(sample(&m, r#"banwarden_bans_total{jail="sshd"}"#), "2");
}

#[test]
fn bulk_bans_and_manual_unbans_are_one_record_each() {
    let m = Metrics::new();
    let keys = vec![
        ("sshd".to_string(), "192.0.2.1/32".parse().unwrap()),
        ("web".to_string(), "192.0.2.2/32".parse().unwrap()),
    ];
    let recs = records(|| {
        BulkBanned {
            per_jail: &[("sshd".to_string(), 3), ("web".to_string(), 2)],
            skipped: 1,
        }
        .emit(Some(&m));
        ManualUnban { bans: &keys }.emit(Some(&m));
        BansExpired {
            jail: "sshd",
            count: 4,
        }
        .emit(Some(&m));
    });
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[0]["message"], "bulk ban");
    assert_eq!(recs[0]["count"], 5);
    assert_eq!(recs[1]["message"], "manual unban");
    assert_eq!(recs[1]["count"], 2);
    assert_eq!(recs[2]["level"], "DEBUG");
    assert_eq!(sample(&m, r#"banwarden_bans_total{jail="web"}"#), "2");
    assert_eq!(
        sample(&m, r#"banwarden_unbans_total{jail="web",cause="manual"}"#),
        "1"
    );
    assert_eq!(
        sample(&m, r#"banwarden_unbans_total{jail="sshd",cause="expiry"}"#),
        "4"
    );
}

#[test]
fn reloads_and_store_errors_are_logged_at_their_level_and_counted() {
    let m = Metrics::new();
    assert_eq!(
        sample(&m, r#"banwarden_reloads_total{result="error"}"#),
        "0"
    );
    let recs = records(|| {
        Reloaded {
            jails: &["sshd".to_string()],
        }
        .emit(Some(&m));
        ReloadRejected {
            errors: &"jails/x.yaml:1:7: maxretry: expected a whole number",
        }
        .emit(Some(&m));
        StoreError {
            op: StoreOp::RecordBans,
            error: &"disk full",
        }
        .emit(Some(&m));
        StoreError {
            op: StoreOp::SavePositions,
            error: &"disk full",
        }
        .emit(None);
    });
    let levels: Vec<&str> = recs.iter().map(|r| r["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["INFO", "ERROR", "ERROR", "WARN"], "{recs:?}");
    assert_eq!(recs[2]["op"], "record_bans");
    assert_eq!(sample(&m, r#"banwarden_reloads_total{result="ok"}"#), "1");
    assert_eq!(
        sample(&m, r#"banwarden_reloads_total{result="error"}"#),
        "1"
    );
    assert_eq!(
        sample(&m, r#"banwarden_store_errors_total{op="record_bans"}"#),
        "1"
    );
    assert_eq!(
        sample(&m, r#"banwarden_store_errors_total{op="save_positions"}"#),
        "0"
    );
}

#[test]
fn firewall_failures_and_rebuilds_are_one_record_each() {
    let m = Metrics::new();
    let recs = records(|| {
        FirewallFailed {
            what: "batch",
            ops: 1,
            error: "1 of 10 ops failed: bad element",
            again: false,
        }
        .emit(Some(&m));
        FirewallFailed {
            what: "rebuild",
            ops: 0,
            error: "no such table",
            again: true,
        }
        .emit(Some(&m));
        FirewallRebuilt {
            reason: "table missing",
            bans: 3,
        }
        .emit(Some(&m));
    });
    let levels: Vec<&str> = recs.iter().map(|r| r["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["ERROR", "DEBUG", "WARN"], "{recs:?}");
    assert_eq!(recs[0]["message"], "firewall change failed");
    assert_eq!(recs[0]["what"], "batch");
    assert_eq!(recs[0]["ops"], 1);
    assert_eq!(recs[2]["message"], "firewall rebuilt");
    assert_eq!(recs[2]["bans"], 3);
    assert_eq!(
        sample(&m, r#"banwarden_nft_transactions_total{result="error"}"#),
        "2"
    );
}

#[test]
fn action_outcomes_are_one_record_each_and_move_the_actions_counters() {
    use std::sync::atomic::Ordering::Relaxed;
    let c = crate::actions::ActionCounters::default();
    let recs = records(|| {
        ActionDelivered {
            jail: "sshd",
            action: "hook",
            events: 3,
        }
        .emit(&c);
        ActionRetrying {
            jail: "sshd",
            action: "hook",
            attempt: 1,
            retry_in: std::time::Duration::from_secs(2),
            error: &"HTTP 503",
        }
        .emit(&c);
        ActionFailed {
            jail: "sshd",
            action: "hook",
            events: 2,
            attempts: 3,
            error: &"HTTP 503",
        }
        .emit(&c);
        for log in [true, false] {
            ActionQueueFull {
                jail: "sshd",
                action: "hook",
                queue: 10,
                log,
            }
            .emit(&c);
        }
    });
    let levels: Vec<&str> = recs.iter().map(|r| r["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["DEBUG", "WARN", "ERROR", "WARN"], "{recs:?}");
    assert_eq!(recs[2]["message"], "action failed; its events are dropped");
    assert_eq!(recs[2]["events"], 2);
    assert_eq!(c.calls_ok.load(Relaxed), 1);
    assert_eq!(c.calls_failed.load(Relaxed), 2);
    assert_eq!(c.events_sent.load(Relaxed), 3);
    assert_eq!(
        c.events_dropped.load(Relaxed),
        2 + 2,
        "both full-queue drops count"
    );
}

#[test]
fn fleet_link_changes_are_one_record_each_and_set_the_links_status() {
    let status = std::sync::Mutex::new(crate::fleet::FleetStatus::default());
    let recs = records(|| {
        FleetLinkDown {
            redis: "redis://127.0.0.1:6379/0",
            error: "connection refused",
            pending: 2,
            first: true,
        }
        .emit(&status);
        FleetLinkDown {
            redis: "redis://127.0.0.1:6379/0",
            error: "connection refused",
            pending: 3,
            first: false,
        }
        .emit(&status);
        assert!(!status.lock().unwrap().connected);
        assert_eq!(status.lock().unwrap().pending, 3);
        FleetMalformed {
            id: "1-0",
            error: &"not a message",
        }
        .emit(&status);
        FleetLinkUp {
            node: "web-1",
            published: 3,
        }
        .emit(&status);
    });
    let messages: Vec<&str> = recs
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "fleet link down; banning locally, reconnecting",
            "fleet: skipped a malformed stream entry",
            "fleet link up"
        ],
        "a retry while down is not logged again"
    );
    let s = status.lock().unwrap();
    assert!(s.connected && s.last_error.is_none() && s.pending == 0);
    assert_eq!(s.malformed, 1);
}
