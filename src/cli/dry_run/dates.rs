//! Date detection for dry-run's line walk: `Filter::detect_date` on every
//! line, skipped when a line carries the very same timestamp bytes as the
//! line before it (most do: logs write many lines per second).
//!
//! Owns only that shortcut. It must never produce a date the detector would
//! not: when unsure it runs the detector. It parses nothing itself.

use crate::filter::date::{DateFormat, DateMatch};
use crate::filter::{Filter, Scratch};
use crate::UnixTime;

/// Bytes after a built-in date compared when they might extend it (a year,
/// a zone offset, more digits), with room to spare.
const DATE_MARGIN: usize = 8;

/// Where the parts of a built-in date stand in its line: what the detector's
/// answer depends on. Offsets into the line.
#[derive(Debug, Clone, Copy)]
struct DateWindow {
    /// The byte before the date.
    lo: usize,
    /// Just after `HH:MM:SS`.
    secs_end: usize,
    /// Just after a fraction of a second (`.123`, `,456`), or `secs_end`.
    frac_end: usize,
    /// End of the date.
    date_end: usize,
    /// End of the bytes after the date that must be equal (`date_end` when
    /// what follows cannot extend a date).
    tail_end: usize,
}

impl DateWindow {
    fn new(line: &[u8], d: DateMatch) -> Option<DateWindow> {
        if d.format == DateFormat::Custom || d.end > line.len() || d.start >= d.end {
            return None;
        }
        let hms = line[d.start..d.end].windows(8).rposition(|w| {
            w[0].is_ascii_digit()
                && w[1].is_ascii_digit()
                && w[2] == b':'
                && w[3].is_ascii_digit()
                && w[4].is_ascii_digit()
                && w[5] == b':'
                && w[6].is_ascii_digit()
                && w[7].is_ascii_digit()
        })?;
        let secs_end = d.start + hms + 8;
        let frac_end = skip_fraction(line, secs_end);
        if frac_end > d.end {
            return None;
        }
        let tail_end = if may_extend(line, d.end) {
            line.len().min(d.end + DATE_MARGIN)
        } else {
            d.end
        };
        Some(DateWindow {
            lo: d.start.saturating_sub(1),
            secs_end,
            frac_end,
            date_end: d.end,
            tail_end,
        })
    }
}

/// Could the bytes at `i` extend a date that ends there (a year, an offset,
/// more digits)? Anything else ends it for every built-in format.
fn may_extend(line: &[u8], i: usize) -> bool {
    let starts = |b: Option<&u8>| {
        b.is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'Z' | b'z' | b'+' | b'-'))
    };
    let c = line.get(i);
    starts(c) || (c == Some(&b' ') && starts(line.get(i + 1)))
}

/// Skips `[.,]digits` (at most twice, as in `.123,456`).
fn skip_fraction(line: &[u8], mut i: usize) -> usize {
    for _ in 0..2 {
        if matches!(line.get(i), Some(b'.' | b','))
            && line.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i += 1;
            while line.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    i
}

/// Slice equality for the few bytes around a date: eight bytes at a time
/// from the end (where the seconds are, the likeliest to differ), no call
/// into memcmp.
#[inline]
fn eq(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    if a.len() != b.len() {
        return false;
    }
    let (mut ra, mut rb) = (a.rchunks_exact(8), b.rchunks_exact(8));
    for (x, y) in (&mut ra).zip(&mut rb) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            return false;
        };
        if u64::from_ne_bytes(x) != u64::from_ne_bytes(y) {
            return false;
        }
    }
    ra.remainder()
        .iter()
        .zip(rb.remainder())
        .all(|(x, y)| x == y)
}

/// Equal but for the values of digits (a fraction of a second).
fn same_shape(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x == y || (x.is_ascii_digit() && y.is_ascii_digit()))
        }
        _ => false,
    }
}

/// Whether `line` would get the same date as `prev` (whose date stands at
/// `w`), without running the detector.
///
/// Consecutive log lines mostly share their timestamp to the second. The
/// built-in formats are parsed from the bytes around the date alone: the byte
/// before it, the date itself (a fraction of a second is read and dropped),
/// and what follows it only if that could extend it (a space then a digit or
/// sign, a digit, `Z`, a sign). With the detector's hint the previous line's
/// position is tried first. So a line identical to the previous one in those
/// bytes, up to the digits of the fraction, gets the identical `DateMatch`.
/// Never used with a `datepattern` (a regex may look anywhere).
/// `tests::cache_agrees_with_the_detector` holds this to the detector.
#[inline]
fn same_date(prev: &[u8], w: DateWindow, line: &[u8]) -> bool {
    eq(line.get(w.lo..w.secs_end), prev.get(w.lo..w.secs_end))
        && skip_fraction(line, w.secs_end) == w.frac_end
        && same_shape(
            line.get(w.secs_end..w.frac_end),
            prev.get(w.secs_end..w.frac_end),
        )
        && eq(
            line.get(w.frac_end..w.date_end),
            prev.get(w.frac_end..w.date_end),
        )
        && if w.tail_end > w.date_end {
            eq(
                line.get(w.date_end..line.len().min(w.date_end + DATE_MARGIN)),
                prev.get(w.date_end..w.tail_end),
            )
        } else {
            !may_extend(line, w.date_end)
        }
}

