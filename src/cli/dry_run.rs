//! `banwarden dry-run`: runs a filter (or a whole jail) over logs and reports
//! what it matched, missed and ignored, which hosts and users it captured, and
//! which bans the jail would have made, without touching the firewall.
//!
//! Owns the command line of `dry-run`, choosing the filter (`--filter`,
//! `--regex`, `--jail`), the exit status and where output goes. Reading and
//! matching are the line engine's (`scan::bulk`, `scan::walk`), counting and
//! ban decisions the daemon's engine's (through `report`); nothing here
//! matches a line or counts a failure.
//!
//! Exit status: 0 when the filter matched at least one line, 1 when it matched
//! nothing, 2 on usage, config or input errors.

mod args;
mod progress;
mod report;

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::config;
use crate::filter::{Filter, FilterError, FilterSpec, PatternRef};
use crate::jail::JailSettings;
use crate::scan::input::{Input, Source};
use crate::scan::{self, bulk, Kind};
use crate::UnixTime;

pub use args::{ColorWhen, DryRunArgs, ShowKind};
use progress::Bar;
pub use report::Report;

/// Reads the journal once (the daemon's journal reader, not following): the
/// entries, each with its own time, go through the engine as the daemon's
/// do (their text is matched without looking for a date).
fn journal_input(
    matches: Vec<String>,
    since: UnixTime,
    files: Vec<PathBuf>,
) -> Result<Input, Fatal> {
    use crate::source::journal::{validate_matches, JournalConfig, JournalSource, JournalSpec};
    use crate::source::SourceEvent;
    validate_matches(&matches).map_err(|e| Fatal(format!("--journal: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("cannot start the journal reader: {e}")))?;
    let text = runtime.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let cfg = JournalConfig {
            specs: vec![JournalSpec { source: 0, matches }],
            since: Some(since),
            files,
            follow: false,
            ..JournalConfig::default()
        };
        let source = JournalSource::spawn(cfg, tx);
        let mut text = Vec::new();
        let mut error = None;
        while let Some(ev) = rx.recv().await {
            match ev {
                SourceEvent::Entries { entries, .. } => text.extend(entries),
                SourceEvent::Error { message, .. } => {
                    error = Some(message);
                    break;
                }
                _ => {}
            }
        }
        drop(source);
        match error {
            Some(e) if text.is_empty() => Err(Fatal(format!("reading the journal failed: {e}"))),
            _ => Ok(text),
        }
    })?;
    Ok(Input {
        name: "journal".into(),
        source: Source::Entries(Arc::new(text)),
    })
}

/// A usage, config or input error: exit 2.
struct Fatal(String);

pub fn run(args: DryRunArgs) -> i32 {
    match run_inner(&args) {
        Ok(code) => code,
        Err(Fatal(msg)) => {
            eprintln!("banwarden dry-run: {msg}");
            2
        }
    }
}

/// The filter and (for --jail) the jail settings to test, and where they came from.
struct Subject {
    filter: Arc<Filter>,
    origin: String,
    jail: Option<JailSettings>,
    logpath: Vec<PathBuf>,
    /// The jail's journal matches, if it reads the journal.
    journal: Option<Vec<String>>,
}

fn run_inner(args: &DryRunArgs) -> Result<i32, Fatal> {
    let started = Instant::now();
    let now = match &args.now {
        None => crate::now(),
        Some(t) => parse_time(t).ok_or_else(|| {
            Fatal(format!(
                "--now {t:?}: expected RFC 3339 (2024-03-10T12:00:00Z) or Unix seconds"
            ))
        })?,
    };
    let subject = subject(args)?;
    let inputs = inputs(args, &subject)?;
    for i in &inputs {
        i.check().map_err(|e| Fatal(format!("{}: {e}", i.name)))?;
    }
    let filter = &subject.filter;
    let sample = sample(&inputs);
    let prefilter = if args.no_prefilter {
        None
    } else {
        filter.prefilter_for(&sample)
    };
    let sparse_dates = !args.all_dates
        && prefilter
            .as_ref()
            .is_some_and(|p| filter.spec.datepattern.is_some() || p.sparse_pays(&sample));
    let mut keep = scan::Keep {
        max: args.max,
        ..Default::default()
    };
    for k in &args.show {
        match k {
            ShowKind::Matched => keep.matched = true,
            ShowKind::Missed => keep.missed = true,
            ShowKind::Ignored => keep.ignored = true,
            ShowKind::BadHost => keep.bad_host = true,
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .max(1);
    let cfg = bulk::BulkConfig {
        walk: scan::WalkConfig {
            filter,
            prefilter: prefilter.as_ref(),
            now,
            keep,
            sparse_dates,
        },
        threads,
        chunk: args.chunk_kib.map_or(scan::CHUNK, |k| k.max(4) * 1024),
        date_cache: !args.no_date_cache,
    };

    let mut show_kinds: Vec<Kind> = Vec::new();
    for k in &args.show {
        let k = match k {
            ShowKind::Matched => Kind::Matched,
            ShowKind::Missed => Kind::Missed,
            ShowKind::Ignored => Kind::Ignored,
            ShowKind::BadHost => Kind::BadHost,
        };
        if !show_kinds.contains(&k) {
            show_kinds.push(k);
        }
    }
    let ctx = report::Context {
        filter,
        origin: subject.origin.clone(),
        prefilter: prefilter.as_ref().map(|p| {
            p.literals
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        }),
        jail: subject.jail.clone(),
        inputs: inputs.iter().map(|i| i.name.clone()).collect(),
        top: args.top,
        shown: (!show_kinds.is_empty()).then_some((show_kinds, args.max)),
        now,
    };

    // Scan; the aggregator takes the chunks in order while workers match.
    let consumed = Rc::new(Cell::new(0u64));
    let mut progress = Bar::new(&inputs, consumed.clone());
    let mut agg = report::Aggregator::new(&ctx);
    bulk::scan(
        &cfg,
        inputs.len(),
        |i| inputs[i].open_for_scan(consumed.clone()),
        &mut progress,
        &mut |c| agg.add(c),
    )
    .map_err(|e| Fatal(format!("{}: {e}", progress.current_name())))?;
    progress.finish();
    let scanned = started.elapsed();
    let rep = agg.finish();
    let elapsed = started.elapsed();
    if std::env::var_os("BANWARDEN_DRY_RUN_TIMING").is_some() {
        eprintln!(
            "timing: setup+scan {scanned:?}, report {:?}",
            elapsed - scanned
        );
    }

    let choice = match args.color {
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
        ColorWhen::Auto => anstream::ColorChoice::Auto,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(
        1 << 16,
        anstream::AutoStream::new(stdout.lock(), choice),
    );
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &rep)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        report::write_human(&mut out, &rep)
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(Fatal(format!("writing the report: {e}"))),
    }
    let too_slow = subject.filter.too_slow();
    if too_slow > 0 {
        eprintln!(
            "note: {too_slow} lines reached the backtracking bound ({} steps) of a fallback \
             pattern and were counted as missed",
            crate::filter::BACKTRACK_LIMIT
        );
    }
    if std::io::stderr().is_terminal() && !args.json {
        let secs = elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "[{} lines in {:.3} s: {:.0} lines/s]",
            rep.lines.read,
            secs,
            rep.lines.read as f64 / secs
        );
    }
    Ok(if rep.lines.matched == 0 { 1 } else { 0 })
}

/// The start of the first input (not standard input: it cannot be read twice),
/// on which the prefilter picks its literals.
fn sample(inputs: &[Input]) -> Vec<u8> {
    const SAMPLE: u64 = 256 * 1024;
    let Some(first) = inputs
        .first()
        .filter(|i| !matches!(i.source, Source::Stdin))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(r) = first.open(Rc::default()) {
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(r, SAMPLE), &mut out);
    }
    out
}

