//! Rewriting two Python-only constructs of fail2ban's filters into plain
//! regular syntax, so that such a pattern runs in the `regex` crate instead
//! of the backtracking fallback (sshd's "Failed ..." failregexes):
//!
//! - a conditional `(?(name)yes|no)` whose group's participation is decided
//!   by an earlier choice of the same concatenation (`(?P<g>..)?`, or an
//!   alternative that holds the group): the concatenation from that choice
//!   on is enumerated as an alternation, one branch per combination, in the
//!   order a backtracker tries them (`(X)?R = XR|R`, `(A|B)R = AR|BR`), so
//!   leftmost-first matching picks the same branch and the same captures.
//!   A group name that the enumeration repeats is renamed (`user__2`...)
//!   and the names are merged back when captures are read ([`Dups`]).
//! - a tempered dot `(?:(?!L).)*` (or `*?`), where `L` is a literal `cWc`
//!   whose first and last characters `c` are the same and occur nowhere
//!   else in it (` from `), followed by the end `$` or by `L` itself: the
//!   span it takes is then unique (up to the first `L`, or to the end), and
//!   the language "no `L` starts here" is written as words between `c`s,
//!   none of which (but a last one before `$`) is `W`.
//!
//! Owns only the text transformation, on the pattern after tag expansion
//! (still Python syntax). Anything it does not recognise, it leaves alone
//! (`None`): the pattern then runs on the fallback as before. It compiles
//! and matches nothing.

use std::collections::HashMap;

use super::py_syntax::{parse, render_alts, Node};

/// Renamed duplicate groups: a base name and every name it got, in order.
pub type Dups = Vec<(String, Vec<String>)>;

/// A pattern rewritten without conditionals and tempered dots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub pattern: String,
    pub dups: Dups,
}

/// Most branches an enumeration of conditionals may produce.
const MAX_BRANCHES: usize = 16;

/// Rewrites `pattern` (Python syntax, tags expanded) without conditionals
/// and tempered dots, or `None` when it has neither or one this module
/// cannot rewrite exactly.
pub fn rewrite(pattern: &str) -> Option<Rewritten> {
    if !pattern.contains("(?(") && !pattern.contains("(?!") {
        return None;
    }
    let alts = parse(pattern)?;
    let mut refs = Vec::new();
    for a in &alts {
        conds_in(a, &mut refs);
    }
    let mut alts = if refs.is_empty() {
        alts
    } else {
        // A conditional may refer to a group of another top alternative
        // (it never takes part there): not handled.
        if alts.len() != 1 {
            return None;
        }
        let seq = alts.into_iter().next()?;
        vec![enumerate(seq, &refs)?]
    };
    for a in &mut alts {
        tempered(a, &[])?;
    }
    let mut dups = Dups::new();
    let mut seen = HashMap::new();
    for a in &mut alts {
        rename(a, &mut seen, &mut dups);
    }
    let mut out = String::with_capacity(pattern.len() * 2);
    render_alts(&alts, &mut out);
    // Anything left over (a look-around of another kind): not handled.
    if out.contains("(?(") || out.contains("(?!") || out.contains("(?=") || out.contains("(?<") {
        return None;
    }
    Some(Rewritten { pattern: out, dups })
}

/// Names of the groups conditionals refer to.
fn conds_in(seq: &[Node], refs: &mut Vec<String>) {
    for n in seq {
        match n {
            Node::Atom(_) => {}
            Node::Group { alts, .. } => alts.iter().for_each(|a| conds_in(a, refs)),
            Node::Cond { name, yes, no } => {
                if !refs.contains(name) {
                    refs.push(name.clone());
                }
                conds_in(yes, refs);
                conds_in(no, refs);
            }
            Node::Repeat { node, .. } => conds_in(std::slice::from_ref(node), refs),
        }
    }
}

