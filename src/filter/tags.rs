//! Filter tags: turns `<HOST>`, `<ADDR>` and `<F-NAME>...</F-NAME>` into regex
//! groups, and maps regex error positions back into the text the user wrote.
//!
//! Owns only the text transformation; it compiles nothing and matches nothing.

use std::fmt;

/// Capture group that holds the offending address.
pub const HOST_GROUP: &str = "host";
/// Capture group of `<F-USER>`.
pub const USER_GROUP: &str = "user";
/// Capture group of fail2ban's `<F-ALT_USER>` (and `alt_user_N`): the user
/// when `<F-USER>` took nothing.
pub const ALT_USER_GROUP: &str = "alt_user";

macro_rules! ipv4 {
    () => {
        r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
    };
}

/// IPv4, or IPv6 (including v4-mapped `::ffff:1.2.3.4` and `[v6]`). The captured
/// text is validated by parsing, so the pattern only has to be tight enough that
/// surrounding text cannot slip into it.
const ADDR_RE: &str = concat!(
    "(?:",
    ipv4!(),
    "|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*(?:",
    ipv4!(),
    "|[0-9A-Fa-f]{1,4}|:))"
);

/// The dotted quad branch of `<HOST>` and `<ADDR>` (`filter::fixed` knows
/// every dotted quad matches it).
pub(super) const IPV4_RE: &str = ipv4!();

/// A tag-free regex and the facts the engine needs about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub regex: String,
    /// Whether the regex has a `host` group.
    pub has_host: bool,
    /// Field names captured with `<F-NAME>` (lower-case), e.g. `user`.
    pub fields: Vec<String>,
    /// (offset in `regex`, offset in the original) at each copied segment start.
    pub(super) map: Vec<(usize, usize)>,
}

impl Expanded {
    /// Maps a byte offset in the expanded regex back to the user's text.
    pub fn original_offset(&self, expanded: usize) -> usize {
        let idx = self.map.partition_point(|&(e, _)| e <= expanded);
        match idx.checked_sub(1).and_then(|i| self.map.get(i)) {
            Some(&(e, o)) => o + (expanded - e),
            None => 0,
        }
    }
}

/// A tag problem, with the byte offset in the user's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset {})", self.message, self.offset)
    }
}

/// Expands the tags of `pattern`. `<HOST>` and `<ADDR>` may appear once.
pub fn expand(pattern: &str) -> Result<Expanded, TagError> {
    let mut out = String::with_capacity(pattern.len() + 128);
    let mut map = vec![(0, 0)];
    let mut has_host = false;
    let mut fields: Vec<String> = Vec::new();
    let mut open: Option<(String, usize)> = None;
    let mut i = 0;
    let bytes = pattern.as_bytes();
    while i < bytes.len() {
        if let Some(next) = copy_plain(pattern, i, &mut out) {
            i = next;
            continue;
        }
        let rest = &pattern[i..];
        let Some(tag) = tag_at(rest) else {
            out.push('<');
            i += 1;
            continue;
        };
        match tag {
            Tag::Host(len) => {
                if has_host {
                    return Err(TagError {
                        offset: i,
                        message: "a regex may contain <HOST> or <ADDR> only once".into(),
                    });
                }
                has_host = true;
                let wrap = &rest[..len] == "<HOST>";
                if wrap {
                    // <HOST> also takes the bracketed `[v6]` form.
                    out.push_str(&format!("(?P<{HOST_GROUP}>\\[{ADDR_RE}\\]|{ADDR_RE})"));
                } else {
                    out.push_str(&format!("(?P<{HOST_GROUP}>{ADDR_RE})"));
                }
                i += len;
            }
            Tag::Open(name, len) => {
                if let Some((prev, at)) = &open {
                    return Err(TagError {
                        offset: i,
                        message: format!(
                            "<F-{}> opened inside <F-{prev}> (opened at offset {at})",
                            name.to_uppercase()
                        ),
                    });
                }
                if fields.contains(&name) {
                    return Err(TagError {
                        offset: i,
                        message: format!("<F-{}> appears twice", name.to_uppercase()),
                    });
                }
                out.push_str(&format!("(?P<{name}>"));
                open = Some((name, i));
                i += len;
            }
            Tag::Close(name, len) => match open.take() {
                Some((o, _)) if o == name => {
                    out.push(')');
                    fields.push(name);
                    i += len;
                }
                _ => {
                    return Err(TagError {
                        offset: i,
                        message: format!(
                            "</F-{}> closes a tag that is not open",
                            name.to_uppercase()
                        ),
                    })
                }
            },
        }
        map.push((out.len(), i));
    }
    if let Some((name, at)) = open {
        return Err(TagError {
            offset: at,
            message: format!("<F-{}> is never closed", name.to_uppercase()),
        });
    }
    Ok(Expanded {
        regex: out,
        has_host,
        fields,
        map,
    })
}

