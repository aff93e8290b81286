//! `banwarden import-fail2ban`: a realistic fail2ban configuration of our
//! own (jail.conf, overrides in jail.d/*.conf, jail.local, jail.d/*.local,
//! `bantime.increment`, a systemd-backend sshd jail, a mail action) is
//! imported; the jail YAML and the report are pinned (snapshots); the
//! result passes `check` as written; and the daemon, run on it in a
//! network namespace, bans with real packets through two imported jails:
//! nginx-http-auth on a log file and sshd on a journal file, matched by
//! the second alternative of sshd's `journalmatch` (`_COMM=sshd`: Debian's
//! unit is ssh.service, not sshd.service).
//!
//! The jail files are written here (they are ours, not fail2ban's); the
//! filters and actions are fail2ban's installed `filter.d` and `action.d`
//! (symlinked), read at test time. Without fail2ban installed the test
//! skips, unless BANWARDEN_REQUIRE_PRIVILEGED_TESTS or
//! BANWARDEN_REQUIRE_FAIL2BAN is set.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::{in_set, ConfigDir, Daemon};
use common::journal::journalctl_reads;
use common::netns::{connects, eventually, listen, skip_unless_privileged, NetPair};

const FAIL2BAN: &str = "/etc/fail2ban";
const PORT: u16 = 8080;

