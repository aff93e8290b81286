//! A fail2ban `filter.d` file, read unmodified, as a banwarden [`FilterSpec`].
//!
//! Owns how fail2ban's filter reader combines a file's values: options passed
//! as `name[key=value, ...]` (`mode=aggressive`) over `[Init]` over
//! `[Definition]` and `[DEFAULT]` (with `%(NAME)s` interpolated, `ini`'s job),
//! then `<NAME>` tags substituted from those values recursively
//! (`<mdre-<mode>>`, `<lt_file/__prefix_line>`), then `failregex` and
//! `ignoreregex` split into one pattern a line. Everything it cannot honour
//! comes back as a [`Note`] with file and line. It compiles no regex (the
//! filter does, in its fail2ban dialect) and reads only the files named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ini::{Ini, IniError, Origin};
use crate::filter::{Dialect, FilterSpec};

/// Something of the file that banwarden does not do as fail2ban would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Origin,
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A filter read from fail2ban files.
#[derive(Debug, Clone)]
pub struct Imported {
    pub spec: FilterSpec,
    pub path: PathBuf,
    /// fail2ban's `journalmatch`, split into journalctl matches.
    pub journalmatch: Vec<String>,
    pub notes: Vec<Note>,
    /// Where `prefregex`, `failregex` and `ignoreregex` were written.
    pub origins: BTreeMap<&'static str, Origin>,
}

/// A fail2ban filter reference: a path or `fail2ban:NAME`, with options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRef {
    pub path: PathBuf,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Fail2banError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error("{file}: no failregex in [Definition] (is this a fail2ban filter file?)")]
    NoFailregex { file: PathBuf },
    #[error("{reference:?}: options must be `name[key=value, ...]`: {message}")]
    Options { reference: String, message: String },
}

/// Whether `name` refers to a fail2ban filter: `fail2ban:NAME[...]`, or a
/// path to a `.conf`/`.local` file, with or without `[options]`.
pub fn is_fail2ban_ref(name: &str) -> bool {
    let base = name.split('[').next().unwrap_or(name);
    name.starts_with("fail2ban:") || base.ends_with(".conf") || base.ends_with(".local")
}

/// Parses `fail2ban:NAME[opts]` (looked up in `fail2ban_dir/filter.d`) or
/// `PATH[opts]` (relative to `base`).
pub fn parse_ref(name: &str, fail2ban_dir: &Path, base: &Path) -> Result<FilterRef, Fail2banError> {
    let bad = |message: &str| Fail2banError::Options {
        reference: name.to_string(),
        message: message.to_string(),
    };
    let (head, options) = match name.split_once('[') {
        None => (name, BTreeMap::new()),
        Some((head, rest)) => {
            let body = rest
                .trim_end()
                .strip_suffix(']')
                .ok_or_else(|| bad("missing the closing `]`"))?;
            (head, parse_options(body).map_err(|m| bad(&m))?)
        }
    };
    let path = match head.strip_prefix("fail2ban:") {
        Some(n) => fail2ban_dir.join("filter.d").join(format!("{n}.conf")),
        None if Path::new(head).is_absolute() => PathBuf::from(head),
        None => base.join(head),
    };
    Ok(FilterRef { path, options })
}

/// fail2ban's `journalmatch` as journalctl matches: words of a line (`+`
/// kept: it separates alternatives, as for journalctl), each further line
/// one more alternative (fail2ban adds a disjunction per line).
pub fn split_journalmatch(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in value.split('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push("+".into());
        }
        out.extend(words.iter().map(|w| w.trim_matches('"').to_string()));
    }
    out
}

