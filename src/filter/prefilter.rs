//! The candidate-line prefilter: from each failregex's syntax tree, a set of
//! literal strings one of which every match must contain, searched over a
//! whole chunk at once so that lines which cannot match are never handed to
//! the filter. Built once when the filter compiles; the scan uses it for the
//! daemon and dry-run alike.
//!
//! Owns only the "cannot possibly match" decision. It must never decide that a
//! line *does* match: candidate lines go through `Filter::examine_dated`. It
//! must stay sound (no false negatives): when in doubt it returns `None` and
//! every line is examined.
//!
//! Soundness with dates cut out of the middle of a line: the filter matches the
//! line with its timestamp removed, so `[10/Oct/2000:13:55:36 -0700] "GET`
//! becomes `[] "GET`, and a literal such as `[] "GET` occurs in that text but
//! not in the raw line. For such lines [`Prefilter::spans_cut`] checks the few
//! bytes on each side of the cut.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::prefilter_literals as literals;
use super::prefilter_search::Searcher;
use crate::filter::Filter;

/// Most alternatives kept in one literal set (cross products are cut here).
const MAX_SET: usize = 64;
/// A set whose shortest literal is shorter than this is not worth a prefilter.
const MIN_USEFUL_LEN: usize = 3;

/// Halves searched one by one (each with its own SIMD finder) up to this many.
const MAX_FINDERS: usize = 8;

/// Where [`Prefilter::find_half`] is in one haystack: per finder, its next
/// hit (`Some(None)`: none left; `None`: not searched yet).
#[derive(Debug)]
pub struct HalfCursor {
    next: Vec<Option<Option<usize>>>,
}

/// Literal sets of a filter, compiled into one multi-literal searcher.
#[derive(Debug, Clone)]
pub struct Prefilter {
    find: Searcher,
    /// The literal itself when there is only one: memmem straight away
    /// spares the automaton's dispatch on every candidate line (a flood of
    /// one filter's lines finds one per line).
    single: Option<memchr::memmem::Finder<'static>>,
    /// Standard semantics, for overlapping search across a cut.
    overlapping: AhoCorasick,
    /// Byte pairs that occur inside some literal (a cut can only be spanned
    /// by a literal holding the pair of bytes on either side of it).
    pairs: Box<[bool]>,
    /// The first and second half of each literal: a line whose cut text holds
    /// a literal holds one of its halves (see [`Prefilter::find_half`]).
    halves: Searcher,
    /// The same halves as single-string finders (used when there are few).
    half_finders: Vec<memchr::memmem::Finder<'static>>,
    /// The literals, for reporting.
    pub literals: Vec<Vec<u8>>,
    max_len: usize,
}

