//! Parity: `dry-run --jail` predicts the daemon exactly.
//!
//! The same inputs go two ways:
//! - the daemon's way: bytes cut by the daemon's line cutter in small reads
//!   (overlong lines dropped and reported as `Skipped`), two files read
//!   interleaved, journal entries read by the daemon's journal reader, each
//!   line walked by the daemon's `Walker` and counted by
//!   `Engine::handle_walked` as its own event on a simulated clock
//!   that reads every line when it is written (its own time; for an undated
//!   line, that of the dated line before it in its file, or the start);
//! - dry-run's way: `banwarden dry-run --jail J --json` on the same files
//!   (mapped, cut into large chunks walked on worker threads, with a
//!   prefilter tuned on the input) or the same journal file.
//!
//! Every counter, every address with its failures and first and last time,
//! and every ban (address, time, duration, expiry, escalation count) must be
//! identical. The inputs hold what once set the two apart: journal entries
//! for a filter with a `datepattern`, lines over 16 KiB, lines without a
//! date (before any dated line, and after one in each of two interleaved
//! files), a line with two dates after lines dated after a `[`, IPv6
//! addresses counted per /64, escalation, ignored addresses, and every
//! shipped filter's sample log.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

mod common;

use banwarden::config;
use banwarden::jail::engine::{Engine, JailRuntime, JailStats};
use banwarden::jail::walker::{Walked, Walker};
use banwarden::jail::{Jail, Verdict};
use banwarden::scan::split::Cutter;
use banwarden::scan::MAX_LINE;
use banwarden::source::{FilePos, SourceEvent};
use banwarden::UnixTime;

/// 2024-03-10T00:00:00Z: the reference time (dry-run's `--now`) and the
/// simulated clock's start.
const T0: UnixTime = 1_710_028_800;

/// A ban: (address, at, bantime, expires, count, failures).
type Ban = (String, i64, Option<i64>, Option<i64>, u32, u32);

/// What one run amounted to.
#[derive(Debug, PartialEq, Eq, Default)]
struct Seen {
    /// read, matched, missed, ignored, bad_host, skipped, undated
    lines: [u64; 7],
    /// failures, bans, already banned, ignored, too old
    jail: [u64; 5],
    /// address → (failures, first, last)
    addresses: BTreeMap<String, (u64, i64, i64)>,
    bans: Vec<Ban>,
}

enum In {
    File(PathBuf),
    /// A journal file and the match that selects the entries.
    Journal(PathBuf, String),
}

