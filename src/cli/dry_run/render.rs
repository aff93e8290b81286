//! Rendering the dry-run report for a person: counts, dates, hits per
//! regex, top addresses and users, the jail's bans, `--show` lines with the
//! host and user highlighted; the text of an address or network (also
//! in the JSON: a ban row keeps its network and input name as `NetText`
//! and `InputName`, written out only when rendered).
//!
//! Owns presentation only; the numbers are `report`'s.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use ipnet::IpNet;

use super::{lossy, Kind, Report};
use crate::UnixTime;

const HEAD: Style = Style::new().bold();
const GOOD: Style = AnsiColor::Green.on_default();
const WARN: Style = AnsiColor::Yellow.on_default();
const BAD: Style = AnsiColor::Red.on_default().bold();
const DIM: Style = Style::new().dimmed();
const ADDR: Style = AnsiColor::Cyan.on_default();
const HOST: Style = AnsiColor::Red.on_default().bold().underline();
const USER: Style = AnsiColor::Magenta.on_default().bold();

/// Local time, `YYYY-MM-DD HH:MM:SS`.
pub fn fmt_time(t: UnixTime) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// `90` → `1m30s`; `None` → `permanent`.
pub fn fmt_duration(d: Option<i64>) -> String {
    let Some(mut s) = d else {
        return "permanent".into();
    };
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if s < 0 {
        out.push('-');
        s = -s;
    }
    for (unit, len) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

fn kind_style(k: Kind) -> Style {
    match k {
        Kind::Matched => GOOD,
        Kind::Ignored => WARN,
        Kind::BadHost => BAD,
        Kind::Missed => DIM,
    }
}

/// The `--show` lines, host and user highlighted.
pub fn write_shown(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    let Some(shown) = &rep.shown else {
        return Ok(());
    };
    let many = rep.inputs.len() > 1;
    for l in &shown.lines {
        let st = kind_style(l.kind);
        if many {
            write!(out, "{st}{}:{}:{st:#} ", l.input, l.line)?;
        } else {
            write!(out, "{st}{}:{st:#} ", l.line)?;
        }
        let mut marks: Vec<(usize, usize, Style)> = Vec::new();
        for (span, style) in [(l.host_span, HOST), (l.user_span, USER)] {
            if let Some([s, e]) = span {
                marks.push((s as usize, e as usize, style));
            }
        }
        marks.sort_by_key(|m| m.0);
        let mut at = 0;
        for (s, e, style) in marks {
            if s < at || e > l.raw.len() || s > e {
                continue;
            }
            write!(
                out,
                "{}{style}{}{style:#}",
                lossy(&l.raw[at..s]),
                lossy(&l.raw[s..e])
            )?;
            at = e;
        }
        writeln!(out, "{}", lossy(&l.raw[at.min(l.raw.len())..]))?;
    }
    if !shown.lines.is_empty() {
        writeln!(out)?;
    }
    Ok(())
}

/// The human report.
pub fn write_human(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    write_shown(out, rep)?;
    let f = &rep.filter;
    writeln!(out, "{HEAD}Filter{HEAD:#}   {} ({})", f.name, f.origin)?;
    let inputs: Vec<String> = rep
        .inputs
        .iter()
        .map(|i| format!("{} ({} lines)", i.name, i.lines))
        .collect();
    writeln!(out, "{HEAD}Input{HEAD:#}    {}", inputs.join(", "))?;
    let l = &rep.lines;
    writeln!(
        out,
        "{HEAD}Lines{HEAD:#}    {} read: {GOOD}{} matched{GOOD:#}, {WARN}{} ignored{WARN:#}, {}{} bad host{:#}, {} missed",
        l.read,
        l.matched,
        l.ignored,
        if l.bad_host > 0 { BAD } else { Style::new() },
        l.bad_host,
        if l.bad_host > 0 { BAD } else { Style::new() },
        l.missed
    )?;
    let d = &rep.dates;
    let formats: Vec<String> = d.formats.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let dated = d.checked - d.undated;
    write!(out, "{HEAD}Dates{HEAD:#}    {dated} with a time")?;
    if !formats.is_empty() {
        write!(out, " ({})", formats.join(", "))?;
    }
    write!(
        out,
        ", {}{} without{:#}",
        if d.undated > 0 { WARN } else { Style::new() },
        d.undated,
        if d.undated > 0 { WARN } else { Style::new() }
    )?;
    if let (Some(a), Some(b)) = (d.first, d.last) {
        write!(out, "; {} .. {}", fmt_time(a), fmt_time(b))?;
    }
    writeln!(out)?;
    if d.checked < l.read {
        writeln!(
            out,
            "         {DIM}(looked for on the {} lines that may match, of {}; --all-dates looks on every line){DIM:#}",
            d.checked, l.read
        )?;
    }

    writeln!(out)?;
    writeln!(out, "{HEAD}Failregex{HEAD:#}      hits")?;
    for r in &f.failregex {
        let st = if r.hits == 0 { DIM } else { Style::new() };
        writeln!(
            out,
            "  {st}#{:<3} {:>9}  {}{st:#}",
            r.index, r.hits, r.regex
        )?;
    }
    if !f.ignoreregex.is_empty() {
        writeln!(out, "{HEAD}Ignoreregex{HEAD:#}    hits")?;
        for r in &f.ignoreregex {
            let st = if r.hits == 0 { DIM } else { Style::new() };
            writeln!(
                out,
                "  {st}#{:<3} {:>9}  {}{st:#}",
                r.index, r.hits, r.regex
            )?;
        }
    }

    if rep.addresses.distinct > 0 {
        writeln!(out)?;
        writeln!(
            out,
            "{HEAD}Top addresses{HEAD:#} ({} distinct)",
            rep.addresses.distinct
        )?;
        let w = rep
            .addresses
            .top
            .iter()
            .map(|a| a.address.len())
            .max()
            .unwrap_or(0);
        for a in &rep.addresses.top {
            let range = match (a.first, a.last) {
                (Some(x), Some(y)) if x == y => fmt_time(x),
                (Some(x), Some(y)) => format!("{} .. {}", fmt_time(x), fmt_time(y)),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {:>9}  {ADDR}{:<w$}{ADDR:#}  {DIM}{range}{DIM:#}",
                a.failures, a.address
            )?;
        }
    }
    if rep.users.distinct > 0 {
        writeln!(
            out,
            "{HEAD}Top users{HEAD:#} ({} distinct)",
            rep.users.distinct
        )?;
        for u in &rep.users.top {
            writeln!(out, "  {:>9}  {:?}", u.failures, u.user)?;
        }
    }

    if let Some(j) = &rep.jail {
        writeln!(out)?;
        write!(
            out,
            "{HEAD}Jail {}{HEAD:#}: maxretry {}, findtime {}, bantime {}",
            j.name,
            j.maxretry,
            fmt_duration(Some(j.findtime)),
            fmt_duration(j.bantime)
        )?;
        if !j.ignoreip.is_empty() {
            write!(out, ", ignoreip {}", j.ignoreip.join(" "))?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "  {} failures: {BAD}{} bans{BAD:#}, {} while already banned, {} from ignored addresses",
            j.failures, j.bans_total, j.already_banned, j.ignored_failures
        )?;
        const LIST: usize = 100;
        let w = j
            .bans
            .iter()
            .take(LIST)
            .map(|b| b.address.to_string().len())
            .max()
            .unwrap_or(0);
        for b in j.bans.iter().take(LIST) {
            let until = match b.expires {
                Some(e) => format!(" until {}", fmt_time(e)),
                None => String::new(),
            };
            writeln!(
                out,
                "  {}  {BAD}ban{BAD:#} {ADDR}{:<w$}{ADDR:#}  after {} failures, for {}{until}{} (line {})",
                fmt_time(b.at),
                b.address,
                b.failures,
                fmt_duration(b.bantime),
                if b.count > 1 { format!(", ban #{}", b.count) } else { String::new() },
                b.line
            )?;
        }
        if j.bans.len() > LIST {
            writeln!(
                out,
                "  {DIM}... and {} more bans (--json lists them all){DIM:#}",
                j.bans.len() - LIST
            )?;
        }
        for i in &j.ignored {
            writeln!(
                out,
                "  {WARN}never banned{WARN:#} {ADDR}{}{ADDR:#}: {} failures, {}",
                i.address, i.failures, i.reason
            )?;
        }
    }
    if l.matched == 0 {
        writeln!(out)?;
        writeln!(out, "{WARN}The filter matched nothing.{WARN:#}")?;
    }
    Ok(())
}

/// An address or network in the report, written out (as `net_text` writes
/// it) only when rendered: of thousands of bans the human report shows
/// a hundred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetText(pub IpNet);

impl std::fmt::Display for NetText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&net_text(&self.0))
    }
}

