//! Unit tests of the jail mapping, on fail2ban-format files written here.

use super::*;
use crate::fail2ban::syntax::{split_actions, split_ref};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A small fail2ban directory: one filter with a journalmatch, two actions.
fn base(dir: &Path, jail_conf: &str) {
    write(
        dir,
        "filter.d/app.conf",
        "[Definition]\nfailregex = ^fail <HOST>$\njournalmatch = _SYSTEMD_UNIT=app.service + _COMM=app\n",
    );
    write(
        dir,
        "action.d/iptables.conf",
        "[Init]\nblocktype = REJECT --reject-with icmp-port-unreachable\n",
    );
    write(
        dir,
        "action.d/iptables-multiport.conf",
        "[INCLUDES]\nbefore = iptables.conf\n",
    );
    write(
        dir,
        "jail.conf",
        &format!(
            "[DEFAULT]\nenabled = false\nbantime = 10m\nfindtime = 10m\nmaxretry = 5\n\
             filter = app\nport = 0:65535\nprotocol = tcp\nbanaction = iptables-multiport\n\
             action_ = %(banaction)s[port=\"%(port)s\", protocol=\"%(protocol)s\"]\n\
             action_mw = %(action_)s\n            sendmail-whois[dest=root]\n\
             action = %(action_)s\nlogpath = /var/log/app.log\n{jail_conf}"
        ),
    );
}

fn run(dir: &Path) -> Import {
    import(&JailFiles::read(dir).unwrap())
}

fn jail<'a>(i: &'a Import, name: &str) -> &'a Jail {
    i.jails.iter().find(|j| j.name == name).unwrap()
}

#[test]
fn options_map_with_overrides_and_origins() {
    let d = tempfile::tempdir().unwrap();
    base(d.path(), "[web]\nport = http,https\n[ssh]\nport = ssh\n");
    write(
        d.path(),
        "jail.local",
        "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 192.0.2.0/24 trusted.example\n\
         [web]\nenabled = true\nmaxretry = 3\nbantime = 1h 30m\naction = %(action_mw)s\n",
    );
    let i = run(d.path());
    assert!(i.skipped.is_empty(), "{:?}", i.findings);
    let web = jail(&i, "web");
    assert!(web.enabled);
    assert_eq!(web.filter, "fail2ban:app");
    assert_eq!(web.logpath, ["/var/log/app.log"]);
    assert_eq!(web.maxretry, Some(3));
    assert_eq!(web.bantime, Some(Some(5400)));
    assert_eq!(web.findtime, Some(600));
    assert_eq!(web.ports, ["http", "https"]);
    assert_eq!(web.protocol.as_deref(), Some("tcp"));
    assert_eq!(web.action, "reject");
    assert_eq!(web.ignoreip, ["127.0.0.1/8", "::1", "192.0.2.0/24"]);
    assert_eq!(web.origins["maxretry"], "jail.local:5");
    assert_eq!(web.origins["bantime"], "jail.local:6");
    assert!(!jail(&i, "ssh").enabled);
    assert_eq!(jail(&i, "ssh").ports, ["ssh"]);
    let said: Vec<String> = i
        .findings
        .iter()
        .filter(|f| f.jail == "web")
        .map(|f| format!("{:?} {}", f.level, f.message))
        .collect();
    assert!(
        said.iter()
            .any(|s| s.starts_with("NotImported action sendmail-whois: mails")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s.contains("trusted.example")),
        "{said:?}"
    );
}

#[test]
fn systemd_backend_reads_the_journal_with_the_filters_journalmatch() {
    let d = tempfile::tempdir().unwrap();
    base(
        d.path(),
        "[app]\nenabled = true\nbackend = systemd\n\
         [other]\nfilter = app\nbackend = systemd\njournalmatch = _SYSTEMD_UNIT=other.service\n",
    );
    let i = run(d.path());
    let app = jail(&i, "app");
    assert_eq!(app.filter, "fail2ban:app[logtype=journal]");
    assert!(app.logpath.is_empty());
    assert_eq!(
        app.journal.as_deref().unwrap(),
        ["_SYSTEMD_UNIT=app.service", "+", "_COMM=app"]
    );
    assert_eq!(
        jail(&i, "other").journal.as_deref().unwrap(),
        ["_SYSTEMD_UNIT=other.service"]
    );
    assert!(app.ports.is_empty(), "0:65535 is every port");
}