fn net_text(net: &ipnet::IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// The daemon's way.
fn daemon(dir: &Path, jail: &str, inputs: &[In]) -> Seen {
    let cfg = config::load_jail(dir, jail).expect("config");
    let j = cfg.jail(jail).expect("jail");
    let filter = j.filter.clone();
    let runtime = JailRuntime {
        jail: Jail::new(j.settings.clone()),
        filter: filter.clone(),
        stats: JailStats::default(),
    };
    let mut engine = Engine::new(vec![runtime], vec![vec![0]; inputs.len()]);
    let mut walker = Walker::new(engine.walk_routes());
    let mut seen = Seen::default();
    let mut failures = 0u64;
    let mut bans = Vec::new();
    // Each input's events, in order; then interleaved one by one.
    let mut queues: Vec<Vec<(SourceEvent, UnixTime)>> = Vec::new();
    for (source, input) in inputs.iter().enumerate() {
        let mut q = Vec::new();
        match input {
            In::File(path) => {
                let bytes = std::fs::read(path).expect("read");
                let mut cutter = Cutter::new(MAX_LINE);
                let path = Arc::new(path.clone());
                let mut state = filter.new_state();
                let mut push = |data: Vec<u8>, skipped: u64, q: &mut Vec<_>| {
                    if skipped > 0 {
                        q.push((
                            SourceEvent::Skipped {
                                source,
                                path: path.clone(),
                                count: skipped,
                                reason: "too long",
                            },
                            None,
                        ));
                    }
                    for line in data.split_inclusive(|b| *b == b'\n') {
                        // Written (and read) at its own time, if it has one.
                        let t = filter.date(line, T0, &mut state).map(|d| d.ts);
                        q.push((lines(source, &path, line), t));
                    }
                };
                // Reads of 1000 bytes: lines are cut across reads.
                for piece in bytes.chunks(1000) {
                    let (data, skipped) = cutter.feed(piece);
                    push(data, skipped, &mut q);
                }
                let (data, skipped) = cutter.finish();
                push(data, skipped, &mut q);
            }
            In::Journal(file, m) => {
                for (ts, text) in journal(file, m) {
                    let ev = SourceEvent::Entries {
                        source,
                        entries: vec![(ts, text)],
                        cursor: None,
                    };
                    q.push((ev, Some(ts)));
                }
            }
        }
        queues.push(q.into_iter().map(|(e, t)| (e, t.unwrap_or(-1))).collect());
    }
    let longest = queues.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = queues.into_iter().map(Vec::into_iter).collect();
    // Per file: the time of its last dated line.
    let mut last = vec![T0; iters.len()];
    for _ in 0..longest {
        for (it, last) in iters.iter_mut().zip(&mut last) {
            let Some((ev, t)) = it.next() else { continue };
            // A dated line is read at its time; an undated one (or a
            // skipped one) right after the dated line before it.
            let now = if t >= 0 { t } else { *last };
            *last = now;
            let ev = match ev {
                SourceEvent::Lines {
                    source,
                    path,
                    data,
                    pos,
                    ..
                } => SourceEvent::Lines {
                    source,
                    path,
                    data,
                    read_time: now,
                    pos,
                },
                other => other,
            };
            let addresses = &mut seen.addresses;
            let mut observe = |r: &banwarden::scan::Rec, time: UnixTime, _: &Verdict| {
                failures += 1;
                if let Some(h) = r.host {
                    let e = addresses.entry(h.to_string()).or_insert((0, time, time));
                    e.0 += 1;
                    e.2 = time;
                }
            };
            let Walked { ev, mut chunks } = walker.walk(ev, now);
            engine.handle_walked(&ev, &mut chunks, now, &mut bans, Some(&mut observe));
        }
    }
    let s = engine.jails[0].stats;
    seen.lines = [
        s.lines + s.skipped,
        s.matched,
        s.missed,
        s.ignored_lines,
        s.bad_host,
        s.skipped,
        s.undated,
    ];
    seen.jail = [
        failures,
        s.bans,
        s.already_banned,
        s.ignored_addresses,
        s.too_old,
    ];
    seen.bans = bans
        .iter()
        .map(|b| {
            (
                net_text(&b.net),
                b.at,
                b.bantime,
                b.expires,
                b.count,
                b.failures,
            )
        })
        .collect();
    seen
}

fn lines(source: usize, path: &Arc<PathBuf>, line: &[u8]) -> SourceEvent {
    SourceEvent::Lines {
        source,
        path: path.clone(),
        data: line.to_vec(),
        read_time: 0,
        pos: FilePos {
            path: path.to_path_buf(),
            dev: 0,
            ino: 0,
            offset: 0,
            fingerprint: 0,
        },
    }
}

/// The entries the daemon's journal reader delivers from `file` (read once).
fn journal(file: &Path, m: &str) -> Vec<(UnixTime, Vec<u8>)> {
    use banwarden::source::journal::{JournalConfig, JournalSource, JournalSpec};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let cfg = JournalConfig {
            specs: vec![JournalSpec {
                source: 0,
                matches: vec![m.to_string()],
            }],
            since: Some(T0 - 1),
            files: vec![file.to_path_buf()],
            follow: false,
            ..JournalConfig::default()
        };
        let source = JournalSource::spawn(cfg, tx);
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                SourceEvent::Entries { entries, .. } => out.extend(entries),
                SourceEvent::Error { message, .. } => panic!("journal: {message}"),
                _ => {}
            }
        }
        drop(source);
        out
    })
}

/// dry-run's way.
fn dry_run(dir: &Path, jail: &str, inputs: &[In]) -> Seen {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_banwarden"));
    cmd.env("TZ", "UTC")
        .args(["dry-run", "--json", "--top", "100000", "--jail", jail])
        .arg("--config")
        .arg(dir)
        .args(["--now", &T0.to_string(), "--chunk-kib", "8"]);
    for i in inputs {
        match i {
            In::File(p) => {
                cmd.arg(p);
            }
            In::Journal(file, m) => {
                cmd.args(["--journal", m, "--since", &(T0 - 1).to_string()])
                    .arg("--journal-file")
                    .arg(file);
            }
        }
    }
    let out = cmd.output().expect("dry-run");
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "dry-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let n = |v: &serde_json::Value| v.as_u64().expect("count");
    let l = &doc["lines"];
    let jr = &doc["jail"];
    let t = |v: &serde_json::Value| v.as_i64();
    Seen {
        lines: [
            n(&l["read"]),
            n(&l["matched"]),
            n(&l["missed"]),
            n(&l["ignored"]),
            n(&l["bad_host"]),
            n(&l["skipped"]),
            n(&l["undated"]),
        ],
        jail: [
            n(&jr["failures"]),
            n(&jr["bans_total"]),
            n(&jr["already_banned"]),
            n(&jr["ignored_failures"]),
            n(&jr["too_old"]),
        ],
        addresses: doc["addresses"]["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|a| {
                (
                    a["address"].as_str().expect("address").to_string(),
                    (
                        n(&a["failures"]),
                        t(&a["first"]).expect("first"),
                        t(&a["last"]).expect("last"),
                    ),
                )
            })
            .collect(),
        bans: jr["bans"]
            .as_array()
            .expect("bans")
            .iter()
            .map(|b| {
                (
                    b["address"].as_str().expect("address").to_string(),
                    t(&b["at"]).expect("at"),
                    t(&b["bantime"]),
                    t(&b["expires"]),
                    n(&b["count"]) as u32,
                    n(&b["failures"]) as u32,
                )
            })
            .collect(),
    }
}