impl serde::Serialize for NetText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&net_text(&self.0))
    }
}

/// An input's name, shared by the rows that name it (one per ban).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputName(pub std::sync::Arc<str>);

impl std::fmt::Display for InputName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl serde::Serialize for InputName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A host as an address, a network as `addr/len`.
pub(super) fn net_text(net: &IpNet) -> String {
    match net {
        // Written by hand: one per ban and per top address, and `Display`
        // costs several times more (the same text).
        IpNet::V4(n) if n.prefix_len() == 32 => ipv4_text(n.addr().octets()),
        _ if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
        _ => net.to_string(),
    }
}

/// `a.b.c.d`, as `Ipv4Addr`'s `Display` writes it.
fn ipv4_text(octets: [u8; 4]) -> String {
    let mut s = String::with_capacity(15);
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            s.push(char::from(b'0' + o / 10 % 10));
        }
        s.push(char::from(b'0' + o % 10));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// Every octet value in every place: the text `Display` writes.
    #[test]
    fn an_ipv4_address_is_written_as_display_writes_it() {
        for v in 0..=255u8 {
            for place in 0..4 {
                let mut o = [1, 20, 192, 0];
                o[place] = v;
                let a = std::net::Ipv4Addr::from(o);
                assert_eq!(ipv4_text(o), a.to_string());
                assert_eq!(net_text(&IpNet::from(IpAddr::V4(a))), a.to_string());
            }
        }
        let sub: IpNet = "10.1.0.0/16".parse().unwrap();
        assert_eq!(net_text(&sub), "10.1.0.0/16");
    }
}
