//! Running the banwarden binary from a test, always in the same environment:
//! UTC, no `BANWARDEN_CONFIG`, no colour variables from the caller's shell.
#![allow(dead_code)]

use assert_cmd::Command;

/// The binary under test.
pub fn bin() -> Command {
    let mut c = Command::cargo_bin("banwarden").expect("binary");
    c.env("TZ", "UTC")
        .env_remove("BANWARDEN_CONFIG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    c
}

/// Runs `cmd` (a `... --json` command), requires it to succeed (printing
/// its stderr when not), and returns its JSON document and its stderr.
pub fn json_doc(cmd: &mut Command) -> (serde_json::Value, String) {
    let out = cmd.output().expect("run banwarden");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let doc = serde_json::from_slice(&out.stdout).expect("a JSON document on stdout");
    (doc, stderr)
}
