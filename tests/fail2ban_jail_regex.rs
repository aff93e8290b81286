//! A fail2ban jail's own `failregex`/`ignoreregex` carried by
//! `import-fail2ban`, driven through the real binary: as in fail2ban (see
//! `fail2ban-client -d`), a jail's value replaces its filter's, and
//! `%(known/failregex)s` in it stands for the filter's own patterns; the
//! imported jails then match in `dry-run --jail` exactly so.
//!
//! The fail2ban files are written here, not taken from fail2ban.

mod common;

use std::path::Path;

use common::cli::bin;

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// fail2ban's files: a filter with one failregex and one ignoreregex; in
/// `jail.local`, `replaced` sets its own patterns, `extended` adds to the
/// filter's and clears its ignoreregex, `plain` keeps the filter's.
fn fail2ban_dir(dir: &Path, log: &Path) {
    write(
        dir,
        "filter.d/app.conf",
        "[Definition]\nfailregex = ^\\s*filter says <HOST> failed\n\
         ignoreregex = from-monitor\n",
    );
    write(
        dir,
        "jail.conf",
        &format!(
            "[DEFAULT]\nenabled = false\nfilter = app\nmaxretry = 2\nfindtime = 1h\n\
             bantime = 10m\nlogpath = {}\nbanaction = nftables\n\
             action = %(banaction)s\n",
            log.display()
        ),
    );
    write(
        dir,
        "jail.local",
        "[replaced]\nenabled = true\n\
         failregex = ^\\s*jail says <HOST> failed$\n\
         \x20           ^\\s*jail also says <HOST>$\n\
         ignoreregex = ^\\s*jail says 192\\.0\\.2\\.9\n\
         \n[extended]\nenabled = true\n\
         failregex = %(known/failregex)s\n\
         \x20           ^\\s*jail says <HOST> failed$\n\
         ignoreregex =\n\
         \n[plain]\nenabled = true\n",
    );
}

const LOG: &str = "\
2024-05-30T10:00:00Z filter says 198.51.100.1 failed
2024-05-30T10:00:01Z filter says 198.51.100.1 failed from-monitor
2024-05-30T10:00:02Z jail says 198.51.100.2 failed
2024-05-30T10:00:03Z jail also says 198.51.100.2
2024-05-30T10:00:04Z jail says 192.0.2.9 failed
";

/// `dry-run --jail NAME` on the imported config: lines matched, ignored.
fn matched(cfg: &Path, jail: &str) -> (u64, u64) {
    let out = bin()
        .args(["dry-run", "--now", "2024-05-30T10:01:00Z", "--json"])
        .args(["--jail", jail, "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |k: &str| doc["lines"][k].as_u64().expect("count");
    (n("matched"), n("ignored"))
}

#[test]
fn a_jails_own_patterns_replace_its_filters_and_known_adds_them_back() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    std::fs::write(&log, LOG).unwrap();
    let f2b = d.path().join("fail2ban");
    fail2ban_dir(&f2b, &log);
    let out = d.path().join("out");
    let run = bin()
        .arg("import-fail2ban")
        .arg(&f2b)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let yaml = std::fs::read_to_string(out.join("jails/fail2ban.yaml")).unwrap();
    assert!(
        yaml.contains(
            "  failregex: ['^\\s*jail says <HOST> failed$', '^\\s*jail also says <HOST>$']  # jail.local:3"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains("  failregex: ['%(known/failregex)s', '^\\s*jail says <HOST> failed$']"),
        "{yaml}"
    );
    assert!(yaml.contains("  ignoreregex: []"), "{yaml}");
    let report = std::fs::read_to_string(out.join("fail2ban-import.txt")).unwrap();
    assert!(
        !report.contains("failregex"),
        "no longer reported: {report}"
    );

    // replaced: only the jail's patterns (the filter's line is missed),
    // and the jail's ignoreregex instead of the filter's.
    assert_eq!(matched(&out, "replaced"), (2, 1));
    // extended: the filter's and the jail's, nothing ignored any more.
    assert_eq!(matched(&out, "extended"), (4, 0));
    // plain: the filter's own, with its ignoreregex.
    assert_eq!(matched(&out, "plain"), (1, 1));
}

#[test]
fn a_jails_patterns_that_do_not_compile_are_located_by_check() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path();
    write(cfg, "banwarden.yaml", "");
    write(cfg, "filters/app.yaml", "failregex:\n  - '^fail <HOST>$'\n");
    write(
        cfg,
        "jails/app.yaml",
        "app:\n  filter: app\n  logpath: /var/log/app.log\n  failregex:\n    - '%(known/failregex)s'\n    - '^bad ( <HOST>$'\n",
    );
    let out = bin().args(["check", "--config"]).arg(cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // The entry that does not compile, in the jail file.
    assert!(stderr.contains("app.yaml:6:"), "{stderr}");
    assert!(stderr.contains("app.failregex"), "{stderr}");
}

/// As `check` says of a filter's own patterns, it says which of a jail's
/// own run on the backtracking fallback, at the jail's entry.
#[test]
fn check_says_which_of_a_jails_patterns_run_on_the_fallback() {
    let d = tempfile::tempdir().unwrap();
    let f2b = d.path().join("fail2ban");
    write(
        &f2b,
        "filter.d/app.conf",
        "[Definition]\nfailregex = ^fail <HOST>$\n",
    );
    let cfg = d.path().join("cfg");
    write(
        &cfg,
        "banwarden.yaml",
        &format!("fail2ban_dir: {}\n", f2b.display()),
    );
    write(
        &cfg,
        "jails/app.yaml",
        "app:\n  filter: 'fail2ban:app'\n  logpath: /var/log/app.log\n  failregex:\n    - '%(known/failregex)s'\n    - '^bad (?!ok)\\w+ <HOST>$'\n",
    );
    let out = bin()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "app.yaml:6:7: app.failregex[1] runs on the backtracking fallback (look-around)"
        ),
        "{stdout}"
    );
}
