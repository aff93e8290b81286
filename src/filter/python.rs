//! Python regex syntax (as fail2ban's filters are written) translated for the
//! `regex` crate, and for the backtracking fallback where `regex` cannot
//! express a pattern.
//!
//! Owns only the text transformation. It produces two patterns: `exact`,
//! Python's meaning in the syntax `fancy_regex` reads, and `relaxed`, which
//! the `regex` crate compiles and which matches every line `exact` matches
//! (look-around dropped, a back-reference as `.*?`, a conditional as the
//! alternation of its branches). A pattern without such constructs has
//! `exact == relaxed` and runs on the fast path only. It compiles nothing.

/// A translated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// Python's meaning (fancy-regex syntax).
    pub exact: String,
    /// A superset the `regex` crate compiles (equal to `exact` when it can
    /// express the pattern).
    pub relaxed: String,
    /// Why the pattern needs the backtracking engine (empty: it does not).
    pub needs: Vec<&'static str>,
}

impl Translated {
    pub fn needs_fallback(&self) -> bool {
        !self.needs.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Plain,
    /// Look-around: nothing of it goes to `relaxed`.
    Hidden,
    /// A conditional: `relaxed` gets `(?:yes|no|)`.
    Conditional,
}

struct Out {
    exact: String,
    relaxed: String,
    /// Depth of hidden (look-around) groups we are inside.
    hidden: usize,
}

impl Out {
    fn both(&mut self, s: &str) {
        self.exact.push_str(s);
        if self.hidden == 0 {
            self.relaxed.push_str(s);
        }
    }
    fn split(&mut self, exact: &str, relaxed: &str) {
        self.exact.push_str(exact);
        if self.hidden == 0 {
            self.relaxed.push_str(relaxed);
        }
    }
}

/// Characters that must stay escaped for the `regex` crate (outside a class).
fn is_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// Translates a Python pattern (tags already expanded).
pub fn translate(p: &str) -> Translated {
    let mut out = Out {
        exact: String::with_capacity(p.len() + 16),
        relaxed: String::with_capacity(p.len() + 16),
        hidden: 0,
    };
    let mut needs: Vec<&'static str> = Vec::new();
    let mut need = |n: &'static str| {
        if !needs.contains(&n) {
            needs.push(n);
        }
    };
    let mut stack: Vec<Group> = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    // The last atom may take a quantifier; after a hidden group it must not
    // reach `relaxed` (`(?=x)?` would leave a lone `?`).
    let mut last_hidden_close = false;
    while i < chars.len() {
        let c = chars[i];
        let was_hidden_close = std::mem::take(&mut last_hidden_close);
        match c {
            '\\' => {
                let (e, r, n) = escape(&chars, i, false);
                if let Some(n) = n {
                    need(n);
                }
                out.split(&e, &r);
                i += escape_len(&chars, i);
            }
            '[' => {
                let (s, len) = class(&chars, i);
                out.both(&s);
                i += len;
            }
            '{' => match quantifier(&chars, i) {
                Some((q, len)) => {
                    if !was_hidden_close {
                        out.both(&q);
                    } else {
                        out.exact.push_str(&q);
                    }
                    i += len;
                    // Possessive `{n}+`.
                    if chars.get(i) == Some(&'+') {
                        need("possessive quantifier");
                        out.exact.push('+');
                        i += 1;
                    }
                }
                None => {
                    out.both("\\{");
                    i += 1;
                }
            },
            '}' => {
                out.both("\\}");
                i += 1;
            }
            '*' | '+' | '?' => {
                if was_hidden_close {
                    out.exact.push(c);
                } else {
                    out.both(&c.to_string());
                }
                i += 1;
                match chars.get(i) {
                    Some('?') => {
                        out.both("?");
                        i += 1;
                    }
                    Some('+') => {
                        need("possessive quantifier");
                        out.exact.push('+');
                        i += 1;
                    }
                    _ => {}
                }
            }
            '(' => {
                let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
                if rest.starts_with("(?#") {
                    // A comment: dropped.
                    let end = chars[i..].iter().position(|&c| c == ')');
                    i += end.map_or(chars.len() - i, |e| e + 1);
                    continue;
                }
                if rest.starts_with("(?=")
                    || rest.starts_with("(?!")
                    || rest.starts_with("(?<=")
                    || rest.starts_with("(?<!")
                {
                    need("look-around");
                    let len = if rest.starts_with("(?<") { 4 } else { 3 };
                    let head: String = chars[i..i + len].iter().collect();
                    out.exact.push_str(&head);
                    out.hidden += 1;
                    stack.push(Group::Hidden);
                    i += len;
                    continue;
                }
                if rest.starts_with("(?P=") {
                    need("back-reference");
                    let end = chars[i..].iter().position(|&c| c == ')');
                    let len = end.map_or(chars.len() - i, |e| e + 1);
                    let name: String = chars[i + 4..i + len - 1].iter().collect();
                    out.split(&format!("\\k<{name}>"), "(?s:.*?)");
                    i += len;
                    continue;
                }
                if rest.starts_with("(?(") {
                    need("conditional");
                    let end = chars[i + 3..].iter().position(|&c| c == ')');
                    let len = end.map_or(chars.len() - i, |e| e + 4);
                    let cond: String = chars[i + 3..i + len - 1].iter().collect();
                    let cond = if cond.chars().all(|c| c.is_ascii_digit()) {
                        cond
                    } else {
                        format!("<{cond}>")
                    };
                    out.split(&format!("(?({cond})"), "(?:");
                    stack.push(Group::Conditional);
                    i += len;
                    continue;
                }
                if rest.starts_with("(?>") {
                    need("atomic group");
                    out.split("(?>", "(?:");
                    stack.push(Group::Plain);
                    i += 3;
                    continue;
                }
                if rest.starts_with("(?") && !rest.starts_with("(?P<") && !rest.starts_with("(?:") {
                    // Inline flags: Python's `a`, `L` and `u` have no equivalent
                    // here (bytes are matched as UTF-8 text, Unicode classes).
                    let end = chars[i + 2..]
                        .iter()
                        .position(|&c| c == ')' || c == ':')
                        .map(|e| e + i + 2);
                    if let Some(end) = end {
                        let raw: String = chars[i + 2..end].iter().collect();
                        let flags = match raw.split_once('-') {
                            // `(?-u:...)` is the regex crate's own (from tags).
                            Some((on, off)) => format!("{}-{off}", strip_py_flags(on)),
                            None => strip_py_flags(&raw),
                        };
                        let closing = chars[end];
                        if closing == ')' && (flags.is_empty() || flags == "-") {
                            i = end + 1;
                            continue;
                        }
                        out.both(&format!("(?{flags}{closing}"));
                        if closing == ':' {
                            stack.push(Group::Plain);
                        }
                        i = end + 1;
                        continue;
                    }
                }
                stack.push(Group::Plain);
                out.both("(");
                i += 1;
            }
            ')' => {
                match stack.pop() {
                    Some(Group::Hidden) => {
                        out.exact.push(')');
                        out.hidden = out.hidden.saturating_sub(1);
                        last_hidden_close = out.hidden == 0;
                    }
                    Some(Group::Conditional) => out.split(")", "|)"),
                    _ => out.both(")"),
                }
                i += 1;
            }
            _ => {
                let mut b = [0; 4];
                out.both(c.encode_utf8(&mut b));
                i += 1;
            }
        }
    }
    Translated {
        exact: out.exact,
        relaxed: out.relaxed,
        needs,
    }
}

