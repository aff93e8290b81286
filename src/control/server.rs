//! The daemon's side of the control socket: binding the socket file (stale
//! socket removal, mode 0660, group), reading one request line per connection,
//! checking the protocol version and the peer's credentials, and passing the
//! request to the daemon through a channel.
//!
//! Owns the transport and the access check only. It must not compute answers
//! (status, bans, reload are the daemon's handler, reached through the channel
//! given to [`serve`]) and must never panic or block the daemon on bad input.
//!
//! Who may change state: uid 0, the daemon's own uid, and, when a control group
//! is configured, any peer whose primary or supplementary groups include it.
//! Supplementary groups are those of the peer process when it connected
//! (`SO_PEERGROUPS`, Linux 4.13+); on kernels without it, the group database's
//! (`getgrouplist` of the peer's user name). Reading requests (`status`, `bans`)
//! is open to anyone who can open the socket (mode 0660: root and the group).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::protocol::{Envelope, Request, Response, PROTOCOL_VERSION};
use super::MAX_REQUEST_LINE;

/// What the server hands the daemon: a request (already authorised) and where
/// to send its answer. Dropping the sender answers with an error.
pub type ControlRequest = (Request, oneshot::Sender<Response>);

/// How long a client has to send its request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 128;

/// Setting up the control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another banwarden is running: a daemon answers on {}", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it (remove it, or set another `socket:` in banwarden.yaml)", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot create the control socket directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot remove the stale control socket {}: {source}", path.display())]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot bind the control socket {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set the permissions of {}: {source}", path.display())]
    Permissions { path: PathBuf, source: io::Error },
    #[error("cannot give {} to group {group}: {source} (the daemon needs CAP_CHOWN, or to be a member of that group, e.g. SupplementaryGroups= in its unit)", path.display())]
    Chown {
        path: PathBuf,
        group: String,
        source: nix::Error,
    },
    #[error("control group `{name}` does not exist")]
    UnknownGroup { name: String },
    #[error("cannot look up control group `{name}`: {source}")]
    GroupLookup { name: String, source: nix::Error },
}

/// Resolves a control group given by name (or as a number) to its gid.
pub fn resolve_group(name: &str) -> Result<u32, ControlError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(ControlError::UnknownGroup {
            name: name.to_string(),
        }),
        Err(source) => Err(ControlError::GroupLookup {
            name: name.to_string(),
            source,
        }),
    }
}

/// A bound control socket, ready for [`serve`]. Binding needs no runtime.
/// Dropping it (or [`serve`] returning) removes the socket file, unless it has
/// been replaced by another one meanwhile.
#[derive(Debug)]
pub struct ControlListener {
    listener: StdUnixListener,
    file: SocketFile,
    access: Access,
    read_timeout: Duration,
}

/// Who may change state.
#[derive(Debug, Clone)]
struct Access {
    group: Option<u32>,
    /// The group's name for messages (`gid N` when it has none).
    group_name: Option<String>,
    /// The daemon's own effective uid: allowed like root.
    own_uid: u32,
}

