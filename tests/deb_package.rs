//! The Debian package, built by `scripts/deb.sh` (cargo-deb) from this
//! repository:
//!
//! - its files (binary, unit, conffiles under /etc/banwarden with every jail
//!   disabled and no demo jail, state directory, man pages, completions),
//!   its control fields and its maintainer scripts (postinst runs `banwarden
//!   check`, enables the unit without starting it; postrm purges config
//!   and state);
//! - installed with `dpkg -i` into this machine's root as seen through a
//!   throw-away overlay (a private mount and network namespace, a tmpfs for
//!   the overlay's upper layer, then chroot): `banwarden check --config
//!   /etc/banwarden` passes there, a reinstall (the upgrade path) keeps the
//!   state file, `dpkg -r` leaves the config and the state and `dpkg -P`
//!   removes both. Nothing of it reaches the host: the namespace and its
//!   mounts vanish with the process.
//!
//! Needs cargo-deb (scripts/test.sh installs it as root) and, for the
//! install test, root; both skip with the reason otherwise, and fail under
//! BANWARDEN_REQUIRE_PRIVILEGED_TESTS=1. The package is built with the dev
//! profile (BANWARDEN_DEB_PROFILE=dev, BANWARDEN_DEB_ALLOW_DEBUG=1) to reuse
//! the test build; `scripts/deb.sh` then warns loudly and marks the version
//! `~debug`, and the postinst warns again (checked below). Under a real
//! systemd: `tests/deb_systemd.rs`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::deb::{run, skip};

/// The package, built once per test binary; `Err` says why it cannot be.
fn package() -> &'static Result<PathBuf, String> {
    static DEB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DEB.get_or_init(|| common::deb::build(None))
}

#[test]
fn the_package_holds_what_an_operator_needs() {
    let deb = match package() {
        Ok(d) => d,
        Err(reason) => {
            skip(reason);
            return;
        }
    };
    let list = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    for path in [
        "./usr/bin/banwarden",
        "./lib/systemd/system/banwarden.service",
        "./etc/banwarden/banwarden.yaml",
        "./etc/banwarden/filters/sshd.yaml",
        "./etc/banwarden/jails/sshd.yaml",
        "./usr/share/man/man8/banwarden.8.gz",
        "./usr/share/man/man8/banwarden-dry-run.8.gz",
        "./usr/share/man/man5/banwarden.yaml.5.gz",
        "./usr/share/bash-completion/completions/banwarden",
        "./usr/share/zsh/vendor-completions/_banwarden",
        "./usr/share/fish/vendor_completions.d/banwarden.fish",
    ] {
        let found = list.lines().any(|l| l.ends_with(path))
            || (path.starts_with("./lib/")
                && list
                    .lines()
                    .any(|l| l.ends_with(&format!("./usr{}", &path[1..]))));
        assert!(found, "{path} missing from the package:\n{list}");
    }
    assert!(
        !list.contains("jails/demo.yaml"),
        "the demo jail is not packaged"
    );
    assert!(
        !list.contains(".local.yaml"),
        "local files are the operator's"
    );

    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(control.path()));
    let read = |name: &str| std::fs::read_to_string(control.path().join(name)).unwrap_or_default();
    let conffiles = read("conffiles");
    for f in [
        "/etc/banwarden/banwarden.yaml",
        "/etc/banwarden/jails/sshd.yaml",
    ] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} not a conffile:\n{conffiles}"
        );
    }
    let fields = read("control");
    assert!(fields.contains("Package: banwarden"), "{fields}");
    assert!(fields.contains("nftables"), "depends on nftables: {fields}");
    let postinst = read("postinst");
    assert!(
        postinst.contains("banwarden check --config /etc/banwarden"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper"),
        "unit enabled: {postinst}"
    );
    assert!(!postinst.contains("#DEBHELPER#"), "snippets inserted");
    let postrm = read("postrm");
    assert!(
        postrm.contains("rm -rf /etc/banwarden /var/lib/banwarden"),
        "{postrm}"
    );
    let unit_text = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .output()
        .unwrap()
        .stdout;
    let unit_text = String::from_utf8_lossy(&unit_text);
    assert!(
        unit_text.contains("ExecStart=/usr/bin/banwarden run"),
        "packaged unit runs /usr/bin"
    );
    assert!(unit_text.contains("Documentation=man:banwarden(8)"));

    // Every shipped jail is disabled.
    let etc = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(etc.path()));
    let out = run(Command::new(etc.path().join("usr/bin/banwarden"))
        .args(["check", "--config"])
        .arg(etc.path().join("etc/banwarden")));
    assert!(out.contains("(0 enabled)"), "{out}");
}

