//! fail2ban as the reference: its files read from the installed Debian
//! package at test time (they are GPL: never copied into the repository).
#![allow(dead_code)]

/// fail2ban's filters.
pub const FILTERS: &str = "/etc/fail2ban/filter.d";
/// fail2ban's sample logs with their `failJSON` annotations.
pub const SAMPLES: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// Whether the test can run: `have` says the fail2ban files it reads are
/// here. If not, prints why it is skipped and returns false, or fails where
/// CI requires every test to run (`BANWARDEN_REQUIRE_PRIVILEGED_TESTS`,
/// `BANWARDEN_REQUIRE_FAIL2BAN`).
pub fn installed(have: bool, what: &str) -> bool {
    if have {
        return true;
    }
    let required = std::env::var_os("BANWARDEN_REQUIRE_PRIVILEGED_TESTS").is_some()
        || std::env::var_os("BANWARDEN_REQUIRE_FAIL2BAN").is_some();
    assert!(
        !required,
        "{what} is not installed (apt-get install fail2ban)"
    );
    eprintln!("skipped: {what} is not installed (scripts/test.sh installs it as root)");
    false
}
