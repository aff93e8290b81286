//! Checks a config file against the key registry before it is read into
//! its typed form, so that one `check` run reports every mistake of a file
//! (typed deserialisation stops at the first), each in words a person reads:
//! `maxretry: expected a whole number (like 5), got "five"`, durations with
//! the forms they may take, unknown keys with the nearest known one.
//!
//! Owns the per-value checks that the registry describes (type, range,
//! choices, unknown keys). Checks across keys or files (a filter that
//! exists, drop-in merging, ports with a protocol) stay in `config` (`mod` for the global file and filters, `jail` for jails).
//! Reads nothing from disk; decides nothing about the config it checks.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::keys::{self, Key, Scope, Type};
use super::raw::Scalar;

/// A YAML value, every node with its place in the file.
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = a.next_element::<Spanned<Node>>()? {
                    v.push(n);
                }
                Ok(Node::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key::<Spanned<KeyText>>()? {
                    let val = a.next_value::<Spanned<Node>>()?;
                    v.push((Spanned::new(k.value.0, k.referenced, k.defined), val));
                }
                Ok(Node::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key as text, whatever scalar it was written as.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(KeyText(match Scalar::deserialize(d)? {
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(s) => s,
        }))
    }
}

impl Node {
    /// How the value reads in a message.
    fn show(&self) -> String {
        match self {
            Node::Null => "nothing".into(),
            Node::Bool(b) => b.to_string(),
            Node::Int(i) => i.to_string(),
            Node::Float(f) => f.to_string(),
            Node::Str(s) => format!("\"{s}\""),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a map".into(),
        }
    }
}

/// What a file holds at its top level.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A map of the scope's keys (`banwarden.yaml`, a filter).
    Keys(Scope),
    /// A map of names to maps of the scope's keys (`jails/*.yaml`).
    Named(Scope),
}

/// One problem: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

/// Every problem of a file's text, or `None` when the text is not YAML
/// (the typed reader then reports the syntax error).
pub fn lint(text: &str, shape: Shape) -> Option<Vec<Finding>> {
    let root: Spanned<Node> = serde_saphyr::from_str(text).ok()?;
    let mut out = Vec::new();
    match (shape, &root.value) {
        (_, Node::Null) => {}
        (Shape::Keys(scope), _) => map(&root, scope, "", &mut out),
        (Shape::Named(scope), Node::Map(items)) => {
            for (name, v) in items {
                map(v, scope, &name.value, &mut out);
            }
        }
        (Shape::Named(_), other) => push(
            &mut out,
            &root,
            "",
            format!(
                "expected a map of jail names to jails, got {}",
                other.show()
            ),
        ),
    }
    Some(out)
}