impl Prefilter {
    /// `None` when some failregex has no usable required literal (then every
    /// line must be examined). `sample` (the start of the input, may be empty)
    /// decides between candidate sets: the one found on the fewest lines wins.
    pub fn new(filter: &Filter, sample: &[u8]) -> Option<Prefilter> {
        let keep = literals::choose(&filter.literal_sets, sample)?;
        let find = Searcher::new(&keep)?;
        let overlapping = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&keep)
            .ok()?;
        // The halves only serve the sparse walk of filters with a
        // `datepattern`: for those they are chosen to be rare in the sample.
        let split_sample = match filter.spec.datepattern {
            Some(_) => sample,
            None => &[][..],
        };
        let halves = literals::halves(&keep, split_sample);
        let half_finders = if halves.len() <= MAX_FINDERS {
            halves
                .iter()
                .map(|h| memchr::memmem::Finder::new(h).into_owned())
                .collect()
        } else {
            Vec::new()
        };
        let halves = Searcher::new(&halves)?;
        let max_len = keep.iter().map(Vec::len).max().unwrap_or(0);
        let mut pairs = vec![false; 1 << 16].into_boxed_slice();
        for l in &keep {
            for w in l.windows(2) {
                pairs[usize::from(w[0]) << 8 | usize::from(w[1])] = true;
            }
        }
        let single = match keep.as_slice() {
            [one] => Some(memchr::memmem::Finder::new(one).into_owned()),
            _ => None,
        };
        Some(Prefilter {
            halves,
            half_finders,
            find,
            single,
            overlapping,
            literals: keep,
            max_len,
            pairs,
        })
    }

    /// Offset of the first literal occurrence at or after `from` in `hay`.
    #[inline]
    pub fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        if let Some(one) = &self.single {
            return hay.get(from..).and_then(|h| one.find(h)).map(|i| from + i);
        }
        self.find.find(hay, from)
    }

    /// Whether walking only the lines that hold half a literal (and dating
    /// only those) is likely faster on input like `sample` than dating every
    /// line: the halves are searched one by one and at most one line in
    /// eight of the sample holds one. (Only the speed and which lines' dates
    /// are looked for depend on it, never an outcome or a time.)
    pub fn sparse_pays(&self, sample: &[u8]) -> bool {
        if self.half_finders.is_empty() || sample.is_empty() {
            return false;
        }
        let lines = memchr::memchr_iter(b'\n', sample).count().max(1);
        let mut hits = 0;
        let mut cur = self.half_cursor();
        let mut at = 0;
        while let Some(h) = self.find_half(&mut cur, sample, at) {
            hits += 1;
            at = memchr::memchr(b'\n', &sample[h..]).map_or(sample.len(), |i| h + i + 1);
        }
        hits * 8 <= lines
    }

    /// A cursor for [`Prefilter::find_half`] over one haystack.
    pub fn half_cursor(&self) -> HalfCursor {
        HalfCursor {
            next: vec![None; self.half_finders.len()],
        }
    }

    /// Offset of the first occurrence of half a literal at or after `from`
    /// (`from` never decreasing for one cursor and haystack): lines before it
    /// neither hold a literal nor can have one appear when a date is cut out
    /// of them, so nothing about them needs looking at.
    #[inline]
    pub fn find_half(&self, cur: &mut HalfCursor, hay: &[u8], from: usize) -> Option<usize> {
        if from >= hay.len() {
            return None;
        }
        if self.half_finders.is_empty() {
            return self.halves.find(hay, from);
        }
        // Each finder scans the haystack once: its next hit is kept until passed.
        let mut best = None;
        for (f, next) in self.half_finders.iter().zip(cur.next.iter_mut()) {
            let at = match *next {
                Some(Some(at)) if at >= from => Some(at),
                Some(None) => None,
                _ => {
                    let found = f.find(&hay[from..]).map(|i| from + i);
                    *next = Some(found);
                    found
                }
            };
            best = match (best, at) {
                (Some(b), Some(a)) => Some(a.min(b)),
                (b, a) => b.or(a),
            };
        }
        best
    }

    /// Whether some literal spans the junction when `line[start..end]` (a date)
    /// is cut out: the text the filter sees is `line[..start] + line[end..]`.
    /// `window` is scratch space.
    pub fn spans_cut(&self, line: &[u8], start: usize, end: usize, window: &mut Vec<u8>) -> bool {
        let k = self.max_len.saturating_sub(1);
        if k == 0 || start == 0 || end >= line.len() || start > end {
            return false;
        }
        if !self.pairs[usize::from(line[start - 1]) << 8 | usize::from(line[end])] {
            return false;
        }
        let left = &line[start.saturating_sub(k)..start];
        let right = &line[end..line.len().min(end + k)];
        window.clear();
        window.extend_from_slice(left);
        window.extend_from_slice(right);
        let cut = left.len();
        self.overlapping
            .find_overlapping_iter(window.as_slice())
            .any(|m| m.start() < cut && m.end() > cut)
    }
}

/// Every usable literal set found in a failregex's syntax tree (tags
/// expanded), best first by their own merit (long literals, few of them);
/// [`Prefilter::new`] may prefer one that is rarer in the input.
pub(crate) fn required_sets(hir: &Hir) -> Vec<Vec<Vec<u8>>> {
    let mut sets: Vec<Vec<Vec<u8>>> = analyze(hir)
        .required
        .into_iter()
        .filter(|s| min_len(s) >= MIN_USEFUL_LEN)
        .collect();
    sets.sort_by_key(|s| std::cmp::Reverse(score(s)));
    sets.dedup();
    sets.truncate(MAX_CANDIDATES);
    sets
}

/// Candidate sets kept per sub-expression.
const MAX_CANDIDATES: usize = 8;

/// What is known about the strings a sub-expression matches.
#[derive(Debug, Default)]
struct Info {
    /// Exactly the strings it can match (small finite languages only).
    exact: Option<Vec<Vec<u8>>>,
    /// Sets one of which every match contains (each one alone suffices).
    required: Vec<Vec<Vec<u8>>>,
}

