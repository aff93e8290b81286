//! A per-stream date cache: the detector runs on a line unless the line
//! carries, where the detector would find a date, the same date bytes as the
//! last dated line of the stream but for the fraction of a second (and,
//! where that is exact, the seconds): most lines do, as logs write many
//! lines per second. Part of a stream's [`LineState`](super::LineState).
//!
//! Owns only that shortcut. It must never produce a date the detector would
//! not (so a line's date never depends on the lines before it): when unsure
//! it runs the detector. It parses nothing itself.

use crate::filter::date::{Anchor, DateDetector, DateFormat, DateMatch};
use crate::UnixTime;

/// Bytes after a built-in date compared when they might extend it (a year,
/// a zone offset, more digits), with room to spare.
const DATE_MARGIN: usize = 8;

/// Most bytes a window may span (the byte before a date, the date, a
/// tail): the longest built-in date with a zone and a tail fits with room.
const WINDOW_MAX: usize = 64;

/// Where the parts of a built-in date stand in its line, and the bytes of
/// that line the detector's answer depends on. Offsets into the line; in
/// another line the date may stand elsewhere (see [`same_date`]).
#[derive(Debug, Clone, Copy)]
struct DateWindow {
    /// The date's start.
    start: usize,
    /// The byte before the date (the date's start at the line's start).
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
    /// Where the seconds' two digits stand and their value, when another
    /// value gives the time plus the difference (see
    /// [`DateDetector::seconds_are_linear`]); else they must be equal.
    secs: Option<(usize, i64)>,
    /// Words the window spans.
    n: usize,
    /// The line's bytes `lo..tail_end`, eight at a time, zero-padded.
    words: [u64; WINDOW_MAX / 8],
    /// Which of those bytes must be equal: all but the digits of a fraction.
    mask: [u64; WINDOW_MAX / 8],
    /// `0x80` at the digits of a fraction (which must stay digits).
    digits: [u64; WINDOW_MAX / 8],
}

impl DateWindow {
    /// `linear`: the seconds may differ (in a format with a year).
    fn new(line: &[u8], d: DateMatch, linear: bool) -> Option<DateWindow> {
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
        let lo = d.start.saturating_sub(1);
        let bytes = line.get(lo..tail_end).filter(|b| b.len() <= WINDOW_MAX)?;
        // All bytes compared but the digits of the fraction, which must be
        // digits. (Built on every detector run: word operations only.)
        let (mut mask, mut digits) = ([0u64; WINDOW_MAX / 8], [0u64; WINDOW_MAX / 8]);
        for (k, m) in mask.iter_mut().enumerate() {
            let have = bytes.len().saturating_sub(8 * k).min(8);
            *m = u64::MAX.checked_shr(64 - 8 * have as u32).unwrap_or(0);
        }
        let secs = (linear && d.format != DateFormat::Syslog).then(|| {
            let at = secs_end - 2;
            (at, two_digits(line, at))
        });
        let free = secs.map_or(secs_end..secs_end, |(at, _)| at..secs_end);
        for p in free.chain(secs_end..frac_end) {
            if line.get(p).is_some_and(u8::is_ascii_digit) {
                let (k, shift) = ((p - lo) / 8, 8 * ((p - lo) % 8));
                mask[k] &= !(0xff << shift);
                digits[k] |= 0x80 << shift;
            }
        }
        Some(DateWindow {
            start: d.start,
            lo,
            secs_end,
            frac_end,
            date_end: d.end,
            tail_end,
            secs,
            n: bytes.len().div_ceil(8),
            words: words(bytes),
            mask,
            digits,
        })
    }
}

/// The value of the two digits at `at` (digits, as the window checked).
fn two_digits(line: &[u8], at: usize) -> i64 {
    let d = |i: usize| i64::from(line.get(i).map_or(0, |b| b.wrapping_sub(b'0')));
    10 * d(at) + d(at + 1)
}

/// `bytes` (at most [`WINDOW_MAX`]) as little-endian words, zero-padded.
#[inline]
fn words(bytes: &[u8]) -> [u64; WINDOW_MAX / 8] {
    let mut out = [0u64; WINDOW_MAX / 8];
    for (w, c) in out.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        *w = u64::from_le_bytes(b);
    }
    out
}

