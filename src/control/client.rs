//! The CLI's side of the control socket: connect, send one request line, read
//! one response line, with timeouts, and turn socket errors into messages a
//! user can act on ("banwarden is not running ...", "permission denied ...").
//!
//! Owns the exchange only. It must not print (the CLI does) nor interpret the
//! daemon's answers beyond decoding them.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::{Gid, Group};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Envelope, Request, Response, PROTOCOL_VERSION};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon has to answer a request that changes state (a reload
/// or a ban waits for nft).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon has to answer `status` or `bans`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response line accepted (a ban list of a busy host is large).
const MAX_RESPONSE_LINE: u64 = 256 << 20;

/// Why there is no response.
#[derive(Debug)]
pub enum ClientError {
    /// No socket file (`stale: false`) or nothing listening on it (`stale: true`).
    NotRunning { path: PathBuf, stale: bool },
    /// The socket (or its directory) may not be opened by this user. `group`:
    /// the socket's group, when it is one a user could join.
    PermissionDenied {
        path: PathBuf,
        group: Option<String>,
    },
    /// Connecting or waiting for the answer took too long.
    Timeout {
        path: PathBuf,
        waiting_for: &'static str,
        after: Duration,
    },
    /// Any other I/O error.
    Io { path: PathBuf, source: io::Error },
    /// The daemon answered something that is not a response.
    Protocol { path: PathBuf, message: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning { path, stale: false } => write!(
                f,
                "banwarden is not running (no socket at {}); start it with `systemctl start banwarden`",
                path.display()
            ),
            ClientError::NotRunning { path, stale: true } => write!(
                f,
                "banwarden is not running (nothing listens on {}); start it with `systemctl start banwarden`",
                path.display()
            ),
            ClientError::PermissionDenied { path, group } => {
                write!(f, "cannot open the control socket {}: permission denied; run as root", path.display())?;
                match group {
                    Some(g) => write!(f, " or join group {g} (`usermod -aG {g} USER`, then log in again)"),
                    None => write!(f, " (or, if banwarden has a control group configured, join that group)"),
                }
            }
            ClientError::Timeout { path, waiting_for, after } => {
                write!(f, "banwarden did not answer on {} within {after:?} ({waiting_for})", path.display())
            }
            ClientError::Io { path, source } => write!(f, "control socket {}: {source}", path.display()),
            ClientError::Protocol { path, message } => {
                write!(f, "unexpected answer from banwarden on {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Sends `request` to the daemon listening on `socket` and returns its answer
/// (which may itself be an error response: see [`Response::ok`]).
pub async fn call(socket: &Path, request: Request) -> Result<Response, ClientError> {
    let answer_timeout = if request.mutates() {
        CHANGE_TIMEOUT
    } else {
        READ_TIMEOUT
    };
    call_with(socket, request, CONNECT_TIMEOUT, answer_timeout).await
}

/// [`call`] from synchronous code: runs it on a current-thread runtime of its own.
/// Must not be called from inside a tokio runtime.
pub fn call_blocking(socket: &Path, request: Request) -> Result<Response, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClientError::Io {
            path: socket.to_path_buf(),
            source,
        })?;
    runtime.block_on(call(socket, request))
}

async fn call_with(
    socket: &Path,
    request: Request,
    connect_timeout: Duration,
    answer_timeout: Duration,
) -> Result<Response, ClientError> {
    let path = socket.to_path_buf();
    let stream = match tokio::time::timeout(connect_timeout, UnixStream::connect(socket)).await {
        Err(_) => {
            return Err(ClientError::Timeout {
                path,
                waiting_for: "connecting",
                after: connect_timeout,
            })
        }
        Ok(Err(e)) => return Err(connect_error(socket, e)),
        Ok(Ok(s)) => s,
    };
    let mut line = serde_json::to_vec(&Envelope {
        v: PROTOCOL_VERSION,
        request,
    })
    .map_err(|e| ClientError::Protocol {
        path: path.clone(),
        message: format!("cannot encode the request: {e}"),
    })?;
    line.push(b'\n');

    let (reader, mut writer) = stream.into_split();
    let exchange = async {
        // A daemon that refuses early still answers: read even if writing failed.
        let written = writer.write_all(&line).await;
        let mut buf = Vec::new();
        let read = BufReader::new(reader)
            .take(MAX_RESPONSE_LINE)
            .read_until(b'\n', &mut buf)
            .await;
        match (read, written) {
            (Ok(_), _) if !buf.is_empty() => Ok(buf),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
            (Ok(_), Ok(())) => Ok(buf),
        }
    };
    let buf = match tokio::time::timeout(answer_timeout, exchange).await {
        Err(_) => {
            return Err(ClientError::Timeout {
                path,
                waiting_for: "waiting for the answer",
                after: answer_timeout,
            })
        }
        Ok(Err(source)) => return Err(ClientError::Io { path, source }),
        Ok(Ok(buf)) => buf,
    };
    if buf.is_empty() {
        return Err(ClientError::Protocol {
            path,
            message: "the connection was closed without an answer".into(),
        });
    }
    if buf.last() != Some(&b'\n') && buf.len() as u64 >= MAX_RESPONSE_LINE {
        return Err(ClientError::Protocol {
            path,
            message: format!("answer longer than {MAX_RESPONSE_LINE} bytes"),
        });
    }
    serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol {
        path,
        message: e.to_string(),
    })
}

/// A connect error as the user should read it.
fn connect_error(socket: &Path, e: io::Error) -> ClientError {
    let path = socket.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound => ClientError::NotRunning { path, stale: false },
        io::ErrorKind::ConnectionRefused => ClientError::NotRunning { path, stale: true },
        io::ErrorKind::PermissionDenied => {
            // Name the socket's group if we can see it and it is not root's.
            let group = std::fs::metadata(socket)
                .ok()
                .map(|m| m.gid())
                .filter(|gid| *gid != 0)
                .map(|gid| match Group::from_gid(Gid::from_raw(gid)) {
                    Ok(Some(g)) => g.name,
                    _ => gid.to_string(),
                });
            ClientError::PermissionDenied { path, group }
        }
        _ => ClientError::Io { path, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Reply;
    use tempfile::TempDir;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn missing_socket_says_not_running() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("banwarden.sock");
        let e = call(&path, Request::Status { jail: None })
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::NotRunning { stale: false, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("banwarden is not running (no socket at {}); start it with `systemctl start banwarden`", path.display())
        );
        // A missing directory too.
        let e = call(&dir.path().join("nope/b.sock"), Request::Reload)
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::NotRunning { stale: false, .. }),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn stale_socket_says_not_running() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("banwarden.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let e = call(&path, Request::Bans { jail: None }).await.unwrap_err();
        assert!(
            matches!(e, ClientError::NotRunning { stale: true, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("banwarden is not running (nothing listens on {}); start it with `systemctl start banwarden`", path.display())
        );
    }

    #[test]
    fn blocking_wrapper_works_outside_a_runtime() {
        let dir = TempDir::new().unwrap();
        let e = call_blocking(&dir.path().join("x.sock"), Request::Reload).unwrap_err();
        assert!(e.to_string().starts_with("banwarden is not running"));
    }

    /// A fake daemon that answers each connection with `answer` (or nothing).
    fn fake(path: &Path, answer: Option<&'static [u8]>) {
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut line = Vec::new();
                    let (r, mut w) = s.split();
                    let _ = BufReader::new(r).read_until(b'\n', &mut line).await;
                    let req: Envelope = serde_json::from_slice(&line).unwrap();
                    assert_eq!(req.v, PROTOCOL_VERSION);
                    match answer {
                        Some(a) => {
                            let _ = w.write_all(a).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
    }

    #[tokio::test]
    async fn answers_are_decoded_and_junk_is_reported() {
        let dir = TempDir::new().unwrap();
        let ok = dir.path().join("ok.sock");
        fake(&ok, Some(b"{\"ok\":true,\"data\":{\"kind\":\"done\",\"count\":3,\"message\":\"3 unbanned\"}}\n"));
        let r = call(
            &ok,
            Request::Unban {
                addr: None,
                jail: None,
                all: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            Response::ok(Reply::Done {
                count: 3,
                message: "3 unbanned".into()
            })
        );

        let junk = dir.path().join("junk.sock");
        fake(&junk, Some(b"hello\n"));
        let e = call(&junk, Request::Reload).await.unwrap_err();
        assert!(matches!(e, ClientError::Protocol { .. }), "{e:?}");

        let closed = dir.path().join("closed.sock");
        fake(&closed, Some(b""));
        let e = call(&closed, Request::Reload).await.unwrap_err();
        assert!(
            e.to_string()
                .ends_with("the connection was closed without an answer"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("silent.sock");
        fake(&path, None);
        let e = call_with(
            &path,
            Request::Reload,
            CONNECT_TIMEOUT,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Timeout {
                    waiting_for: "waiting for the answer",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
