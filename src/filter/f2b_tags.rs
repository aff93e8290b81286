//! fail2ban's regex tags: `<HOST>`, `<ADDR>`, `<IP4>`, `<IP6>`, `<DNS>`,
//! `<CIDR>`, `<SUBNET>`, `<F-NAME>...</F-NAME>` (nested, as fail2ban allows),
//! the self-closed `<F-ID/>`, `<F-PORT/>`, `<F-IP4/>`..., and `<SKIPLINES>`.
//!
//! Owns the text transformation for filters read from fail2ban files; the
//! result is still Python syntax (`python` translates it). The address tags
//! all become the one `host` group (`host_1`, `host_2`... when a regex has
//! several, in alternatives); a DNS name matches like fail2ban's `<HOST>` and
//! is then a bad host, never resolved. `<F-ID>` is the host when the regex has
//! no address tag. It compiles nothing.

use super::tags::{copy_plain, Expanded, TagError, HOST_GROUP};

const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)";
const HEX4: &str = "[0-9a-fA-F]{1,4}";
/// A DNS name as fail2ban's `<HOST>` takes it.
const DNS: &str = r"[\w\-.^_]*\w";

fn ip4() -> String {
    format!(r"{OCTET}(?:\.{OCTET}){{3}}")
}

/// Loose on purpose: what it takes is checked by parsing.
fn ip6() -> String {
    format!("(?:[0-9a-fA-F]{{0,4}}:){{2,7}}(?:{}|{HEX4})?", ip4())
}

fn addr_body() -> String {
    format!("(?:::f{{4,6}}:)?{}|{}", ip4(), ip6())
}

/// Tags that name the address.
const HOST_TAGS: [&str; 12] = [
    "<HOST>",
    "<ADDR>",
    "<IP4>",
    "<IP6>",
    "<DNS>",
    "<SUBNET>",
    "<F-IP4/>",
    "<F-IP6/>",
    "<F-ADDR/>",
    "<F-DNS/>",
    "<F-SUBNET/>",
    "<F-HOST/>",
];

/// Expands fail2ban tags in `pattern`. Unknown `<...>` text stays as it is
/// (fail2ban leaves it too: it is then literal regex text).
pub fn expand(pattern: &str) -> Result<Expanded, TagError> {
    let has_addr_tag = HOST_TAGS.iter().any(|t| pattern.contains(t));
    let mut out = String::with_capacity(pattern.len() + 256);
    let mut map = vec![(0, 0)];
    let mut hosts = 0usize;
    let mut skiplines = 0usize;
    let mut fields: Vec<String> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let bytes = pattern.as_bytes();
    let mut i = 0;
    let host_group = |out: &mut String, hosts: &mut usize, body: &str| {
        let name = match *hosts {
            0 => HOST_GROUP.to_string(),
            n => format!("{HOST_GROUP}_{n}"),
        };
        *hosts += 1;
        out.push_str(&format!("(?P<{name}>{body})"));
    };
    while i < bytes.len() {
        if let Some(next) = copy_plain(pattern, i, &mut out) {
            i = next;
            continue;
        }
        let rest = &pattern[i..];
        let Some(end) = rest.find('>') else {
            out.push('<');
            i += 1;
            continue;
        };
        let tag = &rest[1..end];
        let valid = !tag.is_empty()
            && tag
                .trim_start_matches('/')
                .trim_end_matches('/')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            out.push('<');
            i += 1;
            continue;
        }
        let len = end + 1;
        let self_closed = tag.strip_suffix('/');
        match self_closed.unwrap_or(tag) {
            "HOST" | "F-HOST" => {
                let body = format!("{}|{DNS}", addr_body());
                out.push_str(r"\[?");
                host_group(&mut out, &mut hosts, &body);
                out.push_str(r"\]?");
            }
            "ADDR" | "F-ADDR" => {
                out.push_str(r"\[?");
                host_group(&mut out, &mut hosts, &addr_body());
                out.push_str(r"\]?");
            }
            "IP4" | "F-IP4" => host_group(&mut out, &mut hosts, &ip4()),
            "IP6" | "F-IP6" => host_group(&mut out, &mut hosts, &ip6()),
            "DNS" | "F-DNS" => host_group(&mut out, &mut hosts, DNS),
            "CIDR" | "F-CIDR" => out.push_str("(?P<cidr>[0-9]+)"),
            "SUBNET" | "F-SUBNET" => {
                out.push_str(r"\[?");
                host_group(&mut out, &mut hosts, &addr_body());
                out.push_str(r"(?:/(?P<cidr>[0-9]+))?\]?");
            }
            "SKIPLINES" => {
                out.push_str(&format!(r"\n(?P<skiplines{skiplines}>(?:.*\n)*?)"));
                skiplines += 1;
            }
            "F-ID" if self_closed.is_some() => {
                if has_addr_tag {
                    out.push_str(r"(?P<fid>\S+)");
                } else {
                    host_group(&mut out, &mut hosts, r"\S+");
                }
            }
            "F-PORT" if self_closed.is_some() => out.push_str(r"(?P<fport>\w+)"),
            t if t.starts_with("F-") && self_closed.is_none() => {
                let name = field_name(&t[2..], has_addr_tag);
                if name == HOST_GROUP {
                    hosts += 1;
                }
                out.push_str(&format!("(?P<{name}>"));
                open.push((name, i));
            }
            t if t.starts_with("/F-") => {
                let name = field_name(&t[3..], has_addr_tag);
                match open.pop() {
                    Some((o, _)) if o == name => {
                        out.push(')');
                        if !fields.contains(&name) {
                            fields.push(name);
                        }
                    }
                    _ => {
                        return Err(TagError {
                            offset: i,
                            message: format!("<{tag}> closes a tag that is not open"),
                        })
                    }
                }
            }
            _ => {
                out.push_str(&rest[..len]);
            }
        }
        i += len;
        map.push((out.len(), i));
    }
    if let Some((name, at)) = open.pop() {
        return Err(TagError {
            offset: at,
            message: format!("<F-{}> is never closed", name.to_uppercase()),
        });
    }
    Ok(Expanded {
        regex: out,
        has_host: hosts > 0,
        fields,
        map,
    })
}

