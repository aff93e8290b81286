//! `banwarden generate`: man pages and shell completions, built from the
//! real command-line definition (`Cli`) and the config key registry, so
//! what a package ships cannot drift from the binary.
//!
//! Owns rendering to stdout or to files; knows nothing of the engine.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Cli;

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Man pages: banwarden(8) on stdout, or with --out every page
    /// (banwarden(8), banwarden-COMMAND(8), banwarden.yaml(5)).
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        out: Option<PathBuf>,
    },
    /// A completion script for a shell, on stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Exit 0 when written, 1 on an I/O error.
pub fn run(args: GenerateArgs) -> i32 {
    let res = match args.what {
        What::Man { out: None } => {
            let mut buf = Vec::new();
            man(Cli::command(), &mut buf).and_then(|()| std::io::stdout().write_all(&buf))
        }
        What::Man { out: Some(dir) } => write_pages(&dir),
        What::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "banwarden", &mut buf);
            std::io::stdout().write_all(&buf)
        }
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("banwarden generate: {e}");
            1
        }
    }
}

fn man(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd)
        .section("8")
        .manual("System Administration")
        .render(out)
}

/// Every page into `dir`; returns the file names written.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = Cli::command();
    let mut buf = Vec::new();
    if man(cmd.clone(), &mut buf).is_ok() {
        out.push(("banwarden.8".to_string(), buf));
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("banwarden-{}", sub.get_name());
        let mut buf = Vec::new();
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("banwarden {}", sub.get_name()));
        if man(page, &mut buf).is_ok() {
            out.push((format!("{name}.8"), buf));
        }
    }
    out.push((
        "banwarden.yaml.5".to_string(),
        crate::config::docs::man_page(env!("CARGO_PKG_VERSION")).into_bytes(),
    ));
    out
}

fn write_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in pages() {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
