//! Where a file seen for the first time starts: after its last complete line
//! (`tail_start`), or, when the daemon gives a date reader and a time, at
//! the first line dated at or after that time (`seek_to_time`, a binary
//! search on line dates like fail2ban's `seekToTime`), so failures written
//! before the first start or while the daemon was down are counted.
//!
//! It only reads bytes and asks the given date reader about whole lines; it
//! never matches lines and never decides what is a failure.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::UnixTime;

/// Reads a line's time (`None`: no date on it). The daemon builds it from the
/// jails' filters; the line comes without its `\n`.
pub type DateReader = Arc<dyn Fn(&[u8]) -> Option<UnixTime> + Send + Sync>;

/// Start new files at the first line dated at or after `since`.
#[derive(Clone)]
pub struct SeekByTime {
    pub since: UnixTime,
    pub date: DateReader,
}

impl std::fmt::Debug for SeekByTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekByTime")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

/// Below this many bytes the search reads the lines one by one.
const LINEAR: u64 = 64 * 1024;
/// A probe reads at most this far for a dated line.
const PROBE: usize = 64 * 1024;

/// Where "the end" is for a file seen at start: just after its last `\n`, so a
/// line being written right now is delivered once complete. Returns the offset
/// and whether that last line is already over the cap (to be skipped).
pub(super) fn tail_start(file: &File, len: u64, max_line: usize) -> io::Result<(u64, bool)> {
    let want = len.min(max_line.saturating_add(1).min(1 << 20) as u64);
    let mut tail = vec![0; want as usize];
    file.read_exact_at(&mut tail, len - want)?;
    Ok(match memchr::memrchr(b'\n', &tail) {
        Some(i) => (len - want + i as u64 + 1, false),
        None if want == len && len <= max_line as u64 => (0, false),
        None => (len, true),
    })
}

/// The start of the first line in `0..end` (`end` just after a `\n`) whose
/// date is at or after `since`, or `end` if none is. Lines without a date
/// are passed over. Lines are assumed to be in time order, as logs are; where
/// they are not, the answer is one place where the order holds.
pub(super) fn seek_to_time(
    file: &File,
    end: u64,
    since: UnixTime,
    date: &dyn Fn(&[u8]) -> Option<UnixTime>,
) -> io::Result<u64> {
    // Invariant: `lo` is a line start with every dated line before it older
    // than `since`; `hi` is a line start (or `end`) whose line is not older.
    let (mut lo, mut hi) = (0u64, end);
    while hi - lo > LINEAR {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = next_line_start(file, mid, hi)? else {
            break;
        };
        match first_dated(file, start, hi, date)? {
            None => hi = start,
            Some((at, _, ts)) if ts >= since => hi = at,
            Some((_, next, _)) => lo = next,
        }
    }
    // Few bytes left: read them line by line.
    let mut at = lo;
    while at < hi {
        match first_dated(file, at, hi, date)? {
            Some((line, _, ts)) if ts >= since => return Ok(line),
            Some((_, next, _)) => at = next,
            None => return Ok(hi),
        }
    }
    Ok(hi)
}

/// The first line start at or after `from` and before `limit`.
fn next_line_start(file: &File, from: u64, limit: u64) -> io::Result<Option<u64>> {
    if from == 0 {
        return Ok(Some(0));
    }
    let mut at = from - 1;
    let mut buf = vec![0; PROBE];
    while at < limit {
        let n = read_some(file, &mut buf, at, limit)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            let start = at + i as u64 + 1;
            return Ok((start < limit).then_some(start));
        }
        at += n as u64;
    }
    Ok(None)
}

/// The first dated line starting in `from..limit` (`from` a line start),
/// reading at most [`PROBE`] bytes: its start, the next line's start and
/// its time.
fn first_dated(
    file: &File,
    from: u64,
    limit: u64,
    date: &dyn Fn(&[u8]) -> Option<UnixTime>,
) -> io::Result<Option<(u64, u64, UnixTime)>> {
    let mut buf = vec![0; PROBE];
    let n = read_some(file, &mut buf, from, limit)?;
    let mut at = 0usize;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..n]) {
        let line = &buf[at..at + i];
        let next = at + i + 1;
        if let Some(ts) = date(line) {
            return Ok(Some((from + at as u64, from + next as u64, ts)));
        }
        at = next;
    }
    Ok(None)
}

/// Reads up to `buf.len()` bytes at `at`, not past `limit`.
fn read_some(file: &File, buf: &mut [u8], at: u64, limit: u64) -> io::Result<usize> {
    let want = buf.len().min(limit.saturating_sub(at) as usize);
    let mut n = 0;
    while n < want {
        match file.read_at(&mut buf[n..want], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Lines `t=N` dated N; `undated` lines in between have no date.
    fn dated(line: &[u8]) -> Option<UnixTime> {
        std::str::from_utf8(line.strip_prefix(b"t=")?)
            .ok()?
            .parse()
            .ok()
    }

    fn file_of(text: &str) -> (tempfile::NamedTempFile, File, u64) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(text.as_bytes()).unwrap();
        let f = tmp.reopen().unwrap();
        (tmp, f, text.len() as u64)
    }

    #[test]
    fn tail_start_begins_after_the_last_complete_line() {
        let (_t, file, _) = file_of("old\nolder\npart");
        assert_eq!(tail_start(&file, 14, 100).unwrap(), (10, false));
        assert_eq!(tail_start(&file, 10, 100).unwrap(), (10, false));
        assert_eq!(tail_start(&file, 3, 100).unwrap(), (0, false));
        assert_eq!(tail_start(&file, 14, 3).unwrap(), (14, true));
        assert_eq!(tail_start(&file, 0, 100).unwrap(), (0, false));
    }

    #[test]
    fn seek_finds_the_first_line_at_or_after_the_time_in_small_and_large_files() {
        for (lines, pad) in [(10usize, 0usize), (20_000, 40)] {
            let mut text = String::new();
            let mut starts = Vec::new();
            for i in 0..lines {
                starts.push(text.len() as u64);
                text.push_str(&format!("t={}\n", 1000 + i));
                if i % 3 == 0 {
                    text.push_str(&format!("undated {}\n", "x".repeat(pad)));
                }
            }
            let (_t, file, end) = file_of(&text);
            for want in [0, 1, lines / 2, lines - 1] {
                let since = 1000 + want as i64;
                assert_eq!(
                    seek_to_time(&file, end, since, &dated).unwrap(),
                    starts[want],
                    "{lines} lines, since {since}"
                );
            }
            assert_eq!(seek_to_time(&file, end, 0, &dated).unwrap(), 0);
            assert_eq!(seek_to_time(&file, end, 1_000_000, &dated).unwrap(), end);
        }
    }

    #[test]
    fn seek_in_a_file_without_dates_starts_at_the_end() {
        let (_t, file, end) = file_of("Login failure 1\nLogin failure 2\n");
        assert_eq!(seek_to_time(&file, end, 5, &dated).unwrap(), end);
        assert_eq!(seek_to_time(&file, 0, 5, &dated).unwrap(), 0);
    }
}
