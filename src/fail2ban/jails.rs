//! fail2ban's jail configuration as fail2ban's client reads it.
//!
//! Owns the layering (`jail.conf`, `jail.d/*.conf`, `jail.local`,
//! `jail.d/*.local`, each with its `[INCLUDES]`), the list of jails (every
//! section but `[DEFAULT]` and `[INCLUDES]`), and the value of each jail
//! option fail2ban's jail reader knows, interpolated with `%(__name__)s` set
//! to the jail, with the file and line that wrote it. It also reads
//! `dbpurgeage` from `fail2ban.conf` (how long fail2ban remembers bans, the
//! window of `bantime.increment`). It does not map anything to banwarden
//! (`import` does) and never writes files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ini::{Ini, IniError, Origin};

/// The jail options fail2ban's jail reader (and its filter reader, for
/// options a jail may override) takes from a jail section.
pub const OPTIONS: &[&str] = &[
    "enabled",
    "filter",
    "backend",
    "logpath",
    "journalmatch",
    "maxretry",
    "maxmatches",
    "findtime",
    "bantime",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
    "ignoreip",
    "ignoreself",
    "ignorecommand",
    "ignorecache",
    "port",
    "protocol",
    "action",
    "datepattern",
    "logtimezone",
    "maxlines",
    "failregex",
    "ignoreregex",
    "prefregex",
    "usedns",
    "logencoding",
];

/// Of [`OPTIONS`], those banwarden has no use for: `import` only reports
/// them (a value that cannot be read does not stop the jail).
pub const REPORTED_ONLY: &[&str] = &[
    "prefregex",
    "ignorecommand",
    "ignorecache",
    "usedns",
    "logencoding",
    "bantime.rndtime",
    "bantime.formula",
];

/// What `%(known/failregex)s` in a jail's `failregex` reads as: a marker
/// for the filter's own patterns (no `%`, so it is not interpolated again).
pub const KNOWN_FAILREGEX: &str = "\u{1}known/failregex\u{1}";
/// The same for `ignoreregex`.
pub const KNOWN_IGNOREREGEX: &str = "\u{1}known/ignoreregex\u{1}";

/// fail2ban's default `dbpurgeage`: bans older than this are forgotten.
pub const DEFAULT_DBPURGEAGE: &str = "1d";

/// Every jail file of a fail2ban configuration directory, merged.
#[derive(Debug, Clone)]
pub struct JailFiles {
    pub dir: PathBuf,
    pub ini: Ini,
    /// `dbpurgeage` from `fail2ban.conf` (and its `.local`, `fail2ban.d`).
    pub dbpurgeage: Option<(String, Origin)>,
}

/// One jail's options as fail2ban would see them.
#[derive(Debug, Clone, Default)]
pub struct F2bJail {
    pub name: String,
    /// Option → (interpolated value, where it was written).
    pub values: BTreeMap<&'static str, (String, Origin)>,
    /// Options whose interpolation failed (fail2ban would refuse the jail
    /// if it is enabled).
    pub errors: Vec<(&'static str, IniError)>,
}

impl F2bJail {
    pub fn get(&self, option: &str) -> Option<&str> {
        self.values.get(option).map(|(v, _)| v.as_str())
    }

    pub fn origin(&self, option: &str) -> Option<&Origin> {
        self.values.get(option).map(|(_, o)| o)
    }
}

/// `BASE.conf`, `BASE.d/*.conf`, `BASE.local`, `BASE.d/*.local`: the order
/// in which fail2ban reads a configuration (`jail`, `fail2ban`).
pub fn layered_files(dir: &Path, base: &str) -> Vec<PathBuf> {
    let sorted = |ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(format!("{base}.d")))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut files = vec![dir.join(format!("{base}.conf"))];
    files.extend(sorted("conf"));
    files.push(dir.join(format!("{base}.local")));
    files.extend(sorted("local"));
    files
}

