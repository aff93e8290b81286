//! A small real HTTP/1.1 server for webhook tests, listening on loopback
//! inside a test's network namespace (bound from a thread that joined it),
//! recording every request; over TLS (rustls) when started with a
//! certificate (see `tls`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use super::tls::TlsFiles;

/// How the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These statuses in turn, the last one from then on.
    Statuses(Vec<u16>),
    /// Reads the request and never answers (a hung endpoint).
    Hang,
}

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

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub struct HttpServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    /// Listens on 127.0.0.1 (a free port) inside network namespace `ns`.
    pub fn start_in(ns: &str, reply: Reply) -> HttpServer {
        HttpServer::spawn(Some(format!("/run/netns/{ns}")), reply, None)
    }

    /// [`start_in`](Self::start_in), speaking HTTPS with `tls`'s server
    /// certificate: a client that does not trust its CA fails the handshake
    /// and is never recorded.
    pub fn start_tls_in(ns: &str, reply: Reply, tls: &TlsFiles) -> HttpServer {
        HttpServer::spawn(
            Some(format!("/run/netns/{ns}")),
            reply,
            Some(tls.server_config()),
        )
    }

    /// Listens on 127.0.0.1 (a free port) in the test's own namespace.
    pub fn start(reply: Reply) -> HttpServer {
        HttpServer::spawn(None, reply, None)
    }

    fn spawn(
        netns: Option<String>,
        reply: Reply,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> HttpServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            if let Some(path) = netns {
                let f = std::fs::File::open(&path).expect("open netns");
                // SAFETY: setns on this thread only, with a valid namespace fd.
                let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into {path}");
            }
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind in netns");
            tx.send(listener.local_addr().expect("addr").port())
                .expect("send port");
            let mut held: Vec<Box<dyn Send>> = Vec::new();
            let mut n = 0;
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let mut conn: Box<dyn Stream> = match &tls {
                    None => Box::new(conn),
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(Arc::clone(config)) else {
                            continue;
                        };
                        Box::new(rustls::StreamOwned::new(session, conn))
                    }
                };
                let Some(s) = read_request(&mut conn) else {
                    continue;
                };
                log.lock().expect("lock").push(s);
                n += 1;
                match &reply {
                    Reply::Hang => held.push(Box::new(conn)),
                    Reply::Statuses(list) => {
                        let status = list.get(n - 1).or(list.last()).copied().unwrap_or(200);
                        let mut c = conn;
                        // A rate limit says when to come back.
                        let extra = if status == 429 {
                            "Retry-After: 120\r\n"
                        } else {
                            ""
                        };
                        let _ = write!(
                            c,
                            "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = c.flush();
                    }
                }
            }
        });
        let port = rx.recv().expect("server port");
        HttpServer { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A connection, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn read_request(conn: &mut Box<dyn Stream>) -> Option<Seen> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    let mut len = 0usize;
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
    r.read_exact(&mut body).ok()?;
    Some(Seen {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
