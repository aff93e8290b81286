//! How a transaction or a listing reaches nftables: in-process through
//! libnftables when the configured command is plain `nft` and the library
//! loads, else the command itself (argv, never a shell), its stdin fed from a
//! second thread so a large batch cannot deadlock against its output.
//!
//! It must not build or interpret what it runs: the caller hands it
//! arguments and a payload and gets nft's output or error text back.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nftables::schema::Nftables;

use super::{libnft, NftFirewall};
use crate::firewall::FirewallError;

impl NftFirewall {
    /// Runs one transaction.
    pub(super) fn transact(
        &self,
        doc: &Nftables<'_>,
        what: &str,
        items: usize,
    ) -> Result<(), FirewallError> {
        let payload = serde_json::to_vec(doc)
            .map_err(|e| FirewallError::Parse(format!("serialising the batch: {e}")))?;
        let started = Instant::now();
        self.run(&["-j", "-f", "-"], Some(&payload))?;
        tracing::debug!(
            table = %self.table,
            what,
            items,
            bytes = payload.len(),
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "nft transaction applied"
        );
        Ok(())
    }

    /// Runs one transaction written in nft's own syntax (`nft -f -`).
    pub(super) fn transact_text(
        &self,
        text: &str,
        what: &str,
        items: usize,
    ) -> Result<(), FirewallError> {
        let started = Instant::now();
        self.run(&["-f", "-"], Some(text.as_bytes()))?;
        tracing::debug!(
            table = %self.table,
            what,
            items,
            bytes = text.len(),
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            "nft transaction applied"
        );
        Ok(())
    }

    /// Runs `nft_cmd ++ args`, feeding `input` on stdin: in-process through
    /// libnftables when `nft_cmd` is plain `nft` and the library is there
    /// (see [`libnft`]), else the command. Failure: nft's error text as
    /// [`FirewallError::Nft`].
    pub(super) fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, FirewallError> {
        if self.nft_cmd == ["nft"] {
            if let Some(result) = libnft::run(args, input) {
                return result.map_err(|e| FirewallError::Nft(e.0));
            }
        }
        let (program, prefix) = match self.nft_cmd.split_first() {
            Some((p, rest)) => (p.as_str(), rest),
            None => ("nft", &[][..]),
        };
        let spawn_err = |source| FirewallError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = Command::new(program)
            .args(prefix)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let stdin = child.stdin.take();
        // Feed stdin from a second thread so a large payload cannot deadlock
        // against nft filling its stdout/stderr pipes.
        let (write_result, output) = std::thread::scope(|s| {
            let writer = s.spawn(move || match (stdin, input) {
                (Some(mut stdin), Some(data)) => stdin.write_all(data),
                _ => Ok(()),
            });
            let output = child.wait_with_output();
            let write_result = writer.join();
            (write_result, output)
        });
        let output = output.map_err(spawn_err)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            let msg = if stderr.is_empty() {
                format!("{program} exited with {}", output.status)
            } else {
                stderr
            };
            return Err(FirewallError::Nft(msg));
        }
        match write_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(FirewallError::Nft(format!(
                    "could not write the batch to {program}: {e}"
                )))
            }
            Err(_) => {
                return Err(FirewallError::Nft(format!(
                    "the thread feeding {program} panicked"
                )))
            }
        }
        String::from_utf8(output.stdout)
            .map_err(|e| FirewallError::Parse(format!("{program} printed invalid UTF-8: {e}")))
    }
}
