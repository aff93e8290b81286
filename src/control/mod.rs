//! Control socket: the daemon's unix socket server ([`server`]) and the CLI's
//! client ([`client`]), speaking the JSON-lines [`protocol`].
//!
//! Owns the transport and who may use it: socket file, permissions, peer
//! credentials, timeouts, line limits. It must not compute answers (status,
//! bans, reloads are the daemon's, reached through a channel) nor print for
//! humans (that is `cli::control`).

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{call, call_blocking, ClientError};
pub use server::{resolve_group, serve, ControlError, ControlListener, ControlRequest};

/// Where the daemon listens unless `banwarden.yaml` says `socket:`.
pub const DEFAULT_SOCKET: &str = "/run/banwarden/banwarden.sock";

/// Longest request line the daemon reads (the newline excluded).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Longest request line read from a peer allowed to change state (a bulk
/// ban of 100,000 entries is about 6 MB).
pub const MAX_BULK_REQUEST_LINE: usize = 16 << 20;
