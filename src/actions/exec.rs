//! Exec actions: runs an argv (no shell, no PATH search) with the batch as
//! JSON on stdin, killed when it outlives its timeout.
//!
//! Must not pass anything through a shell or log the batch.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::CallError;

/// Exit 0: done. Any other exit, a signal or the timeout: retried (up to
/// the action's `retries`); the first 512 bytes of stderr are in the error.
pub(super) async fn run(argv: &[String], stdin: &[u8], timeout: Duration) -> Result<(), CallError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(CallError::Permanent {
            message: "empty argv".into(),
        });
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::Retry {
            message: format!("cannot start {prog}: {e}"),
            after: None,
        })?;
    let mut input = child.stdin.take();
    let mut err = child.stderr.take();
    let body = stdin.to_vec();
    let work = async move {
        if let Some(mut i) = input.take() {
            // A program that does not read its stdin is its own business.
            let _ = i.write_all(&body).await;
            drop(i);
        }
        let mut text = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(64 * 1024).read_to_end(&mut text).await;
        }
        let status = child.wait().await;
        (status, text)
    };
    match tokio::time::timeout(timeout, work).await {
        // The child is killed when `work` is dropped (kill_on_drop).
        Err(_) => Err(CallError::Retry {
            message: format!("{prog} did not finish within {timeout:?}; killed"),
            after: None,
        }),
        Ok((Err(e), _)) => Err(CallError::Retry {
            message: format!("waiting for {prog}: {e}"),
            after: None,
        }),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), text)) => {
            let text = String::from_utf8_lossy(&text[..text.len().min(512)])
                .trim()
                .to_string();
            Err(CallError::Retry {
                message: format!("{prog} exited with {status}: {text}"),
                after: None,
            })
        }
    }
}
