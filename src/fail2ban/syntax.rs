//! fail2ban's reference syntax, for `import-fail2ban`: `name[key=value,
//! ...]` (several option groups merge, values may be quoted), action lists
//! (actions separated by blanks or new lines outside their options), and
//! writing a `fail2ban:NAME[...]` filter reference back with the quoting
//! its values need; a fail2ban jail name as a valid banwarden one. Text
//! only: it reads no files and knows no option's meaning.

use std::collections::BTreeMap;

/// `name[key=value, ...]` split; a plain `name` has no options. Several
/// groups (`name[a=1][b=2]`, as `%(action_)s[name=x]` writes) merge, later
/// values winning, as in fail2ban.
pub fn split_ref(s: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let Some(open) = s.find('[') else {
        return Ok((s.trim().to_string(), BTreeMap::new()));
    };
    let mut opts = BTreeMap::new();
    let mut rest = &s[open..];
    while let Some(body) = rest.trim_start().strip_prefix('[') {
        let end = group_end(body).ok_or_else(|| format!("{s:?}: missing the closing `]`"))?;
        let group =
            super::filter::parse_options(&body[..end]).map_err(|e| format!("{s:?}: {e}"))?;
        opts.extend(group);
        rest = &body[end + 1..];
    }
    if !rest.trim().is_empty() {
        return Err(format!(
            "{s:?}: unexpected {:?} after the options",
            rest.trim()
        ));
    }
    Ok((s[..open].trim().to_string(), opts))
}

/// Where the `]` closing an option group is (quotes and nested brackets
/// skipped).
fn group_end(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

/// fail2ban's action list: actions separated by blanks or new lines
/// outside their `[...]` options (which may span lines).
pub fn split_actions(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote) = (0usize, None);
    for c in value.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if depth > 0 => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, c) if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(if c == '\n' { ' ' } else { c });
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    // `name [opts]`: options after a blank belong to the name before.
    let mut merged: Vec<String> = Vec::new();
    for a in out {
        match merged.last_mut() {
            Some(last) if a.starts_with('[') => last.push_str(&a),
            _ => merged.push(a),
        }
    }
    merged
}

/// `fail2ban:NAME[key=value, ...]`, values quoted where they need it.
pub fn format_ref(name: &str, opts: &BTreeMap<String, String>) -> Result<String, String> {
    if opts.is_empty() {
        return Ok(format!("fail2ban:{name}"));
    }
    let mut parts = Vec::new();
    for (k, v) in opts {
        let plain = !v.is_empty() && !v.contains([',', '"', '\'', '[', ']']) && v.trim() == v;
        parts.push(if plain {
            format!("{k}={v}")
        } else if !v.contains('"') {
            format!("{k}=\"{v}\"")
        } else if !v.contains('\'') {
            format!("{k}='{v}'")
        } else {
            return Err(format!(
                "filter option {k} = {v:?} holds both quote characters"
            ));
        });
    }
    Ok(format!("fail2ban:{name}[{}]", parts.join(", ")))
}

/// A valid banwarden jail name for a fail2ban one.
pub fn banwarden_name(name: &str) -> String {
    let valid = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        return name.to_string();
    }
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "j-");
    }
    s.truncate(32);
    s
}
