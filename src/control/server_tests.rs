//! Unit tests of `server`.

use super::*;
use crate::control::client::{self, ClientError};
use crate::control::protocol::{
    BanInfo, DaemonStatus, JailStatus, JailSummary, Offender, Reply, WatchedFile,
};
use std::collections::BTreeMap;
use tempfile::TempDir;

const NOBODY: u32 = 65534;
/// A gid no test user has; need not exist in /etc/group.
const CONTROL_GID: u32 = 4242;

fn sample_status() -> DaemonStatus {
    DaemonStatus {
        version: "0.1.0".into(),
        uptime_seconds: 3723,
        config_dir: "/etc/banwarden".into(),
        table: "banwarden".into(),
        jails: vec![JailSummary {
            name: "sshd".into(),
            filter: "sshd".into(),
            failures_tracked: 3,
            active_bans: 1,
            total_bans: 7,
            lines: 1000,
            matched: 12,
            health: vec![],
            proxy_warning: None,
        }],
        files: vec![WatchedFile {
            path: "/var/log/auth.log".into(),
            offset: 4096,
            inode: 12,
        }],
        fleet: None,
    }
}

fn sample_ban(jail: &str, addr: &str) -> BanInfo {
    BanInfo {
        jail: jail.into(),
        addr: addr.into(),
        banned_at: 1_700_000_000,
        expires: Some(1_700_003_600),
        count: 2,
        origin: None,
    }
}

fn sample_jail(name: &str) -> JailStatus {
    JailStatus {
        name: name.into(),
        filter: "sshd".into(),
        logpath: vec!["/var/log/auth.log".into()],
        maxretry: 5,
        findtime_seconds: 600,
        bantime_seconds: Some(3600),
        ignoreip: vec!["127.0.0.0/8".into()],
        ports: vec!["22".into()],
        protocol: "tcp".into(),
        counters: BTreeMap::from([("lines".to_string(), 10)]),
        top_offenders: vec![Offender {
            addr: "192.0.2.7".into(),
            failures: 4,
        }],
        bans: vec![sample_ban(name, "192.0.2.1")],
        last_line: None,
        last_match: None,
        health: vec![],
        proxy_warning: None,
    }
}

/// The daemon's side, faked: answers each request kind.
fn answer(request: Request) -> Response {
    match request {
        Request::Status { jail: None } => Response::ok(Reply::Status(sample_status())),
        Request::Status { jail: Some(j) } if j == "sshd" => Response::ok(Reply::Jail(sample_jail(&j))),
        Request::Status { jail: Some(j) } => Response::err(format!("no jail named {j}")),
        Request::Bans { jail } => Response::ok(Reply::Bans { bans: vec![sample_ban(jail.as_deref().unwrap_or("sshd"), "192.0.2.1")] }),
        Request::Ban { jail, addr, seconds } => {
            Response::ok(Reply::Done { count: 1, message: format!("banned {addr} in {jail} for {seconds:?}") })
        }
        Request::Unban { addr, jail, all } => {
            Response::ok(Reply::Done { count: 2, message: format!("unbanned {addr:?} from {jail:?} all={all}") })
        }
        Request::Reload => Response::err("jails/sshd.yaml:3:5: bantime: `x` is not a duration; the running configuration is unchanged"),
        Request::Ignore { addr, seconds } => Response::ok(Reply::Done { count: 1, message: format!("ignoring {addr} for {seconds:?}") }),
        Request::BanMany { entries } => Response::ok(Reply::Done { count: entries.0.len(), message: String::new() }),
    }
}

fn fake_daemon() -> (mpsc::Sender<ControlRequest>, tokio::task::JoinHandle<usize>) {
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(16);
    let task = tokio::spawn(async move {
        let mut n = 0;
        while let Some((request, reply)) = rx.recv().await {
            n += 1;
            let _ = reply.send(answer(request));
        }
        n
    });
    (tx, task)
}

/// A temp dir everyone can traverse (for the tests that connect as nobody).
fn open_tempdir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("banwarden-control")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Binds in `dir/run/`, starts serving with the fake daemon; returns the path.
fn start(dir: &Path, group: Option<u32>) -> PathBuf {
    let run = dir.join("run");
    fs::DirBuilder::new().mode(0o755).create(&run).unwrap();
    let path = run.join("banwarden.sock");
    let listener = ControlListener::bind(&path, group).unwrap();
    let (tx, _task) = fake_daemon();
    tokio::spawn(serve(listener, tx));
    path
}

