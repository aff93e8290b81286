//! `<F-ALT_USER>`: when `<F-USER>` takes nothing, the user is the first
//! non-empty alternate (`alt_user`, `alt_user_1`...), as fail2ban merges
//! them. Proved on fail2ban's installed sample logs of the filters that use
//! it: every matching line annotated with a `user` must report that user.
//! (tests/fail2ban_samples.rs compares match, host and time; this adds the
//! user where fail2ban's annotations give one.) Read from the installed
//! package at test time, never copied (GPL).

mod common;

use std::path::Path;

use banwarden::fail2ban;
use banwarden::filter::Outcome;
use common::fail2ban::{installed, FILTERS, SAMPLES};

/// fail2ban's TEST_NOW.
const TEST_NOW: i64 = 1_124_013_600;

#[test]
fn alternate_user_fields_fill_an_empty_user() {
    if !installed(
        Path::new(SAMPLES).is_dir() && Path::new(FILTERS).is_dir(),
        "fail2ban",
    ) {
        return;
    }
    std::env::set_var("TZ", "UTC");
    let (mut checked, mut from_alt) = (0, 0);
    let mut misses = Vec::new();
    for name in [
        "pam-generic",
        "dovecot",
        "lighttpd-auth",
        "monit",
        "grafana",
    ] {
        let Ok(log) = std::fs::read_to_string(Path::new(SAMPLES).join(name)) else {
            continue;
        };
        let filter = fail2ban::compile_ref(
            &format!("fail2ban:{name}"),
            Path::new("/etc/fail2ban"),
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .filter;
        let mut state = filter.new_state();
        let mut want: Option<serde_json::Value> = None;
        for line in log.lines() {
            if let Some(json) = line.strip_prefix("# failJSON:") {
                want = serde_json::from_str(json.trim()).ok();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let Some(fd) = want.take() else { continue };
            let Some(user) = fd.get("user").and_then(|u| u.as_str()) else {
                continue;
            };
            let d = filter.date(line.as_bytes(), TEST_NOW, &mut state);
            let (o, spans) = filter.examine_dated(line.as_bytes(), d, &mut state);
            if !matches!(o, Outcome::Failure { .. } | Outcome::BadHost { .. }) {
                continue; // a line of another filterOptions variant
            }
            checked += 1;
            let got = spans
                .user
                .map(|r| String::from_utf8_lossy(&line.as_bytes()[r]).into_owned());
            if got.as_deref() != Some(user) {
                misses.push(format!(
                    "{name}: expected user {user:?}, got {got:?}: {line}"
                ));
            } else if !line.contains(" user=") && line.contains(&format!("ruser={user} ")) {
                // pam: no `user=`, so <F-USER> took nothing; `ruser=` is <F-ALT_USER>.
                from_alt += 1;
            }
        }
    }
    println!("{checked} annotated users checked, {from_alt} of them from ruser= (pam's alternate)");
    assert!(
        misses.is_empty(),
        "{} misses:\n{}",
        misses.len(),
        misses.join("\n")
    );
    assert!(checked >= 8, "only {checked} annotated users found");
    assert!(
        from_alt >= 1,
        "no line took its user from an alternate field"
    );
}
