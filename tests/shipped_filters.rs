//! The shipped filters (`filters/*.yaml`) against hand-counted sample logs
//! (`tests/samples/NAME.log` + `NAME.expect.json`), and the shipped jails
//! (`jails/*.yaml`) against the repository as a config directory.
//!
//! Sample files: one log line per line; blank lines and lines starting with
//! `#` are comments. The expectations are written by hand, never generated
//! by running this code, so a filter change that alters what is matched
//! fails here until someone re-counts.
//!
//! `NAME.expect.json`:
//! `{"matched": N, "missed": N, "ignored": N, "hosts": {"ADDR": failures},
//!   "users": {"NAME": failures}, "never": ["ADDR", ...],
//!   "undated": N, "bad_host": N}` — `users`, `undated` and `bad_host` are
//! optional (`bad_host` defaults to 0). Addresses are compared parsed, so
//! `2001:db8::1` and `2001:0db8::1` are the same key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use banwarden::config::{load, load_filter_file};
use banwarden::filter::{Filter, Outcome};
use serde_json::Value;

/// 2024-06-01T00:00:00Z: the samples are dated late May 2024, so syslog
/// dates without a year land in 2024.
const NOW: i64 = 1_717_200_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn samples() -> PathBuf {
    root().join("tests").join("samples")
}

/// What the sample file must produce.
#[derive(Debug)]
struct Expect {
    matched: usize,
    missed: usize,
    ignored: usize,
    bad_host: usize,
    undated: Option<usize>,
    hosts: BTreeMap<IpAddr, usize>,
    users: Option<BTreeMap<String, usize>>,
    never: Vec<IpAddr>,
}

fn addr(s: &str, what: &str) -> IpAddr {
    s.parse::<IpAddr>()
        .unwrap_or_else(|_| panic!("{what}: `{s}` is not an IP address"))
        .to_canonical()
}

fn count(v: &Value, key: &str, what: &str) -> Option<usize> {
    v.get(key).map(|n| {
        n.as_u64()
            .unwrap_or_else(|| panic!("{what}: `{key}` must be a number")) as usize
    })
}

fn read_expect(name: &str) -> Expect {
    let path = samples().join(format!("{name}.expect.json"));
    let what = path.display().to_string();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let map = |key: &str| -> Option<BTreeMap<String, usize>> {
        v.get(key).map(|m| {
            m.as_object()
                .unwrap_or_else(|| panic!("{what}: `{key}` must be an object"))
                .iter()
                .map(|(k, n)| {
                    (
                        k.clone(),
                        n.as_u64()
                            .unwrap_or_else(|| panic!("{what}: {key}.{k} must be a number"))
                            as usize,
                    )
                })
                .collect()
        })
    };
    let mut hosts = BTreeMap::new();
    for (k, n) in map("hosts").unwrap_or_else(|| panic!("{what}: `hosts` is required")) {
        assert!(
            hosts.insert(addr(&k, &what), n).is_none(),
            "{what}: host {k} listed twice"
        );
    }
    let never = v
        .get("never")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{what}: `never` must be a list"))
        .iter()
        .map(|s| {
            addr(
                s.as_str()
                    .unwrap_or_else(|| panic!("{what}: `never` holds strings")),
                &what,
            )
        })
        .collect();
    Expect {
        matched: count(&v, "matched", &what)
            .unwrap_or_else(|| panic!("{what}: `matched` is required")),
        missed: count(&v, "missed", &what)
            .unwrap_or_else(|| panic!("{what}: `missed` is required")),
        ignored: count(&v, "ignored", &what)
            .unwrap_or_else(|| panic!("{what}: `ignored` is required")),
        bad_host: count(&v, "bad_host", &what).unwrap_or(0),
        undated: count(&v, "undated", &what),
        hosts,
        users: map("users"),
        never,
    }
}

/// What running the sample file through the filter gave.
#[derive(Debug, Default)]
struct Seen {
    matched: usize,
    missed: usize,
    ignored: usize,
    bad_host: usize,
    undated: usize,
    hosts: BTreeMap<IpAddr, usize>,
    users: BTreeMap<String, usize>,
    per_regex: Vec<usize>,
    /// One line per sample line, for the failure message.
    trace: String,
}

fn run(filter: &Filter, log: &Path) -> Seen {
    let text = std::fs::read(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut seen = Seen {
        per_regex: vec![0; filter.spec.failregex.len()],
        ..Default::default()
    };
    // One state for the whole file, as the daemon keeps one per stream.
    let mut scratch = filter.new_state();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
            continue;
        }
        let (date, outcome) = filter.examine(line, NOW, &mut scratch);
        if date.is_none() {
            seen.undated += 1;
        }
        let what = match outcome {
            Outcome::Missed => {
                seen.missed += 1;
                "missed".to_string()
            }
            Outcome::Ignored { regex } => {
                seen.ignored += 1;
                format!("ignored by ignoreregex[{regex}]")
            }
            Outcome::BadHost { regex } => {
                seen.bad_host += 1;
                format!("BAD HOST from failregex[{regex}]")
            }
            Outcome::Failure {
                regex, host, user, ..
            } => {
                seen.matched += 1;
                seen.per_regex[regex] += 1;
                *seen.hosts.entry(host).or_default() += 1;
                let user = user.map(|u| String::from_utf8_lossy(u).into_owned());
                if let Some(u) = &user {
                    *seen.users.entry(u.clone()).or_default() += 1;
                }
                format!("failregex[{regex}] host {host} user {user:?}")
            }
        };
        let _ = writeln!(
            seen.trace,
            "  {:>4}: {:<48} {}",
            i + 1,
            what,
            String::from_utf8_lossy(line)
        );
    }
    seen
}

