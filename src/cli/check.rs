//! `banwarden check`: validate a config directory and say what it holds.

use std::path::Path;

/// Exit 0 with a summary when valid, 1 with every error otherwise.
pub fn run(dir: &Path) -> i32 {
    match crate::config::load(dir) {
        Ok(c) => {
            let enabled: Vec<&str> = c.enabled_jails().map(|j| j.name.as_str()).collect();
            println!(
                "{}: OK: {} filters, {} jails ({} enabled{}{})",
                dir.display(),
                c.filters.len(),
                c.jails.len(),
                enabled.len(),
                if enabled.is_empty() { "" } else { ": " },
                enabled.join(", ")
            );
            for n in &c.notes {
                println!("note: {n}");
            }
            if let Some(f) = &c.global.fleet {
                let shared = c
                    .enabled_jails()
                    .filter(|j| j.fleet == crate::config::fleet::JailFleet::Shared)
                    .count();
                println!(
                    "fleet: node {} on {} (prefix {}), {shared} shared jail(s)",
                    f.node,
                    f.redacted(),
                    f.prefix
                );
                // Unreachable now is not a config error: the daemon bans
                // locally and keeps reconnecting.
                if let Err(e) = crate::fleet::probe(f, std::time::Duration::from_secs(2)) {
                    println!(
                        "warning: fleet: Redis at {} does not answer now: {e} (the daemon would ban locally and keep retrying)",
                        f.redacted()
                    );
                }
            }
            0
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!(
                "{}: {} error(s); nothing was changed",
                dir.display(),
                errs.0.len()
            );
            1
        }
    }
}
