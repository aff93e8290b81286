//! fail2ban's INI dialect: the files of `filter.d` as fail2ban's own config
//! reader sees them.
//!
//! Owns reading a file with its `[INCLUDES]` (`before` files, the file, its
//! `.local` twin, `after` files, recursively), merging sections file by file
//! (remembering overridden values for `%(known/NAME)s`), conditional sections
//! (`[Init?family=inet6]`) and `%(NAME)s` interpolation with `%(SECTION/NAME)s`
//! and `%(known/NAME)s`. It knows nothing of filters or regexes: `<NAME>` tag
//! substitution is `filter`'s. It never writes files.
//!
//! The grammar is Python's `configparser` with fail2ban's settings: `=` or `:`
//! between key and value (the first one), keys lower-cased, values continued
//! on indented lines, full-line comments with `#` or `;`, inline comments only
//! after whitespace and `;`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a value was written: for messages that name file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One value as written (raw: not interpolated) and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub raw: String,
    pub origin: Origin,
}

type Section = BTreeMap<String, Value>;

/// A problem reading fail2ban config files, located.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IniError {
    #[error("{file}: cannot read: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{at}: {message}")]
    Syntax { at: Origin, message: String },
    #[error("{at}: {option}: {message}")]
    Interpolation {
        at: Origin,
        option: String,
        message: String,
    },
}

/// Every file read, merged in fail2ban's order.
#[derive(Debug, Clone, Default)]
pub struct Ini {
    pub defaults: Section,
    pub sections: BTreeMap<String, Section>,
    /// Per section: values that a later file replaced (`%(known/NAME)s`).
    known: BTreeMap<String, Section>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

const MAX_INCLUDE_DEPTH: usize = 16;
/// Python's configparser gives up after 10 levels of `%(...)s`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

impl Ini {
    /// Reads `path` with its includes and `.local` twin, as fail2ban does.
    pub fn read(path: &Path) -> Result<Ini, IniError> {
        let mut order = Vec::new();
        collect(path, &mut Vec::new(), &mut order, 0, true)?;
        Ok(Ini::merged(order))
    }

    /// Reads `files` in this order, each with its includes but without its
    /// `.local` twin (the caller lists those where fail2ban reads them:
    /// `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local`). The
    /// first file must exist; later ones that do not are skipped.
    pub fn read_layered(files: &[PathBuf]) -> Result<Ini, IniError> {
        let mut order = Vec::new();
        let mut seen = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if i > 0 && !f.is_file() {
                continue;
            }
            collect(f, &mut seen, &mut order, 0, false)?;
        }
        Ok(Ini::merged(order))
    }

    fn merged(order: Vec<(PathBuf, Parsed)>) -> Ini {
        let mut ini = Ini::default();
        for (file, parsed) in order {
            ini.merge(parsed);
            ini.files.push(file);
        }
        ini
    }