fn fail2ban_installed() -> bool {
    common::fail2ban::installed(
        Path::new(FAIL2BAN).join("filter.d/sshd.conf").is_file(),
        "fail2ban",
    )
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// An operator's fail2ban directory: the distribution's jail.conf (short),
/// a distribution drop-in, the operator's jail.local and a local drop-in.
fn fail2ban_dir(dir: &Path, nginx_log: &Path) {
    for sub in ["filter.d", "action.d"] {
        std::os::unix::fs::symlink(Path::new(FAIL2BAN).join(sub), dir.join(sub)).unwrap();
    }
    write(
        dir,
        "jail.conf",
        "[INCLUDES]\nbefore = paths.conf\n\n\
         [DEFAULT]\n\
         ignorecommand =\n\
         bantime  = 10m\n\
         findtime  = 10m\n\
         maxretry = 5\n\
         backend = auto\n\
         usedns = warn\n\
         enabled = false\n\
         mode = normal\n\
         filter = %(__name__)s[mode=%(mode)s]\n\
         destemail = root@localhost\n\
         sender = root@<fq-hostname>\n\
         mta = sendmail\n\
         protocol = tcp\n\
         chain = <known/chain>\n\
         port = 0:65535\n\
         banaction = iptables-multiport\n\
         banaction_allports = iptables-allports\n\
         action_ = %(banaction)s[port=\"%(port)s\", protocol=\"%(protocol)s\", chain=\"%(chain)s\"]\n\
         action_mwl = %(action_)s\n\
         \x20            %(mta)s-whois-lines[sender=\"%(sender)s\", dest=\"%(destemail)s\", logpath=\"%(logpath)s\", chain=\"%(chain)s\"]\n\
         action = %(action_)s\n\n\
         [sshd]\nport    = ssh\nlogpath = %(sshd_log)s\nbackend = %(sshd_backend)s\n\n\
         [nginx-http-auth]\nport    = http,https\nlogpath = %(nginx_error_log)s\n\n\
         [postfix]\nmode    = more\nport    = smtp,465,submission\nlogpath = %(postfix_log)s\n\n\
         [apache-auth]\nport     = http,https\nlogpath  = %(apache_error_log)s\n\n\
         [recidive]\nlogpath  = /var/log/fail2ban.log\nbanaction = %(banaction_allports)s\n\
         bantime  = 1w\nfindtime = 1d\n",
    );
    write(
        dir,
        "paths.conf",
        "[DEFAULT]\nsshd_log = /var/log/auth.log\nsshd_backend = auto\n\
         nginx_error_log = /var/log/nginx/error.log\npostfix_log = /var/log/mail.log\n\
         apache_error_log = /var/log/apache2/*error.log\n",
    );
    write(
        dir,
        "jail.d/defaults-debian.conf",
        "[sshd]\nenabled = true\n",
    );
    write(
        dir,
        "jail.local",
        &format!(
            "[DEFAULT]\n\
             ignoreip = 127.0.0.1/8 ::1 192.0.2.0/24 backup.example.org\n\
             bantime.increment = true\n\
             bantime.maxtime = 1w\n\
             bantime.overalljails = true\n\
             banaction = nftables-multiport\n\
             banaction_allports = nftables-allports\n\n\
             [sshd]\n\
             backend = systemd\n\
             maxretry = 3\n\
             bantime = 1h\n\n\
             [nginx-http-auth]\n\
             enabled = true\n\
             logpath = {}\n\
             maxretry = 3\n\
             findtime = 1h\n\
             bantime.multipliers = 1 5 30 60 300 720 1440 2880\n\n\
             [postfix]\n\
             enabled = true\n\
             action = %(action_mwl)s\n",
            nginx_log.display()
        ),
    );
    write(
        dir,
        "jail.d/web.local",
        &format!("[nginx-http-auth]\nport = {PORT}\nbantime = 5m\n"),
    );
}

fn banwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banwarden"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("BANWARDEN_CONFIG")
        .output()
        .expect("run banwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Imports into `out` (which has a banwarden.yaml naming the fail2ban dir)
/// and returns the jail file and the report, temp paths made stable.
fn import(f2b: &Path, out: &Path) -> (String, String) {
    let run = banwarden(&[
        "import-fail2ban",
        &f2b.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    let stdout = text(&run.stdout);
    assert!(
        run.status.success(),
        "import failed:\n{stdout}\n{}",
        text(&run.stderr)
    );
    assert!(
        stdout.contains("check: OK: 5 jails (3 enabled)"),
        "{stdout}"
    );
    let stable = |s: String| {
        s.replace(&f2b.display().to_string(), "[FAIL2BAN]")
            .replace(&out.display().to_string(), "[OUT]")
    };
    (
        stable(std::fs::read_to_string(out.join("jails/fail2ban.yaml")).unwrap()),
        stable(std::fs::read_to_string(out.join("fail2ban-import.txt")).unwrap()),
    )
}

#[test]
fn an_imported_configuration_is_pinned_and_passes_check() {
    if !fail2ban_installed() {
        return;
    }
    let f2b = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fail2ban_dir(f2b.path(), Path::new("/var/log/nginx/error.log"));
    let (yaml, report) = import(f2b.path(), out.path());
    // Enabled exactly where fail2ban enables: sshd (jail.d), nginx-http-auth
    // and postfix (jail.local); the others not.
    insta::assert_snapshot!("import_jails", yaml);
    insta::assert_snapshot!("import_report", report);
    // The written banwarden.yaml names the fail2ban directory; check passes.
    let check = banwarden(&["check", "--config", &out.path().display().to_string()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("5 jails (3 enabled: nginx-http-auth, postfix, sshd)"),
        "{}",
        text(&check.stdout)
    );
    // A second import does not overwrite the first without --force.
    let again = banwarden(&[
        "import-fail2ban",
        &f2b.path().display().to_string(),
        "--out",
        &out.path().display().to_string(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("use --force"));
    // A jail defined in another jail file too (a shipped jails/sshd.yaml,
    // read after jails/fail2ban.yaml) would override the imported keys.
    std::fs::write(
        out.path().join("jails/sshd.yaml"),
        "sshd:\n  filter: sshd\n  logpath: /var/log/auth.log\n",
    )
    .unwrap();
    let clash = banwarden(&[
        "import-fail2ban",
        &f2b.path().display().to_string(),
        "--out",
        &out.path().display().to_string(),
        "--force",
    ]);
    assert_eq!(clash.status.code(), Some(1));
    assert!(
        text(&clash.stderr).contains("jail sshd is also defined in"),
        "{}",
        text(&clash.stderr)
    );
    // Without --out the YAML goes to stdout, the report to stderr.
    let print = banwarden(&["import-fail2ban", &f2b.path().display().to_string()]);
    assert!(print.status.success());
    assert!(text(&print.stdout).contains("nginx-http-auth:\n  enabled: true"));
    assert!(text(&print.stderr).contains("sendmail-whois-lines"));
}

#[test]
fn a_directory_without_jail_conf_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let run = banwarden(&["import-fail2ban", &d.path().display().to_string()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        text(&run.stderr).contains("jail.conf"),
        "{}",
        text(&run.stderr)
    );
}

/// Journal export entries of sshd under Debian's unit name.
fn sshd_entries(ts: i64, first_mono: u64, msgs: &[String]) -> Vec<u8> {
    let mut export = Vec::new();
    for (i, msg) in msgs.iter().enumerate() {
        write!(
            export,
            "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n\
             _BOOT_ID=5b9a4c2f7e1d4a8b9c0d1e2f3a4b5c6d\n_SYSTEMD_UNIT=ssh.service\n\
             _COMM=sshd\nSYSLOG_IDENTIFIER=sshd\n_PID=4242\nMESSAGE={msg}\n\n",
            ts * 1_000_000,
            first_mono + i as u64 * 1000
        )
        .unwrap();
    }
    export
}

#[test]
fn the_daemon_bans_through_imported_jails_with_real_packets() {
    if skip_unless_privileged() || !fail2ban_installed() {
        return;
    }
    let pair = NetPair::new();
    let table = "bwimport";
    let cfg = ConfigDir::new(table);
    let f2b = tempfile::tempdir().unwrap();
    let nginx_log = cfg.path().join("nginx-error.log");
    std::fs::write(&nginx_log, "").unwrap();
    fail2ban_dir(f2b.path(), &nginx_log);
    cfg.append(
        "banwarden.yaml",
        &format!("fail2ban_dir: {}\n", f2b.path().display()),
    );
    import(f2b.path(), cfg.path());
    // The system journal is not there in a test: sshd reads a journal file
    // instead, with the imported match unchanged (an operator's override).
    let journal = cfg.path().join("ssh.journal");
    let now = jiff::Timestamp::now().as_second();
    if !common::journal::write_export(
        &journal,
        &sshd_entries(
            now - 5,
            1_000_000,
            &["Server listening on 0.0.0.0 port 22.".into()],
        ),
    ) {
        return;
    }
    let yaml = std::fs::read_to_string(cfg.path().join("jails/fail2ban.yaml")).unwrap();
    assert!(
        yaml.contains("journal: {match: ['_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd']}"),
        "{yaml}"
    );
    cfg.write(
        "jails/fail2ban.local.yaml",
        "sshd:\n  journal:\n    match: ['_SYSTEMD_UNIT=sshd.service', '+', '_COMM=sshd']\n    files: [ssh.journal]\n\
         postfix:\n  enabled: false\n",
    );
    let daemon = Daemon::start(&pair.srv, &cfg, table);
    // The journal reader starts at its start time: entries come after it.
    assert!(
        eventually(Duration::from_secs(10), || journalctl_reads(&journal)),
        "no journalctl reads {}:\n{}",
        journal.display(),
        daemon.stderr()
    );
    let _listener = listen(&pair.srv, &pair.srv_v4, PORT);
    let t = Duration::from_secs(1);
    assert!(connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t));

    // nginx-http-auth: three failures in nginx's error log format.
    // Local time, as nginx writes it and as the daemon reads it.
    let date = Command::new("date")
        .arg("+%Y/%m/%d %H:%M:%S")
        .output()
        .unwrap();
    let stamp = text(&date.stdout).trim().to_string();
    let line = |addr: &str| {
        format!(
            "{stamp} [error] 2865#0: *66647 user \"admin\" was not found in \"/etc/nginx/.htpasswd\", \
             client: {addr}, server: www.example.org, request: \"GET / HTTP/1.1\", host: \"www.example.org\"\n"
        )
    };
    cfg.append("nginx-error.log", &line(&pair.atk_v4).repeat(3));
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "nginx-http-auth_v4",
            &pair.atk_v4
        )),
        "nginx-http-auth did not ban {}:\n{}",
        pair.atk_v4,
        daemon.stderr()
    );
    assert!(
        !connects(&pair.atk, &pair.atk_v4, &pair.srv_v4, PORT, t),
        "the banned address still connects to the jail's port"
    );

    // sshd: three failures in the journal, matched through `_COMM=sshd`.
    let msgs: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "Failed password for root from {} port {} ssh2",
                pair.atk2_v4,
                40000 + i
            )
        })
        .collect();
    let now = jiff::Timestamp::now().as_second();
    assert!(common::journal::write_export(
        &journal,
        &sshd_entries(now, 2_000_000, &msgs)
    ));
    assert!(
        eventually(Duration::from_secs(10), || in_set(
            &pair.srv,
            table,
            "sshd_v4",
            &pair.atk2_v4
        )),
        "sshd did not ban {} from the journal:\n{}",
        pair.atk2_v4,
        daemon.stderr()
    );
    // sshd bans port 22 only: the second attacker still reaches 8080.
    assert!(connects(&pair.atk, &pair.atk2_v4, &pair.srv_v4, PORT, t));
}
