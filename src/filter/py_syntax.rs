//! The syntax tree `py_rewrite` works on: a Python pattern (tags expanded)
//! parsed into atoms, groups, conditionals and repetitions, and written
//! back as it was read.
//!
//! Owns parsing and printing only; anything it does not know (flags,
//! comments, atomic groups, back-references, possessive quantifiers) is
//! `None`, and the caller leaves the pattern alone.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// One atom as written: a character, an escape, a class, `.`, `^`, `$`.
    Atom(String),
    /// `head` is `(`, `(?:`, `(?P<name>`, `(?!`, `(?=`, `(?<=`, `(?<!`.
    Group {
        head: String,
        alts: Vec<Vec<Node>>,
    },
    Cond {
        name: String,
        yes: Vec<Node>,
        no: Vec<Node>,
    },
    Repeat {
        node: Box<Node>,
        quant: String,
    },
}

impl Node {
    pub(super) fn capture_name(&self) -> Option<&str> {
        match self {
            Node::Group { head, .. } => head.strip_prefix("(?P<")?.strip_suffix('>'),
            _ => None,
        }
    }
}

struct Parser {
    chars: Vec<char>,
    i: usize,
}

impl Parser {
    /// Alternatives up to a `)` (not consumed) or the end.
    fn alts(&mut self) -> Option<Vec<Vec<Node>>> {
        let mut alts = vec![Vec::new()];
        while let Some(&c) = self.chars.get(self.i) {
            match c {
                ')' => break,
                '|' => {
                    self.i += 1;
                    alts.push(Vec::new());
                }
                '*' | '+' | '?' | '{' => {
                    let quant = self.quantifier()?;
                    let Some(last) = alts.last_mut()?.pop() else {
                        // `{` as a literal at the start.
                        if c == '{' {
                            alts.last_mut()?.push(Node::Atom(quant));
                            continue;
                        }
                        return None;
                    };
                    if quant.starts_with('\\') {
                        alts.last_mut()?.push(last);
                        alts.last_mut()?.push(Node::Atom(quant));
                        continue;
                    }
                    alts.last_mut()?.push(Node::Repeat {
                        node: Box::new(last),
                        quant,
                    });
                }
                _ => {
                    let n = self.atom()?;
                    alts.last_mut()?.push(n);
                }
            }
        }
        Some(alts)
    }

    /// A quantifier at `i` with its lazy `?`; `\{` when `{` is a literal.
    fn quantifier(&mut self) -> Option<String> {
        let c = self.chars[self.i];
        let mut q = if c == '{' {
            match super::python::quantifier(&self.chars, self.i) {
                Some((_, len)) => {
                    let s: String = self.chars[self.i..self.i + len].iter().collect();
                    self.i += len;
                    s
                }
                None => {
                    self.i += 1;
                    return Some("\\{".into());
                }
            }
        } else {
            self.i += 1;
            c.to_string()
        };
        match self.chars.get(self.i) {
            Some('?') => {
                q.push('?');
                self.i += 1;
            }
            // Possessive: not handled.
            Some('+') => return None,
            _ => {}
        }
        Some(q)
    }

    fn atom(&mut self) -> Option<Node> {
        let c = self.chars[self.i];
        match c {
            '\\' => {
                let len = super::python::escape_len(&self.chars, self.i);
                let s: String = self.chars[self.i..self.i + len].iter().collect();
                // A back-reference: not handled.
                if s.len() > 1 && s[1..].starts_with(|d: char| d.is_ascii_digit() && d != '0') {
                    return None;
                }
                self.i += len;
                Some(Node::Atom(s))
            }
            '[' => {
                let start = self.i;
                let mut j = self.i + 1;
                if self.chars.get(j) == Some(&'^') {
                    j += 1;
                }
                if self.chars.get(j) == Some(&']') {
                    j += 1;
                }
                loop {
                    match self.chars.get(j)? {
                        ']' => break,
                        '\\' => j += super::python::escape_len(&self.chars, j),
                        _ => j += 1,
                    }
                }
                self.i = j + 1;
                Some(Node::Atom(self.chars[start..self.i].iter().collect()))
            }
            '(' => self.group(),
            _ => {
                self.i += 1;
                Some(Node::Atom(c.to_string()))
            }
        }
    }

    fn group(&mut self) -> Option<Node> {
        let rest: String = self.chars[self.i..self.chars.len().min(self.i + 4)]
            .iter()
            .collect();
        if rest.starts_with("(?(") {
            let close = self.chars[self.i..].iter().position(|&c| c == ')')? + self.i;
            let name: String = self.chars[self.i + 3..close].iter().collect();
            if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            self.i = close + 1;
            let mut alts = self.alts()?;
            self.close()?;
            let no = if alts.len() == 2 {
                alts.pop()?
            } else {
                Vec::new()
            };
            if alts.len() != 1 {
                return None;
            }
            let yes = alts.pop()?;
            return Some(Node::Cond { name, yes, no });
        }
        let head = if rest.starts_with("(?P<") {
            let close = self.chars[self.i..].iter().position(|&c| c == '>')? + self.i;
            self.chars[self.i..=close].iter().collect()
        } else if rest.starts_with("(?<=") || rest.starts_with("(?<!") {
            rest
        } else if rest.starts_with("(?:") || rest.starts_with("(?!") || rest.starts_with("(?=") {
            rest[..3].to_string()
        } else if rest.starts_with("(?") {
            // Flags, comments, named references, atomic groups: not handled.
            return None;
        } else {
            "(".to_string()
        };
        self.i += head.chars().count();
        let alts = self.alts()?;
        self.close()?;
        Some(Node::Group { head, alts })
    }

    fn close(&mut self) -> Option<()> {
        (self.chars.get(self.i) == Some(&')')).then(|| self.i += 1)
    }
}

pub(super) fn parse(pattern: &str) -> Option<Vec<Vec<Node>>> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        i: 0,
    };
    let alts = p.alts()?;
    (p.i == p.chars.len()).then_some(alts)
}

fn render_seq(seq: &[Node], out: &mut String) {
    for n in seq {
        render(n, out);
    }
}

pub(super) fn render_alts(alts: &[Vec<Node>], out: &mut String) {
    for (k, a) in alts.iter().enumerate() {
        if k > 0 {
            out.push('|');
        }
        render_seq(a, out);
    }
}

fn render(n: &Node, out: &mut String) {
    match n {
        Node::Atom(s) => out.push_str(s),
        Node::Group { head, alts } => {
            out.push_str(head);
            render_alts(alts, out);
            out.push(')');
        }
        Node::Cond { name, yes, no } => {
            out.push_str(&format!("(?({name})"));
            render_seq(yes, out);
            out.push('|');
            render_seq(no, out);
            out.push(')');
        }
        Node::Repeat { node, quant } => {
            render(node, out);
            out.push_str(quant);
        }
    }
}
