//! `banwarden check` as a person meets it: a config directory with several
//! mistakes in several files is reported in one run, every mistake with
//! file:line:col, the field and a message that says what was expected
//! (snapshots, insta), and exit status 1; a good directory passes.

use std::path::Path;

use assert_cmd::Command;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `check` on `dir`: (exit code, stdout + stderr with the directory as CONFIG).
fn check(dir: &Path) -> (i32, String) {
    let out = Command::cargo_bin("banwarden")
        .unwrap()
        .args(["check", "--config"])
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        text.replace(&dir.display().to_string(), "CONFIG"),
    )
}

const FILTER: &str = "failregex:\n  - '^Login failure <HOST>$'\n";

#[test]
fn every_mistake_of_every_file_in_one_run() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "banwarden.yaml",
        "log_level: verbose\nignoreip: [192.0.2.0/24, 10.0.0.300]\ndefaults:\n  bantime: 10 fortnights\n",
    );
    write(d.path(), "filters/demo.yaml", FILTER);
    write(
        d.path(),
        "filters/typo.yaml",
        "failregex:\n  - '^x <HOST>$'\nignorregex: []\n",
    );
    write(
        d.path(),
        "jails/demo.yaml",
        "\
demo:
  enabeld: true
  filter: demo
  logpath: demo.log
  maxretry: five
  findtime: 10 minutes ago
  ports: [ssh, 99999]
  protocol: tpc
  ignoreself: maybe
",
    );
    write(
        d.path(),
        "jails/other.yaml",
        "other:\n  filter: nosuch\n  logpath: x.log\n  ipv4_prefix: 40\n",
    );
    let (code, text) = check(d.path());
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!("check_several_mistakes", text);
}

#[test]
fn a_duration_error_names_the_accepted_forms() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "filters/demo.yaml", FILTER);
    write(
        d.path(),
        "jails/demo.yaml",
        "demo:\n  filter: demo\n  logpath: demo.log\n  findtime: permanent\n  bantime: soon\n",
    );
    let (code, text) = check(d.path());
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!("check_durations", text);
}

#[test]
fn the_shipped_config_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, text) = check(root);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("OK"), "{text}");
}
