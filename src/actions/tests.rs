//! Actions against a real HTTP server on loopback (a few lines of std::net
//! below) and real commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::config::Secret;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON body");
        v["events"].as_array().expect("events").clone()
    }
}

/// A loopback HTTP/1.1 server answering with `statuses` in turn (the last
/// one from then on), recording every request.
pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    pub fn start(statuses: &[u16]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!(
            "http://{}/hook/secret-path",
            listener.local_addr().expect("addr")
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let statuses = statuses.to_vec();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut headers = Vec::new();
                let mut line = String::new();
                let mut len = 0usize;
                r.read_line(&mut line).expect("request line");
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        let (k, v) = (k.trim().to_string(), v.trim().to_string());
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                log.lock().expect("lock").push(Seen {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let status = statuses.get(n).or(statuses.last()).copied().unwrap_or(200);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Server { url, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn spec(kind: ActionKind) -> ActionSpec {
    ActionSpec {
        name: "t".into(),
        kind,
        on_ban: true,
        on_unban: true,
        batch_max: 100,
        batch_wait: Duration::from_millis(300),
        min_interval: Duration::ZERO,
        retries: 3,
        backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        queue: 100,
    }
}

fn webhook(url: &str) -> ActionKind {
    ActionKind::Webhook {
        url: url.into(),
        headers: vec![],
        template: None,
        content_type: "application/json".into(),
        ca_certs: vec![],
    }
}

fn ban(addr: &str) -> ActionEvent {
    let net: IpNet = addr.parse::<std::net::IpAddr>().expect("addr").into();
    ActionEvent::new(
        EventKind::Ban,
        "app",
        net,
        1_700_000_000,
        Some(1_700_000_600),
        3,
        1,
        vec![format!("Login failure {addr}")],
    )
}

/// Starts one action of jail `app` outside a config.
fn actions_with(spec: ActionSpec) -> Actions {
    Actions {
        running: vec![super::spawn("app", spec)],
        full_logged: HashMap::new(),
        maxmatches: HashMap::new(),
    }
}

async fn until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Waits until `counter` reads `n`, at most `within`; whether it did.
async fn reaches(counter: &AtomicU64, n: u64, within: Duration) -> bool {
    until(within, || counter.load(Ordering::Relaxed) == n).await
}

fn counters(a: &Actions) -> Arc<ActionCounters> {
    a.counters()[0].2.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_close_together_go_in_one_post_and_batch_max_splits_them() {
    let server = Server::start(&[200]);
    let mut a = actions_with(spec(webhook(&server.url)));
    for i in 1..=5 {
        a.notify(&ban(&format!("192.0.2.{i}")));
    }
    let c = counters(&a);
    assert!(reaches(&c.events_sent, 5, Duration::from_secs(10)).await);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "five bans within batch_wait: one call");
    let events = reqs[0].events();
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["address"], "192.0.2.1");
    assert_eq!(events[0]["event"], "ban");
    assert_eq!(events[0]["jail"], "app");
    assert_eq!(events[0]["failures"], 3);
    assert_eq!(events[0]["banned_at"], "2023-11-14T22:13:20Z");
    assert_eq!(events[0]["expires"], "2023-11-14T22:23:20Z");
    assert_eq!(events[0]["lines"][0], "Login failure 192.0.2.1");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));

    let server = Server::start(&[200]);
    let mut s = spec(webhook(&server.url));
    s.batch_max = 2;
    let mut a = actions_with(s);
    for i in 1..=5 {
        a.notify(&ban(&format!("192.0.2.{i}")));
    }
    let c = counters(&a);
    assert!(reaches(&c.events_sent, 5, Duration::from_secs(10)).await);
    let sizes: Vec<usize> = server.requests().iter().map(|r| r.events().len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_with_the_same_batch_and_a_4xx_is_not() {
    let server = Server::start(&[503, 500, 200]);
    let mut a = actions_with(spec(webhook(&server.url)));
    a.notify(&ban("192.0.2.7"));
    let c = counters(&a);
    assert!(reaches(&c.calls_ok, 1, Duration::from_secs(10)).await);
    assert_eq!(c.calls_failed.load(Ordering::Relaxed), 2);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.events()[0]["address"] == "192.0.2.7"));

    let server = Server::start(&[401]);
    let mut a = actions_with(spec(webhook(&server.url)));
    a.notify(&ban("192.0.2.8"));
    let c = counters(&a);
    assert!(reaches(&c.events_dropped, 1, Duration::from_secs(10)).await);
    assert_eq!(server.requests().len(), 1, "a 401 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_give_up_after_the_limit_and_min_interval_spaces_calls() {
    let server = Server::start(&[503]);
    let mut s = spec(webhook(&server.url));
    s.retries = 2;
    s.min_interval = Duration::from_millis(200);
    s.backoff = Duration::from_millis(1);
    let mut a = actions_with(s);
    let start = Instant::now();
    a.notify(&ban("192.0.2.9"));
    let c = counters(&a);
    assert!(reaches(&c.events_dropped, 1, Duration::from_secs(10)).await);
    assert_eq!(server.requests().len(), 3, "one call and two retries");
    // Three calls at least 200 ms apart.
    assert!(start.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_carry_their_secrets_and_templates_escape_json() {
    let server = Server::start(&[200]);
    let kind = ActionKind::Webhook {
        url: server.url.clone(),
        headers: vec![
            ("Authorization".into(), Secret("Bearer tok-123".into())),
            ("X-Title".into(), Secret("banwarden".into())),
        ],
        template: Some(r#"{"text": "{event} in {jail}: {addresses} ({count})"}"#.into()),
        content_type: "application/json".into(),
        ca_certs: vec![],
    };
    let mut a = actions_with(spec(kind));
    let mut odd = ban("192.0.2.10");
    odd.jail = "a\"b".into();
    a.notify(&ban("192.0.2.11"));
    let c = counters(&a);
    assert!(reaches(&c.calls_ok, 1, Duration::from_secs(10)).await);
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(r.header("x-title"), Some("banwarden"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("template gives JSON");
    assert_eq!(v["text"], "ban in app: 192.0.2.11 (1)");
    let body = webhook::render(r#"{"j": "{jail}"}"#, "application/json", &[odd]);
    let v: serde_json::Value = serde_json::from_str(&body).expect("escaped");
    assert_eq!(v["j"], "a\"b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gets_its_argv_and_the_batch_on_stdin() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    let argv = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        r#"printf '%s\n' "$1" > "$0.args"; cat > "$0""#.into(),
        out.display().to_string(),
        "arg with spaces; $(no shell)".into(),
    ];
    let mut a = actions_with(spec(ActionKind::Exec { argv }));
    a.notify(&ban("192.0.2.12"));
    let c = counters(&a);
    assert!(reaches(&c.calls_ok, 1, Duration::from_secs(10)).await);
    let args = std::fs::read_to_string(dir.path().join("out.args")).expect("args");
    assert_eq!(args, "arg with spaces; $(no shell)\n");
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("stdin")).expect("JSON");
    assert_eq!(stdin["events"][0]["address"], "192.0.2.12");
    assert_eq!(stdin["action"], "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_past_its_timeout_is_killed_and_retried() {
    let dir = tempfile::tempdir().expect("tmp");
    let runs = dir.path().join("runs");
    let argv = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        r#"echo run >> "$0"; exec sleep 30"#.into(),
        runs.display().to_string(),
    ];
    let mut s = spec(ActionKind::Exec { argv });
    s.timeout = Duration::from_millis(300);
    s.retries = 1;
    let mut a = actions_with(s);
    let start = Instant::now();
    a.notify(&ban("192.0.2.13"));
    let c = counters(&a);
    assert!(reaches(&c.events_dropped, 1, Duration::from_secs(20)).await);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "timeout not enforced"
    );
    assert_eq!(c.calls_failed.load(Ordering::Relaxed), 2);
    let n = std::fs::read_to_string(&runs)
        .expect("runs")
        .lines()
        .count();
    assert_eq!(n, 2, "one run and one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_never_waits_on_a_dead_endpoint() {
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("a")
        .port();
    let mut s = spec(webhook(&format!("http://127.0.0.1:{port}/x")));
    s.queue = 10;
    s.batch_max = 10;
    s.backoff = Duration::from_secs(60);
    let mut a = actions_with(s);
    let start = Instant::now();
    for i in 0..1000u32 {
        a.notify(&ban(&std::net::Ipv4Addr::from(0xC000_0200 + i).to_string()));
    }
    assert!(start.elapsed() < Duration::from_secs(1), "notify blocked");
    let c = counters(&a);
    let dropped = c.events_dropped.load(Ordering::Relaxed);
    assert!(
        dropped >= 900,
        "{dropped} dropped: the queue is not bounded"
    );
}

#[test]
fn retry_delay_doubles_honours_retry_after_and_is_capped() {
    let b = Duration::from_secs(2);
    assert_eq!(retry_delay(b, 1, None), Duration::from_secs(2));
    assert_eq!(retry_delay(b, 3, None), Duration::from_secs(8));
    assert_eq!(
        retry_delay(b, 1, Some(Duration::from_secs(30))),
        Duration::from_secs(30)
    );
    assert_eq!(retry_delay(b, 30, None), MAX_BACKOFF);
}

#[test]
fn nth_line_cuts_at_newlines() {
    assert_eq!(nth_line(b"a\nb\r\nc", 1).as_deref(), Some("b"));
    assert_eq!(nth_line(b"a\nb", 5), None);
}
