use std::fs;

use super::*;

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    d
}

const FILTER: &str = "failregex:\n  - '^Login failure <HOST>$'\n";

#[test]
fn loads_and_merges_local_drop_ins() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        (
            "jails/demo.yaml",
            "demo:\n  filter: demo\n  logpath: demo.log\n  bantime: 1h\n  maxretry: 3\n",
        ),
        (
            "jails/demo.local.yaml",
            "demo:\n  enabled: true\n  maxretry: 2\n",
        ),
    ]);
    let c = load(d.path()).unwrap();
    let j = c.jail("demo").unwrap();
    assert!(j.enabled);
    assert_eq!(j.settings.maxretry, 2);
    assert_eq!(j.settings.bantime, Some(3600));
    assert_eq!(j.settings.findtime, 600);
    assert_eq!(j.logpath, vec![d.path().join("demo.log")]);
    assert_eq!(j.rules.protocol, Protocol::All);
    assert_eq!(c.global.table, "banwarden");
}

#[test]
fn defaults_from_global_file() {
    let d = dir(&[
        (
            "banwarden.yaml",
            "ignoreip: [192.0.2.0/24]\ndefaults:\n  bantime: permanent\n  findtime: 1h\n",
        ),
        ("filters/demo.yaml", FILTER),
        (
            "jails/a.yaml",
            "demo:\n  filter: demo\n  ports: [ssh, 8000-8010]\n",
        ),
    ]);
    let c = load(d.path()).unwrap();
    let j = c.jail("demo").unwrap();
    assert_eq!((j.settings.bantime, j.settings.findtime), (None, 3600));
    assert_eq!(j.rules.protocol, Protocol::Tcp);
    assert_eq!(j.rules.ports.len(), 2);
    assert!(j
        .settings
        .ignore
        .check("192.0.2.7".parse().unwrap())
        .is_some());
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", "demo:\n  filter: demo\n  bantim: 1h\n"),
    ]);
    let e = load(d.path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let s = e.to_string();
    assert!(
        s.starts_with(&format!(
            "{}:3:3: demo.bantim: unknown key `bantim`; did you mean `bantime`?",
            d.path().join("jails/a.yaml").display()
        )),
        "{s}"
    );
}

#[test]
fn bad_values_name_their_field() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", "demo:\n  filter: demo\n  bantime: 10x\n  ignoreip: [10.0.0.300]\n  ports: [gopher]\n  protocol: sctp\n"),
    ]);
    let e = load(d.path()).unwrap_err().to_string();
    for want in [
        ":3:12: demo.bantime: expected a duration (90s, 10m, 1h, 1d, 1w, 1h30m, seconds, or permanent), got \"10x\"",
        ":4:14: demo.ignoreip[0]",
        ":5:11: demo.ports[0]",
        ":6:13: demo.protocol: expected one of tcp, udp, all, got \"sctp\"",
    ] {
        assert!(e.contains(want), "missing {want} in\n{e}");
    }
}

#[test]
fn regex_error_points_into_the_filter_file() {
    let d = dir(&[(
        "filters/bad.yaml",
        "failregex:\n  - 'x'\n  - 'from <HOST> (port'\n",
    )]);
    let e = load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:3:5: failregex[1]: no <HOST>")
            || e.contains("bad.yaml:2:5: failregex[0]: no <HOST>"),
        "{e}"
    );
    let d = dir(&[("filters/bad.yaml", "failregex:\n  - 'from <HOST> (port'\n")]);
    let e = load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml:2:5: failregex[0]: unclosed group"),
        "{e}"
    );
    assert!(
        e.contains(&format!("\n    {:>w$}", "^", w = "from <HOST> ".len() + 1)),
        "{e}"
    );
}

#[test]
fn missing_filter_is_an_error() {
    let d = dir(&[("jails/a.yaml", "demo:\n  filter: nope\n")]);
    let e = load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains(":2:11: demo.filter: no filter named `nope`"),
        "{e}"
    );
}

#[test]
fn enabled_jail_needs_logpath() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", "demo:\n  filter: demo\n  enabled: true\n"),
    ]);
    assert!(load(d.path())
        .unwrap_err()
        .to_string()
        .contains("demo.logpath"));
}

#[test]
fn missing_dir_is_an_error() {
    assert!(load(Path::new("/nonexistent/banwarden"))
        .unwrap_err()
        .to_string()
        .contains("not found"));
}

