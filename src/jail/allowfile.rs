//! Address lists kept in files (`ignoreip: [file:/etc/banwarden/allow.txt]`,
//! `trusted_proxies: [file:...]`): one address or CIDR per line, `#`
//! comments, blank lines allowed.
//!
//! Owns parsing such a file and the shared, replaceable list the jails'
//! allow-lists read. A changed file is re-read by [`refresh`] (the daemon
//! calls it once a second); a file with a bad line, or one that cannot be
//! read, leaves the old list in force and is logged. Nothing here bans or
//! unbans.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use ipnet::IpNet;

/// One bad line of an allow-list file (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AllowFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {} bad line(s), first at line {}: {}", path.display(), lines.len(),
        lines.first().map_or(0, |l| l.line), lines.first().map_or("", |l| l.message.as_str()))]
    BadLines { path: PathBuf, lines: Vec<BadLine> },
}

/// What identifies a version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

/// A list read from a file, shared by every allow-list that names it.
#[derive(Debug)]
pub struct AllowFile {
    path: PathBuf,
    nets: RwLock<Arc<Vec<IpNet>>>,
    /// The version the list was read from.
    seen: Mutex<Option<Stamp>>,
}

impl PartialEq for AllowFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

/// Parses an allow-list file's text: every bad line is reported.
pub fn parse(text: &str) -> Result<Vec<IpNet>, Vec<BadLine>> {
    let mut nets = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let parsed = entry
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => nets.push(n),
            Err(_) => bad.push(BadLine {
                line: i as u64 + 1,
                message: format!("`{entry}` is not an IP address or CIDR network"),
            }),
        }
    }
    if bad.is_empty() {
        Ok(nets)
    } else {
        Err(bad)
    }
}

fn read(path: &Path) -> Result<Vec<IpNet>, AllowFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AllowFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|lines| AllowFileError::BadLines {
        path: path.to_path_buf(),
        lines,
    })
}

impl AllowFile {
    /// Reads the file; a file that cannot be read or has a bad line is an error.
    pub fn load(path: &Path) -> Result<Arc<AllowFile>, AllowFileError> {
        let before = stamp(path);
        let nets = read(path)?;
        Ok(Arc::new(AllowFile {
            path: path.to_path_buf(),
            nets: RwLock::new(Arc::new(nets)),
            seen: Mutex::new(before),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries now in force.
    pub fn nets(&self) -> Arc<Vec<IpNet>> {
        match self.nets.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The entry covering `addr`, if any.
    pub fn find(&self, addr: IpAddr) -> Option<IpNet> {
        self.nets().iter().find(|n| n.contains(&addr)).copied()
    }

    fn replace(&self, nets: Arc<Vec<IpNet>>, seen: Option<Stamp>) {
        match self.nets.write() {
            Ok(mut g) => *g = nets,
            Err(poisoned) => *poisoned.into_inner() = nets,
        }
        self.mark(seen);
    }

    fn mark(&self, seen: Option<Stamp>) {
        match self.seen.lock() {
            Ok(mut g) => *g = seen,
            Err(poisoned) => *poisoned.into_inner() = seen,
        }
    }

    fn changed(&self) -> Option<Option<Stamp>> {
        let now = stamp(&self.path);
        let seen = match self.seen.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        };
        (now != seen).then_some(now)
    }
}

/// What [`refresh`] did with one changed file.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// The new list (its number of entries) is in force.
    Reloaded { path: PathBuf, entries: usize },
    /// The file could not be read or has bad lines: the old list stays.
    Kept { path: PathBuf, error: String },
}

/// Re-reads every file of `files` that changed on disk since it was read
/// (each path once, however many lists share it), and logs the outcome.
pub fn refresh(files: &[Arc<AllowFile>]) -> Vec<Refreshed> {
    let mut out = Vec::new();
    let mut done: Vec<&Path> = Vec::new();
    for file in files {
        if done.contains(&file.path()) {
            continue;
        }
        done.push(file.path());
        let Some(now) = file.changed() else { continue };
        let same: Vec<&Arc<AllowFile>> = files.iter().filter(|f| f.path == file.path).collect();
        match read(&file.path) {
            Ok(nets) => {
                let entries = nets.len();
                let nets = Arc::new(nets);
                for f in &same {
                    f.replace(Arc::clone(&nets), now);
                }
                tracing::info!(path = %file.path.display(), entries, "allow-list file re-read");
                out.push(Refreshed::Reloaded {
                    path: file.path.clone(),
                    entries,
                });
            }
            Err(e) => {
                // Logged once per version of the file, not every second.
                for f in &same {
                    f.mark(now);
                }
                tracing::error!(error = %e, "allow-list file changed but not taken: the previous list stays in force");
                out.push(Refreshed::Kept {
                    path: file.path.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_bad_lines() {
        let ok = parse("# office\n192.0.2.7\n\n  198.51.100.0/24  # vpn\n2001:db8::/32\n").unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1], "198.51.100.0/24".parse::<IpNet>().unwrap());
        let bad = parse("192.0.2.1\nexample.com\n10.0.0.0/33\n").unwrap_err();
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(bad[0].message.contains("`example.com`"), "{bad:?}");
    }

    #[test]
    fn a_changed_file_is_reread_and_a_bad_one_keeps_the_old_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allow.txt");
        std::fs::write(&path, "192.0.2.1\n").unwrap();
        let f = AllowFile::load(&path).unwrap();
        let files = vec![Arc::clone(&f), AllowFile::load(&path).unwrap()];
        assert!(refresh(&files).is_empty(), "unchanged");
        std::fs::write(&path, "192.0.2.1\n192.0.2.2\n203.0.113.0/24\n").unwrap();
        assert_eq!(
            refresh(&files),
            vec![Refreshed::Reloaded {
                path: path.clone(),
                entries: 3
            }]
        );
        assert!(files[1].find("203.0.113.9".parse().unwrap()).is_some());
        std::fs::write(&path, "192.0.2.1\nnot-an-address\n").unwrap();
        assert!(matches!(&refresh(&files)[..], [Refreshed::Kept { .. }]));
        assert!(
            f.find("203.0.113.9".parse().unwrap()).is_some(),
            "old list kept"
        );
        assert!(refresh(&files).is_empty(), "a bad version is reported once");
    }
}