#[test]
fn dpkg_installs_checks_upgrades_removes_and_purges_in_a_throwaway_root() {
    if !nix::unistd::geteuid().is_root() {
        skip("installing with dpkg needs root");
        return;
    }
    let deb = match package() {
        Ok(d) => d,
        Err(reason) => {
            skip(reason);
            return;
        }
    };
    let host_before = common::deb::host_has_package();
    let t = tempfile::tempdir().unwrap();
    // In the chroot: install, check, enable (not started: no systemd runs
    // there), reinstall keeps state, remove keeps config, purge clears.
    let inside = r#"
set -eu
dpkg -i /tmp/pkg.deb
test -x /usr/bin/banwarden
banwarden check --config /etc/banwarden
test -L /etc/systemd/system/multi-user.target.wants/banwarden.service
test -d /var/lib/banwarden
echo 'sshd: {enabled: true, backend: files, logpath: /var/log/auth.log}' > /etc/banwarden/jails/sshd.local.yaml
touch /var/log/auth.log
banwarden check --config /etc/banwarden | grep -q '1 enabled: sshd'
echo saved > /var/lib/banwarden/state.redb
dpkg -i /tmp/pkg.deb
grep -q saved /var/lib/banwarden/state.redb
dpkg -r banwarden
test ! -e /usr/bin/banwarden
test -f /etc/banwarden/banwarden.yaml
test -f /etc/banwarden/jails/sshd.local.yaml
test -f /var/lib/banwarden/state.redb
dpkg -P banwarden
test ! -e /etc/banwarden
test ! -e /var/lib/banwarden
echo ALL-OK
"#;
    let outside = r#"
set -eu
t="$1"
mount -t tmpfs tmpfs "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
mount --rbind /dev "$t/root/dev"
mount -t proc proc "$t/root/proc"
mount -t tmpfs tmpfs "$t/root/run"
mount -t tmpfs tmpfs "$t/root/tmp"
cp "$2" "$t/root/tmp/pkg.deb"
exec chroot "$t/root" sh -c "$3"
"#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            outside,
            "sh",
        ])
        .arg(t.path())
        .arg(deb)
        .arg(inside)
        .output()
        .unwrap();
    let Some(text) = common::deb::overlay_script_output(out) else {
        return;
    };
    assert!(
        text.contains("no jail is enabled"),
        "postinst explains: {text}"
    );
    assert!(
        text.contains("WARNING: this package holds a DEBUG build"),
        "postinst warns of a debug build: {text}"
    );
    // The host's package database did not see any of it.
    let host_after = common::deb::host_has_package();
    assert_eq!(host_before, host_after, "the host's dpkg state changed");
}

#[test]
fn a_debug_build_is_not_packaged_unless_asked_for() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/deb.sh"))
        .current_dir(root)
        .env("BANWARDEN_DEB_PROFILE", "dev")
        .env_remove("BANWARDEN_DEB_ALLOW_DEBUG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to package the 'dev' profile"),
        "{stderr}"
    );
    assert!(stderr.contains("BANWARDEN_DEB_ALLOW_DEBUG=1"), "{stderr}");
}