/// The socket file we created; removed on drop if it is still ours.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl ControlListener {
    /// Binds the control socket at `path`: creates its directory if missing
    /// (mode 0750; group `group` when set), replaces a stale socket file (one
    /// nothing answers on; a live one is [`ControlError::AlreadyRunning`]),
    /// then sets mode 0660 and, when `group` is set, group ownership.
    pub fn bind(path: &Path, group: Option<u32>) -> Result<ControlListener, ControlError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(dir)
                    .map_err(|source| ControlError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).map_err(|source| {
                    ControlError::CreateDir {
                        path: dir.to_path_buf(),
                        source,
                    }
                })?;
                if let Some(gid) = group {
                    // Members of the group must be able to reach the socket.
                    nix::unistd::chown(dir, None, Some(Gid::from_raw(gid))).map_err(|source| {
                        ControlError::Chown {
                            path: dir.to_path_buf(),
                            group: group_label(gid),
                            source,
                        }
                    })?;
                }
            }
        }

        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => match probe(path) {
                Ok(true) => {
                    return Err(ControlError::AlreadyRunning {
                        path: path.to_path_buf(),
                    })
                }
                Ok(false) => {
                    tracing::info!(socket = %path.display(), "removing stale control socket");
                    fs::remove_file(path).map_err(|source| ControlError::RemoveStale {
                        path: path.to_path_buf(),
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(ControlError::RemoveStale {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            },
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ControlError::Bind {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }

        let listener = StdUnixListener::bind(path).map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ControlError::AlreadyRunning {
                    path: path.to_path_buf(),
                }
            } else {
                ControlError::Bind {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let meta = fs::symlink_metadata(path).map_err(|source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
        // From here on the file is ours: removed again if anything below fails.
        let file = SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        };
        listener
            .set_nonblocking(true)
            .map_err(|source| ControlError::Bind {
                path: path.to_path_buf(),
                source,
            })?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(|source| {
            ControlError::Permissions {
                path: path.to_path_buf(),
                source,
            }
        })?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(Gid::from_raw(gid))).map_err(|source| {
                ControlError::Chown {
                    path: path.to_path_buf(),
                    group: group_label(gid),
                    source,
                }
            })?;
        }

        let access = Access {
            group,
            group_name: group.map(group_label),
            own_uid: Uid::effective().as_raw(),
        };
        Ok(ControlListener {
            listener,
            file,
            access,
            read_timeout: READ_TIMEOUT,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Changes how long a client has to send its request (default 5 s).
    pub fn with_read_timeout(mut self, timeout: Duration) -> ControlListener {
        self.read_timeout = timeout;
        self
    }
}

/// `banwarden` (or `gid 4242` when the group has no name).
fn group_label(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => format!("gid {gid}"),
    }
}

/// Whether something accepts connections on the socket at `path`. Never blocks:
/// a full backlog counts as alive.
fn probe(path: &Path) -> io::Result<bool> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Ok(true),
        Err(Errno::ECONNREFUSED) | Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Serves the control socket until the daemon drops the receiving end of
/// `handler`; then stops accepting and removes the socket file. Each
/// connection is served in its own task: one request line, one response line.
///
/// Must run inside a tokio runtime with I/O and time enabled.
pub async fn serve(listener: ControlListener, handler: mpsc::Sender<ControlRequest>) {
    let ControlListener {
        listener,
        file,
        access,
        read_timeout,
    } = listener;
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(socket = %file.path.display(), "control socket: {e}");
            return;
        }
    };
    tracing::info!(socket = %file.path.display(), "control socket listening");
    let access = Arc::new(access);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = handler.closed() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait instead of spinning.
                    tracing::warn!("control socket: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = handler.closed() => break,
        };
        let (access, handler) = (access.clone(), handler.clone());
        tokio::spawn(async move {
            handle(stream, &access, &handler, read_timeout).await;
            drop(permit);
        });
    }
    tracing::debug!(socket = %file.path.display(), "control socket closed");
    drop(file);
}

/// The peer of a connection, as the kernel saw it when it connected.
#[derive(Debug, Clone)]
struct Peer {
    uid: u32,
    gid: u32,
    pid: Option<i32>,
    /// Supplementary groups (`SO_PEERGROUPS`), `None` if the kernel can't say.
    groups: Option<Vec<u32>>,
}

impl Peer {
    fn of(stream: &UnixStream) -> io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let groups = peer_groups(stream.as_raw_fd()).ok();
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            groups,
        })
    }
}

#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The peer's supplementary groups at connect time (Linux 4.13+).
fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let size = std::mem::size_of::<libc::gid_t>();
    let mut buf: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = (buf.len() * size) as libc::socklen_t;
        // SAFETY: `buf` holds `len` writable bytes; the kernel writes at most that.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            buf.truncate(len as usize / size);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) || len as usize <= buf.len() * size {
            return Err(err);
        }
        // Too small: the kernel said how much it needs.
        buf.resize(len as usize / size + 1, 0);
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

/// The group database's groups of `uid` (fallback without `SO_PEERGROUPS`).
fn groups_of_user(uid: u32, gid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
        .map(|g| g.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default()
}

/// A request line, or why there isn't one.
enum Line {
    Request(Vec<u8>),
    TooLong,
    /// Closed before sending anything.
    Empty,
}

async fn read_line<R: tokio::io::AsyncRead + Unpin>(reader: R) -> io::Result<Line> {
    let mut buf = Vec::new();
    BufReader::new(reader)
        .take(MAX_REQUEST_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > MAX_REQUEST_LINE {
        return Ok(Line::TooLong);
    } else if buf.is_empty() {
        return Ok(Line::Empty);
    }
    // A last line without its newline (the client shut down its side) is a line.
    Ok(Line::Request(buf))
}

async fn handle(
    mut stream: UnixStream,
    access: &Access,
    handler: &mpsc::Sender<ControlRequest>,
    read_timeout: Duration,
) {
    let peer = Peer::of(&stream);
    let (reader, mut writer) = stream.split();
    let response = match tokio::time::timeout(read_timeout, read_line(reader)).await {
        Err(_) => Response::err(format!(
            "no request within {} s: send one JSON line, e.g. {{\"v\":{PROTOCOL_VERSION},\"cmd\":\"status\",\"jail\":null}}",
            read_timeout.as_secs_f32()
        )),
        Ok(Err(e)) => {
            tracing::debug!("control connection: read: {e}");
            return;
        }
        Ok(Ok(Line::Empty)) => return,
        Ok(Ok(Line::TooLong)) => Response::err(format!("malformed request: line longer than {MAX_REQUEST_LINE} bytes")),
        Ok(Ok(Line::Request(line))) => match parse(&line) {
            Err(message) => Response::err(message),
            Ok(request) => match authorize(&request, &peer, access).await {
                Err(message) => Response::err(message),
                Ok(()) => forward(request, handler).await,
            },
        },
    };
    let mut text = serde_json::to_string(&response).unwrap_or_else(|e| {
        format!(
            "{{\"ok\":false,\"error\":\"cannot encode the response: {}\"}}",
            e.to_string().replace(['"', '\\'], "'")
        )
    });
    text.push('\n');
    let write = async {
        writer.write_all(text.as_bytes()).await?;
        writer.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("control connection: write: {e}"),
        Err(_) => tracing::debug!("control connection: write timed out"),
    }
}

/// Checks the version, then reads the request.
fn parse(line: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))?;
    let Some(v) = value.get("v") else {
        return Err("malformed request: missing the protocol version `v`".to_string());
    };
    let Some(v) = v.as_u64() else {
        return Err(format!(
            "malformed request: the protocol version `v` must be a number, not {v}"
        ));
    };
    if v != u64::from(PROTOCOL_VERSION) {
        return Err(format!(
            "protocol version mismatch: the client speaks v{v}, this daemon speaks v{PROTOCOL_VERSION}; use the banwarden binary that matches the running daemon"
        ));
    }
    let envelope: Envelope =
        serde_json::from_value(value).map_err(|e| format!("malformed request: {e}"))?;
    Ok(envelope.request)
}