fn parse_time(t: &str) -> Option<UnixTime> {
    if let Ok(s) = t.parse::<i64>() {
        return Some(s);
    }
    t.parse::<jiff::Timestamp>().ok().map(|ts| ts.as_second())
}

/// The config directory: --config / BANWARDEN_CONFIG, else the default, else
/// the current directory when it holds filters/ (a checkout of the repo).
fn config_dir(args: &DryRunArgs) -> Result<PathBuf, Fatal> {
    let dir = args.config.dir();
    if args.config.config.is_some() || dir.is_dir() {
        return Ok(dir);
    }
    Err(Fatal(format!(
        "no config directory: {} does not exist and the current directory has no filters/ (use --config DIR)",
        config::DEFAULT_DIR
    )))
}

fn subject(args: &DryRunArgs) -> Result<Subject, Fatal> {
    if !args.regex.is_empty() {
        let spec = FilterSpec {
            name: "--regex".into(),
            description: String::new(),
            prefregex: args.prefregex.clone(),
            failregex: args.regex.clone(),
            ignoreregex: args.ignoreregex.clone(),
            datepattern: args.datepattern.clone(),
            ..Default::default()
        };
        let filter = Filter::compile(spec).map_err(|e| Fatal(regex_error(&e)))?;
        return Ok(Subject {
            filter: Arc::new(filter),
            origin: "command line".into(),
            jail: None,
            logpath: Vec::new(),
            journal: None,
        });
    }
    if let Some(name) = args
        .filter
        .as_ref()
        .filter(|n| crate::fail2ban::is_fail2ban_ref(n))
    {
        // A fail2ban filter file, read unmodified (`fail2ban:NAME` in the
        // config's `fail2ban_dir`, else /etc/fail2ban). Only the global
        // file is read: compiling the config's own filters and jails
        // cost more start-up than the fail2ban filter itself.
        let fail2ban_dir = config_dir(args)
            .ok()
            .and_then(|d| config::load_global(&d).ok())
            .map_or_else(
                || PathBuf::from(crate::fail2ban::DEFAULT_DIR),
                |g| g.fail2ban_dir,
            );
        let c = crate::fail2ban::compile_ref(name, &fail2ban_dir, Path::new("."))
            .map_err(|e| Fatal(format!("--filter {name}: {e}")))?;
        for n in &c.notes {
            eprintln!("note: {n}");
        }
        return Ok(Subject {
            filter: Arc::new(c.filter),
            origin: c.imported.path.display().to_string(),
            jail: None,
            logpath: Vec::new(),
            journal: None,
        });
    }
    if let Some(name) = &args.filter {
        let looks_like_path =
            name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml");
        let path = if looks_like_path {
            PathBuf::from(name)
        } else {
            config_dir(args)?
                .join("filters")
                .join(format!("{name}.yaml"))
        };
        if !path.is_file() {
            let mut msg = format!("--filter {name}: {} not found", path.display());
            if !looks_like_path {
                if let Some(dir) = path.parent() {
                    let mut known: Vec<String> = std::fs::read_dir(dir)
                        .map(|rd| {
                            rd.filter_map(Result::ok)
                                .filter_map(|e| {
                                    e.file_name()
                                        .to_str()
                                        .and_then(|n| n.strip_suffix(".yaml"))
                                        .map(str::to_string)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    known.sort();
                    if !known.is_empty() {
                        msg.push_str(&format!(" (known: {})", known.join(", ")));
                    }
                }
            }
            return Err(Fatal(msg));
        }
        let filter =
            config::load_filter_file(&path).map_err(|e| Fatal(format!("invalid filter:\n{e}")))?;
        return Ok(Subject {
            filter: Arc::new(filter),
            origin: path.display().to_string(),
            jail: None,
            logpath: Vec::new(),
            journal: None,
        });
    }
    if let Some(name) = &args.jail {
        let dir = config_dir(args)?;
        let cfg = config::load_jail(&dir, name)
            .map_err(|e| Fatal(format!("invalid configuration in {}:\n{e}", dir.display())))?;
        let Some(j) = cfg.jail(name) else {
            let all = config::load(&dir).map(|c| c.jails).unwrap_or_default();
            let known: Vec<&str> = all.iter().map(|j| j.name.as_str()).collect();
            return Err(Fatal(format!(
                "no jail named `{name}` in {} (known: {})",
                dir.display(),
                known.join(", ")
            )));
        };
        return Ok(Subject {
            filter: j.filter.clone(),
            origin: format!("jail {name}"),
            jail: Some(j.settings.clone()),
            logpath: j.logpath.clone(),
            journal: j.journal.clone(),
        });
    }
    Err(Fatal(
        "one of --filter, --regex or --jail is required".into(),
    ))
}

/// A --regex error, pointing at the bad part.
fn regex_error(e: &FilterError) -> String {
    let which = match e.which {
        PatternRef::Failregex(i) => format!("--regex #{}", i + 1),
        PatternRef::Ignoreregex(i) => format!("--ignoreregex #{}", i + 1),
        PatternRef::Prefregex => "--prefregex".into(),
        PatternRef::Datepattern => "--datepattern".into(),
    };
    if e.pattern.is_empty() {
        return format!("{which}: {}", e.message);
    }
    format!(
        "{which}: {}\n    {}\n    {:>w$}",
        e.message,
        e.pattern,
        "^",
        w = e.offset + 1
    )
}

fn inputs(args: &DryRunArgs, subject: &Subject) -> Result<Vec<Input>, Fatal> {
    let journal = if !args.journal.is_empty() {
        Some(args.journal.clone())
    } else if args.logs.is_empty() && args.line.is_empty() {
        subject.journal.clone()
    } else {
        None
    };
    if let Some(matches) = journal {
        let default_since = subject.jail.as_ref().map_or(86400, |j| j.findtime);
        let since = match &args.since {
            Some(t) => parse_time(t).ok_or_else(|| {
                Fatal(format!(
                    "--since {t}: not a time (RFC 3339 or Unix seconds)"
                ))
            })?,
            None => crate::now() - default_since,
        };
        return journal_input(matches, since, args.journal_file.clone()).map(|i| vec![i]);
    }
    if !args.line.is_empty() {
        let mut text = Vec::new();
        for l in &args.line {
            text.extend_from_slice(l.as_bytes());
            text.push(b'\n');
        }
        return Ok(vec![Input {
            name: "--line".into(),
            source: Source::Text(text),
        }]);
    }
    if !args.logs.is_empty() {
        let stdin_count = args.logs.iter().filter(|l| *l == "-").count();
        if stdin_count > 1 {
            return Err(Fatal("`-` (standard input) can be given only once".into()));
        }
        return Ok(args.logs.iter().map(|l| Input::from_arg(l)).collect());
    }
    if subject.jail.is_some() {
        let mut out = Vec::new();
        for p in &subject.logpath {
            let s = p.to_string_lossy();
            if s.contains(['*', '?', '[']) {
                let mut found: Vec<PathBuf> = glob::glob(&s)
                    .map_err(|e| Fatal(format!("logpath {s}: {e}")))?
                    .filter_map(Result::ok)
                    .collect();
                found.sort();
                out.extend(
                    found
                        .into_iter()
                        .map(|f| Input::from_arg(&f.to_string_lossy())),
                );
            } else {
                out.push(Input::from_arg(&s));
            }
        }
        if out.is_empty() {
            return Err(Fatal(
                "the jail's logpath matches no file; give LOG files".into(),
            ));
        }
        return Ok(out);
    }
    Err(Fatal(
        "give at least one LOG (or - for standard input), or --line TEXT".into(),
    ))
}