/// `key=value, key2="a, b", key3='x'` (fail2ban's option syntax).
pub(crate) fn parse_options(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("expected key=value at {rest:?}"))?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
        {
            return Err(format!("bad option name {key:?}"));
        }
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = after[1..]
                    .find(q)
                    .ok_or_else(|| format!("unclosed quote in the value of {key}"))?;
                (&after[1..end + 1], &after[end + 2..])
            }
            _ => match after.find(',') {
                Some(c) => (after[..c].trim_end(), &after[c..]),
                None => (after.trim_end(), ""),
            },
        };
        out.insert(key, value.to_string());
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// Reads the filter `r` refers to.
pub fn load(r: &FilterRef) -> Result<Imported, Fail2banError> {
    let ini = Ini::read(&r.path)?;
    let vars = &r.options;
    let notes = std::cell::RefCell::new(Vec::new());
    let file_at = Origin {
        file: r.path.clone(),
        line: 0,
    };
    // One option's value: passed > [Init] > [Definition] > [DEFAULT].
    let value = |name: &str| -> Result<Option<(String, Origin)>, IniError> {
        let name = name.to_ascii_lowercase();
        if let Some(v) = vars.get(&name) {
            return Ok(Some((v.clone(), file_at.clone())));
        }
        if !name.contains('/') && ini.own_options("Init").contains(&name.as_str()) {
            return ini.get("Init", &name, vars).transpose();
        }
        ini.get("Definition", &name, vars).transpose()
    };
    let resolved = |name: &str| -> Result<Option<(String, Origin)>, Fail2banError> {
        let Some((raw, at)) = value(name)? else {
            return Ok(None);
        };
        // A tag whose value cannot be read stays as it is, and is said.
        let lookup = |n: &str| match value(n) {
            Ok(v) => v.map(|v| v.0),
            Err(e) => {
                let message = format!("{name}: tag <{n}> left as it is: {e}");
                let mut notes = notes.borrow_mut();
                if !notes.iter().any(|x: &Note| x.message == message) {
                    notes.push(Note {
                        at: at.clone(),
                        message,
                    });
                }
                None
            }
        };
        let (text, unresolved) = substitute(&raw, &lookup);
        if let Some(loop_at) = unresolved {
            notes.borrow_mut().push(Note {
                at: at.clone(),
                message: format!("{name}: tag <{loop_at}> nests too deep (a loop?); left as it is"),
            });
        }
        Ok(Some((text, at)))
    };
    let lines = |v: &str| -> Vec<String> {
        v.split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let mut origins = BTreeMap::new();
    for key in ["prefregex", "failregex", "ignoreregex", "datepattern"] {
        if let Some((_, at)) = value(key)? {
            origins.insert(key, at);
        }
    }
    let Some((fail, fail_at)) = resolved("failregex")? else {
        return Err(Fail2banError::NoFailregex {
            file: r.path.clone(),
        });
    };
    let failregex = lines(&fail);
    let prefregex = resolved("prefregex")?
        .map(|v| v.0.trim().to_string())
        .filter(|p| !p.is_empty());
    let ignoreregex = resolved("ignoreregex")?
        .map(|v| lines(&v.0))
        .unwrap_or_default();
    let datepattern = resolved("datepattern")?.map(|(v, at)| (v.trim().to_string(), at));
    let maxlines = match resolved("maxlines")? {
        None => 1,
        Some((v, at)) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                notes.borrow_mut().push(Note {
                    at,
                    message: format!("maxlines = {v:?} is not a number; 1 is used"),
                });
                1
            }
        },
    };
    let journalmatch = resolved("journalmatch")?
        .map(|v| split_journalmatch(&v.0))
        .unwrap_or_default();
    let logtimezone = resolved("logtimezone")?
        .map(|v| v.0.trim().to_string())
        .filter(|v| !v.is_empty());
    let mut notes = notes.into_inner();
    if maxlines > crate::filter::MAX_LINES {
        notes.push(Note {
            at: value("maxlines")?.map_or(file_at.clone(), |v| v.1),
            message: format!(
                "maxlines = {maxlines}: at most {} lines are matched together",
                crate::filter::MAX_LINES
            ),
        });
    }
    for (i, f) in failregex.iter().enumerate() {
        if f.contains("<F-MLFID>") {
            notes.push(Note {
                at: fail_at.clone(),
                message: format!(
                    "failregex[{i}]: <F-MLFID> is honoured in the prefregex only \
                     (fail2ban's filters name sessions there); here it names none"
                ),
            });
        }
    }
    let name = r
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("fail2ban")
        .to_string();
    let description = ini
        .files
        .first()
        .map(|f| format!("fail2ban filter {}", f.display()))
        .unwrap_or_default();
    let spec = FilterSpec {
        name,
        description,
        prefregex,
        failregex,
        ignoreregex,
        datepattern: datepattern.map(|d| d.0).filter(|d| !d.is_empty()),
        dialect: Dialect::Fail2ban,
        logtimezone,
        maxlines,
    };
    Ok(Imported {
        spec,
        path: r.path.clone(),
        journalmatch,
        notes,
        origins,
    })
}

/// Most rounds of `<NAME>` substitution (fail2ban's nesting is a few deep).
const MAX_TAG_ROUNDS: usize = 32;

