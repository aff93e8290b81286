//! What a reload does to the bans of a jail it removes (or disables).
//!
//! Owns lifting them: the jail's sets are already gone from the kernel (the
//! firewall's `setup` drops the sets of jails no longer listed), so its bans
//! are taken out of the daemon's book and the store (a restart must not bring
//! them back), counted as unbans of cause `reload`, and announced as unban
//! events, cause `reload`, to the removed jail's actions, which still run at
//! that point and deliver their queue before they stop. Must not touch the
//! firewall (the worker's reconfiguration did) or publish to the fleet (a
//! local configuration change is not a fleet decision).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{blocking, Daemon};
use crate::metrics::UnbanCause;
use crate::store::BanRecord;

impl Daemon {
    /// Lifts the bans of jails that no longer run. Call after the new
    /// configuration is running and before the actions are reconfigured.
    pub(super) fn lift_bans_of_removed_jails(&mut self) {
        let names = self.running.jail_names();
        let gone: Vec<BanRecord> = self
            .bans
            .values()
            .filter(|b| !names.contains(&b.jail))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        self.bans.retain(|(jail, _), _| names.contains(jail));
        let keys: Vec<_> = gone.iter().map(|b| (b.jail.clone(), b.net)).collect();
        let store = Arc::clone(&self.store);
        if let Err(e) = blocking(|| store.remove_bans(&keys)) {
            // They stay in the store until they expire; a restart does not
            // load bans of jails without rules.
            tracing::warn!(error = %e, "could not remove the bans of removed jails from the state store");
        }
        let mut per_jail: BTreeMap<&str, u64> = BTreeMap::new();
        for b in &gone {
            *per_jail.entry(b.jail.as_str()).or_default() += 1;
        }
        for (jail, n) in &per_jail {
            tracing::info!(%jail, bans = n, "jail removed by the reload: its bans are lifted");
            if let Some(m) = &self.metrics {
                m.unbans(jail, UnbanCause::Reload, *n);
            }
        }
        for b in &gone {
            self.announce_unban(b, "reload");
        }
    }
}