/// Date detection for the lines of one chunk, with the shortcut of [`same_date`].
pub struct Dates<'f> {
    filter: &'f Filter,
    now: UnixTime,
    cacheable: bool,
    /// The last detected date, its window, and where its line starts in the chunk.
    last: Option<(DateMatch, DateWindow, usize)>,
}

impl<'f> Dates<'f> {
    /// `cache: false` runs the detector on every line.
    pub fn new(filter: &'f Filter, now: UnixTime, cache: bool) -> Dates<'f> {
        Dates {
            filter,
            now,
            cacheable: cache && filter.spec.datepattern.is_none(),
            last: None,
        }
    }

    /// The date of `raw` (a line without its `\n`), which starts at `at` in
    /// `data`. Offsets are into `raw` without a final `\r`, as the filter
    /// sees it.
    #[inline]
    pub fn detect(
        &mut self,
        data: &[u8],
        at: usize,
        raw: &[u8],
        scratch: &mut Scratch,
    ) -> Option<DateMatch> {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some((d, w, prev_at)) = self.last {
            if let Some(prev) = data.get(prev_at..prev_at + w.tail_end) {
                if same_date(prev, w, line) {
                    return Some(d);
                }
            }
        }
        let d = self.filter.detect_date(raw, self.now, scratch);
        self.last = match d {
            Some(d) if self.cacheable => DateWindow::new(line, d).map(|w| (d, w, at)),
            _ => None,
        };
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterSpec;

    fn filter() -> Filter {
        Filter::compile(FilterSpec {
            name: "t".into(),
            failregex: vec!["<HOST>".into()],
            ..Default::default()
        })
        .unwrap()
    }

    /// Lines in the built-in formats with every variation the shortcut must
    /// notice: seconds, fractions (lengths, separators), years, offsets, what
    /// follows the date, the byte before it, invalid dates, line ends.
    fn variants() -> Vec<String> {
        let mut v = Vec::new();
        let heads = [
            "2024-03-10 00:00:0{s}",
            "2024-03-10 00:00:0{s},018",
            "2024-03-10 00:00:0{s},01",
            "2024-03-10 00:00:0{s}.018",
            "2024-03-10 00:00:0{s}.123,456",
            "2024-03-10T00:00:0{s}Z",
            "2024-03-10T00:00:0{s}.5+01:00",
            "2024-03-10T00:00:0{s}-0500",
            "2024-03-10T00:00:0{s}+02",
            "2024/03/10 00:00:0{s}",
            "Mar 10 00:00:0{s}",
            "Mar  1 00:00:0{s}",
            "Mar 1 00:00:0{s}",
            "Mar 10 00:00:0{s}.250",
            "Mar 10 00:00:0{s} 2023",
            "Mar 10 00:00:0{s}.5 2022",
            "Feb 30 00:00:0{s}",
            "Mar 10 25:00:0{s}",
            "x [10/Mar/2024:00:00:0{s} +0000]",
            "y [10/Mar/2024:00:00:0{s} -0130]",
            "z [10/Mar/2024:00:00:0{s}]",
            "[10/Mar/2024:00:00:0{s} +0000]",
            "a2024-03-10 00:00:0{s}",
        ];
        let tails = [
            "",
            " INFO x",
            " ERROR Login failure 1.2.3.4",
            " 2021 y",
            " 20211 y",
            "1",
            " +0100 y",
            " -x",
            "Z",
            "z tail",
            ".9 more",
            ",9",
            " web01 sshd[1]: x",
            " 10.0.0.1 sshd[2]: y",
            "] \"GET / HTTP/1.1\"",
        ];
        for h in heads {
            for s in ["0", "1"] {
                for t in tails {
                    v.push(format!("{}{t}", h.replace("{s}", s)));
                }
            }
        }
        v
    }

    #[test]
    fn cache_agrees_with_the_detector() {
        let f = filter();
        let lines = variants();
        // Every ordered pair of lines, as two consecutive lines of a chunk.
        for a in &lines {
            for b in &lines {
                let data = format!("{a}\n{b}\n");
                let (mut cached, mut plain) = (
                    Dates::new(&f, 1_717_200_000, true),
                    Dates::new(&f, 1_717_200_000, false),
                );
                let (mut s1, mut s2) = (Scratch::default(), Scratch::default());
                let bytes = data.as_bytes();
                let b_at = a.len() + 1;
                for (at, line) in [(0, a.as_bytes()), (b_at, b.as_bytes())] {
                    // (as raw lines, without their \n)
                    let x = cached.detect(bytes, at, line, &mut s1);
                    let y = plain.detect(bytes, at, line, &mut s2);
                    assert_eq!(
                        x,
                        y,
                        "after {a:?}: {line:?}",
                        line = String::from_utf8_lossy(line)
                    );
                }
            }
        }
    }

    #[test]
    fn cache_hits_on_repeated_seconds() {
        let f = filter();
        let data = b"2024-03-10 00:00:00,018 INFO a\n2024-03-10 00:00:00,217 ERROR b\n";
        let mut d = Dates::new(&f, 0, true);
        let mut s = Scratch::default();
        let first = d.detect(data, 0, &data[..30], &mut s).unwrap();
        assert!(d.last.is_some());
        let (prev_d, w, at) = d.last.unwrap();
        let second = &data[31..data.len() - 1];
        assert!(same_date(&data[at..at + w.tail_end], w, second));
        assert_eq!(prev_d, first);
    }
}
