//! A reload (SIGHUP, `banwarden reload`): the new configuration is loaded
//! and the firewall set up for it before anything else changes; the old
//! sources are stopped and what they sent is finished under the old routes;
//! then the sources, actions and fleet link restart on the new one.
//!
//! It must not leave a half-applied configuration: any error before the
//! sources restart keeps the old one running whole.

use tokio::sync::mpsc;

use super::running::Resume;
use super::{Daemon, JOURNAL_CURSOR};
use crate::config;
use crate::events::{InternalEvent, ReloadRejected, Reloaded};
use crate::firewall::JailRules;
use crate::jail::walker::Walked;
use crate::jail::BanDecision;

impl Daemon {
    /// Applies a new configuration, or keeps the old one whole if anything
    /// fails; either way one event says so (SIGHUP and `banwarden reload`).
    pub(super) async fn reload(&mut self, rx: &mut mpsc::Receiver<Walked>) -> Result<(), String> {
        let result = self.try_reload(rx).await;
        match &result {
            Ok(()) => Reloaded {
                jails: &self.running.jail_names(),
            }
            .emit(self.metrics.as_deref()),
            Err(e) => ReloadRejected { errors: e }.emit(self.metrics.as_deref()),
        }
        result
    }

    async fn try_reload(&mut self, rx: &mut mpsc::Receiver<Walked>) -> Result<(), String> {
        let config = config::load(&self.dir).map_err(|e| e.to_string())?;
        let old_fleet = self.running.config.global.fleet.clone();
        let rules: Vec<JailRules> = config.enabled_jails().map(|j| j.rules.clone()).collect();
        self.worker
            .reconfigure(rules)
            .await
            .map_err(|e| format!("firewall setup failed: {e}"))?;
        // Stop the old sources, then finish what they already sent with the old
        // routes, so no line is lost or counted under the wrong jail.
        self.running.stop();
        let mut decisions = Vec::new();
        self.finish_sent(rx, &mut decisions).await;
        if let Err(e) = self.apply(&mut decisions, crate::now()) {
            tracing::error!(error = %e, "bans decided during reload were not applied");
        }
        self.save_positions();
        let resume = Resume {
            files: self.positions.values().cloned().collect(),
            journal_cursor: self.store.cursor(JOURNAL_CURSOR).ok().flatten(),
        };
        self.running.restart(config, &self.tx, &resume);
        self.walker.set_routes(self.running.engine.walk_routes());
        // Before the removed jails' actions stop: they get the unbans.
        self.lift_bans_of_removed_jails();
        self.outbound.actions.reconfigure(&self.running.config);
        self.adopt_start_positions();
        // Bans of jails that are gone were dropped with their sets.
        let names = self.running.jail_names();
        self.bans
            .retain(|(jail, _), _| names.iter().any(|n| n == jail));
        self.note_restored_bans();
        self.reconnect_fleet(old_fleet);
        self.install_fleet_tap();
        Ok(())
    }

    /// Handles everything the sources sent before they were stopped: the
    /// walker thread passes on what it still holds, and all of it is counted
    /// here, under the routes it was read for.
    pub(super) async fn finish_sent(
        &mut self,
        rx: &mut mpsc::Receiver<Walked>,
        decisions: &mut Vec<BanDecision>,
    ) {
        let mut done = self.walker.flush();
        loop {
            tokio::select! {
                biased;
                Some(mut w) = rx.recv() => self.handle(&mut w, crate::now(), decisions),
                _ = &mut done => break,
            }
        }
        while let Ok(mut w) = rx.try_recv() {
            self.handle(&mut w, crate::now(), decisions);
        }
    }
}