/// Whether `n` holds a conditional or defines a referenced group.
fn touches(n: &Node, refs: &[String]) -> bool {
    match n {
        Node::Atom(_) => false,
        Node::Cond { .. } => true,
        Node::Group { alts, .. } => {
            n.capture_name()
                .is_some_and(|c| refs.iter().any(|r| r == c))
                || alts.iter().flatten().any(|m| touches(m, refs))
        }
        Node::Repeat { node, .. } => touches(node, refs),
    }
}

/// What is known of the referenced groups on one branch: taken part or not.
type Known = Vec<(String, bool)>;

fn knows(k: &Known, name: &str) -> Option<bool> {
    k.iter().rev().find(|(n, _)| n == name).map(|(_, v)| *v)
}

fn with(k: &Known, name: &str, v: bool) -> Known {
    let mut k = k.clone();
    k.push((name.to_string(), v));
    k
}

/// `seq` with its conditionals decided: one sequence, or from the first
/// choice on an alternation of the combinations in backtracking order.
fn enumerate(seq: Vec<Node>, refs: &[String]) -> Option<Vec<Node>> {
    let variants = seq_variants(&seq, &Vec::new(), refs)?;
    if variants.len() == 1 {
        return variants.into_iter().next().map(|(s, _)| s);
    }
    // The leading nodes every branch shares stay outside the alternation:
    // only those before the first choice (`P(?:A|B)` tries each way P
    // matches with A, then B; `PA|PB` all of P's ways with A first).
    let fixed = seq.iter().take_while(|n| !touches(n, refs)).count();
    let first = &variants[0].0;
    let common = (0..first.len().min(fixed))
        .take_while(|&k| variants.iter().all(|(v, _)| v.get(k) == Some(&first[k])))
        .count();
    let mut out: Vec<Node> = first[..common].to_vec();
    let alts = variants
        .into_iter()
        .map(|(v, _)| v[common..].to_vec())
        .collect();
    out.push(Node::Group {
        head: "(?:".into(),
        alts,
    });
    Some(out)
}

fn seq_variants(seq: &[Node], known: &Known, refs: &[String]) -> Option<Vec<(Vec<Node>, Known)>> {
    let mut partial: Vec<(Vec<Node>, Known)> = vec![(Vec::new(), known.clone())];
    for n in seq {
        let mut next = Vec::new();
        for (prefix, k) in partial {
            for (v, k2) in node_variants(n, &k, refs)? {
                let mut p = prefix.clone();
                p.extend(v);
                next.push((p, k2));
                if next.len() > MAX_BRANCHES {
                    return None;
                }
            }
        }
        partial = next;
    }
    Some(partial)
}

/// The ways `n` can match, in the order a backtracker tries them, each with
/// what it tells about the referenced groups.
fn node_variants(n: &Node, known: &Known, refs: &[String]) -> Option<Vec<(Vec<Node>, Known)>> {
    if !touches(n, refs) {
        return Some(vec![(vec![n.clone()], known.clone())]);
    }
    match n {
        Node::Atom(_) => None,
        Node::Cond { name, yes, no } => {
            let branch = if knows(known, name)? { yes } else { no };
            seq_variants(branch, known, refs)?
                .into_iter()
                .map(|(s, k)| Some((vec![non_capturing(s)], k)))
                .collect()
        }
        Node::Repeat { node, quant } => {
            // Only `(?P<g>X)?` / `??` with nothing to decide inside X.
            let name = node.capture_name()?;
            let Node::Group { alts, .. } = &**node else {
                return None;
            };
            if alts.iter().flatten().any(|m| touches(m, refs)) {
                return None;
            }
            let taken = (vec![(**node).clone()], with(known, name, true));
            let skipped = (Vec::new(), with(known, name, false));
            match quant.as_str() {
                "?" => Some(vec![taken, skipped]),
                "??" => Some(vec![skipped, taken]),
                _ => None,
            }
        }
        Node::Group { head, alts } => {
            if head.starts_with("(?=") || head.starts_with("(?!") || head.starts_with("(?<") {
                return None;
            }
            let known = match n.capture_name() {
                Some(c) if refs.iter().any(|r| r == c) => with(known, c, true),
                _ => known.clone(),
            };
            // Referenced groups of the other alternatives do not take part.
            let mut defined = Vec::new();
            alts.iter()
                .flatten()
                .for_each(|m| defs_in(m, refs, &mut defined));
            let mut out = Vec::new();
            for a in alts {
                for (s, mut k) in seq_variants(a, &known, refs)? {
                    for d in &defined {
                        if knows(&k, d).is_none() {
                            k.push((d.clone(), false));
                        }
                    }
                    out.push((
                        vec![Node::Group {
                            head: head.clone(),
                            alts: vec![s],
                        }],
                        k,
                    ));
                }
            }
            (out.len() <= MAX_BRANCHES).then_some(out)
        }
    }
}

