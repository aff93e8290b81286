//! Persistent state: the crash-safe embedded store (`<state_dir>/state.redb`).
//!
//! Owns four tables in one file and nothing else:
//! - `nets`: per network, its active bans (one per jail: when made, when they
//!   end, `None` = permanent, and how many times this net was banned in that
//!   jail) and its ban history (the times and jails of its last
//!   [`HISTORY_MAX`] bans), for escalation ("how many bans since T?");
//! - `file_positions`: where each followed log file was read up to
//!   ([`FilePos`], keyed by file identity: device and inode; the path it had
//!   is in the value), so a position follows its file through a rename
//!   (the path-keyed `positions` of older files is moved there on open);
//! - `cursors`: small strings by key (the journal cursor);
//! - `meta`: the schema version.
//!
//! It must not decide anything: it never decides whether to ban, never
//! computes ban times and never talks to nft. It stores what the daemon hands
//! it and answers questions about what it stored. The `count` of a
//! [`BanRecord`] is the caller's (typically `ban_count(..) + 1`).
//!
//! Why [redb](https://docs.rs/redb): pure Rust (no C library to build or ship),
//! ACID transactions over copy-on-write B-trees, and crash-safe: a commit is
//! durable once `commit()` returns (it is fsynced), and a write torn by a
//! crash or power loss cannot corrupt the file, because the previous commit's
//! pages are never overwritten and the new root is only used once its
//! checksum verifies. After a crash the file reopens at the last commit.
//!
//! Every method is one transaction, and each write method is one durable
//! commit (one fsync or two): cheap enough for the daemon's pattern (one
//! `record_bans` per batch of decisions, `save_positions` about once a
//! second), but blocking, so async callers should use `spawn_blocking`.
//! [`Store`] is `Send + Sync`; share it behind an `Arc`. Write transactions
//! are serialised by redb; reads run concurrently with them.
//!
//! Keys and values are encoded by hand (see `codec`): a net is 17 bytes
//! (prefix tag + address), its record a few dozen bytes of length-prefixed
//! names and little-endian integers. One record per net, rather than one
//! per (jail, net) plus one for the history, halves the B-tree operations of
//! `record_bans` (100,000 bans in a few hundred milliseconds). Networks are
//! stored with their host bits cleared (`10.0.0.7/24` is kept as `10.0.0.0/24`).

mod codec;
#[cfg(test)]
mod codec_fuzz;
#[cfg(test)]
mod durability_tests;
mod positions;
#[cfg(test)]
mod tests;

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use redb::{Database, DatabaseError, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::source::FilePos;
use codec::{HistEntry, JailBan, NetRecord};
use positions::{decode_pos, encode_file_pos, id_key};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.redb";
/// At most this many past bans are kept per net (the most recent ones).
pub const HISTORY_MAX: usize = 32;
/// Version of the key/value encodings below; bumped on any incompatible change.
/// 1: separate `bans` and `history` tables (never released); 2: one `nets` table.
pub const SCHEMA_VERSION: u64 = 2;

/// Memory redb may use to cache pages; the whole state of 100,000 bans is a
/// few MiB, so this keeps it all in memory without the 1 GiB default.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

const NETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("nets");
/// Read positions keyed by file identity (`dev`, `ino`: 16 bytes).
const FILE_POSITIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("file_positions");
/// Read positions keyed by path, as files of earlier versions hold them;
/// moved into [`FILE_POSITIONS`] on open.
const POSITIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("positions");
const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_SCHEMA: &str = "schema_version";

/// One active ban as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub jail: String,
    /// Host (`/32`, `/128`) or subnet; stored with host bits cleared.
    pub net: IpNet,
    /// Unix seconds.
    pub banned_at: i64,
    /// Unix seconds; `None` = permanent.
    pub expires: Option<i64>,
    /// How many times this net has been banned in this jail, this ban included.
    pub count: u32,
    /// The fleet node that decided the ban (in a fleet), kept across restarts.
    pub origin: Option<String>,
}