/// Python's `a`, `L` and `u` flags have no equivalent here.
fn strip_py_flags(f: &str) -> String {
    f.chars()
        .filter(|c| !matches!(c, 'a' | 'L' | 'u'))
        .collect()
}

/// Length in chars of the escape at `i`.
pub(super) fn escape_len(chars: &[char], i: usize) -> usize {
    match chars.get(i + 1) {
        None => 1,
        Some('x') => 4,
        Some('u') => 6,
        Some('U') => 10,
        Some(d) if d.is_ascii_digit() && *d != '0' => {
            let n = chars[i + 1..]
                .iter()
                .take(2)
                .take_while(|c| c.is_ascii_digit())
                .count();
            1 + n
        }
        Some('0') => {
            let n = chars[i + 1..]
                .iter()
                .take(3)
                .take_while(|c: &&char| ('0'..='7').contains(*c))
                .count();
            1 + n
        }
        Some(_) => 2,
    }
}

/// Translates the escape at `i`: (exact, relaxed, why the fallback is needed).
fn escape(chars: &[char], i: usize, in_class: bool) -> (String, String, Option<&'static str>) {
    let same = |s: String| (s.clone(), s, None);
    let Some(&n) = chars.get(i + 1) else {
        return same("\\\\".into());
    };
    match n {
        'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' | '\\' => {
            same(format!("\\{n}"))
        }
        'b' if in_class => same("\\x08".into()),
        'b' | 'B' | 'A' if !in_class => same(format!("\\{n}")),
        'Z' if !in_class => same("\\z".into()),
        'x' => {
            let hex: String = chars[i + 2..chars.len().min(i + 4)].iter().collect();
            same(format!("\\x{{{hex}}}"))
        }
        'u' | 'U' => {
            let len = if n == 'u' { 4 } else { 8 };
            let hex: String = chars[i + 2..chars.len().min(i + 2 + len)].iter().collect();
            same(format!("\\x{{{hex}}}"))
        }
        '0' => {
            let oct: String = chars[i + 1..]
                .iter()
                .take(3)
                .take_while(|c: &&char| ('0'..='7').contains(*c))
                .collect();
            let v = u32::from_str_radix(&oct, 8).unwrap_or(0);
            same(format!("\\x{{{v:x}}}"))
        }
        d if d.is_ascii_digit() => {
            let num: String = chars[i + 1..]
                .iter()
                .take(2)
                .take_while(|c| c.is_ascii_digit())
                .collect();
            (
                format!("\\{num}"),
                "(?s:.*?)".into(),
                Some("back-reference"),
            )
        }
        c if c.is_ascii_alphanumeric() => same(format!("\\{c}")),
        c if is_meta(c) || (in_class && c == '^') => same(format!("\\{c}")),
        c => {
            // `\<`, `\/`, `\'`... are the literal character in Python.
            let mut b = [0; 4];
            same(regex_lit(c.encode_utf8(&mut b)))
        }
    }
}