async fn raw_exchange(path: &Path, bytes: &[u8]) -> Response {
    let mut s = UnixStream::connect(path).await.unwrap();
    // The server may answer (and close) before reading everything.
    let _ = s.write_all(bytes).await;
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.ends_with('\n'), "{out:?}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn round_trip_of_each_request_kind() {
    let dir = open_tempdir();
    let path = start(dir.path(), None);

    let r = client::call(&path, Request::Status { jail: None })
        .await
        .unwrap();
    assert_eq!(r, Response::ok(Reply::Status(sample_status())));
    let r = client::call(
        &path,
        Request::Status {
            jail: Some("sshd".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(r, Response::ok(Reply::Jail(sample_jail("sshd"))));
    let r = client::call(
        &path,
        Request::Status {
            jail: Some("nope".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(r.error.as_deref(), Some("no jail named nope"));
    let r = client::call(
        &path,
        Request::Bans {
            jail: Some("web".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response::ok(Reply::Bans {
            bans: vec![sample_ban("web", "192.0.2.1")]
        })
    );
    let r = client::call(
        &path,
        Request::Ban {
            jail: "sshd".into(),
            addr: "192.0.2.9".into(),
            seconds: Some(-1),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response::ok(Reply::Done {
            count: 1,
            message: "banned 192.0.2.9 in sshd for Some(-1)".into()
        })
    );
    let r = client::call(
        &path,
        Request::Unban {
            addr: None,
            jail: Some("sshd".into()),
            all: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response::ok(Reply::Done {
            count: 2,
            message: "unbanned None from Some(\"sshd\") all=true".into()
        })
    );
    let r = client::call(&path, Request::Reload).await.unwrap();
    assert!(!r.ok && r.error.unwrap().contains("bantime"));
    let r = client::call(
        &path,
        Request::Ignore {
            addr: "2001:db8::/32".into(),
            seconds: Some(60),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        Response::ok(Reply::Done {
            count: 1,
            message: "ignoring 2001:db8::/32 for Some(60)".into()
        })
    );
}

#[tokio::test]
async fn version_mismatch_names_both_versions() {
    let dir = open_tempdir();
    let path = start(dir.path(), None);
    let r = raw_exchange(&path, b"{\"v\":2,\"cmd\":\"status\",\"jail\":null}\n").await;
    let e = r.error.unwrap();
    assert!(!r.ok);
    assert!(
        e.contains("v2") && e.contains("v1") && e.contains("mismatch"),
        "{e}"
    );
    let r = raw_exchange(&path, b"{\"cmd\":\"status\",\"jail\":null}\n").await;
    assert!(r.error.unwrap().contains("missing the protocol version"));
}

#[tokio::test]
async fn malformed_lines_get_the_parse_error() {
    let dir = open_tempdir();
    let path = start(dir.path(), None);
    let r = raw_exchange(&path, b"not json\n").await;
    assert!(r.error.unwrap().starts_with("malformed request: expected"));
    let r = raw_exchange(&path, b"{\"v\":1,\"cmd\":\"explode\"}\n").await;
    let e = r.error.unwrap();
    assert!(e.contains("unknown variant `explode`"), "{e}");
    let r = raw_exchange(&path, b"{\"v\":1,\"cmd\":\"ban\",\"jail\":\"sshd\"}\n").await;
    assert!(r.error.unwrap().contains("missing field `addr`"));
    let r = raw_exchange(
        &path,
        b"{\"v\":1,\"cmd\":\"status\",\"jail\":\"\xff\xfe\"}\n",
    )
    .await;
    assert!(r.error.unwrap().starts_with("malformed request"));
    // No newline, then shutdown: still one line.
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(b"{\"v\":1,\"cmd\":\"bans\",\"jail\":null}")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(serde_json::from_str::<Response>(&out).unwrap().ok);
}

#[tokio::test]
async fn oversized_line_is_refused() {
    let dir = open_tempdir();
    let path = start(dir.path(), None);
    // This test's peer owns the daemon, so the bulk limit applies to it.
    let mut big = vec![b'x'; MAX_BULK_REQUEST_LINE + 10];
    big.push(b'\n');
    let r = raw_exchange(&path, &big).await;
    assert!(r.error.unwrap().contains("longer than 16777216 bytes"));
    // Exactly at the limit is read (and then fails to parse, as it is junk).
    let mut edge = vec![b' '; MAX_BULK_REQUEST_LINE - 2];
    edge.extend_from_slice(b"{}\n");
    let r = raw_exchange(&path, &edge).await;
    assert!(r.error.unwrap().contains("missing the protocol version"));
}

#[tokio::test]
async fn silent_client_times_out_without_blocking_others() {
    let dir = open_tempdir();
    let run = dir.path().join("run");
    let path = run.join("s.sock");
    let listener = ControlListener::bind(&path, None)
        .unwrap()
        .with_read_timeout(Duration::from_millis(300));
    let (tx, _task) = fake_daemon();
    tokio::spawn(serve(listener, tx));

    let mut silent = UnixStream::connect(&path).await.unwrap();
    // Meanwhile, many others are served at once.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { client::call(&path, Request::Bans { jail: None }).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().ok);
    }
    let mut out = String::new();
    silent.read_to_string(&mut out).await.unwrap();
    assert!(out.contains("no request within 0.3 s"), "{out}");
}

#[tokio::test]
async fn handler_gone_stops_serving_and_removes_the_socket() {
    let dir = open_tempdir();
    let path = dir.path().join("run/banwarden.sock");
    let listener = ControlListener::bind(&path, None).unwrap();
    let (tx, rx) = mpsc::channel::<ControlRequest>(1);
    let server = tokio::spawn(serve(listener, tx));
    assert!(path.exists());
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(!path.exists());
    let e = client::call(&path, Request::Status { jail: None })
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotRunning { .. }), "{e:?}");
}

#[tokio::test]
async fn dropped_reply_is_an_error_not_a_hang() {
    let dir = open_tempdir();
    let path = dir.path().join("run/banwarden.sock");
    let listener = ControlListener::bind(&path, None).unwrap();
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(1);
    tokio::spawn(serve(listener, tx));
    tokio::spawn(async move {
        while let Some((_req, reply)) = rx.recv().await {
            drop(reply);
        }
    });
    let r = client::call(&path, Request::Reload).await.unwrap();
    assert!(r.error.unwrap().contains("dropped the request"));
}

#[test]
fn bind_creates_the_directory_and_sets_modes() {
    let dir = open_tempdir();
    let path = dir.path().join("a/run/banwarden.sock");
    let l = ControlListener::bind(&path, None).unwrap();
    assert_eq!(l.path(), path);
    let d = fs::metadata(dir.path().join("a/run")).unwrap();
    assert_eq!(d.permissions().mode() & 0o7777, 0o750);
    let s = fs::symlink_metadata(&path).unwrap();
    assert!(s.file_type().is_socket());
    assert_eq!(s.permissions().mode() & 0o7777, 0o660);
    drop(l);
    assert!(!path.exists(), "the socket file is removed on drop");
    assert!(dir.path().join("a/run").is_dir());
}

#[test]
fn bind_gives_the_socket_to_the_group() {
    if !privileged("chown to another group") {
        return;
    }
    let dir = open_tempdir();
    let path = dir.path().join("run/banwarden.sock");
    let _l = ControlListener::bind(&path, Some(CONTROL_GID)).unwrap();
    assert_eq!(fs::symlink_metadata(&path).unwrap().gid(), CONTROL_GID);
    assert_eq!(
        fs::metadata(dir.path().join("run")).unwrap().gid(),
        CONTROL_GID,
        "created dir too"
    );
}

#[test]
fn stale_socket_is_replaced_on_bind() {
    let dir = open_tempdir();
    let path = dir.path().join("banwarden.sock");
    drop(StdUnixListener::bind(&path).unwrap()); // leaves the file, nobody listens
    assert!(path.exists());
    let l = ControlListener::bind(&path, None).unwrap();
    assert!(probe(&path).unwrap());
    drop(l);
}

#[test]
fn live_socket_is_not_replaced() {
    let dir = open_tempdir();
    let path = dir.path().join("banwarden.sock");
    let _first = ControlListener::bind(&path, None).unwrap();
    let e = ControlListener::bind(&path, None).unwrap_err();
    assert!(matches!(e, ControlError::AlreadyRunning { .. }));
    assert!(
        e.to_string().starts_with("another banwarden is running"),
        "{e}"
    );
    assert!(probe(&path).unwrap(), "the first one's socket is untouched");
}

#[test]
fn other_files_are_not_replaced() {
    let dir = open_tempdir();
    let path = dir.path().join("banwarden.sock");
    fs::write(&path, "precious").unwrap();
    let e = ControlListener::bind(&path, None).unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn unknown_group_is_reported() {
    assert_eq!(resolve_group("4242").unwrap(), 4242);
    assert_eq!(resolve_group("root").unwrap(), 0);
    let e = resolve_group("no-such-group-banwarden").unwrap_err();
    assert_eq!(
        e.to_string(),
        "control group `no-such-group-banwarden` does not exist"
    );
}

/// Whether we may run a privileged test; a skip fails where CI requires them.
fn privileged(what: &str) -> bool {
    if Uid::effective().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("BANWARDEN_REQUIRE_PRIVILEGED_TESTS").is_none(),
        "{what}: needs root"
    );
    eprintln!("skipped ({what}): needs root");
    false
}

#[path = "server_peer_tests.rs"]
mod peers;
