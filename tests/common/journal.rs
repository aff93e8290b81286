//! Writing journal files without journald: entries in the journal export
//! format piped to `systemd-journal-remote --output=FILE -` (which appends).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub const REMOTE: &str = "/usr/lib/systemd/systemd-journal-remote";

/// Whether journal files can be written here: false (after saying why)
/// when `systemd-journal-remote` is missing; a failure instead when
/// privileged tests are required.
pub fn can_write_journal() -> bool {
    if Path::new(REMOTE).exists() {
        return true;
    }
    let reason = format!(
        "{REMOTE} is missing (apt-get install systemd-journal-remote): \
         cannot write journal files without journald"
    );
    if std::env::var("BANWARDEN_REQUIRE_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        panic!("{reason}");
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// Appends `export` (journal export format) to the journal file `path`.
/// False (after saying why) when `systemd-journal-remote` is missing; a
/// failure instead when privileged tests are required.
pub fn write_export(path: &Path, export: &[u8]) -> bool {
    if !can_write_journal() {
        return false;
    }
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", path.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-journal-remote");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(export)
        .expect("write export");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Whether a journalctl process is reading `journal` (the daemon's journal
/// source has started on that file).
pub fn journalctl_reads(journal: &Path) -> bool {
    let needle = journal.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
        .any(|cmd| cmd.contains("journalctl") && cmd.contains(&needle))
}