impl JailFiles {
    /// Reads the jail files of `dir`; `jail.conf` must exist.
    pub fn read(dir: &Path) -> Result<JailFiles, IniError> {
        let ini = Ini::read_layered(&layered_files(dir, "jail"))?;
        // fail2ban.conf is optional here: only `dbpurgeage` is taken from it.
        let main = layered_files(dir, "fail2ban");
        let dbpurgeage = if main[0].is_file() {
            Ini::read_layered(&main)?
                .get("Definition", "dbpurgeage", &BTreeMap::new())
                .transpose()?
        } else {
            None
        };
        Ok(JailFiles {
            dir: dir.to_path_buf(),
            ini,
            dbpurgeage,
        })
    }

    /// The jails, in name order.
    pub fn names(&self) -> Vec<String> {
        self.ini.section_names().map(str::to_string).collect()
    }

    /// The options of jail `name` (those set in the jail or `[DEFAULT]`).
    pub fn jail(&self, name: &str) -> F2bJail {
        let vars = BTreeMap::from([
            ("__name__".to_string(), name.to_string()),
            (
                "fail2ban_confpath".to_string(),
                self.dir.display().to_string(),
            ),
            ("fail2ban_version".to_string(), "1.0.2".to_string()),
            // The filter's own patterns (fail2ban merges the filter's
            // options into the jail as `known/...`): kept as a marker that
            // `import` writes as banwarden's `%(known/...)s` entry.
            ("known/failregex".to_string(), KNOWN_FAILREGEX.to_string()),
            (
                "known/ignoreregex".to_string(),
                KNOWN_IGNOREREGEX.to_string(),
            ),
        ]);
        let mut jail = F2bJail {
            name: name.to_string(),
            ..F2bJail::default()
        };
        for opt in OPTIONS {
            match self.ini.get(name, opt, &vars) {
                None => {}
                Some(Ok(v)) => {
                    jail.values.insert(opt, v);
                }
                Some(Err(e)) => jail.errors.push((opt, e)),
            }
        }
        jail
    }

    /// A path for messages: relative to the fail2ban directory.
    pub fn short(&self, at: &Origin) -> String {
        let file = at.file.strip_prefix(&self.dir).unwrap_or(&at.file);
        if at.line == 0 {
            file.display().to_string()
        } else {
            format!("{}:{}", file.display(), at.line)
        }
    }
}

/// fail2ban's boolean values (`true`, `yes`, `on`, `1` and their opposites).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "enabled" => Some(true),
        "false" | "no" | "off" | "0" | "disabled" | "" => Some(false),
        _ => None,
    }
}

