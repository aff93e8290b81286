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
    /// how many overlong lines ended in it.
    pub fn feed(&mut self, chunk: &[u8]) -> (Vec<u8>, u64) {
        let (mut out, mut skipped, mut rest) = (Vec::new(), 0, chunk);
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(i + 1);
            rest = tail;
            if std::mem::take(&mut self.skipping) || self.partial.len() + i > self.max_line {
                skipped += 1;
            } else {
                if out.capacity() == 0 {
                    out.reserve_exact(self.partial.len() + chunk.len());
                }
                out.extend_from_slice(&self.partial);
                out.extend_from_slice(line);
            }
            self.partial.clear();
        }
        if !self.skipping {
            if self.partial.len() + rest.len() > self.max_line {
                self.partial.clear();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        (out, skipped)
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
