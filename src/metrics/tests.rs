//! Unit tests of `metrics`.

use super::*;

/// The value of the sample line `series` (name and labels exactly as
/// rendered), if present.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ').map(str::to_owned)
    })
}

pub(super) fn value(text: &str, series: &str) -> String {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[test]
fn line_counters_are_labelled_by_jail_and_filter() {
    let m = Metrics::new();
    m.lines("sshd", "sshd-auth", 5);
    m.lines("sshd", "sshd-auth", 2);
    m.lines("nginx", "nginx-404", 1);
    m.matched("sshd", "sshd-auth", 3);
    m.ignored_lines("sshd", "sshd-auth", 4);
    let t = m.render();
    assert_eq!(
        value(
            &t,
            r#"banwarden_lines_read_total{jail="sshd",filter="sshd-auth"}"#
        ),
        "7"
    );
    assert_eq!(
        value(
            &t,
            r#"banwarden_lines_read_total{jail="nginx",filter="nginx-404"}"#
        ),
        "1"
    );
    assert_eq!(
        value(
            &t,
            r#"banwarden_lines_matched_total{jail="sshd",filter="sshd-auth"}"#
        ),
        "3"
    );
    assert_eq!(
        value(
            &t,
            r#"banwarden_lines_ignored_total{jail="sshd",filter="sshd-auth"}"#
        ),
        "4"
    );
    assert!(t.contains("# TYPE banwarden_lines_read counter"), "{t}");
    assert!(t.ends_with("# EOF\n"), "{t}");
}

#[test]
fn failures_and_bans_per_jail() {
    let m = Metrics::new();
    m.failures("sshd", 6);
    m.failures("sshd", 1);
    m.bans("sshd", 2);
    m.bans("postfix", 1);
    let t = m.render();
    assert_eq!(value(&t, r#"banwarden_failures_total{jail="sshd"}"#), "7");
    assert_eq!(value(&t, r#"banwarden_bans_total{jail="sshd"}"#), "2");
    assert_eq!(value(&t, r#"banwarden_bans_total{jail="postfix"}"#), "1");
    assert_eq!(
        sample(&t, r#"banwarden_failures_total{jail="postfix"}"#),
        None
    );
}

#[test]
fn unbans_by_cause() {
    let m = Metrics::new();
    m.unbans("sshd", UnbanCause::Expiry, 3);
    m.unbans("sshd", UnbanCause::Manual, 1);
    m.unbans("sshd", UnbanCause::Reload, 2);
    m.unbans("sshd", UnbanCause::Expiry, 1);
    let t = m.render();
    assert_eq!(
        value(&t, r#"banwarden_unbans_total{jail="sshd",cause="expiry"}"#),
        "4"
    );
    assert_eq!(
        value(&t, r#"banwarden_unbans_total{jail="sshd",cause="manual"}"#),
        "1"
    );
    assert_eq!(
        value(&t, r#"banwarden_unbans_total{jail="sshd",cause="reload"}"#),
        "2"
    );
    assert_eq!(UnbanCause::Reload.to_string(), "reload");
}

#[test]
fn gauges_are_set_not_added_and_removed_with_the_jail() {
    let m = Metrics::new();
    m.set_active_bans("sshd", 10);
    m.set_active_bans("sshd", 4);
    m.set_tracked("sshd", 12);
    m.set_tracked("sshd", 9);
    m.bans("sshd", 1);
    let t = m.render();
    assert_eq!(value(&t, r#"banwarden_active_bans{jail="sshd"}"#), "4");
    assert_eq!(value(&t, r#"banwarden_failures_tracked{jail="sshd"}"#), "9");
    assert!(t.contains("# TYPE banwarden_active_bans gauge"), "{t}");

    m.remove_jail("sshd");
    let t = m.render();
    assert_eq!(sample(&t, r#"banwarden_active_bans{jail="sshd"}"#), None);
    assert_eq!(
        sample(&t, r#"banwarden_failures_tracked{jail="sshd"}"#),
        None
    );
    assert_eq!(value(&t, r#"banwarden_bans_total{jail="sshd"}"#), "1");
}

#[test]
fn fixed_label_sets_start_at_zero() {
    let t = Metrics::new().render();
    for s in [
        r#"banwarden_nft_transactions_total{result="ok"}"#,
        r#"banwarden_nft_transactions_total{result="error"}"#,
        r#"banwarden_source_errors_total{kind="file"}"#,
        r#"banwarden_source_errors_total{kind="journal"}"#,
        r#"banwarden_source_errors_total{kind="command"}"#,
        r#"banwarden_source_errors_total{kind="other"}"#,
        r#"banwarden_source_rotations_total{how="renamed"}"#,
        r#"banwarden_source_rotations_total{how="truncated"}"#,
        r#"banwarden_source_rotations_total{how="recreated"}"#,
        r#"banwarden_source_rotations_total{how="other"}"#,
    ] {
        assert_eq!(value(&t, s), "0", "{s}");
    }
    assert_eq!(value(&t, "banwarden_nft_transaction_seconds_count"), "0");
}

#[test]
fn nft_transactions_counted_by_result_and_histogram_buckets() {
    let m = Metrics::new();
    m.nft_transaction(Duration::from_micros(300), true); // <= 0.5 ms
    m.nft_transaction(Duration::from_millis(3), true); // <= 5 ms
    m.nft_transaction(Duration::from_millis(3), false); // <= 5 ms
    m.nft_transaction(Duration::from_millis(700), true); // <= 1 s
    m.nft_transaction(Duration::from_secs(9), false); // +Inf only
    let t = m.render();
    assert_eq!(
        value(&t, r#"banwarden_nft_transactions_total{result="ok"}"#),
        "3"
    );
    assert_eq!(
        value(&t, r#"banwarden_nft_transactions_total{result="error"}"#),
        "2"
    );
    assert!(
        t.contains("# TYPE banwarden_nft_transaction_seconds histogram"),
        "{t}"
    );
    assert!(
        t.contains("# UNIT banwarden_nft_transaction_seconds seconds"),
        "{t}"
    );
    let bucket = |le: &str| {
        value(
            &t,
            &format!(r#"banwarden_nft_transaction_seconds_bucket{{le="{le}"}}"#),
        )
    };
    // Bucket counts are cumulative.
    assert_eq!(bucket("0.0005"), "1");
    assert_eq!(bucket("0.001"), "1");
    assert_eq!(bucket("0.0025"), "1");
    assert_eq!(bucket("0.005"), "3");
    assert_eq!(bucket("0.5"), "3");
    assert_eq!(bucket("1.0"), "4");
    assert_eq!(bucket("5.0"), "4");
    assert_eq!(bucket("+Inf"), "5");
    assert_eq!(value(&t, "banwarden_nft_transaction_seconds_count"), "5");
    let sum: f64 = value(&t, "banwarden_nft_transaction_seconds_sum")
        .parse()
        .unwrap();
    assert!((sum - 9.7063).abs() < 1e-9, "sum {sum}");
    let buckets = t
        .lines()
        .filter(|l| l.starts_with("banwarden_nft_transaction_seconds_bucket"))
        .count();
    assert_eq!(buckets, NFT_BUCKETS.len() + 1, "{t}");
}

#[test]
fn source_errors_and_rotations_by_kind() {
    let m = Metrics::new();
    m.source_error("journal");
    m.source_error("journal");
    m.source_error("command");
    m.source_error("10.0.0.1: something"); // not a kind: goes to `other`
    m.rotation("truncated");
    m.rotation("renamed");
    m.rotation("renamed");
    m.rotation("bogus");
    let t = m.render();
    assert_eq!(
        value(&t, r#"banwarden_source_errors_total{kind="journal"}"#),
        "2"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_errors_total{kind="command"}"#),
        "1"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_errors_total{kind="file"}"#),
        "0"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_errors_total{kind="other"}"#),
        "1"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_rotations_total{how="renamed"}"#),
        "2"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_rotations_total{how="truncated"}"#),
        "1"
    );
    assert_eq!(
        value(&t, r#"banwarden_source_rotations_total{how="other"}"#),
        "1"
    );
    assert!(!t.contains("10.0.0.1"), "{t}");
    assert!(!t.contains("bogus"), "{t}");
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.bans("we\"ird\\jail\n", 1);
    let t = m.render();
    assert_eq!(
        value(&t, r#"banwarden_bans_total{jail="we\"ird\\jail\n"}"#),
        "1"
    );
}

#[test]
fn metrics_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Metrics>();
    check::<Arc<Metrics>>();
}