fn same(dir: &Path, jail: &str, inputs: &[In]) -> Seen {
    let mut d = daemon(dir, jail, inputs);
    let mut r = dry_run(dir, jail, inputs);
    // Bans in time order (the daemon made them in the order it read the
    // files, dry-run one file after the other).
    d.bans.sort_by_key(|b| (b.1, b.0.clone()));
    r.bans.sort_by_key(|b| (b.1, b.0.clone()));
    assert_eq!(
        d, r,
        "jail {jail}: the daemon (left) and dry-run (right) differ"
    );
    d
}

/// A config directory with the shipped filters, the test's own, and a jail
/// per case.
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("filters")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("jails")).expect("mkdir");
    let mut jails = String::new();
    for e in std::fs::read_dir(root.join("filters"))
        .expect("filters")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().replace(".yaml", "");
        std::fs::copy(e.path(), dir.path().join("filters").join(e.file_name())).expect("copy");
        jails.push_str(&format!(
            "s-{name}: {{filter: {name}, maxretry: 2, findtime: 1h, bantime: 10m, bantime_increment: {{factor: 2}}}}\n"
        ));
    }
    std::fs::write(
        dir.path().join("filters/app.yaml"),
        "failregex:\n  - 'Login failure <HOST>$'\nignoreregex:\n  - 'Login failure 10\\.'\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("filters/appdp.yaml"),
        "failregex:\n  - '^app\\[\\d+\\]: Login failure <HOST>$'\ndatepattern: '^%Y-%m-%d %H:%M:%S'\n",
    )
    .expect("write");
    jails.push_str(
        "special: {filter: app, maxretry: 2, findtime: 10m, bantime: 10m, ipv6_prefix: 64, \
         ignoreip: [192.0.2.0/24], bantime_increment: {factor: 2}}\n\
         dp: {filter: appdp, maxretry: 2, findtime: 10m, bantime: 1h}\n",
    );
    std::fs::write(dir.path().join("jails/parity.yaml"), jails).expect("write");
    dir
}

fn iso(t: UnixTime) -> String {
    jiff::Timestamp::from_second(t)
        .expect("time")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[test]
fn every_shipped_filter_on_its_samples() {
    let dir = config_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut banned = 0;
    for e in std::fs::read_dir(root.join("filters"))
        .expect("filters")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().replace(".yaml", "");
        let sample = root.join(format!("tests/samples/{name}.log"));
        assert!(sample.exists(), "{name} has no sample log");
        let seen = same(dir.path(), &format!("s-{name}"), &[In::File(sample)]);
        assert!(seen.lines[1] > 0, "{name}: nothing matched");
        banned += seen.bans.len();
    }
    assert!(banned > 0, "no sample led to a ban");
}