fn check(name: &str) {
    let path = root().join("filters").join(format!("{name}.yaml"));
    let filter =
        load_filter_file(&path).unwrap_or_else(|e| panic!("{name}: filter does not compile:\n{e}"));
    assert!(
        !filter.spec.description.trim().is_empty(),
        "{name}: the filter needs a description"
    );
    let expect = read_expect(name);
    let seen = run(&filter, &samples().join(format!("{name}.log")));
    let ctx = format!("filter {name}, line by line:\n{}", seen.trace);

    if let Some((host, _)) = seen.hosts.iter().find(|(h, _)| expect.never.contains(h)) {
        panic!("{name}: forged address {host} was captured\n{ctx}");
    }
    assert_eq!(seen.matched, expect.matched, "{name}: matched\n{ctx}");
    assert_eq!(seen.missed, expect.missed, "{name}: missed\n{ctx}");
    assert_eq!(seen.ignored, expect.ignored, "{name}: ignored\n{ctx}");
    assert_eq!(seen.bad_host, expect.bad_host, "{name}: bad host\n{ctx}");
    if let Some(undated) = expect.undated {
        assert_eq!(
            seen.undated, undated,
            "{name}: lines without a detected date\n{ctx}"
        );
    }
    assert_eq!(seen.hosts, expect.hosts, "{name}: failures per host\n{ctx}");
    if let Some(users) = &expect.users {
        assert_eq!(&seen.users, users, "{name}: failures per user\n{ctx}");
    }
    let unused: Vec<String> = seen
        .per_regex
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| format!("failregex[{i}] {}", filter.spec.failregex[i]))
        .collect();
    assert!(
        unused.is_empty(),
        "{name}: no sample line exercises\n  {}\n{ctx}",
        unused.join("\n  ")
    );
}

#[test]
fn sshd() {
    check("sshd");
}

#[test]
fn django_auth() {
    check("django-auth");
}

#[test]
fn django_axes() {
    check("django-axes");
}

#[test]
fn nginx_http_auth() {
    check("nginx-http-auth");
}

#[test]
fn nginx_limit_req() {
    check("nginx-limit-req");
}

#[test]
fn nginx_botsearch() {
    check("nginx-botsearch");
}

#[test]
fn nginx_login() {
    check("nginx-login");
}

fn stems(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Every shipped filter has samples, expectations and a test above, and a jail of its name.
#[test]
fn every_filter_has_samples_and_a_jail() {
    let tested = [
        "django-auth",
        "django-axes",
        "nginx-botsearch",
        "nginx-http-auth",
        "nginx-limit-req",
        "nginx-login",
        "sshd",
    ];
    let filters = stems(&root().join("filters"));
    let jails = stems(&root().join("jails"));
    for f in &filters {
        assert!(
            tested.contains(&f.as_str()),
            "filters/{f}.yaml has no #[test] in tests/shipped_filters.rs"
        );
        for ext in ["log", "expect.json"] {
            assert!(
                samples().join(format!("{f}.{ext}")).is_file(),
                "filters/{f}.yaml: tests/samples/{f}.{ext} is missing"
            );
        }
        assert!(jails.contains(f), "filters/{f}.yaml: no jails/{f}.yaml");
    }
    for t in tested {
        assert!(
            filters.iter().any(|f| f == t),
            "tested filter {t} is not in filters/"
        );
    }
}

/// The repository root is a config directory: it loads, every shipped jail is
/// off except the demo, and each jail file names the filter of its own name.
#[test]
fn repository_config_loads_with_jails_disabled() {
    let config = load(&root())
        .unwrap_or_else(|e| panic!("the repository does not load as a config directory:\n{e}"));
    assert!(!config.jails.is_empty());
    for jail in &config.jails {
        assert!(
            config.filters.contains_key(jail.filter.name()),
            "jail {}: filter {} is not in filters/",
            jail.name,
            jail.filter.name()
        );
        if jail.name == "demo" {
            continue;
        }
        assert!(
            !jail.enabled,
            "jail {} is shipped enabled: only `demo` may be",
            jail.name
        );
        assert_eq!(
            jail.filter.name(),
            jail.name,
            "jail {} should use the filter of the same name",
            jail.name
        );
        // sshd reads the journal where this machine has no auth.log.
        assert!(
            !jail.logpath.is_empty() || jail.journal.is_some(),
            "jail {} has nothing to read",
            jail.name
        );
    }
    for name in stems(&root().join("jails"))
        .iter()
        .filter(|n| !n.contains(".local"))
    {
        assert!(
            config.jail(name).is_some(),
            "jails/{name}.yaml does not define the jail `{name}`"
        );
    }
}