fn regex_lit(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_punctuation() {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A Python character class at `i` in the `regex` crate's syntax (the same
/// for both engines): `[` `&` `~` and a doubled `-` are literals in Python.
fn class(chars: &[char], i: usize) -> (String, usize) {
    let mut s = String::from("[");
    let mut j = i + 1;
    if chars.get(j) == Some(&'^') {
        s.push('^');
        j += 1;
    }
    if chars.get(j) == Some(&']') {
        s.push_str("\\]");
        j += 1;
    }
    while j < chars.len() {
        let c = chars[j];
        match c {
            ']' => {
                s.push(']');
                return (s, j + 1 - i);
            }
            '\\' => {
                let (e, _, _) = escape(chars, j, true);
                s.push_str(&e);
                j += escape_len(chars, j);
                continue;
            }
            '[' | '&' | '~' => s.push_str(&format!("\\{c}")),
            '-' if chars.get(j + 1) == Some(&'-') => s.push_str("\\-"),
            _ => s.push(c),
        }
        j += 1;
    }
    // Unclosed: let the regex compiler report it.
    (s, j - i)
}

/// A quantifier `{n}`, `{n,}`, `{,m}`, `{n,m}` at `i` (Python's `{,m}` is
/// `{0,m}`); `None`: the `{` is a literal.
pub(super) fn quantifier(chars: &[char], i: usize) -> Option<(String, usize)> {
    let close = chars[i..].iter().position(|&c| c == '}')? + i;
    let body: String = chars[i + 1..close].iter().collect();
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body.as_str(), None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none_or(str::is_empty)) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let q = match hi {
        None => format!("{{{lo}}}"),
        Some(hi) => format!("{{{lo},{hi}}}"),
    };
    Some((q, close + 1 - i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(p: &str) -> String {
        let t = translate(p);
        assert!(!t.needs_fallback(), "{p}: {:?}", t.needs);
        assert_eq!(t.exact, t.relaxed);
        regex::Regex::new(&t.exact).unwrap_or_else(|e| panic!("{p}: {e}"));
        t.exact
    }

    #[test]
    fn python_only_syntax_becomes_regex_crate_syntax() {
        assert_eq!(fast(r"a{,3}b{2,}c{x"), r"a{0,3}b{2,}c\{x");
        assert_eq!(fast(r"end\Z"), r"end\z");
        assert_eq!(fast(r"\<x\>"), r"\x3cx\x3e");
        assert_eq!(fast(r"[[\]&~]"), r"[\[\]\&\~]");
        assert_eq!(fast(r"[]a]"), r"[\]a]");
        assert_eq!(fast(r"(?#note)a(?u)b"), "ab");
        assert_eq!(fast(r"\u00e9\0"), r"\x{00e9}\x{0}");
        assert_eq!(fast(r"(?P<x>a)|(?i:b)"), r"(?P<x>a)|(?i:b)");
        assert_eq!(fast(r"(?-u:\b)x(?iu)"), r"(?-u:\b)x(?i)");
    }

    #[test]
    fn what_regex_cannot_express_goes_to_the_fallback_with_a_superset() {
        let t = translate(r"^(?P<u>\S+)(?!x) (?(u)a|b)(?P=u)\1(?<=a)$");
        assert_eq!(
            t.needs,
            vec!["look-around", "conditional", "back-reference"]
        );
        assert_eq!(t.relaxed, r"^(?P<u>\S+) (?:a|b|)(?s:.*?)(?s:.*?)$");
        assert_eq!(t.exact, r"^(?P<u>\S+)(?!x) (?(<u>)a|b)\k<u>\1(?<=a)$");
        regex::Regex::new(&t.relaxed).unwrap();
        fancy_regex::Regex::new(&t.exact).unwrap();
    }
}
