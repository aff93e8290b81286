//! The file tailer against real files: rotation styles, late files, partial,
//! invalid and overlong lines, start-at-end and resuming from saved positions.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::time::Duration;

use banwarden::source::FilePos;
use common::tail::{append, fnv1a, follow, setup, start, WAIT};
use tempfile::TempDir;
use tokio::time::{timeout_at, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn starts_at_the_end_of_existing_files() {
    let (_dir, log) = setup(b"old1\nold2\npar");
    let mut t = follow(&log);
    append(&log, b"tial\nnew\n");
    t.sync(&log, "end").await;
    // The line being written at start is delivered whole, never as a fragment.
    assert_eq!(t.texts(), ["partial", "new", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_delivers_without_waiting_for_the_poll() {
    let (_dir, log) = setup(b"");
    let mut t = start(&[&log], vec![], 1024, Duration::from_secs(3600));
    append(&log, b"fast\n");
    t.wait_line("fast").await;
    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).unwrap();
    append(&log, b"after rename\n");
    t.wait_line("after rename").await;
    assert_eq!(t.texts(), ["fast", "after rename"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_written_in_pieces_is_delivered_once_complete() {
    let (dir, log) = setup(b"");
    // A second file, polled after app.log in every pass: once two markers
    // written one after the other have arrived through it, a whole pass has
    // read app.log since the piece was written.
    let probe = dir.path().join("zz-probe.log");
    fs::write(&probe, b"").unwrap();
    let mut t = start(&[&log, &probe], vec![], 1024, Duration::from_millis(200));
    for (i, piece) in ["hel", "lo ", "wor"].iter().enumerate() {
        append(&log, piece.as_bytes());
        t.sync(&probe, &format!("{i}a")).await;
        t.sync(&probe, &format!("{i}b")).await;
    }
    let from_log = |t: &common::tail::Tail| {
        t.lines
            .iter()
            .filter(|(p, _)| *p == log)
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        from_log(&t).is_empty(),
        "fragment delivered: {:?}",
        t.texts()
    );
    append(&log, b"ld\n");
    t.wait_line("hello world").await;
    t.sync(&log, "end").await;
    assert_eq!(from_log(&t), ["hello world", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_passes_through_untouched() {
    let (_dir, log) = setup(b"");
    let mut t = follow(&log);
    append(&log, b"\xff\xfe bad \xc3\x28 bytes\n");
    t.sync(&log, "end").await;
    assert_eq!(t.lines[0].1, b"\xff\xfe bad \xc3\x28 bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_lines_are_skipped_and_counted() {
    let (_dir, log) = setup(b"");
    let mut t = start(&[&log], vec![], 16, Duration::from_millis(200));
    append(&log, b"short\n");
    append(&log, &[b'x'; 40]);
    append(&log, &[b'y'; 40]);
    append(&log, b"\nafter\n");
    append(&log, &[b'z'; 17]);
    append(&log, b"\nexactly sixteen!\n");
    t.sync(&log, "end").await;
    t.wait_for("2 skipped lines", |t| t.skipped >= 2).await;
    assert_eq!(t.texts(), ["short", "after", "exactly sixteen!", "end"]);
    assert_eq!(t.skipped, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_and_create_finishes_the_old_file_then_reads_the_new_one() {
    let (_dir, log) = setup(b"history\n");
    let mut t = follow(&log);
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"1\n").unwrap();
    t.wait_line("1").await;
    writer.write_all(b"2\n").unwrap();
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    writer.write_all(b"3 after rename\n").unwrap(); // still in the old inode
    fs::write(&log, b"4 new file\n").unwrap();
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["1", "2", "3 after rename", "4 new file", "end"]);
    assert!(t.rotated_as(&log, "renamed"), "rotated: {:?}", t.rotated);
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_restarts_at_zero() {
    let (_dir, log) = setup(b"");
    let mut t = follow(&log);
    append(&log, b"first line\nsecond line\n");
    t.wait_line("second line").await;
    fs::copy(&log, log.with_extension("log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"x\n");
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["first line", "second line", "x", "end"]);
    assert!(t.rotated_as(&log, "truncated"), "rotated: {:?}", t.rotated);
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_is_seen_even_when_the_file_regrew_past_the_old_size() {
    let (_dir, log) = setup(b"");
    let mut t = follow(&log);
    append(&log, b"a\nb\n");
    t.wait_line("b").await;
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"after truncation, a much longer first line\n");
    t.sync(&log, "end").await;
    assert_eq!(
        t.texts(),
        [
            "a",
            "b",
            "after truncation, a much longer first line",
            "end"
        ]
    );
    assert!(t.rotated_as(&log, "truncated"), "rotated: {:?}", t.rotated);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_recreate_reads_the_new_file_from_its_beginning() {
    let (_dir, log) = setup(b"");
    let mut t = follow(&log);
    append(&log, b"old\n");
    t.wait_line("old").await;
    fs::remove_file(&log).unwrap();
    fs::write(&log, b"new 1\nnew 2\n").unwrap();
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["old", "new 1", "new 2", "end"]);
    assert!(t.rotated_as(&log, "recreated"), "rotated: {:?}", t.rotated);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_directories_created_after_start_are_read_from_the_beginning() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("app.log");
    let nested = dir.path().join("not/yet/there.log");
    // A file present at start: once a line written to it arrives, the
    // source has made its first scan (which found neither path).
    let probe = dir.path().join("probe.log");
    fs::write(&probe, b"").unwrap();
    let mut t = start(
        &[&log, &nested, &probe],
        vec![],
        1024,
        Duration::from_millis(200),
    );
    t.sync(&probe, "started").await;
    fs::write(&log, b"one\ntwo\n").unwrap();
    t.wait_line("two").await;
    fs::create_dir_all(nested.parent().unwrap()).unwrap();
    fs::write(&nested, b"deep\n").unwrap();
    t.wait_line("deep").await;
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["started", "one", "two", "deep", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn globs_follow_new_files_and_renames_without_duplicates() {
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("app.log");
    let old = dir.path().join("app.log.1");
    fs::write(&log, b"history\n").unwrap();
    let mut t = start(
        &[&dir.path().join("app.log*")],
        vec![],
        1024,
        Duration::from_millis(200),
    );
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"1\n").unwrap();
    t.wait_line("1").await;
    fs::rename(&log, &old).unwrap(); // app.log.1 matches too: must not be read again
    writer.write_all(b"2\n").unwrap();
    fs::write(&log, b"3\n").unwrap();
    t.sync(&log, "end new").await;
    t.sync(&old, "end old").await;
    let mut texts = t.texts();
    texts.sort();
    assert_eq!(texts, ["1", "2", "3", "end new", "end old"]);
    assert!(!t.texts().contains(&"history".to_string()));
}

/// Follows `log`, appends one line, and returns the position the tailer
/// reported once it delivered it (the daemon's saved position on a stop).
async fn position_after_one_line(log: &std::path::Path) -> FilePos {
    let mut t = follow(log);
    append(log, b"a\n");
    t.wait_line("a").await;
    t.last_pos[log].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_delivers_what_was_written_while_down_exactly_once() {
    let (_dir, log) = setup(b"before\n");
    let mut t = follow(&log);
    append(&log, b"a\n");
    t.wait_line("a").await;
    let pos = t.last_pos[&log].clone();
    assert_eq!(pos.offset, fs::metadata(&log).unwrap().len());
    drop(t);
    append(&log, b"b while down\nc while down\n");
    let mut t = start(&[&log], vec![pos], 1024, Duration::from_millis(200));
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["b while down", "c while down", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_is_refused_when_the_file_was_rotated_while_down() {
    let (_dir, log) = setup(b"before\n");
    let pos = position_after_one_line(&log).await;
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    fs::write(&log, b"new first\nnew second\n").unwrap();
    let mut t = start(&[&log], vec![pos], 1024, Duration::from_millis(200));
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["new first", "new second", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_rotated_while_down_is_finished_under_its_new_name_when_a_glob_covers_it() {
    let (dir, log) = setup(b"before\n");
    let pos = position_after_one_line(&log).await;
    append(&log, b"b written before the rotation\n");
    let old = log.with_extension("log.1");
    fs::rename(&log, &old).unwrap();
    fs::write(&log, b"new first\n").unwrap();
    let glob = dir.path().join("app.log*");
    let mut t = start(&[&glob], vec![pos], 1024, Duration::from_millis(200));
    t.sync(&log, "end new").await;
    t.sync(&old, "end old").await;
    let mut texts = t.texts();
    texts.sort();
    assert_eq!(
        texts,
        [
            "b written before the rotation",
            "end new",
            "end old",
            "new first"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_is_refused_when_the_first_line_changed_in_place() {
    let (_dir, log) = setup(b"before\n");
    let pos = position_after_one_line(&log).await;
    // Same inode, longer than the saved offset, but no longer the same file.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"rewritten first line\nsecond\n");
    assert!(fs::metadata(&log).unwrap().len() > pos.offset);
    let mut t = start(&[&log], vec![pos], 1024, Duration::from_millis(200));
    t.sync(&log, "end").await;
    assert_eq!(t.texts(), ["rewritten first line", "second", "end"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn positions_report_every_followed_file() {
    let (_dir, log) = setup(b"head line\nmore\n");
    let t = follow(&log);
    let positions = t.src.as_ref().unwrap().positions();
    assert_eq!(positions.len(), 1, "{positions:?}");
    let meta = fs::metadata(&log).unwrap();
    assert_eq!(positions[0].path, log);
    assert_eq!(positions[0].offset, meta.len());
    assert_eq!(positions[0].fingerprint, fnv1a(b"head line"));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (positions[0].dev, positions[0].ino),
        (meta.dev(), meta.ino())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_source_stops_its_thread() {
    let (_dir, log) = setup(b"");
    let mut t = follow(&log);
    append(&log, b"a\n");
    t.wait_line("a").await;
    t.src = None;
    // The thread owns the only sender: the channel closes once it has exited.
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout_at(deadline, t.rx.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => panic!("the source thread did not stop"),
        }
    }
    let _ = File::open(&log).unwrap();
}
