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
