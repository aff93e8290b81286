//! Cutting a byte stream into lines: complete lines only, a partial last line
//! held back, lines over the cap (`MAX_LINE` for log lines) dropped without
//! being buffered and counted, as the walk skips and counts them in dry-run's
//! inputs. Shared by the file tailer, command streams and the journal reader.
//!
//! Owns no I/O and never looks inside a line.

/// Cuts a byte stream into complete lines, holding back a partial last line
/// and dropping lines longer than `max_line` (never buffering more than
/// that).
pub struct Cutter {
    pub(crate) partial: Vec<u8>,
    pub(crate) skipping: bool,
    max_line: usize,
}

impl Cutter {
    pub fn new(max_line: usize) -> Self {
        Cutter {
            partial: Vec::new(),
            skipping: false,
            max_line,
        }
    }

    pub fn reset(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }

    /// Returns the complete lines ending in `chunk` (each with its `\n`) and
    /// how many overlong lines ended in it. Runs of lines within the cap
    /// are copied whole.
    ///
    /// Past the first line (which continues the held partial one), the cap
    /// is checked a window at a time, not a line at a time: when the last
    /// `\n` among the next `max_line + 1` bytes is found (searching from the
    /// window's end, so at once for short lines), every line before it is
    /// within the cap; when there is none, the line starting there is over.
    pub fn feed(&mut self, chunk: &[u8]) -> (Vec<u8>, u64) {
        let (mut out, mut skipped) = (Vec::new(), 0);
        let copy = |out: &mut Vec<u8>, partial: &mut Vec<u8>, run: &[u8]| {
            if out.capacity() == 0 {
                out.reserve_exact(partial.len() + chunk.len());
            }
            out.extend_from_slice(partial);
            out.extend_from_slice(run);
            partial.clear();
        };
        // The lines end at `last`: the rest is the next partial line.
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.hold(chunk);
            return (out, skipped);
        };
        let first = memchr::memchr(b'\n', chunk).unwrap_or(last);
        // `chunk[run..at]`: whole lines within the cap not copied yet.
        let mut run = 0;
        if std::mem::take(&mut self.skipping) || self.partial.len() + first > self.max_line {
            self.partial.clear();
            skipped += 1;
            run = first + 1;
        }
        let mut at = first + 1;
        while at <= last {
            let window = &chunk[at..(at + self.max_line + 1).min(last + 1)];
            if let Some(i) = memchr::memrchr(b'\n', window) {
                at += i + 1;
                continue;
            }
            // No `\n` within the cap: the line at `at` is over it.
            if run < at {
                copy(&mut out, &mut self.partial, &chunk[run..at]);
            }
            let past = at + window.len();
            let end = memchr::memchr(b'\n', &chunk[past..]).map_or(last, |i| past + i);
            skipped += 1;
            at = end + 1;
            run = at;
        }
        if run < at {
            copy(&mut out, &mut self.partial, &chunk[run..at]);
        }
        self.hold(&chunk[last + 1..]);
        (out, skipped)
    }

    /// Holds `rest` (no `\n` in it) as the start of the next line, or
    /// skips it with the line it starts when that is over the cap.
    fn hold(&mut self, rest: &[u8]) {
        if !self.skipping {
            if self.partial.len() + rest.len() > self.max_line {
                self.partial.clear();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
    }

    /// The stream ended: its unterminated last line is complete after all
    /// (delivered with a `\n` added), or skipped if it was over the cap.
    pub fn finish(&mut self) -> (Vec<u8>, u64) {
        let skipped = u64::from(std::mem::take(&mut self.skipping));
        let mut data = std::mem::take(&mut self.partial);
        if !data.is_empty() {
            data.push(b'\n');
        }
        (data, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line by line, as the cutter worked before it copied runs whole.
    fn reference(lines: &[&[u8]], max_line: usize) -> (Vec<u8>, u64) {
        let (mut out, mut skipped) = (Vec::new(), 0);
        for l in lines {
            if l.len() - 1 > max_line {
                skipped += 1;
            } else {
                out.extend_from_slice(l);
            }
        }
        (out, skipped)
    }

    /// Fed in pieces of every size, the cutter delivers the whole lines
    /// within the cap in order and counts the others, like the reference.
    #[test]
    fn cutter_agrees_with_a_line_by_line_cut_whatever_the_pieces() {
        let mut text = Vec::new();
        for (i, len) in [3, 0, 9, 12, 1, 8, 30, 2, 8, 9, 0, 7, 11]
            .iter()
            .enumerate()
        {
            text.extend(std::iter::repeat_n(b'a' + i as u8, *len));
            text.push(b'\n');
        }
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        let want = reference(&lines, 8);
        for piece in 1..text.len() + 1 {
            let mut c = Cutter::new(8);
            let (mut out, mut skipped) = (Vec::new(), 0);
            for p in text.chunks(piece) {
                let (o, s) = c.feed(p);
                out.extend_from_slice(&o);
                skipped += s;
            }
            assert_eq!((out, skipped), want.clone(), "pieces of {piece}");
        }
    }

    proptest::proptest! {
        /// Any lines, any cap, any cut into pieces: what the line-by-line
        /// reference delivers and counts.
        #[test]
        fn cutter_agrees_with_the_reference_on_any_lines(
            lens in proptest::collection::vec(0usize..60, 0..40),
            max_line in 0usize..20,
            cuts in proptest::collection::vec(1usize..50, 1..8),
        ) {
            let mut text = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, *len));
                text.push(b'\n');
            }
            let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            let want = reference(&lines, max_line);
            let mut c = Cutter::new(max_line);
            let (mut out, mut skipped) = (Vec::new(), 0);
            let mut rest = &text[..];
            for n in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (p, r) = rest.split_at((*n).min(rest.len()));
                let (o, s) = c.feed(p);
                out.extend_from_slice(&o);
                skipped += s;
                rest = r;
            }
            proptest::prop_assert_eq!((out, skipped), want);
        }
    }

    #[test]
    fn cutter_cuts_caps_and_finishes() {
        let mut c = Cutter::new(5);
        let (out, skipped) = c.feed(b"12345\n123456\nok\npart");
        assert_eq!((out, skipped), (b"12345\nok\n".to_vec(), 1));
        assert_eq!(c.finish(), (b"part\n".to_vec(), 0));
        assert_eq!(c.feed(b"toolong"), (Vec::new(), 0));
        assert_eq!(c.finish(), (Vec::new(), 1));
        assert_eq!(c.finish(), (Vec::new(), 0));
        assert_eq!(c.feed(b"\xff\xfe\n").0, b"\xff\xfe\n");
    }
}
