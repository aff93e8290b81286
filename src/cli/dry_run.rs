//! `banwarden dry-run`. (Stub: implementation in progress.)

/// Arguments of `dry-run`.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {}

pub fn run(_args: DryRunArgs) -> i32 {
    eprintln!("dry-run: not implemented yet");
    2
}