#[test]
fn bantime_increment_becomes_factor_or_durations() {
    let d = tempfile::tempdir().unwrap();
    base(
        d.path(),
        "[DEFAULT]\nbantime.increment = true\nbantime.maxtime = 1d\n\
         [plain]\n[mult]\nbantime.multipliers = 1 2 4 8\nbantime.overalljails = true\n\
         [fact]\nbantime.factor = 3\nbantime.maxtime = 5h\n[off]\nbantime.increment = false\n\
         [perm]\nbantime = -1\n",
    );
    write(d.path(), "fail2ban.conf", "[Definition]\ndbpurgeage = 3d\n");
    let i = run(d.path());
    let plain = jail(&i, "plain").increment.clone().unwrap();
    assert_eq!(plain.factor, Some(2.0));
    assert_eq!(plain.maxtime, Some(86400));
    assert_eq!(plain.window, 3 * 86400);
    assert!(!plain.across_jails);
    let mult = jail(&i, "mult").increment.clone().unwrap();
    // 1st ban: bantime; n-th: bantime × multipliers[n−1], the last repeating.
    assert_eq!(
        mult.durations,
        [Some(600), Some(1200), Some(2400), Some(4800)]
    );
    assert!(mult.across_jails);
    let fact = jail(&i, "fact").increment.clone().unwrap();
    // fail2ban: bantime × 3 × 2^(n−1), capped at 5h.
    assert_eq!(
        fact.durations,
        [Some(600), Some(3600), Some(7200), Some(14400), Some(18000)]
    );
    assert!(jail(&i, "off").increment.is_none());
    assert!(jail(&i, "perm").increment.is_none());
    assert_eq!(jail(&i, "perm").bantime, Some(None));
}

#[test]
fn a_jail_that_cannot_be_imported_is_skipped_and_said() {
    let d = tempfile::tempdir().unwrap();
    base(
        d.path(),
        "[nofilter]\nenabled = true\nfilter = missing\n[sleepy]\nfilter = missing\n\
         [badport]\nport = nosuchservice\n[bad.name]\n\
         [known]\nusedns = %(nowhere)s\n",
    );
    let i = run(d.path());
    assert_eq!(
        i.skipped,
        [
            ("badport".to_string(), false),
            ("nofilter".to_string(), true),
            ("sleepy".to_string(), false)
        ]
    );
    assert!(i.lost_enabled_jail());
    let f = i.findings.iter().find(|f| f.jail == "nofilter").unwrap();
    assert_eq!(f.level, Level::Skipped);
    assert!(f.message.contains("missing.conf"), "{}", f.message);
    assert!(i.jails.iter().any(|j| j.name == "bad_name"));
    // An option only reported on that cannot be read is said, not fatal.
    assert!(i.jails.iter().any(|j| j.name == "known"));
    assert!(i
        .findings
        .iter()
        .any(|f| f.jail == "known" && f.message.contains("%(nowhere)s is not defined")));
}

#[test]
fn action_lists_split_outside_options_and_option_groups_merge() {
    assert_eq!(
        split_actions("a[x=\"1 2\", y=[3]]  b\n  c[p=1,\n q=2]\n"),
        ["a[x=\"1 2\", y=[3]]", "b", "c[p=1,  q=2]"]
    );
    let (name, opts) =
        split_ref("iptables[port=\"22\", protocol=tcp][name=x, protocol=udp]").unwrap();
    assert_eq!(name, "iptables");
    assert_eq!(opts["port"], "22");
    assert_eq!(opts["protocol"], "udp");
    assert_eq!(opts["name"], "x");
    assert!(split_ref("a[x=1").is_err());
    assert!(split_ref("a[x=1] junk").is_err());
}

#[test]
fn a_jails_own_patterns_replace_the_filters_and_known_stands_for_them() {
    let d = tempfile::tempdir().unwrap();
    base(
        d.path(),
        "[own]\nfailregex = ^mine <HOST>$\n\
         [both]\nfailregex = %(known/failregex)s\n  ^mine <HOST>$\nignoreregex =\n\
         [inline]\nfailregex = ^x %(known/failregex)s\n\
         [empty]\nenabled = true\nfailregex =\n",
    );
    let i = run(d.path());
    assert_eq!(
        jail(&i, "own").failregex.as_deref(),
        Some(&["^mine <HOST>$".to_string()][..])
    );
    assert_eq!(jail(&i, "own").ignoreregex, None);
    assert_eq!(
        jail(&i, "both").failregex.as_deref(),
        Some(
            &[
                "%(known/failregex)s".to_string(),
                "^mine <HOST>$".to_string()
            ][..]
        )
    );
    assert_eq!(jail(&i, "both").ignoreregex.as_deref(), Some(&[][..]));
    // The filter's patterns inside one of the jail's, and a jail left
    // without any failregex, are not imported, and said.
    let said = |j: &str, what: &str| {
        i.findings
            .iter()
            .any(|f| f.jail == j && f.level == Level::Skipped && f.message.contains(what))
    };
    assert!(said("inline", "inside a pattern"));
    assert!(said("empty", "failregex is empty"));
    assert!(i.lost_enabled_jail());
}

#[test]
fn maxmatches_is_carried_and_capped() {
    let d = tempfile::tempdir().unwrap();
    base(
        d.path(),
        "[web]\nmaxmatches = %(maxretry)s\n[ssh]\nmaxmatches = 500\n",
    );
    let i = run(d.path());
    assert_eq!(
        jail(&i, "web").maxmatches,
        Some(5),
        "fail2ban's default: maxretry"
    );
    assert_eq!(jail(&i, "ssh").maxmatches, Some(100));
    assert!(
        i.findings
            .iter()
            .any(|f| f.jail == "ssh" && f.message.contains("at most 100 lines")),
        "{:?}",
        i.findings
    );
}
