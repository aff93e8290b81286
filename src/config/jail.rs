//! Building one jail from its merged YAML: every key read and checked
//! against the registry (`keys`), the filter resolved (a name, a path or a
//! fail2ban reference), the sources chosen (files, journal, command), the
//! allow-list, escalation, chains, actions, health and fleet settings.
//!
//! Owns the jail half of `config`; it starts nothing and touches no state.

use super::*;

pub(super) fn build_jail(
    dir: &Path,
    name: &str,
    m: &MergedJail,
    global: &Global,
    filters: &BTreeMap<String, Arc<Filter>>,
    notes: &mut Vec<String>,
    errs: &mut Errors,
) -> Option<JailConfig> {
    let before = errs.0.len();
    let raw = &m.raw;
    let file = |field: &str| {
        m.file_of(field)
            .map(|p| p.as_path().to_path_buf())
            .unwrap_or_else(|| dir.join("jails"))
    };
    let f = |field: &str| format!("{name}.{field}");
    let defined = file("");
    if !values::valid_name(name) {
        errs.file(
            &defined,
            name,
            "jail names must be 1-32 characters of A-Z a-z 0-9 _ -, starting with a letter",
        );
    }
    let filter = match &raw.filter {
        None => {
            errs.file(
                &defined,
                &f("filter"),
                "missing: name a filter from filters/ or a path to a filter file",
            );
            None
        }
        Some(s) => resolve_filter(dir, &s.value, filters, &global.fail2ban_dir, notes)
            .map_err(|msg| errs.at(&file("filter"), s, &f("filter"), msg))
            .ok()
            .and_then(|flt| jail_patterns(flt, raw, &file, &f, notes, errs)),
    };
    let logpath: Vec<PathBuf> = raw
        .logpath
        .clone()
        .map(|l| l.into_vec())
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let p = PathBuf::from(&s.value);
            if p.is_absolute() {
                p
            } else {
                dir.join(p)
            }
        })
        .collect();
    let journal = raw.journal.as_ref().map(|j| {
        if let Err(e) = crate::source::journal::validate_matches(&j.value.matches) {
            errs.at(&file("journal"), j, &f("journal.match"), e.to_string());
        }
        j.value.matches.clone()
    });
    let command = raw.command.as_ref().map(|c| {
        if c.value.first().is_none_or(|p| !Path::new(p).is_absolute()) {
            errs.at(
                &file("command"),
                c,
                &f("command"),
                "must be an argv list starting with an absolute program path (no shell)",
            );
        }
        c.value.clone()
    });
    let (logpath, journal) = match raw.backend.as_ref().map(|b| (b, b.value.as_str())) {
        Some((_, "files")) => (logpath, None),
        Some((_, "journal")) => (Vec::new(), journal),
        None | Some((_, "auto")) if journal.is_some() && !logpath.is_empty() => {
            // Debian 12 and later ship no syslog daemon: no auth.log, use the journal.
            if logpath.iter().any(|p| any_exists(p)) {
                (logpath, None)
            } else {
                (Vec::new(), journal)
            }
        }
        None | Some((_, "auto")) => (logpath, journal),
        Some((b, _)) => {
            errs.at(
                &file("backend"),
                b,
                &f("backend"),
                "must be auto, files or journal",
            );
            (logpath, journal)
        }
    };
    let enabled = raw.enabled.as_ref().is_some_and(|e| e.value);
    if enabled && logpath.is_empty() && journal.is_none() && command.is_none() {
        errs.file(
            &defined,
            &f("logpath"),
            "an enabled jail needs a logpath, a journal or a command to read",
        );
    }
    let int = |v: &Option<Spanned<i64>>, name: &str, errs: &mut Errors| {
        let key = keys::key(keys::Scope::Jail, name);
        match v {
            None => key.default_int(),
            Some(s) => key.check_int(s.value).unwrap_or_else(|e| {
                errs.at(&file(name), s, &f(name), e);
                key.default_int()
            }),
        }
    };
    let maxretry = int(&raw.maxretry, "maxretry", errs) as u32;
    let maxmatches = int(&raw.maxmatches, "maxmatches", errs) as usize;
    let jail_key = |name| keys::key(keys::Scope::Jail, name);
    let findtime_default = jail_key("findtime").default_duration().unwrap_or(600);
    let findtime = duration(
        raw.findtime.as_ref(),
        findtime_default,
        false,
        &file("findtime"),
        &f("findtime"),
        errs,
    )
    .unwrap_or(findtime_default);
    let bantime = duration(
        raw.bantime.as_ref(),
        jail_key("bantime").default_duration().unwrap_or(600),
        true,
        &file("bantime"),
        &f("bantime"),
        errs,
    );
    let mut ignore = global.ignoreip.clone();
    let mut ignore_files = global.ignore_files.clone();
    let (own_nets, own_files) = allowlists::entries(
        dir,
        &file("ignoreip"),
        raw.ignoreip.as_deref().unwrap_or(&[]),
        &f("ignoreip"),
        errs,
    );
    ignore.extend(own_nets);
    ignore_files.extend(own_files);
    let ignoreself = raw
        .ignoreself
        .as_ref()
        .map_or_else(|| jail_key("ignoreself").default_bool(), |s| s.value);
    let max_tracked = int(&raw.max_tracked, "max_tracked", errs) as usize;
    let ipv4_prefix = int(&raw.ipv4_prefix, "ipv4_prefix", errs) as u8;
    let ipv6_prefix = int(&raw.ipv6_prefix, "ipv6_prefix", errs) as u8;
    let increment =
        raw.bantime_increment
            .as_ref()
            .and_then(|inc| match values::increment(&inc.value) {
                Ok(i) => Some(i),
                Err(e) => {
                    errs.at(&file("bantime_increment"), inc, &f("bantime_increment"), e);
                    None
                }
            });
    let mut ports = Vec::new();
    if let Some(list) = &raw.ports {
        // Spans do not survive the one-or-many choice: point at the list.
        for (i, p) in list.value.clone().into_vec().iter().enumerate() {
            match values::parse_ports(p) {
                Ok(r) => ports.push(r),
                Err(e) => errs.at(&file("ports"), list, &format!("{name}.ports[{i}]"), e),
            }
        }
    }
    let protocol = match &raw.protocol {
        None if ports.is_empty() => Protocol::All,
        None => Protocol::Tcp,
        Some(s) => match s.value.as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "all" if ports.is_empty() => Protocol::All,
            "all" => {
                errs.at(
                    &file("protocol"),
                    s,
                    &f("protocol"),
                    "ports need protocol tcp or udp",
                );
                Protocol::Tcp
            }
            _ => {
                errs.at(
                    &file("protocol"),
                    s,
                    &f("protocol"),
                    "must be tcp, udp or all",
                );
                Protocol::All
            }
        },
    };
    let verdict = match raw.action.as_ref().map(|s| (s, s.value.as_str())) {
        None | Some((_, "drop")) => Verdict::Drop,
        Some((_, "reject")) => Verdict::Reject,
        Some((s, _)) => {
            errs.at(&file("action"), s, &f("action"), "must be drop or reject");
            Verdict::Drop
        }
    };
    let actions = raw.actions.as_ref().map_or_else(Vec::new, |a| {
        actions::build_actions(a, dir, &file("actions"), &f("actions"), notes, errs)
    });
    let health = actions::build_health(raw.health.as_ref(), &file("health"), &f("health"), errs);
    let chains = match &raw.chains {
        None => crate::firewall::Chains::default(),
        Some(list) => chains::parse_chains(&list.value).unwrap_or_else(|(i, e)| {
            let at = list.value.get(i).map_or(list.referenced, |c| c.referenced);
            errs.0.push(ConfigError {
                file: file("chains"),
                line: at.line(),
                column: at.column(),
                field: format!("{name}.chains[{i}]"),
                message: e,
            });
            crate::firewall::Chains::default()
        }),
    };
    let jail_fleet = fleet::jail_fleet(&file("fleet"), raw.fleet.as_ref(), &f("fleet"), errs);
    if errs.0.len() > before {
        return None;
    }
    Some(JailConfig {
        name: name.to_string(),
        enabled,
        filter: filter?,
        logpath,
        journal_files: raw
            .journal
            .as_ref()
            .and_then(|j| j.value.files.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|f| dir.join(f))
            .collect(),
        journal,
        command,
        settings: JailSettings {
            name: name.to_string(),
            maxretry,
            findtime,
            bantime,
            ignore: IgnoreList::new(ignore, ignoreself)
                .with_files(ignore_files)
                .with_proxies(
                    global.trusted_proxies.clone(),
                    global.trusted_proxy_files.clone(),
                ),
            max_tracked,
            ipv4_prefix,
            ipv6_prefix,
            increment,
        },
        rules: JailRules {
            name: name.to_string(),
            protocol,
            ports,
            verdict,
            ipv4_prefix,
            ipv6_prefix,
            chains,
        },
        actions,
        maxmatches,
        health,
        fleet: jail_fleet,
    })
}

