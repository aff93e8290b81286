//! What is generated from the code is what users read: the README's
//! configuration reference tables come from the key registry, and `banwarden
//! generate` writes man pages and completions from the real command line.
//!
//! `BANWARDEN_BLESS=1 cargo test --test docs` rewrites the README's tables
//! (configuration keys and commands).

use std::path::Path;

use assert_cmd::Command;

fn banwarden() -> Command {
    Command::cargo_bin("banwarden").unwrap()
}

#[test]
fn readme_reference_tables_match_the_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let fresh = banwarden::config::docs::update_readme(&text);
    for scope in banwarden::config::keys::Scope::ALL {
        let marker = format!("<!-- keys:{}:begin -->", scope.name());
        assert!(text.contains(&marker), "README lacks {marker}");
    }
    if fresh != text {
        if std::env::var("BANWARDEN_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, fresh).unwrap();
            return;
        }
        panic!(
            "README.md's configuration tables differ from src/config/keys.rs: \
             run `BANWARDEN_BLESS=1 cargo test --test docs` and commit README.md"
        );
    }
}

#[test]
fn man_pages_are_written_for_every_command_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    banwarden()
        .args(["generate", "man", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    for page in [
        "banwarden.8",
        "banwarden-run.8",
        "banwarden-check.8",
        "banwarden-dry-run.8",
        "banwarden-unban.8",
        "banwarden.yaml.5",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.starts_with(".TH"),
            "{page}: {text:.80}"
        );
    }
    let main = std::fs::read_to_string(dir.path().join("banwarden.8")).unwrap();
    assert!(main.contains("dry\\-run"), "subcommands listed");
    let dry = std::fs::read_to_string(dir.path().join("banwarden-dry-run.8")).unwrap();
    assert!(dry.contains("\\-\\-config"));
    assert!(!dry.contains("chunk\\-kib"), "benchmark knobs stay hidden");
    let yaml = std::fs::read_to_string(dir.path().join("banwarden.yaml.5")).unwrap();
    assert!(yaml.contains(".B maxretry"));

    let out = banwarden().args(["generate", "man"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH banwarden 8"));
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, needle) in [
        ("bash", "_banwarden()"),
        ("zsh", "#compdef banwarden"),
        ("fish", "complete -c banwarden"),
    ] {
        let out = banwarden()
            .args(["generate", "completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(needle), "{shell}: {text:.200}");
        assert!(
            text.contains("dry-run") && text.contains("config"),
            "{shell}"
        );
    }
}

/// The README's table of commands is the one rendered from the real `Cli`
/// (every visible command, its arguments and its help line); hidden
/// benchmark knobs never appear in it.
#[test]
fn readme_commands_table_matches_the_cli() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("<!-- commands:begin -->") && text.contains("<!-- commands:end -->"),
        "README lacks the commands markers"
    );
    let fresh = banwarden::cli::readme::update_readme(&text);
    if fresh != text {
        if std::env::var("BANWARDEN_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, fresh).unwrap();
            return;
        }
        panic!(
            "README.md's command table differs from the CLI: \
             run `BANWARDEN_BLESS=1 cargo test --test docs` and commit README.md"
        );
    }
    for knob in ["--chunk-kib", "--no-date-cache", "BANWARDEN_DRY_RUN_TIMING"] {
        let table = banwarden::cli::readme::commands_table();
        assert!(!table.contains(knob), "{knob} in the README's commands");
    }
}