fn min_len(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// Larger is better: long shortest literal first, then fewer alternatives.
fn score(set: &[Vec<u8>]) -> (usize, isize) {
    (min_len(set).min(16), -(set.len() as isize))
}

fn nonempty(set: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    (!set.is_empty() && set.iter().all(|l| !l.is_empty())).then_some(set)
}

/// Adds `set` to `cands`, keeping the best `MAX_CANDIDATES`.
fn push(cands: &mut Vec<Vec<Vec<u8>>>, set: Option<Vec<Vec<u8>>>) {
    if let Some(set) = set.and_then(nonempty) {
        if !cands.contains(&set) {
            cands.push(set);
        }
        if cands.len() > 2 * MAX_CANDIDATES {
            cands.sort_by_key(|s| std::cmp::Reverse(score(s)));
            cands.truncate(MAX_CANDIDATES);
        }
    }
}

fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

fn class_strings(c: &Class) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    match c {
        Class::Unicode(u) => {
            for r in u.ranges() {
                for ch in r.start()..=r.end() {
                    if out.len() >= 8 {
                        return None;
                    }
                    out.push(ch.to_string().into_bytes());
                }
            }
        }
        Class::Bytes(b) => {
            for r in b.ranges() {
                for byte in r.start()..=r.end() {
                    if out.len() >= 8 {
                        return None;
                    }
                    out.push(vec![byte]);
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn analyze(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            exact: Some(vec![Vec::new()]),
            required: Vec::new(),
        },
        HirKind::Literal(l) => {
            let s = vec![l.0.to_vec()];
            Info {
                exact: Some(s.clone()),
                required: vec![s],
            }
        }
        HirKind::Class(c) => {
            let exact = class_strings(c);
            Info {
                required: exact.clone().into_iter().collect(),
                exact,
            }
        }
        HirKind::Capture(c) => analyze(&c.sub),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                return Info::default();
            }
            let sub = analyze(&r.sub);
            let exact = match (&sub.exact, r.max) {
                (Some(e), Some(max)) if max == r.min && r.min <= 4 => {
                    let mut acc = Some(vec![Vec::new()]);
                    for _ in 0..r.min {
                        acc = acc.and_then(|a| cross(&a, e));
                    }
                    acc
                }
                _ => None,
            };
            let mut required = sub.required;
            push(&mut required, exact.clone());
            Info { exact, required }
        }
        HirKind::Concat(subs) => {
            let mut cands: Vec<Vec<Vec<u8>>> = Vec::new();
            let mut run: Vec<Vec<u8>> = vec![Vec::new()];
            let mut all_exact = true;
            for s in subs {
                let info = analyze(s);
                match info.exact {
                    Some(e) => match cross(&run, &e) {
                        Some(n) => run = n,
                        None => {
                            push(&mut cands, Some(std::mem::take(&mut run)));
                            all_exact = false;
                            run = e;
                        }
                    },
                    None => {
                        push(
                            &mut cands,
                            Some(std::mem::replace(&mut run, vec![Vec::new()])),
                        );
                        all_exact = false;
                    }
                }
                for r in info.required {
                    push(&mut cands, Some(r));
                }
            }
            let exact = all_exact.then(|| run.clone());
            push(&mut cands, Some(run));
            Info {
                exact,
                required: cands,
            }
        }
        HirKind::Alternation(subs) => {
            let infos: Vec<Info> = subs.iter().map(analyze).collect();
            let exact = infos
                .iter()
                .try_fold(Vec::new(), |mut acc: Vec<Vec<u8>>, i| {
                    acc.extend(i.exact.clone()?);
                    (acc.len() <= MAX_SET).then_some(acc)
                })
                .map(|mut e| {
                    e.sort();
                    e.dedup();
                    e
                });
            // One set per branch (its best), united.
            let union = infos
                .iter()
                .try_fold(Vec::new(), |mut acc: Vec<Vec<u8>>, i| {
                    let best = i.required.iter().max_by_key(|s| score(s))?;
                    acc.extend(best.iter().cloned());
                    (acc.len() <= MAX_SET).then_some(acc)
                });
            let mut required = Vec::new();
            push(
                &mut required,
                union.map(|mut u| {
                    u.sort();
                    u.dedup();
                    u
                }),
            );
            push(&mut required, exact.clone());
            Info { exact, required }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The best literal set of `p` (tags included), as the filter finds it.
    fn set(p: &str) -> Option<Vec<String>> {
        let f = Filter::compile(crate::filter::FilterSpec {
            name: "t".into(),
            failregex: vec![p.into()],
            ..Default::default()
        })
        .unwrap();
        f.literal_sets[0].first().cloned().map(|s| {
            s.into_iter()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        })
    }

    #[test]
    fn picks_the_longest_required_literal() {
        assert_eq!(set("Login failure <HOST>").unwrap(), vec!["Login failure "]);
        assert_eq!(
            set(r#"^<HOST> -.*"POST /admin/login/ HTTP/\d\.\d" 200"#).unwrap(),
            vec![r#""POST /admin/login/ HTTP/"#]
        );
        assert_eq!(
            set(r"^Failed (?:password|publickey) for .* from <HOST>").unwrap(),
            vec!["Failed password for ", "Failed publickey for "]
        );
    }

    #[test]
    fn optional_parts_are_not_required() {
        assert_eq!(
            set(r"(?:foo bar)?<HOST> x").unwrap_or_default(),
            Vec::<String>::new()
        );
        assert_eq!(
            set(r"^(?:Invalid|Bad) user from <HOST>").unwrap(),
            vec!["Bad user from ", "Invalid user from "]
        );
    }

    #[test]
    fn case_insensitive_literals_expand() {
        let s = set(r"(?i)fail <HOST>").unwrap();
        assert!(
            s.contains(&"fail ".to_string()) && s.contains(&"FAIL ".to_string()),
            "{s:?}"
        );
    }

    #[test]
    fn junction_literal_found_across_the_cut() {
        let f = Filter::compile(crate::filter::FilterSpec {
            name: "t".into(),
            failregex: vec![r#"^<HOST> - - \[\] "GET /x"#.into()],
            ..Default::default()
        })
        .unwrap();
        let p = Prefilter::new(&f, b"").unwrap();
        let line = b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /x HTTP/1.1\"";
        assert_eq!(p.find(line, 0), None);
        let start = line.iter().position(|&b| b == b'[').unwrap() + 1;
        let end = line.iter().position(|&b| b == b']').unwrap();
        assert!(p.spans_cut(line, start, end, &mut Vec::new()));
    }

    #[test]
    fn one_literal_is_found_where_the_automaton_finds_it() {
        let f = Filter::compile(crate::filter::FilterSpec {
            name: "t".into(),
            failregex: vec!["Login failure <HOST>".into()],
            ..Default::default()
        })
        .unwrap();
        let p = Prefilter::new(&f, b"").unwrap();
        assert!(p.single.is_some());
        let automaton = AhoCorasick::new(&p.literals).unwrap();
        let hay = b"x Login failure 1.2.3.4\nLogin failur\nLogin failure Login failure ";
        for from in 0..=hay.len() + 1 {
            let input = aho_corasick::Input::new(&hay[..]).range(from.min(hay.len())..);
            let want = (from <= hay.len())
                .then(|| automaton.find(input).map(|m| m.start()))
                .flatten();
            assert_eq!(p.find(hay, from), want, "from {from}");
        }
    }

    /// Whether the prefilter lets `line` through, as `scan` asks it.
    fn passes(f: &Filter, p: &Prefilter, line: &[u8]) -> bool {
        let mut state = f.new_state();
        let date = f.date(line, 1_717_200_000, &mut state);
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        p.find(line, 0).is_some()
            || date
                .is_some_and(|d| d.start > 0 && p.spans_cut(text, d.start, d.end, &mut Vec::new()))
    }

    /// Sound on every shipped filter and sample line: whatever the filter does
    /// not call missed, the prefilter lets through (with and without a sample
    /// to pick literals on).
    #[test]
    fn never_skips_a_line_the_filter_would_not_miss() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let Ok(dir) = std::fs::read_dir(root.join("filters")) else {
            return;
        };
        let mut checked = 0;
        for e in dir.flatten() {
            let path = e.path();
            let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(text) = std::fs::read(root.join(format!("tests/samples/{name}.log"))) else {
                continue;
            };
            let f = crate::config::load_filter_file(&path).unwrap();
            let mut scratch = f.new_state();
            for sample in [&b""[..], &text[..]] {
                let Some(p) = Prefilter::new(&f, sample) else {
                    continue;
                };
                for line in text.split(|b| *b == b'\n') {
                    let (_, outcome) = f.examine(line, 1_717_200_000, &mut scratch);
                    if outcome != crate::filter::Outcome::Missed {
                        checked += 1;
                        assert!(
                            passes(&f, &p, line),
                            "{name}: skipped {:?}",
                            String::from_utf8_lossy(line)
                        );
                    }
                }
            }
        }
        assert!(checked > 0 || !root.join("tests/samples").exists());
    }
}