/// What went wrong, always naming the state file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open state file {}: {source}", path.display())]
    OpenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {} is in use by another process (is another banwarden running with the same state_dir?)",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error(
        "state file {0} is corrupt or not a banwarden state file ({detail}); move it aside \
         (e.g. `mv {0} {0}.corrupt`) and start again: a new empty state file is created, \
         losing the saved bans, ban history and log positions",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state file {0} has schema version {found} but this banwarden reads version {expected}: \
         run the banwarden that wrote it, or move the file aside (e.g. `mv {0} {0}.old`) to start afresh",
        path.display()
    )]
    Schema {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("state file {}: {op} failed: {source}", path.display())]
    Db {
        path: PathBuf,
        op: &'static str,
        /// Boxed: redb's error is large, and this one travels up every call.
        source: Box<redb::Error>,
    },
    #[error("state file {}: cannot store {what}", path.display())]
    Invalid { path: PathBuf, what: String },
}

/// The daemon's persistent state; see the module documentation.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/state.redb`. The directory is
    /// created with mode 0750, the file with 0640. A file that is not a valid
    /// state file gives [`StoreError::Corrupt`], whose message says to move
    /// it aside; a file held by another process gives [`StoreError::InUse`].
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(state_dir)
            .map_err(|source| StoreError::CreateDir {
                path: state_dir.to_path_buf(),
                source,
            })?;
        let path = state_dir.join(STATE_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(|source| StoreError::OpenFile {
                path: path.clone(),
                source,
            })?;

        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES);
        // The v3 format is the one later redb versions read without an upgrade step.
        builder.create_with_file_format_v3(true);
        // redb trusts pages it reads from a cleanly closed file: a page
        // damaged on disk would surface later as a panic inside redb, in the
        // middle of the daemon's work. So every page's checksum is verified
        // here, once (tens of milliseconds for 100,000 bans), and damage becomes an
        // error that tells the operator what to do. A panic inside redb while
        // opening a damaged file gets the same treatment.
        let opened = catch_unwind(AssertUnwindSafe(|| {
            let mut db = builder.create_file(file)?;
            let clean = db.check_integrity()?;
            Ok::<_, DatabaseError>((db, clean))
        }));
        let db = match opened {
            Ok(Ok((db, clean))) => {
                if !clean {
                    tracing::warn!(
                        path = %path.display(),
                        "state file failed its integrity check and was repaired; \
                         the most recent changes may be lost"
                    );
                }
                db
            }
            Ok(Err(e)) => return Err(open_error(&path, e)),
            Err(panic) => {
                let detail = panic_message(&panic);
                return Err(StoreError::Corrupt {
                    path,
                    detail: format!("the database library panicked: {detail}"),
                });
            }
        };
        let store = Store { db, path };
        store.init()?;
        Ok(store)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables and checks (or, in a new file, writes) the schema version.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(self.err("open table meta"))?;
            let found = meta
                .get(META_SCHEMA)
                .map_err(self.err("read schema version"))?
                .map(|v| v.value());
            match found {
                Some(v) if v == SCHEMA_VERSION => {}
                Some(found) => {
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
                None => {
                    meta.insert(META_SCHEMA, SCHEMA_VERSION)
                        .map_err(self.err("write schema version"))?;
                }
            }
            txn.open_table(NETS).map_err(self.err("open table nets"))?;
            let mut by_id = txn
                .open_table(FILE_POSITIONS)
                .map_err(self.err("open table file_positions"))?;
            let mut by_path = txn
                .open_table(POSITIONS)
                .map_err(self.err("open table positions"))?;
            let old: Vec<(Vec<u8>, Vec<u8>)> = by_path
                .iter()
                .map_err(self.err("read positions"))?
                .filter_map(Result::ok)
                .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                .collect();
            for (k, v) in old {
                if let Some(pos) = decode_pos(&k, &v) {
                    by_id
                        .insert(id_key(&pos).as_slice(), encode_file_pos(&pos).as_slice())
                        .map_err(self.err("write position"))?;
                }
                by_path
                    .remove(k.as_slice())
                    .map_err(self.err("remove position"))?;
            }
            txn.open_table(CURSORS)
                .map_err(self.err("open table cursors"))?;
        }
        txn.commit().map_err(self.err("commit"))
    }

    /// Stores a batch of bans in one durable transaction: each replaces any
    /// stored ban with the same (jail, net), and is appended to its net's
    /// history (an entry identical to one already there, same time and jail,
    /// is not added twice, so replaying a batch does not inflate counts).
    /// Within a batch, a later ban of the same (jail, net) wins.
    pub fn record_bans(&self, bans: &[BanRecord]) -> Result<(), StoreError> {
        self.record(bans, &[])
    }

    /// [`record_bans`](Self::record_bans) and
    /// [`save_positions`](Self::save_positions) in one durable transaction:
    /// the bans and the read positions of the lines that caused them are
    /// kept together or not at all, so a crash neither loses those lines'
    /// bans nor counts the lines twice.
    pub fn record(&self, bans: &[BanRecord], positions: &[FilePos]) -> Result<(), StoreError> {
        if bans.is_empty() && positions.is_empty() {
            return Ok(());
        }
        for b in bans {
            self.check_jail(&b.jail)?;
        }
        // Sorted keys make the B-tree writes sequential; the sort is stable,
        // so bans of one net keep their batch order.
        let mut rows: Vec<([u8; codec::NET_LEN], &BanRecord)> = bans
            .iter()
            .map(|b| (codec::encode_net(codec::canonical(b.net)), b))
            .collect();
        rows.sort_by_key(|r| r.0);

        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(NETS).map_err(self.err("open table nets"))?;
            for group in rows.chunk_by(|a, b| a.0 == b.0) {
                let key = group[0].0.as_slice();
                let apply = |rec: &mut NetRecord| {
                    for (_, b) in group {
                        rec.set_ban(JailBan {
                            jail: b.jail.clone(),
                            banned_at: b.banned_at,
                            expires: b.expires,
                            count: b.count,
                            origin: b.origin.clone(),
                        });
                        rec.add_history(
                            HistEntry {
                                time: b.banned_at,
                                jail: b.jail.clone(),
                            },
                            HISTORY_MAX,
                        );
                    }
                };
                // Most nets in a batch are new: write their record blind, and
                // only if one was there (insert returns it) merge and rewrite.
                let mut rec = NetRecord::default();
                apply(&mut rec);
                let old = table
                    .insert(key, rec.encode().as_slice())
                    .map_err(self.err("write ban"))?
                    .map(|v| v.value().to_vec());
                if let Some(old) = old {
                    let mut rec = self.decode_record(&old)?;
                    apply(&mut rec);
                    table
                        .insert(key, rec.encode().as_slice())
                        .map_err(self.err("write ban"))?;
                }
            }
        }
        self.write_positions(&txn, positions)?;
        txn.commit().map_err(self.err("commit bans"))
    }

    /// Removes bans (manual unban), keeping their history. Returns how many
    /// of `keys` were stored.
    pub fn remove_bans(&self, keys: &[(String, IpNet)]) -> Result<usize, StoreError> {
        let txn = self.begin_write()?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(NETS).map_err(self.err("open table nets"))?;
            for (jail, net) in keys {
                let key = codec::encode_net(codec::canonical(*net));
                let old = table
                    .get(key.as_slice())
                    .map_err(self.err("read ban"))?
                    .map(|v| v.value().to_vec());
                let Some(old) = old else { continue };
                let mut rec = self.decode_record(&old)?;
                if rec.remove_ban(jail) {
                    removed += 1;
                    self.put_record(&mut table, &key, &rec)?;
                }
            }
        }
        txn.commit().map_err(self.err("commit unban"))?;
        Ok(removed)
    }

    /// The bans still in force at `now` (permanent, or expiring after `now`),
    /// ordered by network, then jail name.
    pub fn active_bans(&self, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(self.err("begin read transaction"))?;
        let table = txn.open_table(NETS).map_err(self.err("open table nets"))?;
        let mut out = Vec::with_capacity(usize::try_from(table.len().unwrap_or(0)).unwrap_or(0));
        for row in table.iter().map_err(self.err("read bans"))? {
            let (k, v) = row.map_err(self.err("read bans"))?;
            let bans = NetRecord::decode_bans(v.value())
                .ok_or_else(|| self.corrupt("malformed net record"))?;
            let mut bans = bans.into_iter().filter(|b| b.active(now)).peekable();
            if bans.peek().is_none() {
                continue;
            }
            let net =
                codec::decode_net(k.value()).ok_or_else(|| self.corrupt("malformed net key"))?;
            out.extend(bans.map(|b| BanRecord {
                jail: b.jail,
                net,
                banned_at: b.banned_at,
                expires: b.expires,
                count: b.count,
                origin: b.origin,
            }));
        }
        Ok(out)
    }

    /// Removes the bans expired at `now` and the history entries older than
    /// `now - history_horizon`, in one transaction. Returns how many bans were
    /// removed.
    pub fn purge_expired(&self, now: i64, history_horizon: i64) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(history_horizon);
        let txn = self.begin_write()?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(NETS).map_err(self.err("open table nets"))?;
            let mut changed: Vec<(Vec<u8>, NetRecord)> = Vec::new();
            for row in table.iter().map_err(self.err("read bans"))? {
                let (k, v) = row.map_err(self.err("read bans"))?;
                let mut rec = self.decode_record(v.value())?;
                let (bans, hist) = (rec.bans.len(), rec.history.len());
                rec.bans.retain(|b| b.active(now));
                rec.history.retain(|h| h.time >= cutoff);
                if rec.bans.len() != bans || rec.history.len() != hist {
                    removed += bans - rec.bans.len();
                    changed.push((k.value().to_vec(), rec));
                }
            }
            for (k, rec) in &changed {
                self.put_record(&mut table, k, rec)?;
            }
        }
        txn.commit().map_err(self.err("commit purge"))?;
        Ok(removed)
    }

    /// How many recorded bans of `net` (exactly this net, not a containing
    /// subnet) were made at or after `since`, in `jail` or, with `None`, in
    /// any jail. Call it before recording a new ban to count the earlier ones.
    pub fn ban_count(&self, net: IpNet, jail: Option<&str>, since: i64) -> Result<u32, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(self.err("begin read transaction"))?;
        let table = txn.open_table(NETS).map_err(self.err("open table nets"))?;
        let key = codec::encode_net(codec::canonical(net));
        let Some(v) = table
            .get(key.as_slice())
            .map_err(self.err("read history"))?
        else {
            return Ok(0);
        };
        let rec = self.decode_record(v.value())?;
        let n = rec
            .history
            .iter()
            .filter(|e| e.time >= since && jail.is_none_or(|j| e.jail == j))
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        self.db
            .begin_write()
            .map_err(self.err("begin write transaction"))
    }

    /// Maps a redb error of operation `op`; corruption gets the "move it aside" advice.
    fn err<E: Into<redb::Error>>(&self, op: &'static str) -> impl FnOnce(E) -> StoreError + '_ {
        move |e| match e.into() {
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            source => StoreError::Db {
                path: self.path.clone(),
                op,
                source: Box::new(source),
            },
        }
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: what.to_owned(),
        }
    }

    fn decode_record(&self, v: &[u8]) -> Result<NetRecord, StoreError> {
        NetRecord::decode(v).ok_or_else(|| self.corrupt("malformed net record"))
    }

    /// Writes a net's record, or deletes it once it holds nothing.
    fn put_record(
        &self,
        table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        key: &[u8],
        rec: &NetRecord,
    ) -> Result<(), StoreError> {
        if rec.bans.is_empty() && rec.history.is_empty() {
            table.remove(key).map_err(self.err("remove net record"))?;
        } else {
            table
                .insert(key, rec.encode().as_slice())
                .map_err(self.err("write net record"))?;
        }
        Ok(())
    }

    fn check_jail(&self, jail: &str) -> Result<(), StoreError> {
        if jail.is_empty() || jail.len() > codec::MAX_JAIL_LEN {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                what: format!(
                    "a ban for jail {jail:?}: a jail name is 1 to {} bytes",
                    codec::MAX_JAIL_LEN
                ),
            });
        }
        Ok(())
    }
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path },
        DatabaseError::UpgradeRequired(v) => StoreError::Corrupt {
            path,
            detail: format!("it is in redb file format {v}, which this banwarden does not read"),
        },
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        // A file too short or with a garbled header surfaces as an I/O error
        // about its contents rather than about the disk.
        DatabaseError::Storage(redb::StorageError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt {
                path,
                detail: e.to_string(),
            }
        }
        e => StoreError::Db {
            path,
            op: "open",
            source: Box::new(e.into()),
        },
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
