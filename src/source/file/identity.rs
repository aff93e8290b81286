//! A file's identity: device, inode and a fingerprint of its first line,
//! which tells a rotation (new first line) apart from a truncation and lets
//! a saved position follow its file when it is renamed.
//!
//! Reads the first bytes of a file and nothing else; never interprets them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The fingerprint covers the first line, at most this many bytes of it.
pub(super) const FP_LEN: usize = 256;

/// FNV-1a 64 of the first line of `head` (without its `\n`), at most 256 bytes; 0 if empty.
pub(super) fn fingerprint(head: &[u8]) -> u64 {
    let head = &head[..head.len().min(FP_LEN)];
    let line = memchr::memchr(b'\n', head).map_or(head, |i| &head[..i]);
    if line.is_empty() {
        return 0;
    }
    line.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file's fingerprint, and whether it is final (first line complete or 256 bytes long).
pub(super) fn head_fingerprint(file: &File) -> io::Result<(u64, bool)> {
    let mut head = [0u8; FP_LEN];
    let mut n = 0;
    while n < FP_LEN {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &head[..n];
    Ok((
        fingerprint(head),
        n == FP_LEN || memchr::memchr(b'\n', head).is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_fnv1a_of_the_first_line() {
        assert_eq!(fingerprint(b""), 0);
        assert_eq!(fingerprint(b"\nsecond\n"), 0);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c); // FNV-1a 64 test vector
        assert_eq!(fingerprint(b"a\nb\n"), fingerprint(b"a"));
        assert_eq!(fingerprint(b"foobar"), 0x8594_4171_f739_67e8);
        let long = vec![b'x'; 1000];
        assert_eq!(fingerprint(&long), fingerprint(&long[..256]));
        assert_ne!(fingerprint(&long[..255]), fingerprint(&long[..256]));
    }
}
