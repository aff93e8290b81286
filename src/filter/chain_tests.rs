//! The chain against the backtracker: wherever the chain answers, every
//! slot is the backtracker's.

use regex_automata::nfa::thompson::backtrack::BoundedBacktracker;
use regex_automata::{Anchored, Input};

use super::*;
use crate::filter::split::{ascii_hir, backtracker, tests::combinations, Split};

/// The chain's captures and the backtracker's on `text`: `None` when the
/// chain does not answer.
fn both(chain: &Chain, bt: &BoundedBacktracker, text: &[u8]) -> Option<(Captures, Captures)> {
    let mut got = bt.create_captures();
    chain.captures(text, &mut got).ok()?;
    let mut want = bt.create_captures();
    let mut cache = bt.create_cache();
    bt.try_search(
        &mut cache,
        &Input::new(text).anchored(Anchored::Yes),
        &mut want,
    )
    .unwrap();
    Some((got, want))
}

/// Checks `pattern`'s chain (whole, as `screen` builds it) on `texts`;
/// returns how often it answered.
fn check(pattern: &str, texts: &[String]) -> usize {
    let hir = ascii_hir(pattern).unwrap();
    let bt = backtracker(&hir).unwrap();
    let chain = Chain::new(&[Some(&hir)], bt.get_nfa().group_info())
        .unwrap_or_else(|| panic!("no chain for {pattern}"));
    let mut answered = 0;
    for t in texts {
        if let Some((got, want)) = both(&chain, &bt, t.as_bytes()) {
            answered += 1;
            assert!(want.is_match(), "{pattern}: the chain matched {t:?}");
            assert_eq!(got.slots(), want.slots(), "{pattern} on {t:?}");
        }
    }
    answered
}

/// Text of up to three of these pieces, in every order.
fn texts() -> Vec<String> {
    combinations(&[
        "",
        " ",
        "a",
        "ab",
        "b",
        "x",
        "user ",
        " from ",
        "from",
        "1.2.3.4",
        ":",
        "publickey",
        "1.2.3.45x",
    ])
}

#[test]
fn the_chain_gives_the_backtrackers_slots_wherever_it_answers() {
    let texts = texts();
    for (p, min) in [
        // A group followed by a literal: its end is fixed from the piece's.
        (r"^(?:user )?(?P<user>\S+) from (?P<host>[0-9.]+)", 15),
        // Greedy and lazy pieces that a later piece may need to give back.
        (r"^(?P<user>.*) from (?P<host>\S+)", 200),
        (r"^(?P<user>.*?) from (?P<host>\S*)", 400),
        (r"^(?P<user>a*)(?P<host>ab|b)x?", 300),
        (r"^a*(?:ab|b)(?P<host>\S*)", 300),
        // Nested groups over one span, and groups in alternation branches.
        (
            r"^(?P<nofail>(?P<mlfforget>publickey|ab)) (?P<host>\S+)",
            40,
        ),
        (
            r"^(?:(?P<nofail>publickey)|\S+)(?: from | )(?P<host>\S+)",
            300,
        ),
        (
            r"^(?:(?P<nofail>a)|(?P<mlfforget>ab)|\S+?)(?P<host>b|x)",
            200,
        ),
        // Marks between pieces that vary.
        (r"^(?P<user>\S*)(?P<host>\s*)(?P<cidr>\S+)$", 300),
        (r"^\s*(?P<user>)(?:x|ab)?(?P<host>[^ ]+)\b", 1500),
        // Groups inside branches and optional parts.
        (r"^(?:(?P<user>a)b|x|(?P<host>a)(?P<cidr>\S*))(?: |b)?", 400),
        (
            r"^\S+(?: user=(?P<user>\S*))?(?: (?:from )?(?P<host>[0-9.]+))?",
            1500,
        ),
        (
            r"^(?:(?P<user>a+) )??(?P<host>\S+)(?: (?P<cidr>x|:))?",
            1500,
        ),
    ] {
        let answered = check(p, &texts);
        assert!(answered >= min, "{p}: answered on {answered} texts");
    }
}