#[test]
fn undated_overlong_two_dates_ipv6_escalation_in_two_interleaved_files() {
    let dir = config_dir();
    let d = |s: i64| format!("{},000 ERROR", iso(T0 + s));
    let long = format!("{} Login failure 198.51.100.4", "x".repeat(MAX_LINE + 10));
    let a = [
        // Before any dated line: counted when read (the clock's start).
        "Login failure 198.51.100.1".to_string(),
        "Login failure 198.51.100.1".to_string(),
        format!("{} Login failure 198.51.100.2", d(5)),
        "Traceback (most recent call last):".to_string(),
        // Undated: the time of the dated line before it in this file.
        "  Login failure 198.51.100.3".to_string(),
        format!("{} Login failure 198.51.100.3", d(9)),
        // Over 16 KiB: skipped, never counted (three times: no ban).
        long.clone(),
        long.clone(),
        long,
        format!("{} Login failure 2001:db8:1::1", d(10)),
        format!("{} Login failure 2001:db8:1::2", d(11)),
        // Banned, the ban lapses, banned again for twice as long.
        format!("{} Login failure 198.51.100.9", d(20)),
        format!("{} Login failure 198.51.100.9", d(21)),
        format!("{} Login failure 198.51.100.9", d(22)),
        format!("{} Login failure 198.51.100.9", d(700)),
        format!("{} Login failure 198.51.100.9", d(701)),
        // Never banned: ignoreip, ignoreregex.
        format!("{} Login failure 192.0.2.7", d(702)),
        format!("{} Login failure 192.0.2.7", d(703)),
        format!("{} Login failure 10.1.1.1", d(704)),
        "Login failure 198.51.100.5".to_string(),
    ];
    let b = [
        format!(
            "203.0.113.5 - - [{}] Login failure 203.0.113.5",
            jiff::Timestamp::from_second(T0 + 300)
                .expect("time")
                .strftime("%d/%b/%Y:%H:%M:%S +0000")
        ),
        // Undated: the time of the line before it in this file, not in a.log.
        "Login failure 203.0.113.8".to_string(),
        // Two dates: the one at the start counts, whatever came before.
        format!(
            "{} [10/Mar/2024:05:00:00 +0000] Login failure 203.0.113.5",
            d(400)
        ),
        "Mar 10 00:07:00 host app: Login failure 203.0.113.6".to_string(),
        "Login failure 203.0.113.6".to_string(),
        "Login failure 203.0.113.6".to_string(),
    ];
    let fa = dir.path().join("a.log");
    let fb = dir.path().join("b.log");
    std::fs::write(&fa, a.join("\n") + "\n").expect("write");
    // The last line without its newline: complete at the end of the input.
    std::fs::write(&fb, b.join("\n")).expect("write");
    let seen = same(dir.path(), "special", &[In::File(fa), In::File(fb)]);
    let bans: Vec<(&str, i64, Option<i64>, u32)> = seen
        .bans
        .iter()
        .map(|b| (b.0.as_str(), b.1, b.2, b.4))
        .collect();
    assert_eq!(
        bans,
        [
            ("198.51.100.1", T0, Some(600), 1),
            ("198.51.100.3", T0 + 9, Some(600), 1),
            ("2001:db8:1::/64", T0 + 11, Some(600), 1),
            ("198.51.100.9", T0 + 21, Some(600), 1),
            ("203.0.113.5", T0 + 400, Some(600), 1),
            ("203.0.113.6", T0 + 420, Some(600), 1),
            ("198.51.100.9", T0 + 701, Some(1200), 2),
        ]
    );
    assert_eq!(seen.lines[5], 3, "three overlong lines skipped");
    assert_eq!(seen.lines[6], 7, "seven matching lines without a time");
    assert_eq!(seen.addresses["198.51.100.3"], (2, T0 + 5, T0 + 9));
    assert_eq!(seen.addresses["198.51.100.5"], (1, T0 + 704, T0 + 704));
    assert_eq!(seen.addresses["203.0.113.8"], (1, T0 + 300, T0 + 300));
}

#[test]
fn journal_entries_with_a_datepattern_filter() {
    let dir = config_dir();
    let file = dir.path().join("parity.journal");
    let mut export = Vec::new();
    for (i, (ident, msg)) in [
        ("app", "Login failure 198.51.100.77"),
        ("app", "Login failure 198.51.100.77"),
        ("other", "Login failure 198.51.100.78"),
        ("app", "Login failure 198.51.100.77"),
        ("app", "all fine"),
    ]
    .iter()
    .enumerate()
    {
        let ts = (T0 + 60 + i as i64) as u64 * 1_000_000;
        writeln!(export, "__REALTIME_TIMESTAMP={ts}").expect("w");
        writeln!(export, "__MONOTONIC_TIMESTAMP={}", 1_000_000 + i * 1000).expect("w");
        writeln!(export, "_BOOT_ID=0123456789abcdef0123456789abcdef").expect("w");
        writeln!(export, "SYSLOG_IDENTIFIER={ident}").expect("w");
        writeln!(export, "_PID=42").expect("w");
        writeln!(export, "MESSAGE={msg}\n").expect("w");
    }
    if !common::journal::write_export(&file, &export) {
        return;
    }
    let input = [In::Journal(file, "_PID=42".into())];
    let seen = same(dir.path(), "dp", &input);
    // The entries' own times, though the filter's datepattern finds none.
    assert_eq!(seen.lines[..3], [5, 3, 2]);
    assert_eq!(seen.lines[6], 0, "no entry is undated");
    assert_eq!(seen.bans.len(), 1);
    assert_eq!(
        (seen.bans[0].0.as_str(), seen.bans[0].1),
        ("198.51.100.77", T0 + 61)
    );
}
