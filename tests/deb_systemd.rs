//! The Debian package under a real systemd: this machine's root, seen
//! through a throw-away overlay, booted with `systemd-nspawn --boot` (systemd
//! as PID 1 of the container, private network namespace), where
//! `tests/deb_systemd.sh`, from outside through `nsenter`:
//!
//! - `dpkg -i` the package: the unit is enabled and not started (no jail is
//!   enabled); `systemd-analyze verify` passes on the installed unit;
//! - enables the sshd jail in `jails/sshd.local.yaml`, edits the conffile
//!   `banwarden.yaml`, `systemctl start banwarden`: active, `banwarden
//!   status` lists the jail;
//! - five failed logins in `/var/log/auth.log` are banned, a manual ban is
//!   added; `journalctl -u banwarden JAIL=sshd ADDR=...` finds the ban
//!   record; a reload with a bad config logs an error that `journalctl -p
//!   warning` shows (and no info record), and the daemon keeps running;
//! - `dpkg -i` of a second version (the upgrade) restarts the daemon, keeps
//!   the edited conffile and the operator's local file, and both bans; with
//!   the daemon stopped and the kernel's table deleted, a start puts them
//!   back from the state file;
//! - `dpkg -r` stops the daemon and leaves the bans in the kernel and the
//!   state; `dpkg -P` removes the configuration.
//!
//! Needs root, cargo-deb, systemd-nspawn (systemd-container) and overlayfs;
//! skips with the reason otherwise, and fails under
//! BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1.

mod common;

use std::path::Path;
use std::process::Command;

use common::deb::skip;

#[test]
fn systemctl_starts_the_installed_package_and_an_upgrade_keeps_its_bans() {
    if !nix::unistd::geteuid().is_root() {
        skip("booting systemd in a container needs root");
        return;
    }
    if Command::new("systemd-nspawn")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("systemd-nspawn is missing (apt-get install systemd-container)");
        return;
    }
    let v1 = match common::deb::build(None) {
        Ok(d) => d,
        Err(reason) => {
            skip(&reason);
            return;
        }
    };
    let v2version = format!("{}-2~debug", env!("CARGO_PKG_VERSION"));
    let v2 = common::deb::build(Some(&v2version)).expect("cargo-deb was there a moment ago");
    let host_before = common::deb::host_has_package();
    let scratch = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deb_systemd.sh");
    let machine = format!("bwdeb{}", std::process::id());
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
        ])
        .arg(&script)
        .arg(&v1)
        .arg(&v2)
        .arg(&v2version)
        .arg(&machine)
        .arg(scratch.path())
        .output()
        .unwrap();
    let Some(text) = common::deb::overlay_script_output(out) else {
        return;
    };
    assert!(
        text.contains("no jail is enabled, so the service was not started"),
        "{text}"
    );
    assert_eq!(
        host_before,
        common::deb::host_has_package(),
        "the host's dpkg state changed"
    );
}