/// Could the bytes at `i` extend a date that ends there (a year, an offset,
/// more digits)? Anything else ends it for every built-in format.
fn may_extend(line: &[u8], i: usize) -> bool {
    // A year, an offset, or fail2ban's zone after up to two blanks
    // (`  UTC`, ` GMT`, ` +08:00`).
    let starts = |b: Option<&u8>| {
        b.is_some_and(|&b| {
            b.is_ascii_digit() || matches!(b, b'Z' | b'z' | b'+' | b'-' | b'U' | b'G')
        })
    };
    let blank = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let c = line.get(i);
    starts(c)
        || (blank(c)
            && (starts(line.get(i + 1)) || (blank(line.get(i + 1)) && starts(line.get(i + 2)))))
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

/// Whether `line`, in which the detector will first try for a date at
/// `at`, gets there the same date as the line `w` was made from got at
/// `w.start`, without running the detector: `Some(seconds to add)`.
///
/// Consecutive log lines mostly share their timestamp to the second. The
/// built-in formats are parsed from the bytes around the date alone: the byte
/// before it, the date itself (a fraction of a second is read and dropped),
/// and what follows it only if that could extend it (a space then a digit or
/// sign, a digit, `Z`, a sign). The detector takes a date at the line's
/// start, else one just after its first `[`; the cache is kept only for
/// dates found at one of those two places (`at`), and [`DateCache::detect`]
/// checks that no date starts a line before it takes one after a `[`. So a
/// line identical to the last one in those bytes, relative to `at`, up to the
/// digits of the fraction, gets the identical date, moved by as many bytes;
/// where the seconds may differ too, its time differs by as many seconds
/// (60 counting as 59, more than 60 no date there). The bytes are compared
/// eight at a time under a mask, the free digits checked to be digits.
/// Never used with a `datepattern` (a regex may look anywhere).
/// `tests::cache_agrees_with_the_detector` holds this to the detector.
#[inline(always)]
fn same_date(w: &DateWindow, line: &[u8], at: usize) -> Option<i64> {
    let lo = at.checked_sub(w.start - w.lo)?;
    let moved = |x: usize| x - w.start + at;
    let (secs_end, frac_end) = (moved(w.secs_end), moved(w.frac_end));
    let (date_end, tail_end) = (moved(w.date_end), moved(w.tail_end));
    if tail_end > date_end {
        // The same tail, as long as the line has it.
        if line.len().min(date_end + DATE_MARGIN) != tail_end {
            return None;
        }
    } else if line.len() < date_end || may_extend(line, date_end) {
        return None;
    }
    let whole = line.get(lo..lo + 8 * w.n);
    let diff = match whole {
        // Whole words straight from the line (bytes past the window masked).
        Some(whole) => whole
            .chunks_exact(8)
            .zip(w.words.iter().zip(&w.mask).zip(&w.digits))
            .fold(0, |acc, (c, ((&want, &mask), &digits))| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                acc | differs(u64::from_le_bytes(b), want, mask, digits)
            }),
        None => match line.get(lo..tail_end) {
            Some(bytes) => words(bytes)
                .iter()
                .zip(w.words.iter().zip(&w.mask).zip(&w.digits))
                .take(w.n)
                .fold(0, |acc, (&got, ((&want, &mask), &digits))| {
                    acc | differs(got, want, mask, digits)
                }),
            None => return None,
        },
    };
    // The fraction's end: the bytes compared settle it unless it ends
    // within a byte of the window's end.
    if diff != 0 || (frac_end + 1 >= tail_end && skip_fraction(line, secs_end) != frac_end) {
        return None;
    }
    match w.secs {
        None => Some(0),
        Some((s_at, was)) => {
            let now = two_digits(line, moved(s_at));
            (now <= 60).then(|| now.min(59) - was.min(59))
        }
    }
}

/// Non-zero when `got` differs from `want` where `mask` says it must not,
/// or holds a non-digit where `digits` has `0x80` (byte ^ '0' below ten:
/// adding 0x76 leaves the high bit clear, and no carry crosses a byte).
#[inline(always)]
fn differs(got: u64, want: u64, mask: u64, digits: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const TO_TEN: u64 = 0x7676_7676_7676_7676;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let t = got ^ ZEROS;
    let not_digit = ((t & LOW7) + TO_TEN) | t;
    ((got ^ want) & mask) | (not_digit & digits)
}

/// Date detection for the lines of one stream, with the shortcut of [`same_date`].
#[derive(Debug, Clone)]
pub(crate) struct DateCache {
    enabled: bool,
    /// Whether a date's seconds may differ from the cached one's.
    linear: bool,
    /// The last detected date, its window, where the detector found it, and
    /// the `now` it was placed in time with.
    last: Option<(DateMatch, DateWindow, Anchor, UnixTime)>,
}

impl DateCache {
    /// `enabled: false` runs the detector on every line; a `datepattern`
    /// always does (a regex may look anywhere).
    pub(crate) fn new(detector: &DateDetector, enabled: bool) -> DateCache {
        DateCache {
            enabled: enabled && !detector.has_datepattern(),
            linear: detector.seconds_are_linear(),
            last: None,
        }
    }

    /// The date of `raw` (a line without its `\n`), as `detector.detect`
    /// gives it. Offsets are into `raw` without a final `\r`.
    #[inline(always)]
    pub(crate) fn detect(
        &mut self,
        detector: &DateDetector,
        raw: &[u8],
        now: UnixTime,
    ) -> Option<DateMatch> {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some((d, w, anchor, then)) = &self.last {
            if let Some(at) = anchor.position(line).filter(|_| *then == now) {
                // The detector looks at the line's start first: a date
                // after the first `[` is its answer only if none starts there.
                if let Some(secs) =
                    same_date(w, line, at).filter(|_| at == 0 || !detector.date_at_start(line, now))
                {
                    return Some(DateMatch {
                        ts: d.ts + secs,
                        start: at,
                        end: d.end - d.start + at,
                        format: d.format,
                    });
                }
            }
        }
        self.detect_and_keep(detector, line, now)
    }