/// Referenced groups `n` defines.
fn defs_in(n: &Node, refs: &[String], out: &mut Vec<String>) {
    match n {
        Node::Atom(_) => {}
        Node::Cond { yes, no, .. } => yes.iter().chain(no).for_each(|m| defs_in(m, refs, out)),
        Node::Repeat { node, .. } => defs_in(node, refs, out),
        Node::Group { alts, .. } => {
            if let Some(c) = n.capture_name().filter(|c| refs.iter().any(|r| r == c)) {
                out.push(c.to_string());
            }
            alts.iter().flatten().for_each(|m| defs_in(m, refs, out));
        }
    }
}

fn non_capturing(seq: Vec<Node>) -> Node {
    Node::Group {
        head: "(?:".into(),
        alts: vec![seq],
    }
}

/// The literal `L` of a tempered dot `(?:(?!L).)`, when it has the shape
/// this module rewrites (`cWc`, `c` nowhere in `W`, plain characters).
fn tempered_literal(n: &Node) -> Option<Vec<char>> {
    let Node::Group { head, alts } = n else {
        return None;
    };
    if head != "(?:" || alts.len() != 1 || alts[0].len() != 2 {
        return None;
    }
    let (look, dot) = (&alts[0][0], &alts[0][1]);
    if *dot != Node::Atom(".".into()) {
        return None;
    }
    let Node::Group { head, alts } = look else {
        return None;
    };
    if head != "(?!" || alts.len() != 1 {
        return None;
    }
    let lit: Option<Vec<char>> = alts[0]
        .iter()
        .map(|a| match a {
            Node::Atom(s) if s.chars().count() == 1 => s.chars().next().filter(|c| plain(*c)),
            _ => None,
        })
        .collect();
    let lit = lit?;
    let (c, w) = (*lit.first()?, lit.get(1..lit.len() - 1)?);
    (lit.len() >= 3 && lit[lit.len() - 1] == c && !w.contains(&c)).then_some(lit)
}

/// Characters written as themselves in both syntaxes, in and out of classes.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | ':' | '=' | ',' | '/' | '@' | '\'' | '"' | '_')
}

/// How a tempered dot's span ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    End,
    Literal,
}

/// Replaces the tempered dots of `seq`; `after` is what follows `seq` in
/// the enclosing sequences (innermost first). `None`: one cannot be.
fn tempered(seq: &mut [Node], after: &[&[Node]]) -> Option<()> {
    for k in 0..seq.len() {
        let (before, rest) = seq.split_at_mut(k + 1);
        let n = &mut before[k];
        let mut follow: Vec<&[Node]> = vec![&*rest];
        follow.extend_from_slice(after);
        match n {
            Node::Atom(_) => {}
            Node::Cond { .. } => return None,
            Node::Group { head, alts } => {
                if head.starts_with("(?!") || head.starts_with("(?=") || head.starts_with("(?<") {
                    // A look-around of its own: left for the fallback.
                    continue;
                }
                for a in alts {
                    tempered(a, &follow)?;
                }
            }
            Node::Repeat { node, quant } => {
                if let Some(lit) = tempered_literal(node) {
                    if quant != "*" && quant != "*?" {
                        return None;
                    }
                    let next = continuation(&follow, &lit)?;
                    *n = no_literal(&lit, next);
                } else if contains_look(node) {
                    return None;
                }
            }
        }
    }
    Some(())
}

