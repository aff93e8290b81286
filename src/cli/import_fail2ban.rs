//! `banwarden import-fail2ban [DIR] [--out DIR]`: arguments, the jail YAML
//! and the report rendered, files written, the result checked.
//!
//! The mapping itself is `fail2ban::import`'s; nothing here decides what a
//! fail2ban option means.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::fail2ban::import::{Finding, Import, Increment, Jail, Level};
use crate::fail2ban::jails::JailFiles;

/// The jails file written under `--out`.
pub const JAILS_FILE: &str = "jails/fail2ban.yaml";
/// The report written under `--out`.
pub const REPORT_FILE: &str = "fail2ban-import.txt";

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads jail.conf, jail.d/*.conf, jail.local and jail.d/*.local as fail2ban does
and writes one banwarden jail per fail2ban jail, enabled where fail2ban had it
enabled. Filters stay fail2ban's own files (filter: fail2ban:NAME[...]);
ban actions become the jail's ports, protocol and drop/reject; mail and
reporting actions, ignorecommand and the like are listed in the report.

Examples:
  banwarden import-fail2ban                       print the jails and the report
  banwarden import-fail2ban /etc/fail2ban --out /etc/banwarden
                                                  write jails/fail2ban.yaml, the report
                                                  and (if missing) banwarden.yaml, then check

Exit status: 0 imported; 1 a jail fail2ban had enabled could not be imported,
or the result does not pass check; 2 the fail2ban files cannot be read.")]
pub struct ImportArgs {
    /// fail2ban's configuration directory.
    #[arg(value_name = "DIR", default_value = crate::fail2ban::DEFAULT_DIR)]
    pub dir: PathBuf,
    /// banwarden config directory to write into (else print to stdout).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing jails/fail2ban.yaml.
    #[arg(long)]
    pub force: bool,
}

/// Runs the import; returns the exit code.
pub fn run(args: ImportArgs) -> i32 {
    let dir = std::path::absolute(&args.dir).unwrap_or(args.dir.clone());
    let files = match JailFiles::read(&dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("(is {} a fail2ban configuration directory?)", dir.display());
            return 2;
        }
    };
    let import = crate::fail2ban::import::import(&files);
    let yaml = render_yaml(&import, &dir);
    let report = render_report(&import, &dir);
    let mut code = i32::from(import.lost_enabled_jail());
    let Some(out) = args.out else {
        print!("{yaml}");
        eprint!("{report}");
        return code;
    };
    match write_out(&out, &dir, &yaml, &report, args.force) {
        Ok(written) => {
            print!("{report}");
            for w in written {
                println!("wrote {}", w.display());
            }
        }
        Err(e) => {
            eprint!("{report}");
            eprintln!("error: {e}");
            return 2;
        }
    }
    // Another jail file defining an imported jail merges with it, key by
    // key (a shipped jails/sshd.yaml is read after jails/fail2ban.yaml).
    for (name, file) in other_definitions(&out, &import) {
        eprintln!(
            "error: jail {name} is also defined in {}, whose keys override the imported ones: \
             remove it there (or move what you want to keep into jails/fail2ban.local.yaml)",
            file.display()
        );
        code = 1;
    }
    match crate::config::load(&out) {
        Ok(c) if c.global.fail2ban_dir == dir => {
            println!(
                "check: OK: {} jails ({} enabled)",
                c.jails.len(),
                c.enabled_jails().count()
            );
        }
        Ok(c) => {
            eprintln!(
                "error: {}/banwarden.yaml has fail2ban_dir {}, not {}: add `fail2ban_dir: {}` to it",
                out.display(),
                c.global.fail2ban_dir.display(),
                dir.display(),
                dir.display()
            );
            code = 1;
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("check: the imported configuration has errors (see above)");
            code = 1;
        }
    }
    code
}

/// Imported jails that another file of `out/jails` defines too.
fn other_definitions(out: &Path, import: &Import) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(out.join("jails")) else {
        return found;
    };
    let mut files: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("fail2ban.") || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(map) = serde_saphyr::from_str::<
            std::collections::BTreeMap<String, serde::de::IgnoredAny>,
        >(&text) else {
            continue; // check reports it
        };
        for j in &import.jails {
            if map.contains_key(&j.name) {
                found.push((j.name.clone(), file.clone()));
            }
        }
    }
    found
}

fn write_out(
    out: &Path,
    dir: &Path,
    yaml: &str,
    report: &str,
    force: bool,
) -> Result<Vec<PathBuf>, String> {
    let jails = out.join(JAILS_FILE);
    if jails.exists() && !force {
        return Err(format!(
            "{} exists (an earlier import?): use --force to replace it",
            jails.display()
        ));
    }
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let parent = jails.parent().unwrap_or(out);
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let mut written = Vec::new();
    let global = out.join("banwarden.yaml");
    if !global.exists() {
        let text = format!(
            "# Written by `banwarden import-fail2ban`: where `filter: fail2ban:NAME`\n\
             # finds filter.d/NAME.conf. See the README for the other keys.\n\
             fail2ban_dir: {}\n",
            quote(&dir.display().to_string())
        );
        std::fs::write(&global, text).map_err(|e| io(&global, e))?;
        written.push(global);
    }
    std::fs::write(&jails, yaml).map_err(|e| io(&jails, e))?;
    written.push(jails);
    let rep = out.join(REPORT_FILE);
    std::fs::write(&rep, report).map_err(|e| io(&rep, e))?;
    written.push(rep);
    Ok(written)
}

/// YAML single-quoted scalar.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", q.join(", "))
}

/// Seconds as banwarden writes durations (`10m`, `1d`, `90s`).
fn secs(s: i64) -> String {
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

fn bantime(b: Option<i64>) -> String {
    b.map_or_else(|| "permanent".into(), secs)
}

fn increment(i: &Increment) -> String {
    let mut parts = Vec::new();
    if let Some(f) = i.factor {
        parts.push(format!("factor: {f}"));
    } else {
        let d: Vec<String> = i.durations.iter().map(|d| bantime(*d)).collect();
        parts.push(format!("durations: [{}]", d.join(", ")));
    }
    if let Some(m) = i.maxtime {
        parts.push(format!("maxtime: {}", secs(m)));
    }
    parts.push(format!("window: {}", secs(i.window)));
    parts.push(format!("across_jails: {}", i.across_jails));
    format!("{{{}}}", parts.join(", "))
}

/// The jails file: every imported jail, the skipped ones as comments.
pub fn render_yaml(import: &Import, dir: &Path) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# banwarden jails imported from fail2ban's configuration in {}\n\
         # by `banwarden import-fail2ban`; each value's fail2ban file:line is in\n\
         # its comment. What did not carry over is in the import report\n\
         # ({REPORT_FILE}). Change keys in jails/fail2ban.local.yaml (it overrides\n\
         # this file key by key) so that a new import does not undo them.",
        dir.display()
    );
    for j in &import.jails {
        y.push('\n');
        render_jail(&mut y, j);
    }
    for (name, enabled) in &import.skipped {
        let why: Vec<&str> = import
            .findings
            .iter()
            .filter(|f| &f.jail == name && f.level == Level::Skipped)
            .map(|f| f.message.as_str())
            .collect();
        let _ = writeln!(
            y,
            "\n# {name}: NOT IMPORTED ({}in fail2ban): {}",
            if *enabled { "enabled " } else { "disabled " },
            why.join("; ")
        );
    }
    y
}

fn render_jail(y: &mut String, j: &Jail) {
    if j.name != j.fail2ban_name {
        let _ = writeln!(y, "# fail2ban's [{}]", j.fail2ban_name);
    }
    let _ = writeln!(y, "{}:", j.name);
    let mut line = |key: &str, value: String, origin: Option<&String>| {
        let _ = match origin {
            Some(o) => writeln!(y, "  {key}: {value}  # {o}"),
            None => writeln!(y, "  {key}: {value}"),
        };
    };
    let o = |k: &str| j.origins.get(k);
    line("enabled", j.enabled.to_string(), o("enabled"));
    line("filter", quote(&j.filter), o("filter"));
    if !j.logpath.is_empty() {
        line("logpath", list(&j.logpath), o("logpath"));
    }
    if let Some(m) = &j.journal {
        line(
            "journal",
            format!("{{match: {}}}", list(m)),
            o("journal").or(o("backend")),
        );
    }
    if let Some(l) = &j.failregex {
        line("failregex", list(l), o("failregex"));
    }
    if let Some(l) = &j.ignoreregex {
        line("ignoreregex", list(l), o("ignoreregex"));
    }
    if let Some(v) = j.maxretry {
        line("maxretry", v.to_string(), o("maxretry"));
    }
    if let Some(v) = j.maxmatches {
        line("maxmatches", v.to_string(), o("maxmatches"));
    }
    if let Some(v) = j.findtime {
        line("findtime", secs(v), o("findtime"));
    }
    if let Some(v) = j.bantime {
        line("bantime", bantime(v), o("bantime"));
    }
    if let Some(i) = &j.increment {
        line("bantime_increment", increment(i), o("bantime_increment"));
    }
    if !j.ignoreip.is_empty() {
        line("ignoreip", list(&j.ignoreip), o("ignoreip"));
    }
    if let Some(v) = j.ignoreself {
        line("ignoreself", v.to_string(), o("ignoreself"));
    }
    if !j.ports.is_empty() {
        line("ports", list(&j.ports), o("ports"));
    }
    if let Some(p) = &j.protocol {
        line("protocol", p.clone(), o("protocol"));
    }
    line("action", j.action.to_string(), o("action"));
}

/// The report: a summary, then per jail what did not carry over. Notes
/// (done differently, same effect) are shown for enabled jails only.
pub fn render_report(import: &Import, dir: &Path) -> String {
    let mut r = String::new();
    let enabled: Vec<&str> = import
        .jails
        .iter()
        .filter(|j| j.enabled)
        .map(|j| j.name.as_str())
        .collect();
    let _ = writeln!(
        r,
        "fail2ban import from {}: {} jails imported ({} enabled{}{}), {} not imported",
        dir.display(),
        import.jails.len(),
        enabled.len(),
        if enabled.is_empty() { "" } else { ": " },
        enabled.join(", "),
        import.skipped.len()
    );
    let is_enabled = |name: &str| {
        import
            .jails
            .iter()
            .any(|j| j.fail2ban_name == name && j.enabled)
            || import.skipped.iter().any(|(n, e)| n == name && *e)
    };
    let mut by_jail: Vec<&Finding> = import
        .findings
        .iter()
        .filter(|f| f.level != Level::Note || is_enabled(&f.jail))
        .collect();
    // Enabled jails first, then by name; within a jail, by level.
    by_jail.sort_by_key(|f| (!is_enabled(&f.jail), f.jail.clone(), f.level));
    let mut last = None;
    for f in by_jail {
        if last != Some(&f.jail) {
            let _ = writeln!(
                r,
                "\n{} ({})",
                f.jail,
                if is_enabled(&f.jail) {
                    "enabled"
                } else {
                    "disabled"
                }
            );
            last = Some(&f.jail);
        }
        let level = match f.level {
            Level::Skipped if is_enabled(&f.jail) => "ERROR, jail not imported",
            Level::Skipped => "jail not imported",
            Level::NotImported => "not imported",
            Level::Note => "note",
        };
        let _ = match &f.at {
            Some(at) => writeln!(r, "  {level}: {at}: {}", f.message),
            None => writeln!(r, "  {level}: {}", f.message),
        };
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn jails_render_as_quoted_yaml_with_origins() {
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(secs(600), "10m");
        assert_eq!(secs(5400), "90m");
        assert_eq!(secs(86400 * 7), "7d");
        assert_eq!(secs(61), "61s");
        assert_eq!(bantime(None), "permanent");
        let j = Jail {
            name: "j-3proxy".into(),
            fail2ban_name: "3proxy".into(),
            enabled: true,
            filter: "fail2ban:x[datepattern='^%%Y']".into(),
            logpath: vec!["/var/log/a b.log".into()],
            journal: None,
            failregex: None,
            ignoreregex: None,
            maxretry: Some(3),
            maxmatches: None,
            findtime: None,
            bantime: Some(None),
            increment: Some(Increment {
                factor: None,
                durations: vec![Some(60), None],
                maxtime: None,
                window: 86400,
                across_jails: false,
            }),
            ignoreip: vec![],
            ignoreself: Some(false),
            ports: vec!["8000-8080".into()],
            protocol: Some("tcp".into()),
            action: "drop",
            origins: BTreeMap::from([("maxretry", "jail.local:3".to_string())]),
        };
        let mut y = String::new();
        render_jail(&mut y, &j);
        assert_eq!(
            y,
            "# fail2ban's [3proxy]\nj-3proxy:\n  enabled: true\n  \
             filter: 'fail2ban:x[datepattern=''^%%Y'']'\n  logpath: ['/var/log/a b.log']\n  \
             maxretry: 3  # jail.local:3\n  bantime: permanent\n  \
             bantime_increment: {durations: [1m, permanent], window: 1d, across_jails: false}\n  \
             ignoreself: false\n  ports: ['8000-8080']\n  protocol: tcp\n  action: drop\n"
        );
    }
}
