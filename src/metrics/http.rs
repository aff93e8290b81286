//! The scrape endpoint: a tiny HTTP/1.1 server that answers `GET /metrics`
//! (and `HEAD`) with the rendered series.
//!
//! It owns the connection handling and its limits (head size, timeouts,
//! connections at once). It must not touch the series themselves beyond
//! `Metrics::render`, nor block the engine: each client is its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::{Metrics, MetricsError, CONTENT_TYPE};

/// Limits of the scrape endpoint.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Largest request head read; past it the answer is 431.
    max_head: usize,
    /// Time a client has to send its request head; past it the answer is 408.
    head_timeout: Duration,
    /// Time the response has to be written.
    write_timeout: Duration,
    /// Connections handled at once; more wait in the listen backlog.
    max_connections: usize,
}

const LIMITS: Limits = Limits {
    max_head: 8 * 1024,
    head_timeout: Duration::from_secs(5),
    write_timeout: Duration::from_secs(5),
    max_connections: 32,
};

/// After answering, how much of what the client still sends is read and
/// dropped (so that closing does not reset the connection before the client
/// has read the answer), and for how long.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Binds `addr` and serves `GET /metrics` on it until the returned task is
/// aborted. The error names the address when it cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    Ok(serve_listener(listener, metrics))
}

/// Serves `GET /metrics` on an already bound listener (so a caller can bind
/// port 0 and read the port back) until the returned task is aborted.
/// Aborting it also ends the connections it is still handling.
pub fn serve_listener(listener: TcpListener, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, metrics, LIMITS))
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Owning the connection tasks here means aborting this task drops them.
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                conns.spawn(async move {
                    handle(stream, &metrics, limits).await;
                    tracing::trace!(%peer, "metrics connection done");
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, metrics: &Metrics, limits: Limits) {
    let response =
        match tokio::time::timeout(limits.head_timeout, read_head(&mut stream, limits.max_head))
            .await
        {
            Err(_) => Response::plain(
                408,
                "Request Timeout",
                "request head not received in time\n",
            ),
            Ok(Err(HeadError::Io)) => return,
            Ok(Err(HeadError::TooLarge)) => Response::plain(
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
            ),
            Ok(Err(HeadError::Incomplete)) => {
                Response::plain(400, "Bad Request", "incomplete request head\n")
            }
            Ok(Ok(head)) => route(&head, metrics),
        };
    let bytes = response.into_bytes();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(limits.write_timeout, write).await {
        Ok(Ok(())) => drain(&mut stream).await,
        Ok(Err(e)) => tracing::debug!("metrics endpoint: cannot answer: {e}"),
        Err(_) => tracing::debug!("metrics endpoint: client too slow to read the answer"),
    }
}

/// Reads and drops what the client still sends, for a bounded amount and
/// time, so that closing does not reset the connection under an unread
/// answer.
async fn drain<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = [0u8; 4096];
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while left > 0 {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The head did not end within the size limit.
    TooLarge,
    /// The client closed before the head ended.
    Incomplete,
    /// The connection failed.
    Io,
}

/// Reads a request head (up to and without the blank line), at most `max`
/// bytes. Bytes after the blank line, if any arrived, are ignored.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = max.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let n = match r.read(&mut chunk[..room]).await {
            Ok(0) if buf.is_empty() => return Err(HeadError::Io),
            Ok(0) => return Err(HeadError::Incomplete),
            Ok(n) => n,
            Err(_) => return Err(HeadError::Io),
        };
        // A terminator may straddle two reads: look back three bytes.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf[from..]) {
            buf.truncate(from + end);
            return Ok(buf);
        }
    }
}

/// Where the head's blank line starts: `\r\n\r\n`, or `\n\n` from lenient
/// clients.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n");
    let lf = memchr::memmem::find(buf, b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
    head_only: bool,
}

impl Response {
    fn plain(status: u16, reason: &'static str, body: &str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: body.to_owned(),
            head_only: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(h) = self.extra_header {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// Answers one request head.
fn route(head: &[u8], metrics: &Metrics) -> Response {
    let bad = || Response::plain(400, "Bad Request", "malformed request line\n");
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    let line = &head[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return bad();
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad();
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return bad();
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Response::plain(
                405,
                "Method Not Allowed",
                "only GET is served here: GET /metrics\n",
            );
            r.extra_header = Some("Allow: GET, HEAD");
            return r;
        }
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        let mut r = Response::plain(404, "Not Found", "not found: metrics are at /metrics\n");
        r.head_only = head_only;
        return r;
    }
    Response {
        status: 200,
        reason: "OK",
        content_type: CONTENT_TYPE,
        extra_header: None,
        body: metrics.render(),
        head_only,
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