    /// Section names in name order, `[DEFAULT]` and `[INCLUDES]` left out.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections
            .keys()
            .map(String::as_str)
            .filter(|n| *n != "INCLUDES")
    }

    /// Merges one parsed file over what was read before.
    fn merge(&mut self, parsed: Parsed) {
        for (name, mut section) in parsed.sections {
            if name == "DEFAULT" {
                self.defaults.append(&mut section);
                continue;
            }
            // `[Init?family=inet6]`: keys become `key?family=inet6` in `Init`.
            let (name, section) = match name.split_once('?') {
                Some((base, cond)) if !base.is_empty() => (
                    base.to_string(),
                    section
                        .into_iter()
                        .map(|(k, v)| (format!("{k}?{cond}"), v))
                        .collect(),
                ),
                _ => (name, section),
            };
            let target = self.sections.entry(name.clone()).or_default();
            let known = self.known.entry(name).or_default();
            for (k, v) in section {
                if let Some(old) = target.insert(k.clone(), v) {
                    known.insert(k, old);
                }
            }
        }
    }

    /// The raw value of `option` in `section`, falling back to `[DEFAULT]`.
    pub fn raw(&self, section: &str, option: &str) -> Option<&Value> {
        let option = option.to_ascii_lowercase();
        self.sections
            .get(section)
            .and_then(|s| s.get(&option))
            .or_else(|| self.defaults.get(&option))
    }

    /// Option names of `section` (own ones, not `[DEFAULT]`'s).
    pub fn own_options(&self, section: &str) -> Vec<&str> {
        self.sections
            .get(section)
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The value of `option` in `section`, looked up first in `vars`, then the
    /// section, then `[DEFAULT]`, with `%(NAME)s` interpolated the same way.
    /// `option` may be `SECTION/NAME` or `known/NAME`. `None`: not set.
    pub fn get(
        &self,
        section: &str,
        option: &str,
        vars: &BTreeMap<String, String>,
    ) -> Option<Result<(String, Origin), IniError>> {
        let (raw, origin) = self.lookup(section, option, vars)?;
        // `SECTION/NAME`'s value is interpolated in SECTION, as when it is
        // referred to from another value.
        let section = match option.split_once('/') {
            Some((s, _)) if s != "known" && s != "default" => s,
            _ => section,
        };
        Some(
            self.interpolate(section, option, &raw, &origin, vars, 0)
                .map(|v| (v, origin)),
        )
    }

    fn lookup(
        &self,
        section: &str,
        option: &str,
        vars: &BTreeMap<String, String>,
    ) -> Option<(String, Origin)> {
        let option = option.to_ascii_lowercase();
        let none = || Origin {
            file: PathBuf::from("(option)"),
            line: 0,
        };
        if let Some((sec, opt)) = option.split_once('/') {
            // A caller's value for `known/NAME` wins (fail2ban merges a
            // jail's filter options in as `known/...`).
            if let Some(v) = vars.get(&option) {
                return Some((v.clone(), none()));
            }
            if sec == "known" {
                // The value a later file replaced, else `[DEFAULT]`'s (as
                // fail2ban: never the section's own, which would loop).
                return self
                    .known
                    .get(section)
                    .and_then(|s| s.get(opt))
                    .or_else(|| self.defaults.get(opt))
                    .map(|v| (v.raw.clone(), v.origin.clone()));
            }
            if sec == "default" {
                return self
                    .defaults
                    .get(opt)
                    .map(|v| (v.raw.clone(), v.origin.clone()));
            }
            let secs = self
                .sections
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(sec))
                .map(|(_, s)| s);
            return secs
                .and_then(|s| s.get(opt))
                .or_else(|| self.defaults.get(opt))
                .map(|v| (v.raw.clone(), v.origin.clone()));
        }
        if let Some(v) = vars.get(&option) {
            return Some((v.clone(), none()));
        }
        self.raw(section, &option)
            .map(|v| (v.raw.clone(), v.origin.clone()))
    }

    fn interpolate(
        &self,
        section: &str,
        option: &str,
        raw: &str,
        origin: &Origin,
        vars: &BTreeMap<String, String>,
        depth: usize,
    ) -> Result<String, IniError> {
        let fail = |message: String| IniError::Interpolation {
            at: origin.clone(),
            option: option.to_string(),
            message,
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(fail(format!(
                "more than {MAX_INTERPOLATION_DEPTH} levels of %(...)s (a loop?)"
            )));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(r) = after.strip_prefix('%') {
                out.push('%');
                rest = r;
                continue;
            }
            let Some(body) = after.strip_prefix('(') else {
                return Err(fail(format!(
                    "'%' must be followed by '%' or '(' in {raw:?}"
                )));
            };
            let Some(close) = body.find(")s") else {
                return Err(fail(format!("unclosed %( in {raw:?}")));
            };
            let name = &body[..close];
            // `%(known/x)s` inside the value of `x` means the replaced value.
            let (value, vorigin) = match self.lookup(section, name, vars) {
                Some(v) => v,
                None => return Err(fail(format!("%({name})s is not defined"))),
            };
            let sub_section = match name.split_once('/') {
                Some((s, _)) if s != "known" && s != "default" => s.to_string(),
                _ => section.to_string(),
            };
            let value = self.interpolate(&sub_section, name, &value, &vorigin, vars, depth + 1)?;
            out.push_str(&value);
            rest = &body[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// One file's sections, before merging.
#[derive(Debug, Default)]
struct Parsed {
    sections: Vec<(String, Section)>,
}

impl Parsed {
    fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// Depth-first: `before` includes, the file, its `.local`, `after` includes.
fn collect(
    path: &Path,
    seen: &mut Vec<PathBuf>,
    order: &mut Vec<(PathBuf, Parsed)>,
    depth: usize,
    twin: bool,
) -> Result<(), IniError> {
    let mut files = vec![path.to_path_buf()];
    let local = path.with_extension("local");
    if twin && local != path && local.is_file() {
        files.push(local);
    }
    for (i, file) in files.into_iter().enumerate() {
        if seen.contains(&file) || depth > MAX_INCLUDE_DEPTH {
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            // A missing include (`common.local`) is not an error, as in fail2ban.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && (i > 0 || depth > 0) => continue,
            Err(e) => {
                return Err(IniError::Read {
                    file,
                    message: e.to_string(),
                })
            }
        };
        let parsed = parse(&file, &text)?;
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let includes = |key: &str| -> Vec<PathBuf> {
            parsed
                .section("INCLUDES")
                .and_then(|s| s.get(key))
                .map(|v| {
                    v.raw
                        .split('\n')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| dir.join(s))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (before, after) = (includes("before"), includes("after"));
        seen.push(file.clone());
        for b in before {
            collect(&b, seen, order, depth + 1, true)?;
        }
        order.push((file, parsed));
        for a in after {
            collect(&a, seen, order, depth + 1, true)?;
        }
    }
    Ok(())
}

/// Parses one file's text.
fn parse(file: &Path, text: &str) -> Result<Parsed, IniError> {
    let mut parsed = Parsed::default();
    let mut current: Option<usize> = None;
    let mut last_key: Option<String> = None;
    for (n, raw_line) in text.lines().enumerate() {
        let lineno = n + 1;
        let at = || Origin {
            file: file.to_path_buf(),
            line: lineno,
        };
        let line = strip_inline_comment(raw_line);
        let trimmed = line.trim();
        let full_comment = {
            let t = raw_line.trim_start();
            t.starts_with('#') || t.starts_with(';')
        };
        if full_comment {
            continue;
        }
        if trimmed.is_empty() {
            // An empty line inside a value is kept; it ends nothing by itself.
            if let (Some(s), Some(k)) = (current, &last_key) {
                if let Some(v) = parsed.sections[s].1.get_mut(k) {
                    v.raw.push('\n');
                }
            }
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if indented {
            if let (Some(s), Some(k)) = (current, &last_key) {
                if let Some(v) = parsed.sections[s].1.get_mut(k) {
                    v.raw.push('\n');
                    v.raw.push_str(trimmed);
                    continue;
                }
            }
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let name = name.to_string();
            current = Some(match parsed.sections.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    parsed.sections.push((name, Section::new()));
                    parsed.sections.len() - 1
                }
            });
            last_key = None;
            continue;
        }
        let Some(s) = current else {
            return Err(IniError::Syntax {
                at: at(),
                message: format!("a value before any [section]: {trimmed:?}"),
            });
        };
        let delim = trimmed.find(['=', ':']);
        let Some(d) = delim else {
            return Err(IniError::Syntax {
                at: at(),
                message: format!("expected `name = value`, found {trimmed:?}"),
            });
        };
        let key = trimmed[..d].trim().to_ascii_lowercase();
        let value = trimmed[d + 1..].trim().to_string();
        parsed.sections[s].1.insert(
            key.clone(),
            Value {
                raw: value,
                origin: at(),
            },
        );
        last_key = Some(key);
    }
    // Values end without the blank lines that followed them.
    for (_, sec) in &mut parsed.sections {
        for v in sec.values_mut() {
            let t = v.raw.trim_end_matches('\n').len();
            v.raw.truncate(t);
        }
    }
    Ok(parsed)
}

/// Python's `inline_comment_prefixes=";"`: a `;` after whitespace starts a comment.
fn strip_inline_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] == b';' && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn get(ini: &Ini, sec: &str, opt: &str) -> String {
        ini.get(sec, opt, &BTreeMap::new()).unwrap().unwrap().0
    }

    #[test]
    fn includes_local_twins_and_known_values_merge_in_fail2ban_order() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "common.conf",
            "[DEFAULT]\n_daemon = \\S*\nprefix = <%(_daemon)s>\n",
        );
        write(
            d.path(),
            "common.local",
            "[DEFAULT]\n_daemon = common-local\n",
        );
        let f = write(
            d.path(),
            "x.conf",
            "[INCLUDES]\nbefore = common.conf\n[DEFAULT]\n_daemon = xd\n\
             [Definition]\nfailregex = ^a %(prefix)s\n    ^b ; not a comment?\n\
             # comment\n\tc <HOST> ; comment\nmode = normal\n",
        );
        write(
            d.path(),
            "x.local",
            "[Definition]\nfailregex = %(known/failregex)s\n            ^local\n",
        );
        let ini = Ini::read(&f).unwrap();
        assert_eq!(ini.files.len(), 4, "{:?}", ini.files);
        assert_eq!(get(&ini, "Definition", "_daemon"), "xd");
        assert_eq!(
            get(&ini, "Definition", "failregex"),
            "^a <xd>\n^b\nc <HOST>\n^local"
        );
        assert_eq!(get(&ini, "Definition", "MODE"), "normal");
    }

    #[test]
    fn vars_override_and_sections_are_addressable() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "y.conf",
            "[DEFAULT]\nlogtype = file\n[lt_file]\np = F\n[lt_journal]\np = J\n\
             [Definition]\nv = %(lt_journal/p)s-%(logtype)s 100%%\n[Init?family=inet6]\nx = 6\n",
        );
        let ini = Ini::read(&f).unwrap();
        let vars = BTreeMap::from([("logtype".to_string(), "journal".to_string())]);
        let (v, origin) = ini.get("Definition", "v", &vars).unwrap().unwrap();
        assert_eq!(v, "J-journal 100%");
        assert_eq!(origin.line, 8);
        assert_eq!(ini.own_options("Init"), vec!["x?family=inet6"]);
    }

    /// `SECTION/NAME` read directly is interpolated in SECTION, as when a
    /// value refers to it (asterisk.conf's `[lt_journal]` through
    /// common.conf's `<lt_<logtype>/__prefix_line>`).
    #[test]
    fn a_section_qualified_name_is_interpolated_in_its_section() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "s.conf",
            "[lt_journal]\np = J%(q)s\nq = !\n[Definition]\nv = 1\n",
        );
        let ini = Ini::read(&f).unwrap();
        let (v, _) = ini
            .get("Definition", "lt_journal/p", &BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(v, "J!");
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "z.conf", "[Definition]\nnovalue\n");
        let e = Ini::read(&f).unwrap_err().to_string();
        assert!(
            e.ends_with("z.conf:2: expected `name = value`, found \"novalue\""),
            "{e}"
        );
        let f = write(d.path(), "w.conf", "[Definition]\na = %(b)s\nl = %(l)s\n");
        let ini = Ini::read(&f).unwrap();
        let e = ini.get("Definition", "a", &BTreeMap::new()).unwrap();
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("w.conf:2: a: %(b)s is not defined"));
        let e = ini.get("Definition", "l", &BTreeMap::new()).unwrap();
        assert!(e.unwrap_err().to_string().contains("levels"));
        assert!(Ini::read(&d.path().join("missing.conf")).is_err());
    }
}
