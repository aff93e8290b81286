//! Building a [`Filter`] from its [`FilterSpec`]: every pattern compiled
//! (with its tags, Python rewrite, ASCII copy and fallback where it needs
//! one), the failregex and ignoreregex sets, the prefregex and its
//! shortcuts, the capture-free host paths, the date reader; the parts that
//! depend on nothing else here (the patterns, the date reader, the split
//! failregexes, automata every line needs) on the compile's helper thread
//! or this one, whichever is free (`jobs`). The candidate prefilter is
//! built when first asked for.
//!
//! Owns only the assembly; how one pattern compiles is `compile`'s, how a
//! line is matched is `matching`'s. It never sees a log line.

use super::*;

impl Filter {
    /// Compiles `spec`; the first pattern that does not compile is the
    /// error, named by its place in the spec.
    pub fn compile(spec: FilterSpec) -> Result<Filter, FilterError> {
        let too_slow = Arc::new(AtomicU64::new(0));
        let mut builder = Builder::default();
        let d = spec.dialect;
        let maxlines = spec.maxlines.clamp(1, multiline::MAX_LINES);
        let multi_line = maxlines > 1;
        // The date reader depends on nothing else: built on the helper
        // thread while the patterns compile.
        let dates = {
            let (datepattern, zone) = (spec.datepattern.clone(), spec.logtimezone.clone());
            builder.spawn(move || dates(d, datepattern.as_deref(), zone.as_deref()))
        };
        // The buffer goes through the general captures path.
        let mut general = multi_line;
        let mut prefregex_slow = None;
        let mut prefregex_dups = None;
        let mut prefregex_ascii = None;
        let mut prefregex_head = None;
        // Every pattern compiled on either thread (`jobs`), taken in order.
        let mut compile = |which, p: &str, multi_line| {
            let (p, too_slow, bounds) = (p.to_string(), too_slow.clone(), builder.bounds());
            builder.spawn(move || compile_one(which, &p, d, multi_line, &too_slow, &bounds))
        };
        let prefregex_job = spec
            .prefregex
            .as_deref()
            .map(|p| compile(PatternRef::Prefregex, p, false));
        let fail_jobs: Vec<_> = (spec.failregex.iter().enumerate())
            .map(|(i, p)| compile(PatternRef::Failregex(i), p, multi_line))
            .collect();
        let ignore_jobs: Vec<_> = (spec.ignoreregex.iter().enumerate())
            .map(|(i, p)| compile(PatternRef::Ignoreregex(i), p, multi_line))
            .collect();
        let prefregex = match (&spec.prefregex, prefregex_job) {
            (Some(p), Some(job)) => {
                let c = compiled(job, PatternRef::Prefregex, p)?;
                // Not deferred where the multi-line buffer matches it on
                // every line.
                let re = match (multi_line, c.re) {
                    (true, re) | (false, re @ Re::Unbuilt { .. }) => re.start(&mut builder),
                    (false, re) => re,
                };
                general |= c.general;
                prefregex_slow = c.slow;
                prefregex_dups = c.dups;
                if c.ascii.is_some() {
                    prefregex_head = split::Head::new(&c.screen);
                }
                let re = re.wait(PatternRef::Prefregex, p)?;
                // The ASCII copy has the same groups (and is built).
                let names: Vec<String> = match &c.ascii {
                    Some(a) => a.capture_names().flatten().map(String::from).collect(),
                    None => re.capture_names().flatten().map(String::from).collect(),
                };
                prefregex_ascii = c.ascii;
                if names.iter().all(|n| n != "content") {
                    return Err(err(
                        PatternRef::Prefregex,
                        p,
                        0,
                        "prefregex needs a group named `content`, e.g. (?P<content>.+)",
                    ));
                }
                Some((re, c.exp.has_host, names))
            }
            _ => None,
        };
        let prefix_host = prefregex.as_ref().is_some_and(|(_, h, _)| *h);
        let mlfid = d == Dialect::Fail2ban
            && prefregex
                .as_ref()
                .is_some_and(|(_, _, names)| names.iter().any(|n| n == "mlfid"));
        general |= mlfid;
        if spec.failregex.is_empty() {
            return Err(err(
                PatternRef::Failregex(0),
                "",
                0,
                "a filter needs at least one failregex",
            ));
        }
        // Automata still building ([`Re`]), in pattern order.
        let mut fail_re: Vec<(PatternRef, &str, Re)> = Vec::with_capacity(spec.failregex.len());
        let mut expanded = Vec::with_capacity(spec.failregex.len());
        let mut host_at = Vec::with_capacity(spec.failregex.len());
        let mut literal_sets = Vec::with_capacity(spec.failregex.len());
        let mut fail_slow = Vec::with_capacity(spec.failregex.len());
        let mut fail_dups = Vec::with_capacity(spec.failregex.len());
        let mut fail_ascii = Vec::with_capacity(spec.failregex.len());
        let mut fail_split = Vec::with_capacity(spec.failregex.len());
        let mut fail_optional = Vec::with_capacity(spec.failregex.len());
        for ((i, p), job) in spec.failregex.iter().enumerate().zip(fail_jobs) {
            let which = PatternRef::Failregex(i);
            let c = match compiled(job, which, p) {
                Ok(c) => c,
                Err(e) => return Err(first_error(fail_re, e)),
            };
            general |= c.general;
            let (exp, hir) = (c.exp, c.hir);
            // fail2ban's multi-line filters have failregexes whose host
            // comes from an earlier line: matched alone, a bad host.
            if !exp.has_host && !prefix_host && d == Dialect::Native {
                let e = err(
                    which,
                    p,
                    0,
                    "no <HOST> or <ADDR> tag: a failure must name the address to ban",
                );
                return Err(first_error(fail_re, e));
            }
            host_at.push(if c.general || multi_line {
                None
            } else {
                fixed::host_at(&hir)
            });
            literal_sets.push(prefilter::required_sets(&hir));
            fail_split.push(match c.rewritten && c.ascii.is_some() && !multi_line {
                true => {
                    let screen = c.screen.clone();
                    Some(builder.spawn(move || split::Split::new(&screen)))
                }
                false => None,
            });
            // The ASCII copy has the same groups; without one, the
            // automaton is built here (it is then never pending).
            let re = match (c.re, &c.ascii) {
                (re @ Re::Unbuilt { .. }, None) => match re.wait(which, p) {
                    Ok(LazyRegex::Built(re)) => Re::Ready(re),
                    Ok(re) => Re::Deferred(re),
                    Err(e) => return Err(first_error(fail_re, e)),
                },
                (re @ Re::Unbuilt { .. }, Some(_)) => re.start(&mut builder),
                (re, _) => re,
            };
            let names = c.ascii.as_ref().or(match &re {
                Re::Ready(r) => Some(r),
                _ => None,
            });
            fail_optional.push(match (&c.slow, names) {
                (None, Some(r)) => backtrack::Optional::of(r.capture_names().flatten()),
                // The fallback's own groups: every one may be read.
                _ => backtrack::Optional::ALL,
            });
            expanded.push(c.screen);
            fail_re.push((which, p, re));
            fail_slow.push(c.slow);
            fail_dups.push(c.dups);
            fail_ascii.push(c.ascii);
        }
        // Without the general path, every line runs in the Unicode automata
        // (`select`, `fixed`, the captures): built now, on the helper.
        if !general {
            fail_re = fail_re
                .into_iter()
                .map(|(which, p, re)| (which, p, re.start(&mut builder)))
                .collect();
        }
        let mut ignore = Vec::with_capacity(spec.ignoreregex.len());
        let mut ignore_slow = Vec::with_capacity(spec.ignoreregex.len());
        // Built only to tell a pattern that does not compile (the set
        // below is what matches).
        let mut ignore_re: Vec<(PatternRef, &str, Re)> = Vec::new();
        for ((i, p), job) in spec.ignoreregex.iter().enumerate().zip(ignore_jobs) {
            let which = PatternRef::Ignoreregex(i);
            let c = match compiled(job, which, p) {
                Ok(c) => c,
                Err(e) => {
                    let e = match settle(fail_re) {
                        Ok(_) => first_error(ignore_re, e),
                        Err(first) => first,
                    };
                    return Err(e);
                }
            };
            // Only an automaton over the bound is built (it may fail).
            let re = match c.re {
                re @ Re::Unbuilt { .. } => re.start(&mut builder),
                re => re,
            };
            ignore_re.push((which, p, re));
            general |= c.slow.is_some();
            ignore.push(c.screen);
            ignore_slow.push(c.slow);
        }
        let set = |patterns: &[String], which| {
            RegexSetBuilder::new(patterns)
                .multi_line(multi_line)
                .build()
                .map_err(|e| err(which, "", 0, &e.to_string()))
        };
        // Only the single-line fast path selects through the set (`select`);
        // the general path runs each regex's own DFA, and compiling a set of
        // fail2ban's Unicode-class patterns costs more than the rest of the
        // start-up.
        let fail_set = match general {
            true => set(&[], PatternRef::Failregex(0)),
            false => set(&expanded, PatternRef::Failregex(0)),
        };
        let ignore_set = set(&ignore, PatternRef::Ignoreregex(0));
        let screened = general
            && !multi_line
            && fail_slow.iter().all(Option::is_none)
            && fail_ascii.iter().all(Option::is_some);
        let dates = dates.wait().unwrap_or_else(|| {
            let e = "the date reader's build stopped";
            Err(DateError::Pattern(e.into()))
        });
        let dates = dates.map_err(|e| {
            err(
                PatternRef::Datepattern,
                spec.datepattern.as_deref().unwrap_or(""),
                0,
                &e.to_string(),
            )
        });
        // Errors in the order the patterns were given, as if built in turn.
        let fail = settle(fail_re)?;
        settle(ignore_re)?;
        let (fail_set, ignore_set, dates) = (fail_set?, ignore_set?, dates?);
        // The split failregexes (built on either thread), and the general
        // path's one pass over all of them (`screen::Screen`) here: nothing
        // is left for the helper by now, and waiting for it would only lose
        // time on a busy machine.
        let fail_split: Vec<_> = (fail_split.into_iter())
            .map(|s| s.and_then(|s| s.wait().flatten()))
            .collect();
        let fail_screen = screened
            .then(|| screen::Screen::for_filter(&expanded, &fail_split))
            .flatten();
        let filter = Filter {
            prefregex: prefregex.map(|(r, _, _)| r),
            prefregex_slow,
            prefregex_dups,
            prefregex_ascii,
            fail_ascii,
            prefregex_head,
            fail_split,
            fail_screen,
            fail_optional,
            fail_slow,
            fail_dups,
            ignore_slow,
            general,
            mlfid,
            maxlines,
            too_slow,
            prefix_host,
            fail_set,
            fail,
            host_at,
            ignore_set,
            dates,
            spec,
            literal_sets,
            prefilter: OnceLock::new(),
        };
        Ok(filter)
    }
}

