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

use super::protocol::{parse_request, Request, Response, PROTOCOL_VERSION};
use super::{MAX_BULK_REQUEST_LINE, MAX_REQUEST_LINE};

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

async fn read_line<R: tokio::io::AsyncRead + Unpin>(reader: R, limit: usize) -> io::Result<Line> {
    let mut buf = Vec::new();
    BufReader::new(reader)
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > limit {
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
    // Only a peer that may change state may send a long (bulk ban) line.
    let limit = match &peer {
        Ok(p) if p.uid == 0 || p.uid == access.own_uid || in_group(p, access.group).await => {
            MAX_BULK_REQUEST_LINE
        }
        _ => MAX_REQUEST_LINE,
    };
    let (reader, mut writer) = stream.split();
    let response = match tokio::time::timeout(read_timeout, read_line(reader, limit)).await {
        Err(_) => Response::err(format!(
            "no request within {} s: send one JSON line, e.g. {{\"v\":{PROTOCOL_VERSION},\"cmd\":\"status\",\"jail\":null}}",
            read_timeout.as_secs_f32()
        )),
        Ok(Err(e)) => {
            tracing::debug!("control connection: read: {e}");
            return;
        }
        Ok(Ok(Line::Empty)) => return,
        Ok(Ok(Line::TooLong)) => Response::err(format!("malformed request: line longer than {limit} bytes")),
        Ok(Ok(Line::Request(line))) => match parse_request(&line) {
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

/// What a refused peer may not do, for the message.
fn verb(request: &Request) -> &'static str {
    match request {
        Request::Status { .. } => "read the status",
        Request::Bans { .. } => "list bans",
        Request::Ban { .. } => "ban",
        Request::Unban { .. } => "unban",
        Request::Reload => "reload",
        Request::Ignore { .. } => "ignore addresses",
        Request::BanMany { .. } => "ban",
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
#[path = "server_tests.rs"]
mod tests;