enum Tag {
    Host(usize),
    Open(String, usize),
    Close(String, usize),
}

fn tag_at(s: &str) -> Option<Tag> {
    if s.starts_with("<HOST>") {
        return Some(Tag::Host(6));
    }
    if s.starts_with("<ADDR>") {
        return Some(Tag::Host(6));
    }
    let (close, body) = if let Some(b) = s.strip_prefix("</F-") {
        (true, b)
    } else if let Some(b) = s.strip_prefix("<F-") {
        (false, b)
    } else {
        return None;
    };
    let end = body.find('>')?;
    let raw = &body[..end];
    if raw.is_empty()
        || !raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let name = raw.to_ascii_lowercase();
    let len = if close { 4 } else { 3 } + end + 1;
    Some(if close {
        Tag::Close(name, len)
    } else {
        Tag::Open(name, len)
    })
}

/// Copies the character at byte `i` of `pattern` to `out` unless a tag may
/// start there: an escaped character (a backslash and the next character, so
/// `\<` stays a literal `<`) or any character but `<`. Returns where the
/// next character starts; `None` at a `<`.
pub(super) fn copy_plain(pattern: &str, i: usize, out: &mut String) -> Option<usize> {
    let rest = pattern.get(i..)?;
    if let Some(after) = rest.strip_prefix('\\') {
        let len = after.chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[..1 + len]);
        return Some(i + 1 + len);
    }
    let c = rest.chars().next().filter(|&c| c != '<')?;
    out.push(c);
    Some(i + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_user_become_groups() {
        let e = expand(r"^Invalid user <F-USER>\S+</F-USER> from <HOST>$").unwrap();
        assert!(e.has_host);
        assert_eq!(e.fields, vec!["user".to_string()]);
        assert!(e.regex.contains("(?P<user>\\S+)"));
        assert!(e.regex.contains("(?P<host>"));
        regex::Regex::new(&e.regex).unwrap();
    }

    #[test]
    fn escaped_angle_is_literal() {
        let e = expand(r"\<HOST> <ADDR>").unwrap();
        assert!(e.regex.starts_with(r"\<HOST> (?P<host>"));
    }

    #[test]
    fn two_hosts_rejected() {
        let err = expand("<HOST> and <ADDR>").unwrap_err();
        assert_eq!(err.offset, 11);
    }

    #[test]
    fn unclosed_and_mismatched_fields_rejected() {
        assert_eq!(expand("a <F-USER>x").unwrap_err().offset, 2);
        assert!(expand("a </F-USER>").is_err());
        assert!(expand("<F-A>x<F-B>y</F-B></F-A>").is_err());
    }

    #[test]
    fn offsets_map_back_past_tags() {
        let p = "from <HOST> port (";
        let e = expand(p).unwrap();
        let paren = e.regex.rfind('(').unwrap();
        assert_eq!(e.original_offset(paren), p.rfind('(').unwrap());
        assert_eq!(e.original_offset(0), 0);
    }

    #[test]
    fn address_pattern_takes_v4_v6_and_mapped() {
        let e = expand("^<HOST>$").unwrap();
        let re = regex::Regex::new(&e.regex).unwrap();
        for ok in [
            "1.2.3.4",
            "2001:db8::1",
            "::1",
            "::ffff:1.2.3.4",
            "[2001:db8::2]",
            "fe80::1:2",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["host.example", "1.2.3", "[1.2.3.4", "abc"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