/// Waits for every automaton of `pending`, in order: the automata, or the
/// first error.
fn settle(pending: Vec<(PatternRef, &str, Re)>) -> Result<Vec<LazyRegex>, FilterError> {
    let mut first = None;
    let mut built = Vec::with_capacity(pending.len());
    for (which, p, re) in pending {
        // Every build is waited for, also after an error: none outlives
        // the compile.
        match re.wait(which, p) {
            Ok(re) => built.push(re),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        None => Ok(built),
        Some(e) => Err(e),
    }
}

/// The error `compile` reports when `later` stops it: an earlier pattern's
/// that failed to build, else `later`.
fn first_error(pending: Vec<(PatternRef, &str, Re)>, later: FilterError) -> FilterError {
    settle(pending).err().unwrap_or(later)
}

/// A pattern compiled by its job.
fn compiled(
    job: Pending<Result<Compiled, FilterError>>,
    which: PatternRef,
    pattern: &str,
) -> Result<Compiled, FilterError> {
    job.wait()
        .unwrap_or_else(|| Err(err(which, pattern, 0, "the compile stopped")))
}

/// A filter's date reader.
fn dates(
    d: Dialect,
    datepattern: Option<&str>,
    zone: Option<&str>,
) -> Result<DateDetector, DateError> {
    match d {
        Dialect::Native => DateDetector::new(datepattern),
        Dialect::Fail2ban => match zone.map(date::parse_zone) {
            Some(Err(e)) => Err(e),
            Some(Ok(tz)) => DateDetector::fail2ban(datepattern, Some(tz)),
            None => DateDetector::fail2ban(datepattern, None),
        },
    }
}
