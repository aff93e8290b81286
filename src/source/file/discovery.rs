//! Which paths a source follows: its configured patterns (an exact path or
//! a glob) expanded to the regular files they cover, and the directory to
//! watch for each.
//!
//! Only names and metadata: never opens or reads a file.

use std::fs;
use std::path::{Path, PathBuf};

/// A configured pattern: an exact path or a glob, and the directory to watch for it.
#[derive(Clone)]
pub(super) struct Pat {
    pub(super) path: PathBuf,
    pub(super) glob: Option<glob::Pattern>,
    pub(super) base: PathBuf,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn has_glob(p: &Path) -> bool {
    p.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

impl Pat {
    pub(super) fn new(path: &Path) -> Result<Pat, glob::PatternError> {
        let glob = match path.to_str() {
            Some(text) if has_glob(path) => Some(glob::Pattern::new(text)?),
            _ => None,
        };
        let base = path
            .ancestors()
            .skip(1)
            .find(|a| !has_glob(a))
            .unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Ok(Pat {
            path: path.to_path_buf(),
            glob,
            base: base.to_path_buf(),
        })
    }

    /// Whether an event on `p` may concern this pattern (a match, or a directory on the way to it).
    pub(super) fn relevant(&self, p: &Path) -> bool {
        self.glob
            .as_ref()
            .map_or(p == self.path, |g| g.matches_path_with(p, MATCH))
            || self.base.starts_with(p)
    }

    pub(super) fn expand(&self) -> Vec<PathBuf> {
        let Some(glob) = &self.glob else {
            return vec![self.path.clone()];
        };
        let paths = glob::glob_with(glob.as_str(), MATCH)
            .into_iter()
            .flatten()
            .flatten();
        paths
            .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_know_their_directory() {
        let p = Pat::new(Path::new("/var/log/*/access.log")).unwrap();
        assert_eq!(p.base, Path::new("/var/log"));
        assert!(p.relevant(Path::new("/var/log/nginx/access.log")));
        assert!(!p.relevant(Path::new("/var/log/nginx/error.log")));
        let p = Pat::new(Path::new("/var/log/auth.log")).unwrap();
        assert_eq!(
            (p.base.as_path(), p.glob.is_none()),
            (Path::new("/var/log"), true)
        );
        assert!(p.relevant(Path::new("/var")) && !p.relevant(Path::new("/var/log/auth.log.1")));
    }
}
