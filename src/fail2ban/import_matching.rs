//! What a fail2ban jail reads and matches with: its backend (files or the
//! journal), its filter as a `fail2ban:NAME[...]` reference with the
//! options fail2ban passes, the jail's own `failregex`/`ignoreregex`, and
//! its logpath or journal matches.
//!
//! Owns that mapping for `import`; it compiles the filter (so the result
//! passes `check`) but never writes or renders anything.

use super::{any_file, defines_logtype, Ctx, Level, Matching};
use crate::fail2ban::jails::{KNOWN_FAILREGEX, KNOWN_IGNOREREGEX};
use crate::fail2ban::known as banwarden_known;
use crate::fail2ban::syntax::{format_ref, split_ref};

impl Ctx<'_> {
    /// The backend: whether the jail reads the journal (systemd) rather
    /// than files.
    pub(super) fn backend(&mut self) -> Result<bool, String> {
        let f2b = self.f2b;
        // Backend: the journal for systemd, files for the others.
        let backend = f2b.get("backend").unwrap_or("auto").trim().to_string();
        let (backend_name, backend_opts) = split_ref(&backend)?;
        let journal_backend = backend_name.starts_with("systemd");
        match backend_name.as_str() {
            _ if journal_backend => {
                if !backend_opts.is_empty() {
                    self.push(
                        Level::NotImported,
                        self.at("backend"),
                        format!(
                            "backend options {backend_opts:?}: the system journal is read \
                             (set journal.files in a .local.yaml for other journal files)"
                        ),
                    );
                }
            }
            "auto" | "polling" | "pyinotify" | "gamin" => {}
            other => self.push(
                Level::Note,
                self.at("backend"),
                format!("backend {other:?} is unknown; its log files are followed"),
            ),
        }
        self.mark("backend", "backend");

        Ok(journal_backend)
    }

    /// The filter, with the options fail2ban adds or a jail may override,
    /// and the jail's own patterns.
    pub(super) fn filter(&mut self, journal_backend: bool) -> Result<Matching, String> {
        let f2b = self.f2b;
        // Filter, with the options fail2ban adds or a jail may override.
        let filter_value = f2b.get("filter").unwrap_or("").trim();
        if filter_value.is_empty() {
            return Err("no filter (fail2ban only warns; banwarden needs one)".into());
        }
        let (filter_name, mut filter_opts) = split_ref(filter_value)?;
        let filter_path = self
            .files
            .dir
            .join("filter.d")
            .join(format!("{filter_name}.conf"));
        if journal_backend && !filter_opts.contains_key("logtype") && !defines_logtype(&filter_path)
        {
            filter_opts.insert("logtype".into(), "journal".into());
        }
        for opt in ["datepattern", "logtimezone", "maxlines"] {
            if let Some(v) = f2b.get(opt) {
                filter_opts.insert(opt.to_string(), v.trim().to_string());
            }
        }
        if f2b.get("prefregex").is_some_and(|v| !v.trim().is_empty()) {
            self.push(
                Level::NotImported,
                self.at("prefregex"),
                format!(
                    "prefregex set in the jail is not imported: put it in \
                     filter.d/{filter_name}.local"
                ),
            );
        }
        let failregex = self.patterns("failregex", KNOWN_FAILREGEX, banwarden_known::FAIL)?;
        let ignoreregex =
            self.patterns("ignoreregex", KNOWN_IGNOREREGEX, banwarden_known::IGNORE)?;
        if filter_name == "recidive" {
            self.push(
                Level::NotImported,
                self.at("filter"),
                "recidive reads fail2ban's own log, which banwarden does not write: \
                 give the jails bantime_increment with across_jails: true instead",
            );
        }
        let filter = format_ref(&filter_name, &filter_opts)?;
        self.mark("filter", "filter");
        let compiled = crate::fail2ban::compile_ref(&filter, &self.files.dir, &self.files.dir)
            .map_err(|e| format!("filter {filter}: {e}"))?;
        for n in &compiled.notes {
            self.push(Level::Note, None, format!("filter {filter_name}: {n}"));
        }
        if failregex.is_some() || ignoreregex.is_some() {
            // The jail's patterns must compile with the filter, as `check`
            // will compile them.
            let mut spec = compiled.filter.spec.clone();
            let merged = |own: &[String], jail: &[String], known: &str| -> Vec<String> {
                jail.iter()
                    .flat_map(|p| match p == known {
                        true => own.to_vec(),
                        false => vec![p.clone()],
                    })
                    .collect()
            };
            if let Some(l) = &failregex {
                spec.failregex = merged(&spec.failregex, l, banwarden_known::FAIL);
            }
            if let Some(l) = &ignoreregex {
                spec.ignoreregex = merged(&spec.ignoreregex, l, banwarden_known::IGNORE);
            }
            crate::filter::Filter::compile(spec)
                .map_err(|e| format!("the jail's own failregex/ignoreregex: {e}"))?;
            self.mark("failregex", "failregex");
            self.mark("ignoreregex", "ignoreregex");
        }

        Ok(Matching {
            filter,
            filter_name,
            journalmatch: compiled.imported.journalmatch.clone(),
            failregex,
            ignoreregex,
        })
    }

    /// The log files, or the journal matches for the systemd backend.
    pub(super) fn sources(
        &mut self,
        journal_backend: bool,
        enabled: bool,
        matching: &Matching,
    ) -> Result<(Vec<String>, Option<Vec<String>>), String> {
        let f2b = self.f2b;
        let filter_name = &matching.filter_name;
        let mut logpath = Vec::new();
        let mut journal = None;
        if journal_backend {
            let matches = match f2b.get("journalmatch") {
                Some(v) if !v.trim().is_empty() => {
                    self.mark("journal", "journalmatch");
                    crate::fail2ban::filter::split_journalmatch(v)
                }
                _ => matching.journalmatch.clone(),
            };
            if matches.is_empty() {
                return Err(format!(
                    "backend systemd, but filter {filter_name} has no journalmatch \
                     (banwarden never reads the whole journal): set journalmatch in the jail"
                ));
            }
            crate::source::journal::validate_matches(&matches)
                .map_err(|e| format!("journalmatch: {e}"))?;
            journal = Some(matches);
            if f2b.get("logpath").is_some_and(|v| !v.trim().is_empty()) {
                self.push(
                    Level::Note,
                    self.at("logpath"),
                    "logpath is ignored with the systemd backend, as in fail2ban",
                );
            }
        } else {
            for line in f2b.get("logpath").unwrap_or("").lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                // fail2ban's `PATH head|tail`: where to start a new file.
                let path = match line.rsplit_once(' ') {
                    Some((p, "head" | "tail")) => p.trim(),
                    _ => line,
                };
                logpath.push(path.to_string());
            }
            self.mark("logpath", "logpath");
            if logpath.is_empty() {
                return Err("no logpath (and not the systemd backend)".into());
            }
            if enabled && !logpath.iter().any(|p| any_file(p)) {
                self.push(
                    Level::Note,
                    self.at("logpath"),
                    format!(
                        "no file matches {} yet (fail2ban refuses to start such a jail; \
                         banwarden waits for it); is this log in the journal (backend = systemd)?",
                        logpath.join(", ")
                    ),
                );
            }
        }

        Ok((logpath, journal))
    }

    /// The jail's own `option` (`failregex`, `ignoreregex`), one pattern a
    /// line, which replaces the filter's as in fail2ban; fail2ban's
    /// `%(known/OPTION)s` (read as `marker`) becomes banwarden's `entry`.
    /// An empty value clears the filter's list, as in fail2ban: for
    /// `failregex` that is a jail that never matches, not imported.
    fn patterns(
        &mut self,
        option: &str,
        marker: &str,
        entry: &str,
    ) -> Result<Option<Vec<String>>, String> {
        let Some(v) = self.f2b.get(option) else {
            return Ok(None);
        };
        let at = self.at(option).unwrap_or_default();
        let mut out = Vec::new();
        for line in v.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
            if line == marker {
                out.push(entry.to_string());
            } else if line.contains(marker) {
                return Err(format!(
                    "{at}: {option}: %(known/{option})s inside a pattern (not on a line \
                     of its own) is not supported"
                ));
            } else {
                out.push(line.to_string());
            }
        }
        if out.is_empty() && option == "failregex" {
            return Err(format!(
                "{at}: failregex is empty: the jail would never match (fail2ban runs it so)"
            ));
        }
        Ok(Some(out))
    }
}