/// fail2ban's names: lower case, `id` is `fid` (the host when the regex has
/// no address tag), `port` is `fport`.
fn field_name(tag: &str, has_addr_tag: bool) -> String {
    match tag.to_ascii_lowercase().as_str() {
        "id" if !has_addr_tag => HOST_GROUP.to_string(),
        "id" => "fid".into(),
        "port" => "fport".into(),
        n => n.replace('-', "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(p: &str) -> regex::Regex {
        regex::Regex::new(&expand(p).unwrap().regex).unwrap()
    }

    fn host<'a>(re: &regex::Regex, line: &'a str) -> Option<&'a str> {
        re.captures(line)
            .and_then(|c| c.name(HOST_GROUP))
            .map(|m| m.as_str())
    }

    #[test]
    fn host_takes_addresses_and_dns_names_like_fail2ban() {
        let re = compiled(r"^from <HOST> port");
        assert_eq!(host(&re, "from 1.2.3.4 port"), Some("1.2.3.4"));
        assert_eq!(host(&re, "from [2001:db8::1] port"), Some("2001:db8::1"));
        assert_eq!(
            host(&re, "from ::ffff:1.2.3.4 port"),
            Some("::ffff:1.2.3.4")
        );
        assert_eq!(
            host(&re, "from mail.example.com port"),
            Some("mail.example.com")
        );
        let re = compiled(r"^from <ADDR> port");
        assert_eq!(host(&re, "from mail.example.com port"), None);
        let re = compiled(r"^<SUBNET>$");
        assert_eq!(host(&re, "192.0.2.0/24"), Some("192.0.2.0"));
    }

    #[test]
    fn fields_nest_and_fid_is_the_host_only_without_an_address() {
        let e = expand("<F-NOFAIL><F-MLFFORGET>x</F-MLFFORGET></F-NOFAIL> <F-ALT_USER1>u</F-ALT_USER1> <F-ID>i</F-ID>")
            .unwrap();
        assert_eq!(e.fields, vec!["mlfforget", "nofail", "alt_user1", "host"]);
        assert!(e.has_host);
        let e = expand("<F-ID>i</F-ID> <HOST>").unwrap();
        assert_eq!(e.fields, vec!["fid"]);
        let e = expand("(?:<IP4>|<IP6>)").unwrap();
        assert!(e.regex.contains("(?P<host_1>"));
        assert!(expand("<F-A>x</F-B>").is_err());
        assert!(expand("<F-A>x").is_err());
        assert_eq!(
            expand("<unknown> \\<HOST>").unwrap().regex,
            "<unknown> \\<HOST>"
        );
    }
}
