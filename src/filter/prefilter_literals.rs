//! Which strings the candidate prefilter searches for: per failregex, the
//! candidate literal set found on the fewest lines of the sample; their
//! union without redundant literals, and, for a large union, merged along
//! shared prefixes and suffixes; the halves the sparse walk looks for
//! (two per literal, overlapping by a byte, split where both are rare in
//! the sample) without redundant ones either.
//!
//! Owns only the choice of strings, made once per prefilter. Every step
//! keeps the prefilter sound: a literal is only ever replaced by a part of
//! itself (a line holding the literal holds the part) or dropped for one it
//! contains, so a line holding one of the original strings holds one of
//! the chosen. Fewer strings only let more lines through to the filter; it
//! never decides that a line matches.

use std::collections::HashMap;

use aho_corasick::{AhoCorasickBuilder, MatchKind};

/// Bytes of the sample [`lines_with`] counts in: enough lines to tell a
/// rare set from a common one, without a search of the whole sample per
/// candidate set at start-up.
const SCORE_SAMPLE: usize = 64 * 1024;

/// A union of more literals than this is merged ([`merge_shared`]):
/// Teddy, the searcher, slows down with the number of literals (fat Teddy
/// past 32, and the sparse walk searches for twice as many halves), far
/// more than it loses to a few more lines let through.
const MERGE_ABOVE: usize = 16;

/// Shortest shared prefix or suffix two literals are merged on.
const MIN_SHARED: usize = 8;

/// How many lines of `sample` contain one of `set` (a lone literal
/// searched for by itself: no automaton to build).
pub(super) fn lines_with(set: &[Vec<u8>], sample: &[u8]) -> usize {
    let sample = &sample[..sample.len().min(SCORE_SAMPLE)];
    if let [one] = set {
        let finder = memchr::memmem::Finder::new(one);
        return count_lines(sample, |at| {
            let i = finder.find(&sample[at..])?;
            Some(at + i + one.len())
        });
    }
    let Ok(ac) = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostFirst)
        .build(set)
    else {
        return usize::MAX;
    };
    count_lines(sample, |at| {
        ac.find(aho_corasick::Input::new(sample).range(at..))
            .map(|m| m.end())
    })
}

/// Lines of `sample` in which `find` (the end of the first match at or
/// after a position) matches.
fn count_lines(sample: &[u8], find: impl Fn(usize) -> Option<usize>) -> usize {
    let mut n = 0;
    let mut at = 0;
    while at < sample.len() {
        let Some(end) = find(at) else {
            break;
        };
        n += 1;
        at = memchr::memchr(b'\n', &sample[end..]).map_or(sample.len(), |i| end + i + 1);
    }
    n
}

/// The literals to search for, from each failregex's candidate sets (the
/// first set of each without a sample); `None` when some failregex has
/// none, or a literal is empty or holds a newline.
pub(super) fn choose(literal_sets: &[Vec<Vec<Vec<u8>>>], sample: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut all: Vec<Vec<u8>> = Vec::new();
    // fail2ban's failregexes share candidate sets: each counted once.
    let mut counted: HashMap<Vec<Vec<u8>>, usize> = HashMap::new();
    for sets in literal_sets {
        let sets = sets.clone();
        let best = if sample.is_empty() || sets.len() < 2 {
            sets.into_iter().next()?
        } else {
            let mut scored: Vec<(usize, Vec<Vec<u8>>)> = sets
                .into_iter()
                .map(|s| {
                    let n = match counted.get(&s) {
                        Some(&n) => n,
                        None => *counted.entry(s.clone()).or_insert(lines_with(&s, sample)),
                    };
                    (n, s)
                })
                .collect();
            // Stable: equal counts keep the static order.
            scored.sort_by_key(|(n, _)| *n);
            scored.into_iter().next()?.1
        };
        all.extend(best);
    }
    if all.is_empty() || all.iter().any(|l| l.is_empty() || l.contains(&b'\n')) {
        return None;
    }
    let keep = without_redundant(all);
    Some(match keep.len() > MERGE_ABOVE {
        true => merge_shared(keep),
        false => keep,
    })
}

/// Bytes of the sample [`split_point`] counts in.
const SPLIT_SAMPLE: usize = 32 * 1024;

