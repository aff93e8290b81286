//! Address lists in the config that may name files: `ignoreip` (global and
//! per jail) and the global `trusted_proxies`. An entry is an address, a
//! CIDR, or `file:PATH` (relative to the config directory): the file's lines
//! are read here, every bad one reported as its own `file:line` error.
//!
//! Owns turning such a list into nets plus shared [`AllowFile`]s; re-reading
//! changed files is `jail::allowfile`'s.

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde_saphyr::Spanned;

use super::{parse_net, Config, ConfigError, Errors};
use crate::jail::allowfile::{AllowFile, AllowFileError};

/// The prefix of an entry naming a file.
pub const FILE_PREFIX: &str = "file:";

/// Reads `list` (of `field` in `yaml`): plain entries as nets, `file:`
/// entries as loaded files.
pub(super) fn entries(
    dir: &Path,
    yaml: &Path,
    list: &[Spanned<String>],
    field: &str,
    errs: &mut Errors,
) -> (Vec<IpNet>, Vec<Arc<AllowFile>>) {
    let mut nets = Vec::new();
    let mut files = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let here = format!("{field}[{i}]");
        let Some(rel) = s.value.trim().strip_prefix(FILE_PREFIX) else {
            match parse_net(&s.value) {
                Ok(n) => nets.push(n),
                Err(e) => errs.at(yaml, s, &here, format!("{e} (or file:PATH of a list)")),
            }
            continue;
        };
        let rel = rel.trim();
        if rel.is_empty() {
            errs.at(
                yaml,
                s,
                &here,
                "file: needs a path, e.g. file:/etc/banwarden/allow.txt",
            );
            continue;
        }
        let path = dir.join(rel);
        let listed = format!("listed in {}:{}", yaml.display(), s.referenced.line());
        match AllowFile::load(&path) {
            Ok(f) => files.push(f),
            Err(AllowFileError::BadLines { path, lines }) => {
                for bad in lines {
                    errs.0.push(ConfigError {
                        file: path.clone(),
                        line: bad.line,
                        column: 1,
                        field: here.clone(),
                        message: format!("{} ({listed})", bad.message),
                    });
                }
            }
            Err(e @ AllowFileError::Read { .. }) => errs.at(yaml, s, &here, e.to_string()),
        }
    }
    (nets, files)
}

impl Config {
    /// Every list file the configuration reads (for the daemon to watch).
    pub fn allow_files(&self) -> Vec<Arc<AllowFile>> {
        let mut out: Vec<Arc<AllowFile>> = Vec::new();
        for j in self.enabled_jails() {
            out.extend(j.settings.ignore.files().cloned());
        }
        out
    }
}
