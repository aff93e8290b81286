//! Where the daemon's file sources have read up to, and the journal cursor:
//! kept in memory by file identity, saved to the state file shortly after
//! they move, adopted when a source starts and forgotten when no source
//! follows the file any more.
//!
//! It must not read files or decide where a source starts (the sources do);
//! it only records what they report.

use std::sync::Arc;

use super::{blocking, Daemon, JOURNAL_CURSOR};
use crate::events::{StoreError, StoreOp};
use crate::source::FilePos;

impl Daemon {
    pub(super) fn save_positions(&mut self) {
        if let Some(c) = self.journal_cursor.take() {
            let store = Arc::clone(&self.store);
            if let Err(e) = blocking(|| store.set_cursor(JOURNAL_CURSOR, &c)) {
                self.emit(StoreError::new(StoreOp::SaveCursor, &e));
                self.journal_cursor = Some(c);
            }
        }
        if !self.positions_dirty {
            return;
        }
        let list = self.dirty_positions();
        let store = Arc::clone(&self.store);
        match blocking(|| store.save_positions(&list)) {
            Ok(()) => self.positions_dirty = false,
            Err(e) => self.emit(StoreError::new(StoreOp::SavePositions, &e)),
        }
    }

    pub(super) fn dirty_positions(&self) -> Vec<FilePos> {
        if self.positions_dirty {
            self.positions.values().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// Takes the positions the file sources start at (a file's end, a saved
    /// offset, or its first line within findtime) for files with none yet,
    /// and saves them: a file the daemon has seen resumes there after a
    /// restart or crash even if no line was ever handled from it.
    pub(super) fn adopt_start_positions(&mut self) {
        for pos in self.running.files.iter().flat_map(|f| f.positions()) {
            if let std::collections::hash_map::Entry::Vacant(e) =
                self.positions.entry((pos.dev, pos.ino))
            {
                e.insert(pos);
                self.positions_dirty = true;
            }
        }
        self.save_positions();
    }

    /// Drops the saved positions of files no source follows any more
    /// (rotated out of every pattern, deleted), so they do not pile up.
    pub(super) fn forget_unfollowed_positions(&mut self) {
        let followed: std::collections::HashSet<(u64, u64)> = self
            .running
            .files
            .iter()
            .flat_map(|f| f.positions())
            .map(|p| (p.dev, p.ino))
            .collect();
        let gone: Vec<(u64, u64)> = self
            .positions
            .keys()
            .filter(|id| !followed.contains(id))
            .copied()
            .collect();
        if gone.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        match blocking(|| store.remove_positions(&gone)) {
            Ok(_) => {
                for id in &gone {
                    self.positions.remove(id);
                }
            }
            Err(e) => self.emit(StoreError::new(StoreOp::ForgetPositions, &e)),
        }
    }
}
