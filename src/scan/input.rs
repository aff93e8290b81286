//! dry-run inputs: log files (plain or gzip, detected by their first bytes),
//! standard input (`-`), `--line` text and journal entries, opened as plain
//! byte readers, or, for a plain regular file, mapped into memory so the scan
//! copies nothing.
//!
//! Owns opening and decompressing. It must not split lines or look inside them.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::UnixTime;

/// Where an input's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Stdin,
    /// `--line` texts, one line each.
    Text(Vec<u8>),
    /// Journal entries: each with its own time, matched without a date.
    Entries(Arc<Vec<(UnixTime, Vec<u8>)>>),
}

/// One input, named as the user gave it.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub source: Source,
}

impl Input {
    /// `-` is standard input.
    pub fn from_arg(arg: &str) -> Input {
        if arg == "-" {
            Input {
                name: "-".into(),
                source: Source::Stdin,
            }
        } else {
            Input {
                name: arg.to_string(),
                source: Source::File(PathBuf::from(arg)),
            }
        }
    }

    /// Size on disk (compressed size for gzip), if known: for the progress bar.
    pub fn size(&self) -> Option<u64> {
        match &self.source {
            Source::File(p) => std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Source::Stdin => None,
            Source::Text(t) => Some(t.len() as u64),
            Source::Entries(e) => Some(e.iter().map(|(_, t)| t.len() as u64).sum()),
        }
    }

    /// Checks that a file input can be opened (before any work starts).
    pub fn check(&self) -> io::Result<()> {
        match &self.source {
            Source::File(p) => {
                if std::fs::metadata(p)?.is_dir() {
                    return Err(io::Error::other("is a directory"));
                }
                File::open(p).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Opens the input; `consumed` counts the raw bytes read (before decompression).
    pub fn open(&self, consumed: Rc<Cell<u64>>) -> io::Result<Box<dyn Read>> {
        let raw: Box<dyn Read> = match &self.source {
            Source::File(p) => Box::new(File::open(p)?),
            Source::Stdin => Box::new(io::stdin()),
            Source::Text(t) => Box::new(io::Cursor::new(t.clone())),
            Source::Entries(e) => {
                let mut text = Vec::new();
                for (_, t) in e.iter() {
                    text.extend_from_slice(t);
                    text.push(b'\n');
                }
                Box::new(io::Cursor::new(text))
            }
        };
        let mut buffered = BufReader::with_capacity(
            64 * 1024,
            Counting {
                inner: raw,
                consumed,
            },
        );
        let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        Ok(if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        })
    }
}

/// An input opened for a scan.
pub enum Opened {
    /// Bytes to read (gzip, standard input, text, or a file that cannot be
    /// mapped).
    Stream(Box<dyn Read>),
    /// A plain regular file, mapped read-only.
    Mapped(memmap2::Mmap),
    /// Journal entries.
    Entries(Vec<(UnixTime, Vec<u8>)>),
}

impl Input {
    /// Opens the input for scanning: a plain (not gzip) regular file is
    /// mapped; anything else, or a file that cannot be mapped, is read as
    /// [`open`](Self::open) reads it.
    pub fn open_for_scan(&self, consumed: Rc<Cell<u64>>) -> io::Result<Opened> {
        match &self.source {
            Source::File(p) => {
                if let Some(m) = map(p) {
                    return Ok(Opened::Mapped(m));
                }
            }
            Source::Entries(e) => return Ok(Opened::Entries(e.to_vec())),
            _ => {}
        }
        self.open(consumed).map(Opened::Stream)
    }
}

/// A non-empty, non-gzip regular file mapped read-only, or `None`.
fn map(path: &Path) -> Option<memmap2::Mmap> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the map is read-only and private to this process. If another
    // process truncates the file while it is scanned, reading the vanished
    // pages raises SIGBUS (as for grep and ripgrep, which map files the same
    // way); no other change to the file can affect memory safety here, as
    // the bytes are only ever read as plain `u8`.
    let m = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    if m.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let _ = m.advise(memmap2::Advice::Sequential);
    Some(m)
}

/// Counts the bytes read through it.
struct Counting {
    inner: Box<dyn Read>,
    consumed: Rc<Cell<u64>>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_detected_by_content() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"a\nb\n").unwrap();
        let gz = enc.finish().unwrap();
        let input = Input {
            name: "x".into(),
            source: Source::Text(gz),
        };
        let mut s = String::new();
        input
            .open(Rc::default())
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "a\nb\n");
    }
}