/// Halves at least this long let the searcher (Teddy) compare four bytes
/// per position instead of three: far fewer false candidates to verify.
const FULL_FINGERPRINT: usize = 4;

/// The two halves of `l` (at least 2 bytes) for the split at `k` (1..len):
/// `l[..k]` and `l[k - 1..]`, overlapping by one byte. Where a cut splits
/// `l` as `l[..i] + l[i..]` (1 <= i < len), `l[..k]` lies whole in the
/// line when i >= k and `l[k - 1..]` does when i <= k - 1: one of them
/// always does, and the overlap makes both a byte longer than a split
/// without it (`Failed ` gives `Fail` and `led `, not `Fai` and `led `).
fn halves_at(l: &[u8], k: usize) -> (&[u8], &[u8]) {
    (&l[..k], &l[k - 1..])
}

/// Where to split `l` (at least 2 bytes; `k` in 1..len, see [`halves_at`])
/// so that both halves are at least [`FULL_FINGERPRINT`] long where the
/// literal allows it, then rare in `sample` (the middle without a sample).
fn split_point(l: &[u8], sample: &[u8]) -> usize {
    let mid = l.len().div_ceil(2);
    if sample.is_empty() || l.len() < 2 {
        return mid.clamp(1, l.len().saturating_sub(1).max(1));
    }
    // The start of the sample is enough to tell rare from common, and this
    // runs two searches per split of every literal at start-up.
    let sample = &sample[..sample.len().min(SPLIT_SAMPLE)];
    let count = |needle: &[u8]| memchr::memmem::find_iter(sample, needle).count();
    let long_enough = l.len() > 2 * (FULL_FINGERPRINT - 1);
    (1..l.len())
        .min_by_key(|&k| {
            let (a, b) = halves_at(l, k);
            let short = long_enough && a.len().min(b.len()) < FULL_FINGERPRINT;
            (short, count(a) + count(b), k.abs_diff(mid))
        })
        .unwrap_or(mid)
}

/// The halves the sparse walk looks for: each literal of `keep` split in
/// two overlapping halves ([`halves_at`], where both are rare in `sample`),
/// without redundant ones. Where a date is cut out of a line and a literal
/// spans the cut, one of its halves lies whole in the line.
pub(super) fn halves(keep: &[Vec<u8>], sample: &[u8]) -> Vec<Vec<u8>> {
    let mut halves: Vec<Vec<u8>> = Vec::new();
    for l in keep {
        match l.len() {
            // Nothing to split: a one-byte literal cannot span a cut.
            0 | 1 => halves.push(l.clone()),
            _ => {
                let (a, b) = halves_at(l, split_point(l, sample));
                halves.push(a.to_vec());
                halves.push(b.to_vec());
            }
        }
    }
    // A half holding another is redundant: the lines holding a half
    // are the same without it.
    without_redundant(halves)
}

/// `strings` sorted, without duplicates and without any that contains
/// another: a line (or text) holding it holds the shorter one.
pub(super) fn without_redundant(mut strings: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    strings.sort();
    strings.dedup();
    let contains = |l: &[u8], o: &[u8]| l.windows(o.len()).any(|w| w == o);
    strings
        .iter()
        .filter(|l| !strings.iter().any(|o| o.len() < l.len() && contains(l, o)))
        .cloned()
        .collect()
}