/// What a refused peer may not do, for the message.
fn verb(request: &Request) -> &'static str {
    match request {
        Request::Status { .. } => "read the status",
        Request::Bans { .. } => "list bans",
        Request::Ban { .. } => "ban",
        Request::Unban { .. } => "unban",
        Request::Reload => "reload",
        Request::Ignore { .. } => "ignore addresses",
    }
}

async fn authorize(
    request: &Request,
    peer: &io::Result<Peer>,
    access: &Access,
) -> Result<(), String> {
    if !request.mutates() {
        return Ok(());
    }
    let peer = match peer {
        Ok(p) => p,
        Err(e) => {
            return Err(format!(
                "permission denied: cannot identify the peer ({e}); only root may {}",
                verb(request)
            ))
        }
    };
    let allowed = peer.uid == 0 || peer.uid == access.own_uid || in_group(peer, access.group).await;
    if allowed {
        tracing::info!(uid = peer.uid, pid = peer.pid, ?request, "control request");
        return Ok(());
    }
    tracing::warn!(
        uid = peer.uid,
        pid = peer.pid,
        ?request,
        "control request refused"
    );
    let hint = match &access.group_name {
        Some(name) => format!("run as root or add the user to group {name}"),
        None => "run as root (no control group is configured)".to_string(),
    };
    Err(format!(
        "permission denied: uid {} may not {}; {hint}",
        peer.uid,
        verb(request)
    ))
}

async fn in_group(peer: &Peer, group: Option<u32>) -> bool {
    let Some(group) = group else { return false };
    if peer.gid == group {
        return true;
    }
    match &peer.groups {
        Some(groups) => groups.contains(&group),
        None => {
            // NSS may be slow (LDAP...): off the runtime's threads.
            let (uid, gid) = (peer.uid, peer.gid);
            tokio::task::spawn_blocking(move || groups_of_user(uid, gid))
                .await
                .is_ok_and(|g| g.contains(&group))
        }
    }
}

async fn forward(request: Request, handler: &mpsc::Sender<ControlRequest>) -> Response {
    let (tx, rx) = oneshot::channel();
    if handler.send((request, tx)).await.is_err() {
        return Response::err("banwarden is shutting down");
    }
    rx.await
        .unwrap_or_else(|_| Response::err("banwarden dropped the request (shutting down?)"))
}

#[cfg(test)]
mod tests {
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
            }],
            files: vec![WatchedFile {
                path: "/var/log/auth.log".into(),
                offset: 4096,
                inode: 12,
            }],
        }
    }

    fn sample_ban(jail: &str, addr: &str) -> BanInfo {
        BanInfo {
            jail: jail.into(),
            addr: addr.into(),
            banned_at: 1_700_000_000,
            expires: Some(1_700_003_600),
            count: 2,
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
        let mut big = vec![b'x'; MAX_REQUEST_LINE + 10];
        big.push(b'\n');
        let r = raw_exchange(&path, &big).await;
        assert!(r.error.unwrap().contains("longer than 65536 bytes"));
        // Exactly at the limit is read (and then fails to parse, as it is junk).
        let mut edge = vec![b' '; MAX_REQUEST_LINE - 2];
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

    // ---- Peers of other users: the test binary re-run as nobody. ----

    const PEER_SOCKET: &str = "BANWARDEN_TEST_PEER_SOCKET";
    const PEER_REQUEST: &str = "BANWARDEN_TEST_PEER_REQUEST";

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
            "control::server::tests::peer_child_entry",
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
        let r = tokio::task::spawn_blocking(move || {
            call_as(NOBODY, NOBODY, &[CONTROL_GID], &p, &ban())
        })
        .await
        .unwrap();
        assert_eq!(r.unwrap().error.unwrap(), "permission denied: uid 65534 may not ban; run as root (no control group is configured)");
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
}
