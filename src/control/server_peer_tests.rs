//! Unit tests of `server`'s rights: peers of other users, the test binary
//! re-run as nobody (or as a group member) against a real socket.

use super::*;

const PEER_SOCKET: &str = "BANWARDEN_TEST_PEER_SOCKET";
const PEER_REQUEST: &str = "BANWARDEN_TEST_PEER_REQUEST";

/// Not a test: the entry point of the child that connects as another user.
#[test]
fn peer_child_entry() {
    let (Some(socket), Some(request)) = (
        std::env::var_os(PEER_SOCKET),
        std::env::var(PEER_REQUEST).ok(),
    ) else {
        return;
    };
    let request: Request = serde_json::from_str(&request).unwrap();
    match client::call_blocking(Path::new(&socket), request) {
        Ok(r) => println!("PEER-OK:{}", serde_json::to_string(&r).unwrap()),
        Err(e) => println!("PEER-ERR:{e}"),
    }
}

/// Runs `request` from a process with `uid`, primary `gid` and `groups`.
fn call_as(
    uid: u32,
    gid: u32,
    groups: &[u32],
    socket: &Path,
    request: &Request,
) -> Result<Response, String> {
    use std::os::unix::process::CommandExt;
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "control::server::tests::peers::peer_child_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PEER_SOCKET, socket)
    .env(PEER_REQUEST, serde_json::to_string(request).unwrap())
    .current_dir("/");
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(Gid::from_raw(gid))?;
            nix::unistd::setuid(Uid::from_raw(uid))?;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        // The harness prints `test ... ` before, on the same line.
        if let Some((_, json)) = line.split_once("PEER-OK:") {
            return Ok(serde_json::from_str(json).unwrap());
        }
        if let Some((_, e)) = line.split_once("PEER-ERR:") {
            return Err(e.to_string());
        }
    }
    panic!(
        "peer child said nothing useful:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ban() -> Request {
    Request::Ban {
        jail: "sshd".into(),
        addr: "192.0.2.9".into(),
        seconds: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_may_read_but_not_change_state() {
    if !privileged("connect as nobody") {
        return;
    }
    let dir = open_tempdir();
    let path = start(dir.path(), Some(CONTROL_GID));
    // Let nobody open the socket: the credentials check is what's tested.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let p = path.clone();
    let (status, ban, reload) = tokio::task::spawn_blocking(move || {
        (
            call_as(NOBODY, NOBODY, &[], &p, &Request::Status { jail: None }),
            call_as(NOBODY, NOBODY, &[], &p, &ban()),
            call_as(NOBODY, NOBODY, &[], &p, &Request::Reload),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        status.unwrap(),
        Response::ok(Reply::Status(sample_status()))
    );
    assert_eq!(
        ban.unwrap().error.unwrap(),
        "permission denied: uid 65534 may not ban; run as root or add the user to group gid 4242"
    );
    assert_eq!(
        reload.unwrap().error.unwrap(),
        "permission denied: uid 65534 may not reload; run as root or add the user to group gid 4242"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_group_only_root_may_change_state() {
    if !privileged("connect as nobody") {
        return;
    }
    let dir = open_tempdir();
    let path = start(dir.path(), None);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let p = path.clone();
    let r =
        tokio::task::spawn_blocking(move || call_as(NOBODY, NOBODY, &[CONTROL_GID], &p, &ban()))
            .await
            .unwrap();
    assert_eq!(
        r.unwrap().error.unwrap(),
        "permission denied: uid 65534 may not ban; run as root (no control group is configured)"
    );
    // Root itself is allowed (this process).
    assert!(client::call(&path, ban()).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_may_change_state() {
    if !privileged("connect as nobody") {
        return;
    }
    let dir = open_tempdir();
    // Mode 0660 root:4242 as bound: the group opens it, others can't.
    let path = start(dir.path(), Some(CONTROL_GID));
    let p = path.clone();
    let (supplementary, primary, outsider) = tokio::task::spawn_blocking(move || {
        (
            call_as(NOBODY, NOBODY, &[CONTROL_GID], &p, &ban()),
            call_as(NOBODY, CONTROL_GID, &[], &p, &ban()),
            call_as(NOBODY, NOBODY, &[], &p, &Request::Status { jail: None }),
        )
    })
    .await
    .unwrap();
    assert!(
        supplementary.unwrap().ok,
        "member through a supplementary group"
    );
    assert!(primary.unwrap().ok, "member through the primary group");
    let e = outsider.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "cannot open the control socket {}: permission denied",
            path.display()
        )),
        "{e}"
    );
}