fn contains_look(n: &Node) -> bool {
    match n {
        Node::Atom(_) => false,
        Node::Cond { .. } => true,
        Node::Group { head, alts } => {
            head.starts_with("(?!")
                || head.starts_with("(?=")
                || head.starts_with("(?<")
                || alts.iter().flatten().any(contains_look)
        }
        Node::Repeat { node, .. } => contains_look(node),
    }
}

/// What follows a tempered dot: the end (`$`), or `L` itself as plain
/// characters (possibly after the end of enclosing groups).
fn continuation(follow: &[&[Node]], lit: &[char]) -> Option<Next> {
    let mut want = lit.iter();
    let mut first = true;
    for seq in follow {
        for n in *seq {
            let Node::Atom(s) = n else {
                return None;
            };
            if first && s == "$" {
                return Some(Next::End);
            }
            first = false;
            let mut cs = s.chars();
            let (Some(c), None) = (cs.next(), cs.next()) else {
                return None;
            };
            match want.next() {
                Some(w) if *w == c => {}
                _ => return None,
            }
            if want.len() == 0 {
                return Some(Next::Literal);
            }
        }
    }
    None
}

/// A group matching exactly what `(?:(?!L).)*` takes before `next`: text
/// without `\n` in which no `L` starts (words between `c`s, none but a last
/// one at the end equal to `W`).
fn no_literal(lit: &[char], next: Next) -> Node {
    let c = lit[0];
    let w = &lit[1..lit.len() - 1];
    let other = format!("[^{c}\\n]");
    let mut not_w: Vec<String> = vec![String::new()];
    for i in 0..w.len() {
        let prefix: String = w[..i].iter().collect();
        if i > 0 {
            not_w.push(prefix.clone());
        }
        not_w.push(format!("{prefix}[^{}{c}\\n]{other}*", w[i]));
    }
    not_w.push(format!("{}{other}+", w.iter().collect::<String>()));
    let x = format!("(?:{})", not_w.join("|"));
    let body = match next {
        Next::Literal => format!("{other}*(?:{c}{x})*"),
        Next::End => format!("{other}*(?:{c}{x})*(?:{c}{other}*)?"),
    };
    Node::Group {
        head: "(?:".into(),
        alts: vec![vec![Node::Atom(body)]],
    }
}

/// Renames the second and later groups of a name (`name__2`...), noting them.
fn rename(seq: &mut [Node], seen: &mut HashMap<String, usize>, dups: &mut Dups) {
    for n in seq {
        match n {
            Node::Atom(_) => {}
            Node::Cond { yes, no, .. } => {
                rename(yes, seen, dups);
                rename(no, seen, dups);
            }
            Node::Repeat { node, .. } => rename(std::slice::from_mut(&mut **node), seen, dups),
            Node::Group { head, alts } => {
                if let Some(name) = head
                    .strip_prefix("(?P<")
                    .and_then(|h| h.strip_suffix('>'))
                    .map(str::to_string)
                {
                    let count = seen.entry(name.clone()).or_insert(0);
                    *count += 1;
                    if *count > 1 {
                        let new = format!("{name}__{count}");
                        *head = format!("(?P<{new}>");
                        match dups.iter_mut().find(|(b, _)| *b == name) {
                            Some((_, names)) => names.push(new),
                            None => dups.push((name.clone(), vec![name.clone(), new])),
                        }
                    }
                }
                for a in alts {
                    rename(a, seen, dups);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "py_rewrite_tests.rs"]
mod tests;