/// Replaces `<NAME>` tags (innermost first) with `lookup(NAME)` until none
/// is left that `lookup` knows. Tags it does not know (`<HOST>`, `<F-USER>`)
/// stay. Returns the text and, if it gave up, the tag that kept growing.
fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, Option<String>) {
    let mut s = text.to_string();
    for _ in 0..MAX_TAG_ROUNDS {
        let mut out = String::with_capacity(s.len());
        let mut changed = false;
        let mut rest = s.as_str();
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let end = after.find(|c: char| c == '<' || c == '>' || c.is_whitespace());
            match end {
                Some(e) if after.as_bytes()[e] == b'>' && e > 0 => {
                    let name = &after[..e];
                    let known = (!is_regex_tag(name)).then(|| lookup(name)).flatten();
                    match known {
                        Some(v) => {
                            out.push_str(&v);
                            changed = true;
                        }
                        None => out.push_str(&rest[open..open + e + 2]),
                    }
                    rest = &after[e + 1..];
                }
                _ => {
                    out.push('<');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        s = out;
        if !changed {
            return (s, None);
        }
    }
    let stuck = s
        .split('<')
        .nth(1)
        .and_then(|t| t.split('>').next())
        .unwrap_or("")
        .to_string();
    (s, Some(stuck))
}

/// fail2ban's regex tags, never option names.
fn is_regex_tag(name: &str) -> bool {
    let n = name.trim_start_matches('/').trim_end_matches('/');
    n.starts_with("F-")
        || matches!(
            n,
            "HOST" | "ADDR" | "IP4" | "IP6" | "DNS" | "CIDR" | "SUBNET" | "SKIPLINES"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_paths_names_and_options() {
        let r = parse_ref(
            "fail2ban:apache-auth[mode=aggressive, x=\"a, b\"]",
            Path::new("/etc/fail2ban"),
            Path::new("/cfg"),
        )
        .unwrap();
        assert_eq!(r.path, Path::new("/etc/fail2ban/filter.d/apache-auth.conf"));
        assert_eq!(r.options["mode"], "aggressive");
        assert_eq!(r.options["x"], "a, b");
        let r = parse_ref("f/sshd.conf", Path::new("/etc/fail2ban"), Path::new("/cfg")).unwrap();
        assert_eq!(r.path, Path::new("/cfg/f/sshd.conf"));
        assert!(parse_ref("x.conf[mode=a", Path::new("/"), Path::new("/")).is_err());
        assert!(is_fail2ban_ref(
            "/etc/fail2ban/filter.d/sshd.conf[mode=ddos]"
        ));
        assert!(is_fail2ban_ref("fail2ban:sshd"));
        assert!(!is_fail2ban_ref("sshd"));
    }

    #[test]
    fn tags_resolve_innermost_first_and_regex_tags_stay() {
        let vals = BTreeMap::from([
            ("mode", "aggr"),
            ("re-aggr", "^a <HOST>"),
            ("pre", "<lt/x>"),
            ("lt/x", "P"),
            ("loop", "<loop>x"),
        ]);
        let lookup = |n: &str| vals.get(n).map(|v| v.to_string());
        assert_eq!(
            substitute("<pre><re-<mode>> <F-USER>", &lookup).0,
            "P^a <HOST> <F-USER>"
        );
        assert_eq!(substitute("a < b <unknown>", &lookup).0, "a < b <unknown>");
        assert!(substitute("<loop>", &lookup).1.is_some());
    }

    #[test]
    fn a_filter_file_becomes_a_spec_with_options_applied() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("common.conf"),
            "[DEFAULT]\n__prefix = (?:\\S+ )?\n",
        )
        .unwrap();
        let f = d.path().join("t.conf");
        std::fs::write(
            &f,
            "[INCLUDES]\nbefore = common.conf\n[Definition]\nmode = normal\n\
             prefregex = ^%(__prefix)s<F-CONTENT>.+</F-CONTENT>$\n\
             failregex = ^fail <HOST>$\n            <re-<mode>>\n\
             re-normal =\nre-aggressive = ^also <HOST>$\nmaxlines = 3\n\
             datepattern = {^LN-BEG}\njournalmatch = _SYSTEMD_UNIT=t.service + _COMM=t\n",
        )
        .unwrap();
        let plain = load(&FilterRef {
            path: f.clone(),
            options: BTreeMap::new(),
        })
        .unwrap();
        assert_eq!(plain.spec.failregex, vec!["^fail <HOST>$"]);
        assert_eq!(
            plain.spec.prefregex.as_deref(),
            Some("^(?:\\S+ )?<F-CONTENT>.+</F-CONTENT>$")
        );
        assert_eq!(
            plain.journalmatch,
            vec!["_SYSTEMD_UNIT=t.service", "+", "_COMM=t"]
        );
        assert_eq!(plain.spec.maxlines, 3);
        assert!(plain.notes.is_empty(), "{:?}", plain.notes);
        let aggr = load(&FilterRef {
            path: f,
            options: BTreeMap::from([("mode".into(), "aggressive".into())]),
        })
        .unwrap();
        assert_eq!(aggr.spec.failregex, vec!["^fail <HOST>$", "^also <HOST>$"]);
        assert_eq!(aggr.spec.dialect, Dialect::Fail2ban);
    }
}
