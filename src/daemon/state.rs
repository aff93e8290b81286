//! Opening the state file at start, and what to do when it cannot be read.
//!
//! Owns the one decision "this state file is unusable": a corrupt, truncated
//! or foreign file, or one written by a newer banwarden (another schema), is
//! renamed aside with a clear log line and a fresh one is created, so the
//! unit never crash-loops on it. The bans still in the kernel's sets are then
//! read back into the new file (their time left becomes their expiry). A
//! file held by another process is not touched: that is an error.
//!
//! It must not decide bans, and reads the kernel only through the firewall's
//! listing, never changing it.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::firewall::nft::NftFirewall;
use crate::store::{BanRecord, Store, StoreError, STATE_FILE};
use crate::UnixTime;

/// What opening the state file did.
pub(super) struct Opened {
    pub store: Store,
    /// Where an unusable file was moved, if one was.
    pub moved_aside: Option<PathBuf>,
    /// Bans read back from the kernel into the fresh file.
    pub recovered: usize,
}

/// Opens `state_dir/state.redb`; an unusable one is moved aside and replaced,
/// and the kernel's bans of the enabled jails are recorded in the new one.
pub(super) fn open(
    config: &Config,
    firewall: &NftFirewall,
    now: UnixTime,
) -> Result<Opened, StoreError> {
    let dir = &config.global.state_dir;
    let error = match Store::open(dir) {
        Ok(store) => {
            return Ok(Opened {
                store,
                moved_aside: None,
                recovered: 0,
            })
        }
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Schema { .. })) => e,
        Err(e) => return Err(e),
    };
    let path = dir.join(STATE_FILE);
    let aside = aside_name(&path, &error, now);
    std::fs::rename(&path, &aside).map_err(|source| StoreError::OpenFile {
        path: aside.clone(),
        source,
    })?;
    tracing::error!(
        path = %path.display(),
        moved_to = %aside.display(),
        error = %error,
        "state file unusable: moved aside; starting with a new one and the bans still in the kernel"
    );
    let store = Store::open(dir)?;
    let recovered = kernel_bans(config, firewall, now);
    store.record_bans(&recovered)?;
    tracing::info!(
        bans = recovered.len(),
        "bans recovered from the kernel's sets"
    );
    Ok(Opened {
        store,
        moved_aside: Some(aside),
        recovered: recovered.len(),
    })
}

/// `state.redb.corrupt-<unix time>` or `state.redb.schema<N>-<unix time>`.
fn aside_name(path: &Path, error: &StoreError, now: UnixTime) -> PathBuf {
    let what = match error {
        StoreError::Schema { found, .. } => format!("schema{found}"),
        _ => "corrupt".to_string(),
    };
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-{now}"));
    PathBuf::from(name)
}

/// The bans in the enabled jails' sets, as records expiring when the
/// kernel's elements do. A jail whose sets cannot be read is logged and
/// skipped: starting matters more.
fn kernel_bans(config: &Config, firewall: &NftFirewall, now: UnixTime) -> Vec<BanRecord> {
    let mut out = Vec::new();
    for jail in config.enabled_jails() {
        match firewall.list_elements(&jail.name) {
            Ok(elements) => out.extend(elements.into_iter().map(|(net, left)| BanRecord {
                jail: jail.name.clone(),
                net,
                banned_at: now,
                expires: left.map(|s| now + s as i64),
                count: 1,
                origin: None,
            })),
            Err(e) => {
                tracing::warn!(jail = %jail.name, error = %e, "could not read the jail's bans from the kernel")
            }
        }
    }
    out
}
