//! Building the Debian package for the package tests: `scripts/deb.sh`
//! (cargo-deb) on the test build's own binary (the dev profile, allowed with
//! BANWARDEN_DEB_ALLOW_DEBUG=1, packed with `--fast`), copied out of
//! cargo-deb's output directory (cargo-deb deletes the package it built
//! before when it builds another version).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub const REQUIRE_ENV: &str = "BANWARDEN_REQUIRE_PRIVILEGED_TESTS";

/// Prints why a test cannot run and returns true; a failure instead under
/// BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1.
pub fn skip(reason: &str) -> bool {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("cannot run and {REQUIRE_ENV}=1: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    true
}

/// The version scripts/deb.sh gives a package of a debug build.
pub fn default_version() -> String {
    format!("{}-1~debug", env!("CARGO_PKG_VERSION"))
}

/// Builds the package at `version` (None: deb.sh's own) and returns its
/// path, a copy under the target's temp directory; `Err` says why it
/// cannot be built here (cargo-deb missing). Builds are serialized: they
/// share `debian/generated/` and cargo-deb's output directory.
pub fn build(version: Option<&str>) -> Result<PathBuf, String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_deb {
        return Err("cargo-deb is missing (cargo install cargo-deb)".into());
    }
    let mut cmd = Command::new(root.join("scripts/deb.sh"));
    cmd.current_dir(root)
        .env("BANWARDEN_DEB_PROFILE", "dev")
        .env("BANWARDEN_DEB_ALLOW_DEBUG", "1")
        .arg("--fast");
    if let Some(v) = version {
        cmd.args(["--deb-version", v]);
    }
    let out = cmd.output().map_err(|e| format!("scripts/deb.sh: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/deb.sh failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("NOT FOR PRODUCTION"),
        "a debug package is built only with a loud warning:\n{stderr}"
    );
    let deb = stdout
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| panic!("no .deb path in the output: {stdout}"));
    assert!(deb.is_file(), "{}", deb.display());
    assert!(
        deb.parent().is_some_and(|p| p.ends_with("debian")),
        "{}",
        deb.display()
    );
    let want = version.map(str::to_string).unwrap_or_else(default_version);
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    assert!(
        name.starts_with(&format!("banwarden_{want}_")),
        "{name} is not version {want}"
    );
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("banwarden-debs");
    std::fs::create_dir_all(&keep).map_err(|e| format!("{}: {e}", keep.display()))?;
    let copy = keep.join(deb.file_name().unwrap_or_default());
    std::fs::copy(&deb, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
    Ok(copy)
}

/// Runs `cmd`, which must succeed; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The output of a script run in a private mount namespace over an
/// overlay of `/`, stdout and stderr together, once it printed `ALL-OK`;
/// None (after [`skip`]) where this machine does not allow the overlay.
pub fn overlay_script_output(out: std::process::Output) -> Option<String> {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && text.contains("mount:") && text.contains("permission denied") {
        skip(&format!("cannot mount an overlay here: {text}"));
        return None;
    }
    assert!(out.status.success() && text.contains("ALL-OK"), "{text}");
    Some(text)
}

/// Whether the host's own dpkg database has banwarden (tests must not
/// change it).
pub fn host_has_package() -> bool {
    Command::new("dpkg")
        .args(["-s", "banwarden"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
