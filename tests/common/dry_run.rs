//! Helpers of the `dry-run` tests: the command with a fixed clock, its JSON,
//! and the shipped filters' sample logs.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use super::cli::bin;

/// 2024-06-01T00:00:00Z: the samples are dated late May 2024.
pub const NOW: &str = "2024-06-01T00:00:00Z";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dry-run` with a fixed clock and no colour.
pub fn dry_run() -> Command {
    let mut c = bin();
    c.args(["dry-run", "--now", NOW, "--color", "never"]);
    c
}

pub fn json(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(out)))
}

/// Names of the samples that have expectations.
pub fn samples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/samples"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".expect.json"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The sample log without its comment and blank lines, in a temp file.
pub fn sample_log(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join(format!("tests/samples/{name}.log")))
        .expect("sample log");
    let mut out = String::new();
    for l in text.lines() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    let path = dir.join(format!("{name}.log"));
    std::fs::write(&path, out).expect("write log");
    path
}

pub fn addr(s: &str) -> IpAddr {
    s.parse::<IpAddr>()
        .unwrap_or_else(|_| panic!("`{s}` is not an address"))
        .to_canonical()
}

pub fn count(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// Runs `c`, which must exit 0 (its stderr in the failure message).
pub fn run_ok(c: &mut Command) -> std::process::Output {
    let out = c.output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a config directory `dir` holding one filter and one jail, both
/// named `name`, from their YAML texts.
pub fn one_jail_config(dir: &Path, name: &str, filter_yaml: &str, jail_yaml: &str) {
    std::fs::create_dir_all(dir.join("filters")).expect("mkdir");
    std::fs::create_dir_all(dir.join("jails")).expect("mkdir");
    std::fs::write(dir.join(format!("filters/{name}.yaml")), filter_yaml).expect("filter");
    std::fs::write(dir.join(format!("jails/{name}.yaml")), jail_yaml).expect("jail");
}