/// fail2ban's time expressions (`MyTime.str2seconds`): a number of
/// seconds, or numbers with units (`10m`, `1h 30m`, `1d12h`, `2 weeks`,
/// `1mo`, `1y`) summed; `-1` (or any negative number) is permanent
/// (`Ok(None)`). Arithmetic beyond sums is refused.
pub fn parse_time(v: &str) -> Result<Option<i64>, String> {
    let s = v.trim();
    let numeric = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b"-.".contains(&b));
    if let (true, Ok(n)) = (numeric, s.parse::<f64>()) {
        return Ok(if n < 0.0 { None } else { Some(n as i64) });
    }
    let bad = || format!("`{s}` is not a time fail2ban understands (e.g. 600, 10m, 1h30m, 2d)");
    let mut total = 0f64;
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '+', '\t']);
        if rest.is_empty() {
            break;
        }
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = rest[num_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_end].to_ascii_lowercase();
        rest = &rest[unit_end..];
        let mult = match unit.as_str() {
            "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
            "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3600.0,
            "d" | "dd" | "da" | "day" | "days" => 86400.0,
            "w" | "ww" | "we" | "wee" | "week" | "weeks" => 7.0 * 86400.0,
            "mo" | "mon" | "month" | "months" => (365.0 * 3.0 + 366.0) * 86400.0 / 4.0 / 12.0,
            "y" | "yy" | "ye" | "yea" | "year" | "years" => (365.0 * 3.0 + 366.0) * 86400.0 / 4.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(Some(total.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn layering_is_conf_then_d_conf_then_local_then_d_local() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        write(p, "paths.conf", "[DEFAULT]\nsshd_log = /var/log/auth.log\n");
        write(
            p,
            "jail.conf",
            "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\nbantime = 10m\nmaxretry = 5\n\
             enabled = false\nfilter = %(__name__)s[mode=%(mode)s]\nmode = normal\n\
             [sshd]\nlogpath = %(sshd_log)s\nport = ssh\n[web]\nport = http\n",
        );
        write(
            p,
            "jail.d/10-a.conf",
            "[sshd]\nmaxretry = 3\nenabled = true\n",
        );
        write(p, "jail.d/20-b.conf", "[sshd]\nmaxretry = 4\n");
        write(
            p,
            "jail.local",
            "[DEFAULT]\nbantime = 1h\n[sshd]\nmaxretry = 6\n",
        );
        write(
            p,
            "jail.d/05-z.local",
            "[sshd]\nmaxretry = 7\nmode = aggressive\n",
        );
        let files = layered_files(p, "jail");
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(p).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "jail.conf",
                "jail.d/10-a.conf",
                "jail.d/20-b.conf",
                "jail.local",
                "jail.d/05-z.local"
            ]
        );
        let jf = JailFiles::read(p).unwrap();
        assert_eq!(jf.names(), ["sshd", "web"]);
        let sshd = jf.jail("sshd");
        assert!(sshd.errors.is_empty(), "{:?}", sshd.errors);
        assert_eq!(sshd.get("maxretry"), Some("7"));
        assert_eq!(
            jf.short(sshd.origin("maxretry").unwrap()),
            "jail.d/05-z.local:2"
        );
        assert_eq!(sshd.get("bantime"), Some("1h"));
        assert_eq!(sshd.get("enabled"), Some("true"));
        assert_eq!(sshd.get("filter"), Some("sshd[mode=aggressive]"));
        assert_eq!(sshd.get("logpath"), Some("/var/log/auth.log"));
        let web = jf.jail("web");
        assert_eq!(web.get("enabled"), Some("false"));
        assert_eq!(web.get("filter"), Some("web[mode=normal]"));
        assert_eq!(web.get("maxretry"), Some("5"));
        assert!(jf.dbpurgeage.is_none());
    }

    #[test]
    fn a_missing_jail_conf_is_an_error_and_bad_interpolation_is_per_jail() {
        let d = tempfile::tempdir().unwrap();
        assert!(JailFiles::read(d.path()).is_err());
        write(d.path(), "jail.conf", "[a]\nlogpath = %(nowhere)s\n");
        write(d.path(), "fail2ban.conf", "[Definition]\ndbpurgeage = 7d\n");
        let jf = JailFiles::read(d.path()).unwrap();
        let a = jf.jail("a");
        assert_eq!(a.errors.len(), 1);
        assert_eq!(a.errors[0].0, "logpath");
        assert!(a.errors[0].1.to_string().contains("jail.conf:2"));
        assert_eq!(jf.dbpurgeage.as_ref().unwrap().0, "7d");
    }

    #[test]
    fn times_and_booleans_as_fail2ban_reads_them() {
        assert_eq!(parse_time("600"), Ok(Some(600)));
        assert_eq!(parse_time("10m"), Ok(Some(600)));
        assert_eq!(parse_time("1h 30m"), Ok(Some(5400)));
        assert_eq!(parse_time("1d12h"), Ok(Some(129600)));
        assert_eq!(parse_time("2 weeks"), Ok(Some(1209600)));
        assert_eq!(parse_time("1mo"), Ok(Some(2629800)));
        assert_eq!(parse_time("-1"), Ok(None));
        assert!(parse_time("soon").is_err());
        assert!(parse_time("1h*2").is_err());
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