    /// Runs the detector and keeps what it found for the next lines.
    #[inline(never)]
    fn detect_and_keep(
        &mut self,
        detector: &DateDetector,
        line: &[u8],
        now: UnixTime,
    ) -> Option<DateMatch> {
        let found = detector.detect_anchored(line, now);
        self.last = match found {
            Some((d, Some(anchor @ (Anchor::At(0) | Anchor::Bracket)))) if self.enabled => {
                DateWindow::new(line, d, self.linear).map(|w| (d, w, anchor, now))
            }
            _ => None,
        };
        found.map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> DateDetector {
        DateDetector::new(None).unwrap()
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
            "2024-03-10 00:00:0{s},0x8",
            "2024-03-10 00:00:0{s},0.8",
            "2024-03-10 00:00:0{s},1234",
            "2024-03-10 00:00:59,0{s}",
            "2024-03-10 00:00:60,0{s}",
            "2024-03-10 00:00:61,0{s}",
            "2024-03-10 00:00:9{s},018",
            "2024-03-10T00:00:60Z",
            "[10/Mar/2024:00:00:6{s} +0000]",
            "2024/03/10 00:00:5{s}",
            "2024-03-10 00:00:0{s},\u{663}18",
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
            "10.0.0.1 - - [10/Mar/2024:00:00:0{s} +0000]",
            "2001:db8::1 - bob [10/Mar/2024:00:00:0{s} +0000]",
            "a [b] [10/Mar/2024:00:00:0{s} +0000]",
            "2024-03-10 00:00:0{s} [10/Mar/2024:00:00:0{s} +0000]",
            "0123456789012345678901234567890123456789012345678901234567890 [10/Mar/2024:00:00:0{s} +0000]",
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
        let f = detector();
        let lines = variants();
        let now = 1_717_200_000;
        // Every ordered pair of lines, as two consecutive lines of a stream.
        for a in &lines {
            for b in &lines {
                let mut cached = DateCache::new(&f, true);
                for line in [a.as_bytes(), b.as_bytes()] {
                    // (as raw lines, without their \n)
                    let x = cached.detect(&f, line, now);
                    let y = f.detect(line.strip_suffix(b"\r").unwrap_or(line), now);
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

    /// fail2ban's default dates also take a zone around them (` UTC`,
    /// `  +08:00` after, `PDT ` before): the cache still never answers
    /// otherwise than the detector.
    #[test]
    fn cache_agrees_with_the_detector_on_fail2ban_zones() {
        let f = DateDetector::fail2ban(None, Some(jiff::tz::TimeZone::UTC)).unwrap();
        let heads = [
            "2024-03-10 00:00:0{s}",
            "2024-03-10 00:00:0{s}.008",
            "[Mar 10 00:00:0{s}]",
            "[PDT Mar 10 00:00:0{s}]",
            "[CEST Mar 10 00:00:0{s}]",
            "[XYZ Mar 10 00:00:0{s}]",
            "PDT Mar 10 00:00:0{s}",
            "aPDT Mar 10 00:00:0{s}",
        ];
        let tails = [
            "",
            " x",
            " UTC x",
            " GMT x",
            "  UTC x",
            "   UTC x",
            " +08:00 x",
            "  +08:00 x",
            "\t-0130 x",
            " +2 x",
            " Z x",
            "Z",
            " UT x",
        ];
        let mut lines = Vec::new();
        for h in heads {
            for s in ["0", "1"] {
                for t in tails {
                    lines.push(format!("{}{t}", h.replace("{s}", s)));
                }
            }
        }
        let now = 1_717_200_000;
        for a in &lines {
            for b in &lines {
                let mut cached = DateCache::new(&f, true);
                for line in [a.as_bytes(), b.as_bytes()] {
                    assert_eq!(
                        cached.detect(&f, line, now),
                        f.detect(line, now),
                        "after {a:?}: {line:?}",
                        line = String::from_utf8_lossy(line)
                    );
                }
            }
        }
    }

    #[test]
    fn cache_hits_on_repeated_seconds() {
        let f = detector();
        let data = b"2024-03-10 00:00:00,018 INFO a\n2024-03-10 00:00:00,217 ERROR b\n";
        let mut d = DateCache::new(&f, true);
        let first = d.detect(&f, &data[..30], 0).unwrap();
        let (prev_d, w, _, _) = d.last.unwrap();
        let second = &data[31..data.len() - 1];
        assert_eq!(same_date(&w, second, 0), Some(0));
        assert_eq!(prev_d, first);
        // Other seconds: the time moves with them where that is exact.
        let later = b"2024-03-10 00:00:07,217 ERROR b";
        let moved = same_date(&w, later, 0);
        if f.seconds_are_linear() {
            assert_eq!(moved, Some(7));
        } else {
            assert_eq!(moved, None);
        }
        // Not when a digit of the fraction is not one.
        assert_eq!(same_date(&w, b"2024-03-10 00:00:00,2x7 ERROR b", 0), None);
    }
}
