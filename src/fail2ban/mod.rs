//! fail2ban compatibility: its `filter.d` files read unmodified, its jails
//! imported.
//!
//! Owns reading fail2ban's configuration files (`ini`: its INI dialect with
//! includes and interpolation; `filter`: a filter file, with options, as a
//! banwarden `FilterSpec` in the fail2ban dialect, plus what could not be
//! honoured; `jails`: the layered jail files; `import`, `actions`: a jail
//! in banwarden's terms, with what has no equivalent; `syntax`: fail2ban's
//! `name[key=value]` references). It must not match lines itself: the
//! patterns it produces run in the one filter engine (`crate::filter`),
//! Python syntax and all.

pub mod actions;
pub mod filter;
pub mod import;
pub mod ini;
pub mod jails;
pub mod syntax;

pub use filter::{is_fail2ban_ref, load, parse_ref, Fail2banError, FilterRef, Imported, Note};

/// The entries of a banwarden jail's own `failregex`/`ignoreregex` that
/// stand for its filter's own patterns, spelt as in a fail2ban jail.
pub mod known {
    /// In `failregex`: the filter's failregexes.
    pub const FAIL: &str = "%(known/failregex)s";
    /// In `ignoreregex`: the filter's ignoreregexes.
    pub const IGNORE: &str = "%(known/ignoreregex)s";
}

/// Where fail2ban keeps its configuration unless `fail2ban_dir` says otherwise.
pub const DEFAULT_DIR: &str = "/etc/fail2ban";

use std::path::Path;

use crate::filter::{Filter, PatternRef};

/// A fail2ban filter compiled, with what `check` should tell about it.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub filter: Filter,
    pub imported: Imported,
    /// Everything not honoured as fail2ban would, and the patterns that run
    /// on the backtracking fallback, each with `file:line`.
    pub notes: Vec<String>,
}

/// Reads and compiles the fail2ban filter `name` refers to
/// (`fail2ban:NAME[opts]` in `fail2ban_dir`, or `PATH.conf[opts]` relative
/// to `base`). The error names the file and line of the faulty value.
pub fn compile_ref(name: &str, fail2ban_dir: &Path, base: &Path) -> Result<Compiled, String> {
    let r = parse_ref(name, fail2ban_dir, base).map_err(|e| e.to_string())?;
    let imported = load(&r).map_err(|e| e.to_string())?;
    let at = |which: PatternRef| {
        let key = match which {
            PatternRef::Prefregex => "prefregex",
            PatternRef::Failregex(_) => "failregex",
            PatternRef::Ignoreregex(_) => "ignoreregex",
            PatternRef::Datepattern => "datepattern",
        };
        imported
            .origins
            .get(key)
            .map_or_else(|| r.path.display().to_string(), |o| o.to_string())
    };
    let filter =
        Filter::compile(imported.spec.clone()).map_err(|e| format!("{}: {e}", at(e.which)))?;
    let mut notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
    for (which, why) in filter.fallback_patterns() {
        notes.push(format!(
            "{}: {which} runs on the backtracking fallback ({why}), at most {} steps a line",
            at(which),
            crate::filter::BACKTRACK_LIMIT
        ));
    }
    Ok(Compiled {
        filter,
        imported,
        notes,
    })
}
