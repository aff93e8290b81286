//! What depends on the configuration: the engine with its jails and the
//! sources that feed it. Built from a `Config`, replaced whole on reload.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::jail::engine::{Engine, JailRuntime, JailStats};
use crate::jail::Jail;
use crate::source::command::CommandSource;
use crate::source::file::{DateReader, FileSource, FileSourceConfig, SeekByTime};
use crate::source::journal::{JournalConfig, JournalSource, JournalSpec};
use crate::source::{FilePos, SourceEvent};
use crate::UnixTime;

/// Where sources start: saved file positions and the journal cursor.
#[derive(Debug, Default, Clone)]
pub(crate) struct Resume {
    pub files: Vec<FilePos>,
    pub journal_cursor: Option<String>,
}

pub(crate) struct Running {
    pub config: Config,
    pub engine: Engine,
    pub files: Vec<FileSource>,
    pub commands: Vec<CommandSource>,
    /// One reader for every journal jail.
    pub journal: Option<JournalSource>,
    /// Source id → followed path pattern (file sources have the lowest ids).
    pub patterns: Vec<PathBuf>,
    /// Addresses allowed at run time (`banwarden ignore`), with their expiry.
    pub ignores: Vec<(IpNet, Option<UnixTime>)>,
}

/// A file seen for the first time starts at its first line within the
/// findtime of the jails that read it, dated as their filters date lines.
fn seek_by_time(
    since: UnixTime,
    filters: Vec<Arc<crate::filter::Filter>>,
    now: UnixTime,
) -> SeekByTime {
    let date: DateReader = Arc::new(move |line: &[u8]| {
        filters.iter().find_map(|f| {
            let mut state = f.new_state_with(false);
            f.date(line, now, &mut state).map(|d| d.ts)
        })
    });
    SeekByTime { since, date }
}

impl Running {
    /// Builds the engine and starts the sources for `config`. Jail state of
    /// jails in `old` with the same name is carried over; files resume at `resume`.
    pub fn start(
        config: Config,
        old: Option<Engine>,
        tx: &mpsc::Sender<SourceEvent>,
        resume: &Resume,
    ) -> Running {
        let mut old_jails: BTreeMap<String, JailRuntime> = old
            .map(|e| {
                e.jails
                    .into_iter()
                    .map(|j| (j.jail.settings.name.clone(), j))
                    .collect()
            })
            .unwrap_or_default();
        let mut jails = Vec::new();
        // One source per distinct path pattern, shared by the jails that read it.
        let mut patterns: Vec<PathBuf> = Vec::new();
        let mut routes: Vec<Vec<usize>> = Vec::new();
        // Per pattern: the longest findtime and the filters of its jails.
        let mut seeks: Vec<(i64, Vec<Arc<crate::filter::Filter>>)> = Vec::new();
        for jc in config.enabled_jails() {
            let idx = jails.len();
            let rt = match old_jails.remove(&jc.name) {
                Some(mut rt) => {
                    rt.jail.reconfigure(jc.settings.clone());
                    rt.filter = Arc::clone(&jc.filter);
                    rt
                }
                None => JailRuntime {
                    jail: Jail::new(jc.settings.clone()),
                    filter: Arc::clone(&jc.filter),
                    stats: JailStats::default(),
                },
            };
            jails.push(rt);
            for p in &jc.logpath {
                let id = patterns.iter().position(|q| q == p).unwrap_or_else(|| {
                    patterns.push(p.clone());
                    routes.push(Vec::new());
                    seeks.push((0, Vec::new()));
                    patterns.len() - 1
                });
                routes[id].push(idx);
                seeks[id].0 = seeks[id].0.max(jc.settings.findtime);
                seeks[id].1.push(Arc::clone(&jc.filter));
            }
        }
        let now = crate::now();
        let files = patterns
            .iter()
            .zip(seeks)
            .enumerate()
            .map(|(id, (p, (findtime, filters)))| {
                let cfg = FileSourceConfig {
                    patterns: vec![p.clone()],
                    resume: resume.files.clone(),
                    seek: Some(seek_by_time(now - findtime, filters, now)),
                    ..Default::default()
                };
                FileSource::spawn(id, cfg, tx.clone())
            })
            .collect();
        // Then one source id per command jail and per journal jail.
        let mut commands = Vec::new();
        let mut specs = Vec::new();
        let mut longest_findtime = 0;
        let mut journal_files = Vec::new();
        for (idx, jc) in config.enabled_jails().enumerate() {
            if let Some(argv) = &jc.command {
                routes.push(vec![idx]);
                commands.push(CommandSource::spawn(
                    routes.len() - 1,
                    argv.clone(),
                    tx.clone(),
                ));
            }
            if let Some(matches) = &jc.journal {
                routes.push(vec![idx]);
                specs.push(JournalSpec {
                    source: routes.len() - 1,
                    matches: matches.clone(),
                });
                longest_findtime = longest_findtime.max(jc.settings.findtime);
                journal_files.extend(jc.journal_files.iter().cloned());
            }
        }
        let journal = (!specs.is_empty()).then(|| {
            let cfg = JournalConfig {
                specs,
                cursor: resume.journal_cursor.clone(),
                since: Some(crate::now() - longest_findtime),
                files: journal_files,
                ..JournalConfig::default()
            };
            JournalSource::spawn(cfg, tx.clone())
        });
        Running {
            config,
            engine: Engine::new(jails, routes),
            files,
            commands,
            journal,
            patterns,
            ignores: Vec::new(),
        }
    }