#[test]
fn escalation_prefixes_journal_and_command() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        (
            "jails/a.yaml",
            "demo:\n  filter: demo\n  enabled: true\n  journal:\n    match: [_SYSTEMD_UNIT=ssh.service]\n  ipv6_prefix: 56\n  bantime_increment:\n    durations: [1m, 2m, 5m, 10m, permanent]\n    across_jails: true\nother:\n  filter: demo\n  enabled: true\n  command: [/usr/bin/docker, logs, -f, web]\n",
        ),
    ]);
    let c = load(d.path()).unwrap();
    let j = c.jail("demo").unwrap();
    assert_eq!(
        j.journal.as_deref(),
        Some(&["_SYSTEMD_UNIT=ssh.service".to_string()][..])
    );
    assert_eq!(j.settings.ipv6_prefix, 56);
    assert!(j.rules.ipv6_prefix == 56);
    let inc = j.settings.increment.as_ref().unwrap();
    assert!(inc.across_jails);
    assert_eq!(inc.bantime(Some(1), 5), None);
    assert_eq!(
        c.jail("other").unwrap().command.as_ref().unwrap()[0],
        "/usr/bin/docker"
    );
}

#[test]
fn journal_without_match_is_refused() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        (
            "jails/a.yaml",
            "demo:\n  filter: demo\n  journal:\n    match: []\n",
        ),
    ]);
    let e = load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains(":4:5: demo.journal.match: a journal source needs at least one match"),
        "{e}"
    );
}

#[test]
fn backend_auto_falls_back_to_the_journal_without_the_log_file() {
    let jail = |log: &str| {
        format!("demo:\n  filter: demo\n  logpath: {log}\n  journal:\n    match: [_SYSTEMD_UNIT=ssh.service]\n")
    };
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", &jail("/nonexistent/auth.log")),
    ]);
    let c = load(d.path()).unwrap();
    let j = c.jail("demo").unwrap();
    assert!(j.logpath.is_empty() && j.journal.is_some());
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", &jail("auth.log")),
        ("auth.log", ""),
    ]);
    let c = load(d.path()).unwrap();
    let j = c.jail("demo").unwrap();
    assert!(!j.logpath.is_empty() && j.journal.is_none());
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", &(jail("auth.log") + "  backend: journal\n")),
        ("auth.log", ""),
    ]);
    assert!(load(d.path())
        .unwrap()
        .jail("demo")
        .unwrap()
        .logpath
        .is_empty());
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        ("jails/a.yaml", &(jail("auth.log") + "  backend: systemd\n")),
    ]);
    assert!(load(d.path())
        .unwrap_err()
        .to_string()
        .contains("demo.backend: expected one of auto, files, journal, got \"systemd\""));
}

/// `load_global` reads the global file alone: a broken filter or jail
/// elsewhere does not hide its settings (nor is it compiled), while a
/// mistake in the global file itself is still an error.
#[test]
fn the_global_file_loads_without_the_rest_of_the_directory() {
    let d = dir(&[
        ("banwarden.yaml", "fail2ban_dir: /srv/f2b\n"),
        (
            "filters/broken.yaml",
            "failregex:\n  - '^(unclosed <HOST>'\n",
        ),
        (
            "jails/broken.yaml",
            "broken:\n  filter: broken\n  logpath: x.log\n",
        ),
    ]);
    assert!(load(d.path()).is_err());
    let g = load_global(d.path()).unwrap();
    assert_eq!(g.fail2ban_dir, PathBuf::from("/srv/f2b"));
    let bad = dir(&[("banwarden.yaml", "table: 'not a table name!'\n")]);
    assert!(load_global(bad.path()).is_err());
    assert!(load_global(&d.path().join("missing")).is_err());
}

/// One jail asked for: files that name it are merged (drop-ins in other
/// files too, even a quoted key with escapes); a file that never names it
/// is not read as YAML, so its mistakes do not stop the jail's dry-run.
#[test]
fn one_jail_reads_only_the_files_that_name_it() {
    let d = dir(&[
        ("filters/demo.yaml", FILTER),
        (
            "jails/demo.yaml",
            "demo:\n  filter: demo\n  logpath: demo.log\n  maxretry: 3\n",
        ),
        ("jails/other.yaml", "other:\n  maxretry: [\n"),
        ("jails/z.local.yaml", "\"d\\x65mo\":\n  bantime: 2h\n"),
        ("jails/zz.local.yaml", "{demo: {maxretry: 7}}\n"),
    ]);
    assert!(load(d.path()).is_err(), "the whole directory has an error");
    let c = load_jail(d.path(), "demo").unwrap();
    let j = c.jail("demo").unwrap();
    assert_eq!((j.settings.maxretry, j.settings.bantime), (7, Some(7200)));
    let errs = load_jail(d.path(), "other").unwrap_err();
    assert!(format!("{errs:?}").contains("other.yaml"), "{errs:?}");
}
