//! Documentation generated from the key registry: the README's reference
//! tables (between `<!-- keys:SCOPE:begin -->` and `<!-- keys:SCOPE:end -->`
//! markers) and the `banwarden.yaml(5)` man page.
//!
//! Owns rendering only; what a key is lives in `config::keys`.

use super::keys::{self, Default, Key, Scope};

/// The markdown reference table of one scope.
pub fn markdown_table(scope: Scope) -> String {
    let mut out = String::from("| key | type | default | meaning |\n|---|---|---|---|\n");
    for k in keys::of(scope) {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.name,
            k.ty.describe(),
            default_markdown(k),
            k.doc.replace('|', "\\|")
        ));
    }
    out
}

fn default_markdown(k: &Key) -> String {
    match k.default {
        Default::Value(v) => format!("`{v}`"),
        Default::Note(n) => n.to_string(),
        Default::Required => "(required)".into(),
        Default::Unset => String::new(),
    }
}

/// `text` with every marked table replaced by the registry's; markers whose
/// scope is unknown or that are unterminated are left as they are.
pub fn update_readme(text: &str) -> String {
    let mut out = text.to_string();
    for scope in Scope::ALL {
        let begin = format!("<!-- keys:{}:begin -->\n", scope.name());
        let end = format!("<!-- keys:{}:end -->", scope.name());
        let Some(b) = out.find(&begin) else { continue };
        let start = b + begin.len();
        let Some(e) = out[start..].find(&end) else {
            continue;
        };
        out.replace_range(start..start + e, &markdown_table(scope));
    }
    out
}

/// Escapes text for roff and renders markdown `code` in bold.
fn roff(text: &str) -> String {
    let mut out = String::new();
    let mut bold = false;
    for c in text.chars() {
        match c {
            '`' => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    // A line starting with . or ' would be a request.
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// The `banwarden.yaml(5)` man page, as roff.
pub fn man_page(version: &str) -> String {
    let mut out = format!(
        ".TH BANWARDEN.YAML 5 \"\" \"banwarden {version}\" \"File Formats\"\n\
.SH NAME\nbanwarden.yaml \\- configuration of the banwarden daemon\n\
.SH SYNOPSIS\n/etc/banwarden/banwarden.yaml, /etc/banwarden/jails/*.yaml, /etc/banwarden/filters/*.yaml\n\
.SH DESCRIPTION\n\
A configuration directory holds \\fBbanwarden.yaml\\fR (global settings), \
\\fBfilters/NAME.yaml\\fR (which lines are failures) and \\fBjails/*.yaml\\fR \
(a map of jail names to jails). Jail files are read in name order, then \
\\fB*.local.yaml\\fR files in name order; a later file's keys override an \
earlier one's, key by key, so \\fBjails/sshd.local.yaml\\fR containing \
\\fBsshd: {{enabled: true}}\\fR enables the shipped sshd jail.\n\
.PP\n\
Durations are written \\fB90s\\fR, \\fB10m\\fR, \\fB1h\\fR, \\fB1d\\fR, \\fB1w\\fR, \
\\fB1h30m\\fR or as seconds. \\fBbanwarden check\\fR validates a directory and \
reports every mistake with file, line, column and field.\n"
    );
    for scope in Scope::ALL {
        let title = match scope {
            Scope::Global => "GLOBAL KEYS (banwarden.yaml)",
            Scope::Jail => "JAIL KEYS (jails/*.yaml, and defaults: of banwarden.yaml)",
            Scope::Journal => "JOURNAL KEYS (journal: of a jail)",
            Scope::Increment => "BANTIME INCREMENT KEYS (bantime_increment: of a jail)",
            Scope::Filter => "FILTER KEYS (filters/NAME.yaml)",
        };
        out.push_str(&format!(".SH \"{title}\"\n"));
        for k in keys::of(scope) {
            out.push_str(&format!(".TP\n.B {}\n", k.name));
            let default = match k.default {
                Default::Value(v) => format!("; default `{v}`"),
                Default::Note(n) => format!("; default {n}"),
                Default::Required => "; required".into(),
                Default::Unset => String::new(),
            };
            out.push_str(&roff(&format!("{}{default}", k.ty.describe())));
            out.push_str("\n.br\n");
            out.push_str(&roff(k.doc));
            out.push('\n');
        }
    }
    out.push_str(".SH SEE ALSO\n\\fBbanwarden\\fR(8)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_replace_only_between_markers() {
        let text = "intro\n<!-- keys:journal:begin -->\nold\n<!-- keys:journal:end -->\nrest\n";
        let new = update_readme(text);
        assert!(new.starts_with("intro\n<!-- keys:journal:begin -->\n| key |"));
        assert!(new.contains("| `match` | list of text | (required) |"));
        assert!(new.ends_with("<!-- keys:journal:end -->\nrest\n"));
        assert!(!new.contains("old"));
        assert_eq!(update_readme(&new), new);
    }

    #[test]
    fn man_page_names_every_key() {
        let page = man_page("0.0.0");
        for k in keys::KEYS {
            assert!(page.contains(&format!(".B {}\n", k.name)), "{}", k.name);
        }
        assert!(page.contains("\\fB10m\\fR"));
    }
}