#[test]
fn a_group_it_cannot_place_leaves_the_pattern_to_the_backtracker() {
    for p in [r"^(?:x(?P<host>\S+))*", r"^(?:(?P<host>a)|(?P<user>b))+"] {
        let hir = ascii_hir(p).unwrap();
        let bt = backtracker(&hir).unwrap();
        assert!(
            Chain::new(&[Some(&hir)], bt.get_nfa().group_info()).is_none(),
            "{p}"
        );
    }
}

#[test]
fn a_split_failregexes_chain_per_branch_gives_its_tails_slots() {
    // sshd.conf's "Failed" failregex as `py_rewrite` writes it, shortened.
    let p = r"^Failed (?:(?P<nofail>publickey)|\S+) for (?:(?P<cond_inv>invalid user )(?P<user>(?P<cond_user>\S+)) from (?P<host>[0-9.]+)(?: port \d+)?(?:: )|(?P<user__2>(?:[^ ]*(?: (?:[^f ][^ ]*|f|f[^r ][^ ]*|fr|fr[^o ][^ ]*|fro|fro[^m ][^ ]*|from[^ ]+|))*)) from (?P<host__2>[0-9.]+)(?: port \d+)?(?: [^ ]*)?$)";
    let split = Split::new(p).unwrap();
    let (_, tails) = Split::parts(p).unwrap();
    let rests = combinations(&[
        "invalid user ",
        "bob ",
        "a from b ",
        "from 1.2.3.4",
        " port 22",
        ": ",
        " ssh2",
        "",
    ]);
    let lines: Vec<String> = ["Failed password for ", "Failed publickey for "]
        .iter()
        .flat_map(|head| rests.iter().map(move |r| format!("{head}{r}")))
        .collect();
    let mut answered = 0;
    for (k, tail) in tails.iter().enumerate() {
        let bt = backtracker(tail).unwrap();
        let chain = split.chain(k).unwrap();
        for l in &lines {
            let Some((got, want)) = both(chain, &bt, l.as_bytes()) else {
                continue;
            };
            assert_eq!(got.slots(), want.slots(), "branch {k} on {l:?}");
            answered += 1;
        }
    }
    assert!(answered > 40, "only {answered}");
}

proptest::proptest! {
    #[test]
    fn random_texts_get_the_backtrackers_slots(
        text in "[ab x:1.]{0,12}",
        which in 0usize..8,
    ) {
        let p = [
            r"^(?P<user>[^ ]*)(?: (?:[^f ][^ ]*|x|))* (?P<host>[0-9.]+)x?",
            r"^(?P<user>a+?)(?P<host>b*)(?: |x)*",
            r"^(?:(?P<nofail>a)|[ab]+)(?P<user>b?) ?(?P<host>.*)$",
            r"^(?P<user>.*)(?P<host>x|:)(?P<cidr>[0-9]*)",
            r"^\s*(?P<user>\S+?)(?:\s+(?:a|ab))?(?P<host>\s\S*)",
            r"^(?P<user>(?P<host>a|ab)(?:b|x)*)(?P<cidr>.*?)$",
            r"^(?:(?P<user>a)b|(?P<host>a)(?P<cidr>[ab]*)|x)(?: (?P<alt_user>\S*))?",
            r"^(?:(?P<user>a+?) )??(?P<host>\S+)(?: (?P<cidr>x|:)| 1)?",
        ][which];
        let hir = ascii_hir(p).unwrap();
        let bt = backtracker(&hir).unwrap();
        let chain = Chain::new(&[Some(&hir)], bt.get_nfa().group_info()).unwrap();
        if let Some((got, want)) = both(&chain, &bt, text.as_bytes()) {
            proptest::prop_assert!(want.is_match());
            proptest::prop_assert_eq!(got.slots(), want.slots(), "{} on {:?}", p, text);
        }
    }
}