fn push(out: &mut Vec<Finding>, at: &Spanned<Node>, field: &str, message: String) {
    out.push(Finding {
        line: at.referenced.line(),
        column: at.referenced.column(),
        field: field.to_string(),
        message,
    });
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn map(node: &Spanned<Node>, scope: Scope, prefix: &str, out: &mut Vec<Finding>) {
    let items = match &node.value {
        Node::Map(items) => items,
        Node::Null => return,
        other => {
            let what = match scope {
                Scope::Jail => "a jail's keys",
                _ => "a map of keys",
            };
            return push(
                out,
                node,
                prefix,
                format!("expected {what}, got {}", other.show()),
            );
        }
    };
    for (k, v) in items {
        let field = join(prefix, &k.value);
        let Some(key) = keys::find(scope, &k.value) else {
            let mut m = format!("unknown key `{}`", k.value);
            match keys::suggest(scope, &k.value) {
                Some(s) => m.push_str(&format!("; did you mean `{s}`?")),
                None => {
                    let known: Vec<&str> = keys::of(scope).map(|k| k.name).collect();
                    m.push_str(&format!(" (known: {})", known.join(", ")));
                }
            }
            out.push(Finding {
                line: k.referenced.line(),
                column: k.referenced.column(),
                field,
                message: m,
            });
            continue;
        };
        if let Err(m) = value(v, key, &field, out) {
            push(out, v, &field, m);
        }
    }
}

/// Checks one value; nested problems go to `out`, this value's to the result.
fn value(v: &Spanned<Node>, key: &Key, field: &str, out: &mut Vec<Finding>) -> Result<(), String> {
    let n = &v.value;
    match key.ty {
        Type::Bool => match n {
            Node::Bool(_) => Ok(()),
            // A quoted 'true' reads as the boolean in the typed reader too.
            Node::Str(t) if t == "true" || t == "false" => Ok(()),
            _ => Err(format!("expected true or false, got {}", n.show())),
        },
        Type::Int { min, max } => match int_of(n) {
            Some(i) if (min..=max).contains(&i) => Ok(()),
            Some(i) => Err(format!("must be between {min} and {max}, got {i}")),
            _ => Err(format!(
                "expected a whole number (like {}), got {}",
                key.default_text()
                    .map_or_else(|| min.to_string(), str::to_string),
                n.show()
            )),
        },
        Type::Float { min } => match n {
            Node::Int(i) if *i as f64 >= min => Ok(()),
            Node::Float(f) if *f >= min && f.is_finite() => Ok(()),
            Node::Int(_) | Node::Float(_) => {
                Err(format!("must be at least {min}, got {}", n.show()))
            }
            _ => Err(format!("expected a number (like 2), got {}", n.show())),
        },
        Type::Duration { permanent } => duration(n, permanent),
        Type::Durations { permanent } => {
            each(v, field, out, |item| duration(item, permanent));
            Ok(())
        }
        Type::Text => text(n).map(|_| ()),
        Type::Choice(_) => key.check_choice(&text(n)?),
        Type::Texts => {
            each(v, field, out, |item| text(item).map(|_| ()));
            Ok(())
        }
        Type::TextOrTexts => match n {
            Node::Seq(_) => {
                each(v, field, out, |item| text(item).map(|_| ()));
                Ok(())
            }
            _ => text(n).map(|_| ()),
        },
        Type::Nets => {
            // `file:PATH` entries (allow-list files) are read and checked
            // where the list is built.
            each(v, field, out, |item| match text(item)? {
                t if t.starts_with("file:") => Ok(()),
                t => super::parse_net(&t).map(|_| ()),
            });
            Ok(())
        }
        Type::Ports => {
            let one = |item: &Node| match item {
                Node::Int(i) => super::values::parse_ports(&Scalar::Int(*i)).map(|_| ()),
                Node::Str(s) => super::values::parse_ports(&Scalar::Text(s.clone())).map(|_| ()),
                other => Err(format!(
                    "expected a port (22), a range (8000-8080) or a service name (https), got {}",
                    other.show()
                )),
            };
            match n {
                Node::Seq(_) => {
                    each(v, field, out, one);
                    Ok(())
                }
                _ => one(n),
            }
        }
        Type::Map(scope) => {
            map(v, scope, field, out);
            Ok(())
        }
        Type::Any { .. } => Ok(()),
    }
}

/// A whole number, also when quoted (`'5'`), as the typed reader takes it.
fn int_of(n: &Node) -> Option<i64> {
    match n {
        Node::Int(i) => Some(*i),
        Node::Str(t) => t.trim().parse().ok(),
        _ => None,
    }
}

fn text(n: &Node) -> Result<String, String> {
    match n {
        Node::Str(s) => Ok(s.clone()),
        Node::Int(i) => Ok(i.to_string()),
        _ => Err(format!("expected text, got {}", n.show())),
    }
}

fn duration(n: &Node, permanent: bool) -> Result<(), String> {
    let forms = if permanent {
        "90s, 10m, 1h, 1d, 1w, 1h30m, seconds, or permanent"
    } else {
        "90s, 10m, 1h, 1d, 1w, 1h30m, or seconds"
    };
    let s = match n {
        Node::Int(i) => i.to_string(),
        Node::Str(s) => s.clone(),
        _ => return Err(format!("expected a duration ({forms}), got {}", n.show())),
    };
    match super::parse_duration(&s) {
        Ok(Some(_)) => Ok(()),
        Ok(None) if permanent => Ok(()),
        Ok(None) => Err(format!(
            "cannot be permanent: expected a duration ({forms}), got \"{s}\""
        )),
        Err(_) => Err(format!("expected a duration ({forms}), got \"{s}\"")),
    }
}

/// Checks each item of a list (a single item counts as a list of one).
fn each(
    v: &Spanned<Node>,
    field: &str,
    out: &mut Vec<Finding>,
    check: impl Fn(&Node) -> Result<(), String>,
) {
    match &v.value {
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Err(m) = check(&item.value) {
                    push(out, item, &format!("{field}[{i}]"), m);
                }
            }
        }
        Node::Null => {}
        other => push(
            out,
            v,
            field,
            format!("expected a list, got {}", other.show()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(text: &str, shape: Shape) -> Vec<String> {
        lint(text, shape)
            .unwrap()
            .into_iter()
            .map(|f| format!("{}:{}: {}: {}", f.line, f.column, f.field, f.message))
            .collect()
    }

    #[test]
    fn every_mistake_of_a_jail_file() {
        let m = msgs(
            "sshd:\n  enabeld: true\n  maxretry: five\n  findtime: 10 parsecs\n  protocol: tpc\n  ignoreip: [1.2.3.4, nope]\n",
            Shape::Named(Scope::Jail),
        );
        assert_eq!(
            m,
            [
                "2:3: sshd.enabeld: unknown key `enabeld`; did you mean `enabled`?",
                "3:13: sshd.maxretry: expected a whole number (like 5), got \"five\"",
                "4:13: sshd.findtime: expected a duration (90s, 10m, 1h, 1d, 1w, 1h30m, or seconds), got \"10 parsecs\"",
                "5:13: sshd.protocol: expected one of tcp, udp, all, got \"tpc\"; did you mean `tcp`?",
                "6:23: sshd.ignoreip[1]: `nope` is not an IP address or CIDR network",
            ]
        );
    }

    #[test]
    fn nested_maps_and_ranges() {
        let m = msgs(
            "table: bw\ndefaults:\n  maxretry: 0\n  bantime_increment: {factor: x, windwo: 1d}\n",
            Shape::Keys(Scope::Global),
        );
        assert_eq!(
            m,
            [
                "3:13: defaults.maxretry: must be between 1 and 1000000, got 0",
                "4:31: defaults.bantime_increment.factor: expected a number (like 2), got \"x\"",
                "4:34: defaults.bantime_increment.windwo: unknown key `windwo`; did you mean `window`?",
            ]
        );
    }

    #[test]
    fn valid_files_have_no_findings() {
        assert!(msgs(
            "sshd:\n  enabled: true\n  filter: sshd\n  logpath: /var/log/auth.log\n  ports: [ssh, 8000-8010]\n  bantime: permanent\n  journal: {match: [_SYSTEMD_UNIT=ssh.service]}\n",
            Shape::Named(Scope::Jail)
        )
        .is_empty());
        assert!(msgs("", Shape::Named(Scope::Jail)).is_empty());
        assert!(lint("a: [", Shape::Named(Scope::Jail)).is_none());
    }
}

#[cfg(test)]
mod yaml_features {
    use super::*;

    #[test]
    fn anchors_and_merge_keys_are_read_as_the_typed_reader_reads_them() {
        let text = "base: &base\n  filter: f\n  maxretry: 3\nsshd:\n  <<: *base\n  enabled: true\n";
        assert_eq!(lint(text, Shape::Named(Scope::Jail)), Some(vec![]));
        // Quoted scalars the typed reader accepts pass too.
        let text = "sshd:\n  enabled: 'true'\n  maxretry: '5'\n";
        assert_eq!(lint(text, Shape::Named(Scope::Jail)), Some(vec![]));
    }
}
