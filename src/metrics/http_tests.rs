//! Unit tests of the scrape endpoint.

use super::*;
use crate::metrics::tests::value;

async fn start(limits: Limits) -> (SocketAddr, Arc<Metrics>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let task = tokio::spawn(accept_loop(listener, metrics.clone(), limits));
    (addr, metrics, task)
}

/// Sends `request` and reads the whole answer (the server closes).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("server answered in time")
        .expect("read the answer");
    String::from_utf8(out).unwrap()
}

fn split(resp: &str) -> (&str, &str) {
    resp.split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end in {resp:?}"))
}

#[tokio::test]
async fn get_metrics_serves_the_rendered_text() {
    let (addr, metrics, task) = start(LIMITS).await;
    metrics.bans("sshd", 3);
    let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}")),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(value(body, r#"banwarden_bans_total{jail="sshd"}"#), "3");
    assert!(body.ends_with("# EOF\n"));

    // A query string is ignored, and a later update shows up.
    metrics.bans("sshd", 1);
    let resp = exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(value(body, r#"banwarden_bans_total{jail="sshd"}"#), "4");
    task.abort();
}

#[tokio::test]
async fn head_request_gets_headers_only() {
    let (addr, _m, task) = start(LIMITS).await;
    let resp = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("Content-Length: 0"), "{head}");
    assert_eq!(body, "");
    task.abort();
}

#[tokio::test]
async fn other_path_is_404_with_a_hint() {
    let (addr, _m, task) = start(LIMITS).await;
    let resp = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = split(&resp);
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(body.contains("/metrics"), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    let resp = exchange(addr, b"GET /metricsx HTTP/1.1\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
    task.abort();
}

#[tokio::test]
async fn non_get_is_405() {
    let (addr, _m, task) = start(LIMITS).await;
    let resp = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let (head, _) = split(&resp);
    assert!(
        head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nAllow: GET, HEAD"), "{head}");
    let resp = exchange(addr, b"DELETE / HTTP/1.1\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 405 "), "{resp}");
    task.abort();
}

#[tokio::test]
async fn oversized_head_is_431_and_the_server_goes_on() {
    let (addr, _m, task) = start(LIMITS).await;
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 16 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    let resp = exchange(addr, &req).await;
    assert!(
        resp.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{resp}"
    );
    let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    task.abort();
}

#[tokio::test]
async fn head_just_under_the_cap_is_served() {
    let (addr, _m, task) = start(LIMITS).await;
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    let pad = LIMITS.max_head - req.len() - 4;
    req.extend(std::iter::repeat_n(b'a', pad));
    req.extend_from_slice(b"\r\n\r\n");
    assert_eq!(req.len(), LIMITS.max_head);
    let resp = exchange(addr, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    task.abort();
}

#[tokio::test]
async fn garbage_is_400_and_the_server_goes_on() {
    let (addr, _m, task) = start(LIMITS).await;
    for req in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"G\xc3\xa9T /metrics HTTP/1.1\r\n\r\n",
    ] {
        let resp = exchange(addr, req).await;
        assert!(
            resp.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{req:?}: {resp}"
        );
    }
    // The client closes half-way through its head.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    // A client that connects and closes without a byte gets nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());

    let resp = exchange(addr, b"GET /metrics HTTP/1.1\n\n").await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    task.abort();
}

#[tokio::test]
async fn silent_client_times_out_with_408() {
    let limits = Limits {
        head_timeout: Duration::from_millis(200),
        ..LIMITS
    };
    let (addr, _m, task) = start(limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("server gave up on the client")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    task.abort();
}

#[tokio::test]
async fn connections_are_handled_concurrently() {
    let (addr, _m, task) = start(LIMITS).await;
    // A client that says nothing must not hold up the next one.
    let _idle = TcpStream::connect(addr).await.unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(2),
        exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n"),
    )
    .await
    .expect("second client served while the first is idle");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    task.abort();
}

#[tokio::test]
async fn serve_binds_and_serves() {
    // Find a free port, release it, and serve there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let metrics = Metrics::new();
    metrics.set_active_bans("sshd", 2);
    let task = serve(addr, metrics).await.unwrap();
    let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, body) = split(&resp);
    assert_eq!(value(body, r#"banwarden_active_bans{jail="sshd"}"#), "2");
    task.abort();
    let _ = task.await;
    // Aborting the task closes the listener.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = serve(addr, Metrics::new()).await.unwrap_err();
    let MetricsError::Bind {
        addr: got,
        ref source,
    } = err;
    assert_eq!(got, addr);
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
}

#[tokio::test]
async fn read_head_stops_at_the_blank_line_across_reads() {
    // The terminator split over two reads is still found.
    let (mut a, mut b) = tokio::io::duplex(64);
    let reader = tokio::spawn(async move { read_head(&mut b, 8192).await });
    a.write_all(b"GET / HTTP/1.1\r\n\r").await.unwrap();
    // On this one-thread runtime, yielding lets the reader take the first part.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    a.write_all(b"\nbody").await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the head's end was found")
        .unwrap()
        .unwrap();
    assert_eq!(head, b"GET / HTTP/1.1");
}

#[test]
fn head_end_finds_either_terminator() {
    assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(14));
    assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
}