    /// Rebuilds for a new configuration, keeping jail state.
    pub fn restart(&mut self, config: Config, tx: &mpsc::Sender<SourceEvent>, resume: &Resume) {
        let engine = std::mem::replace(&mut self.engine, Engine::new(Vec::new(), Vec::new()));
        *self = Running::start(config, Some(engine), tx, resume);
    }

    /// Stops reading (sources end when dropped).
    pub fn stop(&mut self) {
        self.files.clear();
        self.commands.clear();
        self.journal = None;
    }

    pub fn jail_names(&self) -> Vec<String> {
        self.engine
            .jails
            .iter()
            .map(|j| j.jail.settings.name.clone())
            .collect()
    }

    /// Whether a `Lines` event came from a file (whose position is worth saving).
    pub fn is_file_source(&self, ev: &SourceEvent) -> bool {
        matches!(ev, SourceEvent::Lines { source, .. } if *source < self.patterns.len())
    }

    /// The metrics label of an event's source.
    pub fn source_kind(&self, ev: &SourceEvent) -> &'static str {
        let id = match ev {
            SourceEvent::Lines { source, .. }
            | SourceEvent::Entries { source, .. }
            | SourceEvent::Skipped { source, .. }
            | SourceEvent::Rotated { source, .. }
            | SourceEvent::Error { source, .. } => *source,
        };
        if id < self.patterns.len() {
            "file"
        } else if id < self.patterns.len() + self.commands.len() {
            "command"
        } else {
            "journal"
        }
    }

    /// Adds `net` to every jail's allow-list (until `until`, or reload).
    pub fn ignore(&mut self, net: IpNet, until: Option<UnixTime>) {
        for rt in &mut self.engine.jails {
            rt.jail.settings.ignore.add(net);
        }
        self.ignores.push((net, until));
    }

    /// Lifts temporary allow-list entries whose time is up.
    pub fn expire_ignores(&mut self, now: UnixTime) {
        let (gone, keep): (Vec<_>, Vec<_>) = self
            .ignores
            .drain(..)
            .partition(|(_, u)| u.is_some_and(|u| u <= now));
        self.ignores = keep;
        for (net, _) in gone {
            for rt in &mut self.engine.jails {
                rt.jail.settings.ignore.remove(&net);
            }
            tracing::info!(addr = %net, "temporary ignore expired");
        }
    }
}
