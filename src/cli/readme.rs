//! The README's table of commands, rendered from the real `Cli` (its
//! commands, their arguments and their one-line help), between the
//! `<!-- commands:begin -->` and `<!-- commands:end -->` markers.
//! `tests/docs.rs` fails when the committed README differs, and
//! `BANWARDEN_BLESS=1 cargo test --test docs` rewrites it.
//!
//! Owns only this rendering; the wording lives on the `Cli` definitions.

use clap::{ArgAction, CommandFactory};

use super::Cli;

/// Options every control command shares, described once under the table
/// rather than on every row.
const SHARED: [&str; 3] = ["config", "socket", "json"];

/// Options shown on a row; beyond, `[OPTIONS]`.
const MAX_OPTIONS: usize = 4;

const BEGIN: &str = "<!-- commands:begin -->\n";
const END: &str = "<!-- commands:end -->";

/// The markdown table: one row per visible command (per subcommand of a
/// command that has them), its synopsis and its help line.
pub fn commands_table() -> String {
    let mut out = String::from("| command | what it does |\n|---|---|\n");
    let cli = Cli::command();
    for cmd in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push_str(&row(cmd, cmd.get_name()));
        }
        for sub in subs {
            out.push_str(&row(sub, &format!("{} {}", cmd.get_name(), sub.get_name())));
        }
    }
    out
}

/// `text` with the table between the markers replaced by a fresh one.
pub fn update_readme(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(b) = out.find(BEGIN) {
        let start = b + BEGIN.len();
        if let Some(e) = out[start..].find(END) {
            out.replace_range(start..start + e, &commands_table());
        }
    }
    out
}

fn row(cmd: &clap::Command, path: &str) -> String {
    let about = cmd
        .get_about()
        .map(|a| a.to_string())
        .unwrap_or_default()
        .trim_end_matches('.')
        .replace('|', "\\|");
    format!("| `{}` | {about} |\n", synopsis(cmd, path))
}

/// `banwarden PATH` and its arguments: positionals as `NAME`, `[NAME]` or
/// `NAME...`, options as `--long VALUE`, optional ones in brackets (at most
/// `MAX_OPTIONS`); hidden ones and the shared `--config`, `--socket` and
/// `--json` left out. `|` is escaped for the markdown table.
fn synopsis(cmd: &clap::Command, path: &str) -> String {
    let mut parts = vec![format!("banwarden {path}")];
    let mut options = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || SHARED.contains(&id) || id == "help" || id == "version" {
            continue;
        }
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| id.to_uppercase());
        let many = matches!(arg.get_action(), ArgAction::Append)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let dots = if many { "..." } else { "" };
        let text = match arg.get_long() {
            None => format!("{value}{dots}"),
            Some(long) if arg.get_action().takes_values() => {
                format!("--{long} {value}{dots}")
            }
            Some(long) => format!("--{long}"),
        };
        let text = if arg.is_required_set() {
            text
        } else {
            format!("[{text}]")
        };
        if arg.is_positional() {
            parts.push(text);
        } else {
            options.push(text);
        }
    }
    // Positionals after the command, then options, as people type them; a
    // command with many options shows its first few (its --help has all).
    if options.len() > MAX_OPTIONS {
        options.truncate(MAX_OPTIONS - 1);
        options.push("[OPTIONS]".to_string());
    }
    parts.extend(options);
    parts.join(" ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_visible_command_has_a_row_and_hidden_knobs_none() {
        let table = super::commands_table();
        for cmd in [
            "run", "check", "dry-run", "status", "ban", "unban", "reload",
        ] {
            assert!(table.contains(&format!("`banwarden {cmd}")), "{table}");
        }
        assert!(table.contains("`banwarden generate man"), "{table}");
        assert!(
            table.contains("`banwarden generate completions SHELL"),
            "{table}"
        );
        for hidden in ["--chunk-kib", "--no-date-cache", "--nft"] {
            assert!(!table.contains(hidden), "{hidden}: {table}");
        }
    }
}
