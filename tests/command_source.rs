//! Command streams against real children: lines from stdout, restarts with
//! backoff after the child exits, overlong and binary lines, and the child
//! killed when the source is dropped. (The test's argv runs `sh -c` on
//! purpose; the source itself never adds a shell.)

use std::path::Path;
use std::time::Duration;

use banwarden::source::command::{CommandConfig, CommandSource};
use banwarden::source::SourceEvent;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// How long to wait for something that should happen within a second.
const WAIT: Duration = Duration::from_secs(10);

/// A running source and everything it reported so far.
struct Run {
    src: Option<CommandSource>,
    rx: mpsc::Receiver<SourceEvent>,
    lines: Vec<Vec<u8>>,
    offsets: Vec<u64>,
    skipped: u64,
    errors: Vec<String>,
}

fn start(argv: &[&str], max_line: usize) -> Run {
    let (tx, rx) = mpsc::channel(64);
    let cfg = CommandConfig {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        max_line,
        backoff_max: Duration::from_millis(400),
    };
    Run {
        src: Some(CommandSource::spawn_with(3, cfg, tx)),
        rx,
        lines: vec![],
        offsets: vec![],
        skipped: 0,
        errors: vec![],
    }
}

impl Run {
    fn record(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Lines {
                source,
                path,
                data,
                pos,
                ..
            } => {
                assert_eq!(source, 3);
                assert_eq!(path.as_path(), Path::new("/bin/sh"));
                assert!(data.ends_with(b"\n"), "no final newline: {data:?}");
                for line in data.split_inclusive(|&b| b == b'\n') {
                    self.lines.push(line[..line.len() - 1].to_vec());
                }
                self.offsets.push(pos.offset);
            }
            SourceEvent::Skipped { count, reason, .. } => {
                assert_eq!(reason, "line too long");
                self.skipped += count;
            }
            SourceEvent::Error { source, message } => {
                assert_eq!(source, 3);
                self.errors.push(message);
            }
            ev => panic!("unexpected event {ev:?}"),
        }
    }

    /// Records events until `done` holds; panics after `WAIT`.
    async fn until(&mut self, what: &str, done: impl Fn(&Run) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.record(ev),
                Ok(None) => panic!("source ended while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}: lines {:?}, errors {:?}, skipped {}",
                    self.text(),
                    self.errors,
                    self.skipped
                ),
            }
        }
    }

    fn text(&self) -> Vec<String> {
        let lossy = |l: &Vec<u8>| String::from_utf8_lossy(l).into_owned();
        self.lines.iter().map(lossy).collect()
    }

    fn count(&self, line: &str) -> usize {
        self.lines.iter().filter(|l| *l == line.as_bytes()).count()
    }
}

#[tokio::test]
async fn exited_child_is_restarted_and_its_lines_arrive_again() {
    let mut run = start(
        &[
            "/bin/sh",
            "-c",
            "echo fail 1; echo fail 2; echo oops >&2; exit 3",
        ],
        1024,
    );
    run.until("three runs", |r| r.count("fail 2") >= 3).await;
    let src = run.src.as_ref().unwrap();
    assert!(src.restarts() >= 2, "restarts: {}", src.restarts());
    assert!(run.errors.len() >= 2, "errors: {:?}", run.errors);
    let e = &run.errors[0];
    assert!(
        e.contains("/bin/sh exited (exit status: 3)") && e.contains("stderr: oops"),
        "{e}"
    );
    assert!(e.contains("restarting in 100ms"), "{e}");
    assert!(
        run.errors[1].contains("restarting in 200ms"),
        "{:?}",
        run.errors
    );
    // Every run delivers its lines in order, nothing lost or duplicated.
    let runs = run.lines.chunks(2).take(3);
    assert!(runs
        .clone()
        .all(|r| r == [b"fail 1".to_vec(), b"fail 2".to_vec()]));
    // Offsets count the bytes read over all runs.
    assert!(
        run.offsets.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        run.offsets
    );
    assert_eq!(run.offsets.last(), Some(&(14 * run.count("fail 2") as u64)));
}

#[tokio::test]
async fn overlong_lines_are_skipped_and_bytes_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // The child writes half a line, waits for the test, then finishes it.
    let script = format!(
        r"head -c 5000 /dev/zero | tr '\0' x; echo; printf 'bad \377\376 utf8\n'; printf 'last with'; while [ ! -e {go} ]; do sleep 0.01; done; printf 'out newline\nend\n'; exec sleep 60",
        go = go.display()
    );
    let mut run = start(&["/bin/sh", "-c", &script], 1024);
    run.until("the binary line", |r| !r.lines.is_empty()).await;
    assert_eq!(run.skipped, 1);
    std::fs::write(&go, b"").unwrap();
    run.until("the end line", |r| r.count("end") == 1).await;
    // The partial line was held back while the child ran, not cut in two.
    assert_eq!(
        run.lines,
        [
            b"bad \xff\xfe utf8".to_vec(),
            b"last without newline".to_vec(),
            b"end".to_vec()
        ]
    );
    assert!(run.errors.is_empty(), "{:?}", run.errors);
}

#[tokio::test]
async fn unterminated_last_line_is_delivered_when_the_child_exits() {
    let mut run = start(&["/bin/sh", "-c", "printf 'a\\nb'; exit 0"], 1024);
    run.until("the last line", |r| r.count("b") >= 1).await;
    assert_eq!(&run.lines[..2], [b"a".to_vec(), b"b".to_vec()]);
    run.until("the restart", |r| !r.errors.is_empty()).await;
    assert!(run.errors[0].contains("exit status: 0"), "{:?}", run.errors);
}

#[tokio::test]
async fn missing_program_is_reported_and_retried() {
    let (tx, mut rx) = mpsc::channel(8);
    let argv = vec!["/nonexistent/banwarden-test-program".to_string()];
    let src = CommandSource::spawn(5, argv, tx);
    let mut errors = Vec::new();
    let deadline = Instant::now() + WAIT;
    while errors.len() < 2 {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(SourceEvent::Error { source: 5, message })) => errors.push(message),
            other => panic!("expected errors, got {other:?}"),
        }
    }
    assert!(errors[0].contains("cannot start"), "{errors:?}");
    assert!(src.restarts() >= 2);
    assert_eq!(src.pid(), None);
}

fn alive(pid: u32) -> bool {
    // A zombie is dead too: only its exit status is left to collect.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn dropping_the_source_kills_the_child_and_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    // A grandchild in the background: it must die with the child.
    let script = format!(
        "sleep 300 & echo $! > {}; echo started; exec sleep 300",
        pidfile.display()
    );
    let mut run = start(&["/bin/sh", "-c", &script], 1024);
    run.until("the child to start", |r| r.count("started") == 1)
        .await;
    let pid = run.src.as_ref().unwrap().pid().expect("a running child");
    let grandchild: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid) && alive(grandchild));
    drop(run.src.take());
    let deadline = Instant::now() + WAIT;
    while alive(pid) || alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "child {pid} or grandchild {grandchild} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its reaper finished: the source's sender is gone, the channel ends.
    assert!(
        timeout_at(deadline, async { while run.rx.recv().await.is_some() {} })
            .await
            .is_ok()
    );
}