/// `literals` (sorted, none containing another) with every two that share
/// a prefix or a suffix of at least [`MIN_SHARED`] bytes replaced by it,
/// longest first, until no two do: `Authentication failed for ` and
/// `authentication failed for ` become `uthentication failed for `, the
/// seven ` not allowed because ...` of sshd one.
fn merge_shared(mut literals: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let prefix = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = |a: &[u8], b: &[u8]| {
        a.iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
    };
    loop {
        // The longest shared part; ties go to the first pair in order.
        let mut best: Option<(usize, usize, usize, Vec<u8>)> = None;
        for i in 0..literals.len() {
            for j in i + 1..literals.len() {
                let (a, b) = (&literals[i], &literals[j]);
                let (p, s) = (prefix(a, b), suffix(a, b));
                let (n, part) = match p >= s {
                    true => (p, &a[..p]),
                    false => (s, &a[a.len() - s..]),
                };
                if n >= MIN_SHARED && best.as_ref().is_none_or(|b| n > b.0) {
                    best = Some((n, i, j, part.to_vec()));
                }
            }
        }
        let Some((_, i, j, part)) = best else {
            return literals;
        };
        literals.remove(j);
        literals.remove(i);
        literals.push(part);
        literals = without_redundant(literals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    /// A lone literal (searched for by itself) counts the lines the
    /// automaton of a set counts: each line once, however often it holds
    /// the literal, the last line also without its newline.
    #[test]
    fn a_lone_literal_counts_lines_as_a_set_does() {
        let sample = b"Failed x Failed\nok\nFailed\n\nno\nxFailed";
        for lit in ["Failed", "ok", "x", "\n", "absent"] {
            let one = strings(&[lit]);
            let set = strings(&[lit, "\u{0}never"]);
            assert_eq!(
                lines_with(&one, sample),
                lines_with(&set, sample),
                "{lit:?}"
            );
        }
        assert_eq!(lines_with(&strings(&["Failed"]), sample), 3);
    }

    #[test]
    fn a_string_holding_another_is_dropped() {
        let got = without_redundant(strings(&["Failed ", "led ", "Accepted ", "led "]));
        assert_eq!(got, strings(&["Accepted ", "led "]));
    }

    #[test]
    fn literals_sharing_a_long_prefix_or_suffix_are_merged_on_it() {
        let got = merge_shared(without_redundant(strings(&[
            "Authentication failed for ",
            "authentication failed for ",
            " not allowed because listed in DenyUsers",
            " not allowed because not in any group",
            "Failed ",
            "Connection from ",
        ])));
        assert_eq!(
            without_redundant(got),
            strings(&[
                " not allowed because ",
                "Connection from ",
                "Failed ",
                "uthentication failed for ",
            ])
        );
        // Shorter shared parts are left alone.
        let short = without_redundant(strings(&["GET /wp-login", "GET /xmlrpc"]));
        assert_eq!(merge_shared(short.clone()), short);
    }

    /// Wherever a date splits a literal in a line (the literal appears
    /// once the date is cut out), one of its halves lies whole in the line,
    /// for every split the sample may choose.
    #[test]
    fn one_half_survives_every_cut() {
        let contains = |hay: &[u8], s: &[u8]| hay.windows(s.len()).any(|w| w == s);
        let l = b"Failed password";
        for k in 1..l.len() {
            let (a, b) = halves_at(l, k);
            for i in 1..l.len() {
                let line = [&b"sshd: "[..], &l[..i], b"Mar 10 00:00:00", &l[i..]].concat();
                assert!(
                    contains(&line, a) || contains(&line, b),
                    "split {k}, cut {i}: {:?}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }

    /// A literal of seven bytes or more gives halves of four or more, so
    /// the searcher compares four bytes per position.
    #[test]
    fn halves_are_long_enough_for_a_full_fingerprint() {
        let sample = b"Failed password\nFailed none\nclosed\n".repeat(50);
        for (lit, sample) in [
            ("Failed ", &sample[..]),
            ("Failed ", b""),
            ("Accepted ", b""),
        ] {
            let (a, b) = halves_at(lit.as_bytes(), split_point(lit.as_bytes(), sample));
            assert!(
                a.len().min(b.len()) >= FULL_FINGERPRINT,
                "{lit:?}: {a:?} {b:?}"
            );
        }
    }

    /// Soundness: every original literal holds one of the chosen.
    #[test]
    fn every_original_literal_holds_a_chosen_one() {
        let original = strings(&[
            " not allowed because a group is listed in DenyGroups",
            " not allowed because account is locked",
            "Connection closed by",
            "Connection closed from",
            "Connection reset by",
            "Disconnected by",
            "Disconnected from",
            "Illegal user ",
            "illegal user ",
            "Invalid user ",
            "invalid user ",
            "Failed ",
            "Accepted ",
            "Received disconnect",
            "refused connect from ",
            ": Auth fail",
            " LOGIN REFUSED FROM ",
        ]);
        let sets: Vec<Vec<Vec<Vec<u8>>>> = original.iter().map(|l| vec![vec![l.clone()]]).collect();
        let chosen = choose(&sets, b"").unwrap();
        assert!(chosen.len() < original.len(), "{chosen:?}");
        for l in &original {
            assert!(
                chosen
                    .iter()
                    .any(|c| l.windows(c.len()).any(|w| w == &c[..])),
                "{:?}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
