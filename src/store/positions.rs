//! Where each followed log file was read up to (`file_positions`, keyed by
//! file identity) and the journal cursor (`cursors`): the store's half that
//! keeps reading gap-free across restarts.
//!
//! It owns those two tables' encoding and their read and write methods on
//! [`Store`]. It must not decide what a position means for a file (the
//! sources do) and never touches the ban tables.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use redb::ReadableTable;

use super::{codec, Store, StoreError, CURSORS, FILE_POSITIONS};
use crate::source::FilePos;

impl Store {
    /// Stores file positions, replacing any stored for the same paths; paths
    /// not in `positions` keep theirs (see [`Store::remove_positions`]).
    pub fn save_positions(&self, positions: &[FilePos]) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        self.write_positions(&txn, positions)?;
        txn.commit().map_err(self.err("commit positions"))
    }

    pub(super) fn write_positions(
        &self,
        txn: &redb::WriteTransaction,
        positions: &[FilePos],
    ) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut table = txn
            .open_table(FILE_POSITIONS)
            .map_err(self.err("open table file_positions"))?;
        for p in positions {
            table
                .insert(id_key(p).as_slice(), encode_file_pos(p).as_slice())
                .map_err(self.err("write position"))?;
        }
        Ok(())
    }

    /// Forgets the positions of files (by device and inode) no longer
    /// followed. Returns how many were stored.
    pub fn remove_positions(&self, files: &[(u64, u64)]) -> Result<usize, StoreError> {
        let txn = self.begin_write()?;
        let mut removed = 0;
        {
            let mut table = txn
                .open_table(FILE_POSITIONS)
                .map_err(self.err("open table file_positions"))?;
            for &(dev, ino) in files {
                let key = id_bytes(dev, ino);
                if table
                    .remove(key.as_slice())
                    .map_err(self.err("remove position"))?
                    .is_some()
                {
                    removed += 1;
                }
            }
        }
        txn.commit().map_err(self.err("commit positions"))?;
        Ok(removed)
    }

    /// All stored file positions (one per file identity), ordered by path bytes.
    pub fn positions(&self) -> Result<Vec<FilePos>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(self.err("begin read transaction"))?;
        let table = txn
            .open_table(FILE_POSITIONS)
            .map_err(self.err("open table file_positions"))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(self.err("read positions"))? {
            let (_, v) = row.map_err(self.err("read positions"))?;
            let pos = decode_file_pos(v.value())
                .ok_or_else(|| self.corrupt("malformed file position"))?;
            out.push(pos);
        }
        out.sort_by(|a, b| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        });
        Ok(out)
    }

    /// Stores a small string (e.g. the journal cursor) under `key`.
    pub fn set_cursor(&self, key: &str, cursor: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn
                .open_table(CURSORS)
                .map_err(self.err("open table cursors"))?;
            table
                .insert(key, cursor)
                .map_err(self.err("write cursor"))?;
        }
        txn.commit().map_err(self.err("commit cursor"))
    }

    /// The string stored under `key`, if any.
    pub fn cursor(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(self.err("begin read transaction"))?;
        let table = txn
            .open_table(CURSORS)
            .map_err(self.err("open table cursors"))?;
        let v = table.get(key).map_err(self.err("read cursor"))?;
        Ok(v.map(|v| v.value().to_owned()))
    }
}

/// Key of a file's position: `dev, ino`, each u64 big-endian.
fn id_bytes(dev: u64, ino: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&dev.to_be_bytes());
    k[8..].copy_from_slice(&ino.to_be_bytes());
    k
}

pub(super) fn id_key(p: &FilePos) -> [u8; 16] {
    id_bytes(p.dev, p.ino)
}

/// Position value by identity: [`encode_pos`], then the path's raw bytes.
pub(super) fn encode_file_pos(p: &FilePos) -> Vec<u8> {
    let mut v = encode_pos(p).to_vec();
    v.extend_from_slice(codec::path_key(&p.path));
    v
}

fn decode_file_pos(v: &[u8]) -> Option<FilePos> {
    let (fields, path) = v.split_at_checked(32)?;
    decode_pos(path, fields)
}

/// Position value: `dev, ino, offset, fingerprint`, each u64 little-endian;
/// `k` is the path (raw bytes, so non-UTF-8 paths are fine).
pub(super) fn encode_pos(p: &FilePos) -> [u8; 32] {
    let mut v = [0u8; 32];
    for (i, x) in [p.dev, p.ino, p.offset, p.fingerprint]
        .into_iter()
        .enumerate()
    {
        v[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    v
}

pub(super) fn decode_pos(k: &[u8], v: &[u8]) -> Option<FilePos> {
    let v: &[u8; 32] = v.try_into().ok()?;
    let field = |i: usize| v[i * 8..i * 8 + 8].try_into().ok().map(u64::from_le_bytes);
    Some(FilePos {
        path: PathBuf::from(std::ffi::OsStr::from_bytes(k)),
        dev: field(0)?,
        ino: field(1)?,
        offset: field(2)?,
        fingerprint: field(3)?,
    })
}