/// Whether a logpath (maybe a glob) names at least one existing file.
fn any_exists(p: &Path) -> bool {
    let s = p.to_string_lossy();
    if s.contains(['*', '?', '[']) {
        glob::glob(&s).is_ok_and(|mut g| g.any(|e| e.is_ok()))
    } else {
        p.exists()
    }
}

/// Parses a duration field; `permanent_ok` allows `-1`/`permanent` (→ `None`).
fn duration(
    v: Option<&Spanned<raw::Scalar>>,
    default: i64,
    permanent_ok: bool,
    file: &Path,
    field: &str,
    errs: &mut Errors,
) -> Option<i64> {
    let Some(v) = v else { return Some(default) };
    match parse_duration(&v.value.to_string()) {
        Ok(None) if permanent_ok => None,
        Ok(None) => {
            errs.at(file, v, field, "cannot be permanent");
            Some(default)
        }
        Ok(Some(s)) => Some(s),
        Err(e) => {
            errs.at(file, v, field, e);
            Some(default)
        }
    }
}

/// The filter with the jail's own `failregex`/`ignoreregex` in place of
/// its own, as a fail2ban jail's options replace its filter's; an entry
/// `%(known/failregex)s` (`%(known/ignoreregex)s`, see
/// [`crate::fail2ban::known`]) is the filter's own list at that place. The filter unchanged when the jail sets neither.
fn jail_patterns(
    filter: Arc<Filter>,
    raw: &raw::RawJail,
    file: &dyn Fn(&str) -> PathBuf,
    f: &dyn Fn(&str) -> String,
    notes: &mut Vec<String>,
    errs: &mut Errors,
) -> Option<Arc<Filter>> {
    if raw.failregex.is_none() && raw.ignoreregex.is_none() {
        return Some(filter);
    }
    // The merged list, and for each pattern the jail's entry it came from.
    let merged = |list: &Spanned<Vec<Spanned<String>>>, own: &[String], known: &str| {
        let mut out: Vec<(String, Option<usize>)> = Vec::new();
        for (i, s) in list.value.iter().enumerate() {
            if s.value.trim() == known {
                out.extend(own.iter().map(|p| (p.clone(), None)));
            } else {
                out.push((s.value.clone(), Some(i)));
            }
        }
        out
    };
    let mut spec = filter.spec.clone();
    let (mut fail_from, mut ignore_from) = (Vec::new(), Vec::new());
    if let Some(l) = &raw.failregex {
        let m = merged(l, &filter.spec.failregex, crate::fail2ban::known::FAIL);
        (spec.failregex, fail_from) = m.into_iter().unzip();
    }
    if let Some(l) = &raw.ignoreregex {
        let m = merged(l, &filter.spec.ignoreregex, crate::fail2ban::known::IGNORE);
        (spec.ignoreregex, ignore_from) = m.into_iter().unzip();
    }
    let e = match Filter::compile(spec) {
        Ok(compiled) => {
            // As `check` says of a filter's own patterns: which of the
            // jail's run on the backtracking fallback.
            for (which, why) in compiled.fallback_patterns() {
                let (key, list, entry) = match (which, &raw.failregex, &raw.ignoreregex) {
                    (crate::filter::PatternRef::Failregex(i), Some(l), _) => {
                        ("failregex", l, fail_from.get(i).copied().flatten())
                    }
                    (crate::filter::PatternRef::Ignoreregex(i), _, Some(l)) => {
                        ("ignoreregex", l, ignore_from.get(i).copied().flatten())
                    }
                    _ => continue,
                };
                if let Some((k, s)) = entry.and_then(|k| list.value.get(k).map(|s| (k, s))) {
                    notes.push(format!(
                        "{}:{}:{}: {}[{k}] runs on the backtracking fallback ({why}), at most {} steps a line",
                        file(key).display(),
                        s.referenced.line(),
                        s.referenced.column(),
                        f(key),
                        crate::filter::BACKTRACK_LIMIT
                    ));
                }
            }
            return Some(Arc::new(compiled));
        }
        Err(e) => e,
    };
    // At the jail's entry that does not compile, else at its list.
    let (key, list, entry) = match (e.which, &raw.failregex, &raw.ignoreregex) {
        (crate::filter::PatternRef::Ignoreregex(i), _, Some(l)) => {
            ("ignoreregex", l, ignore_from.get(i).copied().flatten())
        }
        (crate::filter::PatternRef::Failregex(i), Some(l), _) => {
            ("failregex", l, fail_from.get(i).copied().flatten())
        }
        (_, Some(l), _) => ("failregex", l, None),
        (_, None, Some(l)) => ("ignoreregex", l, None),
        (_, None, None) => return Some(filter),
    };
    let message = e.to_string();
    match entry.and_then(|i| list.value.get(i)) {
        Some(s) => errs.at(
            &file(key),
            s,
            &format!("{}[{}]", f(key), entry.unwrap_or(0)),
            message,
        ),
        None => errs.at(&file(key), list, &f(key), message),
    }
    None
}

fn resolve_filter(
    dir: &Path,
    name: &str,
    filters: &BTreeMap<String, Arc<Filter>>,
    fail2ban_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Arc<Filter>, String> {
    if let Some(f) = filters.get(name) {
        return Ok(f.clone());
    }
    if crate::fail2ban::is_fail2ban_ref(name) {
        let c = crate::fail2ban::compile_ref(name, fail2ban_dir, dir)
            .map_err(|e| format!("fail2ban filter {name}: {e}"))?;
        notes.extend(c.notes);
        return Ok(Arc::new(c.filter));
    }
    if name.contains('/') || name.ends_with(".yaml") {
        let p = PathBuf::from(name);
        let p = if p.is_absolute() { p } else { dir.join(p) };
        return load_filter_file(&p)
            .map(Arc::new)
            .map_err(|e| format!("filter file {}: {e}", p.display()));
    }
    let known: Vec<&str> = filters.keys().map(String::as_str).collect();
    Err(format!(
        "no filter named `{name}` in {} (known: {})",
        dir.join("filters").display(),
        known.join(", ")
    ))
}
